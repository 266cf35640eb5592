//! One table-driven test per contract rule, R1–R11, with hand-computed
//! expectations. Each line of an expectation is one effect:
//! `"<event> <offer> <STATUS> <value> <delta>"`, `"<event> REJECTED <REASON>"`
//! or `"<event> DUPLICATE"`.

mod common;

use common::*;
use serde_json::{Value, json};

fn pct(id: &str, p: &str, extra: Value) -> Value {
    offer(id, json!({"percent": p}), extra)
}
fn fixed(id: &str, v: &str, extra: Value) -> Value {
    offer(id, json!({"fixed": v}), extra)
}
fn points(id: &str, k: &str, extra: Value) -> Value {
    offer(id, json!({"points_per_unit": k}), extra)
}

#[test]
fn r1_validation() {
    // (event, Some(reason) when rejected). No offers: a valid event has no effect.
    let long = "a".repeat(65);
    let ok64 = "a".repeat(64);
    let cases: Vec<(Value, Option<&str>)> = vec![
        (auth("e1", "t1", "10.00"), None),
        (with(auth("e1", "t1", "10.00"), json!({"event_id": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"event_id": ""})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"event_id": 7})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"kind": "PURCHASE"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"kind": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "has space"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": long})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": ok64})), None),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "tok_A-1.b:2"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "4111111111111111"})), Some("PAN_DETECTED")),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "378282246310005"})), Some("PAN_DETECTED")),
        // A PAN is reported as such even when the rest is broken too.
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "4111111111111111", "kind": "X"})), Some("PAN_DETECTED")),
        // The identifiers written back out get the PAN rule too (docs/decisions.md).
        (with(auth("e1", "t1", "10.00"), json!({"event_id": "4111111111111111"})), Some("PAN_DETECTED")),
        (with(auth("e1", "t1", "10.00"), json!({"transaction_id": "5555555555554444"})), Some("PAN_DETECTED")),
        (
            with(auth("e1", "t1", "10.00"), json!({"transaction_id": "4222222222222", "kind": "X"})),
            Some("PAN_DETECTED"),
        ),
        (
            json!({"event_id": "e1", "kind": "ACTIVATION", "card_token": "c1", "offer_id": "378282246310005",
                   "occurred_at": "2026-05-04T12:30:00Z"}),
            Some("PAN_DETECTED"),
        ),
        (auth("e1", "t1", "4222222222222.00"), Some("PAN_DETECTED")),
        (auth("e1", "t1", "4111111111111111"), Some("PAN_DETECTED")),
        (auth("e1", "t1", "4222222222223.00"), None),
        (with(auth("e1", "t1", "10.00"), json!({"transaction_id": "4111111111111112"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "4111111111111111", "mcc": "5812"}})), None),
        // 16 digits failing Luhn, or 12 digits: a token, not a PAN.
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "4111111111111112"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"card_token": "411111111111"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": "2026-05-04T12:30:00"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": "2026-05-04"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": "2026-05-04T12:30:00Z"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"network": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"network": "JCB"})), Some("INVALID_FIELD")),
        (with(refund("e1", "t1", "10.00"), json!({"network": "JCB"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"transaction_id": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"transaction_id": ""})), Some("INVALID_FIELD")),
        (with(reversal("e1", "t1"), json!({"transaction_id": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"amount": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"amount": 10})), Some("INVALID_FIELD")),
        (auth("e1", "t1", "10.001"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "-1.00"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "1e3"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "NaN"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "1000000000000000000000000000000"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "1000000000000000"), Some("INVALID_FIELD")),
        (auth("e1", "t1", "999999999999999.99"), None),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": "2026-05-04 12:30:00-04:00"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"occurred_at": "2016-12-31T23:59:60Z"})), Some("INVALID_FIELD")),
        (auth("e1", "t1", "0"), None),
        (with(auth("e1", "t1", "10.00"), json!({"currency": "usd"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"currency": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.125"), json!({"currency": "KWD"})), None),
        (with(auth("e1", "t1", "500.0"), json!({"currency": "JPY"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "500"), json!({"currency": "JPY"})), None),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": null})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": "M1"})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1", "mcc": "581"}})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1", "mcc": 5812}})), Some("INVALID_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1"}})), Some("MISSING_FIELD")),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mcc": "5812"}})), Some("MISSING_FIELD")),
        (
            with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1", "mcc": "5812", "country": "USA"}})),
            Some("INVALID_FIELD"),
        ),
        (with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1", "mcc": "5812"}})), None),
        (with(activation("e1", "o"), json!({"offer_id": null})), Some("MISSING_FIELD")),
        // AUTH_REVERSAL's amount is optional and ignored; fields not listed
        // for a kind are ignored; unknown fields are ignored.
        (with(reversal("e1", "t1"), json!({"amount": "junk"})), None),
        (with(activation("e1", "o"), json!({"amount": "junk", "merchant": 3})), None),
        (with(auth("e1", "t1", "10.00"), json!({"loyalty_tier": {"x": [1, 2]}})), None),
    ];
    for (event, reason) in cases {
        let id = event["event_id"].as_str().unwrap_or("?").to_string();
        let expected: Vec<String> = reason.map(|r| format!("{id} REJECTED {r}")).into_iter().collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        check(&[], &[event], &expected);
    }
}

