//! The Kafka subcommands: `run`, `offers publish|retire`, `simulate
//! --kafka` and `bench-kafka`. The pipeline runs on a thread of its own;
//! the main thread only watches for signals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use cardlink_kafka::{Config, Error, Mode, Stats};

use crate::{Failure, logging, signals};

/// Where the configuration comes from.
#[derive(clap::Args)]
pub struct ConfigArg {
    /// TOML configuration file (see docs/kafka.md); CARDLINK_* environment
    /// variables override it. Without it: defaults and environment.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Copy each input record to the rewards topic without matching, in the
    /// same transactions: the benchmark's baseline, not for production.
    #[arg(long, hide = true)]
    pass_through: bool,
    /// After SIGTERM/SIGINT, exit (0) within this many seconds even if the
    /// open transaction has not committed yet: the broker then aborts it,
    /// and the next owner of the partitions starts from what is committed.
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    shutdown_timeout: u64,
}

#[derive(clap::Subcommand)]
pub enum OffersCommand {
    /// Validates an offer file and publishes each offer, keyed by its id.
    Publish(PublishArgs),
    /// Retires offers by id (an empty record on the offers topic).
    Retire(RetireArgs),
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// Offer file: a JSON array of offers (contract section 2).
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(clap::Args)]
pub struct RetireArgs {
    /// Offer ids.
    #[arg(required = true)]
    ids: Vec<String>,
    #[command(flatten)]
    config: ConfigArg,
}

fn config(arg: &ConfigArg) -> Result<Config, Failure> {
    Config::load(arg.config.as_deref()).map_err(|e| Failure::Usage(anyhow!(e)))
}

fn kafka_failure(e: Error) -> Failure {
    match e {
        Error::Config(_) | Error::Offer(_) => Failure::Usage(anyhow!(e)),
        e => Failure::Io(anyhow!(e)),
    }
}

/// How often `cardlink run` logs its memory by allocator.
const MEMORY_LOG_EVERY: Duration = Duration::from_secs(10);

