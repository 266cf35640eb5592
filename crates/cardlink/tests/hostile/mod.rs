//! What the hostile-input tests (malformed.rs, no_pan.rs) share: a card
//! number scanner written apart from `cardlink_core::pan`, the malformed
//! catalogue's manifest, and a small harness around `cardlink replay` and
//! `cardlink run` on a real broker.
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cardlink_kafka::Config;
use cardlink_kafka::reader::Record;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cardlink");

/// The malformed catalogue's folder.
pub fn catalogue_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malformed")
}

// ------------------------------------------------------------ PAN scanner

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum % 10 == 0
}

/// Every raw card number in `bytes`: a maximal run of 13–19 ASCII digits
/// that passes the Luhn check, or any 13–19 digit window of a longer run
/// that does (a card number glued into a longer number). Returns each
/// finding with some context.
///
/// The digits after the point of a decimal number (`0.47408069900000005`,
/// a float in `/metrics`) are a fraction, not a 13–19 digit number: a
/// measured float shows up to 17 significant digits, and one such run in
/// ten passes Luhn by chance. A run after a point that follows anything
/// but a digit (`tok.4111…`) is scanned.
pub fn find_pans(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &bytes[start..i];
        if start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit() {
            continue;
        }
        let hit = match run.len() {
            0..=12 => false,
            13..=19 => luhn(run),
            n => (0..=n - 13).any(|from| (13..=19.min(n - from)).any(|len| luhn(&run[from..from + len]))),
        };
        if hit {
            let context = &bytes[start.saturating_sub(60)..(i + 20).min(bytes.len())];
            found.push(String::from_utf8_lossy(context).into_owned());
        }
    }
    found
}

/// Fails with every finding when `bytes` (named `what`) hold a card number.
pub fn assert_no_pan(what: &str, bytes: &[u8]) {
    let found = find_pans(bytes);
    assert!(
        found.is_empty(),
        "{} card number(s) in {what}, e.g.:\n{}",
        found.len(),
        found[..found.len().min(5)].join("\n")
    );
}

// --------------------------------------------------------------- manifest

/// One record of the catalogue and what must become of it.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub file: String,
    /// 1-based line (JSON) or record (protobuf) number.
    pub record: u64,
    /// "accepted", "duplicate" or a dead-letter reason.
    pub expect: String,
    /// The field a rejection names.
    pub field: Option<String>,
    /// Reward records the case itself emits.
    pub rewards: u64,
}

/// The manifest's cases of one catalogue file, in record order.
pub fn manifest(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(catalogue_dir().join("manifest.jsonl")).unwrap();
    let cases: Vec<Case> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["file"] == file)
        .map(|v| Case {
            name: v["case"].as_str().unwrap().into(),
            file: file.into(),
            record: v["record"].as_u64().unwrap(),
            expect: v["expect"].as_str().unwrap().into(),
            field: v.get("field").and_then(Value::as_str).map(str::to_owned),
            rewards: v.get("rewards").and_then(Value::as_u64).unwrap_or(0),
        })
        .collect();
    assert!(
        cases.iter().enumerate().all(|(i, c)| c.record == i as u64 + 1),
        "the manifest lists every record in order"
    );
    cases
}

/// The records of a catalogue file, whole: lines of the JSON file, the
/// length-delimited messages of the protobuf file (the last one cut short,
/// as the file is).
pub fn records(file: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(catalogue_dir().join(file)).unwrap();
    if file.ends_with(".jsonl") {
        let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        assert_eq!(lines.pop().as_deref(), Some(&[][..]), "the file ends with a newline");
        return lines;
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = bytes[pos];
            pos += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = (pos + len).min(bytes.len());
        out.push(bytes[pos..end].to_vec());
        pos = end;
    }
    out
}

// ----------------------------------------------------------------- Kafka

/// A test's own topics, group and folder on the broker of
/// CARDLINK_KAFKA_BOOTSTRAP, and the `cardlink run` it starts.
pub struct Kafka {
    pub name: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub config: Config,
    run: Option<Child>,
}

impl Kafka {
    /// None (and a SKIPPED line) when no broker is configured. `formats`
    /// is the body of the `[formats]` table; `extra` is appended to the
    /// configuration file.
    pub fn new(test: &str, partitions: i32, formats: &str, extra: &str) -> Option<Kafka> {
        let bootstrap = match std::env::var("CARDLINK_KAFKA_BOOTSTRAP") {
            Ok(b) if !b.is_empty() => b,
            _ => {
                eprintln!("SKIPPED: CARDLINK_KAFKA_BOOTSTRAP is not set (scripts/test starts a broker and sets it)");
                return None;
            }
        };
        // Hex, so that no name holds a long digit run (a card number look-alike).
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        let name = format!("{test}-{:x}-{stamp:x}", std::process::id());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-tests").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[kafka]\nbootstrap = \"{bootstrap}\"\n\
             [topics]\nevents = \"{name}-events\"\noffers = \"{name}-offers\"\nrewards = \"{name}-rewards\"\n\
             dead_letters = \"{name}-dead-letters\"\nstate = \"{name}-state\"\npartitions = {partitions}\n\
             [formats]\n{formats}\n\
             [pipeline]\ngroup_id = \"{name}\"\ntransactional_id_prefix = \"{name}\"\n\
             session_timeout_ms = 6000\ntransaction_timeout_ms = 10000\n{extra}"
        );
        let config_path = dir.join("cardlink.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::from_toml(&text).unwrap();
        Some(Kafka { name, dir, config_path, config, run: None })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Runs a cardlink command with this test's configuration; fails the
    /// test if it fails. Returns its output.
    pub fn cardlink(&self, args: &[&str], log: &str) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("CARDLINK_LOG", log)
            .env("RUST_LOG", log)
            .output()
            .unwrap();
        assert!(out.status.success(), "cardlink {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Produces records (key, value) to the events topic, in order.
    pub fn produce_events(&self, records: Vec<(Option<Vec<u8>>, Vec<u8>)>) {
        cardlink_kafka::feed::produce_records(&self.config, &self.config.topics.events, records).unwrap();
    }

    /// Starts `cardlink run` at `log` level, its stderr and stdout into run.log.
    pub fn start(&mut self, log: &str) {
        let file = std::fs::File::create(self.path("run.log")).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config_path)
            .env("CARDLINK_LOG", log)
            .env("RUST_LOG", log)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.run = Some(child);
    }

    /// The run's log so far.
    pub fn log(&self) -> Vec<u8> {
        std::fs::read(self.path("run.log")).unwrap_or_default()
    }

    fn tail(&self) -> String {
        let log = String::from_utf8_lossy(&self.log()).into_owned();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until the group has committed every input record.
    pub fn wait_caught_up(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.run.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("cardlink run exited by itself ({status}):\n{}", self.tail());
            }
            let lag = cardlink_kafka::reader::group_lag(
                &self.config,
                &self.config.pipeline.group_id,
                &self.config.topics.events,
            );
            if let Ok(0) = lag {
                return;
            }
            assert!(started.elapsed() < timeout, "not caught up after {timeout:?} (lag {lag:?}):\n{}", self.tail());
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops `cardlink run` with SIGTERM; it must exit cleanly.
    pub fn stop(&mut self) {
        let mut child = self.run.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "cardlink run did not stop cleanly: {status}\n{}", self.tail());
    }

    /// Every committed record of one of this test's topics.
    pub fn topic(&self, topic: &str) -> Vec<Record> {
        cardlink_kafka::reader::read_topic(&self.config, topic, Duration::from_secs(60)).unwrap()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut child) = self.run.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
