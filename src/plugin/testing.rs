//! Test helpers for plugin unit tests of every kind: build a `PluginConfig` from inline
//! TOML, drive a splitter the way `RecordStream` does, run a real `RecordStream` into a
//! channel, and a payload-only encoder.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Category, Globals, PluginConfig};
use crate::error::ProcessError;
use crate::message::Message;
use crate::plugin::Encoder;
use crate::plugin::{BuildContext, Split, Splitter};
use crate::stats::Report;

/// A plugin section of type `type_name` holding the keys in `toml`.
pub(crate) fn plugin_config(type_name: &str, toml: &str) -> PluginConfig {
    named_plugin_config(&format!("test_{type_name}"), type_name, toml)
}

/// A plugin section `[name]` of type `type_name` holding the keys in `toml`.
pub(crate) fn named_plugin_config(name: &str, type_name: &str, toml: &str) -> PluginConfig {
    PluginConfig {
        name: name.to_string(),
        type_name: type_name.to_string(),
        category: Category::from_type_name(type_name).expect("known category suffix"),
        file: PathBuf::from("test.toml"),
        table: toml.parse().expect("valid TOML in test"),
    }
}

/// A build context with default globals.
pub(crate) fn build_context() -> BuildContext {
    BuildContext::new(
        Arc::new(Globals::default()),
        PathBuf::from("."),
        Report::default(),
    )
}

/// A build context whose `base_dir` is `base` (for plugins that keep state there).
pub(crate) fn build_context_in(base: &std::path::Path) -> BuildContext {
    let globals = Globals {
        base_dir: base.to_path_buf(),
        ..Globals::default()
    };
    BuildContext::new(Arc::new(globals), PathBuf::from("."), Report::default())
}

/// What splitting a buffer produced.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcome {
    /// Records in order.
    pub records: Vec<Vec<u8>>,
    /// Number of `Skip` results.
    pub skips: usize,
    /// Bytes left over (an incomplete record).
    pub rest: Vec<u8>,
}

/// Splits `data` fed in chunks of `chunk` bytes, buffering like `RecordStream::feed`.
pub(crate) fn split_chunked(s: &mut dyn Splitter, data: &[u8], chunk: usize) -> Outcome {
    let mut out = Outcome::default();
    let mut buf = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        let mut walk = crate::plugin::SplitWalk::new(&buf);
        while let Some(p) = walk.next(s) {
            match p {
                crate::plugin::Piece::Record(r) => out.records.push(r.to_vec()),
                crate::plugin::Piece::Skipped(_) => out.skips += 1,
                crate::plugin::Piece::Invalid(b) => panic!("record outside the buffer: {b:?}"),
            }
        }
        let used = walk.consumed();
        buf.drain(..used);
    }
    out.rest = buf;
    out
}

/// Splits `data` in one piece.
pub(crate) fn split_all(s: &mut dyn Splitter, data: &[u8]) -> Outcome {
    split_chunked(s, data, data.len())
}

/// The build function of the registered splitter `type_name` (tests that pair a decoder
/// with another kind's plugin go through the registry, not that plugin's module).
pub(crate) fn registered_splitter(type_name: &str) -> crate::plugin::BuildSplitter {
    crate::registry::find(crate::registry::SPLITTERS, type_name)
        .map(|r| r.build)
        .expect("splitter is registered")
}

/// The build function of a registered decoder type (tests of decoders built on others).
pub(crate) fn registered_decoder(type_name: &str) -> crate::plugin::BuildDecoder {
    crate::registry::find(crate::registry::DECODERS, type_name)
        .map(|r| r.build)
        .expect("decoder is registered")
}