#[test]
fn r1_currency_must_match_the_transaction() {
    let o = [pct("p", "10", json!({}))];
    check(
        &o,
        &[
            auth("e1", "t1", "10.00"),
            with(clearing("e2", "t1", "10.00"), json!({"currency": "EUR"})),
            clearing("e3", "t1", "10.00"),
        ],
        &["e1 p PENDING 1.00 1.00", "e2 REJECTED CURRENCY_MISMATCH", "e3 p CONFIRMED 1.00 0.00"],
    );
    check(
        &o,
        &[
            clearing("e1", "t1", "10.00"),
            with(refund("e2", "t1", "5.00"), json!({"currency": "EUR"})),
            refund("e3", "t1", "5.00"),
        ],
        &["e1 p CONFIRMED 1.00 1.00", "e2 REJECTED CURRENCY_MISMATCH", "e3 p CONFIRMED 0.50 -0.50"],
    );
    // A refund of a transaction never cleared has no clearing to differ from.
    check(
        &o,
        &[auth("e1", "t1", "10.00"), with(refund("e2", "t1", "5.00"), json!({"currency": "EUR"}))],
        &["e1 p PENDING 1.00 1.00"],
    );
}

#[test]
fn r1_rejected_events_change_nothing() {
    // The rejected e1 is not processed: a later valid e1 is no duplicate.
    let o = [pct("p", "10", json!({}))];
    check(
        &o,
        &[auth("e1", "t1", "10.001"), auth("e1", "t1", "10.00")],
        &["e1 REJECTED INVALID_FIELD", "e1 p PENDING 1.00 1.00"],
    );
    let l = ledger(&o, &[auth("e1", "t1", "10.001")]);
    assert_eq!(l, json!({"cards": {}, "offers": {}, "events": {"processed": 0, "duplicate": 0, "rejected": 1}}));
}

#[test]
fn r2_duplicates() {
    let o = [pct("p", "10", json!({}))];
    check(
        &o,
        &[
            auth("e1", "t1", "10.00"),
            auth("e1", "t1", "10.00"),
            // Same id, other content: still a duplicate for this card.
            auth("e1", "t2", "20.00"),
            // Same id on another card: a different event.
            with(auth("e1", "t1", "10.00"), json!({"card_token": "c2"})),
            activation("e9", "p"),
            activation("e9", "p"),
        ],
        &["e1 p PENDING 1.00 1.00", "e1 DUPLICATE", "e1 DUPLICATE", "e1 p PENDING 1.00 1.00", "e9 DUPLICATE"],
    );
    let l = ledger(&o, &[auth("e1", "t1", "10.00"), auth("e1", "t1", "10.00"), activation("e2", "p")]);
    assert_eq!(l["events"], json!({"processed": 2, "duplicate": 1, "rejected": 0}));
}

/// True when an authorization `event` earns offer `extra`'s 10% reward.
fn earns(extra: Value, event: Value) -> bool {
    let (lines, _) = run(&[pct("p", "10", extra)], &[event]);
    !lines.is_empty()
}

