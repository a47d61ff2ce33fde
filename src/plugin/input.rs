//! What an input sees: [`InputContext`] (name, globals, counters, shutdown, delivery) and
//! [`RecordStream`], the splitter → decoder → router path for one byte stream.
//!
//! Each connection, datagram source or file an input reads gets its own `RecordStream`,
//! because splitters and decoders keep state. A stream batches the messages one `feed`
//! produces into a single router send, so the cost of the bounded router channel is paid
//! per read, not per message. Bad records (oversize, undecodable, invalid UTF-8 without a
//! decoder, garbage between frames) are counted on the input's stats, logged at most once
//! per burst, and skipped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::{CommonInput, CommonSplitter, Globals};
use crate::error::DecodeError;
use crate::message::reclaim::{Pool, Reclaim};
use crate::message::{now_ns, CompactString, Field, Message, Pack, UuidGen};
use crate::plugin::channel::{Closed, Refused, RouterSender};
use crate::plugin::shutdown::Shutdown;
use crate::plugin::{Decoded, DecoderFactory, Piece, SplitWalk, Splitter, SplitterFactory};
use crate::stats::PluginStats;

/// Longest `decode_error` text, as Heka.
const MAX_DECODE_ERROR_LEN: usize = 500;

/// Most spare message allocations a stream keeps for reuse (`message::reclaim::Pool`).
const SPARE_MESSAGES: usize = 1024;

/// Everything an input needs, handed to [`crate::plugin::Input::run`].
#[derive(Clone)]
pub struct InputContext {
    pub(crate) name: Arc<str>,
    pub(crate) globals: Arc<Globals>,
    pub(crate) stats: Arc<PluginStats>,
    pub(crate) shutdown: Shutdown,
    pub(crate) router: RouterSender,
    pub(crate) splitter: SplitterFactory,
    pub(crate) splitter_common: CommonSplitter,
    pub(crate) decoder: Option<DecoderFactory>,
    pub(crate) common: CommonInput,
    pub(crate) ticker_interval: Option<u64>,
    /// Where this pipeline's outputs hand spent messages back for reuse.
    pub(crate) reclaim: Arc<Reclaim>,
    /// Some filter or output of this pipeline has a disk buffer (`use_buffering`).
    pub(crate) buffered: bool,
    /// Woken whenever a disk buffer of this pipeline has written a batch.
    pub(crate) spooled: Arc<tokio::sync::Notify>,
}

impl InputContext {
    /// The input's instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether some filter or output of this pipeline has a disk buffer. An input that
    /// acknowledges its sources then waits for its delivery token (the buffers hold the
    /// message) rather than for the router.
    pub fn buffered(&self) -> bool {
        self.buffered
    }

    /// Woken whenever one of this pipeline's disk buffers has written a batch, so an
    /// input waiting on delivery tokens looks again without polling.
    pub fn spooled(&self) -> &tokio::sync::Notify {
        &self.spooled
    }

    /// The `[hekad]` globals.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }

    /// True when the section names a splitter or a decoder itself (not just the type's
    /// defaults): inputs that build their own messages may then run their output
    /// through the record path instead (`ProcessInput`, as Heka).
    pub fn has_record_path(&self) -> bool {
        let named = |o: &Option<String>| o.as_deref().is_some_and(|n| !n.is_empty());
        named(&self.common.splitter) || named(&self.common.decoder)
    }

    /// The input's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// A handle that resolves when hekate shuts down.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// `ticker_interval` in seconds, as configured or the plugin default.
    pub fn ticker_interval(&self) -> Option<u64> {
        self.ticker_interval
    }

