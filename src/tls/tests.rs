//! Handshakes between [`ServerTls`] and [`ClientTls`] over loopback, with certificates
//! made by rcgen: each `client_auth` policy, a wrong CA, an expired certificate, and a
//! certificate rotated under a running listener.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    let pem = p.self_signed(&key).expect("ca").pem();
    Ca {
        issuer: Issuer::new(p, key),
        pem,
    }
}

/// Writes `<stem>.pem` and `<stem>.key` for a leaf signed by `ca`; `expired` dates it
/// in the past.
fn leaf(dir: &Path, stem: &str, ca: &Ca, expired: bool) -> (String, String) {
    leaf_for(dir, stem, ca, expired, &["localhost", "127.0.0.1"])
}

/// A leaf for `names` only.
fn leaf_for(dir: &Path, stem: &str, ca: &Ca, expired: bool, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut p = CertificateParams::new(names).expect("params");
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.issuer).expect("leaf");
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (path(&c), path(&k))
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn write_ca(dir: &Path, ca: &Ca, name: &str) -> String {
    let p: PathBuf = dir.join(name);
    std::fs::write(&p, &ca.pem).expect("write ca");
    path(&p)
}

/// Serves one connection with `server`; the client sends "ping", the server answers "pong".
async fn exchange(server: ServerTls, client: ClientTls) -> Result<(), String> {
    let name = client.server_name("localhost").expect("name");
    exchange_as(server, client, name).await
}

/// [`exchange`], the client opening the connection for `name`.
async fn exchange_as(
    server: ServerTls,
    client: ClientTls,
    name: ServerName<'static>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let srv = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let mut s = server.accept(sock).await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        s.write_all(b"pong").await.map_err(|e| e.to_string())?;
        s.shutdown().await.map_err(|e| e.to_string())
    });
    let sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let cli = async {
        let mut s = client
            .connector()
            .connect(name, sock)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut b = Vec::new();
        s.read_to_end(&mut b).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(b)
    }
    .await;
    let srv = srv.await.expect("server task");
    match (srv, cli) {
        (Ok(()), Ok(b)) if b == b"pong" => Ok(()),
        (s, c) => Err(format!("server: {s:?}, client: {c:?}")),
    }
}

fn server(cert: &(String, String), toml: &str) -> ServerTls {
    let mut c: TlsConfig = toml::from_str(toml).expect("tls");
    (c.cert_file, c.key_file) = cert.clone();
    ServerTls::new(&c).expect("server tls")
}

fn client(toml: &str) -> ClientTls {
    ClientTls::new(&toml::from_str(toml).expect("tls")).expect("client tls")
}

#[tokio::test]
async fn server_name_holds_for_connections_opened_by_address() {
    let dir = tempfile::tempdir().expect("dir");
    let good = ca("hekate test CA");
    let ca_file = write_ca(dir.path(), &good, "ca.pem");
    let db = leaf_for(dir.path(), "db", &good, false, &["db.example"]);
    let by_ip = || ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let e = exchange_as(
        server(&db, ""),
        client(&format!("root_cafile = '{ca_file}'")),
        by_ip(),
    )
    .await
    .expect_err("the certificate does not name 127.0.0.1");
    assert!(e.contains("not valid for name"), "{e}");
    let named = client(&format!(
        "root_cafile = '{ca_file}'\nserver_name = 'db.example'"
    ));
    exchange_as(server(&db, ""), named, by_ip())
        .await
        .expect("checked for server_name");
    let wrong = client(&format!(
        "root_cafile = '{ca_file}'\nserver_name = 'other.example'"
    ));
    let e = exchange_as(server(&db, ""), wrong, by_ip())
        .await
        .expect_err("not the name configured");
    assert!(e.contains("not valid for name"), "{e}");
}

