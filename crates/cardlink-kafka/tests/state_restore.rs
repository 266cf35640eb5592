//! A card's changelog value restores the card exactly: an engine that
//! snapshots and restores cards through `encode_card_state` and
//! `decode_card_state` while it runs writes the same rewards, ledger and
//! budget usage as one that never does — with state retention too, where
//! the snapshot must carry the card's clock, the day of every remembered
//! id and transaction, and the rewards of forgotten transactions
//! (docs/reliability.md, "State retention"). This is what a partition
//! moving between instances does to its cards. Rules: R2 (seen ids, and
//! an id re-sent after it is forgotten), R6 and R7 (usage and per-card
//! counts, archived rewards included), R9–R11 (clearings and refunds of
//! remembered and forgotten transactions).

use std::num::NonZeroU32;

use cardlink_core::state::Retention;
use cardlink_core::{CardStore, Engine, Ledger, OfferBook, RewardUpdate, parse_offer_file};
use cardlink_kafka::codec::{StateScratch, add_usage, decode_card_state, encode_card_state};
use cardlink_sim::{SimConfig, SimRecord, Simulator};

/// What a run wrote and left.
#[derive(Debug)]
struct Run {
    rewards: Vec<u8>,
    ledger: String,
    usage: Vec<String>,
    /// Cards holding rewards of forgotten transactions at the end (a
    /// restore archives forgotten transactions a sweep would have archived
    /// later, so only the sums above must agree).
    archived_cards: usize,
}

fn sim() -> SimConfig {
    SimConfig { events: 30_000, cards: 300, merchants: 200, offers: 60, days: 90, seed: 7, ..SimConfig::default() }
}

