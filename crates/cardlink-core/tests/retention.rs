//! State retention (issue 5, "Limits"): with a retention of N days a card
//! forgets event ids and closed transactions once its newest event is more
//! than N days newer than they are. These tests pin down what that means
//! for duplicates (R2), the lifecycle (R8–R11), the ledger and budgets,
//! and that a retention longer than the feed changes nothing.

mod common;

use std::num::NonZeroU32;

use cardlink_core::{CardStore, Engine, Ledger, OfferBook, Outcome, RawEvent, RewardUpdate, parse_offer_file};
use common::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// An engine whose cards remember for `days` (None: for ever).
fn engine(offers: &[Value], days: Option<u32>) -> Engine {
    let offers = parse_offer_file(serde_json::to_string(offers).unwrap().as_bytes()).unwrap();
    let retention = days.map(|d| NonZeroU32::new(d).unwrap());
    Engine { cards: CardStore::with_retention(retention), ..Engine::new(OfferBook::new(offers)) }
}

/// Runs `events`; one line per effect, as the rule tests write them.
fn run_with(offers: &[Value], events: &[Value], days: Option<u32>) -> (Vec<String>, Engine) {
    let mut engine = engine(offers, days);
    let mut lines = Vec::new();
    for e in events {
        let text = e.to_string();
        let raw: RawEvent<'_> = serde_json::from_str(&text).unwrap();
        let id = e["event_id"].as_str().unwrap().to_string();
        let mut records = Vec::new();
        let outcome = engine.process(&raw, &mut |u: &RewardUpdate<'_>| {
            let d = u.kind.digits();
            records.push(format!(
                "{} {} {} {} {}",
                u.event_id,
                u.offer_id,
                u.status.as_str(),
                cardlink_core::money::format_fixed(u.value, d),
                cardlink_core::money::format_fixed(u.delta, d)
            ));
        });
        match outcome {
            Outcome::Processed => lines.extend(records),
            Outcome::Duplicate => lines.push(format!("{id} DUPLICATE")),
            Outcome::Rejected(r) => lines.push(format!("{id} REJECTED {}", r.reason.as_str())),
        }
    }
    (lines, engine)
}

/// `event` on day `day` of May 2026 (local noon at -04:00).
fn on(day: u32, event: Value) -> Value {
    let (month, d) = if day <= 31 {
        (5, day)
    } else if day <= 61 {
        (6, day - 31)
    } else {
        (7, day - 61)
    };
    with(event, json!({"occurred_at": format!("2026-{month:02}-{d:02}T12:00:00-04:00")}))
}

fn ten_percent() -> Vec<Value> {
    vec![offer("ten", json!({"percent": "10"}), json!({}))]
}

fn check(days: Option<u32>, events: &[Value], expected: &[&str]) {
    let (lines, _) = run_with(&ten_percent(), events, days);
    assert_eq!(lines, expected, "retention {days:?}");
}

#[test]
fn r2_duplicates_within_the_retention_are_duplicates() {
    let feed = [on(1, auth("e1", "t1", "20.00")), on(20, auth("e2", "t2", "10.00")), on(21, auth("e1", "t1", "20.00"))];
    check(Some(30), &feed, &["e1 ten PENDING 2.00 2.00", "e2 ten PENDING 1.00 1.00", "e1 DUPLICATE"]);
}

#[test]
fn r2_an_expired_duplicate_is_processed_as_new() {
    // A resent CLEARING after both its id and its (closed) transaction are
    // forgotten is judged as a clearing without authorization: a second
    // CONFIRMED reward. Unlimited retention keeps it a duplicate.
    let feed = [
        on(1, auth("e1", "t1", "20.00")),
        on(2, clearing("e2", "t1", "20.00")),
        on(40, auth("e3", "t2", "10.00")),
        on(41, clearing("e2", "t1", "20.00")),
    ];
    let first = ["e1 ten PENDING 2.00 2.00", "e2 ten CONFIRMED 2.00 0.00", "e3 ten PENDING 1.00 1.00"];
    let mut expired = first.to_vec();
    expired.push("e2 ten CONFIRMED 2.00 2.00");
    check(Some(30), &feed, &expired);
    let mut kept = first.to_vec();
    kept.push("e2 DUPLICATE");
    check(None, &feed, &kept);
    // The clock is the card's newest event: day 40 is 38 days after the
    // clearing, so 38 days or more keep it.
    check(Some(38), &feed, &kept);
    check(Some(37), &feed, &expired);
}

#[test]
fn r11_a_refund_of_a_forgotten_transaction_changes_nothing() {
    let feed = [
        on(1, auth("e1", "t1", "20.00")),
        on(1, clearing("e2", "t1", "20.00")),
        on(50, auth("e3", "t2", "10.00")),
        on(51, refund("e4", "t1", "20.00")),
    ];
    let first = ["e1 ten PENDING 2.00 2.00", "e2 ten CONFIRMED 2.00 0.00", "e3 ten PENDING 1.00 1.00"];
    check(Some(30), &feed, &first);
    let mut kept = first.to_vec();
    kept.push("e4 ten CANCELLED 0.00 -2.00");
    check(None, &feed, &kept);
}

