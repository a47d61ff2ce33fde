//! What `AMQPInput` and `AMQPOutput` share: the broker URL check, the exchange keys and
//! their declaration, connecting with a deadline, and the reconnect backoff. Called by
//! `inputs::amqp_input` and `outputs::amqp_output`; both use lapin on tokio. `amqps://`
//! connects over TLS with the `[name.tls]` keys, through the `tls` kit's rustls config.

use std::time::{Duration, Instant};

use lapin::options::ExchangeDeclareOptions;
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::tls::{ClientTls, TlsConfig};

/// How long one connection attempt (TCP connect plus AMQP handshake) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `exchange_type`: how the exchange routes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    /// By exact routing key.
    Direct,
    /// To every bound queue.
    Fanout,
    /// By routing-key pattern.
    Topic,
    /// By message headers.
    Headers,
}

impl ExchangeType {
    fn kind(self) -> ExchangeKind {
        match self {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Headers => ExchangeKind::Headers,
        }
    }
}

/// The exchange keys both plugins take (Heka's names and defaults). Each plugin parses
/// them from its section with `ExchangeConfig::parse` and its own keys from the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ExchangeConfig {
    /// Broker URL, `amqp://user:password@host:port/vhost`. Required. `amqps://` (port
    /// 5671 by default) connects over TLS, configured by `[name.tls]`.
    pub url: String,
    /// Exchange to publish to or bind the queue to. Required.
    pub exchange: String,
    /// `direct`, `fanout`, `topic` or `headers`. Required.
    pub exchange_type: Option<ExchangeType>,
    /// Declare the exchange durable (survives a broker restart). Default false.
    pub exchange_durability: bool,
    /// Let the broker delete the exchange when nothing is bound to it. Default true.
    pub exchange_auto_delete: bool,
    /// Output: routing key of every published message. Input: binding key. Default "".
    pub routing_key: String,
    /// `[name.tls]`: Heka's TLS keys for an `amqps://` URL (`root_cafile` for a private
    /// CA, `cert_file`/`key_file` for a client certificate, `server_name`). Without it,
    /// `amqps://` trusts the bundled web roots and verifies the URL's host.
    pub tls: Option<TlsConfig>,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            url: String::new(),
            exchange: String::new(),
            exchange_type: None,
            exchange_durability: false,
            exchange_auto_delete: true,
            routing_key: String::new(),
            tls: None,
        }
    }
}

/// The exchange keys, checked.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub uri: AMQPUri,
    /// The URL without its password, for logs.
    pub display_url: String,
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub routing_key: String,
    /// TLS for `amqps://`; `None` for `amqp://`.
    pub tls: Option<ClientTls>,
}

impl ExchangeConfig {
    /// The keys this struct reads.
    pub const KEYS: [&'static str; 7] = [
        "url",
        "exchange",
        "exchange_type",
        "exchange_durability",
        "exchange_auto_delete",
        "routing_key",
        "tls",
    ];

    /// Parses and checks the exchange keys of `p` into an [`Exchange`]; returns it (when
    /// valid), the rest of the section for the plugin's own keys, and every error so far.
    pub(crate) fn parse(p: &PluginConfig) -> (Option<Exchange>, PluginConfig, Vec<ConfigError>) {
        let (keys, rest) = p.split_off(&Self::KEYS);
        let (config, mut errs) = keys.parse_all::<ExchangeConfig>();
        let exchange = config.and_then(|c| c.check(p).map_err(|e| errs.extend(e)).ok());
        (exchange, rest, errs)
    }

    /// Checks the keys; errors name the offending key.
    pub(crate) fn check(&self, p: &PluginConfig) -> Result<Exchange, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let uri = match self.url.parse::<AMQPUri>() {
            _ if self.url.is_empty() => {
                errs.push(p.error("url", "required, e.g. amqp://guest:guest@127.0.0.1:5672/"));
                None
            }
            Ok(mut u) => {
                // As Heka's AMQP library: `amqp://host/` means the default vhost "/".
                if u.vhost.is_empty() {
                    u.vhost = "/".into();
                }
                Some(u)
            }
            Err(e) => {
                errs.push(p.error("url", format!("{e}: {:?}", redact(&self.url))));
                None
            }
        };
        let tls = uri
            .as_ref()
            .and_then(|u| self.tls_for(p, &u.scheme, &mut errs));
        if self.exchange.is_empty() {
            errs.push(p.error("exchange", "required"));
        }
        let kind = match self.exchange_type {
            Some(t) => Some(t.kind()),
            None => {
                errs.push(p.error(
                    "exchange_type",
                    "required: direct, fanout, topic or headers",
                ));
                None
            }
        };
        match (uri, kind) {
            (Some(uri), Some(kind)) if errs.is_empty() => Ok(Exchange {
                uri,
                display_url: redact(&self.url),
                name: self.exchange.clone(),
                kind,
                durable: self.exchange_durability,
                auto_delete: self.exchange_auto_delete,
                routing_key: self.routing_key.clone(),
                tls,
            }),
            _ => Err(errs),
        }
    }

    /// The client TLS of an `amqps://` URL. `[name.tls]` with `amqp://` is an error: the
    /// user asked for TLS, and the URL would send the password in clear.
    fn tls_for(
        &self,
        p: &PluginConfig,
        scheme: &AMQPScheme,
        errs: &mut Vec<ConfigError>,
    ) -> Option<ClientTls> {
        match (scheme, &self.tls) {
            (AMQPScheme::AMQP, None) => None,
            (AMQPScheme::AMQP, Some(_)) => {
                errs.push(p.error(
                    "tls",
                    "set, but url is amqp://, which does not use TLS; use amqps://",
                ));
                None
            }
            (AMQPScheme::AMQPS, c) => {
                let c = c.clone().unwrap_or_default();
                crate::tls::client_for(p, true, &c)
                    .map_err(|e| errs.push(e))
                    .ok()
                    .flatten()
            }
        }
    }
}

