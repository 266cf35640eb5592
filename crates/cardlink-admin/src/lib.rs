//! cardlink's admin HTTP server.
//!
//! axum on a tokio runtime of its own thread, beside the pipeline thread:
//! the handlers never call librdkafka on the runtime (publishing an offer
//! and looking up a partition's owner run on the blocking pool), and never
//! touch the engine's state: questions about offers and cards go to the
//! engine thread through [`cardlink_observe::Observed`], which answers
//! between two records.
//!
//! Endpoints: `/healthz`, `/readyz`, `/metrics` (Prometheus, rendered here:
//! the exporter runs no listener of its own), `/` (a status page),
//! `/openapi.json` (generated from the handlers), `/v1/status`,
//! `/v1/offers`, `/v1/offers/{id}` (GET, and PUT/DELETE with the bearer
//! token), `/v1/cards/{token}`.
#![warn(missing_docs)]

mod api;
pub mod auth;
pub mod owner;
pub mod promtext;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cardlink_kafka::{Config, Stats};
use cardlink_observe::metrics as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use api::ApiDoc;

/// The status page: one self-contained file (inline script and SVG, no
/// external resources).
pub const STATUS_PAGE: &str = include_str!("status.html");

/// A gauge nobody sets for this long leaves `/metrics` (a revoked
/// partition's lag, an offer no longer among the most used).
const GAUGE_IDLE: Duration = Duration::from_secs(60);

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address is taken or invalid.
    #[error("admin server: cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("admin server: metrics: {0}")]
    Metrics(String),
    /// The runtime or its thread could not start.
    #[error("admin server: cannot start: {0}")]
    Start(std::io::Error),
}

/// What the server serves.
pub struct Options {
    /// `host:port` to listen on (port 0 picks a free one).
    pub listen: String,
    /// Bearer token of the write endpoints; none disables writes.
    pub token: Option<String>,
    /// The engine's counters and observed state.
    pub stats: Arc<Stats>,
    /// Set when the process is stopping: `/readyz` then says so.
    pub stop: Arc<AtomicBool>,
    /// Kafka, for publishing offers and finding a card's owner; `None`
    /// when the engine runs without Kafka (the demo).
    pub kafka: Option<Config>,
    /// `pipeline` or `demo`, shown on the status page.
    pub mode: &'static str,
}

/// A running server; it stops when the process ends or on [`Server::stop`].
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes the requests in flight (bounded) and
    /// returns.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Installs the Prometheus recorder (once per process) and starts
/// recording [`cardlink_observe::metrics`].
pub fn install_metrics() -> Result<PrometheusHandle, Error> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let e = |e: metrics_exporter_prometheus::BuildError| Error::Metrics(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::MATCH_SECONDS.into()), m::MATCH_BUCKETS)
        .map_err(e)?
        .set_buckets_for_metric(Matcher::Full(m::TRANSACTION_COMMIT_SECONDS.into()), m::COMMIT_BUCKETS)
        .map_err(e)?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .install_recorder()
        .map_err(e)?;
    m::enable();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Binds the address and serves on a thread of its own.
pub fn start(options: Options) -> Result<Server, Error> {
    let prometheus = install_metrics()?;
    let listen = options.listen.clone();
    let listener =
        std::net::TcpListener::bind(&listen).map_err(|source| Error::Listen { addr: listen.clone(), source })?;
    listener.set_nonblocking(true).map_err(Error::Start)?;
    let addr = listener.local_addr().map_err(Error::Start)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(8)
        .thread_name("cardlink-admin-blocking")
        .build()
        .map_err(Error::Start)?;
    let owners = options.kafka.clone().map(|c| Arc::new(owner::Owners::new(c)));
    let app = Arc::new(api::App {
        mode: options.mode,
        token: options.token,
        stats: options.stats,
        stop: options.stop,
        kafka: options.kafka,
        owners,
        prometheus: prometheus.clone(),
        started: Instant::now(),
    });
    let router = api::router(app);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cardlink-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return log::error!("admin server: {e}"),
                };
                // Without an HTTP listener of its own the exporter needs
                // its upkeep run by whoever renders.
                let upkeep = tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        prometheus.run_upkeep();
                    }
                });
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    log::error!("admin server stopped: {e}");
                }
                upkeep.abort();
            });
            // Requests still publishing on the blocking pool are dropped
            // with the runtime rather than waited for.
        })
        .map_err(Error::Start)?;
    log::info!("admin server listening on http://{addr}");
    Ok(Server { addr, shutdown: Some(tx), thread: Some(thread) })
}