#[tokio::test]
async fn mutual_tls_and_each_refusal() {
    let dir = tempfile::tempdir().expect("dir");
    let (good, other) = (ca("hekate test CA"), ca("someone else"));
    let ca_file = write_ca(dir.path(), &good, "ca.pem");
    let other_file = write_ca(dir.path(), &other, "other.pem");
    let srv = leaf(dir.path(), "server", &good, false);
    let cli = leaf(dir.path(), "client", &good, false);
    let stranger = leaf(dir.path(), "stranger", &other, false);
    let mtls = format!("client_auth = 'RequireAndVerifyClientCert'\nclient_cafile = '{ca_file}'");
    let with_cert = |c: &(String, String)| {
        client(&format!(
            "root_cafile = '{ca_file}'\ncert_file = '{}'\nkey_file = '{}'",
            c.0, c.1
        ))
    };

    exchange(server(&srv, &mtls), with_cert(&cli))
        .await
        .expect("mutual TLS");
    let e = exchange(
        server(&srv, &mtls),
        client(&format!("root_cafile = '{ca_file}'")),
    )
    .await
    .expect_err("no client certificate");
    assert!(
        e.contains("no certificates") || e.contains("CertificateRequired"),
        "{e}"
    );
    let e = exchange(server(&srv, &mtls), with_cert(&stranger))
        .await
        .expect_err("client cert from another CA");
    assert!(
        e.contains("UnknownIssuer") || e.contains("unknown issuer"),
        "{e}"
    );
    let e = exchange(
        server(&srv, ""),
        client(&format!("root_cafile = '{other_file}'")),
    )
    .await
    .expect_err("server cert from another CA");
    assert!(
        e.contains("UnknownIssuer") || e.contains("unknown issuer"),
        "{e}"
    );
    let expired = leaf(dir.path(), "expired", &good, true);
    let e = exchange(
        server(&expired, ""),
        client(&format!("root_cafile = '{ca_file}'")),
    )
    .await
    .expect_err("expired");
    assert!(e.to_lowercase().contains("expired"), "{e}");
    // The two "any certificate" policies, and insecure_skip_verify.
    exchange(
        server(&srv, "client_auth = 'RequireAnyClientCert'"),
        with_cert(&stranger),
    )
    .await
    .expect("any client certificate");
    exchange(
        server(&srv, "client_auth = 'RequestClientCert'"),
        client(&format!("root_cafile = '{ca_file}'")),
    )
    .await
    .expect("requested, not required");
    exchange(server(&expired, ""), client("insecure_skip_verify = true"))
        .await
        .expect("insecure_skip_verify");
}

#[tokio::test]
async fn a_rotated_certificate_is_read_after_reload_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let (old, new) = (ca("old CA"), ca("new CA"));
    let old_ca = write_ca(dir.path(), &old, "old.pem");
    let new_ca = write_ca(dir.path(), &new, "new.pem");
    let files = leaf(dir.path(), "server", &old, false);
    let srv = server(&files, "");
    let trusts = |ca: &str| client(&format!("root_cafile = '{ca}'"));
    exchange(srv.clone(), trusts(&old_ca)).await.expect("old");
    leaf(dir.path(), "server", &new, false);
    reload_files();
    exchange(srv.clone(), trusts(&new_ca))
        .await
        .expect("rotated");
    std::fs::write(&files.1, "not a key").expect("break the key");
    reload_files();
    exchange(srv.clone(), trusts(&new_ca))
        .await
        .expect("the broken rotation keeps the previous files");
}

#[test]
fn missing_and_unreadable_files_name_their_key() {
    let e = |toml: &str| ServerTls::new(&toml::from_str(toml).expect("tls")).err();
    assert_eq!(e("").map(|e| e.key()), Some("cert_file"));
    assert_eq!(
        e("cert_file = '/nope.pem'").map(|e| e.key()),
        Some("key_file")
    );
    let err = e("cert_file = '/nope.pem'\nkey_file = '/nope.key'").expect("unreadable");
    assert_eq!(err.key(), "cert_file");
    assert!(err.to_string().contains("cannot read /nope.pem"), "{err}");
    let dir = tempfile::tempdir().expect("dir");
    let files = leaf(dir.path(), "s", &ca("c"), false);
    let err = e(&format!(
        "cert_file = '{}'\nkey_file = '{}'\nclient_auth = 'RequireAndVerifyClientCert'",
        files.0, files.1
    ))
    .expect("no client_cafile");
    assert_eq!(err.key(), "client_cafile");
    let c = |toml: &str| ClientTls::new(&toml::from_str(toml).expect("tls")).err();
    assert_eq!(c("key_file = 'k'").map(|e| e.key()), Some("cert_file"));
    assert_eq!(
        c("server_name = 'a b'").map(|e| e.key()),
        Some("server_name")
    );
    assert!(c("").is_none(), "webpki roots by default");
}
