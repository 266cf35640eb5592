//! The `cardlink` command.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cardlink_core::{OfferBook, parse_offer_file};
use cardlink_replay::{Progress, Replayer};
use cardlink_wire::Format;
use clap::{Parser, Subcommand, ValueEnum};

mod admin;
mod backtest;
mod kafka;
mod logging;
mod memory;
mod signals;

/// The engine allocates small keys per event; mimalloc is markedly faster
/// at that than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// cardlink: matches card events against merchant offers and issues rewards.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines of the long-running commands: human on a terminal, JSON
    /// otherwise (auto), or as given.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Auto)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays an event file through the engine (contract section 6).
    Replay(ReplayArgs),
    /// Replays a recorded feed against candidate offers and reports what
    /// they would have cost (JSON and a self-contained HTML report).
    Backtest(backtest::BacktestArgs),
    /// Writes a simulated network feed and a matching offer file.
    Simulate(SimulateArgs),
    /// Simulates a feed in memory, replays it and prints what happened.
    Demo(DemoArgs),
    /// Runs the live pipeline: card events from Kafka in, rewards out,
    /// exactly once (docs/kafka.md). Stops cleanly on SIGINT or SIGTERM.
    Run(kafka::RunArgs),
    /// Publishes or retires offers on the Kafka offers topic.
    #[command(subcommand)]
    Offers(kafka::OffersCommand),
    /// Measures the live pipeline end to end (events/s, latency) beside a
    /// pass-through pipeline, on fresh topics of a real broker.
    #[command(name = "bench-kafka")]
    BenchKafka(kafka::BenchArgs),
}

/// The simulator's knobs, shared by `simulate` and `demo`.
#[derive(clap::Args)]
struct SimArgs {
    /// Seed: the same seed and sizes give the same feed, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Distinct cards.
    #[arg(long, default_value_t = 50_000)]
    cards: u64,
    /// Distinct merchants.
    #[arg(long, default_value_t = 5_000)]
    merchants: u32,
    /// Offers in the offer file.
    #[arg(long = "offer-count", default_value_t = 400)]
    offer_count: u32,
    /// Malformed or invalid records per thousand.
    #[arg(long = "malformed-per-mille", default_value_t = 2)]
    malformed_per_mille: u32,
    /// Re-sent (duplicate) events per thousand.
    #[arg(long = "duplicate-per-mille", default_value_t = 5)]
    duplicate_per_mille: u32,
    /// First day of the simulated period (UTC).
    #[arg(long, default_value = "2026-05-01")]
    start: chrono::NaiveDate,
    /// Length of the simulated period in days.
    #[arg(long, default_value_t = 30)]
    days: u32,
}

impl SimArgs {
    fn config(&self, events: u64) -> cardlink_sim::SimConfig {
        cardlink_sim::SimConfig {
            seed: self.seed,
            events,
            cards: self.cards,
            merchants: self.merchants,
            offers: self.offer_count,
            malformed_per_mille: self.malformed_per_mille,
            duplicate_per_mille: self.duplicate_per_mille,
            start: self.start.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
            days: self.days,
        }
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Where to write the feed: JSON Lines (.jsonl) or length-delimited protobuf (.pb).
    #[arg(long, required_unless_present = "kafka")]
    events: Option<PathBuf>,
    /// Where to write the matching offer file (optional with --kafka).
    #[arg(long, required_unless_present = "kafka")]
    offers: Option<PathBuf>,
    /// Produce the feed to the Kafka events topic (keyed by card token)
    /// instead of a file.
    #[arg(long, conflicts_with = "events")]
    kafka: bool,
    /// With --kafka: records per second; as fast as possible when absent.
    #[arg(long, requires = "kafka")]
    rate: Option<u64>,
    #[command(flatten)]
    kafka_config: kafka::ConfigArg,
    /// Records in the feed (duplicates and malformed records included).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Feed format, when the extension does not tell.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Records in the simulated feed.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Also write rewards.jsonl, ledger.json, dead-letters.jsonl, offers.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Serve the admin API and the status page during the demo, on ADDR
    /// (127.0.0.1:9180 when no address is given).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9180")]
    admin: Option<String>,
    /// With --admin: keep serving this many seconds after the demo, so a
    /// person can look.
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "admin")]
    linger: u64,
    #[command(flatten)]
    sim: SimArgs,
}

