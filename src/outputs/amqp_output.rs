//! `AMQPOutput`: publishes each message to an AMQP 0-9-1 exchange (RabbitMQ), by default
//! as Heka-framed protobuf so an `AMQPInput` on another hekate (or Heka) reads it
//! natively. Run by the output runner on its own thread; lapin runs on a one-worker tokio
//! runtime the output owns.
//!
//! Delivery is confirmed: the channel is in publisher-confirm mode and a message counts as
//! sent only once the broker acks it. Up to `max_in_flight` messages await their confirm;
//! publishing does not wait for the previous message to reach the socket, so publishes
//! pipeline and lapin writes many frames at once. A nacked message, or every unconfirmed
//! one when the connection drops, is published again before anything new (at least
//! once: a broker restart can cause duplicates, never silent loss). While the broker is
//! unreachable the output answers `Retry`, so messages wait in its queue under
//! `full_action`, and it reconnects with backoff.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_lite::future::poll_once;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde::Deserialize;

use crate::amqp::{AmqpError, Backoff, Exchange, ExchangeConfig};
use crate::config::PluginConfig;
use crate::error::{Chain, ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// How long the output waits for one confirm before it treats the connection as broken.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing the connection may take when the output stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Configuration of `AMQPOutput`, besides the exchange keys of
/// [`ExchangeConfig`] (`url`, `exchange`, `exchange_type`, `exchange_durability`,
/// `exchange_auto_delete`, `routing_key`: of every message here).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AmqpOutputConfig {
    /// Publish with delivery mode 2 (the broker writes the message to disk in a durable
    /// queue). Default false.
    pub persistent: bool,
    /// `content_type` message property. Default `application/hekad`.
    pub content_type: String,
    /// Most published messages awaiting their broker confirm. Default 1024.
    pub max_in_flight: usize,
}

impl Default for AmqpOutputConfig {
    fn default() -> Self {
        AmqpOutputConfig {
            persistent: false,
            content_type: "application/hekad".into(),
            max_in_flight: 1024,
        }
    }
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "AMQPOutput",
    description: "Publish messages to an AMQP exchange (RabbitMQ) with publisher confirms.",
    build,
    defaults: Defaults::encoder("ProtobufEncoder"),
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let (exchange, rest, mut errs) = ExchangeConfig::parse(p);
    let (c, more) = rest.parse_all::<AmqpOutputConfig>();
    errs.extend(more);
    let Some(c) = c else {
        return Err(errs);
    };
    if c.max_in_flight == 0 {
        errs.push(p.error("max_in_flight", "must be at least 1"));
    }
    let Some(exchange) = exchange.filter(|_| errs.is_empty()) else {
        return Err(errs);
    };
    Ok(Box::new(AmqpOutput {
        name: p.name.clone(),
        exchange,
        persistent: c.persistent,
        content_type: c.content_type,
        max_in_flight: c.max_in_flight,
        rt: None,
        link: None,
        in_flight: VecDeque::new(),
        resend: VecDeque::new(),
        backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5)),
        log: LogLimiter::default(),
        counters: None,
        connected_before: false,
    }))
}

/// The running output.
pub struct AmqpOutput {
    name: String,
    exchange: Exchange,
    persistent: bool,
    content_type: String,
    max_in_flight: usize,
    /// Created on first use, so `hekate check` starts no threads.
    rt: Option<tokio::runtime::Runtime>,
    link: Option<Link>,
    /// Published, awaiting the broker's confirm (oldest first).
    in_flight: VecDeque<InFlight>,
    /// Nacked or unconfirmed when the connection dropped: published again first.
    resend: VecDeque<Bytes>,
    backoff: Backoff,
    log: LogLimiter,
    counters: Option<Counters>,
    /// Whether a connection was ever made (to tell reconnects from the first connect).
    connected_before: bool,
}

struct Link {
    conn: Connection,
    channel: Channel,
}

/// What becomes of one publish: its frames are written, then the broker confirms it.
type Outcome = Pin<Box<dyn Future<Output = lapin::Result<Confirmation>> + Send>>;

/// One published message, from the moment its frames were queued until its confirm.
struct InFlight {
    outcome: Outcome,
    /// Kept to publish again after a nack or a lost connection.
    body: Bytes,
}