#[test]
fn r8_r9_an_open_authorization_is_never_forgotten() {
    // Pending money stays settleable however late the clearing comes.
    let feed =
        [on(1, auth("e1", "t1", "20.00")), on(70, auth("e2", "t2", "10.00")), on(71, clearing("e3", "t1", "30.00"))];
    check(Some(7), &feed, &["e1 ten PENDING 2.00 2.00", "e2 ten PENDING 1.00 1.00", "e3 ten CONFIRMED 3.00 1.00"]);
}

#[test]
fn r10_a_reversed_transaction_is_forgotten_like_a_cleared_one() {
    let feed = [
        on(1, auth("e1", "t1", "20.00")),
        on(1, reversal("e2", "t1")),
        on(40, auth("e3", "t2", "10.00")),
        on(41, clearing("e4", "t1", "20.00")),
    ];
    let first = ["e1 ten PENDING 2.00 2.00", "e2 ten CANCELLED 0.00 -2.00", "e3 ten PENDING 1.00 1.00"];
    let mut expired = first.to_vec();
    expired.push("e4 ten CONFIRMED 2.00 2.00");
    check(Some(30), &feed, &expired);
    // Remembered, the clearing settles the reversed authorization: nothing.
    check(None, &feed, &first);
}

#[test]
fn a_transaction_counts_from_the_last_event_that_named_it() {
    // The refund on day 25 renews t1: on day 50 it is 25 days old.
    let feed = [
        on(1, auth("e1", "t1", "20.00")),
        on(1, clearing("e2", "t1", "20.00")),
        on(25, refund("e3", "t1", "5.00")),
        on(50, auth("e4", "t2", "10.00")),
        on(51, refund("e5", "t1", "5.00")),
    ];
    check(
        Some(30),
        &feed,
        &[
            "e1 ten PENDING 2.00 2.00",
            "e2 ten CONFIRMED 2.00 0.00",
            "e3 ten CONFIRMED 1.50 -0.50",
            "e4 ten PENDING 1.00 1.00",
            "e5 ten CONFIRMED 1.00 -0.50",
        ],
    );
}

#[test]
fn forgotten_rewards_keep_counting_in_the_ledger_budgets_and_limits() {
    let offers = [offer("ten", json!({"percent": "10"}), json!({"budget": "2.50", "max_per_card": 2}))];
    let feed = [
        on(1, auth("e1", "t1", "20.00")),
        on(1, clearing("e2", "t1", "20.00")),
        on(40, auth("e3", "t2", "10.00")),
        on(41, auth("e4", "t3", "10.00")),
    ];
    let (lines, engine) = run_with(&offers, &feed, Some(30));
    // t1 (2.00) is forgotten by day 40 but still holds its budget and its
    // per-card count: t2 gets what is left, t3 nothing (R6, R7).
    assert_eq!(lines, ["e1 ten PENDING 2.00 2.00", "e2 ten CONFIRMED 2.00 0.00", "e3 ten PENDING 0.50 0.50"]);
    let card = engine.cards.get("c1").unwrap();
    assert!(card.transactions.get("t1").is_none());
    assert_eq!(card.transactions.archived().len(), 1);
    let ledger = serde_json::to_value(Ledger::build(&engine.book, [&engine.cards], &engine.counters)).unwrap();
    assert_eq!(ledger["cards"]["c1"], json!({"confirmed": {"USD": "2.00"}, "pending": {"USD": "0.50"}}));
    assert_eq!(ledger["offers"]["ten"], json!({"used": "2.50", "rewarded_transactions": 2}));
}

#[test]
fn memory_stays_bounded_by_the_retention() {
    // A year of daily purchases, each cleared: with 30 days a card holds
    // about a month of ids and transactions, without it all of them.
    let mut feed = Vec::new();
    for day in 0..365u32 {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(day.into());
        let at = format!("{at}T12:00:00Z");
        for e in [
            auth(&format!("a{day}"), &format!("t{day}"), "5.00"),
            clearing(&format!("c{day}"), &format!("t{day}"), "5.00"),
        ] {
            feed.push(with(e, json!({"occurred_at": at})));
        }
    }
    let (_, bounded) = run_with(&ten_percent(), &feed, Some(30));
    let (_, unlimited) = run_with(&ten_percent(), &feed, None);
    let (b, u) = (bounded.cards.get("c1").unwrap(), unlimited.cards.get("c1").unwrap());
    assert_eq!(u.seen.len(), 730);
    assert_eq!(u.transactions.len(), 365);
    assert!((60..=64).contains(&b.seen.len()), "{}", b.seen.len());
    // Held: the 31 remembered and those forgotten since the last sweep.
    assert!((31..=35).contains(&b.transactions.len()), "{}", b.transactions.len());
    assert_eq!((331..365).filter(|d| b.transactions.get(&format!("t{d}")).is_some()).count(), 31);
    assert!(bounded.cards.heap_bytes() * 4 < unlimited.cards.heap_bytes());
    // The ledgers agree: every forgotten reward still counts.
    let ledger = |e: &Engine| Ledger::build(&e.book, [&e.cards], &e.counters);
    assert_eq!(ledger(&bounded), ledger(&unlimited));
    let archived = b.transactions.archived()[0];
    assert_eq!(archived.value, Decimal::new(50, 2) * Decimal::from(archived.live));
    assert_eq!(archived.live as usize + b.transactions.len(), 365);
}

