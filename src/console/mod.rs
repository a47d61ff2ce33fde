//! hekate's web console and HTTP API, a kit the `DashboardOutput` plugin starts: the
//! pipeline page with live figures, sandbox outputs (cbuf graphs), alerts, a whisper
//! metrics browser, `/health`, Prometheus `/metrics`, the JSON API with its event stream,
//! and Graphite's read API (`graphite`) so Grafana can use hekate as a Graphite source.
//!
//! The server runs on its own thread with a single-threaded tokio runtime; [`Console`]
//! stops it when dropped.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use crate::listener::Listener;
use crate::stats::PluginStats;

pub mod assets;
pub mod cbuf;
pub mod process;
pub mod prometheus;
pub mod server;
pub mod state;

pub use server::{Auth, Settings};
pub use state::Shared;

/// A running console server.
pub struct Console {
    address: SocketAddr,
    /// The listener's counters (`refused_connections`, `tls_handshake_errors`, ...).
    stats: Arc<PluginStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Console {
    /// Binds `address` now (so a taken port is a build error) and serves on a thread.
    pub fn start(
        address: &str,
        settings: Settings,
        shared: Arc<Shared>,
    ) -> std::io::Result<Console> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let stats = Arc::new(PluginStats::default());
        let counters = stats.clone();
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || serve(listener, settings, shared, counters, stopped))?;
        Ok(Console {
            address,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The listener's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("The console thread panicked.");
            }
        }
    }
}

fn serve(
    listener: TcpListener,
    settings: Settings,
    shared: Arc<Shared>,
    stats: Arc<PluginStats>,
    stopped: oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the console's runtime.");
            return;
        }
    };
    let span = tracing::info_span!("console");
    let _enter = span.enter();
    rt.block_on(accept_loop(listener, settings, shared, stats, stopped));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
}

async fn accept_loop(
    listener: TcpListener,
    settings: Settings,
    shared: Arc<Shared>,
    stats: Arc<PluginStats>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).and_then(|l| {
        Listener::from_tokio(
            l,
            "the console",
            settings.max_connections,
            settings.tls.clone(),
            &stats,
        )
    });
    let mut listener = match listener {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "Cannot serve the console.");
            return;
        }
    };
    let timeout = settings.request_timeout;
    let app = server::router(shared, Arc::new(settings));
    loop {
        let (sock, peer, slot) = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let handshake = listener.handshake();
        tokio::spawn(async move {
            if let Some(conn) = handshake.run(sock, peer).await {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(conn), service);
                let _ = conn.await;
            }
            drop(slot);
        });
    }
}