/// Plugin-specific counters, bound to the runner's stats on first use.
struct Counters {
    confirmed: Arc<AtomicU64>,
    nacked: Arc<AtomicU64>,
    republished: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    connect_failures: Arc<AtomicU64>,
    unconfirmed_lost: Arc<AtomicU64>,
}

impl Counters {
    fn bind(stats: &PluginStats) -> Self {
        Counters {
            confirmed: stats.counter("confirmed"),
            nacked: stats.counter("nacked"),
            republished: stats.counter("republished"),
            reconnects: stats.counter("reconnects"),
            connect_failures: stats.counter("connect_failures"),
            unconfirmed_lost: stats.counter("unconfirmed_lost"),
        }
    }
}

/// What became of one confirm.
enum Settled {
    Acked,
    Nacked,
    Broken(String),
}

impl Output for AmqpOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        self.bind(cx.stats);
        let body = cx.encode(&pack.msg)?.to_vec();
        self.ensure_link()?;
        self.publish_resend()?;
        self.publish(body, false)?;
        self.reap(false)?;
        while self.in_flight.len() >= self.max_in_flight {
            self.settle_oldest()?;
        }
        Ok(())
    }

    /// Waits until every published message is confirmed; republishes nacked ones.
    fn flush(&mut self, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.bind(cx.stats);
        if self.in_flight.is_empty() && self.resend.is_empty() {
            return Ok(());
        }
        self.ensure_link()?;
        self.publish_resend()?;
        while !self.in_flight.is_empty() {
            self.settle_oldest()?;
        }
        if self.resend.is_empty() {
            Ok(())
        } else {
            Err(ProcessError::retry(format!(
                "{} message(s) nacked by the broker; publishing them again",
                self.resend.len()
            )))
        }
    }
}

impl AmqpOutput {
    fn bind(&mut self, stats: &PluginStats) {
        if self.counters.is_none() {
            self.counters = Some(Counters::bind(stats));
        }
    }

    fn count(&self, pick: impl Fn(&Counters) -> &Arc<AtomicU64>, n: u64) {
        if let Some(c) = &self.counters {
            PluginStats::add(pick(c), n);
        }
    }