#[test]
fn r3_eligibility() {
    let at = |t: &str| with(auth("e1", "t1", "10.00"), json!({"occurred_at": t}));
    let cases: Vec<(Value, Value, bool)> = vec![
        (json!({}), auth("e1", "t1", "10.00"), true),
        (json!({"merchant": {"mids": ["M1", "M7"]}}), auth("e1", "t1", "10.00"), true),
        (json!({"merchant": {"mids": ["M2"]}}), auth("e1", "t1", "10.00"), false),
        (json!({"merchant": {"mids": []}}), auth("e1", "t1", "10.00"), true),
        (json!({"merchant": {"mccs": ["5812"]}}), auth("e1", "t1", "10.00"), true),
        (json!({"merchant": {"mccs": ["5411"]}}), auth("e1", "t1", "10.00"), false),
        (json!({"merchant": {"mids": ["M1"], "mccs": ["5411"]}}), auth("e1", "t1", "10.00"), false),
        (json!({"merchant": {"countries": ["US"]}}), auth("e1", "t1", "10.00"), true),
        (json!({"merchant": {"countries": ["GB"]}}), auth("e1", "t1", "10.00"), false),
        (json!({"merchant": {"mids": ["M1"], "countries": ["GB"]}}), auth("e1", "t1", "10.00"), false),
        // An offer limited to countries does not match a merchant of no country.
        (
            json!({"merchant": {"countries": ["US"]}}),
            with(auth("e1", "t1", "10.00"), json!({"merchant": {"mid": "M1", "mcc": "5812"}})),
            false,
        ),
        (json!({"networks": ["VISA"]}), auth("e1", "t1", "10.00"), true),
        (json!({"networks": ["AMEX", "DISCOVER"]}), auth("e1", "t1", "10.00"), false),
        (json!({"networks": []}), auth("e1", "t1", "10.00"), true),
        // Validity: valid_from ≤ occurred_at < valid_until, as instants (12:30-04:00 = 16:30Z).
        (json!({"valid_from": "2026-05-04T16:30:00Z"}), auth("e1", "t1", "10.00"), true),
        (json!({"valid_from": "2026-05-04T16:30:01Z"}), auth("e1", "t1", "10.00"), false),
        (json!({"valid_until": "2026-05-04T16:30:00Z"}), auth("e1", "t1", "10.00"), false),
        (json!({"valid_until": "2026-05-04T12:30:01-04:00"}), auth("e1", "t1", "10.00"), true),
        (json!({"valid_from": "2026-05-04T17:30:00+01:00"}), auth("e1", "t1", "10.00"), true),
        // Days, judged on the local date of occurred_at.
        (json!({"days": ["MON"]}), auth("e1", "t1", "10.00"), true),
        (json!({"days": ["TUE", "WED"]}), auth("e1", "t1", "10.00"), false),
        (json!({"days": ["MON"]}), at("2026-05-04T23:30:00-04:00"), true), // Tuesday in UTC
        (json!({"days": ["TUE"]}), at("2026-05-04T23:30:00-04:00"), false),
        (json!({"days": ["TUE"]}), at("2026-05-05T01:00:00+09:00"), true), // Monday in UTC
        (json!({"days": ["MON"]}), at("2026-05-05T01:00:00+09:00"), false),
        (json!({"days": ["SUN"]}), at("2026-05-10T08:00:00Z"), true),
        // Hours, local time, from ≤ t < until.
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), auth("e1", "t1", "10.00"), true),
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), at("2026-05-04T11:00:00-04:00"), true),
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), at("2026-05-04T10:59:59.999-04:00"), false),
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), at("2026-05-04T14:00:00-04:00"), false),
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), at("2026-05-04T13:59:59-04:00"), true),
        (json!({"hours": {"from": "11:00", "until": "14:00"}}), at("2026-05-04T16:30:00Z"), false), // same instant, UTC clock
        // Wrapping past midnight.
        (json!({"hours": {"from": "22:00", "until": "02:00"}}), at("2026-05-04T23:30:00-04:00"), true),
        (json!({"hours": {"from": "22:00", "until": "02:00"}}), at("2026-05-05T01:59:00+09:00"), true),
        (json!({"hours": {"from": "22:00", "until": "02:00"}}), at("2026-05-05T02:00:00+09:00"), false),
        (json!({"hours": {"from": "22:00", "until": "02:00"}}), at("2026-05-04T21:59:00-04:00"), false),
        (json!({"hours": {"from": "22:00", "until": "02:00"}, "days": ["TUE"]}), at("2026-05-05T00:30:00-04:00"), true),
        // Currency, minimum spend, positive amount.
        (json!({"currency": "EUR"}), auth("e1", "t1", "10.00"), false),
        (json!({"min_spend": "10.00"}), auth("e1", "t1", "10.00"), true),
        (json!({"min_spend": "10.01"}), auth("e1", "t1", "10.00"), false),
        (json!({"reward": {"fixed": "1.00"}}), auth("e1", "t1", "0.00"), false),
    ];
    for (extra, event, expected) in cases {
        assert_eq!(earns(extra.clone(), event.clone()), expected, "offer {extra}, event {event}");
    }
}

