//! The admin HTTP server: `cardlink demo --admin` without Kafka, and
//! `cardlink run` against a real broker (probes, metrics, offers written
//! and read through the API, card look-ups equal to the replay's ledger,
//! the status page in headless Chromium, a schema-driven test of every
//! endpoint with schemathesis, and SIGTERM mid-feed).
//!
//! The Kafka tests need CARDLINK_KAFKA_BOOTSTRAP (scripts/test starts a
//! broker and sets it) and skip without it. The browser and schemathesis
//! checks need `/usr/bin/chromium` (scripts/ensure-chromium) and
//! `target/python-tools/bin/st` (scripts/ensure-python-tools); without them
//! they are skipped with a message, unless CARDLINK_ADMIN_TOOLS=require
//! (scripts/test sets it after installing both), which makes a missing
//! tool a failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cardlink_kafka::Config;
use cardlink_kafka::codec::decode_reward;
use cardlink_wire::v1 as pb;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cardlink");
const TOKEN: &str = "test-admin-token";

/// The Kafka tests share a broker and two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 exchange: (status, body).
fn http(port: u16, method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req += &format!("Authorization: {a}\r\n");
    }
    let body = body.unwrap_or("");
    req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(rest) } else { rest.into() };
    (status, body)
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http(port, "GET", path, None, None);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {status} {body:?}: {e}")))
}

