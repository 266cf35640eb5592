//! Dead letters of events rejected for a card number: whichever field held
//! it, the dead letter names that field and shows no card number; only a
//! card token that is itself the card number is cut to its last four
//! digits (a plain token stays readable).

use cardlink_core::{RejectReason, pan, validate};
use cardlink_wire::{dead_letter, decode_json_event, write_dead_letter_json};
use serde_json::Value;

fn check(line: &str, field: &str, card_token: &str) {
    let raw = decode_json_event(line.as_bytes()).unwrap();
    let rejection = validate(&raw).unwrap_err();
    assert_eq!(rejection.reason, RejectReason::PanDetected, "{line}");
    assert_eq!(rejection.field, Some(field), "{line}");
    let mut out = Vec::new();
    write_dead_letter_json(&dead_letter(&rejection, Some(&raw), line.as_bytes(), "events.jsonl:1".into()), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(!pan::contains_pan(&text), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["field"], field, "{text}");
    assert_eq!(v["card_token"], card_token, "{text}");
}

#[test]
fn a_card_number_in_any_identifier_is_rejected_and_masked() {
    let base = |k: &str, v: &str| {
        let mut e = serde_json::json!({"event_id": "e1", "kind": "AUTHORIZATION", "network": "VISA",
            "transaction_id": "t1", "card_token": "tok_1", "amount": "1.00", "currency": "USD",
            "merchant": {"mid": "M", "mcc": "5812"}, "occurred_at": "2026-05-04T12:30:00Z"});
        e[k] = Value::String(v.into());
        e.to_string()
    };
    check(&base("card_token", "4111111111111111"), "card_token", "1111");
    check(&base("event_id", "4111111111111111"), "event_id", "tok_1");
    check(&base("transaction_id", "5555555555554444"), "transaction_id", "tok_1");
    check(
        r#"{"event_id":"e1","kind":"ACTIVATION","card_token":"tok_1","offer_id":"378282246310005","occurred_at":"2026-05-04T12:30:00Z"}"#,
        "offer_id",
        "tok_1",
    );
}

/// Found by fuzzing (fuzz/regressions/json_event): a control character
/// before digits is written `\u00XX` in JSON, and masking the digit run that
/// escape formed with the digits after it broke the escape, so the dead
/// letter was no longer JSON.
#[test]
fn control_characters_beside_digits_keep_dead_letters_json() {
    let digit_runs = [
        "7777777777",
        "4111111111111111",
        "1111111111111111111111",
        "00000000004111111111111",
        "77777777777777777777777",
    ];
    for control in ['\u{0}', '\u{1}', '\u{7}', '\u{1f}'] {
        for digits in digit_runs {
            // Raw control characters are not JSON: a MALFORMED record.
            let malformed = format!("{{\"x\":\"{control}{digits}\"}}");
            // Escaped, they are: an invalid event whose id keeps them.
            let escaped = format!(
                "{{\"event_id\":\"\\u{:04x}{digits}\",\"kind\":\"NOPE\",\"card_token\":\"tok_{control}\"}}",
                control as u32
            );
            for record in [malformed, escaped] {
                let raw = decode_json_event(record.as_bytes());
                let (rejection, raw) = match &raw {
                    Ok(raw) => (validate(raw).unwrap_err(), Some(raw)),
                    Err(rejection) => (rejection.clone(), None),
                };
                let mut out = Vec::new();
                write_dead_letter_json(&dead_letter(&rejection, raw, record.as_bytes(), "f:1".into()), &mut out);
                let text = String::from_utf8(out).unwrap();
                let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert!(!pan::contains_pan(&text), "{text}");
                assert!(v["record"].as_str().unwrap().contains('\u{FFFD}'), "{text}");
            }
        }
    }
}

/// Found by fuzzing (fuzz/regressions/proto_event): the zero-copy protobuf
/// decoder the pipeline uses had no record limit, so a record over 64 KiB
/// was refused by `cardlink replay` and accepted by `cardlink run`.
#[test]
fn both_protobuf_decoders_refuse_records_over_the_limit() {
    use cardlink_wire::{MAX_RECORD_BYTES, decode_card_event, decode_proto_event, v1};
    use prost::Message;
    for name_len in [MAX_RECORD_BYTES - 200, MAX_RECORD_BYTES + 10] {
        let e = v1::CardEvent {
            event_id: Some("e1".into()),
            merchant: Some(v1::Merchant { name: Some("x".repeat(name_len)), ..Default::default() }),
            ..Default::default()
        };
        let bytes = e.encode_to_vec();
        let (fast, prost) = (decode_card_event(&bytes), decode_proto_event(&bytes));
        assert_eq!(fast.is_ok(), bytes.len() <= MAX_RECORD_BYTES, "{} bytes", bytes.len());
        assert_eq!(fast.is_ok(), prost.is_ok(), "{} bytes", bytes.len());
        if let Err(r) = fast {
            assert_eq!(r.reason, RejectReason::Malformed);
        }
    }
}
