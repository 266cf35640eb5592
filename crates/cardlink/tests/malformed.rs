//! The malformed-input catalogue (tests/fixtures/malformed, written by its
//! generate.py; its README lists the kinds of case) through `cardlink
//! replay` and through the Kafka pipeline: every record must end exactly as
//! the manifest says (accepted, duplicate, or dead-lettered with that reason
//! and field), every good event interleaved with the bad ones must earn its
//! reward, and no output may show a card number.
//!
//! The Kafka half needs CARDLINK_KAFKA_BOOTSTRAP (scripts/test sets it) and
//! skips itself without it.

mod hostile;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use cardlink_kafka::TopicFormat;
use cardlink_kafka::codec::{decode_dead_letter, decode_reward};
use hostile::{BIN, Case, Kafka, assert_no_pan, catalogue_dir, manifest, records};
use serde_json::Value;

/// What a run made of the catalogue.
#[derive(Debug, Default)]
struct Seen {
    /// Dead letters by record number: (reason, field).
    dead: BTreeMap<u64, (String, Option<String>)>,
    /// Reward records by (card token, event id).
    rewards: BTreeMap<(String, String), u64>,
}

impl Seen {
    fn dead_letter(&mut self, record: u64, reason: String, field: Option<String>) {
        let before = self.dead.insert(record, (reason, field));
        assert!(before.is_none(), "two dead letters for record {record}");
    }

    fn reward(&mut self, card: String, event: String) {
        *self.rewards.entry((card, event)).or_default() += 1;
    }
}

/// The card token and event id of a record the manifest says is accepted.
fn ids(file: &str, record: &[u8]) -> (String, String) {
    if file.ends_with(".pb") {
        let e = cardlink_wire::decode_proto_event(record).unwrap();
        return (e.card_token.unwrap(), e.event_id.unwrap());
    }
    // Through the product's decoder: serde_json's Value refuses the deep
    // nesting some accepted cases carry in ignored fields.
    let raw = cardlink_wire::decode_json_event(record).unwrap();
    let text = |f: &cardlink_core::Field<'_>| match f {
        cardlink_core::Field::Str(s) => s.to_string(),
        other => panic!("{other:?}"),
    };
    (text(&raw.card_token), text(&raw.event_id))
}

fn is_rejection(c: &Case) -> bool {
    c.expect != "accepted" && c.expect != "duplicate"
}

/// Holds a run's outcome to the manifest.
fn check(file: &str, seen: &Seen) {
    let cases = manifest(file);
    let records = records(file);
    assert_eq!(records.len(), cases.len(), "{file}: one manifest line per record");
    let mut wrong = Vec::new();
    for c in &cases {
        let got = seen.dead.get(&c.record);
        let ok = match got {
            None => !is_rejection(c),
            Some((reason, field)) => *reason == c.expect && *field == c.field,
        };
        if !ok {
            wrong.push(format!("{} (record {}): expected {} {:?}, got {got:?}", c.name, c.record, c.expect, c.field));
        }
    }
    assert!(
        wrong.is_empty(),
        "{file}: {} cases ended otherwise than the manifest says:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in cases.iter().filter(|c| c.rewards > 0) {
        *want.entry(ids(file, &records[c.record as usize - 1])).or_default() += c.rewards;
    }
    let goods = cases.iter().filter(|c| c.name.starts_with("good-after-")).count();
    assert!(goods > 20, "{file}: good events are interleaved");
    assert_eq!(seen.rewards, want, "{file}: reward records per (card, event)");
}

fn tally(file: &str) -> (u64, u64, u64) {
    let cases = manifest(file);
    let n = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count() as u64;
    (n(&|c| c.expect == "accepted"), n(&|c| c.expect == "duplicate"), n(&is_rejection))
}

