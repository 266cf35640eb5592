//! Shared harness of the rule tests: build events tersely, run them through
//! the engine, and describe what happened one line per effect.
#![allow(dead_code)]

use cardlink_core::{Engine, Ledger, OfferBook, Outcome, RawEvent, RewardUpdate, parse_offer_file};
use serde_json::{Value, json};

/// A purchase or other event with the defaults of the tests: card `c1`,
/// USD, merchant M1 (MCC 5812, US), VISA, Monday 2026-05-04 12:30 at -04:00.
pub fn ev(kind: &str, event_id: &str, tx: &str, amount: &str, overrides: Value) -> Value {
    let mut e = json!({
        "event_id": event_id, "kind": kind, "card_token": "c1",
        "occurred_at": "2026-05-04T12:30:00-04:00",
    });
    match kind {
        "AUTHORIZATION" | "CLEARING" => {
            e["network"] = json!("VISA");
            e["merchant"] = json!({"mid": "M1", "mcc": "5812", "country": "US"});
            e["transaction_id"] = json!(tx);
            e["amount"] = json!(amount);
            e["currency"] = json!("USD");
        }
        "REFUND" => {
            e["transaction_id"] = json!(tx);
            e["amount"] = json!(amount);
            e["currency"] = json!("USD");
        }
        "AUTH_REVERSAL" => e["transaction_id"] = json!(tx),
        "ACTIVATION" => e["offer_id"] = json!(tx),
        _ => {}
    }
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(&k);
            } else {
                e[k] = v;
            }
        }
    }
    e
}

pub fn auth(id: &str, tx: &str, amount: &str) -> Value {
    ev("AUTHORIZATION", id, tx, amount, json!({}))
}
pub fn clearing(id: &str, tx: &str, amount: &str) -> Value {
    ev("CLEARING", id, tx, amount, json!({}))
}
pub fn refund(id: &str, tx: &str, amount: &str) -> Value {
    ev("REFUND", id, tx, amount, json!({}))
}
pub fn reversal(id: &str, tx: &str) -> Value {
    ev("AUTH_REVERSAL", id, tx, "", json!({}))
}
pub fn activation(id: &str, offer: &str) -> Value {
    ev("ACTIVATION", id, offer, "", json!({}))
}

/// Adds fields to an event.
pub fn with(mut e: Value, overrides: Value) -> Value {
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            e.as_object_mut().unwrap().remove(k);
        } else {
            e[k] = v.clone();
        }
    }
    e
}

/// A USD offer with the given extra fields.
pub fn offer(id: &str, reward: Value, extra: Value) -> Value {
    let mut o = json!({"id": id, "currency": "USD", "reward": reward});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

/// Runs events through a fresh engine; returns one line per effect:
/// `"<event_id> <offer> <STATUS> <value> <delta>"` per reward record,
/// `"<event_id> REJECTED <REASON>"`, `"<event_id> DUPLICATE"`.
pub fn run(offers: &[Value], events: &[Value]) -> (Vec<String>, Engine) {
    let offers = parse_offer_file(serde_json::to_string(offers).unwrap().as_bytes()).expect("test offers are valid");
    let mut engine = Engine::new(OfferBook::new(offers));
    let mut lines = Vec::new();
    for e in events {
        let text = e.to_string();
        let raw: RawEvent<'_> = serde_json::from_str(&text).expect("test events are JSON objects");
        let id = e["event_id"].as_str().unwrap_or("?").to_string();
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

/// Asserts the effects of `events` on `offers`.
pub fn check(offers: &[Value], events: &[Value], expected: &[&str]) {
    let (lines, _) = run(offers, events);
    assert_eq!(lines, expected, "\noffers: {offers:?}\nevents: {events:#?}");
}

/// The ledger after `events`, as JSON.
pub fn ledger(offers: &[Value], events: &[Value]) -> Value {
    let (_, engine) = run(offers, events);
    serde_json::to_value(Ledger::build(&engine.book, [&engine.cards], &engine.counters)).unwrap()
}