/// Why talking to the broker failed; the lapin error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The broker refused or dropped the connection.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not answer in time.
    #[error("cannot connect to {url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL, password redacted.
        url: String,
        /// How long hekate waited.
        timeout: std::time::Duration,
    },
    /// A protocol step (channel, declare, bind, consume, ack...) failed.
    #[error("{what}")]
    Step {
        /// The step, in words.
        what: String,
        /// What lapin said.
        #[source]
        source: lapin::Error,
    },
}

impl AmqpError {
    /// A failed protocol step.
    pub fn step(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> AmqpError {
        let what = what.into();
        move |source| AmqpError::Step { what, source }
    }
}

impl Exchange {
    /// Connects within [`CONNECT_TIMEOUT`]. Must run inside a tokio runtime.
    pub(crate) async fn connect(&self, name: &str) -> Result<Connection, AmqpError> {
        let props =
            ConnectionProperties::default().with_connection_name(format!("hekate {name}").into());
        let attempt = async {
            match &self.tls {
                None => Connection::connect_uri(self.uri.clone(), props).await,
                Some(tls) => connect_tls(self.uri.clone(), tls.clone(), props).await,
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(AmqpError::Connect {
                url: self.display_url.clone(),
                source,
            }),
            Err(_) => Err(AmqpError::Timeout {
                url: self.display_url.clone(),
                timeout: CONNECT_TIMEOUT,
            }),
        }
    }

    /// Declares the exchange with the configured type and flags.
    pub(crate) async fn declare(&self, ch: &Channel) -> Result<(), AmqpError> {
        let opts = ExchangeDeclareOptions {
            durable: self.durable,
            auto_delete: self.auto_delete,
            ..Default::default()
        };
        ch.exchange_declare(
            self.name.as_str().into(),
            self.kind.clone(),
            opts,
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::step(format!(
            "cannot declare exchange {:?}",
            self.name
        )))
    }
}

/// Connects over TLS with `tls`'s current rustls config (re-read after a rotation), and
/// verifies `server_name` or else the URL's host.
async fn connect_tls(
    uri: AMQPUri,
    tls: ClientTls,
    props: ConnectionProperties,
) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri, runtime| {
            let host = uri.authority.host.clone();
            let addrs = runtime.to_socket_addrs((host.clone(), uri.authority.port));
            let plain = AsyncTcpStream::connect(&runtime, addrs).await?;
            let connector = RustlsConnector::from(tls.config());
            let mut stream = plain.into_rustls(&connector, tls.name_for(&host)).await?;
            await_refusal(&mut stream).await?;
            Ok(stream)
        },
        props,
    )
    .await
}

/// How long a new AMQPS connection listens for a refusal before it speaks.
const REFUSAL_WAIT: Duration = Duration::from_millis(100);

/// A TLS 1.3 server refuses a client certificate (a missing one, or one from a CA it does
/// not trust) after the handshake has completed on the client's side. Its alert would be
/// lost: the client's first write gets the reset the closed socket sends back. A broker
/// never speaks before the AMQP protocol header, so anything that arrives within
/// [`REFUSAL_WAIT`] is a refusal, which is returned with its reason.
async fn await_refusal<S: futures_lite::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<()> {
    use futures_lite::AsyncReadExt;
    use std::io::{Error, ErrorKind};
    let mut byte = [0u8; 1];
    match tokio::time::timeout(REFUSAL_WAIT, stream.read(&mut byte)).await {
        Err(_elapsed) => Ok(()),
        Ok(Err(refused)) => Err(refused),
        Ok(Ok(0)) => Err(Error::new(
            ErrorKind::UnexpectedEof,
            "the broker closed the connection after the TLS handshake",
        )),
        Ok(Ok(_)) => Err(Error::new(
            ErrorKind::InvalidData,
            "the broker sent data before the AMQP protocol header",
        )),
    }
}

