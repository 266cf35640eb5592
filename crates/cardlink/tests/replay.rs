//! The replay command end to end, on recorded fixtures (contract section 6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `cardlink replay` and returns (exit code, stderr).
fn replay(offers: &Path, events: &Path, extra: &[&str], out: &str) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cardlink"))
        .arg("replay")
        .arg("--offers")
        .arg(offers)
        .arg("--events")
        .arg(events)
        .arg("--rewards")
        .arg(tmp(&format!("{out}.rewards.jsonl")))
        .arg("--ledger")
        .arg(tmp(&format!("{out}.ledger.json")))
        .arg("--dead-letters")
        .arg(tmp(&format!("{out}.dlq.jsonl")))
        .args(extra)
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Records grouped by event, each group sorted: order within an event is free.
fn by_event(records: Vec<Value>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mut r in records {
        // reward_id values are the implementation's to choose.
        r.as_object_mut().unwrap().remove("reward_id");
        m.entry(r["event_id"].as_str().unwrap().to_string()).or_default().push(r.to_string());
    }
    m.values_mut().for_each(|v| v.sort());
    m
}

/// Replays fixture `name` and checks its ledger and reward records against
/// the expected files beside it; returns the expected ledger.
fn replay_fixture_and_compare(name: &str) -> Value {
    let dir = fixture(name);
    let (code, err) = replay(&dir.join("offers.json"), &dir.join("events.jsonl"), &["--quiet"], name);
    assert_eq!(code, 0, "{err}");
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp(&format!("{name}.ledger.json"))).unwrap()).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger, expected);
    assert_eq!(
        by_event(json_lines(&tmp(&format!("{name}.rewards.jsonl")))),
        by_event(json_lines(&dir.join("rewards.jsonl")))
    );
    expected
}

#[test]
fn worked_example_gives_exactly_the_expected_output() {
    replay_fixture_and_compare("basic");
    // R1: the PAN event is a dead letter keeping only the last four digits.
    let dlq = std::fs::read_to_string(tmp("basic.dlq.jsonl")).unwrap();
    assert_eq!(dlq.lines().count(), 1);
    assert!(dlq.contains("PAN_DETECTED") && !dlq.contains("4111111111111111"), "{dlq}");
}

#[test]
fn recorded_simulated_feed_matches_the_reference_implementation() {
    // Expected outputs were written by tools/oracle, an independent implementation.
    let expected = replay_fixture_and_compare("simulated");
    let rejected = expected["events"]["rejected"].as_u64().unwrap() as usize;
    assert_eq!(std::fs::read_to_string(tmp("simulated.dlq.jsonl")).unwrap().lines().count(), rejected);
}

#[test]
fn protobuf_input_gives_the_same_output_as_json() {
    use prost::Message;
    let dir = fixture("basic");
    let pb_path = tmp("basic.pb");
    let mut bytes = Vec::new();
    for line in std::fs::read_to_string(dir.join("events.jsonl")).unwrap().lines() {
        let raw = cardlink_wire::decode_json_event(line.as_bytes()).unwrap();
        let text = |f: &cardlink_core::Field<'_>| match f {
            cardlink_core::Field::Str(s) => Some(s.to_string()),
            _ => None,
        };
        let merchant = match &raw.merchant {
            cardlink_core::MerchantField::Object(m) => Some(cardlink_wire::v1::Merchant {
                mid: text(&m.mid),
                mcc: text(&m.mcc),
                country: text(&m.country),
                name: text(&m.name),
            }),
            _ => None,
        };
        let e = cardlink_wire::v1::CardEvent {
            event_id: text(&raw.event_id),
            kind: cardlink_wire::event_kind_from_name(&text(&raw.kind).unwrap()).unwrap() as i32,
            card_token: text(&raw.card_token),
            occurred_at: text(&raw.occurred_at),
            network: text(&raw.network).and_then(|n| cardlink_wire::network_from_name(&n)).map_or(0, |n| n as i32),
            transaction_id: text(&raw.transaction_id),
            amount: text(&raw.amount),
            currency: text(&raw.currency),
            merchant,
            offer_id: text(&raw.offer_id),
        };
        e.encode_length_delimited(&mut bytes).unwrap();
    }
    std::fs::write(&pb_path, bytes).unwrap();
    let (code, err) = replay(&dir.join("offers.json"), &pb_path, &["--quiet"], "basic-pb");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(tmp("basic-pb.ledger.json")).unwrap(), {
        replay(&dir.join("offers.json"), &dir.join("events.jsonl"), &["--quiet"], "basic-json");
        std::fs::read(tmp("basic-json.ledger.json")).unwrap()
    });
    assert_eq!(
        by_event(json_lines(&tmp("basic-pb.rewards.jsonl"))),
        by_event(json_lines(&tmp("basic-json.rewards.jsonl")))
    );
}

#[test]
fn replaying_twice_gives_byte_identical_output() {
    let dir = fixture("basic");
    replay(&dir.join("offers.json"), &dir.join("events.jsonl"), &["--quiet"], "twice-a");
    replay(&dir.join("offers.json"), &dir.join("events.jsonl"), &["--quiet"], "twice-b");
    for ext in ["rewards.jsonl", "ledger.json", "dlq.jsonl"] {
        assert_eq!(
            std::fs::read(tmp(&format!("twice-a.{ext}"))).unwrap(),
            std::fs::read(tmp(&format!("twice-b.{ext}"))).unwrap(),
            "{ext}"
        );
    }
}

#[test]
fn exit_codes() {
    let dir = fixture("basic");
    let bad_offers = tmp("bad-offers.json");
    std::fs::write(&bad_offers, r#"[{"id":"x","currency":"USD","reward":{"percent":"150"}}]"#).unwrap();
    // An invalid offer file: exit 2, with a message naming the offer and the field.
    let (code, err) = replay(&bad_offers, &dir.join("events.jsonl"), &[], "bad");
    assert_eq!(code, 2);
    assert!(err.contains("\"x\"") && err.contains("reward.percent"), "{err}");
    // An unreadable event file: exit 1.
    let (code, err) = replay(&dir.join("offers.json"), &dir.join("missing.jsonl"), &[], "missing");
    assert_eq!(code, 1, "{err}");
    // Bad arguments: exit 2.
    let o = Command::new(env!("CARGO_BIN_EXE_cardlink")).args(["replay", "--offers"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let (code, _) = replay(&dir.join("offers.json"), &dir.join("offers.json").with_extension("txt"), &[], "ext");
    assert_eq!(code, 2);
}

#[test]
fn malformed_lines_are_dead_letters_and_the_rest_goes_on() {
    let dir = fixture("basic");
    let events = tmp("mixed.jsonl");
    let good = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let mut text = String::from("this is not json\n{\"event_id\": \n[1,2,3]\n\u{0}\n");
    text.push_str(&good);
    std::fs::write(&events, text).unwrap();
    let (code, err) = replay(&dir.join("offers.json"), &events, &["--quiet"], "mixed");
    assert_eq!(code, 0, "{err}");
    let ledger: Value = serde_json::from_str(&std::fs::read_to_string(tmp("mixed.ledger.json")).unwrap()).unwrap();
    assert_eq!(ledger["events"], serde_json::json!({"processed": 4, "duplicate": 1, "rejected": 5}));
    let dlq = json_lines(&tmp("mixed.dlq.jsonl"));
    assert_eq!(dlq.len(), 5);
    assert!(dlq[..4].iter().all(|d| d["reason"] == "MALFORMED"));
    assert_eq!(dlq[0]["source"], "mixed.jsonl:1");
}