    fn block_on<F: Future>(&mut self, f: F) -> Result<F::Output, ProcessError> {
        if self.rt.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("amqp-output")
                .enable_all()
                .build()
                .map_err(|e| ProcessError::fatal(format!("cannot start the AMQP runtime: {e}")))?;
            self.rt = Some(rt);
        }
        match &self.rt {
            Some(rt) => Ok(rt.block_on(f)),
            None => Err(ProcessError::fatal("no AMQP runtime")),
        }
    }

    /// Connects (respecting the backoff) unless connected.
    fn ensure_link(&mut self) -> Result<(), ProcessError> {
        if self
            .link
            .as_ref()
            .is_some_and(|l| l.channel.status().connected())
        {
            return Ok(());
        }
        if self.link.take().is_some() {
            self.lose_in_flight();
        }
        if !self.backoff.ready() {
            return Err(ProcessError::retry(format!(
                "broker {} unreachable; waiting before reconnecting",
                self.exchange.display_url
            )));
        }
        let (x, name) = (self.exchange.clone(), self.name.clone());
        match self.block_on(open_link(x, name))? {
            Ok(link) => {
                if self.connected_before {
                    self.count(|c| &c.reconnects, 1);
                    tracing::info!(url = %self.exchange.display_url, "Reconnected to the AMQP broker.");
                } else {
                    tracing::info!(url = %self.exchange.display_url, exchange = %self.exchange.name, "Publishing to AMQP.");
                }
                self.connected_before = true;
                self.backoff.reset();
                self.link = Some(link);
                Ok(())
            }
            Err(e) => {
                self.count(|c| &c.connect_failures, 1);
                let wait = self.backoff.failed();
                if let Some(suppressed) = self.log.check() {
                    tracing::warn!(error = %Chain(&e), suppressed, retry_in = ?wait, "AMQP connect failed; messages wait in the queue.");
                }
                Err(ProcessError::retry(e))
            }
        }
    }

    /// The connection broke: every unconfirmed message goes to the resend list, oldest
    /// first, ahead of earlier resends that were never published again.
    fn lose_in_flight(&mut self) {
        let mut lost: VecDeque<Bytes> = self.in_flight.drain(..).map(|f| f.body).collect();
        lost.append(&mut self.resend);
        self.resend = lost;
        self.link = None;
    }

    fn broken(&mut self, why: String) -> ProcessError {
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(error = %why, suppressed, unconfirmed = self.in_flight.len(), "AMQP connection lost; unconfirmed messages will be published again.");
        }
        self.lose_in_flight();
        self.backoff.failed();
        ProcessError::retry(why)
    }

    fn publish_resend(&mut self) -> Result<(), ProcessError> {
        while let Some(body) = self.resend.pop_front() {
            self.publish(body, true)?;
            self.count(|c| &c.republished, 1);
            while self.in_flight.len() >= self.max_in_flight {
                self.settle_oldest()?;
            }
        }
        Ok(())
    }

    /// Publishes one body. On failure it goes back to `resend` when it came from there
    /// (`resent`); otherwise the runner still holds the message and offers it again.
    ///
    /// The publish is polled once here: that takes its delivery tag and queues its
    /// frames with lapin's writer, in order. The write and the confirm are awaited later
    /// by [`Self::reap`], so the next message is published without waiting for this
    /// one to reach the socket.
    fn publish(&mut self, body: impl Into<Bytes>, resent: bool) -> Result<(), ProcessError> {
        let Some(link) = &self.link else {
            return Err(ProcessError::retry("not connected"));
        };
        let body: Bytes = body.into();
        let mut outcome = self.start_publish(link.channel.clone(), body.clone());
        match self.block_on(poll_once(&mut outcome))? {
            None => self.in_flight.push_back(InFlight { outcome, body }),
            Some(Err(e)) => {
                if resent {
                    self.resend.push_front(body);
                }
                return Err(self.broken(format!("publish failed: {e}")));
            }
            // Settled at once (a polled-out future must not be polled again).
            Some(done) => self.in_flight.push_back(InFlight {
                outcome: Box::pin(std::future::ready(done)),
                body,
            }),
        }
        Ok(())
    }

    /// The future of one publish and its confirm.
    fn start_publish(&self, channel: Channel, body: Bytes) -> Outcome {
        let props = BasicProperties::default()
            .with_content_type(self.content_type.as_str().into())
            .with_delivery_mode(if self.persistent { 2 } else { 1 })
            .with_timestamp(unix_seconds());
        let (exchange, key) = (
            self.exchange.name.as_str().into(),
            self.exchange.routing_key.as_str().into(),
        );
        Box::pin(async move {
            let opts = BasicPublishOptions::default();
            let confirm = channel
                .basic_publish(exchange, key, opts, &body, props)
                .await?;
            confirm.await
        })
    }

    /// Settles the confirms that have arrived, oldest first; with `block`, waits for the
    /// oldest one.
    fn reap(&mut self, block: bool) -> Result<(), ProcessError> {
        let mut first = block;
        while let Some(mut f) = self.in_flight.pop_front() {
            let wait = std::mem::take(&mut first);
            let settled = self.block_on(async {
                let outcome = if wait {
                    match tokio::time::timeout(CONFIRM_TIMEOUT, &mut f.outcome).await {
                        Ok(r) => Some(r),
                        Err(_) => Some(Err(lapin::ErrorKind::InvalidChannelState(
                            lapin::ChannelState::Error,
                            "publisher confirm timed out",
                        )
                        .into())),
                    }
                } else {
                    poll_once(&mut f.outcome).await
                };
                (outcome, f)
            })?;
            let (outcome, f) = settled;
            let Some(outcome) = outcome else {
                self.in_flight.push_front(f);
                return Ok(());
            };
            match classify(outcome) {
                Settled::Acked => self.count(|c| &c.confirmed, 1),
                Settled::Nacked => {
                    self.count(|c| &c.nacked, 1);
                    if let Some(suppressed) = self.log.check() {
                        tracing::warn!(
                            suppressed,
                            "Broker nacked a message; it will be published again."
                        );
                    }
                    self.resend.push_back(f.body);
                }
                Settled::Broken(why) => {
                    self.in_flight.push_front(f);
                    return Err(self.broken(why));
                }
            }
        }
        Ok(())
    }

    fn settle_oldest(&mut self) -> Result<(), ProcessError> {
        self.reap(true)
    }
}