    /// A ticker every `ticker_interval` seconds (`default` when not configured), with
    /// the period in seconds. It first fires after one period, or at once when
    /// `immediate`. A late tick is delayed, never bunched. A zero interval is an error.
    pub fn ticker(
        &self,
        default: u64,
        immediate: bool,
    ) -> Result<(u64, tokio::time::Interval), crate::error::BoxError> {
        let secs = self.ticker_interval.unwrap_or(default);
        if secs == 0 {
            return Err("ticker_interval must be greater than 0".into());
        }
        let period = Duration::from_secs(secs);
        let now = tokio::time::Instant::now();
        let start = if immediate { now } else { now + period };
        let mut ticker = tokio::time::interval_at(start, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok((secs, ticker))
    }

    /// A new splitter → decoder → router path for one byte stream.
    pub fn stream(&self) -> RecordStream {
        let mut base = Message {
            logger: self.name.as_ref().into(),
            ..Message::default()
        };
        base.hostname = self.globals.hostname.as_str().into();
        self.stamp_host_id(&mut base);
        RecordStream {
            splitter: (self.splitter)(),
            decoder: self.decoder.as_ref().map(|f| f()),
            buf: Vec::with_capacity(self.splitter_common.min_buffer_size),
            base,
            batch: Vec::new(),
            pool: Pool::new(SPARE_MESSAGES),
            garbage_bytes: self.stats.counter("garbage_bytes"),
            last_sent: Weak::new(),
            bad_records: 0,
            records: 0,
            uuids: UuidGen::new(),
            cx: self.clone(),
        }
    }

    /// Sends a message the input built itself. Unset Uuid, Timestamp, Logger and Hostname
    /// are stamped here. Waits while the router is back-pressured.
    pub async fn deliver(&self, msg: Message) -> Result<(), Closed> {
        self.deliver_batch(vec![msg]).await
    }

    /// Sends several messages in one router send.
    pub async fn deliver_batch(&self, msgs: Vec<Message>) -> Result<(), Closed> {
        let packs: Vec<Pack> = msgs.into_iter().map(|m| Pack::new(self.stamp(m))).collect();
        let n = packs.len() as u64;
        self.router.send(packs).await?;
        PluginStats::add(&self.stats.processed, n);
        Ok(())
    }

    fn stamp(&self, mut m: Message) -> Message {
        if m.uuid == [0; 16] {
            m.uuid = *uuid::Uuid::new_v4().as_bytes();
        }
        if m.timestamp == 0 {
            m.timestamp = now_ns();
        }
        if m.logger.is_empty() {
            m.logger = self.name.as_ref().into();
        }
        if m.hostname.is_empty() {
            m.hostname = self.globals.hostname.as_str().into();
        }
        self.stamp_host_id(&mut m);
        m
    }

    /// Adds `[hekad] host_id_field` (this host's identity) unless the message has it.
    fn stamp_host_id(&self, m: &mut Message) {
        let field = self.globals.host_id_field.as_str();
        if !field.is_empty() && m.field(field, 0).is_none() {
            m.add_field(crate::message::Field::string(
                field,
                self.globals.host_id.as_str(),
            ));
        }
    }
}

/// The splitter → decoder → router path for one byte stream (a connection, a file, a
/// datagram source).
pub struct RecordStream {
    splitter: Box<dyn Splitter>,
    decoder: Option<Box<dyn crate::plugin::Decoder>>,
    buf: Vec<u8>,
    base: Message,
    batch: Vec<Pack>,
    /// Spare message allocations handed back by outputs (`message::reclaim`).
    pool: Pool,
    /// Bytes the splitter skipped as garbage (the input's `garbage_bytes`).
    garbage_bytes: Arc<std::sync::atomic::AtomicU64>,
    last_sent: Weak<Message>,
    bad_records: u64,
    /// Complete records split from the stream (each is sent or counted bad once the
    /// `feed` that split it returns).
    records: u64,
    uuids: UuidGen,
    cx: InputContext,
}

impl RecordStream {
    /// Sets the Hostname stamped on this stream's messages (e.g. the peer address).
    pub fn set_hostname(&mut self, hostname: impl Into<CompactString>) {
        self.base.hostname = hostname.into();
    }