/// Replays the simulated feed; with `restore_every = Some(k)`, every k-th
/// event's card is then encoded, taken out (its usage with it), decoded
/// and put back.
fn run(retention: Retention, restore_every: Option<usize>) -> Run {
    let config = sim();
    let offers = serde_json::to_vec(&cardlink_sim::offers(&config)).unwrap();
    let mut e = Engine::new(OfferBook::new(parse_offer_file(&offers).unwrap()));
    e.cards = CardStore::with_retention(retention);
    let mut rewards = Vec::new();
    let (mut bytes, mut scratch) = (Vec::new(), StateScratch::default());
    for (i, record) in Simulator::new(&config).enumerate() {
        let SimRecord::Event(event) = record else { continue };
        let raw = cardlink_wire::raw_from_proto(&event);
        e.process(&raw, &mut |u: &RewardUpdate<'_>| cardlink_wire::write_reward_json(u, &mut rewards));
        let (Some(k), Some(token)) = (restore_every, event.card_token.as_deref()) else { continue };
        if i % k != 0 {
            continue;
        }
        let Some(card) = e.cards.get(token) else { continue };
        bytes.clear();
        encode_card_state(&e.book, card, &mut bytes, &mut scratch);
        add_usage(&mut e.book, card, false);
        let back = decode_card_state(&mut e.book, &bytes).unwrap();
        add_usage(&mut e.book, &back, true);
        e.cards.insert(token, back);
    }
    let ledger = serde_json::to_string(&Ledger::build(&e.book, [&e.cards], &e.counters)).unwrap();
    let usage = e.book.slots().map(|(_, s)| format!("{} {} {}", s.offer.id, s.usage.used, s.usage.live)).collect();
    let archived_cards = e.cards.iter().filter(|(_, c)| !c.transactions.archived().is_empty()).count();
    Run { rewards, ledger, usage, archived_cards }
}

fn check(retention: Option<u32>, restore_every: usize) {
    let retention = retention.map(|d| NonZeroU32::new(d).unwrap());
    let straight = run(retention, None);
    let restored = run(retention, Some(restore_every));
    assert!(!straight.rewards.is_empty());
    assert!(straight.usage == restored.usage, "usage differs: retention {retention:?}, every {restore_every}");
    assert!(straight.ledger == restored.ledger, "ledger differs: retention {retention:?}, every {restore_every}");
    assert!(straight.rewards == restored.rewards, "rewards differ: retention {retention:?}, every {restore_every}");
}

#[test]
fn restoring_cards_changes_nothing_without_retention() {
    check(None, 1);
    check(None, 13);
}

#[test]
fn restoring_cards_changes_nothing_with_retention() {
    for (days, every) in [(3, 1), (3, 7), (10, 1), (10, 29), (45, 5)] {
        check(Some(days), every);
    }
    // The short retention really forgets: rewards of forgotten
    // transactions are carried as archived totals.
    assert!(run(NonZeroU32::new(3), None).archived_cards > 0);
}

/// One event of a hand-made feed: `(id, kind, transaction, amount, day of May 2026)`.
type Line = (&'static str, &'static str, &'static str, &'static str, u32);

/// The rewards written for `feed` with a 3-day retention, with or without
/// restoring the card after every event.
fn replay_lines(feed: &[Line], restore: bool) -> Vec<u8> {
    let offers = br#"[{"id":"ten","currency":"USD","reward":{"percent":"10"}}]"#;
    let mut e = Engine::new(OfferBook::new(parse_offer_file(offers).unwrap()));
    e.cards = CardStore::with_retention(NonZeroU32::new(3));
    let mut rewards = Vec::new();
    for (id, kind, tx, amount, day) in feed {
        let line = format!(
            r#"{{"event_id":"{id}","kind":"{kind}","network":"VISA","transaction_id":"{tx}","card_token":"c1","amount":"{amount}","currency":"USD","merchant":{{"mid":"M","mcc":"5812"}},"occurred_at":"2026-05-{day:02}T12:00:00Z"}}"#
        );
        let raw = cardlink_wire::decode_json_event(line.as_bytes()).unwrap();
        e.process(&raw, &mut |u: &RewardUpdate<'_>| cardlink_wire::write_reward_json(u, &mut rewards));
        if restore {
            let card = e.cards.get("c1").unwrap();
            let mut bytes = Vec::new();
            encode_card_state(&e.book, card, &mut bytes, &mut StateScratch::default());
            add_usage(&mut e.book, card, false);
            let back = decode_card_state(&mut e.book, &bytes).unwrap();
            add_usage(&mut e.book, &back, true);
            e.cards.insert("c1", back);
        }
    }
    rewards
}

/// The edges a random feed seldom reaches: an event id re-sent after it is
/// forgotten (R2 with retention), a refund of a forgotten transaction, and
/// a late event (older than the card's clock).
#[test]
fn restores_keep_the_days_retention_counts_from() {
    let feeds: [&[Line]; 4] = [
        // e1 is forgotten by day 6 and counts again when re-sent.
        &[
            ("e1", "AUTHORIZATION", "t1", "20.00", 1),
            ("e2", "AUTHORIZATION", "t2", "5.00", 6),
            ("e1", "AUTHORIZATION", "t1", "20.00", 6),
        ],
        // t1, cleared on day 1, is forgotten by day 6: its refund names no transaction.
        &[
            ("e1", "AUTHORIZATION", "t1", "20.00", 1),
            ("e2", "CLEARING", "t1", "20.00", 1),
            ("e3", "AUTHORIZATION", "t2", "5.00", 6),
            ("e4", "REFUND", "t1", "20.00", 6),
        ],
        // A late event (day 2 after day 9) is judged by the card's clock.
        &[
            ("e1", "AUTHORIZATION", "t1", "20.00", 1),
            ("e2", "CLEARING", "t1", "20.00", 5),
            ("e3", "AUTHORIZATION", "t2", "5.00", 9),
            ("e4", "REFUND", "t1", "20.00", 2),
            ("e1", "AUTHORIZATION", "t1", "20.00", 2),
        ],
        // A late clearing is stamped with the clock (day 9), so t1 is
        // still remembered on day 10 and its refund claws back.
        &[
            ("e1", "AUTHORIZATION", "t1", "20.00", 1),
            ("e2", "AUTHORIZATION", "t2", "5.00", 9),
            ("e3", "CLEARING", "t1", "20.00", 2),
            ("e4", "AUTHORIZATION", "t3", "5.00", 10),
            ("e5", "REFUND", "t1", "20.00", 10),
        ],
    ];
    for feed in feeds {
        let straight = replay_lines(feed, false);
        let restored = replay_lines(feed, true);
        assert!(
            straight == restored,
            "{}\n---\n{}",
            String::from_utf8_lossy(&straight),
            String::from_utf8_lossy(&restored)
        );
    }
}
