//! cardlink's live pipeline: card events from Kafka in, reward records
//! out, exactly once.
//!
//! - [`config`]: one TOML file with environment overrides.
//! - [`admin`]: topic creation and checks, bounded in time.
//! - [`offers`]: the offers topic read whole at start, then followed.
//! - [`budget`]: budget leases, so budgets stay exact across instances.
//! - [`pipeline`]: the transactional consume–match–produce loop with its
//!   state changelog, restores and rebalances.
//! - [`feed`]: producers for `cardlink simulate --kafka` and
//!   `cardlink offers publish`.
//! - [`reader`]: reading topics to their end, group lag; for tests and the
//!   benchmark.
//! - [`mod@bench`]: the end-to-end throughput and latency benchmark.
//!
//! See docs/kafka.md for the design and how to run it.
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod admin;
#[cfg(feature = "client")]
pub mod bench;
pub mod budget;
pub mod codec;
pub mod config;
mod error;
#[cfg(feature = "client")]
pub mod feed;
#[cfg(feature = "client")]
pub mod offers;
#[cfg(feature = "client")]
pub mod pipeline;
#[cfg(feature = "client")]
pub mod reader;

pub use config::{Config, TopicFormat};
#[cfg(feature = "client")]
pub use error::classify;
pub use error::{Class, Error};
#[cfg(feature = "client")]
pub use pipeline::{Mode, Stats};

#[cfg(feature = "client")]
use std::sync::Arc;
#[cfg(feature = "client")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "client")]
use std::time::{Duration, Instant};

/// Restarts of the pipeline inside one process before it gives up.
#[cfg(feature = "client")]
const MAX_RESTARTS: u32 = 5;
/// A pipeline that ran this long without failing resets the restart count.
#[cfg(feature = "client")]
const HEALTHY_AFTER: Duration = Duration::from_secs(600);

/// Everything `cardlink run` does: checks the broker, creates the topics,
/// loads the offers and runs the pipeline on the calling thread until
/// `stop` is set or it fails for good.
///
/// A fatal error (librdkafka's fatal errors, a static member fenced after
/// its session timed out during a coordinator outage, a restore that made
/// no progress) restarts the pipeline from what is committed: a new
/// producer fences the old one and aborts its open transaction, a new
/// consumer rejoins, state is restored from the changelog. After
/// `MAX_RESTARTS` quick failures in a row the error is returned (exit 1):
/// then something outside needs attention, e.g. two instances with one id.
/// Errors before the first start (broker unreachable, bad topics) are
/// returned at once.
#[cfg(feature = "client")]
pub fn run(config: &Config, mode: Mode, stop: Arc<AtomicBool>, stats: Arc<Stats>) -> Result<(), Error> {
    let layout = admin::ensure_topics(config)?;
    stats.observed.set_partitions(layout.events);
    let mut restarts = 0;
    loop {
        let started = Instant::now();
        let result = run_once(config, mode, stop.clone(), stats.clone());
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) if stop.load(Ordering::SeqCst) || !restartable(&e) => return Err(e),
            Err(e) => e,
        };
        if started.elapsed() > HEALTHY_AFTER {
            restarts = 0;
        }
        restarts += 1;
        if restarts > MAX_RESTARTS {
            log::error!("giving up after {MAX_RESTARTS} restarts: {e}");
            return Err(e);
        }
        let pause = Duration::from_secs(1 << restarts.min(5));
        log::error!("pipeline failed: {e}; restarting from what is committed in {pause:?} ({restarts}/{MAX_RESTARTS})");
        stats.ready.store(false, Ordering::SeqCst);
        stats.observed.reset();
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(Ordering::SeqCst) {
            return Err(e);
        }
    }
}

/// Errors a fresh pipeline may overcome.
#[cfg(feature = "client")]
fn restartable(e: &Error) -> bool {
    matches!(e, Error::Kafka { .. } | Error::Fatal(_) | Error::Unreachable { .. })
}

#[cfg(feature = "client")]
fn run_once(config: &Config, mode: Mode, stop: Arc<AtomicBool>, stats: Arc<Stats>) -> Result<(), Error> {
    let follower_stop = Arc::new(AtomicBool::new(false));
    let offers = offers::start(config, follower_stop.clone())?;
    let result = pipeline::run(config, mode, offers.book, offers.changes, stop, stats);
    follower_stop.store(true, Ordering::SeqCst);
    let _ = offers.follower.join();
    result
}
