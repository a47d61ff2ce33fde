//! The keys every plugin of a category shares (Heka's `CommonInputConfig`,
//! `CommonFOConfig`, `CommonSplitterConfig`), the restart policy `[name.retries]` and the
//! queue policy `[name.buffering]`. `load` takes these out of each section before the
//! plugin sees the rest.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A plugin category, derived from the type name's suffix as Heka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// `...Input`
    Input,
    /// `...Splitter`
    Splitter,
    /// `...Decoder`
    Decoder,
    /// `...Filter`
    Filter,
    /// `...Encoder`
    Encoder,
    /// `...Output`
    Output,
}

impl Category {
    /// The category of a type name by its suffix, or `None` (Heka: "Unrecognized plugin category").
    pub fn from_type_name(t: &str) -> Option<Category> {
        [
            ("Input", Category::Input),
            ("Splitter", Category::Splitter),
            ("Decoder", Category::Decoder),
            ("Filter", Category::Filter),
            ("Encoder", Category::Encoder),
            ("Output", Category::Output),
        ]
        .into_iter()
        .find(|(suffix, _)| t.ends_with(suffix) && t.len() > suffix.len())
        .map(|(_, c)| c)
    }

    /// The category's name as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Input => "Input",
            Category::Splitter => "Splitter",
            Category::Decoder => "Decoder",
            Category::Filter => "Filter",
            Category::Encoder => "Encoder",
            Category::Output => "Output",
        }
    }
}

/// Keys common to every input.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct CommonInput {
    /// Decoder section to run records through; none means the record becomes the Payload.
    pub decoder: Option<String>,
    /// Splitter section that cuts the byte stream into records (plugin default otherwise).
    pub splitter: Option<String>,
    /// Forward records that fail to decode, flagged with `decode_failure`/`decode_error` fields.
    pub send_decode_failures: bool,
    /// Log decode failures (once per burst; always counted). Default true.
    #[serde(default = "yes")]
    pub log_decode_failures: bool,
    /// Accepted for compatibility: hekate always decodes on the input's own task.
    pub synchronous_decode: bool,
    /// If false (default), this input stopping for good stops hekate.
    pub can_exit: bool,
    /// Seconds between polls or flushes, for inputs that tick.
    pub ticker_interval: Option<u64>,
    /// Restart policy.
    pub retries: Retries,
    /// `[name.signer.<signer>_<version>] hmac_key` written on the input, as Heka's docs
    /// show for TcpInput and UdpInput: read as the keys of the input's own
    /// `HekaFramingSplitter`.
    pub signer: Option<toml::Table>,
}

/// Keys common to every filter and output.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct CommonFo {
    /// Which messages reach this plugin; empty matches nothing (Heka).
    pub message_matcher: Option<String>,
    /// Only messages an input verified as signed by this signer (`HekaFramingSplitter`
    /// signer keys) reach this plugin. Default: any.
    pub message_signer: Option<String>,
    /// Seconds between `timer_event` calls; 0 = none.
    pub ticker_interval: Option<u64>,
    /// Outputs with Heka framing (hekate): sign every frame as Heka's client library and
    /// `heka-sbmgr` do, with `[name.signer]` `name`, `hmac_hash` (`md5` or `sha1`),
    /// `hmac_key` and `version`. Default: unsigned.
    pub signer: Option<crate::message::framing::SignerConfig>,
    /// Outputs: encoder section that turns messages into bytes.
    pub encoder: Option<String>,
    /// Outputs: wrap encoded bytes in Heka stream framing.
    pub use_framing: Option<bool>,
    /// If false, this plugin failing for good stops hekate. Plugin default otherwise.
    pub can_exit: Option<bool>,
    /// Restart policy.
    pub retries: Retries,
    /// Queue policy between the router and this plugin.
    pub buffering: Buffering,
    /// Put Heka's disk buffer between the router and this plugin.
    pub use_buffering: bool,
}

/// Keys common to every splitter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct CommonSplitter {
    /// Deliver the head of an over-long record instead of dropping it.
    pub keep_truncated: bool,
    /// Accepted for compatibility (records always go to the decoder as bytes).
    pub use_message_bytes: bool,
    /// Initial read buffer size in bytes.
    pub min_buffer_size: usize,
    /// At end of stream, deliver a trailing record that has no terminator.
    pub deliver_incomplete_final: bool,
}

impl Default for CommonSplitter {
    fn default() -> Self {
        CommonSplitter {
            keep_truncated: false,
            use_message_bytes: false,
            min_buffer_size: 8 * 1024,
            deliver_incomplete_final: false,
        }
    }
}

/// `[name.retries]`: how a failed plugin is restarted (Heka's retry helper).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Retries {
    /// Random jitter added to each delay. Default "500ms".
    #[serde(deserialize_with = "de_duration")]
    pub max_jitter: Duration,
    /// First delay; it doubles after each attempt. Default "250ms".
    #[serde(deserialize_with = "de_duration")]
    pub delay: Duration,
    /// Cap on the delay. Default "30s".
    #[serde(deserialize_with = "de_duration")]
    pub max_delay: Duration,
    /// Attempts before giving up; -1 retries forever, 0 never retries. Default -1.
    pub max_retries: i64,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max_jitter: Duration::from_millis(500),
            delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_retries: -1,
        }
    }
}

