//! The router's input channel as plugins see it: [`RouterSender`] hands batches of
//! messages to the engine, and [`Closed`]/[`Refused`] say why it did not. The engine
//! (`pipeline`) owns the receiving end and puts its own commands (subscribe a runtime
//! filter, inputs done, ...) on the same channel as [`RouterEvent::Engine`], so they keep
//! their order relative to the batches; plugins never see or build those.

use std::any::Any;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::message::Pack;

/// The router's input channel has closed: hekate is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the router has shut down")]
pub struct Closed;

/// Why [`RouterSender::send_within`] did not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The channel stayed full for the whole wait: the pipeline is back-pressured.
    #[error("the router is back-pressured")]
    Full,
    /// The router has shut down.
    #[error("the router has shut down")]
    Closed,
}

/// What arrives on the router's channel.
pub enum RouterEvent {
    /// Messages from inputs or filter injections.
    Batch(Vec<Pack>),
    /// A command of the engine's own (opaque here; the router downcasts it).
    Engine(Box<dyn Any + Send>),
}

impl std::fmt::Debug for RouterEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouterEvent::Batch(b) => write!(f, "Batch({} messages)", b.len()),
            RouterEvent::Engine(_) => f.write_str("Engine(..)"),
        }
    }
}

/// A bounded channel of `capacity` router events.
pub fn router_channel(capacity: usize) -> (RouterSender, mpsc::Receiver<RouterEvent>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (RouterSender { tx }, rx)
}

/// The sending side of the router's bounded channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RouterSender {
    tx: mpsc::Sender<RouterEvent>,
}

impl RouterSender {
    /// Sends a batch, waiting while the router is back-pressured.
    pub async fn send(&self, batch: Vec<Pack>) -> Result<(), Closed> {
        self.tx
            .send(RouterEvent::Batch(batch))
            .await
            .map_err(|_| Closed)
    }

    /// Sends a batch if the router's channel has room within `wait` (`Duration::ZERO`:
    /// only if it has room now). The batch is one channel slot, so it is taken whole or
    /// not at all; on [`Refused::Full`] nothing was sent and the caller still decides what
    /// to do (an HTTP input answers 503 so the sender retries).
    pub async fn send_within(&self, batch: Vec<Pack>, wait: Duration) -> Result<(), Refused> {
        let ev = RouterEvent::Batch(batch);
        if wait.is_zero() {
            return self.tx.try_send(ev).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            });
        }
        self.tx.send_timeout(ev, wait).await.map_err(|e| match e {
            mpsc::error::SendTimeoutError::Timeout(_) => Refused::Full,
            mpsc::error::SendTimeoutError::Closed(_) => Refused::Closed,
        })
    }

    /// Sends a batch from a non-async thread (filter injections).
    pub fn blocking_send(&self, batch: Vec<Pack>) -> Result<(), Closed> {
        self.tx
            .blocking_send(RouterEvent::Batch(batch))
            .map_err(|_| Closed)
    }

    /// Sends an engine command from a non-async thread, in order with the batches.
    pub fn blocking_command<C: Any + Send>(&self, command: C) -> Result<(), Closed> {
        self.tx
            .blocking_send(RouterEvent::Engine(Box::new(command)))
            .map_err(|_| Closed)
    }
}
