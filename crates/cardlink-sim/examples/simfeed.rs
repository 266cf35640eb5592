//! Writes a simulated feed and its offers file, and reports the rate.
//!
//! ```text
//! cargo run --release -p cardlink-sim --example simfeed -- [EVENTS] [json|protobuf|none] [FEED] [OFFERS]
//! ```
//! `none` generates the records in memory only (the generator's own rate).

use std::fs::File;
use std::time::Instant;

use cardlink_sim::{SimConfig, Simulator};
use cardlink_wire::Format;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events = args.first().map_or(1_000_000, |s| s.parse().expect("EVENTS is a number"));
    let format = args.get(1).map_or("none", String::as_str);
    let config = SimConfig { events, ..SimConfig::default() };
    let t = Instant::now();
    let n = match format {
        "none" => Simulator::new(&config).count() as u64,
        f => {
            let format = if f == "json" { Format::Json } else { Format::Protobuf };
            let path = args.get(2).map_or("feed.out", String::as_str);
            cardlink_sim::write_feed(&config, format, File::create(path)?)?
        }
    };
    let secs = t.elapsed().as_secs_f64();
    eprintln!("{n} records in {secs:.2} s: {:.2} M records/s ({format})", n as f64 / secs / 1e6);
    if let Some(path) = args.get(3) {
        cardlink_sim::write_offers(&config, File::create(path)?)?;
    }
    Ok(())
}