/// `amqp://user:secret@host/` → `amqp://user:***@host/`, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Exponential reconnect backoff: `min` doubling up to `max`, reset after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    /// A backoff from `min` to `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
            not_before: None,
        }
    }

    /// After a failure: the wait before the next attempt (and it is remembered).
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        self.not_before = Some(Instant::now() + wait);
        wait
    }

    /// After a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
        self.not_before = None;
    }

    /// True when the wait after the last failure is over.
    pub(crate) fn ready(&self) -> bool {
        self.not_before.is_none_or(|t| Instant::now() >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::plugin_config;

    fn check(url: &str, exchange: &str, exchange_type: &str) -> Result<Exchange, Vec<ConfigError>> {
        #[derive(serde::Deserialize)]
        struct Keys {
            exchange_type: Option<ExchangeType>,
        }
        let toml = match exchange_type {
            "" => String::new(),
            t => format!("exchange_type = '{t}'"),
        };
        let p = plugin_config("AMQPOutput", &toml);
        let (keys, mut errs) = p.parse_all::<Keys>();
        let c = ExchangeConfig {
            url: url.into(),
            exchange: exchange.into(),
            exchange_type: keys.and_then(|k| k.exchange_type),
            ..ExchangeConfig::default()
        };
        match c.check(&p) {
            Ok(x) if errs.is_empty() => Ok(x),
            Ok(_) => Err(errs),
            Err(e) => Err(errs.drain(..).chain(e).collect()),
        }
    }

    #[test]
    fn requires_url_exchange_and_type() {
        let errs = check("", "", "").expect_err("errors");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["url", "exchange", "exchange_type"]);
        let ok = check("amqp://guest:guest@127.0.0.1:5672/", "x", "topic").expect("valid");
        assert_eq!(ok.kind, ExchangeKind::Topic);
        assert!(ok.auto_delete && !ok.durable);
        assert_eq!(ok.display_url, "amqp://guest:***@127.0.0.1:5672/");
        assert_eq!(ok.uri.vhost, "/");
        let named = check("amqp://h/prod", "x", "direct").expect("valid");
        assert_eq!(named.uri.vhost, "prod");
    }

    #[test]
    fn rejects_unknown_types() {
        let errs = check("amqp://h/", "x", "fan").expect_err("errors");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["exchange_type", "exchange_type"]);
        assert!(errs[0].message.contains("`fanout`"), "{}", errs[0].message);
    }

    #[test]
    fn amqps_uses_tls_and_tls_needs_amqps() {
        let ok = check("amqps://h/", "x", "topic").expect("valid");
        assert!(
            ok.tls.is_some(),
            "amqps:// without [tls] uses the web roots"
        );
        assert_eq!(ok.uri.authority.port, 5671);
        assert!(check("amqp://h/", "x", "topic")
            .expect("valid")
            .tls
            .is_none());
        let p = plugin_config("AMQPOutput", "");
        let c = ExchangeConfig {
            url: "amqp://h/".into(),
            exchange: "x".into(),
            exchange_type: Some(ExchangeType::Topic),
            tls: Some(TlsConfig::default()),
            ..ExchangeConfig::default()
        };
        let errs = c.check(&p).expect_err("tls with amqp://");
        assert_eq!(errs[0].key, "tls");
        let c = ExchangeConfig {
            url: "amqps://h/".into(),
            tls: Some(TlsConfig {
                root_cafile: "/nonexistent/ca.pem".into(),
                ..TlsConfig::default()
            }),
            ..c
        };
        let errs = c.check(&p).expect_err("missing CA file");
        assert_eq!(errs[0].key, "tls.root_cafile");
    }

    /// A reader that never has anything: a broker waiting for the protocol header.
    struct Silent;

    impl futures_lite::AsyncRead for Silent {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_after_the_handshake_is_read_before_speaking() {
        assert!(
            await_refusal(&mut Silent).await.is_ok(),
            "silence is acceptance"
        );
        let closed = await_refusal(&mut futures_lite::io::empty()).await;
        assert_eq!(
            closed.expect_err("eof").kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        let early = await_refusal(&mut futures_lite::io::Cursor::new(b"AMQP")).await;
        assert_eq!(
            early.expect_err("data").kind(),
            std::io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("amqp://u:p@h:1/v"), "amqp://u:***@h:1/v");
        assert_eq!(redact("amqp://h:1/v"), "amqp://h:1/v");
        assert_eq!(redact("amqp://u@h/"), "amqp://u@h/");
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
        assert!(b.ready());
        assert_eq!(b.failed(), Duration::from_millis(100));
        assert!(!b.ready());
        assert_eq!(b.failed(), Duration::from_millis(200));
        assert_eq!(b.failed(), Duration::from_millis(300));
        assert_eq!(b.failed(), Duration::from_millis(300));
        b.reset();
        assert!(b.ready());
        assert_eq!(b.failed(), Duration::from_millis(100));
    }
}