#[test]
fn catalogue_through_replay() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("malformed-replay");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["catalogue.jsonl", "catalogue.pb"] {
        let (rewards, dead, ledger) =
            (dir.join(format!("{file}.rewards")), dir.join(format!("{file}.dlq")), dir.join(format!("{file}.ledger")));
        let out = Command::new(BIN)
            .arg("replay")
            .arg("--offers")
            .arg(catalogue_dir().join("offers.json"))
            .arg("--events")
            .arg(catalogue_dir().join(file))
            .arg("--rewards")
            .arg(&rewards)
            .arg("--dead-letters")
            .arg(&dead)
            .arg("--ledger")
            .arg(&ledger)
            .env("CARDLINK_LOG", "trace")
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "replay of {file}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        let mut seen = Seen::default();
        let dead_bytes = std::fs::read(&dead).unwrap();
        for line in String::from_utf8(dead_bytes.clone()).unwrap().lines() {
            let d: Value = serde_json::from_str(line).unwrap();
            let source = d["source"].as_str().unwrap();
            let record = source.strip_prefix(&format!("{file}:")).unwrap().parse().unwrap();
            let field = d.get("field").and_then(Value::as_str).map(str::to_owned);
            seen.dead_letter(record, d["reason"].as_str().unwrap().into(), field);
        }
        let reward_bytes = std::fs::read(&rewards).unwrap();
        for line in String::from_utf8(reward_bytes.clone()).unwrap().lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            seen.reward(r["card_token"].as_str().unwrap().into(), r["event_id"].as_str().unwrap().into());
        }
        check(file, &seen);
        let ledger_bytes = std::fs::read(&ledger).unwrap();
        let l: Value = serde_json::from_slice(&ledger_bytes).unwrap();
        let (accepted, duplicate, rejected) = tally(file);
        assert_eq!(l["events"]["processed"], accepted, "{file}: processed");
        assert_eq!(l["events"]["duplicate"], duplicate, "{file}: duplicates");
        assert_eq!(l["events"]["rejected"], rejected, "{file}: rejected");
        for (what, bytes) in [
            ("rewards", &reward_bytes),
            ("dead letters", &dead_bytes),
            ("ledger", &ledger_bytes),
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
        ] {
            assert_no_pan(&format!("{file}: {what}"), bytes);
        }
    }
}

/// The pipeline tests share one broker and two cores: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One catalogue file through a pipeline whose topics all use `format`.
fn through_kafka(file: &str, format: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let formats =
        format!("events = \"{format}\"\noffers = \"json\"\nrewards = \"{format}\"\ndead_letters = \"{format}\"");
    // One partition: the offsets are the catalogue's record numbers.
    let no_admin = "[admin]\nlisten = \"\"\n";
    let Some(mut k) = Kafka::new(&format!("malformed-{format}"), 1, &formats, no_admin) else { return };
    let offers = catalogue_dir().join("offers.json").display().to_string();
    let publish = k.cardlink(&["offers", "publish", &offers], "trace");
    let records = records(file);
    let keyed = records.iter().enumerate().map(|(i, r)| (Some(format!("record-{}", i + 1).into_bytes()), r.clone()));
    k.produce_events(keyed.collect());
    k.start("trace");
    k.wait_caught_up(Duration::from_secs(180));
    k.stop();
    let fmt = k.config.formats.rewards;
    assert_eq!(fmt, if format == "json" { TopicFormat::Json } else { TopicFormat::Protobuf });
    let mut seen = Seen::default();
    let dead = k.topic(&k.config.topics.dead_letters);
    let prefix = format!("{}/0@", k.config.topics.events);
    for r in &dead {
        let bytes = r.value.as_deref().unwrap_or_default();
        assert_no_pan("a dead-letter record", bytes);
        let d = decode_dead_letter(fmt, bytes).unwrap();
        let offset: u64 =
            d.source.strip_prefix(&prefix).unwrap_or_else(|| panic!("source {}", d.source)).parse().unwrap();
        seen.dead_letter(offset + 1, d.reason, d.field);
    }
    let rewards = k.topic(&k.config.topics.rewards);
    for r in &rewards {
        let bytes = r.value.as_deref().unwrap_or_default();
        assert_no_pan("a reward record", bytes);
        let rec = decode_reward(fmt, bytes).unwrap();
        seen.reward(rec.card_token, rec.event_id);
    }
    check(file, &seen);
    for r in k.topic(&k.config.topics.state) {
        assert_no_pan("the state changelog", r.value.as_deref().unwrap_or_default());
        assert_no_pan("the state changelog's keys", r.key.as_deref().unwrap_or_default());
    }
    assert_no_pan("cardlink run's trace log", &k.log());
    assert_no_pan("cardlink offers publish", &[publish.stdout, publish.stderr].concat());
}

#[test]
fn json_catalogue_through_kafka() {
    through_kafka("catalogue.jsonl", "json");
}

#[test]
fn protobuf_catalogue_through_kafka() {
    through_kafka("catalogue.pb", "protobuf");
}
