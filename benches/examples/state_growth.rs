//! How per-card state grows over a long simulated feed with state
//! retention: the soak's feed (seed 53, 50 000 cards unless told, 120 days) through the
//! engine, printing the store's bytes by part every 100 000 events.
//!
//! `cargo run --release -p cardlink-benches --example state_growth -- [RETENTION_DAYS] [EVENTS] [CARDS]`

use cardlink_core::{CardStore, OfferBook, RewardUpdate, WholeBudget, apply_with, parse_offer_file, validate};
use cardlink_sim::{SimConfig, SimRecord};
use prost::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let days: u32 = args.next().map_or(7, |s| s.parse().expect("retention days"));
    let events: u64 = args.next().map_or(1_800_000, |s| s.parse().expect("events"));
    let cards: u64 = args.next().map_or(SimConfig::default().cards, |s| s.parse().expect("cards"));
    let sim = SimConfig { seed: 53, events, days: 120, cards, ..SimConfig::default() };
    let json = serde_json::to_vec(&cardlink_sim::offers(&sim)).unwrap();
    let mut book = OfferBook::new(parse_offer_file(&json).unwrap());
    let mut store = CardStore::with_retention(std::num::NonZeroU32::new(days));
    let mut buf = Vec::new();
    println!(
        "events | cards | store MiB | seen | activations | transactions | archived entries | live entries | transactions held | never cleared"
    );
    for (i, record) in cardlink_sim::Simulator::new(&sim).enumerate() {
        if let SimRecord::Event(e) = record {
            buf.clear();
            e.encode(&mut buf).unwrap();
            if let Ok(raw) = cardlink_wire::decode_card_event(&buf) {
                if let Ok(event) = validate(&raw) {
                    let _ = apply_with(&mut book, &mut store, &event, &mut WholeBudget, &mut |_: &RewardUpdate<'_>| {});
                }
            }
        }
        if (i + 1) % 100_000 == 0 {
            let (mut seen, mut act, mut tx, mut archived, mut live, mut open, mut held) = (0, 0, 0, 0, 0, 0, 0);
            for (_, c) in store.iter() {
                seen += c.seen.heap_bytes();
                act += c.activations.heap_bytes();
                tx += c.transactions.heap_bytes();
                archived += c.transactions.archived().len();
                live += c.live.len();
                held += c.transactions.len();
                open += c.transactions.iter().filter(|(_, t)| t.cleared.is_none()).count();
            }
            let mib = |b: usize| b as f64 / 1048576.0;
            println!(
                "{} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {archived} | {live} | {held} | {open}",
                i + 1,
                store.len(),
                mib(store.heap_bytes()),
                mib(seen),
                mib(act),
                mib(tx)
            );
        }
    }
}