impl Retries {
    /// The wait before attempt `attempt` (1-based), without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.delay.saturating_mul(factor).min(self.max_delay)
    }

    /// True while `attempt` (1-based) is allowed by `max_retries`.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_retries < 0 || i64::from(attempt) <= self.max_retries
    }
}

/// What the router does when a plugin's queue is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FullAction {
    /// Wait for room: back-pressure reaches the router and, through it, the inputs.
    #[default]
    Block,
    /// Drop the message for this plugin only, and count it.
    Drop,
    /// Stop hekate cleanly (Heka's default for buffered outputs).
    Shutdown,
}

/// When a disk buffer forces its appends to stable storage.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// At most `fsync_interval` ms after an append (default).
    #[default]
    Interval,
    /// After every append.
    Always,
    /// Never explicitly; the OS writes back when it likes.
    Never,
}

/// `[name.buffering]`: the queue between the router and one filter or output. Without
/// `use_buffering` it is a queue in memory, sized in messages by `queue_size`; with it,
/// Heka's disk buffer, sized in bytes by `max_buffer_size`. A disk key without
/// `use_buffering` is an error, so no config is read with the other meaning.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Buffering {
    /// The memory queue's capacity in messages; 0 (default) means `plugin_chansize` ×
    /// 256 (7,680). With `use_buffering` it is the small staging queue before the disk.
    pub queue_size: usize,
    /// Disk buffer: total bytes of its segment files (Heka's meaning); 0 = unlimited.
    pub max_buffer_size: Option<u64>,
    /// Disk buffer: segment roll size in bytes; default 512 MiB (0 = the default).
    pub max_file_size: Option<u64>,
    /// When full: the memory queue's default is "block"; the disk buffer's, as Heka's,
    /// "shutdown".
    pub full_action: Option<FullAction>,
    /// Disk buffer: acknowledgements between ledger writes; default 1.
    pub cursor_update_count: Option<u64>,
    /// Disk buffer: fsync policy; default "interval".
    pub fsync: Option<FsyncPolicy>,
    /// Disk buffer: milliseconds between fsyncs under "interval"; default 1000.
    pub fsync_interval: Option<u64>,
}

impl Buffering {
    /// The full action in effect.
    pub fn action(&self, disk: bool) -> FullAction {
        self.full_action.unwrap_or(if disk {
            FullAction::Shutdown
        } else {
            FullAction::Block
        })
    }

    /// Disk keys that are set (errors without `use_buffering`).
    pub fn disk_keys_set(&self) -> Vec<&'static str> {
        [
            ("max_buffer_size", self.max_buffer_size.is_some()),
            ("max_file_size", self.max_file_size.is_some()),
            ("cursor_update_count", self.cursor_update_count.is_some()),
            ("fsync", self.fsync.is_some()),
            ("fsync_interval", self.fsync_interval.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect()
    }
}

fn yes() -> bool {
    true
}

/// Deserializes a Go-style duration string (`"250ms"`, `"1m30s"`) or a number of seconds.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

/// Parses a Go duration: a sequence of `<number><unit>` with units ns, us, µs, ms, s, m, h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. \"250ms\", \"1m30s\")");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// A listener address as Heka accepted it: `ip:port`, `host:port` (the name resolved now,
/// its first IPv4 address, else its first) or `:port` (every interface, `0.0.0.0`).
pub fn listen_address(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    let addrs: Vec<std::net::SocketAddr> = full
        .to_socket_addrs()
        .map_err(|e| format!("expected ip:port, host:port or :port, got {s:?}: {e}"))?
        .collect();
    // IPv4 first, as Go's resolver (and so Heka) picks for "localhost".
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_addresses_as_heka_wrote_them() {
        assert_eq!(
            listen_address("127.0.0.1:5565").map(|a| a.to_string()),
            Ok("127.0.0.1:5565".into())
        );
        assert_eq!(
            listen_address(":5565").map(|a| a.to_string()),
            Ok("0.0.0.0:5565".into())
        );
        assert!(listen_address("localhost:5599")
            .is_ok_and(|a| a.ip().is_loopback() && a.port() == 5599));
        assert_eq!(listen_address("[::1]:80").map(|a| a.port()), Ok(80));
        assert!(listen_address("5565").is_err());
        assert!(listen_address("no-such-host.invalid:1").is_err());
    }

    #[test]
    fn category_from_suffix() {
        assert_eq!(Category::from_type_name("UdpInput"), Some(Category::Input));
        assert_eq!(
            Category::from_type_name("HekaFramingSplitter"),
            Some(Category::Splitter)
        );
        assert_eq!(Category::from_type_name("Input"), None);
        assert_eq!(Category::from_type_name("Whatever"), None);
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = Retries::default();
        assert_eq!(r.backoff(1), Duration::from_millis(250));
        assert_eq!(r.backoff(3), Duration::from_secs(1));
        assert_eq!(r.backoff(40), Duration::from_secs(30));
        assert!(r.allows(1_000_000));
        let never = Retries {
            max_retries: 0,
            ..Retries::default()
        };
        assert!(!never.allows(1));
    }
}
