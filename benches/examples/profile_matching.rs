//! The matching benchmark's workload run once, for profilers: builds the
//! catalogue, warms the engine on the first half of the feed, then applies
//! the second half inside [`timed`] (point callgrind's `--toggle-collect`
//! at it) and prints events/s and reward records per event.
//!
//! `cargo run --release -p cardlink-benches --example profile_matching -- [OFFERS] [EVENTS]`

use std::time::Instant;

use cardlink_benches::{catalogue, feed};
use cardlink_core::{CardEvent, Engine, EventBody, OfferBook, RawEvent, RewardUpdate, parse_offer_file, validate};

const MERCHANTS: usize = 100_000;

#[inline(never)]
fn warm(engine: &mut Engine, events: &[CardEvent<'_>]) {
    for e in events {
        engine.apply(e, &mut |_: &RewardUpdate<'_>| {});
    }
}

#[inline(never)]
fn timed(engine: &mut Engine, events: &[CardEvent<'_>]) -> u64 {
    let mut rewards = 0u64;
    engine.apply_batch(events, &mut |_: &RewardUpdate<'_>| rewards += 1, |_, _| {});
    rewards
}

fn main() {
    let offers: usize = std::env::args().nth(1).map_or(1_000_000, |s| s.parse().expect("a number of offers"));
    // Events timed (and as many warmed first); more gives a profiler a longer window.
    let count: usize = std::env::args().nth(2).map_or(200_000, |s| s.parse().expect("a number of events"));
    let lines = feed(2 * count, MERCHANTS, 50_000, 11);
    let raws: Vec<RawEvent<'_>> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let all: Vec<CardEvent<'_>> = raws.iter().map(|r| validate(r).unwrap()).collect();
    let (warm_up, events) = all.split_at(count);
    let json = serde_json::to_vec(&catalogue(offers, MERCHANTS)).unwrap();
    let mut engine = Engine::new(OfferBook::new(parse_offer_file(&json).unwrap()));
    warm(&mut engine, warm_up);
    // Candidates the index hands the matcher per new purchase (an
    // authorization, or a clearing of an unknown transaction).
    let (mut purchases, mut candidates) = (0u64, 0u64);
    for e in events {
        if let EventBody::Authorization(p) = e.body {
            purchases += 1;
            let m = p.merchant;
            engine.book.for_each_candidate(p.money.currency, m.mid, m.mcc, m.country, |_| candidates += 1);
        }
    }
    // `perf record -D -1 --control fifo:$FIFO` profiles just the timed part.
    let perf = std::env::var_os("PERF_CTL_FIFO");
    let tell_perf = |what: &str| {
        if let Some(fifo) = &perf {
            std::fs::write(fifo, what).expect("perf's control fifo");
        }
    };
    tell_perf("enable\n");
    let start = Instant::now();
    let rewards = timed(&mut engine, events);
    let secs = start.elapsed().as_secs_f64();
    tell_perf("disable\n");
    println!(
        "{offers} offers: {:.2} M events/s ({:.0} ns/event), {:.2} reward records per event, {:.1} candidates per authorization",
        count as f64 / secs / 1e6,
        secs * 1e9 / count as f64,
        rewards as f64 / count as f64,
        candidates as f64 / purchases.max(1) as f64
    );
}
