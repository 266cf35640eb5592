//! Replay throughput: framing, decoding, validation, matching, the lifecycle
//! and reward encoding, over a simulated feed held in memory (JSON Lines and
//! length-delimited protobuf). The 10-million-event file run is
//! `benches/replay-10m.sh`.

use cardlink_core::{OfferBook, parse_offer_file};
use cardlink_replay::Replayer;
use cardlink_sim::SimConfig;
use cardlink_wire::Format;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: u64 = 500_000;

fn replay(c: &mut Criterion) {
    let config = SimConfig { events: EVENTS, ..SimConfig::default() };
    let offers = parse_offer_file(&serde_json::to_vec(&cardlink_sim::offers(&config)).unwrap()).unwrap();
    let book = OfferBook::new(offers);
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    for (name, format) in [("protobuf", Format::Protobuf), ("json_lines", Format::Json)] {
        let mut feed = Vec::new();
        cardlink_sim::write_feed(&config, format, &mut feed).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                // Rewards are encoded to a sink, as a replay writing them does.
                let mut r =
                    Replayer::new(book.clone(), Some(Box::new(std::io::sink())), Some(Box::new(std::io::sink())));
                r.run(format, &feed[..], "bench", |_| {}).unwrap();
                r.finish().unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
