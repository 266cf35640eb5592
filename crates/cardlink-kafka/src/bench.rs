//! The end-to-end benchmark behind `cardlink bench-kafka`: the matching
//! pipeline beside a pass-through pipeline that consumes and produces the
//! same records through the same transactions without matching.
//!
//! - **Throughput**: the feed is loaded into the events topic first, then
//!   the pipeline starts; events/s = events / time from ready (offers
//!   loaded, partitions restored) to the last commit.
//! - **Latency**: the pipeline runs while the feed is produced at a fixed
//!   rate; each output record carries its input record's timestamp (set
//!   when the event was produced), and a read_committed reader measures
//!   now − timestamp when the record becomes visible, i.e. event produced →
//!   reward committed.
//!
//! Every run uses fresh topics, deleted afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cardlink_sim::SimConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::reader::{Quiet, Reader, reader_config};
use crate::{Config, Error, Mode, Stats, admin, feed};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events in the throughput run.
    pub events: u64,
    /// Events per second in the latency run.
    pub rate: u64,
    /// Length of the latency run.
    pub latency_secs: u64,
    /// Seed of the simulated feed.
    pub seed: u64,
    /// Distinct cards in the feed.
    pub cards: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { events: 1_000_000, rate: 20_000, latency_secs: 15, seed: 42, cards: 50_000 }
    }
}

/// The figures of one mode.
#[derive(Debug, Clone, Default)]
pub struct ModeFigures {
    /// Input records per second through the pipeline, preloaded feed.
    pub events_per_sec: f64,
    /// Transactions committed in the throughput run.
    pub transactions: u64,
    /// Average time per commit in ms: all of it (changelog writes
    /// included), and waiting for the broker (offsets and commit).
    pub commit_ms: [f64; 2],
    /// Output records in the throughput run.
    pub outputs: u64,
    /// Latency percentiles in ms at the set rate: p50, p99, max.
    pub latency_ms: [f64; 3],
    /// Output records the latency figures are drawn from.
    pub latency_samples: usize,
}

/// Both modes' figures.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    /// The pass-through baseline.
    pub pass_through: ModeFigures,
    /// The product.
    pub matching: ModeFigures,
}

fn unique(base: &Config, tag: &str) -> Config {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let name = format!("bench-{tag}-{stamp:x}");
    let mut c = base.clone();
    c.topics.events = format!("{name}-events");
    c.topics.offers = format!("{name}-offers");
    c.topics.rewards = format!("{name}-rewards");
    c.topics.dead_letters = format!("{name}-dead-letters");
    c.topics.state = format!("{name}-state");
    c.pipeline.group_id = name.clone();
    c.pipeline.transactional_id_prefix = name;
    c
}

fn sim(opts: &BenchOptions, events: u64) -> SimConfig {
    SimConfig { seed: opts.seed, events, cards: opts.cards, ..SimConfig::default() }
}

/// Starts a pipeline on its own thread and waits until it is ready.
struct Running {
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    handle: thread::JoinHandle<Result<(), Error>>,
}

