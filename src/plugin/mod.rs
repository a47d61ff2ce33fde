//! The plugin layer: everything a plugin may know of the engine. One trait per kind, the
//! static [`Registration`] descriptor each plugin file exports, the contexts runners hand
//! to plugins ([`InputContext`] and its [`RecordStream`], [`FilterContext`],
//! [`OutputContext`], [`BuildContext`]), the errors that cross the boundary ([`Closed`],
//! [`Refused`], `ProcessError`), the [`Shutdown`] handle and the [`Spawner`] trait.
//!
//! The engine (`pipeline`) implements this layer; plugins (`inputs`, `splitters`,
//! `decoders`, `filters`, `encoders`, `outputs`) import it and the kits, never `pipeline`
//! and never another plugin kind (`tests/layering` checks the sources).
//!
//! May import: `config`, `error`, `message`, `stats`, `buffer`; never `pipeline` or a
//! plugin folder.
//!
//! Runners own the loops (`pipeline`); plugins implement hooks. Inputs are the exception:
//! they own an async loop because they wait on the outside world. Splitters, decoders and
//! encoders are *recipes*: a section builds a factory, and each input stream or output
//! gets its own instance, because they keep state.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::config::{Globals, PluginConfig};
use crate::error::{BoxError, ConfigError, DecodeError, ProcessError};
use crate::message::reclaim::Pool;
use crate::message::{Message, Pack};
use crate::stats::{PluginStats, Report};

pub mod channel;
mod input;
pub mod shutdown;
pub mod spawn;
#[cfg(test)]
pub(crate) mod testing;

pub use channel::{Closed, Refused};
pub use input::{InputContext, RecordStream};
pub use shutdown::Shutdown;
pub use spawn::{SpawnError, Spawner};

/// A boxed future, as returned by [`Input::run`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a plugin file exports: its `type = "..."` name, a one-line description for
/// `hekate plugins`, its build function and the common-key defaults it changes.
pub struct Registration<B: 'static> {
    /// The type name users write, e.g. `UdpInput`.
    pub name: &'static str,
    /// One line for `hekate plugins`.
    pub description: &'static str,
    /// Turns a config section into the plugin (or its factory).
    pub build: B,
    /// Plugin-specific defaults for common keys.
    pub defaults: Defaults,
    /// Keys of this plugin's section that name another section; the builder checks
    /// every one of them (all errors at once), so plugins that meet through a named
    /// section (`StatsdInput`/`StatFilter` → `StatAccumInput`) need no special case.
    pub references: &'static [Reference],
}

/// A key that names another section of a given type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The key, e.g. `stat_accum_name`.
    pub key: &'static str,
    /// The name used when the section does not set the key; `""` makes the reference
    /// optional (checked only when set).
    pub default: &'static str,
    /// The type the named section must have, e.g. `StatAccumInput`.
    pub type_name: &'static str,
}

/// Plugin-specific defaults for common keys (Heka lets each plugin override them).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Inputs: splitter when none is configured (Heka: `NullSplitter`).
    pub splitter: &'static str,
    /// Inputs: decoder when none is configured.
    pub decoder: Option<&'static str>,
    /// Outputs: encoder when none is configured.
    pub encoder: Option<&'static str>,
    /// Filters/outputs: matcher when none is configured (Heka: matches nothing).
    pub message_matcher: Option<&'static str>,
    /// Filters/outputs: `can_exit` when not configured.
    pub can_exit: bool,
    /// Inputs/filters/outputs: `ticker_interval` when not configured.
    pub ticker_interval: Option<u64>,
    /// Inputs: stop only after the filters have drained, because filters feed this input
    /// (e.g. `StatFilter` → `StatAccumInput`), so its final flush sees everything.
    pub stop_after_filters: bool,
    /// Inputs: false for inputs that build messages themselves and never use the
    /// splitter/decoder path (`hekate check` then does not list one).
    pub uses_records: bool,
}

impl Defaults {
    /// Heka's defaults with another default encoder (outputs).
    pub const fn encoder(name: &'static str) -> Defaults {
        Defaults {
            encoder: Some(name),
            ..Defaults::HEKA
        }
    }

    /// Heka's defaults for inputs that read Heka's stream: `HekaFramingSplitter` and
    /// `ProtobufDecoder` (`TcpInput`, `AMQPInput`).
    pub const FRAMED_PROTOBUF: Defaults = Defaults {
        splitter: "HekaFramingSplitter",
        decoder: Some("ProtobufDecoder"),
        ..Defaults::HEKA
    };

