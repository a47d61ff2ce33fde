//! `AMQPInput`: consumes a queue bound to an AMQP 0-9-1 exchange (RabbitMQ). Each
//! delivery body goes through the input's splitter (default `HekaFramingSplitter`) and
//! decoder (default `ProtobufDecoder`), so what an `AMQPOutput` publishes arrives as the
//! original message. Built by the registry, run by the input supervisor.
//!
//! A delivery is acked only once the pipeline is done with every message it produced
//! (the stream's delivery token no longer upgrades: router, filters and outputs have let
//! go). A crash before that leaves it unacked, and the broker delivers it again: at
//! least once, never lost. `prefetch_count` bounds the deliveries held unacked. When the
//! connection drops, the input reconnects with the `[name.retries]` backoff; unacked
//! deliveries of the old channel are redelivered by the broker.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer};
use serde::Deserialize;

use crate::amqp::{AmqpError, Backoff, Exchange, ExchangeConfig};
use crate::config::PluginConfig;
use crate::error::{BoxError, Chain, ConfigError};
use crate::message::Message;
use crate::plugin::{
    BoxFuture, BuildContext, Defaults, Input, InputContext, RecordStream, Registration,
};
use crate::stats::{LogLimiter, PluginStats};

/// How often unacked deliveries are checked while some are pending: every millisecond
/// while the pipeline makes progress, backing off to `ACK_POLL_MAX` while it is stuck.
const ACK_POLL: Duration = Duration::from_millis(1);
const ACK_POLL_MAX: Duration = Duration::from_millis(50);
/// At shutdown, how long the input waits for the pipeline to finish with what it
/// delivered, so those deliveries are acked rather than redelivered on the next start.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(3);

/// Configuration of `AMQPInput`, besides the exchange keys of
/// [`ExchangeConfig`] (`url`, `exchange`, `exchange_type`, `exchange_durability`,
/// `exchange_auto_delete`, `routing_key`: the binding key here).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AmqpInputConfig {
    /// Most deliveries held unacked (basic.qos). Default 2, as Heka; raise it for
    /// throughput, since a delivery is acked only after the pipeline is done with it.
    pub prefetch_count: u16,
    /// Queue to consume; "" lets the broker name a fresh one. Default "".
    pub queue: String,
    /// Bind the queue to the exchange. Default true.
    pub bind_queue: bool,
    /// Declare the queue durable. Default false.
    pub queue_durability: bool,
    /// Declare the queue exclusive to this connection. Default false.
    pub queue_exclusive: bool,
    /// Declare the queue auto-delete. Default true.
    pub queue_auto_delete: bool,
    /// Message TTL of the queue in milliseconds (`x-message-ttl`); -1 = none. Default -1.
    pub queue_ttl: i32,
    /// Declare nothing: the exchange, queue and binding must already exist. Default false.
    pub read_only: bool,
}

impl Default for AmqpInputConfig {
    fn default() -> Self {
        AmqpInputConfig {
            prefetch_count: 2,
            queue: String::new(),
            bind_queue: true,
            queue_durability: false,
            queue_exclusive: false,
            queue_auto_delete: true,
            queue_ttl: -1,
            read_only: false,
        }
    }
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "AMQPInput",
    description:
        "Consume an AMQP queue (RabbitMQ); Heka-framed protobuf by default, acks after delivery.",
    build,
    defaults: Defaults::FRAMED_PROTOBUF,
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let (exchange, rest, mut errs) = ExchangeConfig::parse(p);
    let (c, more) = rest.parse_all::<AmqpInputConfig>();
    errs.extend(more);
    let Some(c) = c else {
        return Err(errs);
    };
    if c.prefetch_count == 0 {
        errs.push(p.error(
            "prefetch_count",
            "must be at least 1 (0 would let the broker push without limit)",
        ));
    }
    if c.read_only && c.queue.is_empty() {
        errs.push(p.error("queue", "required with read_only = true"));
    }
    match exchange {
        Some(exchange) if errs.is_empty() => Ok(Box::new(AmqpInput {
            config: c,
            exchange,
        })),
        _ => Err(errs),
    }
}

/// The running input.
pub struct AmqpInput {
    config: AmqpInputConfig,
    exchange: Exchange,
}

/// Plugin-specific counters.
struct Counters {
    acked: Arc<AtomicU64>,
    redelivered: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    connect_failures: Arc<AtomicU64>,
}

