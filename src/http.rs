//! HTTP pieces shared by `HttpInput`, `HttpListenInput` and `HttpOutput`: the hyper
//! client (http:// and https:// through rustls with the `ring` provider and the
//! webpki root certificates), header tables checked at build time, Basic
//! authentication values, and a [`BlockingClient`] for outputs' threads.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::rt::TokioExecutor;

/// The `key=value` pairs of a query string (`a=1&b=x%20y`), percent-decoded with `+` as
/// a space; a key without `=` has an empty value.
pub fn query_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (a space); a malformed escape is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match b.get(i + 1..i + 3).and_then(hex_byte) {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(h[0])? * 16 + digit(h[1])?) as u8)
}

/// The HTTP/1.1 client used by the HTTP plugins; it speaks http:// and https://.
pub type Client = LegacyClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long idle pooled connections are kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A client with a connection pool, for http:// and https:// URLs. Must be called (and
/// used) inside a tokio runtime.
pub fn client() -> Client {
    client_with(None)
}

/// A [`client`] whose https:// connections use `tls` (`[name.tls]`: a private CA, a
/// client certificate, `server_name`); without it, the webpki roots.
pub fn client_with(tls: Option<&crate::tls::ClientTls>) -> Client {
    crate::tls::install_default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let mut builder = match tls {
        Some(t) => builder.with_tls_config((*t.config()).clone()),
        None => builder.with_webpki_roots(),
    }
    .https_or_http();
    if let Some(name) = tls.and_then(crate::tls::ClientTls::fixed_server_name) {
        builder =
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = builder.enable_http1().build();
    LegacyClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(https)
}

/// Checks a URL for a client: it must parse and use `http` or `https` with a host.
pub fn check_url(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}: {url:?}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("expected an http:// or https:// URL, got {url:?}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("URL without a host: {url:?}"));
    }
    Ok(uri)
}

/// One header's value(s) in a `[name.headers]` table: a string, or an array of strings
/// (Heka's documented form, each value sent as its own header line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// `Name = "value"`.
    One(String),
    /// `Name = ["a", "b"]`.
    Many(Vec<String>),
}

impl HeaderValues {
    fn values(&self) -> &[String] {
        match self {
            HeaderValues::One(v) => std::slice::from_ref(v),
            HeaderValues::Many(v) => v,
        }
    }
}

/// A `[name.headers]` table.
pub type Headers = BTreeMap<String, HeaderValues>;

/// Turns a `[name.headers]` table into a header map, rejecting invalid names or values.
pub fn header_map(headers: &Headers) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, vs) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        for v in vs.values() {
            let value =
                HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k:?}"))?;
            map.append(name.clone(), value);
        }
    }
    Ok(map)
}

/// The `Authorization` value for HTTP Basic authentication.
pub fn basic_auth(user: &str, password: &str) -> Result<HeaderValue, String> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| "username or password cannot be sent in a header".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

/// Most response-body bytes a [`BlockingClient`] reads (to return the connection to
/// the pool); the rest is discarded.
const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// A [`Client`] for an output's own thread: it owns a small single-threaded runtime,
/// both made on first use (a runtime must not be dropped inside another runtime's
/// context, which is where build functions may run).
#[derive(Default)]
pub struct BlockingClient {
    rt: Option<tokio::runtime::Runtime>,
    client: Option<Client>,
    /// `[name.tls]` of the output; the client is made again when its files were re-read.
    tls: Option<crate::tls::ClientTls>,
    /// The TLS config the current client was made with.
    made_with: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

/// Why a [`BlockingClient`] request got no status.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The runtime could not start.
    #[error("cannot start the HTTP client: {0}")]
    Runtime(#[source] std::io::Error),
    /// Connecting or sending failed.
    #[error("request failed: {0}")]
    Failed(#[source] hyper_util::client::legacy::Error),
    /// No answer in time.
    #[error("no response within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl BlockingClient {
    /// A client whose https:// connections use `tls`.
    pub fn with_tls(tls: Option<crate::tls::ClientTls>) -> Self {
        BlockingClient {
            tls,
            ..BlockingClient::default()
        }
    }

    /// Drops the client when the TLS files were re-read since it was made (SIGHUP).
    fn follow_tls_reload(&mut self) {
        let Some(tls) = &self.tls else {
            return;
        };
        let now = tls.config();
        if !self
            .made_with
            .as_ref()
            .is_some_and(|m| std::sync::Arc::ptr_eq(m, &now))
        {
            self.client = None;
            self.made_with = Some(now);
        }
    }
    /// Sends `req` and waits (at most `timeout`) for the status; the body is read up to
    /// 1 MiB and dropped.
    pub fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
        timeout: Option<Duration>,
    ) -> Result<hyper::StatusCode, RequestError> {
        self.follow_tls_reload();
        let rt = match &mut self.rt {
            Some(rt) => rt,
            slot => slot.insert(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(RequestError::Runtime)?,
            ),
        };
        let (client, tls) = (&mut self.client, self.tls.as_ref());
        rt.block_on(async {
            let client = client.get_or_insert_with(|| client_with(tls));
            let work = async {
                use http_body_util::BodyExt;
                let resp = client.request(req).await.map_err(RequestError::Failed)?;
                let status = resp.status();
                let _ = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BODY)
                    .collect()
                    .await;
                Ok(status)
            };
            match timeout {
                None => work.await,
                Some(t) => tokio::time::timeout(t, work)
                    .await
                    .unwrap_or(Err(RequestError::Timeout(t))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_headers_and_basic_auth() {
        assert!(check_url("http://127.0.0.1:80/x").is_ok());
        assert!(check_url("https://example.com/").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("/relative").is_err());
        let mut h: Headers =
            toml::from_str("X-Test = '1'\nAccept = ['text/plain', 'application/json']")
                .expect("both forms parse");
        let map = header_map(&h).expect("valid");
        assert_eq!(map["x-test"], "1");
        let accept: Vec<_> = map.get_all("accept").iter().collect();
        assert_eq!(
            accept,
            ["text/plain", "application/json"],
            "one line per value"
        );
        h.insert("bad name".to_string(), HeaderValues::One("1".to_string()));
        assert!(header_map(&h).is_err());
        // RFC 7617's example.
        assert_eq!(
            basic_auth("Aladdin", "open sesame").expect("ascii"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    /// The TLS side builds (rustls finds its `ring` provider) and really does TLS: a
    /// plain-text server behind an https:// URL is a handshake error, not a response.
    #[tokio::test]
    async fn https_goes_through_rustls() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let c = client();
        let uri = check_url(&format!("https://127.0.0.1:{port}/")).expect("url");
        let req = hyper::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let err = c.request(req).await.expect_err("not TLS");
        assert!(err.is_connect(), "{err:?}");
    }
}
