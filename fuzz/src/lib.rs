//! What the fuzz targets share: an offer book that exercises every rule,
//! events to run through it, output capture, and the checks every target
//! makes on top of "no panic" (no card number in a dead letter, counters
//! that add up, budgets that hold).

use std::io::{self, Write};
use std::sync::{Arc, LazyLock, Mutex};

use cardlink_core::{Engine, Offer, OfferBook, Outcome, RawEvent, RewardUpdate, pan, parse_offer_file};
use cardlink_replay::Replayer;
use cardlink_wire::Format;

/// Offers beyond the basic fixture's: catch-all offers (so that most valid
/// purchases match something), extreme values, budgets, caps, activation,
/// per-card limits and three-digit and zero-digit currencies.
const EXTRA_OFFERS: &str = r#"[
  {"id":"all-usd","currency":"USD","reward":{"percent":"100"}},
  {"id":"pts-max","currency":"USD","reward":{"points_per_unit":"1000000"},"budget":"99999999999999999999999"},
  {"id":"fix-huge","currency":"USD","reward":{"fixed":"99999999999999999999999.99"},"min_spend":"0.01"},
  {"id":"bud","currency":"USD","reward":{"percent":"50"},"budget":"3.33","max_per_card":1},
  {"id":"act","currency":"EUR","reward":{"fixed":"1.00"},"activation_required":true,"days":["MON","SAT"],
   "hours":{"from":"23:00","until":"01:30"},"networks":["AMEX","VISA"],"merchant":{"countries":["DE","FR"]}},
  {"id":"kwd","currency":"KWD","reward":{"percent":"33.333"},"max_reward":"1.234","budget":"10"},
  {"id":"jpy-pts","currency":"JPY","reward":{"points_per_unit":"0.5"},"merchant":{"mccs":["5812","0000"]},
   "valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00+14:00"}
]"#;

static OFFERS: LazyLock<Vec<Offer>> = LazyLock::new(|| {
    let mut offers = parse_offer_file(include_bytes!("../../crates/cardlink/tests/fixtures/basic/offers.json"))
        .expect("the basic fixture's offers are valid");
    offers.extend(parse_offer_file(EXTRA_OFFERS.as_bytes()).expect("the extra offers are valid"));
    offers
});

/// A fresh book of the fixture and extra offers.
pub fn book() -> OfferBook {
    OfferBook::new(OFFERS.iter().cloned())
}

/// Events that drive a book through every lifecycle step (the basic
/// fixture's feed plus purchases at the edges of the amount rules).
pub const EVENTS: &str = concat!(
    include_str!("../../crates/cardlink/tests/fixtures/basic/events.jsonl"),
    r#"{"event_id":"x1","kind":"ACTIVATION","card_token":"c1","offer_id":"act","occurred_at":"2026-05-04T12:30:00+02:00"}
{"event_id":"x2","kind":"AUTHORIZATION","network":"AMEX","transaction_id":"t1","card_token":"c1","amount":"999999999999999.99","currency":"EUR","merchant":{"mid":"M1","mcc":"5812","country":"DE"},"occurred_at":"2026-05-09T23:30:00+02:00"}
{"event_id":"x3","kind":"CLEARING","network":"VISA","transaction_id":"tx","card_token":"c1","amount":"999999999999999.99","currency":"USD","merchant":{"mid":"M1","mcc":"0000"},"occurred_at":"2026-05-04T12:30:00Z"}
{"event_id":"x4","kind":"REFUND","transaction_id":"tx","card_token":"c1","amount":"0.01","currency":"USD","occurred_at":"2026-05-04T12:30:00Z"}
{"event_id":"x5","kind":"AUTHORIZATION","network":"VISA","transaction_id":"tk","card_token":"c2","amount":"12.345","currency":"KWD","merchant":{"mid":"M2","mcc":"5812"},"occurred_at":"2026-05-04T12:30:00Z"}
{"event_id":"x6","kind":"AUTH_REVERSAL","transaction_id":"tk","card_token":"c2","occurred_at":"2026-05-04T12:31:00Z"}
{"event_id":"x7","kind":"CLEARING","network":"DISCOVER","transaction_id":"tj","card_token":"c2","amount":"123456","currency":"JPY","merchant":{"mid":"M3","mcc":"5812"},"occurred_at":"2026-12-31T23:59:59.999999999-12:00"}
{"event_id":"x8","kind":"REFUND","transaction_id":"tj","card_token":"c2","amount":"123456","currency":"JPY","occurred_at":"2027-01-01T00:00:00Z"}
"#
);