/// One consuming connection.
struct Session {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
    /// Deliveries handed to the pipeline and not acked yet, oldest first, each with the
    /// delivery token of the stream right after it was fed.
    unacked: VecDeque<(u64, Weak<Message>)>,
}

/// Why a session ended.
enum End {
    Shutdown,
    Broken(BoxError),
    PipelineClosed,
}

impl Input for AmqpInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.run_loop(cx).await })
    }
}

impl AmqpInput {
    async fn run_loop(self, cx: InputContext) -> Result<(), BoxError> {
        let stats = cx.stats();
        let counters = Counters {
            acked: stats.counter("acked"),
            redelivered: stats.counter("redelivered"),
            reconnects: stats.counter("reconnects"),
            connect_failures: stats.counter("connect_failures"),
        };
        let retries = &cx.common.retries;
        let mut backoff = Backoff::new(retries.delay, retries.max_delay);
        let mut log = LogLimiter::default();
        let mut shutdown = cx.shutdown();
        let mut stream = cx.stream();
        stream.set_type("amqp");
        let mut connected_before = false;
        loop {
            let end = match self.open(cx.name()).await {
                Ok(mut s) => {
                    backoff.reset();
                    if connected_before {
                        PluginStats::add(&counters.reconnects, 1);
                        tracing::info!(url = %self.exchange.display_url, "Reconnected to the AMQP broker.");
                    } else {
                        tracing::info!(url = %self.exchange.display_url, queue = %self.config.queue, "Consuming from AMQP.");
                    }
                    connected_before = true;
                    let end = consume(&mut s, &mut stream, &counters, &cx).await;
                    close(s, &end, &counters).await;
                    end
                }
                Err(e) => {
                    PluginStats::add(&counters.connect_failures, 1);
                    End::Broken(e.into())
                }
            };
            match end {
                End::Shutdown | End::PipelineClosed => return Ok(()),
                End::Broken(why) => {
                    let wait = backoff.failed();
                    if let Some(suppressed) = log.check() {
                        tracing::warn!(error = %Chain(&*why), suppressed, retry_in = ?wait, "AMQP connection unavailable; reconnecting (unacked deliveries will be redelivered).");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.wait() => return Ok(()),
                    }
                }
            }
        }
    }

