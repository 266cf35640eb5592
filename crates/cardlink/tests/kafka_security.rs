//! TLS and SASL/SCRAM to Kafka, against a broker of this test's own:
//! `deploy/local/kafka` in secure mode (a throwaway CA and broker
//! certificate, a SASL_SSL listener with a SCRAM-SHA-512 user) on port
//! 45199, beside its plaintext listener on 45092. cardlink talks only to
//! the SASL_SSL port:
//!
//! - with the right CA, user and password, a small feed runs through
//!   `cardlink run` and the rewards equal `cardlink replay`'s;
//! - a wrong password, and a CA that did not sign the broker, each end
//!   the command within seconds with exit code 2 and librdkafka's reason;
//! - no secret (SASL password, admin token, secret-looking pass-through
//!   option, the wrong password) appears in any log, at trace level, nor in
//!   any page of the admin server, while the configuration dump that is
//!   logged shows `<redacted>` instead.
//!
//! Skipped, with the reason printed, when the broker cannot start (no Java,
//! no jars, a taken port), unless scripts/test runs it (its
//! CARDLINK_KAFKA_BOOTSTRAP shows Kafka works here: then it is a failure).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cardlink_kafka::Config;
use serde_json::Value;
use support::{LocalKafka, cardlink, must_succeed};

const PLAIN_PORT: u16 = 45092;
const CONTROLLER_PORT: u16 = 45192;
const SECURE_PORT: u16 = 45199;
/// The admin server of the test's `cardlink run`.
const ADMIN: &str = "127.0.0.1:45195";

/// A plain HTTP/1.0 GET: status code and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Runs a command that must fail by itself within `bound`; returns its
/// exit code and stderr. A command still running after `bound` hangs.
fn must_fail_within(cmd: &mut Command, bound: Duration) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} still ran after {bound:?}:\n{}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap(), started.elapsed())
}