/// Waits until `GET path` answers `want`.
fn wait_status(port: u16, path: &str, want: u16, timeout: Duration, child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("cardlink exited ({status}) before {path} answered {want}");
        }
        let got = TcpStream::connect(("127.0.0.1", port)).ok().map(|_| http(port, "GET", path, None, None).0);
        if got == Some(want) {
            return;
        }
        assert!(started.elapsed() < timeout, "{path} answered {got:?}, not {want}, within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of one sample of the Prometheus text, summed over the series
/// whose labels contain every `label="value"` pair given.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A child process killed when the test ends, passed or failed.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn sigterm(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Waits for a child to exit, at most `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn cardlink(args: &[&str]) {
    let out = Command::new(BIN).args(args).env("CARDLINK_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "cardlink {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

fn scratch(test: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-tests").join(format!("{test}-{stamp:x}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The ledger of `cardlink replay` over a feed: card → (which, unit) → sum.
fn replay_ledger(dir: &Path, events: &Path, offers: &Path) -> (Value, Vec<pb::RewardRecord>) {
    let (l, r) = (dir.join("replay-ledger.json"), dir.join("replay-rewards.jsonl"));
    let s = |p: &Path| p.display().to_string();
    cardlink(&[
        "replay",
        "--offers",
        &s(offers),
        "--events",
        &s(events),
        "--ledger",
        &s(&l),
        "--rewards",
        &s(&r),
        "-q",
    ]);
    let rewards = BufReader::new(std::fs::File::open(&r).unwrap())
        .lines()
        .map(|l| decode_reward(cardlink_kafka::TopicFormat::Json, l.unwrap().as_bytes()).unwrap())
        .collect();
    (serde_json::from_slice(&std::fs::read(&l).unwrap()).unwrap(), rewards)
}

/// Checks `GET /v1/cards/{token}` against the replay's ledger for a few
/// rewarded cards; returns how many were checked.
fn check_cards(port: u16, ledger: &Value) -> usize {
    let cards = ledger["cards"].as_object().unwrap();
    assert!(!cards.is_empty(), "the scenario must reward some card");
    let mut checked = 0;
    for (token, totals) in cards.iter().step_by((cards.len() / 7).max(1)).take(8) {
        let (status, card) = get_json(port, &format!("/v1/cards/{token}"));
        assert_eq!(status, 200, "card {token}: {card}");
        for which in ["pending", "confirmed"] {
            let want = totals.get(which).cloned().unwrap_or(json!({}));
            assert_eq!(card[which], want, "card {token} {which}: {card}");
        }
        assert_eq!(card["card_token"], json!(token));
        let live: Decimal = card["rewards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Decimal::from_str(r["value"].as_str().unwrap()).unwrap())
            .sum();
        let sums: Decimal = ["pending", "confirmed"]
            .iter()
            .flat_map(|w| totals.get(*w).and_then(Value::as_object).into_iter().flatten())
            .map(|(_, v)| Decimal::from_str(v.as_str().unwrap()).unwrap())
            .sum();
        assert_eq!(live, sums, "card {token}: the live rewards add up to the sums");
        checked += 1;
    }
    checked
}

/// A required tool, or `None` (skipped with a message) when it is missing
/// and not required.
fn tool(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("CARDLINK_ADMIN_TOOLS").is_ok_and(|v| v == "require");
    assert!(!required, "{what} is missing at {} (CARDLINK_ADMIN_TOOLS=require)", path.display());
    eprintln!("SKIPPED {what}: {} is missing", path.display());
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The status page in headless Chromium while a feed runs: it loads,
/// raises no console error or exception, and its numbers move.
fn check_status_page(port: u16) {
    if tool(PathBuf::from("/usr/bin/chromium"), "the status page check (chromium)").is_none() {
        return;
    }
    let out = Command::new("python3")
        .arg(workspace().join("tools/browser/pagecheck.py"))
        .arg(format!("http://127.0.0.1:{port}/?interval=500"))
        .args([
            "--wait-ms",
            "4000",
            "--eval",
            "window.cardlinkStatus",
            "--eval",
            "document.getElementById('events-rate').textContent",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("pagecheck: {e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "the page did not load: {report}");
    assert_eq!(report["console_errors"], json!([]), "{report}");
    assert_eq!(report["exceptions"], json!([]), "{report}");
    let s = &report["evals"][0];
    assert!(s["samples"].as_u64().unwrap() >= 4, "the page polls: {s}");
    assert_eq!(s["errors"], json!(0), "{s}");
    let (first, last) = (s["first"]["events_total"].as_f64().unwrap(), s["last"]["events_total"].as_f64().unwrap());
    assert!(last > first, "the event count moves while the feed runs: {first} -> {last}");
    assert!(s["peakEventsPerSecond"].as_f64().unwrap() > 0.0, "a rate was shown: {s}");
    let shown = report["evals"][1].as_str().unwrap().replace(',', "");
    assert!(shown.parse::<f64>().is_ok(), "events/s shows a number: {shown:?}");
}

/// Every endpoint of `/openapi.json`, generated by schemathesis: no server
/// error, and responses as documented.
fn check_schemathesis(port: u16, dir: &Path) {
    let st = std::env::var_os("CARDLINK_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/python-tools/bin/st"));
    let Some(st) = tool(st, "the schema-driven test (schemathesis)") else { return };
    let base = format!("http://127.0.0.1:{port}");
    let out = Command::new(st)
        .current_dir(dir)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // The stateful phase adds half a minute and finds nothing more: the
        // only links are offer ids, which the coverage phase already writes.
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25"])
        .args(["--generation-deterministic", "--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("schemathesis.txt"), &report).unwrap();
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    // Every operation was exercised (schemathesis leaves out the one that
    // serves the document itself).
    let (_, doc) = get_json(port, "/openapi.json");
    let operations: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    let count = |key: &str| {
        let line = report.lines().find_map(|l| l.trim().strip_prefix(key))?;
        line.split('/').next()?.trim().parse::<usize>().ok()
    };
    assert_eq!(count("Tested:"), Some(operations - 1), "operations tested of {operations}:\n{report}");
    assert_eq!(count("Selected:"), Some(operations - 1), "operations selected of {operations}:\n{report}");
}

#[test]
fn demo_serves_the_admin_api_and_answers_cards_like_the_ledger() {
    let _serial = lock();
    let dir = scratch("demo");
    let (count, seed) = ("40000", "7");
    let s = |p: PathBuf| p.display().to_string();
    let (events, offers) = (dir.join("events.jsonl"), dir.join("offers.json"));
    cardlink(&[
        "simulate",
        "--count",
        count,
        "--seed",
        seed,
        "--events",
        &s(events.clone()),
        "--offers",
        &s(offers.clone()),
    ]);
    let (ledger, _) = replay_ledger(&dir, &events, &offers);

    let port = free_port();
    let mut demo = Proc(
        Command::new(BIN)
            .args([
                "demo",
                "--count",
                count,
                "--seed",
                seed,
                "--linger",
                "120",
                "--admin",
                &format!("127.0.0.1:{port}"),
            ])
            .env("CARDLINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("demo.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_status(port, "/healthz", 200, Duration::from_secs(60), &mut demo);
    // Once every record is counted the demo lingers on its final state.
    let started = Instant::now();
    loop {
        let (_, st) = get_json(port, "/v1/status");
        if st["events_total"].as_f64() == Some(40000.0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "demo did not finish: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get_json(port, "/readyz").0, 200);
    let (_, metrics) = http(port, "GET", "/metrics", None, None);
    let processed = ledger["events"]["processed"].as_f64().unwrap();
    let rejected = ledger["events"]["rejected"].as_f64().unwrap();
    let duplicate = ledger["events"]["duplicate"].as_f64().unwrap();
    assert_eq!(metric(&metrics, "cardlink_events_total", &[]), processed + rejected + duplicate, "{metrics}");
    assert_eq!(metric(&metrics, "cardlink_events_total", &["kind=\"invalid\""]), rejected);
    assert_eq!(metric(&metrics, "cardlink_rejects_total", &[]), rejected);
    assert_eq!(metric(&metrics, "cardlink_duplicates_total", &[]), duplicate);
    assert!(metric(&metrics, "cardlink_rewards_total", &["status=\"PENDING\""]) > 0.0);
    assert!(metric(&metrics, "cardlink_match_seconds_count", &[]) >= processed);
    assert!(!metrics.contains("tok_"), "no card token in a label");

    let (status, all) = get_json(port, "/v1/offers");
    let file: Vec<Value> = serde_json::from_slice(&std::fs::read(&offers).unwrap()).unwrap();
    assert_eq!((status, all.as_array().unwrap().len()), (200, file.len()));
    let id = file[0]["id"].as_str().unwrap();
    let (status, one) = get_json(port, &format!("/v1/offers/{id}"));
    assert_eq!(status, 200);
    assert_eq!(cardlink_core::parse_offer(&one["offer"]).unwrap(), cardlink_core::parse_offer(&file[0]).unwrap());
    assert_eq!(get_json(port, "/v1/offers/no-such-offer").0, 404);
    assert!(check_cards(port, &ledger) > 0);
    assert_eq!(get_json(port, "/v1/cards/tok_never_seen").0, 404);
    // A card number is refused and never echoed.
    let (status, body) = http(port, "GET", "/v1/cards/4111111111111111", None, None);
    assert!(status == 400 && !body.contains("4111111111111111"), "{status} {body}");
    // The demo has no token and no Kafka: writes are refused.
    let offer = file[0].to_string();
    assert_eq!(http(port, "PUT", &format!("/v1/offers/{id}"), Some(&format!("Bearer {TOKEN}")), Some(&offer)).0, 401);

    sigterm(&demo);
    let status = wait_exit(&mut demo, Duration::from_secs(10)).expect("the demo stops on SIGTERM");
    assert!(status.success(), "{status}");
}

/// One Kafka test's world: topics, group and a `cardlink run` config.
struct World {
    dir: PathBuf,
    config_path: PathBuf,
    config: Config,
    port: u16,
}

impl World {
    fn new(test: &str) -> Option<World> {
        let Ok(bootstrap) = std::env::var("CARDLINK_KAFKA_BOOTSTRAP").map(|b| b.trim().to_owned()) else {
            eprintln!("SKIPPED: CARDLINK_KAFKA_BOOTSTRAP is not set (scripts/test starts a broker and sets it)");
            return None;
        };
        let dir = scratch(test);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let port = free_port();
        let text = format!(
            "[kafka]\nbootstrap = \"{bootstrap}\"\n\
             [topics]\nevents = \"{name}-events\"\noffers = \"{name}-offers\"\nrewards = \"{name}-rewards\"\n\
             dead_letters = \"{name}-dead-letters\"\nstate = \"{name}-state\"\npartitions = 3\n\
             [pipeline]\ngroup_id = \"{name}\"\ntransactional_id_prefix = \"{name}\"\n\
             session_timeout_ms = 6000\ntransaction_timeout_ms = 10000\n\
             [admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n"
        );
        let config_path = dir.join("cardlink.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::from_toml(&text).unwrap();
        Some(World { dir, config_path, config, port })
    }

    fn arg(&self) -> String {
        self.config_path.display().to_string()
    }

    fn run(&self, log: &str) -> Proc {
        Proc(
            Command::new(BIN)
                .args(["run", "--config", &self.arg(), "--log-format", "json"])
                .stdout(Stdio::null())
                .stderr(std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(log)).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    fn feed(&self, count: u64, seed: u64, rate: u64) -> Proc {
        Proc(
            Command::new(BIN)
                .args(["simulate", "--kafka", "--config", &self.arg()])
                .args(["--count", &count.to_string(), "--seed", &seed.to_string(), "--rate", &rate.to_string()])
                .env("CARDLINK_LOG", "warn")
                .spawn()
                .unwrap(),
        )
    }

    /// Simulated feed and offers as files (offers without budgets, so one
    /// instance or several give the same rewards).
    fn files(&self, count: u64, seed: u64) -> (PathBuf, PathBuf) {
        let (events, sim_offers, offers) =
            (self.dir.join("events.jsonl"), self.dir.join("offers-sim.json"), self.dir.join("offers.json"));
        let s = |p: &Path| p.display().to_string();
        let (c, sd) = (count.to_string(), seed.to_string());
        cardlink(&["simulate", "--count", &c, "--seed", &sd, "--events", &s(&events), "--offers", &s(&sim_offers)]);
        let mut all: Vec<Value> = serde_json::from_slice(&std::fs::read(&sim_offers).unwrap()).unwrap();
        for o in &mut all {
            o.as_object_mut().unwrap().remove("budget");
        }
        std::fs::write(&offers, serde_json::to_vec(&all).unwrap()).unwrap();
        cardlink(&["offers", "publish", &s(&offers), "--config", &self.arg()]);
        (events, offers)
    }

    fn wait_caught_up(&self, child: &mut Child, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("cardlink run exited ({status})");
            }
            let lag = cardlink_kafka::reader::group_lag(
                &self.config,
                &self.config.pipeline.group_id,
                &self.config.topics.events,
            );
            if let Ok(0) = lag {
                return;
            }
            assert!(started.elapsed() < timeout, "not caught up after {timeout:?}: lag {lag:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn rewards(&self) -> Vec<pb::RewardRecord> {
        cardlink_kafka::reader::read_topic(&self.config, &self.config.topics.rewards, Duration::from_secs(60))
            .unwrap()
            .iter()
            .map(|r| decode_reward(self.config.formats.rewards, r.value.as_deref().unwrap_or_default()).unwrap())
            .collect()
    }
}

/// Per reward id, the records in order as (event, status, value).
fn sequences(records: &[pb::RewardRecord]) -> BTreeMap<String, Vec<(String, i32, String)>> {
    let mut m: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in records {
        m.entry(r.reward_id.clone()).or_default().push((r.event_id.clone(), r.status, r.value.clone()));
    }
    m
}

#[test]
fn pipeline_admin_api_status_page_and_schema() {
    let _serial = lock();
    let Some(w) = World::new("api") else { return };
    let (count, seed) = (24_000, 11);
    let (events, offers) = w.files(count, seed);
    let (ledger, _) = replay_ledger(&w.dir, &events, &offers);
    let mut run = w.run("run.log");
    let port = w.port;
    wait_status(port, "/readyz", 200, Duration::from_secs(90), &mut run);
    let mut feed = w.feed(count, seed, 3000);
    std::thread::sleep(Duration::from_secs(1));
    check_status_page(port);
    assert!(feed.wait().unwrap().success());
    w.wait_caught_up(&mut run, Duration::from_secs(120));

    // Metrics: every record counted once, lag reported per partition.
    let (_, metrics) = http(port, "GET", "/metrics", None, None);
    assert_eq!(metric(&metrics, "cardlink_events_total", &[]), count as f64, "{metrics}");
    assert_eq!(metric(&metrics, "cardlink_ready", &[]), 1.0);
    assert!(metric(&metrics, "cardlink_transaction_commit_seconds_count", &[]) > 0.0);
    assert!(metric(&metrics, "cardlink_offers_indexed", &[]) > 0.0);
    // Lag per partition from librdkafka's statistics (every 5 s): zero now.
    let started = Instant::now();
    loop {
        let (_, status) = get_json(port, "/v1/status");
        let lags = status["lag_by_partition"].as_object().unwrap();
        if lags.len() == 3 && lags.values().all(|l| l == 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "lag of the 3 partitions reported: {status}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, metrics) = http(port, "GET", "/metrics", None, None);
    assert_eq!(metrics.lines().filter(|l| l.starts_with("cardlink_consumer_lag{")).count(), 3, "{metrics}");

    // Cards: the live state equals the replay's ledger.
    assert!(check_cards(port, &ledger) > 0);
    let (status, body) = get_json(port, "/v1/cards/tok_unknown_card");
    assert_eq!(status, 404, "{body}");

    // Writes need the token.
    let offer = json!({"id": "api-new", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mids": ["M1"]}});
    let put = |auth: Option<&str>, id: &str, body: &Value| {
        http(port, "PUT", &format!("/v1/offers/{id}"), auth, Some(&body.to_string()))
    };
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(put(None, "api-new", &offer).0, 401);
    assert_eq!(put(Some("Bearer wrong"), "api-new", &offer).0, 401);
    assert_eq!(put(Some(TOKEN), "api-new", &offer).0, 401);
    assert_eq!(http(port, "DELETE", "/v1/offers/api-new", None, None).0, 401);
    // Validation errors name the field, as for offer files.
    for (bad, field) in [
        (json!({"id": "api-new", "currency": "usd", "reward": {"percent": "5"}}), "currency"),
        (json!({"id": "api-new", "currency": "USD", "reward": {"percent": "500"}}), "reward.percent"),
        (json!({"id": "api-new", "currency": "USD", "reward": {"fixed": "1"}, "days": ["Mon"]}), "days"),
        (json!({"id": "other", "currency": "USD", "reward": {"percent": "5"}}), "id"),
        (json!({"currency": "USD", "reward": {"percent": "5"}}), "id"),
    ] {
        let (status, body) = put(Some(&bearer), "api-new", &bad);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    let (status, body) = http(port, "PUT", "/v1/offers/api-new", Some(&bearer), Some("{not json"));
    assert_eq!(status, 400, "{body}");
    // A valid offer is published and shows in the live index.
    let (status, body) = put(Some(&bearer), "api-new", &offer);
    assert_eq!(status, 200, "{body}");
    let (status, live) = get_json(port, "/v1/offers/api-new");
    assert_eq!((status, &live["active"]), (200, &json!(true)), "{live}");
    assert_eq!(live["offer"]["reward"], json!({"percent": "5"}));
    let (status, body) = http(port, "DELETE", "/v1/offers/api-new", Some(&bearer), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_json(port, "/v1/offers/api-new").1["active"], json!(false));
    assert_eq!(http(port, "DELETE", "/v1/offers/never-was", Some(&bearer), None).0, 404);

    let (status, doc) = get_json(port, "/openapi.json");
    assert_eq!(status, 200);
    for path in ["/healthz", "/readyz", "/metrics", "/", "/v1/offers", "/v1/offers/{id}", "/v1/cards/{token}"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    check_schemathesis(port, &w.dir);

    sigterm(&run);
    let status = wait_exit(&mut run, Duration::from_secs(35)).expect("cardlink run stops on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_mid_feed_exits_zero_and_loses_nothing() {
    let _serial = lock();
    let Some(w) = World::new("sigterm") else { return };
    let (count, seed) = (30_000, 5);
    let (events, offers) = w.files(count, seed);
    let (_, replayed) = replay_ledger(&w.dir, &events, &offers);
    let mut run = w.run("run-1.log");
    wait_status(w.port, "/readyz", 200, Duration::from_secs(90), &mut run);
    let mut feed = w.feed(count, seed, 6000);
    std::thread::sleep(Duration::from_secs(2));
    let stopped = Instant::now();
    sigterm(&run);
    let status = wait_exit(&mut run, Duration::from_secs(30)).expect("exits within 30 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    eprintln!("stopped in {:?}", stopped.elapsed());
    assert!(feed.wait().unwrap().success());
    // A new instance finishes the feed from what the first committed.
    let mut run = w.run("run-2.log");
    w.wait_caught_up(&mut run, Duration::from_secs(120));
    sigterm(&run);
    assert!(wait_exit(&mut run, Duration::from_secs(30)).is_some_and(|s| s.success()));
    let (got, want) = (sequences(&w.rewards()), sequences(&replayed));
    assert!(!want.is_empty(), "the scenario rewards something");
    let differ = want.iter().filter(|(id, seq)| got.get(*id) != Some(seq)).count();
    assert_eq!(differ, 0, "rewards lost or changed across the SIGTERM");
    assert_eq!(got.len(), want.len(), "no reward added");
}

#[test]
fn a_card_is_answered_by_its_owner_and_the_other_instance_names_it() {
    let _serial = lock();
    let Some(w) = World::new("owner") else { return };
    let (count, seed) = (6_000, 3);
    let (events, offers) = w.files(count, seed);
    let (ledger, _) = replay_ledger(&w.dir, &events, &offers);
    let ports = [w.port, free_port()];
    let mut runs: Vec<Proc> = ["a", "b"]
        .iter()
        .zip(ports)
        .map(|(id, port)| {
            Proc(
                Command::new(BIN)
                    .args(["run", "--config", &w.arg()])
                    .env("CARDLINK_INSTANCE_ID", id)
                    .env("CARDLINK_ADMIN_LISTEN", format!("127.0.0.1:{port}"))
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(w.dir.join(format!("run-{id}.log"))).unwrap())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut feed = w.feed(count, seed, 0);
    assert!(feed.wait().unwrap().success());
    w.wait_caught_up(&mut runs[0], Duration::from_secs(120));
    // Both ready: the group has settled and each restored what it holds
    // (whoever processed the records, the state follows the partition).
    let started = Instant::now();
    while !ports.iter().all(|p| get_json(*p, "/readyz").0 == 200) {
        assert!(started.elapsed() < Duration::from_secs(60), "both instances ready");
        std::thread::sleep(Duration::from_millis(500));
    }
    let cards = ledger["cards"].as_object().unwrap();
    let mut answered = [0, 0];
    for (token, totals) in cards.iter().take(12) {
        // 503 while the group rebalances: the API asks to retry.
        let started = Instant::now();
        let replies = loop {
            let replies: Vec<(u16, Value)> =
                ports.iter().map(|p| get_json(*p, &format!("/v1/cards/{token}"))).collect();
            if replies.iter().all(|(s, _)| *s != 503) || started.elapsed() > Duration::from_secs(60) {
                break replies;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let owner = replies.iter().position(|(s, _)| *s == 200).unwrap_or_else(|| panic!("{token}: {replies:?}"));
        let other = &replies[1 - owner];
        assert_eq!(other.0, 421, "{token}: the other instance names the owner: {replies:?}");
        assert_eq!(other.1["owner"]["instance_id"], json!(["a", "b"][owner]), "{token}: {replies:?}");
        assert_eq!(other.1["partition"], replies[owner].1["partition"], "{token}: the same partition");
        assert_eq!(replies[owner].1["pending"], totals.get("pending").cloned().unwrap_or(json!({})));
        answered[owner] += 1;
    }
    assert!(answered.iter().all(|n| *n > 0), "cards live on both instances: {answered:?}");
    for run in &runs {
        sigterm(run);
    }
    for run in &mut runs {
        assert!(wait_exit(run, Duration::from_secs(30)).is_some_and(|s| s.success()));
    }
}
