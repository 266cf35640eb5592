//! Property tests of the engine's invariants over random offers and feeds.

mod common;

use std::collections::BTreeMap;

use cardlink_core::{Engine, Ledger, OfferBook, RawEvent, RewardKind, RewardStatus, RewardUpdate, parse_offer_file};
use common::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// One step of a card's feed.
#[derive(Debug, Clone)]
struct Step {
    card: u8,
    kind: u8,
    tx: u8,
    cents: u32,
    hour: u8,
    reuse_id: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (0u8..4, 0u8..6, 0u8..5, 0u32..30_000, 0u8..24, prop::bool::weighted(0.05))
        .prop_map(|(card, kind, tx, cents, hour, reuse_id)| Step { card, kind, tx, cents, hour, reuse_id })
}

/// Turns steps into events; event ids are unique unless a step reuses one.
fn events(steps: &[Step]) -> Vec<Value> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = if s.reuse_id && i > 0 { format!("e{}", i - 1) } else { format!("e{i}") };
            let tx = format!("t{}", s.tx);
            let amount = format!("{}.{:02}", s.cents / 100, s.cents % 100);
            let e = match s.kind {
                0 | 1 => auth(&id, &tx, &amount),
                2 => clearing(&id, &tx, &amount),
                3 => reversal(&id, &tx),
                4 => refund(&id, &tx, &format!("{}.{:02}", s.cents / 400, s.cents % 100)),
                _ => activation(&id, "act"),
            };
            with(e, json!({"card_token": format!("c{}", s.card), "occurred_at": format!("2026-05-04T{:02}:15:00-04:00", s.hour)}))
        })
        .collect()
}

/// A catalogue exercising caps, budgets, limits and stacking.
fn catalogue(budget_cents: Option<u32>, cap_cents: u32, per_card: u64) -> Vec<Value> {
    let money = |c: u32| format!("{}.{:02}", c / 100, c % 100);
    let mut b = json!({});
    if let Some(c) = budget_cents {
        b["budget"] = json!(money(c));
    }
    vec![
        offer("pct", json!({"percent": "10"}), with(b.clone(), json!({"max_reward": money(cap_cents)}))),
        offer(
            "fix",
            json!({"fixed": "2.50"}),
            with(b.clone(), json!({"min_spend": "20.00", "max_per_card": per_card})),
        ),
        offer("pts", json!({"points_per_unit": "3"}), with(b.clone(), json!({"max_reward": "400"}))),
        offer(
            "act",
            json!({"percent": "25"}),
            with(b, json!({"activation_required": true, "hours": {"from": "22:00", "until": "06:00"}})),
        ),
    ]
}

fn engine_for(offers: &[Value]) -> Engine {
    let offers = parse_offer_file(serde_json::to_string(offers).unwrap().as_bytes()).unwrap();
    Engine::new(OfferBook::new(offers))
}

/// A reward record: offer, status, kind, value, delta.
type Record = (String, RewardStatus, RewardKind, Decimal, Decimal);

/// Runs the feed; returns the engine and every record.
fn replay(offers: &[Value], feed: &[Value]) -> (Engine, Vec<Record>) {
    let mut engine = engine_for(offers);
    let mut records = Vec::new();
    for e in feed {
        let text = e.to_string();
        let raw: RawEvent<'_> = serde_json::from_str(&text).unwrap();
        engine.process(&raw, &mut |u: &RewardUpdate<'_>| {
            records.push((u.offer_id.to_string(), u.status, u.kind, u.value, u.delta));
        });
        assert_state_consistent(&engine);
    }
    (engine, records)
}