/// A CA certificate that did not sign the broker's.
fn other_ca(dir: &Path) -> PathBuf {
    let (key, pem) = (dir.join("other-ca.key"), dir.join("other-ca.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not the broker's CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    pem
}

#[test]
fn tls_and_scram_end_to_end() {
    let Some(kafka) = LocalKafka::start(
        "kafka-security",
        PLAIN_PORT,
        CONTROLLER_PORT,
        1,
        &[("CARDLINK_KAFKA_SECURITY", "sasl_ssl"), ("CARDLINK_KAFKA_SECURE_PORT", &SECURE_PORT.to_string())],
    ) else {
        return;
    };
    let client: BTreeMap<String, String> = kafka
        .script
        .run(&["secure-env"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let (bootstrap, password) = (&client["CARDLINK_KAFKA_BOOTSTRAP"], &client["CARDLINK_KAFKA_SASL_PASSWORD"]);
    assert_eq!(bootstrap, &format!("127.0.0.1:{SECURE_PORT}"), "cardlink must use the SASL_SSL listener only");
    assert_eq!(client["CARDLINK_KAFKA_SECURITY_PROTOCOL"], "SASL_SSL");
    assert!(password.len() >= 16, "a generated password");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kafka-security-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Secrets that must never be printed: the SASL password (in the file),
    // a secret-looking librdkafka pass-through option, the admin token.
    let option_secret = "opt-s3cret-7d1f0a";
    let admin_token = "adm-t0ken-93be55";
    let text = format!(
        "[kafka]\nbootstrap = \"{bootstrap}\"\nstartup_timeout_ms = 20000\n\
         [kafka.security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         sasl_username = \"{}\"\nsasl_password = \"{password}\"\nssl_ca_location = \"{}\"\n\
         [kafka.options]\n\"ssl.key.password\" = \"{option_secret}\"\n\
         [topics]\nevents = \"sec-events\"\noffers = \"sec-offers\"\nrewards = \"sec-rewards\"\n\
         dead_letters = \"sec-dead-letters\"\nstate = \"sec-state\"\npartitions = 3\n\
         [pipeline]\ngroup_id = \"sec\"\ntransactional_id_prefix = \"sec\"\nsession_timeout_ms = 6000\n",
        client["CARDLINK_KAFKA_SASL_USERNAME"], client["CARDLINK_KAFKA_SSL_CA_LOCATION"],
    );
    let config_path = dir.join("cardlink.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = Config::from_toml(&text).unwrap();
    let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();

    // A small feed and its replay.
    let (feed, sim_offers, offers) = (dir.join("feed.pb"), dir.join("offers-sim.json"), dir.join("offers.json"));
    must_succeed(
        cardlink()
            .args(["simulate", "--count", "3000", "--seed", "31", "--events"])
            .arg(&feed)
            .arg("--offers")
            .arg(&sim_offers),
    );
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(&sim_offers).unwrap()).unwrap();
    std::fs::write(&offers, serde_json::to_vec(&support::offers_without_budgets(&all)).unwrap()).unwrap();
    let replayed = support::replay(&dir, &feed, &offers);

    // Everything over TLS + SCRAM, logging at trace level.
    let secure = |args: &[&str], log_name: &str| {
        let mut c = cardlink();
        c.args(args)
            .arg("--config")
            .arg(&config_path)
            .env("CARDLINK_LOG", "trace")
            .env("CARDLINK_ADMIN_TOKEN", admin_token);
        c.stderr(log(log_name));
        c
    };
    let mut publish = secure(&["offers", "publish", offers.to_str().unwrap()], "publish.log");
    assert!(publish.status().unwrap().success(), "offers publish over SASL_SSL failed (publish.log)");
    let mut produce = secure(&["simulate", "--kafka", "--count", "3000", "--seed", "31"], "feed.log");
    assert!(produce.status().unwrap().success(), "simulate --kafka over SASL_SSL failed (feed.log)");
    let mut run =
        secure(&["run"], "run.log").env("CARDLINK_ADMIN_LISTEN", ADMIN).stdout(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = run.try_wait().unwrap() {
            panic!(
                "cardlink run exited by itself: {status}\n{}",
                std::fs::read_to_string(dir.join("run.log")).unwrap()
            );
        }
        if let Ok(0) = cardlink_kafka::reader::group_lag(&config, "sec", "sec-events") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "not caught up after 180 s (run.log)");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Nor in anything the admin server shows.
    for path in ["/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/offers"] {
        let (status, body) = http_get(ADMIN, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        for secret in [password.as_str(), option_secret, admin_token] {
            assert!(!body.contains(secret), "GET {path} shows a secret");
        }
    }
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    assert!(run.wait().unwrap().success(), "cardlink run did not stop cleanly (run.log)");
    let rewards = support::read_rewards(&config);
    let dead_letters = support::read_dead_letters(&config);
    let c = support::compare(&rewards, &dead_letters, &replayed);
    assert!(!rewards.is_empty(), "rewards must arrive over SASL_SSL");
    assert!(c.identical(), "the rewards over SASL_SSL differ from replay: {c:#?}");
    eprintln!("{} reward records over SASL_SSL, equal to replay", rewards.len());

    // A wrong password: a clear error within seconds, never a hang.
    let wrong_password = "wr0ng-pa55word-c4f2";
    let (code, err, took) = must_fail_within(
        cardlink()
            .args(["run", "--config"])
            .arg(&config_path)
            .env("CARDLINK_KAFKA_SASL_PASSWORD", wrong_password)
            .env("CARDLINK_LOG", "trace"),
        Duration::from_secs(60),
    );
    std::fs::write(dir.join("wrong-password.log"), &err).unwrap();
    assert_eq!(code, 2, "a refused login is a configuration error:\n{err}");
    assert!(err.contains("Authentication failed") && err.contains("sasl_password"), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}: it must not wait out the start-up bound");

    // A CA that did not sign the broker's certificate.
    let (code, err, took) = must_fail_within(
        cardlink()
            .args(["offers", "publish"])
            .arg(&offers)
            .arg("--config")
            .arg(&config_path)
            .env("CARDLINK_KAFKA_SSL_CA_LOCATION", other_ca(&dir)),
        Duration::from_secs(60),
    );
    std::fs::write(dir.join("wrong-ca.log"), &err).unwrap();
    assert_eq!(code, 2, "an untrusted broker is a configuration error:\n{err}");
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // No secret in any log; the configuration dump is there, redacted.
    let mut dumps = 0;
    for name in ["publish.log", "feed.log", "run.log", "wrong-password.log", "wrong-ca.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for secret in [password.as_str(), option_secret, admin_token, wrong_password] {
            assert!(!text.contains(secret), "{name} shows a secret");
        }
        dumps += text.lines().filter(|l| l.contains("configuration: Config {") && l.contains("<redacted>")).count();
    }
    assert!(dumps >= 2, "the run logs must include the redacted configuration dump");
}
