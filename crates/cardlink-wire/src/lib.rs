//! cardlink's wire formats.
//!
//! Decoders turn outside bytes into the core's [`RawEvent`] (JSON and
//! protobuf alike, so R1 is judged once); encoders write reward records,
//! dead letters and events in the contract's JSON form or as protobuf.
//! Pure functions over byte slices: framing and I/O live in the adapters.
#![warn(missing_docs)]

mod fastjson;
mod fastproto;

pub use fastproto::decode_card_event;

use cardlink_core::event::{Field, MerchantField, RawMerchant};
use cardlink_core::money::{format_fixed, write_fixed};
use cardlink_core::{RawEvent, RejectReason, Rejection, RewardKind, RewardStatus, RewardUpdate, pan, reward_id};
use cardlink_proto::v1 as pb;
use prost::Message;
use serde_json::{Map, Value, json};

pub use cardlink_proto::v1;

/// Largest record accepted from outside, in bytes. Larger records are
/// rejected as MALFORMED without being parsed.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Format of an event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines: one JSON object a line.
    Json,
    /// Protobuf `cardlink.v1.CardEvent`; in files, each message is preceded
    /// by its length as a varint.
    Protobuf,
}

/// Decodes one JSON event. Fails only when the bytes are not a JSON object
/// at all; field-level problems are left to [`cardlink_core::validate`].
pub fn decode_json_event(bytes: &[u8]) -> Result<RawEvent<'_>, Rejection> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Rejection::malformed(format!("record of {} bytes exceeds {MAX_RECORD_BYTES}", bytes.len())));
    }
    // Serde would read a JSON array positionally into the struct: only an
    // object is an event.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(Rejection::malformed("not a JSON event object: the record must be a JSON object"));
    }
    if let Some(event) = fastjson::decode(bytes) {
        return Ok(event);
    }
    serde_json::from_slice(bytes).map_err(|e| Rejection::malformed(format!("not a JSON event object: {e}")))
}

/// Decodes one protobuf `CardEvent`.
pub fn decode_proto_event(bytes: &[u8]) -> Result<pb::CardEvent, Rejection> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Rejection::malformed(format!("record of {} bytes exceeds {MAX_RECORD_BYTES}", bytes.len())));
    }
    pb::CardEvent::decode(bytes).map_err(|e| Rejection::malformed(format!("not a protobuf CardEvent: {e}")))
}

use fastproto::{kind_field as kind_name, network_field as network_name};

fn opt(s: &Option<String>) -> Field<'_> {
    s.as_deref().map_or(Field::Absent, Field::str)
}

/// Views a protobuf event as a raw event (borrowing its strings).
pub fn raw_from_proto(e: &pb::CardEvent) -> RawEvent<'_> {
    RawEvent {
        event_id: opt(&e.event_id),
        kind: kind_name(e.kind),
        card_token: opt(&e.card_token),
        occurred_at: opt(&e.occurred_at),
        network: network_name(e.network),
        transaction_id: opt(&e.transaction_id),
        amount: opt(&e.amount),
        currency: opt(&e.currency),
        merchant: match &e.merchant {
            None => MerchantField::Absent,
            Some(m) => MerchantField::Object(RawMerchant {
                mid: opt(&m.mid),
                mcc: opt(&m.mcc),
                country: opt(&m.country),
                name: opt(&m.name),
            }),
        },
        offer_id: opt(&e.offer_id),
    }
}

