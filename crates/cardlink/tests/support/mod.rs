//! What the hardening tests against a broker of their own share
//! (`kafka_security.rs`, `soak.rs`): the local broker script with its own
//! data folder and ports, `cardlink` commands with a clean environment,
//! replay, and the comparison of the rewards topic with replay's records
//! that counts lost and doubled records.

#![allow(dead_code)] // each test file uses its part

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::time::Duration;

use cardlink_kafka::Config;
use cardlink_kafka::codec::{decode_dead_letter, decode_reward};
use cardlink_wire::v1 as pb;
use rust_decimal::Decimal;
use serde_json::Value;

/// The command under test: the one cargo built, or `CARDLINK_TEST_BIN`
/// (a copy, so that a long run keeps its binary while the tree is rebuilt).
pub fn bin() -> PathBuf {
    std::env::var_os("CARDLINK_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cardlink")), PathBuf::from)
}

/// Whether a broker that cannot start fails the test instead of skipping
/// it: scripts/test sets CARDLINK_KAFKA_BOOTSTRAP once its own broker is
/// up, which proves Kafka runs on this machine; CARDLINK_REQUIRE_KAFKA=1
/// asks for it explicitly.
fn kafka_required() -> bool {
    std::env::var("CARDLINK_KAFKA_BOOTSTRAP").is_ok_and(|b| !b.is_empty())
        || std::env::var("CARDLINK_REQUIRE_KAFKA").as_deref() == Ok("1")
}

/// `deploy/local/kafka` with the settings of one broker (data folder,
/// ports, mode); cheap to clone into another thread.
#[derive(Clone)]
pub struct Script {
    env: Vec<(String, String)>,
}

/// A broker (1 or 3 nodes) run by `deploy/local/kafka` on a data folder and
/// ports of its own, deleted when dropped.
pub struct LocalKafka {
    /// The data folder.
    pub data: PathBuf,
    /// The script with this broker's settings.
    pub script: Script,
    /// The PLAINTEXT bootstrap servers.
    pub bootstrap: String,
}