    /// Sets the Type stamped on this stream's messages before decoding.
    pub fn set_type(&mut self, msg_type: impl Into<CompactString>) {
        self.base.msg_type = msg_type.into();
    }

    /// Sets the Logger stamped on this stream's messages (default: the input's name).
    pub fn set_logger(&mut self, logger: impl Into<CompactString>) {
        self.base.logger = logger.into();
    }

    /// The message template of this stream: what the input stamps on every message before
    /// decoding (Type, Logger, Hostname, Severity, Fields...). Decoders clone it, so fields
    /// set here reach every decoded message. Uuid is set per record, Timestamp per read (the receive time).
    pub fn base_mut(&mut self) -> &mut Message {
        &mut self.base
    }

    /// Queues one message made of the template alone (empty Payload), bypassing the
    /// splitter and decoder: for inputs where an empty body still means something, such as
    /// an HTTP request whose query parameters are the data.
    pub fn push_empty(&mut self) {
        let mut m = self.base.clone();
        m.uuid = *uuid::Uuid::new_v4().as_bytes();
        m.timestamp = now_ns();
        self.batch.push(Pack::new(m));
    }

    /// Records this stream counted as bad (dropped, undecodable) since it was created.
    pub fn bad_records(&self) -> u64 {
        self.bad_records
    }

    /// Complete records taken from the stream so far: once the `feed` that split them has
    /// returned `Ok`, each was sent to the router or counted as bad (`require_ack`
    /// acknowledges this count).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes held back because they do not form a complete record yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes from the stream; complete records are decoded and sent to the router.
    pub async fn feed(&mut self, data: &[u8]) -> Result<(), Closed> {
        if self.buf.is_empty() {
            let used = self.split_from(data);
            self.buf.extend_from_slice(&data[used..]);
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.split_from(&buf);
            self.buf = buf;
            self.buf.drain(..used);
        }
        self.check_oversize();
        self.flush().await
    }

    /// Feeds one datagram: its records are processed and any remainder is treated as the
    /// end of the stream.
    pub async fn feed_datagram(&mut self, data: &[u8]) -> Result<(), Closed> {
        self.push_datagram(data);
        self.flush().await
    }

    /// Like [`RecordStream::feed_datagram`] but keeps the decoded messages for the next
    /// [`RecordStream::flush`], so a burst of datagrams costs one router send.
    pub fn push_datagram(&mut self, data: &[u8]) {
        let used = self.split_from(data);
        self.end_of_stream(&data[used..]);
    }

    /// A handle on the last message this stream sent. Once it no longer upgrades, the
    /// router and every filter and output have let go of it, and (queues being FIFO) of
    /// everything the stream sent before: inputs use this to checkpoint only what the
    /// pipeline has taken in. Never upgrades when nothing was sent yet.
    pub fn delivery_token(&self) -> Weak<Message> {
        self.last_sent.clone()
    }

    /// Messages decoded and not yet sent.
    pub fn batched(&self) -> usize {
        self.batch.len()
    }

    /// Signals the end of the stream: a trailing partial record is delivered when the
    /// splitter's `deliver_incomplete_final` is set, otherwise counted as dropped.
    pub async fn finish(&mut self) -> Result<(), Closed> {
        let rest = std::mem::take(&mut self.buf);
        self.end_of_stream(&rest);
        self.flush().await
    }

    /// Sends what this stream has decoded so far.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // The next batch starts with room for as many: a steady stream never regrows it.
        let room = Vec::with_capacity(self.batch.len());
        let batch = std::mem::replace(&mut self.batch, room);
        let n = batch.len() as u64;
        if let Some(last) = batch.last() {
            self.last_sent = Arc::downgrade(&last.msg);
        }
        self.cx.router.send(batch).await?;
        PluginStats::add(&self.cx.stats.processed, n);
        Ok(())
    }

