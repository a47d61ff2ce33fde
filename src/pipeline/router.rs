//! The router: one thread that evaluates every subscriber's compiled matcher against each
//! message and hands matches to the subscriber's bounded queue, applying that queue's
//! `full_action`. Messages are shared as `Arc`s; fan-out never copies a message.

use tokio::sync::mpsc;

use crate::message::Pack;

/// The router's input channel has closed: hekate is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the router has shut down")]
pub struct Closed;

/// What arrives on the router's channel.
#[derive(Debug)]
pub enum RouterEvent {
    /// Messages from inputs or filter injections.
    Batch(Vec<Pack>),
    /// Every input has stopped: once everything before this is routed, filter queues close.
    InputsDone,
}

/// The sending side of the router's bounded channel.
#[derive(Debug, Clone)]
pub struct RouterSender {
    pub(crate) tx: mpsc::Sender<RouterEvent>,
}

impl RouterSender {
    /// Sends a batch, waiting while the router is back-pressured.
    pub async fn send(&self, batch: Vec<Pack>) -> Result<(), Closed> {
        self.tx
            .send(RouterEvent::Batch(batch))
            .await
            .map_err(|_| Closed)
    }

    /// Sends a batch from a non-async thread (filter injections).
    pub fn blocking_send(&self, batch: Vec<Pack>) -> Result<(), Closed> {
        self.tx
            .blocking_send(RouterEvent::Batch(batch))
            .map_err(|_| Closed)
    }
}