impl Running {
    fn start(config: &Config, mode: Mode) -> Result<Running, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let handle = {
            let (config, stop, stats) = (config.clone(), stop.clone(), stats.clone());
            thread::Builder::new()
                .name("bench-pipeline".into())
                .spawn(move || crate::run(&config, mode, stop, stats))
                .map_err(|e| Error::Fatal(format!("cannot start the pipeline: {e}")))?
        };
        let started = Instant::now();
        // Ready means subscribed; the first assignment and restore follow.
        while !stats.ready.load(Ordering::SeqCst) {
            if handle.is_finished() || started.elapsed() > Duration::from_secs(120) {
                stop.store(true, Ordering::SeqCst);
                return Err(handle.join().map_or_else(
                    |_| Error::Fatal("the pipeline panicked".into()),
                    |r| r.err().unwrap_or_else(|| Error::Fatal("the pipeline did not start".into())),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(Running { stop, stats, handle })
    }

    fn stop(self) -> Result<Arc<Stats>, Error> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().map_err(|_| Error::Fatal("the pipeline panicked".into()))??;
        Ok(self.stats)
    }
}

fn throughput(base: &Config, opts: &BenchOptions, mode: Mode, tag: &str) -> Result<ModeFigures, Error> {
    let config = unique(base, tag);
    admin::ensure_topics(&config)?;
    let s = sim(opts, opts.events);
    feed::publish_offers(&config, &cardlink_sim::offers(&s))?;
    let loaded = Instant::now();
    feed::produce_feed(&config, &s, None, |_| {})?;
    log::info!("{tag}: {} events loaded in {:.1} s", opts.events, loaded.elapsed().as_secs_f64());
    let running = Running::start(&config, mode)?;
    let started = Instant::now();
    let mut first = None;
    while running.stats.committed.load(Ordering::Relaxed) < opts.events {
        if first.is_none() && running.stats.consumed.load(Ordering::Relaxed) > 0 {
            // Measure from the first record: joining and restoring are not
            // part of the steady-state rate.
            first = Some(Instant::now());
        }
        if running.handle.is_finished() || started.elapsed() > Duration::from_secs(1800) {
            running.stop()?;
            return Err(Error::Fatal(format!("{tag}: the pipeline stopped before committing every event")));
        }
        thread::sleep(Duration::from_millis(1));
    }
    let secs = first.unwrap_or(started).elapsed().as_secs_f64();
    let stats = running.stop()?;
    let n = stats.transactions.load(Ordering::Relaxed).max(1) as f64;
    let figures = ModeFigures {
        events_per_sec: opts.events as f64 / secs.max(1e-9),
        transactions: stats.transactions.load(Ordering::Relaxed),
        commit_ms: [
            stats.commit_micros.load(Ordering::Relaxed) as f64 / n / 1000.0,
            stats.commit_wait_micros.load(Ordering::Relaxed) as f64 / n / 1000.0,
        ],
        outputs: stats.rewards.load(Ordering::Relaxed) + stats.dead_letters.load(Ordering::Relaxed),
        ..ModeFigures::default()
    };
    cleanup(&config);
    Ok(figures)
}

fn latency(base: &Config, opts: &BenchOptions, mode: Mode, tag: &str) -> Result<(Vec<f64>, usize), Error> {
    let config = unique(base, tag);
    let layout = admin::ensure_topics(&config)?;
    let events = opts.rate * opts.latency_secs;
    let s = SimConfig { seed: opts.seed + 1, ..sim(opts, events) };
    feed::publish_offers(&config, &cardlink_sim::offers(&s))?;
    let running = Running::start(&config, mode)?;
    // A reader of the committed outputs, from the start of each partition.
    let reader: Reader = reader_config(&config, "bench-latency")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "5")
        .create_with_context(Quiet)
        .map_err(|e| Error::kafka("latency reader", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..config.topics.partitions.max(layout.events) {
        tpl.add_partition_offset(&config.topics.rewards, p, Offset::Beginning).map_err(|e| Error::kafka("tpl", e))?;
    }
    reader.assign(&tpl).map_err(|e| Error::kafka("latency reader", e))?;
    // Give the pipeline its assignment before the clock starts.
    thread::sleep(Duration::from_secs(3));
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (config, done) = (config.clone(), done.clone());
        let rate = opts.rate;
        thread::spawn(move || {
            let r = feed::produce_feed(&config, &s, Some(rate), |_| {});
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let mut samples = Vec::with_capacity(events as usize);
    // Latencies by the second they were read in (Unix time).
    // Latencies by the second (Unix time) they were read in.
    let mut per_sec: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    let mut quiet_since = Instant::now();
    loop {
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                if let Some(ts) = m.timestamp().to_millis() {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                    samples.push((now - ts) as f64);
                    per_sec.entry(now / 1000).or_default().push((now - ts) as f64);
                }
                quiet_since = Instant::now();
            }
            Some(Err(e)) => log::debug!("latency reader: {e}"),
            None => {}
        }
        let committed = running.stats.committed.load(Ordering::Relaxed);
        if done.load(Ordering::SeqCst) && committed >= events && quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        if quiet_since.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    producer.join().map_err(|_| Error::Fatal("the feed panicked".into()))??;
    running.stop()?;
    cleanup(&config);
    let n = samples.len();
    for (sec, mut v) in per_sec {
        v.sort_by(f64::total_cmp);
        // Where in the run the slow records are (the first seconds, or
        // throughout).
        log::debug!(
            "{tag}: second {sec}: {} records, p50 {} ms, p99 {} ms, max {} ms",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1]
        );
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples, n))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn cleanup(config: &Config) {
    let t = &config.topics;
    let budget = config.budget_topic();
    if let Err(e) =
        admin::delete_topics(config, &[&t.events, &t.offers, &t.rewards, &t.dead_letters, &t.state, &budget])
    {
        log::warn!("could not delete the benchmark's topics: {e}");
    }
}

/// Runs both modes (pass-through first) and returns the figures; `say`
/// receives a line per step.
pub fn run(base: &Config, opts: &BenchOptions, mut say: impl FnMut(&str)) -> Result<BenchReport, Error> {
    let mut report = BenchReport::default();
    for (mode, tag) in [(Mode::PassThrough, "pass-through"), (Mode::Match, "match")] {
        say(&format!("{tag}: throughput over {} preloaded events ...", opts.events));
        let mut f = throughput(base, opts, mode, tag)?;
        say(&format!(
            "{tag}: {:.0} events/s in {} transactions; a commit took {:.1} ms on average, {:.1} ms of it waiting for the broker",
            f.events_per_sec, f.transactions, f.commit_ms[0], f.commit_ms[1]
        ));
        say(&format!("{tag}: latency at {} events/s for {} s ...", opts.rate, opts.latency_secs));
        let (samples, n) = latency(base, opts, mode, tag)?;
        f.latency_ms = [percentile(&samples, 0.50), percentile(&samples, 0.99), percentile(&samples, 1.0)];
        f.latency_samples = n;
        say(&format!(
            "{tag}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {n} output records",
            f.latency_ms[0], f.latency_ms[1], f.latency_ms[2]
        ));
        match mode {
            Mode::PassThrough => report.pass_through = f,
            Mode::Match => report.matching = f,
        }
    }
    Ok(report)
}