    /// Sends what this stream has decoded so far if the router takes it within `wait`,
    /// never waiting longer. The batch is one router send, so it is accepted whole or not
    /// at all: on [`Refused::Full`] the batch is discarded (nothing of it was sent; the
    /// caller reports the refusal upstream, e.g. an HTTP 503, and counts it). Returns the
    /// number of messages sent.
    pub async fn flush_within(&mut self, wait: Duration) -> Result<usize, Refused> {
        if self.batch.is_empty() {
            return Ok(0);
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len();
        let last = batch.last().map(|p| Arc::downgrade(&p.msg));
        self.cx.router.send_within(batch, wait).await?;
        if let Some(last) = last {
            self.last_sent = last;
        }
        PluginStats::add(&self.cx.stats.processed, n as u64);
        Ok(n)
    }

    /// Splits every complete record out of `data`, returning the bytes consumed. Records
    /// that arrived in one read share one receive Timestamp (one clock read per read, not
    /// per record); decoders that find a time in the record replace it.
    fn split_from(&mut self, data: &[u8]) -> usize {
        self.cx.reclaim.collect(&mut self.pool);
        self.base.timestamp = now_ns();
        let mut walk = SplitWalk::new(data);
        while let Some(piece) = walk.next(&mut *self.splitter) {
            match piece {
                Piece::Skipped(bytes) | Piece::Invalid(bytes) => self.garbage(bytes),
                Piece::Record(record) => {
                    self.records += 1;
                    let mark = self.batch.len();
                    self.record(record);
                    if let Some(signer) = self.splitter.signer() {
                        let signer: Arc<str> = Arc::from(signer);
                        for p in &mut self.batch[mark..] {
                            p.signer = Some(signer.clone());
                        }
                    }
                }
            }
        }
        walk.consumed()
    }

    fn end_of_stream(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            return;
        }
        if self.cx.splitter_common.deliver_incomplete_final {
            self.record(rest);
        } else {
            self.bad_record("incomplete record at end of stream dropped");
        }
    }

    /// Drops (or truncates, with `keep_truncated`) a partial record that already exceeds
    /// the largest record allowed.
    fn check_oversize(&mut self) {
        let max = self.cx.globals.max_record_size();
        if self.buf.len() <= max {
            return;
        }
        if self.cx.splitter_common.keep_truncated {
            let head = self.buf[..max].to_vec();
            self.record(&head);
        } else {
            self.bad_record("record larger than max_message_size dropped");
        }
        self.buf.clear();
    }

    fn record(&mut self, rec: &[u8]) {
        if rec.len() > self.cx.globals.max_message_size as usize {
            return self.bad_record("record larger than max_message_size dropped");
        }
        self.base.uuid = self.uuids.next_uuid();
        let mark = self.batch.len();
        let mut out = Decoded::new(&self.base, &mut self.batch, &mut self.pool);
        let result = match self.decoder.as_mut() {
            Some(d) => d.decode(rec, &mut out),
            None => payload_message(rec, &mut out),
        };
        if let Err(e) = result {
            self.batch.truncate(mark);
            self.decode_failure(rec, e);
        }
    }

    fn decode_failure(&mut self, rec: &[u8], e: DecodeError) {
        self.bad_records += 1;
        PluginStats::add(&self.cx.stats.decode_failures, 1);
        if self.cx.common.log_decode_failures {
            let example = escaped_head(rec);
            match self.cx.stats.log_check("decode_failure") {
                Some(suppressed) => tracing::warn!(error = %e, record = %example, suppressed,
                    "Decode failure; record skipped (further ones in the next 10 s are counted in decode_failures, shown at debug)."),
                None => {
                    tracing::debug!(error = %e, record = %example, "Decode failure; record skipped.")
                }
            }
        }
        if self.cx.common.send_decode_failures {
            let mut m = self.base.clone();
            m.payload = String::from_utf8_lossy(rec).into_owned();
            let mut reason = e.0;
            truncate_utf8(&mut reason, MAX_DECODE_ERROR_LEN);
            m.add_field(Field::boolean("decode_failure", true));
            m.add_field(Field::string("decode_error", reason));
            self.batch.push(Pack::new(m));
        }
    }

