//! Record-size limits and backpressure of the live pipeline, against the
//! broker scripts/test starts (CARDLINK_KAFKA_BOOTSTRAP; skipped without
//! it, like tests/kafka.rs):
//!
//! - a card event of exactly 64 KiB is processed; one byte more, or 900 KB,
//!   is a MALFORMED dead letter that names the limit and carries only the
//!   first 4 KiB of the record, and the events after it go on; the same as
//!   `cardlink replay` gives for the same records, in protobuf and in JSON;
//! - with librdkafka's queues cut to a few messages (producer queue full
//!   at every transaction, consumer prefetch of 1 KiB), the pipeline waits
//!   instead of dropping: the rewards still equal replay's.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cardlink_kafka::{Config, TopicFormat};
use cardlink_wire::MAX_RECORD_BYTES;
use cardlink_wire::v1 as pb;
use serde_json::Value;
use support::{cardlink, must_succeed};

/// One test's topics, group and folder on the shared broker.
struct World {
    dir: PathBuf,
    config_path: PathBuf,
    config: Config,
}

impl World {
    fn new(test: &str, events_format: &str, options: &str) -> Option<World> {
        let Some(bootstrap) = std::env::var("CARDLINK_KAFKA_BOOTSTRAP").ok().filter(|b| !b.is_empty()) else {
            eprintln!("SKIPPED: CARDLINK_KAFKA_BOOTSTRAP is not set (scripts/test starts a broker and sets it)");
            return None;
        };
        // Hex, so that no name holds a long digit run (a card number look-alike).
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        let name = format!("{test}-{:x}-{stamp:x}", std::process::id());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-limits").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[kafka]\nbootstrap = \"{bootstrap}\"\n[kafka.options]\n{options}\n\
             [topics]\nevents = \"{name}-events\"\noffers = \"{name}-offers\"\nrewards = \"{name}-rewards\"\n\
             dead_letters = \"{name}-dead-letters\"\nstate = \"{name}-state\"\npartitions = 2\n\
             [formats]\nevents = \"{events_format}\"\n\
             [pipeline]\ngroup_id = \"{name}\"\ntransactional_id_prefix = \"{name}\"\nsession_timeout_ms = 6000\n"
        );
        let config_path = dir.join("cardlink.toml");
        std::fs::write(&config_path, &text).unwrap();
        Some(World { dir, config_path, config: Config::from_toml(&text).unwrap() })
    }

    fn start(&self, config: &Path) -> Child {
        cardlink()
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("run.log")).unwrap())
            .spawn()
            .unwrap()
    }

    /// Waits until the group has committed every input record, then stops
    /// the instance cleanly.
    fn finish(&self, mut run: Child) {
        let started = Instant::now();
        let c = &self.config;
        loop {
            if let Some(status) = run.try_wait().unwrap() {
                panic!("cardlink run exited by itself: {status}\n{}", self.log());
            }
            if let Ok(0) = cardlink_kafka::reader::group_lag(c, &c.pipeline.group_id, &c.topics.events) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "not caught up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(300));
        }
        unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
        assert!(run.wait().unwrap().success(), "cardlink run did not stop cleanly:\n{}", self.log());
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("run.log")).unwrap_or_default();
        text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    }
}

fn event(id: &str, kind: pb::EventKind, card: &str, tx: &str, name: Option<String>) -> pb::CardEvent {
    pb::CardEvent {
        event_id: Some(id.into()),
        kind: kind as i32,
        network: pb::Network::Visa as i32,
        card_token: Some(card.into()),
        transaction_id: Some(tx.into()),
        amount: Some("20.00".into()),
        currency: Some("USD".into()),
        merchant: Some(pb::Merchant { mid: Some("M-LIMIT".into()), mcc: Some("5812".into()), name, country: None }),
        occurred_at: Some("2026-05-04T12:30:00-04:00".into()),
        offer_id: None,
    }
}

fn encode(format: TopicFormat, e: &pb::CardEvent) -> Vec<u8> {
    match format {
        TopicFormat::Protobuf => prost::Message::encode_to_vec(e),
        TopicFormat::Json => cardlink_wire::event_to_json(e).into_bytes(),
    }
}

/// A valid authorization whose encoding is exactly `size` bytes (a long
/// merchant name, which is kept for diagnostics only).
fn sized(format: TopicFormat, id: &str, card: &str, size: usize) -> Vec<u8> {
    let mut n = size.saturating_sub(400);
    for _ in 0..8 {
        let bytes = encode(format, &event(id, pb::EventKind::Authorization, card, id, Some("x".repeat(n))));
        if bytes.len() == size {
            return bytes;
        }
        n = (n as i64 + size as i64 - bytes.len() as i64) as usize;
    }
    panic!("no {size}-byte encoding");
}

/// The records of the size test: ordinary events around records at, just
/// above and far above the limit.
fn size_records(format: TopicFormat) -> Vec<(String, Vec<u8>)> {
    let plain =
        |id: &str, kind, card: &str, tx: &str| (card.to_owned(), encode(format, &event(id, kind, card, tx, None)));
    vec![
        plain("lim-1", pb::EventKind::Authorization, "tok_lim_a", "t-a"),
        ("tok_lim_b".into(), sized(format, "lim-at", "tok_lim_b", MAX_RECORD_BYTES)),
        ("tok_lim_c".into(), sized(format, "lim-above", "tok_lim_c", MAX_RECORD_BYTES + 1)),
        ("tok_lim_d".into(), sized(format, "lim-huge", "tok_lim_d", 900_000)),
        plain("lim-2", pb::EventKind::Clearing, "tok_lim_a", "t-a"),
        plain("lim-3", pb::EventKind::Authorization, "tok_lim_e", "t-e"),
    ]
}