impl LocalKafka {
    /// Starts a fresh broker under `target/tmp/<name>`, or returns `None`
    /// after printing why it is skipped. `env` adds script settings (e.g.
    /// `CARDLINK_KAFKA_SECURITY`).
    pub fn start(
        name: &str,
        port: u16,
        controller_port: u16,
        brokers: u32,
        env: &[(&str, &str)],
    ) -> Option<LocalKafka> {
        if std::env::var("CARDLINK_SKIP_KAFKA").as_deref() == Ok("1") {
            eprintln!("SKIPPED: CARDLINK_SKIP_KAFKA=1");
            return None;
        }
        let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let mut all = vec![
            ("CARDLINK_KAFKA_DATA".to_owned(), data.display().to_string()),
            ("CARDLINK_KAFKA_PORT".to_owned(), port.to_string()),
            ("CARDLINK_KAFKA_CONTROLLER_PORT".to_owned(), controller_port.to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut k = LocalKafka { data, script: Script { env: all }, bootstrap: String::new() };
        // A fresh folder: also stops a broker a killed earlier run left.
        let _ = k.script.run(&["clean"]);
        let brokers = brokers.to_string();
        let mut errors = String::new();
        // Tried three times: the script's start-up check can race the
        // broker's launch (see tests/kafka.rs).
        for _ in 0..3 {
            match k.script.run(&["start", "--brokers", &brokers]) {
                Ok(out) => {
                    k.bootstrap = out.lines().last().unwrap_or_default().trim().to_owned();
                    return Some(k);
                }
                Err(e) => errors.push_str(&e),
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        // A machine without the openssl command cannot make the secure
        // mode's certificates: that is a missing tool, not a failure.
        if kafka_required() && !errors.contains("openssl not found") {
            panic!("deploy/local/kafka could not start a broker for {name}:\n{errors}");
        }
        eprintln!("SKIPPED: deploy/local/kafka could not start a broker for {name}:\n{errors}");
        None
    }
}

impl Script {
    /// Runs the broker script with this broker's settings; stdout, or
    /// the failure with stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/kafka");
        let mut cmd = Command::new(script);
        cmd.args(args);
        // Nothing of the environment's broker (scripts/test exports its
        // own) may leak into this one.
        for var in [
            "CARDLINK_KAFKA_SECURITY",
            "CARDLINK_KAFKA_SECURE_PORT",
            "CARDLINK_KAFKA_SCRAM_USER",
            "CARDLINK_KAFKA_SCRAM_PASSWORD",
            "CARDLINK_KAFKA_EXTRA_PROPS",
            "CARDLINK_KAFKA_BROKERS",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().map_err(|e| format!("cannot run deploy/local/kafka: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("deploy/local/kafka {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Runs the script and panics on failure (tried three times, as start).
    pub fn must(&self, args: &[&str]) {
        let mut errors = String::new();
        for _ in 0..3 {
            match self.run(args) {
                Ok(_) => return,
                Err(e) => errors.push_str(&e),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("{errors}");
    }
}

impl Drop for LocalKafka {
    fn drop(&mut self) {
        if let Err(e) = self.script.run(&["clean"]) {
            eprintln!("cleaning {}: {e}", self.data.display());
        }
    }
}

/// A `cardlink` command without any `CARDLINK_*` override of the
/// environment (scripts/test exports CARDLINK_KAFKA_BOOTSTRAP, which would
/// otherwise point every command at its plaintext broker).
pub fn cardlink() -> Command {
    let mut cmd = Command::new(bin());
    for (var, _) in cardlink_kafka::config::ENV_OVERRIDES {
        cmd.env_remove(var);
    }
    // Any port for an admin server, so that runs side by side never
    // contend for the default one.
    cmd.env_remove("CARDLINK_ADMIN_TOKEN").env("CARDLINK_ADMIN_LISTEN", "127.0.0.1:0").env("CARDLINK_LOG", "warn");
    cmd
}

/// Runs a command to completion and panics unless it succeeds.
pub fn must_succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// What `cardlink replay` gives for a feed.
pub struct Replayed {
    /// Reward records in order.
    pub rewards: Vec<pb::RewardRecord>,
    /// Dead letters in order.
    pub dead_letters: Vec<pb::DeadLetter>,
    /// The ledger.
    pub ledger: Value,
}

/// Runs `cardlink replay` of `events` against `offers`, writing its
/// outputs into `dir`.
pub fn replay(dir: &Path, events: &Path, offers: &Path) -> Replayed {
    replay_with(dir, events, offers, &[])
}

/// [`replay`] with `extra` arguments (e.g. `--retention-days 7`).
pub fn replay_with(dir: &Path, events: &Path, offers: &Path, extra: &[&str]) -> Replayed {
    let (r, l, d) = (dir.join("replay-rewards.jsonl"), dir.join("replay-ledger.json"), dir.join("replay-dlq.jsonl"));
    must_succeed(
        cardlink()
            .args(["replay", "--quiet", "--offers"])
            .arg(offers)
            .arg("--events")
            .arg(events)
            .arg("--rewards")
            .arg(&r)
            .arg("--ledger")
            .arg(&l)
            .arg("--dead-letters")
            .arg(&d)
            .args(extra),
    );
    let lines = |p: &Path| BufReader::new(std::fs::File::open(p).unwrap()).lines().map(Result::unwrap);
    Replayed {
        rewards: lines(&r).map(|l| decode_reward(cardlink_kafka::TopicFormat::Json, l.as_bytes()).unwrap()).collect(),
        dead_letters: lines(&d)
            .map(|l| decode_dead_letter(cardlink_kafka::TopicFormat::Json, l.as_bytes()).unwrap())
            .collect(),
        ledger: serde_json::from_slice(&std::fs::read(&l).unwrap()).unwrap(),
    }
}

/// Every committed reward record of the rewards topic (read_committed).
pub fn read_rewards(config: &Config) -> Vec<pb::RewardRecord> {
    let records = cardlink_kafka::reader::read_topic(config, &config.topics.rewards, Duration::from_secs(120)).unwrap();
    records
        .iter()
        .map(|r| decode_reward(config.formats.rewards, r.value.as_deref().unwrap_or_default()).unwrap())
        .collect()
}

/// Every committed dead letter.
pub fn read_dead_letters(config: &Config) -> Vec<pb::DeadLetter> {
    let records =
        cardlink_kafka::reader::read_topic(config, &config.topics.dead_letters, Duration::from_secs(120)).unwrap();
    records
        .iter()
        .map(|r| decode_dead_letter(config.formats.dead_letters, r.value.as_deref().unwrap_or_default()).unwrap())
        .collect()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// One reward record as compared: (event, status, value, delta).
type Step = (String, i32, Decimal, Decimal);

fn sequences(records: &[pb::RewardRecord]) -> BTreeMap<&str, Vec<Step>> {
    let mut m: BTreeMap<&str, Vec<Step>> = BTreeMap::new();
    for r in records {
        m.entry(&r.reward_id).or_default().push((r.event_id.clone(), r.status, dec(&r.value), dec(&r.delta)));
    }
    m
}

/// The ledger's per-card totals and per-offer usage, exactly.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sums {
    cards: BTreeMap<String, BTreeMap<(String, String), Decimal>>,
    offers: BTreeMap<String, (Decimal, u64)>,
}

fn sums_of_ledger(ledger: &Value) -> Sums {
    let mut s = Sums::default();
    for (card, t) in ledger["cards"].as_object().unwrap() {
        for which in ["confirmed", "pending"] {
            for (unit, v) in t.get(which).and_then(Value::as_object).into_iter().flatten() {
                s.cards.entry(card.clone()).or_default().insert((which.into(), unit.clone()), dec(v.as_str().unwrap()));
            }
        }
    }
    for (offer, t) in ledger["offers"].as_object().unwrap() {
        s.offers
            .insert(offer.clone(), (dec(t["used"].as_str().unwrap()), t["rewarded_transactions"].as_u64().unwrap()));
    }
    s
}

/// The ledger the reward records add up to: the last record of each
/// reward holds its state (contract section 6).
fn sums_of_rewards(records: &[pb::RewardRecord]) -> Sums {
    let mut last: HashMap<&str, &pb::RewardRecord> = HashMap::new();
    for r in records {
        last.insert(&r.reward_id, r);
    }
    let mut s = Sums::default();
    for r in last.values() {
        let value = dec(&r.value);
        let which = match pb::RewardStatus::try_from(r.status).unwrap() {
            pb::RewardStatus::Confirmed => "confirmed",
            pb::RewardStatus::Pending => "pending",
            _ => continue,
        };
        let unit = r.currency.clone().unwrap_or_else(|| "POINTS".into());
        *s.cards.entry(r.card_token.clone()).or_default().entry((which.into(), unit)).or_default() += value;
        if value > Decimal::ZERO {
            let o = s.offers.entry(r.offer_id.clone()).or_default();
            o.0 += value;
            o.1 += 1;
        }
    }
    for card in s.cards.values_mut() {
        card.retain(|_, v| !v.is_zero());
    }
    s.cards.retain(|_, m| !m.is_empty());
    s
}

/// The rewards topic against replay, record by record.
#[derive(Debug)]
pub struct Comparison {
    /// Reward ids in the replay.
    pub rewards: usize,
    /// Reward records in the replay.
    pub replay_records: usize,
    /// Reward records on the topic.
    pub kafka_records: usize,
    /// Replay records missing from the topic.
    pub lost: usize,
    /// Topic records beyond the replay's (the same record twice, or one
    /// replay never wrote).
    pub doubled: usize,
    /// Rewards whose records differ in content or order, a few shown.
    pub differing: Vec<String>,
    /// Number of such rewards.
    pub differing_count: usize,
    /// The ledger the topic adds up to equals replay's.
    pub ledger_equal: bool,
    /// Dead letters (reason, event id) equal replay's.
    pub dead_letters_equal: bool,
    /// Dead letters on the topic.
    pub dead_letters: usize,
}

impl Comparison {
    /// True when the topic holds exactly replay's records.
    pub fn identical(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.differing_count == 0
            && self.ledger_equal
            && self.dead_letters_equal
            && self.kafka_records == self.replay_records
    }
}

/// Compares the topics' records with replay's.
pub fn compare(rewards: &[pb::RewardRecord], dead_letters: &[pb::DeadLetter], replayed: &Replayed) -> Comparison {
    let (got, want) = (sequences(rewards), sequences(&replayed.rewards));
    let (mut lost, mut doubled, mut differing, mut differing_count) = (0, 0, Vec::new(), 0);
    let empty = Vec::new();
    let ids: std::collections::BTreeSet<&str> = got.keys().chain(want.keys()).copied().collect();
    for id in ids {
        let (g, w) = (got.get(id).unwrap_or(&empty), want.get(id).unwrap_or(&empty));
        if g == w {
            continue;
        }
        differing_count += 1;
        if differing.len() < 5 {
            differing.push(format!("{id}:\n  replay {w:?}\n  kafka  {g:?}"));
        }
        let mut count: HashMap<&Step, i64> = HashMap::new();
        for s in w {
            *count.entry(s).or_default() += 1;
        }
        for s in g {
            *count.entry(s).or_default() -= 1;
        }
        for c in count.values() {
            if *c > 0 {
                lost += *c as usize;
            } else {
                doubled += (-*c) as usize;
            }
        }
    }
    let ledger_equal = sums_of_rewards(rewards) == sums_of_ledger(&replayed.ledger);
    let key = |d: &pb::DeadLetter| (d.reason.clone(), d.event_id.clone().unwrap_or_default());
    let mut g: Vec<_> = dead_letters.iter().map(key).collect();
    let mut w: Vec<_> = replayed.dead_letters.iter().map(key).collect();
    g.sort();
    w.sort();
    Comparison {
        rewards: want.len(),
        replay_records: replayed.rewards.len(),
        kafka_records: rewards.len(),
        lost,
        doubled,
        differing,
        differing_count,
        ledger_equal,
        dead_letters_equal: g == w,
        dead_letters: dead_letters.len(),
    }
}

/// The simulator's offers without budgets: with budgets, which card gets
/// the last part depends on how partitions interleave (contract), so a
/// comparison with replay needs offers without them.
pub fn offers_without_budgets(offers: &[Value]) -> Vec<Value> {
    offers
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o.as_object_mut().unwrap().remove("budget");
            o
        })
        .collect()
}

/// A process's resident set size in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