    /// Connects, declares the topology (unless `read_only`) and starts consuming.
    async fn open(&self, name: &str) -> Result<Session, AmqpError> {
        let c = &self.config;
        let conn = self.exchange.connect(name).await?;
        let channel = conn
            .create_channel()
            .await
            .map_err(AmqpError::step("cannot open a channel"))?;
        let queue = if c.read_only {
            c.queue.clone()
        } else {
            self.exchange.declare(&channel).await?;
            self.declare_queue(&channel).await?
        };
        channel
            .basic_qos(c.prefetch_count, BasicQosOptions::default())
            .await
            .map_err(AmqpError::step("cannot set prefetch_count"))?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("hekate-{name}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(AmqpError::step(format!("cannot consume queue {queue:?}")))?;
        Ok(Session {
            conn,
            channel,
            consumer,
            unacked: VecDeque::new(),
        })
    }

    /// Declares the queue and binds it; returns its name (broker-chosen when "").
    async fn declare_queue(&self, channel: &Channel) -> Result<String, AmqpError> {
        let c = &self.config;
        let mut args = FieldTable::default();
        if c.queue_ttl >= 0 {
            args.insert("x-message-ttl".into(), AMQPValue::LongInt(c.queue_ttl));
        }
        let opts = QueueDeclareOptions {
            durable: c.queue_durability,
            exclusive: c.queue_exclusive,
            auto_delete: c.queue_auto_delete,
            ..Default::default()
        };
        let q = channel
            .queue_declare(c.queue.as_str().into(), opts, args)
            .await
            .map_err(AmqpError::step(format!(
                "cannot declare queue {:?}",
                c.queue
            )))?;
        let name = q.name().as_str().to_string();
        if c.bind_queue {
            channel
                .queue_bind(
                    name.as_str().into(),
                    self.exchange.name.as_str().into(),
                    self.exchange.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(AmqpError::step(format!("cannot bind queue {name:?}")))?;
        }
        Ok(name)
    }
}

/// Feeds deliveries into the pipeline and acks them once it is done with them.
async fn consume(
    s: &mut Session,
    stream: &mut RecordStream,
    counters: &Counters,
    cx: &InputContext,
) -> End {
    let mut shutdown = cx.shutdown();
    let mut poll = ACK_POLL;
    loop {
        let mut timer = false;
        tokio::select! {
            d = s.consumer.next() => match d {
                Some(Ok(d)) => {
                    if d.redelivered {
                        PluginStats::add(&counters.redelivered, 1);
                    }
                    if stream.feed_datagram(&d.data).await.is_err() {
                        return End::PipelineClosed;
                    }
                    s.unacked.push_back((d.delivery_tag, stream.delivery_token()));
                }
                Some(Err(e)) => return End::Broken(AmqpError::step("consumer failed")(e).into()),
                None => return End::Broken("the broker ended the consumer".into()),
            },
            _ = tokio::time::sleep(poll), if !s.unacked.is_empty() => timer = true,
            _ = shutdown.wait() => return End::Shutdown,
        }
        match ack_done(s, counters).await {
            Ok(0) if timer => poll = (poll * 2).min(ACK_POLL_MAX),
            Ok(0) => {}
            Ok(_) => poll = ACK_POLL,
            Err(e) => return End::Broken(e.into()),
        }
    }
}

/// Acks (with `multiple`) the longest run of oldest deliveries the pipeline is done with.
/// Returns how many were acked.
async fn ack_done(s: &mut Session, counters: &Counters) -> Result<u64, AmqpError> {
    let mut last = None;
    let mut n = 0u64;
    while let Some((tag, token)) = s.unacked.front() {
        if token.upgrade().is_some() {
            break;
        }
        last = Some(*tag);
        n += 1;
        s.unacked.pop_front();
    }
    let Some(tag) = last else { return Ok(0) };
    s.channel
        .basic_ack(tag, BasicAckOptions { multiple: true })
        .await
        .map_err(AmqpError::step("ack failed"))?;
    PluginStats::add(&counters.acked, n);
    Ok(n)
}

/// Ends a session. At shutdown it first stops the consumer and gives the pipeline a
/// moment to finish what was delivered, so those deliveries are acked.
async fn close(mut s: Session, end: &End, counters: &Counters) {
    if matches!(end, End::Shutdown) {
        let tag = s.consumer.tag();
        let _ = s
            .channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_WAIT;
        while !s.unacked.is_empty() && tokio::time::Instant::now() < deadline {
            if ack_done(&mut s, counters).await.is_err() {
                break;
            }
            tokio::time::sleep(ACK_POLL).await;
        }
        if !s.unacked.is_empty() {
            tracing::info!(
                unacked = s.unacked.len(),
                "Stopping with deliveries still in the pipeline; the broker will deliver them again."
            );
        }
    }
    if s.conn.status().connected() {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            s.conn.close(200, "hekate stopping".into()),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    const OK: &str =
        "url = 'amqp://guest:guest@127.0.0.1:5672/'\nexchange = 'hekate'\nexchange_type = 'fanout'";

    #[test]
    fn heka_defaults() {
        let (x, rest, errs) = ExchangeConfig::parse(&plugin_config("AMQPInput", OK));
        assert!(errs.is_empty(), "{errs:?}");
        let x = x.expect("exchange");
        assert!(x.auto_delete && !x.durable && x.routing_key.is_empty());
        let c: AmqpInputConfig = rest.parse().expect("parse");
        assert_eq!(c.prefetch_count, 2);
        assert!(c.bind_queue && c.queue_auto_delete && !c.queue_durability);
        assert!(!c.queue_exclusive && !c.read_only);
        assert_eq!(c.queue_ttl, -1);
        assert!(build(&plugin_config("AMQPInput", OK), &build_context()).is_ok());
    }

    #[test]
    fn rejects_bad_keys() {
        let cx = build_context();
        let keys = |body: &str| -> Vec<String> {
            build(&plugin_config("AMQPInput", body), &cx)
                .err()
                .expect("errors")
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(
            keys(&format!("{OK}\nprefetch_count = 0")),
            ["prefetch_count"]
        );
        assert_eq!(keys(&format!("{OK}\nread_only = true")), ["queue"]);
        assert_eq!(keys(&format!("{OK}\npersistent = true")), ["persistent"]);
        assert_eq!(
            keys("url = 'amqp://h/'\nexchange = 'x'\nexchange_type = 'fanout'\n[tls]\n"),
            ["tls"]
        );
        assert_eq!(
            keys("url = 'amqps://h/'\nexchange = 'x'\nexchange_type = 'fanout'\n[tls]\nroot_cafile = '/nonexistent.pem'"),
            ["tls.root_cafile"]
        );
    }
}