#[test]
fn r3_activation_must_come_first_from_the_same_card() {
    let o = [pct("p", "10", json!({"activation_required": true}))];
    check(&o, &[auth("e1", "t1", "10.00")], &[]);
    check(&o, &[activation("e0", "p"), auth("e1", "t1", "10.00")], &["e1 p PENDING 1.00 1.00"]);
    check(&o, &[auth("e1", "t1", "10.00"), activation("e2", "p")], &[]);
    check(&o, &[with(activation("e0", "p"), json!({"card_token": "c2"})), auth("e1", "t1", "10.00")], &[]);
    check(&o, &[activation("e0", "other"), auth("e1", "t1", "10.00")], &[]);
}

#[test]
fn r4_value() {
    let usd = |extra: Value| extra;
    let cases: Vec<(Value, Value, &str)> = vec![
        // (offer, authorization, expected value or "" for no reward)
        (pct("o", "15", usd(json!({}))), auth("e1", "t1", "33.33"), "4.99"), // 4.9995 toward zero
        (pct("o", "10", json!({})), auth("e1", "t1", "0.09"), ""),           // 0.009 → 0.00: no reward
        (pct("o", "12.5", json!({})), auth("e1", "t1", "10.01"), "1.25"),    // 1.25125
        (fixed("o", "5.00", json!({})), auth("e1", "t1", "1.00"), "5.00"),
        (fixed("o", "4.999", json!({})), auth("e1", "t1", "1.00"), "4.99"),
        (points("o", "2", json!({})), auth("e1", "t1", "33.33"), "66"),
        (points("o", "0.5", json!({})), auth("e1", "t1", "1.99"), ""), // 0.995 → 0
        (points("o", "1.5", json!({})), auth("e1", "t1", "10.01"), "15"),
        (pct("o", "20", json!({"max_reward": "5.00"})), auth("e1", "t1", "100.00"), "5.00"),
        (points("o", "10", json!({"max_reward": "50"})), auth("e1", "t1", "100.00"), "50"),
        (pct("o", "10", json!({"budget": "3.00"})), auth("e1", "t1", "100.00"), "3.00"),
        (pct("o", "10", json!({"max_reward": "5.00", "budget": "3.005"})), auth("e1", "t1", "100.00"), "3.00"),
        (
            with(pct("o", "10", json!({})), json!({"currency": "JPY"})),
            with(auth("e1", "t1", "1234"), json!({"currency": "JPY"})),
            "123",
        ),
        (
            with(pct("o", "10", json!({})), json!({"currency": "KWD"})),
            with(auth("e1", "t1", "12.345"), json!({"currency": "KWD"})),
            "1.234",
        ),
        (
            with(fixed("o", "2.5", json!({})), json!({"currency": "KWD"})),
            with(auth("e1", "t1", "1"), json!({"currency": "KWD"})),
            "2.500",
        ),
        // The largest amount and points rate (docs/decisions.md): exact.
        (pct("o", "100", json!({})), auth("e1", "t1", "999999999999999.99"), "999999999999999.99"),
        (points("o", "1000000", json!({})), auth("e1", "t1", "999999999999999.99"), "999999999999999990000"),
    ];
    for (offer, event, expected) in cases {
        let (lines, _) = run(std::slice::from_ref(&offer), std::slice::from_ref(&event));
        let want: Vec<String> =
            if expected.is_empty() { vec![] } else { vec![format!("e1 o PENDING {expected} {expected}")] };
        assert_eq!(lines, want, "offer {offer}, event {event}");
    }
}

