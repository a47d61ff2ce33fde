//! `[name.tls]`: Heka's TLS keys (`docs/source/tls.rst`), read for both sides, and
//! their mapping onto what rustls offers (TLS 1.2 and 1.3, AEAD suites only).

use serde::Deserialize;

use rustls::crypto::CryptoProvider;
use rustls::SupportedCipherSuite;

use super::TlsError;

/// Heka's `client_auth`: the server's policy for client certificates.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuth {
    /// Ask for no certificate (Heka's default).
    #[default]
    NoClientCert,
    /// Ask for a certificate; accept the connection without one, and accept any one sent
    /// (its signature over the handshake is still checked).
    RequestClientCert,
    /// Require a certificate, any certificate (not checked against a CA).
    RequireAnyClientCert,
    /// Accept a connection without a certificate; a certificate sent must chain to
    /// `client_cafile`.
    VerifyClientCertIfGiven,
    /// Require a certificate that chains to `client_cafile`: mutual TLS.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Whether certificates are checked against `client_cafile`.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// Heka's `min_version` / `max_version` names, plus `TLS13`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// SSL 3.0 (never spoken: the floor is TLS 1.2).
    SSL30,
    /// TLS 1.0 (never spoken).
    TLS10,
    /// TLS 1.1 (never spoken).
    TLS11,
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

/// `[name.tls]`: one struct for servers and clients, as in Heka; each side reads the keys
/// that apply to it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Client: the name sent in SNI and checked in the server's certificate. Default: the
    /// host part of the address connected to.
    pub server_name: String,
    /// PEM certificate chain presented to the peer (a server's certificate; a client's
    /// certificate for mutual TLS). Required on a server.
    pub cert_file: String,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Server: policy for client certificates. Default `NoClientCert`.
    pub client_auth: ClientAuth,
    /// Cipher suites, most preferred first, by Heka's (Go's) names, with or without the
    /// `TLS_` prefix. Suites rustls refuses on principle (RC4, 3DES, CBC) are reported by
    /// name. TLS 1.3 suites stay enabled unless the list names some. Default: rustls'
    /// own order.
    pub ciphers: Vec<String>,
    /// Client: accept any server certificate and name. For tests only: it allows a
    /// man in the middle, and is logged as a warning at start. Default false.
    pub insecure_skip_verify: bool,
    /// Server: pick the cipher suite by the server's order, not the client's. Default true.
    pub prefer_server_ciphers: bool,
    /// Server: no session resumption tickets (RFC 5077). Default false.
    pub session_tickets_disabled: bool,
    /// Server: Heka's shared ticket key. Accepted and ignored with a warning: rustls
    /// generates and rotates its own ticket keys.
    pub session_ticket_key: String,
    /// Lowest version accepted. Default `SSL30` as in Heka; anything below `TLS12` means
    /// TLS 1.2, the lowest rustls speaks.
    pub min_version: Option<TlsVersion>,
    /// Highest version offered. Default `TLS13` (Heka's `TLS12` was Go's highest then).
    pub max_version: Option<TlsVersion>,
    /// Server: PEM CA certificates that client certificates must chain to (needed by the
    /// `Verify…` client_auth values).
    pub client_cafile: String,
    /// Client: PEM CA certificates that the server's certificate must chain to. Default:
    /// the Mozilla root set (webpki-roots).
    pub root_cafile: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            server_name: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            client_auth: ClientAuth::NoClientCert,
            ciphers: Vec::new(),
            insecure_skip_verify: false,
            prefer_server_ciphers: true,
            session_tickets_disabled: false,
            session_ticket_key: String::new(),
            min_version: None,
            max_version: None,
            client_cafile: String::new(),
            root_cafile: String::new(),
        }
    }
}

impl TlsConfig {
    /// Protocol versions between `min_version` and `max_version`, as rustls names them.
    pub(crate) fn versions(
        &self,
    ) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        let min = self.min_version.unwrap_or(TlsVersion::SSL30);
        let max = self.max_version.unwrap_or(TlsVersion::TLS13);
        if max < TlsVersion::TLS12 {
            return Err(TlsError::config(
                "max_version",
                format!("{max:?} is not available: TLS 1.2 and 1.3 are spoken, older versions are broken"),
            ));
        }
        if min > max {
            return Err(TlsError::config(
                "min_version",
                format!("{min:?} is above max_version {max:?}"),
            ));
        }
        let mut v = Vec::new();
        if max >= TlsVersion::TLS13 {
            v.push(&rustls::version::TLS13);
        }
        if min <= TlsVersion::TLS12 {
            v.push(&rustls::version::TLS12);
        }
        Ok(v)
    }

    /// The ring provider restricted and ordered by `ciphers`.
    pub(crate) fn provider(&self) -> Result<CryptoProvider, TlsError> {
        let mut p = rustls::crypto::ring::default_provider();
        if self.ciphers.is_empty() {
            return Ok(p);
        }
        let all = p.cipher_suites.clone();
        let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
        let mut bad = Vec::new();
        for name in &self.ciphers {
            match find_suite(&all, name) {
                Ok(s) if !chosen.contains(&s) => chosen.push(s),
                Ok(_) => {}
                Err(why) => bad.push(why),
            }
        }
        if !bad.is_empty() {
            return Err(TlsError::config("ciphers", bad.join("; ")));
        }
        // As Go does, a list of TLS 1.2 suites leaves TLS 1.3's suites as they are.
        if !chosen
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13)
        {
            chosen.extend(
                all.iter()
                    .filter(|s| s.version() == &rustls::version::TLS13),
            );
        }
        p.cipher_suites = chosen;
        Ok(p)
    }
}