fn check_sizes(format: TopicFormat, format_name: &str) {
    let Some(w) = World::new(&format!("limits-{format_name}"), format_name, "") else { return };
    let offer = r#"[{"id":"limit-10","currency":"USD","reward":{"percent":"10"},"merchant":{"mids":["M-LIMIT"]}}]"#;
    let offers = w.dir.join("offers.json");
    std::fs::write(&offers, offer).unwrap();
    let records = size_records(format);
    // The same records as a file for replay.
    let (ext, mut file) = match format {
        TopicFormat::Protobuf => ("pb", Vec::new()),
        TopicFormat::Json => ("jsonl", Vec::new()),
    };
    for (_, bytes) in &records {
        match format {
            TopicFormat::Protobuf => prost::encoding::encode_varint(bytes.len() as u64, &mut file),
            TopicFormat::Json => {}
        }
        file.write_all(bytes).unwrap();
        if format == TopicFormat::Json {
            file.push(b'\n');
        }
    }
    let feed = w.dir.join(format!("feed.{ext}"));
    std::fs::write(&feed, file).unwrap();
    let replayed = support::replay(&w.dir, &feed, &offers);

    must_succeed(cardlink().args(["offers", "publish"]).arg(&offers).arg("--config").arg(&w.config_path));
    let keyed = records.into_iter().map(|(k, v)| (Some(k.into_bytes()), v));
    cardlink_kafka::feed::produce_records(&w.config, &w.config.topics.events, keyed).unwrap();
    let run = w.start(&w.config_path);
    w.finish(run);

    let rewards = support::read_rewards(&w.config);
    let records =
        cardlink_kafka::reader::read_topic(&w.config, &w.config.topics.dead_letters, Duration::from_secs(60)).unwrap();
    let dead: Vec<pb::DeadLetter> = records
        .iter()
        .map(|r| {
            let bytes = r.value.as_deref().unwrap_or_default();
            assert!(bytes.len() < 6 * 1024, "a dead letter of {} bytes: the record must be cut", bytes.len());
            cardlink_kafka::codec::decode_dead_letter(w.config.formats.dead_letters, bytes).unwrap()
        })
        .collect();
    let c = support::compare(&rewards, &dead, &replayed);
    assert!(c.identical(), "{format_name}: the pipeline differs from replay: {c:#?}");
    // Both records above the limit, and only those, are MALFORMED and say why.
    assert_eq!(dead.len(), 2, "{dead:#?}");
    for d in &dead {
        assert_eq!(d.reason, "MALFORMED");
        assert!(d.detail.contains(&format!("exceeds {MAX_RECORD_BYTES}")), "{}", d.detail);
        assert!(d.record.len() <= cardlink_wire::DEAD_LETTER_RECORD_BYTES * 3, "{}", d.record.len());
    }
    // The events around them, and the one at the limit, are rewarded.
    let mut got: Vec<(&str, i32)> = rewards.iter().map(|r| (r.event_id.as_str(), r.status)).collect();
    got.sort();
    let (pending, confirmed) = (pb::RewardStatus::Pending as i32, pb::RewardStatus::Confirmed as i32);
    assert_eq!(got, vec![("lim-1", pending), ("lim-2", confirmed), ("lim-3", pending), ("lim-at", pending)]);
}

#[test]
fn oversized_protobuf_records_are_dead_letters_and_the_rest_goes_on() {
    check_sizes(TopicFormat::Protobuf, "protobuf");
}

#[test]
fn oversized_json_records_are_dead_letters_and_the_rest_goes_on() {
    check_sizes(TopicFormat::Json, "json");
}

#[test]
fn tiny_client_queues_slow_the_pipeline_down_and_lose_nothing() {
    let Some(w) = World::new("limits-queues", "protobuf", "") else { return };
    let (feed, sim_offers, offers) = (w.dir.join("feed.pb"), w.dir.join("offers-sim.json"), w.dir.join("offers.json"));
    let count = "4000";
    must_succeed(
        cardlink()
            .args(["simulate", "--count", count, "--seed", "61", "--events"])
            .arg(&feed)
            .arg("--offers")
            .arg(&sim_offers),
    );
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(&sim_offers).unwrap()).unwrap();
    std::fs::write(&offers, serde_json::to_vec(&support::offers_without_budgets(&all)).unwrap()).unwrap();
    let replayed = support::replay(&w.dir, &feed, &offers);
    must_succeed(cardlink().args(["offers", "publish"]).arg(&offers).arg("--config").arg(&w.config_path));
    must_succeed(
        cardlink().args(["simulate", "--kafka", "--count", count, "--seed", "61", "--config"]).arg(&w.config_path),
    );
    // The instance runs with queues of a few messages: its transactional
    // producer finds its queue full many times per transaction (the
    // pipeline then waits and sends again), its consumer prefetches 1 KiB.
    let text = std::fs::read_to_string(&w.config_path).unwrap().replace(
        "[kafka.options]\n",
        "[kafka.options]\n\"queue.buffering.max.messages\" = \"8\"\n\"batch.num.messages\" = \"4\"\n\
         \"queued.max.messages.kbytes\" = \"1\"\n\"queued.min.messages\" = \"1\"\n\
         \"max.partition.fetch.bytes\" = \"1024\"\n",
    );
    let tiny = w.dir.join("tiny-queues.toml");
    std::fs::write(&tiny, text).unwrap();
    let started = Instant::now();
    let run = w.start(&tiny);
    w.finish(run);
    eprintln!("{count} events with tiny queues in {:.1} s", started.elapsed().as_secs_f64());
    let c = support::compare(&support::read_rewards(&w.config), &support::read_dead_letters(&w.config), &replayed);
    assert!(c.replay_records > 0 && c.identical(), "tiny queues lost or changed records: {c:#?}");
}
