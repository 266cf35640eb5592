//! The matching benchmark's workload run once, for profilers: builds the
//! catalogue, warms the engine on the first half of the feed, then applies
//! the second half inside [`timed`] (point callgrind's `--toggle-collect`
//! at it) and prints events/s and reward records per event.
//!
//! `cargo run --release -p cardlink-benches --example profile_matching -- [OFFERS]`

use std::time::Instant;

use cardlink_benches::{catalogue, feed};
use cardlink_core::{CardEvent, Engine, EventBody, OfferBook, RawEvent, RewardUpdate, parse_offer_file, validate};

const MERCHANTS: usize = 100_000;
const EVENTS: usize = 200_000;

#[inline(never)]
fn warm(engine: &mut Engine, events: &[CardEvent<'_>]) {
    for e in events {
        engine.apply(e, &mut |_: &RewardUpdate<'_>| {});
    }
}

#[inline(never)]
fn timed(engine: &mut Engine, events: &[CardEvent<'_>]) -> u64 {
    let mut rewards = 0u64;
    for e in events {
        engine.apply(e, &mut |_: &RewardUpdate<'_>| rewards += 1);
    }
    rewards
}

fn main() {
    let offers: usize = std::env::args().nth(1).map_or(1_000_000, |s| s.parse().expect("a number of offers"));
    let lines = feed(2 * EVENTS, MERCHANTS, 50_000, 11);
    let raws: Vec<RawEvent<'_>> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let all: Vec<CardEvent<'_>> = raws.iter().map(|r| validate(r).unwrap()).collect();
    let (warm_up, events) = all.split_at(EVENTS);
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
    let start = Instant::now();
    let rewards = timed(&mut engine, events);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{offers} offers: {:.2} M events/s ({:.0} ns/event), {:.2} reward records per event, {:.1} candidates per authorization",
        EVENTS as f64 / secs / 1e6,
        secs * 1e9 / EVENTS as f64,
        rewards as f64 / EVENTS as f64,
        candidates as f64 / purchases.max(1) as f64
    );
}