    /// Heka's defaults.
    pub const HEKA: Defaults = Defaults {
        splitter: "NullSplitter",
        decoder: None,
        encoder: None,
        message_matcher: None,
        can_exit: false,
        ticker_interval: None,
        stop_after_filters: false,
        uses_records: true,
    };
}

/// Build function of an input.
pub type BuildInput = fn(&PluginConfig, &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>>;
/// Build function of a splitter recipe.
pub type BuildSplitter =
    fn(&PluginConfig, &BuildContext) -> Result<SplitterFactory, Vec<ConfigError>>;
/// Build function of a decoder recipe.
pub type BuildDecoder =
    fn(&PluginConfig, &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>>;
/// Build function of a filter.
pub type BuildFilter =
    fn(&PluginConfig, &BuildContext) -> Result<Box<dyn Filter>, Vec<ConfigError>>;
/// Build function of an encoder recipe.
pub type BuildEncoder =
    fn(&PluginConfig, &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>>;
/// Build function of an output.
pub type BuildOutput =
    fn(&PluginConfig, &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>>;

/// Makes a fresh splitter per stream.
pub type SplitterFactory = Arc<dyn Fn() -> Box<dyn Splitter> + Send + Sync>;
/// Makes a fresh decoder per stream.
pub type DecoderFactory = Arc<dyn Fn() -> Box<dyn Decoder> + Send + Sync>;
/// Makes a fresh encoder per output.
pub type EncoderFactory = Arc<dyn Fn() -> Box<dyn Encoder> + Send + Sync>;

/// Pulls data from the outside world. The only plugin kind that owns its loop.
///
/// `run` returns when `cx.shutdown()` fires (clean stop) or on a failure, which the
/// supervisor answers with the `[name.retries]` policy.
pub trait Input: Send {
    /// Runs until shutdown or failure.
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>>;
}

/// The result of looking for one record at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// No complete record yet: keep the bytes and read more.
    NeedMore,
    /// A record at `buf[start..end]`; the first `consumed` bytes may be discarded.
    Record {
        /// Bytes to discard, including the record and any framing around it.
        consumed: usize,
        /// Start of the record.
        start: usize,
        /// End of the record (exclusive).
        end: usize,
    },
    /// The first `n` bytes are garbage (e.g. a bad frame header); discard and count them.
    Skip(usize),
}

/// Cuts a byte stream into records (Heka `Splitter.FindRecord`).
pub trait Splitter: Send {
    /// Looks for one record at the start of `buf`.
    fn find_record(&mut self, buf: &[u8]) -> Split;
    /// The verified signer of the record the last `find_record` returned (Heka's
    /// `pack.Signer`, set by `HekaFramingSplitter`); `message_signer` matches on it.
    fn signer(&self) -> Option<&str> {
        None
    }
}

/// One step of [`SplitWalk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A record.
    Record(&'a [u8]),
    /// Bytes the splitter skipped as garbage.
    Skipped(&'a [u8]),
    /// Bytes of a record the splitter placed outside the buffer (a splitter bug): dropped.
    Invalid(&'a [u8]),
}

/// Walks a buffer with a splitter the way an input's [`RecordStream`] does: records and
/// skipped bytes in order, until the splitter needs more bytes or the buffer is used up.
/// Shared by the record stream, the tests' split helpers and the fuzz targets.
#[derive(Debug)]
pub struct SplitWalk<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SplitWalk<'a> {
    /// A walk from the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        SplitWalk { data, pos: 0 }
    }

    /// The next piece, or `None` when `s` needs more bytes or nothing is left.
    pub fn next(&mut self, s: &mut dyn Splitter) -> Option<Piece<'a>> {
        let rest = self.data.get(self.pos..).filter(|r| !r.is_empty())?;
        match s.find_record(rest) {
            Split::NeedMore => None,
            Split::Skip(n) => Some(Piece::Skipped(self.take(rest, n))),
            Split::Record {
                consumed,
                start,
                end,
            } => match rest.get(start..end) {
                Some(record) => {
                    self.take(rest, consumed);
                    Some(Piece::Record(record))
                }
                None => Some(Piece::Invalid(self.take(rest, consumed))),
            },
        }
    }

    /// Bytes used so far; the rest waits for more input.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Moves past `n` bytes of `rest` (at least one, at most all).
    fn take(&mut self, rest: &'a [u8], n: usize) -> &'a [u8] {
        let n = n.clamp(1, rest.len());
        self.pos += n;
        &rest[..n]
    }
}

/// Turns one record into zero or more messages (Heka `Decoder.Decode`).
pub trait Decoder: Send {
    /// Decodes `record` into `out`: [`Decoded::start`] gives a copy of what the input
    /// stamped (Uuid, Timestamp, Logger, Hostname) to override with what the record
    /// defines. On `Err` whatever was started for this record is discarded.
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError>;
}

/// Where a [`Decoder`] puts the messages it makes from one record.
///
/// Inputs decode through `pipeline::input::RecordStream`, which reuses the allocations of
/// messages the outputs have finished with (`message::reclaim`): a message from
/// [`Decoded::start`] may come with spare capacity in its payload and field list, so fill
/// strings in place ([`Message::set_payload`], `push_str`) rather than replacing them.
pub struct Decoded<'a> {
    base: &'a Message,
    out: &'a mut Vec<Pack>,
    pool: &'a mut Pool,
}

impl<'a> Decoded<'a> {
    /// Messages go to `out` as packs, copies of `base` made in `pool`'s spare allocations.
    pub fn new(base: &'a Message, out: &'a mut Vec<Pack>, pool: &'a mut Pool) -> Self {
        Decoded { base, out, pool }
    }

    /// What the input stamped on the record.
    pub fn base(&self) -> &'a Message {
        self.base
    }

    /// Starts a new message, a copy of the base, and returns it to fill in.
    pub fn start(&mut self) -> &mut Message {
        let i = self.out.len();
        self.out.push(self.pool.start(self.base));
        // The pack was made here and shared with nobody: this never copies.
        Arc::make_mut(&mut self.out[i].msg)
    }

    /// Adds a message built whole.
    pub fn push(&mut self, msg: Message) {
        self.out.push(self.pool.pack(msg));
    }

    /// Messages made so far (by every decoder of this record).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True when no message was made yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Drops the messages made after the first `n` (a `MultiDecoder` sub that failed
    /// half-way leaves nothing behind).
    pub fn truncate(&mut self, n: usize) {
        self.out.truncate(n);
    }
}

/// A decoder section's factory, published by name for decoders built on others
/// (`MultiDecoder`): [`BuildContext::decoder`].
#[derive(Default)]
pub struct DecoderSlot(std::sync::Mutex<Option<DecoderFactory>>);

impl DecoderSlot {
    fn key(name: &str) -> String {
        format!("decoder\u{0}{name}")
    }
}

/// Runs `decoder` on one record outside any input, appending what it makes to `out`
/// (tests and tools; inputs decode through `pipeline::input::RecordStream`).
pub fn decode_into(
    decoder: &mut dyn Decoder,
    record: &[u8],
    base: &Message,
    out: &mut Vec<Message>,
) -> Result<(), DecodeError> {
    let (mut packs, mut pool) = (Vec::new(), Pool::new(0));
    decoder.decode(record, &mut Decoded::new(base, &mut packs, &mut pool))?;
    out.extend(packs.into_iter().map(|p| Arc::unwrap_or_clone(p.msg)));
    Ok(())
}

/// Turns a message into bytes for an output (Heka `Encoder.Encode`).
pub trait Encoder: Send {
    /// Appends the encoding of `msg` to `out`. `Err(ProcessError::Drop)` means "no output".
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError>;
    /// Called once when its output stops cleanly (after the final flush): persist
    /// state here.
    fn stop(&mut self) {}
}

/// A message processor fed by the router; runs on its own OS thread.
pub trait Filter: Send {
    /// Handles one matched message.
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError>;
    /// Called once on the filter's thread before the first message, and again after each
    /// restart. `cx.spawner()` is available here (dynamic filters).
    fn start(&mut self, _cx: &mut FilterContext<'_>) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Called every `ticker_interval` seconds, and once more at shutdown when
    /// [`Filter::timer_event_on_shutdown`] says so.
    fn timer_event(
        &mut self,
        _now_ns: i64,
        _cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Whether the runner gives the filter (if it has a ticker) a last `timer_event` at
    /// shutdown. Native filters: yes; `SandboxFilter`: its `timer_event_on_shutdown` key.
    fn timer_event_on_shutdown(&self) -> bool {
        true
    }
    /// Called once when the filter stops for good (clean shutdown): persist state here.
    fn stop(&mut self) {}
}

/// A sink fed by the router; runs on its own OS thread.
pub trait Output: Send {
    /// Handles one matched message. `Retry` makes the runner back off and offer the same
    /// message again; meanwhile the queue fills and its `full_action` applies.
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError>;
    /// Called every `ticker_interval` seconds.
    fn timer_event(
        &mut self,
        _now_ns: i64,
        _cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Makes buffered data durable. Called when the queue runs empty, on each tick and at
    /// shutdown; `Retry` is retried like a message.
    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Reopens files and connections (SIGHUP).
    fn reopen(&mut self) -> Result<(), ProcessError> {
        Ok(())
    }
    /// Called once at a clean stop, after the final flush: a last `timer_event`,
    /// persisted state. Not called when the output is replaced by a reload.
    fn stop(&mut self, _cx: &mut OutputContext<'_>) {}
}

/// What every build function receives.
#[derive(Clone)]
pub struct BuildContext {
    /// The `[hekad]` globals.
    pub globals: Arc<Globals>,
    /// Folder of the config (relative script paths resolve here).
    pub config_dir: PathBuf,
    /// The report registry, for plugin-specific counters.
    pub report: Report,
    /// True when the pipeline is built only to be checked (`hekate check`): plugins
    /// validate everything but skip side effects such as binding a port.
    pub check_only: bool,
    shared: Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

impl BuildContext {
    /// A context for the given globals and config folder.
    pub fn new(globals: Arc<Globals>, config_dir: PathBuf, report: Report) -> Self {
        BuildContext {
            globals,
            config_dir,
            report,
            check_only: false,
            shared: Default::default(),
        }
    }

    /// A process-wide object shared by plugins that meet under one `key` (for example a
    /// `StatsdInput` handing stats to the `StatAccumInput` named by `stat_accum_name`).
    /// The first caller creates it with `T::default()`. `None` if the key already holds
    /// another type.
    pub fn shared<T: Any + Send + Sync + Default>(&self, key: &str) -> Option<Arc<T>> {
        let mut map = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(T::default()));
        entry.clone().downcast::<T>().ok()
    }

    /// The factory of the decoder section `name`, once built (the engine builds a
    /// `MultiDecoder` after its subs).
    pub fn decoder(&self, name: &str) -> Option<DecoderFactory> {
        let slot = self.shared::<DecoderSlot>(&DecoderSlot::key(name))?;
        let guard = slot.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    /// Publishes the factory of the decoder section `name` (the engine, as it builds it).
    pub fn publish_decoder(&self, name: &str, factory: DecoderFactory) {
        if let Some(slot) = self.shared::<DecoderSlot>(&DecoderSlot::key(name)) {
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(factory);
        }
    }

    /// Resolves a path the way Heka resolves `base_dir`-relative state paths.
    pub fn base_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.globals.base_dir.join(p)
        }
    }
}

/// What a filter sees during a call: its name, the globals and a way to inject.
pub struct FilterContext<'a> {
    /// The filter's instance name (the Logger of what it injects).
    pub name: &'a str,
    /// The `[hekad]` globals.
    pub globals: &'a Globals,
    /// The filter's counters.
    pub stats: &'a PluginStats,
    pub(crate) injected: &'a mut Vec<Message>,
    spawner: Option<&'a Arc<dyn Spawner>>,
}

impl<'a> FilterContext<'a> {
    /// A context that collects injected messages into `injected` (used by runners and tests).
    pub fn new(
        name: &'a str,
        globals: &'a Globals,
        stats: &'a PluginStats,
        injected: &'a mut Vec<Message>,
    ) -> Self {
        FilterContext {
            name,
            globals,
            stats,
            injected,
            spawner: None,
        }
    }

    /// Lends the engine's [`Spawner`].
    pub fn with_spawner(mut self, spawner: Option<&'a Arc<dyn Spawner>>) -> Self {
        self.spawner = spawner;
        self
    }

    /// Starts and stops filters at runtime; `None` outside a running pipeline.
    pub fn spawner(&self) -> Option<&'a Arc<dyn Spawner>> {
        self.spawner
    }

    /// Queues a message for the router. Unset Uuid, Timestamp, Logger and Hostname are
    /// filled in by the runner after the call; the loop count is the runner's business.
    pub fn inject(&mut self, msg: Message) {
        self.injected.push(msg);
    }

    /// Messages injected so far during this call.
    pub fn injected_count(&self) -> usize {
        self.injected.len()
    }
}

/// What an output sees during a call: its name, counters and its encoder.
pub struct OutputContext<'a> {
    /// The output's instance name.
    pub name: &'a str,
    /// The `[hekad]` globals.
    pub globals: &'a Globals,
    /// The output's counters.
    pub stats: &'a PluginStats,
    pub(crate) encoder: Option<&'a mut (dyn Encoder + 'static)>,
    pub(crate) use_framing: bool,
    pub(crate) signer: Option<&'a crate::message::framing::SignerConfig>,
    pub(crate) buf: &'a mut Vec<u8>,
    pub(crate) frame_buf: &'a mut Vec<u8>,
}

