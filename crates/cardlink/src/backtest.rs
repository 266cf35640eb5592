//! `cardlink backtest`: what would these offers have cost on a recorded feed?

use std::fs::File;
use std::io::{self, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context;
use cardlink_backtest::{Backtest, Options, Report, Scenario, Window};
use cardlink_core::parse_offer_file;
use cardlink_replay::Progress;

use crate::{Failure, FormatArg, create, format_of};

#[derive(clap::Args)]
pub(crate) struct BacktestArgs {
    /// Candidate offer file (a JSON array of offers), as PATH or NAME=PATH.
    /// Repeat to compare several files side by side: each is a scenario run
    /// over the same feed.
    #[arg(long, required = true, value_name = "[NAME=]OFFERS.json")]
    offers: Vec<String>,
    /// Recorded feed: JSON Lines (.jsonl, .json, .ndjson) or
    /// length-delimited protobuf (.pb, .bin, .protobuf).
    #[arg(long)]
    events: PathBuf,
    /// Event file format, when the extension does not tell.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Only events at or after this instant (RFC 3339, or a date taken as
    /// UTC midnight).
    #[arg(long)]
    from: Option<String>,
    /// Only events before this instant (RFC 3339, or a date taken as UTC
    /// midnight).
    #[arg(long)]
    until: Option<String>,
    /// Where to write the HTML report (one self-contained file).
    #[arg(long, value_name = "REPORT.html")]
    report: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, value_name = "REPORT.json")]
    json: Option<PathBuf>,
    /// Where to write rejected events with their reasons (JSON Lines).
    #[arg(long = "dead-letters")]
    dead_letters: Option<PathBuf>,
    /// Merchants listed per offer.
    #[arg(long, default_value_t = 10)]
    top_merchants: usize,
    /// Competing offer pairs listed per scenario.
    #[arg(long, default_value_t = 20)]
    top_pairs: usize,
    /// Offers per scenario drawn with their own charts in the HTML report
    /// (those with the most rewards); every offer is in its tables.
    #[arg(long, default_value_t = 12)]
    detail_offers: usize,
    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,
}

/// Splits `NAME=PATH`; a plain path is named by its file stem. An
/// argument that names an existing file is always a path.
fn scenario_arg(arg: &str) -> (String, PathBuf) {
    if !Path::new(arg).exists()
        && let Some((name, path)) = arg.split_once('=')
        && !name.is_empty()
        && !name.contains(['/', '\\'])
    {
        return (name.to_string(), PathBuf::from(path));
    }
    let path = PathBuf::from(arg);
    let name = path.file_stem().map_or_else(|| arg.to_string(), |s| s.to_string_lossy().into_owned());
    (name, path)
}

fn bound(s: &Option<String>, flag: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, Failure> {
    s.as_deref()
        .map(|s| Window::parse_bound(s).with_context(|| format!("--{flag}")).map_err(Failure::Usage))
        .transpose()
}

pub(crate) fn backtest(args: BacktestArgs) -> Result<(), Failure> {
    if args.report.is_none() && args.json.is_none() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "nothing to write: give --report REPORT.html and/or --json REPORT.json"
        )));
    }
    let format = format_of(&args.events, args.format)?;
    let window = Window { from: bound(&args.from, "from")?, until: bound(&args.until, "until")? };
    if let (Some(f), Some(u)) = (window.from, window.until)
        && f >= u
    {
        return Err(Failure::Usage(anyhow::anyhow!("--from must be before --until")));
    }
    let mut scenarios = Vec::with_capacity(args.offers.len());
    for arg in &args.offers {
        let (mut name, path) = scenario_arg(arg);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read offer file {}", path.display()))
            .map_err(Failure::Io)?;
        let offers = parse_offer_file(&bytes)
            .with_context(|| format!("invalid offer file {}", path.display()))
            .map_err(Failure::Usage)?;
        // Two files with one stem (a/offers.json, b/offers.json) stay apart.
        if scenarios.iter().any(|s: &Scenario| s.name == name) {
            name = format!("{name} ({})", scenarios.len() + 1);
        }
        scenarios.push(Scenario { name, source: path.display().to_string(), offers });
    }
    let events = File::open(&args.events)
        .with_context(|| format!("cannot open event file {}", args.events.display()))
        .map_err(Failure::Io)?;
    let options = Options {
        window,
        top_merchants: args.top_merchants,
        top_pairs: args.top_pairs,
        events: args.events.display().to_string(),
    };
    let dead_letters = create(&args.dead_letters)?.map(|w| w as Box<dyn io::Write>);
    let mut backtest = Backtest::new(scenarios, options, dead_letters);
    let mut progress = Progress::new(!args.quiet && io::stderr().is_terminal());
    let name = args.events.file_name().map_or_else(|| "events".into(), |n| n.to_string_lossy().into_owned());
    backtest
        .run(format, BufReader::with_capacity(1 << 20, events), &name, |n| progress.update(n))
        .with_context(|| format!("backtesting {}", args.events.display()))
        .map_err(Failure::Io)?;
    progress.done();
    let report = backtest.finish().context("writing dead letters").map_err(Failure::Io)?;
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json_pretty())
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Io)?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, cardlink_backtest::render_html(&report, args.detail_offers))
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Io)?;
    }
    if !args.quiet {
        print!("{}", summary(&report));
    }
    Ok(())
}

/// A few lines for the terminal: the feed, and each scenario's totals.
fn summary(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let f = &r.feed;
    let _ = writeln!(
        s,
        "feed: {} records, {} processed, {} duplicate, {} rejected, {} outside the window; {} cards, {} purchases",
        f.records, f.processed, f.duplicate, f.rejected, f.outside_window, f.cards, f.purchases
    );
    for sc in &r.scenarios {
        let t = &sc.totals;
        let cost: Vec<String> = t.cost.iter().map(|(u, v)| format!("{v} {u}")).collect();
        let _ = writeln!(
            s,
            "{}: {} offers, cost {}, {} rewarded transactions, {} cards, {} budgets exhausted, {} contested purchases",
            sc.name,
            sc.offer_count,
            if cost.is_empty() { "0".into() } else { cost.join(" + ") },
            t.rewarded_transactions,
            t.distinct_cards,
            t.budgets_exhausted,
            sc.competition.contested_purchases
        );
    }
    s
}