/// Substrings of suites rustls leaves out on principle.
const REFUSED: [(&str, &str); 5] = [
    ("RC4", "RC4 is broken"),
    ("3DES", "3DES is obsolete (Sweet32)"),
    ("_CBC_", "CBC suites are open to padding-oracle attacks"),
    ("NULL", "it does not encrypt"),
    ("EXPORT", "export suites are broken"),
];

/// The suite a Heka/Go name stands for: `ECDHE_RSA_WITH_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `TLS_AES_128_GCM_SHA256`, and Go's
/// `..._CHACHA20_POLY1305` without `_SHA256`.
fn find_suite(all: &[SupportedCipherSuite], name: &str) -> Result<SupportedCipherSuite, String> {
    let want = name.trim().to_ascii_uppercase();
    let want = want.strip_prefix("TLS_").unwrap_or(&want);
    for s in all {
        let full = format!("{:?}", s.suite());
        let bare = full
            .strip_prefix("TLS13_")
            .or_else(|| full.strip_prefix("TLS_"))
            .unwrap_or(&full);
        if want == bare || format!("{want}_SHA256") == bare && want.ends_with("POLY1305") {
            return Ok(*s);
        }
    }
    if let Some((_, why)) = REFUSED.iter().find(|(bad, _)| want.contains(bad)) {
        return Err(format!(
            "{name} is not supported: rustls refuses it on principle ({why})"
        ));
    }
    let known: Vec<String> = all.iter().map(|s| format!("{:?}", s.suite())).collect();
    Err(format!(
        "unknown cipher suite {name}; available: {}",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml: &str) -> TlsConfig {
        toml::from_str(toml).expect("tls config")
    }

    #[test]
    fn heka_cipher_names_map_to_rustls_suites_in_order() {
        let c = cfg(
            r#"ciphers = ["ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE_RSA_WITH_CHACHA20_POLY1305"]"#,
        );
        let p = c.provider().expect("provider");
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            &names[..3],
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        // TLS 1.3's suites stay, as in Go.
        assert!(names.iter().any(|n| n.starts_with("TLS13_")));
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn refused_and_unknown_suites_are_named() {
        let c = cfg(
            r#"ciphers = ["RSA_WITH_RC4_128_SHA", "ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE_RSA_WITH_AES_128_CBC_SHA", "NOPE"]"#,
        );
        let e = c.provider().expect_err("refused").to_string();
        assert!(e.contains("RSA_WITH_RC4_128_SHA is not supported"), "{e}");
        assert!(e.contains("3DES is obsolete"), "{e}");
        assert!(e.contains("CBC suites"), "{e}");
        assert!(e.contains("unknown cipher suite NOPE"), "{e}");
    }

    #[test]
    fn versions_follow_heka_names_with_a_tls12_floor() {
        assert_eq!(cfg("").versions().expect("v").len(), 2);
        let v = cfg("min_version = 'TLS11'\nmax_version = 'TLS12'")
            .versions()
            .expect("v");
        assert_eq!(v, [&rustls::version::TLS12]);
        let v = cfg("min_version = 'TLS13'").versions().expect("v");
        assert_eq!(v, [&rustls::version::TLS13]);
        let e = cfg("max_version = 'TLS11'")
            .versions()
            .expect_err("too old");
        assert_eq!(e.key(), "max_version");
        let e = cfg("min_version = 'TLS13'\nmax_version = 'TLS12'")
            .versions()
            .expect_err("min above max");
        assert_eq!(e.key(), "min_version");
    }

    #[test]
    fn client_auth_takes_hekas_five_values() {
        for (v, verifies) in [
            ("NoClientCert", false),
            ("RequestClientCert", false),
            ("RequireAnyClientCert", false),
            ("VerifyClientCertIfGiven", true),
            ("RequireAndVerifyClientCert", true),
        ] {
            assert_eq!(
                cfg(&format!("client_auth = '{v}'")).client_auth.verifies(),
                verifies
            );
        }
        assert!(toml::from_str::<TlsConfig>("client_auth = 'Always'").is_err());
    }
}