fn classify(r: lapin::Result<Confirmation>) -> Settled {
    match r {
        Ok(Confirmation::Ack(_)) => Settled::Acked,
        Ok(Confirmation::Nack(_)) => Settled::Nacked,
        Ok(Confirmation::NotRequested) => {
            Settled::Broken("the channel is not in confirm mode".into())
        }
        Err(e) => Settled::Broken(format!("no confirm: {e}")),
    }
}

async fn open_link(x: Exchange, name: String) -> Result<Link, AmqpError> {
    let conn = x.connect(&name).await?;
    let channel = conn
        .create_channel()
        .await
        .map_err(AmqpError::step("cannot open a channel"))?;
    x.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(AmqpError::step("cannot enable publisher confirms"))?;
    Ok(Link { conn, channel })
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Drop for AmqpOutput {
    /// Closes the connection. Messages still unconfirmed here (the broker stayed down
    /// past the shutdown grace period) are counted and logged, never dropped silently.
    fn drop(&mut self) {
        let lost = (self.in_flight.len() + self.resend.len()) as u64;
        if lost > 0 {
            self.count(|c| &c.unconfirmed_lost, lost);
            tracing::error!(
                lost,
                "AMQPOutput stopped with messages the broker never confirmed; they are lost."
            );
        }
        self.in_flight.clear();
        if let Some(link) = self.link.take() {
            let _ = self.block_on(async move {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    link.conn.close(200, "hekate stopping".into()),
                )
                .await;
            });
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(CLOSE_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::PayloadOnly;
    use crate::plugin::testing::{build_context, plugin_config};

    const OK: &str =
        "url = 'amqp://guest:guest@127.0.0.1:5672/'\nexchange = 'hekate'\nexchange_type = 'fanout'";

    #[test]
    fn builds_with_heka_defaults() {
        let (x, rest, errs) = ExchangeConfig::parse(&plugin_config("AMQPOutput", OK));
        assert!(errs.is_empty(), "{errs:?}");
        let c: AmqpOutputConfig = rest.parse().expect("parse");
        assert_eq!(c.content_type, "application/hekad");
        let x = x.expect("exchange");
        assert!(!c.persistent && x.auto_delete && !x.durable);
        assert!(build(&plugin_config("AMQPOutput", OK), &build_context()).is_ok());
    }

    #[test]
    fn rejects_bad_keys() {
        let cx = build_context();
        let keys = |body: &str| -> Vec<String> {
            build(&plugin_config("AMQPOutput", body), &cx)
                .err()
                .expect("errors")
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(keys(&format!("{OK}\nmax_in_flight = 0")), ["max_in_flight"]);
        assert_eq!(keys("exchange = 'x'\nexchange_type = 'fanout'"), ["url"]);
        assert_eq!(keys(&format!("{OK}\nqueue = 'q'")), ["queue"]);
    }

    #[test]
    fn a_dead_broker_means_retry_and_the_message_is_kept() {
        // Port 1 on loopback refuses connections: the output must ask for a retry.
        let p = plugin_config(
            "AMQPOutput",
            "url = 'amqp://guest:guest@127.0.0.1:1/'\nexchange = 'x'\nexchange_type = 'fanout'",
        );
        let mut out = build(&p, &build_context()).expect("build");
        let globals = crate::config::Globals::default();
        let stats = PluginStats::default();
        let mut enc = PayloadOnly { newline: false };
        let (mut buf, mut frame) = (Vec::new(), Vec::new());
        let mut cx = OutputContext::new(
            "amqp",
            &globals,
            &stats,
            Some(&mut enc),
            true,
            &mut buf,
            &mut frame,
        );
        let pack = Pack::new(crate::message::Message::default());
        let r = out.process_message(&pack, &mut cx);
        assert!(matches!(r, Err(ProcessError::Retry(_))), "{r:?}");
        assert_eq!(stats.get("connect_failures"), Some(1));
        // Within the backoff no new connection is attempted.
        let r = out.process_message(&pack, &mut cx);
        assert!(matches!(r, Err(ProcessError::Retry(_))));
        assert_eq!(stats.get("connect_failures"), Some(1));
    }
}