/// A writer whose bytes stay readable after it was handed to a replayer
/// (which may write them from a thread of its own).
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Shared {
    /// The bytes written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Panics when `bytes` show a 13–19 digit Luhn-valid number.
pub fn assert_no_pan(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!pan::contains_pan(&text), "a card number in {what}: {text}");
}

/// The dead-letter reasons of the contract.
const REASONS: [&str; 5] = ["MALFORMED", "MISSING_FIELD", "INVALID_FIELD", "PAN_DETECTED", "CURRENCY_MISMATCH"];

/// Checks a dead-letter file: one JSON object a line with a known reason,
/// and no card number anywhere.
pub fn check_dead_letters(bytes: &[u8]) {
    assert_no_pan("the dead letters", bytes);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("a dead letter is JSON");
        let reason = v["reason"].as_str().expect("a dead letter has a reason");
        assert!(REASONS.contains(&reason), "unknown reason {reason}");
    }
}

/// Processes one decoded event twice on a fresh engine: R2 makes the second
/// a duplicate that emits nothing when the first was processed, and the
/// same rejection when it was rejected. Rejections' dead letters are
/// checked for card numbers.
pub fn process_twice(raw: &RawEvent<'_>, record: &[u8]) {
    let mut engine = Engine::new(book());
    let mut first = 0usize;
    let outcome = engine.process(raw, &mut |_: &RewardUpdate<'_>| first += 1);
    let mut second = 0usize;
    let again = engine.process(raw, &mut |_: &RewardUpdate<'_>| second += 1);
    match &outcome {
        Outcome::Processed => {
            assert_eq!(again, Outcome::Duplicate, "R2: the same event twice");
            assert_eq!(second, 0, "a duplicate emits nothing");
        }
        Outcome::Duplicate => panic!("the first event of a fresh engine cannot be a duplicate"),
        Outcome::Rejected(r) => {
            assert_eq!(first, 0, "a rejection emits no reward");
            assert_eq!(again, outcome, "a rejection changes no state");
            let d = cardlink_wire::dead_letter(r, Some(raw), record, "fuzz:1".into());
            let mut out = Vec::new();
            cardlink_wire::write_dead_letter_json(&d, &mut out);
            check_dead_letters(&out);
        }
    }
    check_budgets(&engine.book);
}

/// R6: no offer's live rewards exceed its budget.
pub fn check_budgets(book: &OfferBook) {
    for (_, slot) in book.slots() {
        if let Some(budget) = slot.offer.budget {
            assert!(
                slot.usage.used <= budget,
                "offer {}: used {} over budget {budget}",
                slot.offer.id,
                slot.usage.used
            );
        }
        assert!(!slot.usage.used.is_sign_negative() || slot.usage.used.is_zero(), "negative usage");
    }
}

/// Replays a whole stream: every framed record is counted once
/// (processed, duplicate or rejected), the dead letters are clean and the
/// ledger and summary can be written. Returns the reward records.
pub fn replay_stream(format: Format, stream: &[u8], book: OfferBook) -> Vec<u8> {
    let (rewards, dead) = (Shared::default(), Shared::default());
    let mut replayer = Replayer::new(book, Some(Box::new(rewards.clone())), Some(Box::new(dead.clone())));
    let mut frames = 0;
    replayer.run(format, stream, "fuzz", |n| frames = n).expect("writing to memory cannot fail");
    let (ledger, summary) = replayer.finish().expect("writing to memory cannot fail");
    let json: serde_json::Value = serde_json::from_str(&ledger.to_json_pretty()).expect("the ledger is JSON");
    let counted: u64 = ["processed", "duplicate", "rejected"].iter().map(|k| json["events"][k].as_u64().unwrap()).sum();
    assert_eq!(counted, frames, "every record is counted once");
    let _ = summary.to_string();
    check_dead_letters(&dead.bytes());
    let out = rewards.bytes();
    out
}

/// Runs [`EVENTS`] through `book` by replay and checks the budgets.
pub fn exercise(book: OfferBook) {
    let (rewards, dead) = (Shared::default(), Shared::default());
    let mut replayer = Replayer::new(book, Some(Box::new(rewards)), Some(Box::new(dead.clone())));
    replayer.run(Format::Json, EVENTS.as_bytes(), "events", |_| {}).expect("memory");
    check_budgets(&replayer.engine.book);
    let (ledger, _) = replayer.finish().expect("memory");
    let _ = ledger.to_json_pretty();
    check_dead_letters(&dead.bytes());
}
