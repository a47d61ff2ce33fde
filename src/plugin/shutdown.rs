//! The one shutdown mechanism: a watch channel flipped once by the pipeline (on
//! SIGINT/SIGTERM, a fatal plugin exit, or a `full_action = "shutdown"` queue).
//!
//! Inputs hold a [`Shutdown`] and return from `run` when it fires; runners on OS threads
//! poll [`Shutdown::is_set`] between blocking waits.

use tokio::sync::watch;

/// A cloneable view of the shutdown flag.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that triggers shutdown.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

/// A new trigger and its first receiver.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        ShutdownTrigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl ShutdownTrigger {
    /// Fires the shutdown; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A new receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }

    /// True once fired.
    pub fn is_set(&self) -> bool {
        *self.tx.borrow()
    }
}

impl Shutdown {
    /// True once shutdown has been requested.
    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown is requested (immediately if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which only happens at process exit.
        let _ = self.rx.wait_for(|v| *v).await;
    }
}