/// Event file formats.
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// JSON Lines.
    Json,
    /// Length-delimited protobuf `cardlink.v1.CardEvent`.
    Protobuf,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Json => Format::Json,
            FormatArg::Protobuf => Format::Protobuf,
        }
    }
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Offer file: a JSON array of offers.
    #[arg(long)]
    offers: PathBuf,
    /// Event file: JSON Lines (.jsonl, .json, .ndjson) or length-delimited
    /// protobuf (.pb, .bin, .protobuf).
    #[arg(long)]
    events: PathBuf,
    /// Where to write reward records (JSON Lines).
    #[arg(long)]
    rewards: Option<PathBuf>,
    /// Where to write the ledger (JSON).
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Where to write rejected events with their reasons (JSON Lines).
    #[arg(long = "dead-letters")]
    dead_letters: Option<PathBuf>,
    /// Event file format, when the extension does not tell.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Forget a card's event ids and closed transactions this many days
    /// after its newest event, bounding memory; by default everything is
    /// remembered, as R2 reads (docs/reliability.md, "State retention").
    #[arg(long = "retention-days", value_name = "DAYS")]
    retention_days: Option<std::num::NonZeroU32>,
    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,
}

/// Failures, by the exit code the contract gives them.
pub(crate) enum Failure {
    /// Bad arguments or an invalid offer file: exit 2.
    Usage(anyhow::Error),
    /// I/O: exit 1.
    Io(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::set_format(cli.log_format);
    let result = match cli.command {
        Command::Replay(args) => replay(args),
        Command::Backtest(args) => backtest::backtest(args),
        Command::Simulate(args) => simulate(args),
        Command::Demo(args) => demo(args),
        Command::Run(args) => kafka::run(args),
        Command::Offers(command) => kafka::offers(command),
        Command::BenchKafka(args) => kafka::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("cardlink: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Io(e)) => {
            eprintln!("cardlink: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn format_of(path: &Path, given: Option<FormatArg>) -> Result<Format, Failure> {
    if let Some(f) = given {
        return Ok(f.into());
    }
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("jsonl" | "json" | "ndjson") => Ok(Format::Json),
        Some("pb" | "bin" | "protobuf" | "ldpb") => Ok(Format::Protobuf),
        _ => Err(Failure::Usage(anyhow::anyhow!(
            "cannot tell the format of {} from its extension: pass --format json or --format protobuf",
            path.display()
        ))),
    }
}

fn create(path: &Option<PathBuf>) -> Result<Option<Box<dyn Write + Send>>, Failure> {
    path.as_ref()
        .map(|p| {
            File::create(p)
                .map(|f| Box::new(BufWriter::with_capacity(1 << 20, f)) as Box<dyn Write + Send>)
                .with_context(|| format!("cannot create {}", p.display()))
                .map_err(Failure::Io)
        })
        .transpose()
}

/// Reads and validates an offer file: exit 2 when it is invalid.
fn load_offers(path: &Path) -> Result<OfferBook, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read offer file {}", path.display()))
        .map_err(Failure::Io)?;
    let offers = parse_offer_file(&bytes)
        .with_context(|| format!("invalid offer file {}", path.display()))
        .map_err(Failure::Usage)?;
    Ok(OfferBook::new(offers))
}

fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let format = format_of(&args.events, args.format)?;
    let book = load_offers(&args.offers)?;
    let events = File::open(&args.events)
        .with_context(|| format!("cannot open event file {}", args.events.display()))
        .map_err(Failure::Io)?;
    let mut replayer =
        Replayer::new(book, create(&args.rewards)?, create(&args.dead_letters)?).with_retention(args.retention_days);
    let mut progress = Progress::new(!args.quiet && io::stderr().is_terminal());
    let name = args.events.file_name().map_or_else(|| "events".into(), |n| n.to_string_lossy().into_owned());
    replayer
        .run(format, BufReader::with_capacity(1 << 20, events), &name, |n| progress.update(n))
        .with_context(|| format!("replaying {}", args.events.display()))
        .map_err(Failure::Io)?;
    progress.done();
    let (ledger, summary) = replayer.finish().context("writing outputs").map_err(Failure::Io)?;
    if let Some(path) = &args.ledger {
        std::fs::write(path, ledger.to_json_pretty() + "\n")
            .with_context(|| format!("cannot write ledger {}", path.display()))
            .map_err(Failure::Io)?;
    }
    if !args.quiet {
        print!("{summary}");
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> Result<(), Failure> {
    let config = args.sim.config(args.count);
    if let Some(path) = &args.offers {
        let offers =
            File::create(path).with_context(|| format!("cannot create {}", path.display())).map_err(Failure::Io)?;
        cardlink_sim::write_offers(&config, BufWriter::new(offers)).context("writing offers").map_err(Failure::Io)?;
    }
    if args.kafka {
        return kafka::simulate(&config, args.rate, &args.kafka_config);
    }
    let (Some(events_path), Some(offers_path)) = (&args.events, &args.offers) else {
        return Err(Failure::Usage(anyhow::anyhow!("--events and --offers are required without --kafka")));
    };
    let format = format_of(events_path, args.format)?;
    let events = File::create(events_path)
        .with_context(|| format!("cannot create {}", events_path.display()))
        .map_err(Failure::Io)?;
    let started = std::time::Instant::now();
    let n = cardlink_sim::write_feed(&config, format, BufWriter::with_capacity(1 << 20, events))
        .context("writing the feed")
        .map_err(Failure::Io)?;
    eprintln!(
        "wrote {n} records to {} and {} offers to {} in {:.1} s",
        events_path.display(),
        config.offers,
        offers_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo(args: DemoArgs) -> Result<(), Failure> {
    let config = args.sim.config(args.count);
    let offers_json = serde_json::to_vec(&cardlink_sim::offers(&config)).expect("offers serialize");
    let offers = parse_offer_file(&offers_json).context("the simulator's offers").map_err(Failure::Io)?;
    let offer_count = offers.len();
    let (rewards, dead_letters) = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(Failure::Io)?;
            std::fs::write(dir.join("offers.json"), &offers_json)
                .context("writing offers.json")
                .map_err(Failure::Io)?;
            (create(&Some(dir.join("rewards.jsonl")))?, create(&Some(dir.join("dead-letters.jsonl")))?)
        }
        None => (None, None),
    };
    println!(
        "cardlink demo: {} simulated network events from {} cards at {} merchants over {} days,\n\
         matched against {} offers (seed {}). Events are encoded as protobuf and replayed\n\
         through the same engine as `cardlink replay` and the Kafka pipeline.\n",
        config.events, config.cards, config.merchants, config.days, offer_count, config.seed
    );
    let mut replayer = Replayer::new(OfferBook::new(offers), rewards, dead_letters);
    let mut progress = Progress::new(io::stderr().is_terminal());
    let started = std::time::Instant::now();
    let mut buf = Vec::with_capacity(512);
    let admin = args.admin.as_deref().map(admin::DemoAdmin::start).transpose()?;
    for (i, record) in cardlink_sim::Simulator::new(&config).enumerate() {
        buf.clear();
        match &record {
            cardlink_sim::SimRecord::Event(e) => prost::Message::encode(e, &mut buf).expect("a Vec grows"),
            cardlink_sim::SimRecord::Garbage(g) => buf.extend_from_slice(g),
        }
        replayer
            .feed(Format::Protobuf, &buf, || format!("simulated:{}", i + 1))
            .context("writing outputs")
            .map_err(Failure::Io)?;
        if i % 65_536 == 0 {
            progress.update(i as u64);
        }
        if i % 1024 == 0 {
            if let Some(a) = &admin {
                a.serve(&replayer.engine, i as u64);
            }
        }
    }
    progress.done();
    let elapsed = started.elapsed().as_secs_f64();
    // The admin server keeps answering from the final state while it lingers.
    let lingering = admin.map(|a| (a, if args.linger > 0 { replayer.engine.clone() } else { Default::default() }));
    let (ledger, summary) = replayer.finish().context("writing outputs").map_err(Failure::Io)?;
    if let Some(dir) = &args.out {
        std::fs::write(dir.join("ledger.json"), ledger.to_json_pretty() + "\n")
            .context("writing ledger.json")
            .map_err(Failure::Io)?;
    }
    print!("{summary}");
    println!(
        "\n{} events simulated and replayed in {:.2} s ({:.0} events/s, simulation included)",
        config.events,
        elapsed,
        config.events as f64 / elapsed.max(1e-9)
    );
    if let Some(dir) = &args.out {
        println!("outputs in {}/: offers.json rewards.jsonl ledger.json dead-letters.jsonl", dir.display());
    } else {
        println!("run `cardlink demo --out demo-out` to keep the rewards, the ledger and the dead letters");
    }
    if let Some((a, engine)) = lingering {
        a.linger(&engine, config.events, args.linger);
    }
    Ok(())
}