/// Writes an event in the contract's JSON form (one line, no newline).
/// Enum values outside the schema are written as their number, which R1
/// rejects on the way back in.
pub fn event_to_json(e: &pb::CardEvent) -> String {
    let mut m = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::String(v.clone()));
        }
    };
    put("event_id", &e.event_id);
    put("card_token", &e.card_token);
    put("occurred_at", &e.occurred_at);
    put("transaction_id", &e.transaction_id);
    put("amount", &e.amount);
    put("currency", &e.currency);
    put("offer_id", &e.offer_id);
    if let Field::Str(k) = kind_name(e.kind) {
        m.insert("kind".into(), Value::String(k.into_owned()));
    }
    if let Field::Str(n) = network_name(e.network) {
        m.insert("network".into(), Value::String(n.into_owned()));
    }
    if let Some(mer) = &e.merchant {
        let mut o = Map::new();
        for (k, v) in [("mid", &mer.mid), ("mcc", &mer.mcc), ("country", &mer.country), ("name", &mer.name)] {
            if let Some(v) = v {
                o.insert(k.into(), Value::String(v.clone()));
            }
        }
        m.insert("merchant".into(), Value::Object(o));
    }
    Value::Object(m).to_string()
}

/// Parses the contract's kind name into the protobuf enum.
pub fn event_kind_from_name(name: &str) -> Option<pb::EventKind> {
    pb::EventKind::from_str_name(name).filter(|k| *k != pb::EventKind::Unspecified)
}

/// Parses the contract's network name into the protobuf enum.
pub fn network_from_name(name: &str) -> Option<pb::Network> {
    pb::Network::from_str_name(name).filter(|n| *n != pb::Network::Unspecified)
}

/// True when a string is written into JSON as it is: no quote, backslash
/// or control character (serde_json escapes nothing else).
#[inline]
fn json_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

#[inline]
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if json_plain(s) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Writes the [`reward_id`] of a record as a JSON string without building
/// it first, when no part needs escaping (the common case).
#[inline]
fn push_reward_id(out: &mut Vec<u8>, u: &RewardUpdate<'_>) {
    let plain = |s: &str| !s.bytes().any(|b| b == b'%' || b == b'|' || b == b'"' || b == b'\\' || b < 0x20);
    if plain(u.offer_id) && plain(u.transaction_id) && json_plain(u.card_token) {
        out.push(b'"');
        for part in [u.offer_id, "|", u.transaction_id, "|", u.card_token] {
            out.extend_from_slice(part.as_bytes());
        }
        out.push(b'"');
    } else {
        push_json_str(out, &reward_id(u.offer_id, u.transaction_id, u.card_token));
    }
}