    fn bad_record(&mut self, what: &'static str) {
        self.bad_records += 1;
        PluginStats::add(&self.cx.stats.dropped, 1);
        match self.cx.stats.log_check(what) {
            Some(suppressed) => tracing::warn!(suppressed, "{what}"),
            None => tracing::debug!("{what}"),
        }
    }

    /// Bytes the splitter skipped (not a record): counted in `garbage_bytes`, logged
    /// once per 10 s per plugin with an example.
    fn garbage(&mut self, bytes: &[u8]) {
        PluginStats::add(&self.garbage_bytes, bytes.len() as u64);
        let example = escaped_head(bytes);
        match self.cx.stats.log_check("garbage") {
            Some(suppressed) => tracing::warn!(bytes = bytes.len(), first = %example, suppressed,
                "Garbage skipped while looking for a record (counted in garbage_bytes; details at debug)."),
            None => tracing::debug!(bytes = bytes.len(), first = %example, "Garbage skipped."),
        }
    }
}

/// A record with no decoder becomes the Payload; it must be valid UTF-8.
fn payload_message(rec: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
    let payload = simdutf8::compat::from_utf8(rec)
        .map_err(|e| DecodeError::new(format!("invalid UTF-8 in record: {e}")))?;
    out.start().set_payload(payload);
    Ok(())
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The first 32 bytes of `b`, with non-printable bytes escaped, for log examples.
fn escaped_head(b: &[u8]) -> String {
    let head = &b[..b.len().min(32)];
    let mut s: String = head.escape_ascii().to_string();
    if b.len() > head.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::channel::RouterEvent;

    fn context(capacity: usize) -> (InputContext, tokio::sync::mpsc::Receiver<RouterEvent>) {
        let (cx, rx, _trigger) = crate::plugin::testing::input_context_with(
            "test_input",
            Globals::default(),
            None,
            capacity,
        );
        (cx, rx)
    }

    #[tokio::test]
    async fn flush_within_refuses_a_full_router_whole_and_sends_once_there_is_room() {
        let (cx, mut rx) = context(1);
        let mut s = cx.stream();
        s.push_datagram(b"first");
        assert_eq!(s.flush_within(Duration::ZERO).await, Ok(1));
        // The channel holds one batch: the next one is refused without waiting...
        s.push_datagram(b"second");
        s.push_empty();
        assert_eq!(s.flush_within(Duration::ZERO).await, Err(Refused::Full));
        // ...and with a bounded wait, refused once the wait is over.
        s.push_datagram(b"third");
        let t = std::time::Instant::now();
        assert_eq!(
            s.flush_within(Duration::from_millis(50)).await,
            Err(Refused::Full)
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(s.batched(), 0, "a refused batch is discarded, not kept");
        assert_eq!(
            cx.stats
                .processed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let Some(RouterEvent::Batch(b)) = rx.recv().await else {
            panic!("first batch")
        };
        assert_eq!(b[0].msg.payload, "first");
        s.push_datagram(b"fourth");
        s.push_empty();
        assert_eq!(s.flush_within(Duration::ZERO).await, Ok(2));
        let Some(RouterEvent::Batch(b)) = rx.recv().await else {
            panic!("second batch")
        };
        let payloads: Vec<&str> = b.iter().map(|p| p.msg.payload.as_str()).collect();
        assert_eq!(payloads, ["fourth", ""], "refused messages never arrive");
        drop(rx);
        s.push_datagram(b"late");
        assert_eq!(s.flush_within(Duration::ZERO).await, Err(Refused::Closed));
    }

    #[tokio::test]
    async fn bad_records_are_counted_per_stream() {
        let (cx, _rx) = context(4);
        let mut s = cx.stream();
        s.push_datagram(&[0xff, 0xfe]);
        assert_eq!(s.bad_records(), 1);
        assert_eq!(s.batched(), 0);
    }
}
