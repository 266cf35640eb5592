//! Match-and-apply throughput on one core against catalogues of 1 000,
//! 100 000 and 1 000 000 offers over 100 000 merchants. Events are decoded
//! and validated before timing: this measures the engine alone. The engine
//! is warm, as in a long run: the first half of the feed builds the cards'
//! state untimed, and each pass times the second half on a copy of it.
//! Events go through [`Engine::apply_batch`], as the replay's do: it asks
//! memory for the state of the next few events while one is applied.

use std::time::{Duration, Instant};

use cardlink_benches::{catalogue, feed};
use cardlink_core::{CardEvent, Engine, OfferBook, RawEvent, RewardUpdate, parse_offer_file, validate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MERCHANTS: usize = 100_000;
const EVENTS: usize = 200_000;

fn matching(c: &mut Criterion) {
    let lines = feed(2 * EVENTS, MERCHANTS, 50_000, 11);
    let raws: Vec<RawEvent<'_>> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let all: Vec<CardEvent<'_>> = raws.iter().map(|r| validate(r).unwrap()).collect();
    let (warm_up, events) = all.split_at(EVENTS);
    let mut group = c.benchmark_group("match_and_apply");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    let mut rewards = 0u64;
    for offers in [1_000usize, 100_000, 1_000_000] {
        let json = serde_json::to_vec(&catalogue(offers, MERCHANTS)).unwrap();
        let mut warm = Engine::new(OfferBook::new(parse_offer_file(&json).unwrap()));
        for e in warm_up {
            warm.apply(e, &mut |_: &RewardUpdate<'_>| {});
        }
        group.bench_function(format!("{offers}_offers"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Each pass starts from the warm state; copying it and
                    // dropping the result are not timed.
                    let mut engine = warm.clone();
                    let start = Instant::now();
                    engine.apply_batch(events, &mut |_: &RewardUpdate<'_>| rewards += 1, |_, _| {});
                    total += start.elapsed();
                    drop::<Engine>(engine);
                }
                total
            })
        });
    }
    group.finish();
    std::hint::black_box(rewards);
}

criterion_group!(benches, matching);
criterion_main!(benches);
