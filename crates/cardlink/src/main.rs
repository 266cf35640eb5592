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

/// cardlink: matches card events against merchant offers and issues rewards.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays an event file through the engine (contract section 6).
    Replay(ReplayArgs),
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
    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,
}

/// Failures, by the exit code the contract gives them.
enum Failure {
    /// Bad arguments or an invalid offer file: exit 2.
    Usage(anyhow::Error),
    /// I/O: exit 1.
    Io(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(args),
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

fn create(path: &Option<PathBuf>) -> Result<Option<Box<dyn Write>>, Failure> {
    path.as_ref()
        .map(|p| {
            File::create(p)
                .map(|f| Box::new(BufWriter::with_capacity(1 << 20, f)) as Box<dyn Write>)
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
    let mut replayer = Replayer::new(book, create(&args.rewards)?, create(&args.dead_letters)?);
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