#[test]
fn r5_stacking() {
    // The largest cash value wins.
    check(
        &[pct("b", "10", json!({})), fixed("a", "0.50", json!({}))],
        &[auth("e1", "t1", "10.00")],
        &["e1 b PENDING 1.00 1.00"],
    );
    // A tie goes to the smallest id, in byte order ("B" < "a").
    check(
        &[pct("b", "10", json!({})), fixed("a", "1.00", json!({}))],
        &[auth("e1", "t1", "10.00")],
        &["e1 a PENDING 1.00 1.00"],
    );
    check(
        &[fixed("a", "1.00", json!({})), fixed("B", "1.00", json!({}))],
        &[auth("e1", "t1", "10.00")],
        &["e1 B PENDING 1.00 1.00"],
    );
    // Values compare after R4: a budget cut can lose the contest.
    check(
        &[pct("a", "10", json!({"budget": "0.50"})), fixed("b", "0.60", json!({}))],
        &[auth("e1", "t1", "10.00")],
        &["e1 b PENDING 0.60 0.60"],
    );
    // Every points offer applies beside the one cash offer.
    check(
        &[
            points("p1", "1", json!({})),
            pct("c", "10", json!({})),
            points("p2", "3", json!({})),
            fixed("d", "0.10", json!({})),
        ],
        &[auth("e1", "t1", "10.00")],
        &["e1 c PENDING 1.00 1.00", "e1 p1 PENDING 10 10", "e1 p2 PENDING 30 30"],
    );
    // An ineligible better offer does not compete.
    check(
        &[pct("big", "50", json!({"min_spend": "100"})), pct("small", "5", json!({}))],
        &[auth("e1", "t1", "10.00")],
        &["e1 small PENDING 0.50 0.50"],
    );
}

#[test]
fn r6_budget() {
    let o = [pct("p", "10", json!({"budget": "1.50"}))];
    check(
        &o,
        &[
            auth("e1", "t1", "10.00"),
            auth("e2", "t2", "10.00"),
            auth("e3", "t3", "10.00"), // used up: not eligible
            reversal("e4", "t1"),      // frees 1.00
            auth("e5", "t5", "20.00"), // cut to what is left
        ],
        &["e1 p PENDING 1.00 1.00", "e2 p PENDING 0.50 0.50", "e4 p CANCELLED 0.00 -1.00", "e5 p PENDING 1.00 1.00"],
    );
    let l = ledger(&o, &[auth("e1", "t1", "10.00"), auth("e2", "t2", "10.00"), auth("e3", "t3", "10.00")]);
    assert_eq!(l["offers"], json!({"p": {"used": "1.50", "rewarded_transactions": 2}}));
    // The budget is shared by all cards.
    let l = ledger(&o, &[auth("e1", "t1", "10.00"), with(auth("e1", "t1", "30.00"), json!({"card_token": "c2"}))]);
    assert_eq!(l["cards"]["c2"], json!({"pending": {"USD": "0.50"}}));
}

#[test]
fn r7_per_card_limit() {
    let o = [fixed("f", "1.00", json!({"max_per_card": 2}))];
    check(
        &o,
        &[
            auth("e1", "t1", "10.00"),
            auth("e2", "t2", "10.00"),
            auth("e3", "t3", "10.00"),                                    // limit reached
            with(auth("e4", "t4", "10.00"), json!({"card_token": "c2"})), // other card
            reversal("e5", "t1"),                                         // frees one
            auth("e6", "t6", "10.00"),
        ],
        &[
            "e1 f PENDING 1.00 1.00",
            "e2 f PENDING 1.00 1.00",
            "e4 f PENDING 1.00 1.00",
            "e5 f CANCELLED 0.00 -1.00",
            "e6 f PENDING 1.00 1.00",
        ],
    );
}