/// One event of a generated feed: card, kind, transaction, cents, day.
#[derive(Debug, Clone)]
struct Step {
    card: u8,
    kind: u8,
    tx: u8,
    cents: u32,
    day: u8,
    reuse_id: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (0u8..3, 0u8..6, 0u8..6, 0u32..30_000, 0u8..60, prop::bool::weighted(0.08))
        .prop_map(|(card, kind, tx, cents, day, reuse_id)| Step { card, kind, tx, cents, day, reuse_id })
}

/// Turns steps into a feed spread over 60 days (each card's days mostly
/// rising, sometimes back-dated); ids are reused now and then.
fn feed(steps: &[Step]) -> Vec<Value> {
    let mut sorted = steps.to_vec();
    // Mostly in time order, as a network sends them.
    sorted.sort_by_key(|s| s.day / 4);
    sorted
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
            with(e, json!({"card_token": format!("c{}", s.card)}))
        })
        .zip(sorted.iter())
        .map(|(e, s)| on(1 + u32::from(s.day), e))
        .collect()
}

fn catalogue(budget: Option<&str>) -> Vec<Value> {
    let b = budget.map_or(json!({}), |b| json!({"budget": b}));
    vec![
        offer("pct", json!({"percent": "10"}), with(b.clone(), json!({"max_reward": "7.00"}))),
        offer("fix", json!({"fixed": "2.50"}), with(b.clone(), json!({"min_spend": "20.00", "max_per_card": 2}))),
        offer("pts", json!({"points_per_unit": "3"}), b.clone()),
        offer("act", json!({"percent": "25"}), with(b, json!({"activation_required": true}))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A retention longer than the feed's span changes nothing: the same
    /// records and the same ledger as remembering everything.
    #[test]
    fn retention_longer_than_the_feed_changes_nothing(
        steps in prop::collection::vec(step(), 1..150), extra in 0u32..400, budget in prop::option::of("[1-9]\\.00"),
    ) {
        let offers = catalogue(budget.as_deref());
        let feed = feed(&steps);
        let (a, ea) = run_with(&offers, &feed, None);
        let (b, eb) = run_with(&offers, &feed, Some(60 + extra));
        prop_assert_eq!(a, b);
        prop_assert_eq!(Ledger::build(&ea.book, [&ea.cards], &ea.counters), Ledger::build(&eb.book, [&eb.cards], &eb.counters));
    }

    /// Whatever the retention, usage equals what the cards hold, forgotten
    /// rewards included, and no budget is passed (R6); the same feed gives
    /// the same output twice.
    #[test]
    fn short_retention_keeps_usage_exact(
        steps in prop::collection::vec(step(), 1..150), days in 1u32..20, budget in prop::option::of("[1-9]\\.00"),
    ) {
        let offers = catalogue(budget.as_deref());
        let feed = feed(&steps);
        let (lines, engine) = run_with(&offers, &feed, Some(days));
        let (again, _) = run_with(&offers, &feed, Some(days));
        prop_assert_eq!(&lines, &again);
        let mut used = std::collections::BTreeMap::<u32, (Decimal, u64)>::new();
        for (_, card) in engine.cards.iter() {
            for tx in card.transactions.values() {
                for r in tx.rewards.iter().filter(|r| r.is_live()) {
                    let e = used.entry(r.offer.0).or_default();
                    e.0 += r.value;
                    e.1 += 1;
                }
            }
            for a in card.transactions.archived() {
                let e = used.entry(a.offer.0).or_default();
                e.0 += a.value;
                e.1 += u64::from(a.live);
            }
        }
        for (idx, slot) in engine.book.slots() {
            let (u, live) = used.get(&idx.0).copied().unwrap_or_default();
            prop_assert_eq!(slot.usage.used, u, "usage of {}", slot.offer.id);
            prop_assert_eq!(slot.usage.live, live, "live count of {}", slot.offer.id);
            if let Some(b) = slot.offer.budget {
                prop_assert!(slot.usage.used <= b);
            }
        }
    }
}
