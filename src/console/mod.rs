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
use tokio::sync::{oneshot, Semaphore};

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
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || serve(listener, settings, shared, stopped))?;
        tracing::info!(%address, "Console listening.");
        Ok(Console {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
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
    rt.block_on(accept_loop(listener, settings, shared, stopped));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
}

async fn accept_loop(
    listener: TcpListener,
    settings: Settings,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "Cannot serve the console.");
            return;
        }
    };
    let timeout = settings.request_timeout;
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let app = server::router(shared, Arc::new(settings));
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "Accept failed.");
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
            drop(permit);
        });
    }
}