/// The book's usage equals what the cards hold, and no budget is passed (R6).
fn assert_state_consistent(engine: &Engine) {
    let mut used: BTreeMap<u32, (Decimal, u64)> = BTreeMap::new();
    for (_, card) in engine.cards.iter() {
        let mut live_per_offer: BTreeMap<u32, u32> = BTreeMap::new();
        for tx in card.transactions.values() {
            for r in &tx.rewards {
                let e = used.entry(r.offer.0).or_default();
                e.0 += r.value;
                if r.is_live() {
                    e.1 += 1;
                    *live_per_offer.entry(r.offer.0).or_default() += 1;
                }
                assert!(r.value >= Decimal::ZERO);
                assert!(r.status != RewardStatus::Cancelled || r.value.is_zero());
            }
        }
        for (offer, n) in live_per_offer {
            assert_eq!(card.live_count(cardlink_core::OfferIdx(offer)), n);
        }
    }
    for (idx, slot) in engine.book.slots() {
        let (u, live) = used.get(&idx.0).copied().unwrap_or_default();
        assert_eq!(slot.usage.used, u, "usage of {}", slot.offer.id);
        assert_eq!(slot.usage.live, live, "live count of {}", slot.offer.id);
        if let Some(b) = slot.offer.budget {
            assert!(slot.usage.used <= b, "R6: {} used {} of {}", slot.offer.id, slot.usage.used, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// R6 and R7 hold after every event, and usage always equals the sum of
    /// the cards' rewards; no cash value passes max_reward; every delta
    /// chains from the previous value.
    #[test]
    fn budgets_caps_and_usage_hold(steps in prop::collection::vec(step(), 1..120), budget in prop::option::of(0u32..5_000), cap in 1u32..2_000, per_card in 1u64..4) {
        let offers = catalogue(budget, cap, per_card);
        let (engine, records) = replay(&offers, &events(&steps));
        let cap = Decimal::new(cap as i64, 2);
        for (offer, status, kind, value, _) in &records {
            if offer == "pct" { prop_assert!(*value <= cap); }
            if offer == "pts" { prop_assert!(*value <= Decimal::from(400)); }
            if let RewardKind::Cash(c) = kind { prop_assert!(value.scale() <= c.exponent()); }
            prop_assert!(*status != RewardStatus::Cancelled || value.is_zero());
        }
        // Deltas chain: per offer they add up to the offer's usage.
        let total_delta: BTreeMap<String, Decimal> = records.iter().fold(BTreeMap::new(), |mut m, (o, _, _, _, d)| { *m.entry(o.clone()).or_default() += *d; m });
        for (_, slot) in engine.book.slots() {
            prop_assert_eq!(total_delta.get(&*slot.offer.id).copied().unwrap_or_default(), slot.usage.used);
        }
    }

    /// Without budgets, a card's rewards depend on its own events only: any
    /// interleaving of the cards' feeds that keeps each card's order gives
    /// the same ledger.
    #[test]
    fn interleaving_cards_keeps_the_ledger(steps in prop::collection::vec(step(), 1..120), cap in 1u32..2_000, seed in any::<u64>()) {
        let offers = catalogue(None, cap, 2);
        let feed = events(&steps);
        // A different interleaving: a stable shuffle of whole cards' turns.
        let mut by_card: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in &feed {
            by_card.entry(e["card_token"].as_str().unwrap().to_string()).or_default().push(e.clone());
        }
        let mut queues: Vec<std::collections::VecDeque<Value>> = by_card.into_values().map(Into::into).collect();
        let mut other = Vec::new();
        let mut x = seed | 1;
        while queues.iter().any(|q| !q.is_empty()) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            let pick = live[(x % live.len() as u64) as usize];
            other.push(queues[pick].pop_front().unwrap());
        }
        let (a, _) = replay(&offers, &feed);
        let (b, _) = replay(&offers, &other);
        let la = Ledger::build(&a.book, [&a.cards], &a.counters);
        let lb = Ledger::build(&b.book, [&b.cards], &b.counters);
        prop_assert_eq!(la, lb);
    }

    /// The same feed twice gives the same records and the same ledger.
    #[test]
    fn replay_is_deterministic(steps in prop::collection::vec(step(), 1..80), budget in prop::option::of(0u32..3_000)) {
        let offers = catalogue(budget, 500, 2);
        let feed = events(&steps);
        let (a, ra) = replay(&offers, &feed);
        let (b, rb) = replay(&offers, &feed);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(Ledger::build(&a.book, [&a.cards], &a.counters), Ledger::build(&b.book, [&b.cards], &b.counters));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Applying a batch (which prefetches coming events' state) gives the
    /// records, outcomes and ledger of applying each event in turn
    /// (R2–R11 unchanged by the batch path).
    #[test]
    fn a_batch_applies_as_events_one_by_one(steps in prop::collection::vec(step(), 1..120), budget in prop::option::of(0u32..3_000)) {
        let offers = catalogue(budget, 500, 2);
        let texts: Vec<String> = events(&steps).iter().map(Value::to_string).collect();
        let raws: Vec<RawEvent<'_>> = texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
        let valid: Vec<_> = raws.iter().filter_map(|r| cardlink_core::validate(r).ok()).collect();
        let (mut one, mut one_records, mut one_outcomes) = (engine_for(&offers), Vec::<String>::new(), Vec::new());
        for e in &valid {
            one_outcomes.push(one.apply(e, &mut |u: &RewardUpdate<'_>| one_records.push(format!("{u:?}"))));
        }
        let (mut batch, mut batch_records, mut batch_outcomes) = (engine_for(&offers), Vec::<String>::new(), Vec::new());
        batch.apply_batch(&valid, &mut |u: &RewardUpdate<'_>| batch_records.push(format!("{u:?}")), |i, o| batch_outcomes.push((i, o)));
        prop_assert_eq!(one_records, batch_records);
        prop_assert_eq!(one_outcomes, batch_outcomes.into_iter().enumerate().map(|(k, (i, o))| { assert_eq!(k, i); o }).collect::<Vec<_>>());
        prop_assert_eq!(
            Ledger::build(&one.book, [&one.cards], &one.counters),
            Ledger::build(&batch.book, [&batch.cards], &batch.counters)
        );
    }
}