/// `cardlink run`: the live pipeline, until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    logging::init();
    crate::memory::configure_c_heap();
    let config = config(&args.config)?;
    log::info!("configuration: {config:?}");
    let mode = if args.pass_through { Mode::PassThrough } else { Mode::Match };
    let signal = signals::install();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let _admin = crate::admin::start_for_pipeline(&config, &stats, &stop);
    let pipeline = {
        let (stop, stats) = (stop.clone(), stats.clone());
        std::thread::Builder::new()
            .name("cardlink-pipeline".into())
            .spawn(move || cardlink_kafka::run(&config, mode, stop, stats))
            .context("starting the pipeline thread")
            .map_err(Failure::Io)?
    };
    let mut stopping: Option<Instant> = None;
    let mut memory_logged = Instant::now();
    while !pipeline.is_finished() {
        if memory_logged.elapsed() >= MEMORY_LOG_EVERY {
            memory_logged = Instant::now();
            let m = crate::memory::read();
            let mib = |b: u64| b as f64 / 1048576.0;
            log::info!(
                "memory: RSS {:.1} MiB; Rust heap (mimalloc) {:.1} MiB committed; C heap (glibc, librdkafka) {:.1} MiB in use of {:.1} MiB held",
                mib(m.rss),
                mib(m.rust_committed),
                mib(m.c_in_use),
                mib(m.c_held)
            );
        }
        if signal.load(Ordering::Relaxed) && !stop.swap(true, Ordering::SeqCst) {
            log::info!("stopping: committing what is open (at most {} s)", args.shutdown_timeout);
            stopping = Some(Instant::now());
        }
        if stopping.is_some_and(|t| t.elapsed() >= Duration::from_secs(args.shutdown_timeout)) {
            log::warn!(
                "stopping: the pipeline did not finish within {} s; exiting, the broker aborts the open \
                 transaction and its records are processed again from the committed offsets",
                args.shutdown_timeout
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match pipeline.join() {
        Ok(Ok(())) => {
            log::info!(
                "stopped after {} committed records in {} transactions",
                stats.committed.load(Ordering::Relaxed),
                stats.transactions.load(Ordering::Relaxed)
            );
            Ok(())
        }
        Ok(Err(e)) => Err(kafka_failure(e)),
        Err(_) => Err(Failure::Io(anyhow!("the pipeline thread panicked"))),
    }
}

/// Reads and validates an offer file; exit 2 when invalid.
fn read_offer_file(path: &Path) -> Result<Vec<serde_json::Value>, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read offer file {}", path.display()))
        .map_err(Failure::Io)?;
    cardlink_core::parse_offer_file(&bytes)
        .with_context(|| format!("invalid offer file {}", path.display()))
        .map_err(Failure::Usage)?;
    serde_json::from_slice(&bytes).context("offer file").map_err(Failure::Usage)
}

/// `cardlink offers publish|retire`.
pub fn offers(command: OffersCommand) -> Result<(), Failure> {
    logging::init();
    match command {
        OffersCommand::Publish(args) => {
            let offers = read_offer_file(&args.file)?;
            let config = config(&args.config)?;
            cardlink_kafka::admin::ensure_topics(&config).map_err(kafka_failure)?;
            let n = cardlink_kafka::feed::publish_offers(&config, &offers).map_err(kafka_failure)?;
            eprintln!("published {n} offers to {}", config.topics.offers);
            Ok(())
        }
        OffersCommand::Retire(args) => {
            let config = config(&args.config)?;
            cardlink_kafka::admin::ensure_topics(&config).map_err(kafka_failure)?;
            cardlink_kafka::feed::retire_offers(&config, &args.ids).map_err(kafka_failure)?;
            eprintln!("retired {} offers on {}", args.ids.len(), config.topics.offers);
            Ok(())
        }
    }
}

/// `cardlink simulate --kafka`: the simulated feed into the events topic.
pub fn simulate(sim: &cardlink_sim::SimConfig, rate: Option<u64>, arg: &ConfigArg) -> Result<(), Failure> {
    logging::init();
    let config = config(arg)?;
    cardlink_kafka::admin::ensure_topics(&config).map_err(kafka_failure)?;
    let started = Instant::now();
    let n = cardlink_kafka::feed::produce_feed(&config, sim, rate, |n| log::debug!("{n} records produced"))
        .map_err(kafka_failure)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {n} records to {} in {secs:.1} s ({:.0} records/s)",
        config.topics.events,
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Events in the throughput runs (preloaded, then processed).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per second produced during the latency runs.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Length of each latency run, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

/// `cardlink bench-kafka`: end-to-end events/s and latency of the
/// matching pipeline beside a pass-through pipeline, on fresh topics.
pub fn bench(args: BenchArgs) -> Result<(), Failure> {
    logging::init();
    let config = config(&args.config)?;
    let opts = cardlink_kafka::bench::BenchOptions {
        events: args.events,
        rate: args.rate,
        latency_secs: args.seconds,
        ..Default::default()
    };
    println!(
        "cardlink bench-kafka: {} partitions, commit every {} records or {} ms, broker {}",
        config.topics.partitions,
        config.pipeline.commit_max_records,
        config.pipeline.commit_max_ms,
        config.kafka.bootstrap
    );
    let r = cardlink_kafka::bench::run(&config, &opts, |line| println!("  {line}")).map_err(kafka_failure)?;
    let (p, m) = (&r.pass_through, &r.matching);
    println!();
    println!(
        "| pipeline     | events/s (preloaded {}) | p50 ms | p99 ms | max ms (at {} events/s) |",
        opts.events, opts.rate
    );
    println!("| ------------ | ---------: | -----: | -----: | -----: |");
    for (name, f) in [("pass-through", p), ("matching", m)] {
        println!(
            "| {name:<12} | {:>10.0} | {:>6.0} | {:>6.0} | {:>6.0} |",
            f.events_per_sec, f.latency_ms[0], f.latency_ms[1], f.latency_ms[2]
        );
    }
    println!(
        "\nmatching runs at {:.0}% of the pass-through rate",
        100.0 * m.events_per_sec / p.events_per_sec.max(1e-9)
    );
    Ok(())
}