#[test]
fn r8_authorization() {
    let o = [pct("p", "10", json!({}))];
    // A known transaction id changes nothing, even with another amount.
    check(&o, &[auth("e1", "t1", "10.00"), auth("e2", "t1", "50.00")], &["e1 p PENDING 1.00 1.00"]);
    // Nor after it was cleared without authorization, or reversed.
    check(&o, &[clearing("e1", "t1", "10.00"), auth("e2", "t1", "10.00")], &["e1 p CONFIRMED 1.00 1.00"]);
    check(
        &o,
        &[auth("e1", "t1", "10.00"), reversal("e2", "t1"), auth("e3", "t1", "10.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
    // The same transaction id on another card is another transaction.
    check(
        &o,
        &[auth("e1", "t1", "10.00"), with(auth("e2", "t1", "10.00"), json!({"card_token": "c2"}))],
        &["e1 p PENDING 1.00 1.00", "e2 p PENDING 1.00 1.00"],
    );
}

#[test]
fn r9_clearing() {
    let p10 = [pct("p", "10", json!({}))];
    // Above the authorization (a tip), below it, zero.
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "12.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 1.20 0.20"],
    );
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "8.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 0.80 -0.20"],
    );
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "0")],
        &["e1 p PENDING 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
    // Below min_spend, or worth zero once re-valued.
    check(
        &[pct("p", "10", json!({"min_spend": "10.00"}))],
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "9.99")],
        &["e1 p PENDING 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "0.05")],
        &["e1 p PENDING 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
    // A status change alone is a record, with delta zero.
    check(
        &[pct("p", "10", json!({"max_reward": "1.00"}))],
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "15.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 1.00 0.00"],
    );
    // The budget is counted without the reward's own reservation.
    check(
        &[pct("p", "10", json!({"budget": "2.00"}))],
        &[
            auth("e1", "t1", "10.00"),
            clearing("e2", "t1", "15.00"),
            auth("e3", "t3", "10.00"),
            clearing("e4", "t3", "20.00"),
        ],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 1.50 0.50", "e3 p PENDING 0.50 0.50", "e4 p CONFIRMED 0.50 0.00"],
    );
    // Time rules, activation and the per-card limit are not judged again.
    let late = with(clearing("e2", "t1", "10.00"), json!({"occurred_at": "2026-05-09T23:00:00-04:00"}));
    check(
        &[pct(
            "p",
            "10",
            json!({"hours": {"from": "11:00", "until": "14:00"}, "days": ["MON"], "valid_until": "2026-05-05T00:00:00Z"}),
        )],
        &[auth("e1", "t1", "10.00"), late.clone()],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 1.00 0.00"],
    );
    // Never adds offers: the authorization's choice stands.
    check(
        &[pct("p", "10", json!({})), fixed("q", "1.10", json!({"min_spend": "11.00"}))],
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "20.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 2.00 1.00"],
    );
    // Without an authorization: judged like one, confirmed at once.
    check(&p10, &[clearing("e1", "t1", "10.00")], &["e1 p CONFIRMED 1.00 1.00"]);
    check(
        &[pct("p", "10", json!({"hours": {"from": "20:00", "until": "21:00"}}))],
        &[clearing("e1", "t1", "10.00")],
        &[],
    );
    // A second clearing changes nothing.
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "10.00"), clearing("e3", "t1", "99.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CONFIRMED 1.00 0.00"],
    );
    // Clearing a reversed authorization settles nothing.
    check(
        &p10,
        &[auth("e1", "t1", "10.00"), reversal("e2", "t1"), clearing("e3", "t1", "10.00")],
        &["e1 p PENDING 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
}

#[test]
fn r10_reversal() {
    let o = [pct("p", "10", json!({})), points("pts", "1", json!({}))];
    check(
        &o,
        &[auth("e1", "t1", "10.00"), reversal("e2", "t1"), reversal("e3", "t1")],
        &["e1 p PENDING 1.00 1.00", "e1 pts PENDING 10 10", "e2 p CANCELLED 0.00 -1.00", "e2 pts CANCELLED 0 -10"],
    );
    // On a cleared or unknown transaction: nothing.
    check(
        &o,
        &[auth("e1", "t1", "10.00"), clearing("e2", "t1", "10.00"), reversal("e3", "t1"), reversal("e4", "nope")],
        &["e1 p PENDING 1.00 1.00", "e1 pts PENDING 10 10", "e2 p CONFIRMED 1.00 0.00", "e2 pts CONFIRMED 10 0"],
    );
}

#[test]
fn r11_refund() {
    let p10 = [pct("p", "10", json!({}))];
    // Partial refunds lower the value on the net amount; down to zero cancels.
    check(
        &p10,
        &[
            clearing("e1", "t1", "100.00"),
            refund("e2", "t1", "30.00"),
            refund("e3", "t1", "30.00"),
            refund("e4", "t1", "50.00"),
            refund("e5", "t1", "1.00"),
        ],
        &[
            "e1 p CONFIRMED 10.00 10.00",
            "e2 p CONFIRMED 7.00 -3.00",
            "e3 p CONFIRMED 4.00 -3.00",
            "e4 p CANCELLED 0.00 -4.00",
        ],
    );
    // A refund above the net amount floors it at zero.
    check(
        &p10,
        &[clearing("e1", "t1", "10.00"), refund("e2", "t1", "25.00")],
        &["e1 p CONFIRMED 1.00 1.00", "e2 p CANCELLED 0.00 -1.00"],
    );
    // Fixed rewards keep their value until the net falls below min_spend.
    check(
        &[fixed("f", "5.00", json!({"min_spend": "50.00"}))],
        &[clearing("e1", "t1", "100.00"), refund("e2", "t1", "40.00"), refund("e3", "t1", "20.00")],
        &["e1 f CONFIRMED 5.00 5.00", "e3 f CANCELLED 0.00 -5.00"],
    );
    // Points re-valued and rounded toward zero; at zero the reward stays
    // CONFIRMED (the net is above zero and min_spend) but is no longer live.
    check(
        &[points("pts", "1", json!({}))],
        &[clearing("e1", "t1", "10.00"), refund("e2", "t1", "2.50"), refund("e3", "t1", "7.00")],
        &["e1 pts CONFIRMED 10 10", "e2 pts CONFIRMED 7 -3", "e3 pts CONFIRMED 0 -7"],
    );
    let l = ledger(&[points("pts", "1", json!({}))], &[clearing("e1", "t1", "10.00"), refund("e2", "t1", "9.50")]);
    assert_eq!((l["cards"].clone(), l["offers"].clone()), (json!({}), json!({})));
    // No confirmed reward: nothing, and the later clearing is on its own amount.
    check(
        &p10,
        &[
            auth("e1", "t1", "10.00"),
            refund("e2", "t1", "10.00"),
            clearing("e3", "t1", "10.00"),
            refund("e4", "nope", "1.00"),
        ],
        &["e1 p PENDING 1.00 1.00", "e3 p CONFIRMED 1.00 0.00"],
    );
    // Never more than it was, even when budget freed elsewhere would allow it.
    check(
        &[pct("p", "10", json!({"budget": "6.00"}))],
        &[
            clearing("e1", "t1", "30.00"),
            clearing("e2", "t2", "100.00"),
            refund("e3", "t1", "30.00"),
            refund("e4", "t2", "10.00"),
        ],
        &["e1 p CONFIRMED 3.00 3.00", "e2 p CONFIRMED 3.00 3.00", "e3 p CANCELLED 0.00 -3.00"],
    );
    // A reward refunded to zero frees its per-card count.
    check(
        &[fixed("f", "1.00", json!({"max_per_card": 1}))],
        &[
            clearing("e1", "t1", "10.00"),
            auth("e2", "t2", "10.00"),
            refund("e3", "t1", "10.00"),
            auth("e4", "t4", "10.00"),
        ],
        &["e1 f CONFIRMED 1.00 1.00", "e3 f CANCELLED 0.00 -1.00", "e4 f PENDING 1.00 1.00"],
    );
    // Freed value returns to the budget.
    check(
        &[pct("p", "10", json!({"budget": "1.00"}))],
        &[
            clearing("e1", "t1", "10.00"),
            auth("e2", "t2", "10.00"),
            refund("e3", "t1", "4.00"),
            auth("e4", "t4", "10.00"),
        ],
        &["e1 p CONFIRMED 1.00 1.00", "e3 p CONFIRMED 0.60 -0.40", "e4 p PENDING 0.40 0.40"],
    );
}

#[test]
fn ledger_sums_and_omissions() {
    let o = [
        pct("cash", "10", json!({})),
        points("pts", "2", json!({})),
        with(pct("eur", "10", json!({})), json!({"currency": "EUR"})),
    ];
    let events = [
        auth("e1", "t1", "10.00"),
        auth("e2", "t2", "5.00"),
        clearing("e3", "t2", "5.00"),
        with(auth("e4", "t4", "20.00"), json!({"currency": "EUR"})),
        with(auth("e1", "t9", "1.00"), json!({"card_token": "c2"})),
        with(reversal("e2", "t9"), json!({"card_token": "c2"})),
        with(activation("e3", "x"), json!({"card_token": "c3"})),
    ];
    assert_eq!(
        ledger(&o, &events),
        json!({
            "cards": {"c1": {"confirmed": {"USD": "0.50", "POINTS": "10"}, "pending": {"USD": "1.00", "EUR": "2.00", "POINTS": "20"}}},
            "offers": {
                "cash": {"used": "1.50", "rewarded_transactions": 2},
                "eur": {"used": "2.00", "rewarded_transactions": 1},
                "pts": {"used": "30", "rewarded_transactions": 2}
            },
            "events": {"processed": 7, "duplicate": 0, "rejected": 0}
        })
    );
}