/// A real `RecordStream` using `splitter` and `decoder`, and the router end it sends to.
pub(crate) fn record_stream(
    splitter: crate::plugin::SplitterFactory,
    decoder: Option<crate::plugin::DecoderFactory>,
) -> (
    crate::plugin::RecordStream,
    tokio::sync::mpsc::Receiver<crate::plugin::channel::RouterEvent>,
    Arc<crate::stats::PluginStats>,
) {
    let (router, rx) = crate::plugin::channel::router_channel(1024);
    let (_trigger, shutdown) = crate::plugin::shutdown::channel();
    let stats = Arc::new(crate::stats::PluginStats::default());
    let cx = crate::plugin::InputContext {
        name: "test_input".into(),
        globals: Arc::new(Globals::default()),
        stats: stats.clone(),
        shutdown,
        router,
        splitter,
        splitter_common: Default::default(),
        decoder,
        common: Default::default(),
        ticker_interval: None,
        reclaim: Default::default(),
        buffered: false,
        spooled: Default::default(),
    };
    (cx.stream(), rx, stats)
}

/// Every message the router end has received so far.
pub(crate) fn received(
    rx: &mut tokio::sync::mpsc::Receiver<crate::plugin::channel::RouterEvent>,
) -> Vec<crate::message::Message> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let crate::plugin::channel::RouterEvent::Batch(b) = ev {
            out.extend(b.into_iter().map(|p| (*p.msg).clone()));
        }
    }
    out
}

/// Writes the Payload alone, followed by a newline when `newline` is set.
pub(crate) struct PayloadOnly {
    pub(crate) newline: bool,
}

impl Encoder for PayloadOnly {
    fn encode(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        out.extend_from_slice(m.payload.as_bytes());
        if self.newline {
            out.push(b'\n');
        }
        Ok(())
    }
}

/// One record per buffer, like `NullSplitter`.
struct Whole;
impl Splitter for Whole {
    fn find_record(&mut self, buf: &[u8]) -> Split {
        Split::Record {
            consumed: buf.len(),
            start: 0,
            end: buf.len(),
        }
    }
}

/// A context for an input called `name`, its router receiver (64 batches) and shutdown
/// trigger.
pub(crate) fn input_context(
    name: &str,
    globals: Globals,
    ticker_interval: Option<u64>,
) -> (
    crate::plugin::InputContext,
    tokio::sync::mpsc::Receiver<crate::plugin::channel::RouterEvent>,
    crate::plugin::shutdown::ShutdownTrigger,
) {
    input_context_with(name, globals, ticker_interval, 64)
}

/// Like [`input_context`], with a router channel of `capacity` batches.
pub(crate) fn input_context_with(
    name: &str,
    globals: Globals,
    ticker_interval: Option<u64>,
    capacity: usize,
) -> (
    crate::plugin::InputContext,
    tokio::sync::mpsc::Receiver<crate::plugin::channel::RouterEvent>,
    crate::plugin::shutdown::ShutdownTrigger,
) {
    let (router, rx) = crate::plugin::channel::router_channel(capacity);
    let (trigger, shutdown) = crate::plugin::shutdown::channel();
    let cx = crate::plugin::InputContext {
        name: name.into(),
        globals: Arc::new(globals),
        stats: Arc::new(crate::stats::PluginStats::default()),
        shutdown,
        router,
        splitter: Arc::new(|| Box::new(Whole) as Box<dyn Splitter>),
        splitter_common: crate::config::CommonSplitter::default(),
        decoder: None,
        common: crate::config::CommonInput::default(),
        ticker_interval,
        reclaim: Default::default(),
        buffered: false,
        spooled: Default::default(),
    };
    (cx, rx, trigger)
}

/// The key of the first error a build function returned (it must fail).
pub(crate) fn first_error_key<T>(built: Result<T, Vec<crate::error::ConfigError>>) -> String {
    match built {
        Ok(_) => panic!("the build was expected to fail"),
        Err(errors) => errors[0].key.clone(),
    }
}

/// Owns what an `OutputContext` borrows (globals, counters, scratch buffers), for output
/// unit tests that call an output directly.
#[derive(Default)]
pub(crate) struct OutputHarness {
    pub globals: Globals,
    pub stats: crate::stats::PluginStats,
    buf: Vec<u8>,
    frame: Vec<u8>,
}

impl OutputHarness {
    /// A context named `name`, without an encoder.
    pub(crate) fn cx<'a>(&'a mut self, name: &'a str) -> crate::plugin::OutputContext<'a> {
        let (b, f) = (&mut self.buf, &mut self.frame);
        crate::plugin::OutputContext::new(name, &self.globals, &self.stats, None, false, b, f)
    }
}