impl<'a> OutputContext<'a> {
    /// A context with an optional encoder (used by runners and tests).
    pub fn new(
        name: &'a str,
        globals: &'a Globals,
        stats: &'a PluginStats,
        encoder: Option<&'a mut (dyn Encoder + 'static)>,
        use_framing: bool,
        buf: &'a mut Vec<u8>,
        frame_buf: &'a mut Vec<u8>,
    ) -> Self {
        OutputContext {
            name,
            globals,
            stats,
            encoder,
            use_framing,
            signer: None,
            buf,
            frame_buf,
        }
    }

    /// True when an encoder is configured.
    pub fn has_encoder(&self) -> bool {
        self.encoder.is_some()
    }

    /// Encodes `msg` with the configured encoder, adding Heka framing when `use_framing`.
    /// Without an encoder this is an error: outputs that need one say so at build time.
    pub fn encode(&mut self, msg: &Message) -> Result<&[u8], ProcessError> {
        let enc = self
            .encoder
            .as_deref_mut()
            .ok_or_else(|| ProcessError::Drop("no encoder configured".into()))?;
        self.buf.clear();
        enc.encode(msg, self.buf)?;
        if !self.use_framing {
            return Ok(self.buf.as_slice());
        }
        self.frame_buf.clear();
        match self.signer {
            Some(s) => crate::message::framing::write_signed_frame(self.buf, s, self.frame_buf),
            None => crate::message::framing::write_frame(self.buf, self.frame_buf),
        }
        Ok(self.frame_buf.as_slice())
    }

    /// Signs the frames this context writes (an output's `[name.signer]`).
    pub(crate) fn with_signer(
        mut self,
        signer: Option<&'a crate::message::framing::SignerConfig>,
    ) -> Self {
        self.signer = signer;
        self
    }

    /// Like [`OutputContext::encode`] but appends the encoding to `out`, the output's own
    /// write buffer, sparing a copy. On error `out` is left as it was.
    pub fn encode_into(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        if self.use_framing {
            let framed = self.encode(msg)?;
            out.extend_from_slice(framed);
            return Ok(());
        }
        let enc = self
            .encoder
            .as_deref_mut()
            .ok_or_else(|| ProcessError::Drop("no encoder configured".into()))?;
        let mark = out.len();
        enc.encode(msg, out).inspect_err(|_| out.truncate(mark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a script, one per call.
    struct Scripted(Vec<Split>);

    impl Splitter for Scripted {
        fn find_record(&mut self, _buf: &[u8]) -> Split {
            if self.0.is_empty() {
                Split::NeedMore
            } else {
                self.0.remove(0)
            }
        }
    }

    fn walk(answers: Vec<Split>, data: &[u8]) -> (Vec<Piece<'_>>, usize) {
        let mut s = Scripted(answers);
        let mut w = SplitWalk::new(data);
        let pieces = std::iter::from_fn(|| w.next(&mut s)).collect();
        (pieces, w.consumed())
    }

    #[test]
    fn walks_records_and_skips_until_more_is_needed() {
        let record = Split::Record {
            consumed: 3,
            start: 0,
            end: 2,
        };
        let (pieces, used) = walk(vec![record, Split::Skip(1)], b"ab\nxyz");
        assert_eq!(pieces, [Piece::Record(b"ab"), Piece::Skipped(b"x")]);
        assert_eq!(used, 4, "the rest waits for more input");
    }

    #[test]
    fn a_splitter_bug_cannot_run_past_the_buffer() {
        let (pieces, used) = walk(vec![Split::Skip(99)], b"abc");
        assert_eq!((pieces, used), (vec![Piece::Skipped(b"abc")], 3));
        let outside = Split::Record {
            consumed: 2,
            start: 1,
            end: 9,
        };
        let (pieces, used) = walk(vec![outside], b"abc");
        assert_eq!((pieces, used), (vec![Piece::Invalid(b"ab")], 2));
        let (pieces, _) = walk(vec![Split::Skip(0)], b"abc");
        assert_eq!(pieces, [Piece::Skipped(b"a")], "always moves on");
    }
}