/// Appends a reward record in the contract's JSON form, with a newline.
pub fn write_reward_json(u: &RewardUpdate<'_>, out: &mut Vec<u8>) {
    let digits = u.kind.digits();
    out.extend_from_slice(b"{\"reward_id\":");
    push_reward_id(out, u);
    for (key, v) in [
        (&b",\"offer_id\":"[..], u.offer_id),
        (b",\"card_token\":", u.card_token),
        (b",\"transaction_id\":", u.transaction_id),
        (b",\"event_id\":", u.event_id),
    ] {
        out.extend_from_slice(key);
        push_json_str(out, v);
    }
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(u.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(u.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"value\":\"");
    write_fixed(u.value, digits, out);
    out.extend_from_slice(b"\",\"delta\":\"");
    write_fixed(u.delta, digits, out);
    out.push(b'"');
    if let RewardKind::Cash(c) = u.kind {
        out.extend_from_slice(b",\"currency\":\"");
        out.extend_from_slice(c.code().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// A reward record as a protobuf message.
pub fn reward_to_proto(u: &RewardUpdate<'_>) -> pb::RewardRecord {
    let digits = u.kind.digits();
    pb::RewardRecord {
        reward_id: reward_id(u.offer_id, u.transaction_id, u.card_token),
        offer_id: u.offer_id.to_owned(),
        card_token: u.card_token.to_owned(),
        transaction_id: u.transaction_id.to_owned(),
        event_id: u.event_id.to_owned(),
        status: match u.status {
            RewardStatus::Pending => pb::RewardStatus::Pending,
            RewardStatus::Confirmed => pb::RewardStatus::Confirmed,
            RewardStatus::Cancelled => pb::RewardStatus::Cancelled,
        } as i32,
        kind: match u.kind {
            RewardKind::Cash(_) => pb::RewardKind::Cash,
            RewardKind::Points => pb::RewardKind::Points,
        } as i32,
        value: format_fixed(u.value, digits),
        delta: format_fixed(u.delta, digits),
        currency: match u.kind {
            RewardKind::Cash(c) => Some(c.code().to_owned()),
            RewardKind::Points => None,
        },
    }
}

/// A reward record in the contract's JSON form, from its protobuf message.
pub fn reward_proto_to_json(r: &pb::RewardRecord) -> Value {
    let mut v = json!({
        "reward_id": r.reward_id, "offer_id": r.offer_id, "card_token": r.card_token,
        "transaction_id": r.transaction_id, "event_id": r.event_id,
        "status": pb::RewardStatus::try_from(r.status).map_or("UNKNOWN", |s| s.as_str_name()),
        "kind": pb::RewardKind::try_from(r.kind).map_or("UNKNOWN", |k| k.as_str_name()),
        "value": r.value, "delta": r.delta,
    });
    if let Some(c) = &r.currency {
        v["currency"] = Value::String(c.clone());
    }
    v
}

/// Most bytes of the original record a dead letter keeps.
pub const DEAD_LETTER_RECORD_BYTES: usize = 4096;

/// Builds the dead letter of a rejected record. The card token, the event
/// id and the original record are kept only with raw card numbers masked;
/// when the token itself is the card number only its last four digits are
/// kept.
pub fn dead_letter(rejection: &Rejection, raw: Option<&RawEvent<'_>>, record: &[u8], source: String) -> pb::DeadLetter {
    let text = |f: &Field<'_>| match f {
        Field::Str(s) => Some(pan::mask_pans(s).into_owned()),
        _ => None,
    };
    let card_token = raw.and_then(|r| match &r.card_token {
        Field::Str(s) if rejection.reason == RejectReason::PanDetected && rejection.field == Some("card_token") => {
            Some(pan::last_four(s).to_owned())
        }
        f => text(f),
    });
    let cut = &record[..record.len().min(DEAD_LETTER_RECORD_BYTES)];
    let shown = String::from_utf8_lossy(cut);
    pb::DeadLetter {
        reason: rejection.reason.as_str().to_owned(),
        field: rejection.field.map(str::to_owned),
        detail: pan::mask_pans(&rejection.detail).into_owned(),
        event_id: raw.and_then(|r| text(&r.event_id)),
        card_token,
        source,
        record: pan::mask_pans(&shown).into_owned(),
    }
}

/// Appends a dead letter as one JSON line. The whole line is masked once
/// more, so no 13–19 digit Luhn-valid number can leave through it.
pub fn write_dead_letter_json(d: &pb::DeadLetter, out: &mut Vec<u8>) {
    let text = |s: &str| Value::String(pan::mask_pans(&printable(s)).into_owned());
    let mut v =
        json!({"reason": d.reason, "detail": text(&d.detail), "source": text(&d.source), "record": text(&d.record)});
    for (k, f) in [("field", &d.field), ("event_id", &d.event_id), ("card_token", &d.card_token)] {
        if let Some(f) = f {
            v[k] = text(f);
        }
    }
    let line = v.to_string();
    out.extend_from_slice(pan::mask_pans(&line).as_bytes());
    out.push(b'\n');
}

/// JSON writes most control characters as `\u00XX`: the escape's hex
/// digits could join the digits after it into a run that looks like a card
/// number, and masking that run would break the escape (the line would no
/// longer be JSON). A dead letter's text is for people, so those characters
/// become U+FFFD; tab, newline, carriage return, backspace and form feed
/// have escapes without digits and stay.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hex_escaped = |c: char| c < ' ' && !matches!(c, '\n' | '\r' | '\t' | '\u{8}' | '\u{c}');
    if s.chars().any(hex_escaped) {
        std::borrow::Cow::Owned(s.chars().map(|c| if hex_escaped(c) { '\u{FFFD}' } else { c }).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Converts a protobuf offer to the contract's JSON form, for validation by
/// [`cardlink_core::parse_offer`] (one validator for every source).
pub fn offer_proto_to_json(o: &pb::Offer) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(o.id));
    v.insert("currency".into(), json!(o.currency));
    if let Some(r) = &o.reward {
        let r = match r {
            pb::offer::Reward::Percent(p) => json!({"percent": p}),
            pb::offer::Reward::Fixed(f) => json!({"fixed": f}),
            pb::offer::Reward::PointsPerUnit(p) => json!({"points_per_unit": p}),
        };
        v.insert("reward".into(), r);
    }
    if let Some(m) = &o.merchant {
        v.insert("merchant".into(), json!({"mids": m.mids, "mccs": m.mccs, "countries": m.countries}));
    }
    if !o.networks.is_empty() {
        v.insert("networks".into(), json!(o.networks));
    }
    if !o.days.is_empty() {
        v.insert("days".into(), json!(o.days));
    }
    for (k, f) in [
        ("min_spend", &o.min_spend),
        ("max_reward", &o.max_reward),
        ("valid_from", &o.valid_from),
        ("valid_until", &o.valid_until),
        ("budget", &o.budget),
    ] {
        if let Some(f) = f {
            v.insert(k.into(), json!(f));
        }
    }
    if let Some(h) = &o.hours {
        v.insert("hours".into(), json!({"from": h.from, "until": h.until}));
    }
    if let Some(a) = o.activation_required {
        v.insert("activation_required".into(), json!(a));
    }
    if let Some(n) = o.max_per_card {
        v.insert("max_per_card".into(), json!(n));
    }
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_protobuf_decode_to_the_same_raw_event() {
        let line = br#"{"event_id":"1","kind":"AUTHORIZATION","network":"VISA","transaction_id":"t1","card_token":"c1","amount":"33.33","currency":"USD","merchant":{"mid":"M1","mcc":"5812","country":"US"},"occurred_at":"2026-05-04T12:30:00-04:00","extra":[1,{"a":2}]}"#;
        let from_json = decode_json_event(line).unwrap();
        let pb_event = pb::CardEvent {
            event_id: Some("1".into()),
            kind: pb::EventKind::Authorization as i32,
            card_token: Some("c1".into()),
            occurred_at: Some("2026-05-04T12:30:00-04:00".into()),
            network: pb::Network::Visa as i32,
            transaction_id: Some("t1".into()),
            amount: Some("33.33".into()),
            currency: Some("USD".into()),
            merchant: Some(pb::Merchant {
                mid: Some("M1".into()),
                mcc: Some("5812".into()),
                country: Some("US".into()),
                name: None,
            }),
            offer_id: None,
        };
        let bytes = pb_event.encode_to_vec();
        let decoded = decode_proto_event(&bytes).unwrap();
        assert_eq!(raw_from_proto(&decoded), from_json);
        let round = event_to_json(&decoded);
        assert_eq!(decode_json_event(round.as_bytes()).unwrap(), from_json);
    }

    #[test]
    fn malformed_inputs_are_rejections_not_panics() {
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            b"\"str\"",
            b"{\"event_id\":",
            b"\xff\xfe",
            b"{\"kind\":\"A\",\"kind\":\"B\"}",
            b"",
        ] {
            assert_eq!(decode_json_event(bad).unwrap_err().reason, RejectReason::Malformed, "{bad:?}");
        }
        assert!(decode_json_event(b"[1]").is_err());
        assert!(decode_proto_event(&[0xff, 0xff, 0xff]).is_err());
    }

    /// Both decoders accept or both reject, and read the same fields.
    fn same_decoding(bytes: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
        let ours = decode_card_event(bytes);
        let theirs = decode_proto_event(bytes);
        proptest::prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}", bytes);
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            proptest::prop_assert_eq!(a, raw_from_proto(&b));
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// The zero-copy decoder accepts and rejects what prost does, and
        /// reads the same fields, on random bytes...
        #[test]
        fn zero_copy_decoder_agrees_with_prost_on_random_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            same_decoding(&bytes)?;
        }

        /// ...and on real messages, cut or with a byte changed.
        #[test]
        fn zero_copy_decoder_agrees_with_prost_on_mangled_messages(cut in 0usize..200, at in 0usize..200, byte in proptest::prelude::any::<u8>(), kind in -3i32..8) {
            let e = pb::CardEvent {
                event_id: Some("e-1".into()), kind, card_token: Some("tok_1".into()),
                occurred_at: Some("2026-05-04T12:30:00-04:00".into()), network: 2, transaction_id: Some("t".into()),
                amount: Some("1.00".into()), currency: Some("USD".into()),
                merchant: Some(pb::Merchant { mid: Some("M".into()), mcc: Some("5812".into()), country: None, name: Some("ü".into()) }),
                offer_id: None,
            };
            let mut bytes = e.encode_to_vec();
            bytes.extend_from_slice(&e.encode_to_vec());
            if at < bytes.len() { bytes[at] = byte; }
            bytes.truncate(cut.min(bytes.len()));
            same_decoding(&bytes)?;
        }
    }

    /// Where the JSON fast path answers, serde_json answers the same.
    fn same_json_decoding(bytes: &[u8]) -> Result<bool, proptest::test_runner::TestCaseError> {
        let Some(fast) = fastjson::decode(bytes) else { return Ok(false) };
        let slow: Result<RawEvent<'_>, _> = serde_json::from_slice(bytes);
        proptest::prop_assert_eq!(Ok(fast), slow.map_err(|e| e.to_string()), "{:?}", String::from_utf8_lossy(bytes));
        Ok(true)
    }

    const LINE: &str = r#"{"event_id":"e-1","kind":"AUTHORIZATION","card_token":"tok_1","occurred_at":"2026-05-04T12:30:00-04:00","network":"VISA","transaction_id":"t","amount":"1.00","currency":"USD","merchant":{"mid":"M","mcc":"5812","country":"US","name":"Café"},"offer_id":null}"#;

    /// Pieces JSON lines are assembled from: the fast path's shapes and
    /// every shape it must leave to serde_json.
    fn json_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let keys = prop_oneof![
            Just("event_id"),
            Just("kind"),
            Just("card_token"),
            Just("merchant"),
            Just("mid"),
            Just("name"),
            Just("amount"),
            Just("x"),
            Just(r"event\u005fid"),
            Just("offer_id"),
            Just("mcc"),
        ];
        let values = prop_oneof![
            Just(r#""a""#),
            Just(r#""""#),
            Just("null"),
            Just("nul"),
            Just("1"),
            Just("-0.5e3"),
            Just("1e400"),
            Just("true"),
            Just(r#"[1,{"a":2}]"#),
            Just(r#""é""#),
            Just(r#""a\"b""#),
            Just(r#""\ud800""#),
            Just("\"a\tb\""),
            Just("{}"),
            Just(r#"{"mid":"M","mcc":"5812"}"#),
            Just(r#"{"mid":"M","mid":"N"}"#),
            Just(r#"{"mid":null,"x":{"y":1}}"#),
            Just(r#"{"mid":"M" ,"z":"q"}"#),
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t "), Just("\u{c}")];
        (keys, values, ws.clone(), ws).prop_map(|(k, v, a, b)| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// The JSON fast path agrees with serde_json on assembled objects...
        #[test]
        fn json_fast_path_agrees_with_serde_on_assembled_objects(
            pieces in proptest::collection::vec(json_piece(), 0..6), lead in 0usize..3, tail in 0usize..4,
        ) {
            let body = pieces.join(",");
            let line = format!("{}{{{body}}}{}", [" ", "", "\n"][lead], ["", " ", "x", "}"][tail]);
            same_json_decoding(line.as_bytes())?;
        }

        /// ...and on a real line, cut or with a byte changed.
        #[test]
        fn json_fast_path_agrees_with_serde_on_mangled_lines(cut in 0usize..300, at in 0usize..300, byte in proptest::prelude::any::<u8>()) {
            let mut bytes = LINE.as_bytes().to_vec();
            if at < bytes.len() { bytes[at] = byte; }
            bytes.truncate(cut.min(bytes.len()));
            same_json_decoding(&bytes)?;
        }
    }

    #[test]
    fn json_fast_path_answers_for_well_formed_lines() {
        assert!(same_json_decoding(LINE.as_bytes()).unwrap());
        assert!(same_json_decoding(b" { } ").unwrap());
        assert!(same_json_decoding(br#"{"merchant":"x","other":"y","mid":null}"#).unwrap());
        // Left to serde_json: escapes, numbers, nested values, duplicates.
        for line in [r#"{"event_id":"a\"b"}"#, r#"{"x":1}"#, r#"{"x":{}}"#, r#"{"kind":"A","kind":"B"}"#] {
            assert!(!same_json_decoding(line.as_bytes()).unwrap(), "{line}");
        }
    }

    /// The hand-written record equals one built with serde_json, whatever
    /// the ids hold.
    #[test]
    fn reward_records_are_written_as_serde_would() {
        use cardlink_core::Currency;
        use rust_decimal::Decimal;
        fn reference(u: &RewardUpdate<'_>) -> String {
            let s = |x: &str| serde_json::to_string(x).unwrap();
            let d = u.kind.digits();
            let mut line = format!(
                "{{\"reward_id\":{},\"offer_id\":{},\"card_token\":{},\"transaction_id\":{},\"event_id\":{},\"status\":\"{}\",\"kind\":\"{}\",\"value\":\"{}\",\"delta\":\"{}\"",
                s(&reward_id(u.offer_id, u.transaction_id, u.card_token)),
                s(u.offer_id),
                s(u.card_token),
                s(u.transaction_id),
                s(u.event_id),
                u.status.as_str(),
                u.kind.as_str(),
                format_fixed(u.value, d),
                format_fixed(u.delta, d)
            );
            if let RewardKind::Cash(c) = u.kind {
                line += &format!(",\"currency\":\"{c}\"");
            }
            line + "}\n"
        }
        let ids = ["o-1", "50%|off", "quo\"te", "back\\slash", "tab\there", "café", "\u{1}", "", "a|b%c"];
        for (i, &offer) in ids.iter().enumerate() {
            for &tx in &ids {
                let u = RewardUpdate {
                    offer_id: offer,
                    card_token: "tok_1",
                    transaction_id: tx,
                    event_id: ids[(i + 3) % ids.len()],
                    status: RewardStatus::Confirmed,
                    kind: if i % 2 == 0 {
                        RewardKind::Cash(Currency::from_code("KWD").unwrap())
                    } else {
                        RewardKind::Points
                    },
                    value: Decimal::new(12345, 3),
                    delta: Decimal::new(-5, 1),
                };
                let mut out = Vec::new();
                write_reward_json(&u, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), reference(&u));
            }
        }
    }

    #[test]
    fn unknown_enum_numbers_stay_visible() {
        let e = pb::CardEvent { kind: 42, ..Default::default() };
        assert_eq!(raw_from_proto(&e).kind, Field::str("42"));
    }

    #[test]
    fn dead_letters_never_carry_a_pan() {
        let line = br#"{"event_id":"5","kind":"AUTHORIZATION","card_token":"4111111111111111","transaction_id":"5555555555554444"}"#;
        let raw = decode_json_event(line).unwrap();
        let rejection = cardlink_core::validate(&raw).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::PanDetected);
        let d = dead_letter(&rejection, Some(&raw), line, "events.jsonl:6".into());
        let mut out = Vec::new();
        write_dead_letter_json(&d, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!pan::contains_pan(&text), "{text}");
        assert!(text.contains("\"card_token\":\"1111\""), "{text}");
        assert!(text.contains("PAN_DETECTED"));
    }
}
