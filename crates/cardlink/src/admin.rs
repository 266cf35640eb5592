//! The admin server of `cardlink run` and `cardlink demo --admin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use cardlink_core::Engine;
use cardlink_kafka::{Config, Stats};

use crate::{Failure, signals};

/// Starts the admin server of the pipeline, as `[admin]` configures it.
/// The server is an aid to operate the pipeline, not part of its work: a
/// port already taken is logged as an error and the pipeline runs without
/// it (`/readyz` then never answers, which an orchestrator notices).
pub fn start_for_pipeline(
    config: &Config,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
) -> Option<cardlink_admin::Server> {
    let listen = config.admin.listen.trim();
    if listen.is_empty() {
        log::info!("admin server off (admin.listen is empty)");
        return None;
    }
    if config.admin.token.as_deref().is_none_or(str::is_empty) {
        log::warn!("no admin token (admin.token or CARDLINK_ADMIN_TOKEN): the admin API refuses writes");
    }
    let options = cardlink_admin::Options {
        listen: listen.to_owned(),
        token: config.admin.token.clone(),
        stats: stats.clone(),
        stop: stop.clone(),
        kafka: Some(config.clone()),
        mode: "pipeline",
    };
    match cardlink_admin::start(options) {
        Ok(server) => Some(server),
        Err(e) => {
            log::error!("{e}; the pipeline runs without the admin server");
            None
        }
    }
}

/// The admin server of the demo: the engine runs on the demo's thread,
/// which answers the server's queries every few records.
pub struct DemoAdmin {
    server: cardlink_admin::Server,
    stats: Arc<Stats>,
}

impl DemoAdmin {
    /// Serves on `listen`; the demo cannot change offers (no Kafka).
    pub fn start(listen: &str) -> Result<DemoAdmin, Failure> {
        crate::logging::init();
        let stats = Arc::new(Stats::default());
        stats.ready.store(true, Ordering::SeqCst);
        stats.observed.assigned(&[]);
        let options = cardlink_admin::Options {
            listen: listen.to_owned(),
            token: None,
            stats: stats.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            kafka: None,
            mode: "demo",
        };
        let server = cardlink_admin::start(options).map_err(|e| Failure::Io(anyhow!(e)))?;
        println!("admin API and status page: http://{}/", server.addr());
        Ok(DemoAdmin { server, stats })
    }

    /// Answers waiting queries from the engine; `records` fed so far.
    pub fn serve(&self, engine: &Engine, records: u64) {
        self.stats.committed.store(records, Ordering::Relaxed);
        self.stats.observed.serve(&engine.book, || std::iter::once((None, &engine.cards)));
    }

    /// Keeps serving for `secs` seconds (or until SIGINT/SIGTERM), then
    /// stops the server.
    pub fn linger(self, engine: &Engine, records: u64, secs: u64) {
        if secs > 0 {
            println!("serving http://{}/ for {secs} s more (Ctrl-C to stop)", self.server.addr());
            let signal = signals::install();
            let until = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < until && !signal.load(Ordering::Relaxed) {
                self.serve(engine, records);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.server.stop();
    }
}
