//! No card number anywhere: events carrying raw card numbers (PANs) in every
//! field, alone and inside other text, go through `cardlink replay` and the
//! Kafka pipeline with logs at trace level; then every output is scanned
//! for any 13–19 digit Luhn-valid number by a scanner written here, apart
//! from `cardlink_core::pan`: reward records, dead letters (values and
//! keys), the ledger, the state changelog, standard output and error, the
//! logs, and the admin server's responses (`/metrics`, `/v1/...`, including
//! requests that carry card numbers themselves).
//!
//! The Kafka half needs CARDLINK_KAFKA_BOOTSTRAP (scripts/test sets it) and
//! skips itself without it.

mod hostile;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use cardlink_wire::v1 as pb;
use hostile::{BIN, Kafka, assert_no_pan, find_pans};
use prost::Message;
use serde_json::{Value, json};

/// Test card numbers of several networks and lengths (all Luhn-valid).
const PANS: [&str; 7] = [
    "4111111111111111",    // Visa, 16
    "5555555555554444",    // Mastercard, 16
    "378282246310005",     // Amex, 15
    "4222222222222",       // Visa, 13
    "6011000990139424",    // Discover, 16
    "36227206271667",      // Diners, 14
    "6212345678901234569", // 19
];

#[test]
fn the_scanner_finds_card_numbers_and_nothing_else() {
    fn check(text: &str, expected: usize) {
        assert_eq!(find_pans(text.as_bytes()).len(), expected, "{text:?}");
    }
    for pan in PANS {
        check(pan, 1);
        check(&format!("tok_{pan}"), 1);
        check(&format!("{{\"x\":\"{pan}\"}}"), 1);
    }
    check("4111111111111112", 0); // Luhn fails
    check("411111111111", 0); // 12 digits
    check("************1111", 0); // masked
    check("4111-1111-1111-1111", 0); // groups of four are four short runs
    check("2026-05-04T12:30:00-04:00", 0);
    check("999999999999999.99", 0);
    check("4222222222222.00", 1); // whole units
    check("cardlink_transaction_commit_seconds_sum 0.47408069900000005", 0); // a fraction
    check("tok.4111111111111111", 1);
    check("00041111111111111110", 1); // 20 digits holding a card number
    check("4111111111111111 and 5555555555554444", 2);
}

/// Events with card numbers in every field, in the contract's JSON form,
/// plus good purchases (at M-SAFE, which the offer rewards) around them.
fn events() -> Vec<Value> {
    let ts = "2026-05-04T12:30:00-04:00";
    let purchase = |id: String, kind: &str| {
        json!({"event_id": id, "kind": kind, "network": "VISA", "transaction_id": format!("t-{id}"),
               "card_token": "tok_safe_1", "amount": "20.00", "currency": "USD",
               "merchant": {"mid": "M-SAFE", "mcc": "5812", "country": "US", "name": "Safe Shop"},
               "occurred_at": ts})
    };
    let mut out = Vec::new();
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("p-{n:x}")
    };
    for (i, pan) in PANS.iter().enumerate() {
        let pan = *pan;
        for kind in ["AUTHORIZATION", "CLEARING", "AUTH_REVERSAL", "REFUND"] {
            for field in
                ["event_id", "kind", "card_token", "occurred_at", "network", "transaction_id", "amount", "currency"]
            {
                let mut e = purchase(id(), kind);
                e[field] = json!(pan);
                // A 13–15 digit card number is a valid amount (below 10^15):
                // off the rewarded merchant, so that no reward value is
                // computed from it (a computed number is not the card
                // number, but could pass Luhn by chance).
                if field == "amount" {
                    e["merchant"]["mid"] = json!("M-NONE");
                }
                out.push(e);
            }
            for field in ["mid", "mcc", "country", "name"] {
                let mut e = purchase(id(), kind);
                e["merchant"][field] = json!(pan);
                // Off the rewarded merchant, so that an accepted event with
                // a card-number amount earns nothing derived from it.
                if field != "mid" {
                    e["merchant"]["mid"] = json!("M-NONE");
                }
                out.push(e);
            }
        }
        let mut e = purchase(id(), "AUTHORIZATION");
        e["amount"] = json!(pan);
        e["merchant"]["mid"] = json!("M-NONE");
        out.push(e);
        for field in ["event_id", "card_token", "offer_id"] {
            let mut e = json!({"event_id": id(), "kind": "ACTIVATION", "card_token": "tok_safe_2",
                               "offer_id": "safe-10", "occurred_at": ts});
            e[field] = json!(pan);
            out.push(e);
        }
        // In free text and unknown fields, glued to other text.
        let mut e = purchase(id(), "AUTHORIZATION");
        e["merchant"]["name"] = json!(format!("card {pan} paid"));
        e["note"] = json!(format!("x{pan}y"));
        e["nested"] = json!({"deep": [pan, {"pan": pan}], "n": pan.parse::<u64>().unwrap()});
        out.push(e);
        // As a JSON number.
        let mut e = purchase(id(), "AUTHORIZATION");
        e["card_token"] = json!(pan.parse::<u64>().unwrap());
        out.push(e);
        // A rejected event whose card number sits in a field it is not
        // rejected for: the dead letter's copy of the record is masked.
        let mut e = purchase(id(), "AUTHORIZATION");
        e["kind"] = json!("NOPE");
        e["merchant"]["name"] = json!(pan);
        out.push(e);
        // A good purchase, its clearing and a refund between them.
        let good = id();
        let mut auth = purchase(good.clone(), "AUTHORIZATION");
        auth["card_token"] = json!(format!("tok_safe_{}", i + 3));
        let mut clearing = auth.clone();
        clearing["event_id"] = json!(id());
        clearing["kind"] = json!("CLEARING");
        let mut refund = auth.clone();
        refund["event_id"] = json!(id());
        refund["kind"] = json!("REFUND");
        refund["amount"] = json!("5.00");
        refund.as_object_mut().unwrap().remove("merchant");
        out.extend([auth, clearing, refund]);
    }
    out
}

/// Records that are not events at all but carry card numbers: a truncated
/// line, invalid UTF-8, a record over the size limit.
fn broken_json_records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for pan in PANS {
        out.push(format!("{{\"event_id\":\"b\",\"card_token\":\"{pan}\",\"amount\":").into_bytes());
        let mut bad = format!("{{\"event_id\":\"{pan}\",\"merchant\":\"").into_bytes();
        bad.extend_from_slice(b"\xff\xfe\"}");
        out.push(bad);
    }
    let mut big = format!("{{\"card_token\":\"{}\",\"pad\":\"", PANS[0]).into_bytes();
    big.resize(70 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    out.push(big);
    out
}

fn to_proto(e: &Value) -> Vec<u8> {
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
    let m = &e["merchant"];
    let ms = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let enum_or = |k: &str, parse: &dyn Fn(&str) -> Option<i32>| match e.get(k).and_then(Value::as_str) {
        None => 0,
        // A card number in an enum field: its low 32 bits, as protobuf keeps them.
        Some(v) => parse(v).unwrap_or_else(|| v.parse::<u64>().map_or(99, |n| n as i32)),
    };
    pb::CardEvent {
        event_id: s("event_id"),
        kind: enum_or("kind", &|v| pb::EventKind::from_str_name(v).map(|k| k as i32)),
        card_token: s("card_token"),
        occurred_at: s("occurred_at"),
        network: enum_or("network", &|v| pb::Network::from_str_name(v).map(|k| k as i32)),
        transaction_id: s("transaction_id"),
        amount: s("amount"),
        currency: s("currency"),
        merchant: m.is_object().then(|| pb::Merchant {
            mid: ms("mid"),
            mcc: ms("mcc"),
            country: ms("country"),
            name: ms("name"),
        }),
        offer_id: s("offer_id"),
    }
    .encode_to_vec()
}

/// The JSON Lines and protobuf records of the test, with their Kafka keys
/// (the card token as the network sends it: card numbers included).
fn records(format: &str) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut out: Vec<(Option<Vec<u8>>, Vec<u8>)> = events()
        .iter()
        .map(|e| {
            let key = match &e["card_token"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let value = if format == "json" { e.to_string().into_bytes() } else { to_proto(e) };
            (Some(key.into_bytes()), value)
        })
        .collect();
    if format == "json" {
        out.extend(broken_json_records().into_iter().map(|r| (None, r)));
    } else {
        // A message cut inside a card number.
        let whole = to_proto(&json!({"event_id": "cut", "card_token": PANS[0]}));
        out.push((Some(PANS[0].as_bytes().to_vec()), whole[..whole.len() - 3].to_vec()));
    }
    out
}

const OFFERS: &str = r#"[{"id": "safe-10", "currency": "USD", "reward": {"percent": "10"}, "merchant": {"mids": ["M-SAFE"]}},
  {"id": "safe-pts", "currency": "USD", "reward": {"points_per_unit": "3"}, "activation_required": true}]"#;

/// Checks that the test fed what it says: card numbers the scanner sees,
/// in every record but the good ones.
fn assert_fed(records: &[(Option<Vec<u8>>, Vec<u8>)], format: &str) {
    let with_pans = records.iter().filter(|(_, v)| !find_pans(v).is_empty()).count();
    let good = events().iter().filter(|e| find_pans(e.to_string().as_bytes()).is_empty()).count();
    assert!(good >= 3 * PANS.len(), "good events are part of the feed");
    // Protobuf holds enum fields as numbers and has no JSON numbers: those
    // records show no card number, nor does the message cut inside one.
    let least = if format == "json" { records.len() - good } else { records.len() - good - 9 * PANS.len() - 1 };
    assert!(with_pans >= least, "{format}: only {with_pans} of {} records carry a card number", records.len());
}

#[test]
fn replay_writes_no_card_number() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-pan-replay");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("offers.json"), OFFERS).unwrap();
    for (format, file) in [("json", "events.jsonl"), ("protobuf", "events.pb")] {
        let records = records(format);
        assert_fed(&records, format);
        let mut bytes = Vec::new();
        for (_, r) in &records {
            if format == "json" {
                bytes.extend_from_slice(r);
                bytes.push(b'\n');
            } else {
                prost::encoding::encode_varint(r.len() as u64, &mut bytes);
                bytes.extend_from_slice(r);
            }
        }
        std::fs::write(dir.join(file), &bytes).unwrap();
        let out = Command::new(BIN)
            .current_dir(&dir)
            .args(["replay", "--offers", "offers.json", "--events", file])
            .args(["--rewards", "rewards.jsonl", "--ledger", "ledger.json", "--dead-letters", "dlq.jsonl"])
            .env("CARDLINK_LOG", "trace")
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rewards = std::fs::read(dir.join("rewards.jsonl")).unwrap();
        let dead = std::fs::read(dir.join("dlq.jsonl")).unwrap();
        assert!(rewards.split(|b| *b == b'\n').count() > 2 * PANS.len(), "{format}: the good events earned rewards");
        assert!(dead.split(|b| *b == b'\n').count() > 10 * PANS.len(), "{format}: card numbers were rejected");
        for (what, bytes) in [
            ("rewards", rewards),
            ("dead letters", dead),
            ("ledger", std::fs::read(dir.join("ledger.json")).unwrap()),
            ("stdout", out.stdout),
            ("stderr", out.stderr),
        ] {
            assert_no_pan(&format!("replay ({format}): {what}"), &bytes);
        }
    }
    // An offer file with card numbers in its fields: the error names the
    // offer and the field, and shows no card number.
    for bad in [
        format!(r#"[{{"id": "{}", "currency": "USD", "reward": {{"percent": "x"}}}}]"#, PANS[0]),
        format!(r#"[{{"id": "o", "currency": "{}", "reward": {{"percent": "1"}}}}]"#, PANS[1]),
        format!(
            r#"[{{"id": "o", "currency": "USD", "reward": {{"fixed": "{}"}}, "valid_from": "{}"}}]"#,
            PANS[2], PANS[3]
        ),
    ] {
        std::fs::write(dir.join("bad-offers.json"), &bad).unwrap();
        let out = Command::new(BIN)
            .current_dir(&dir)
            .args(["replay", "--offers", "bad-offers.json", "--events", "events.jsonl"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_no_pan(&format!("the error for {bad}"), &[out.stdout, out.stderr].concat());
    }
}

/// One HTTP/1.1 exchange with the admin server: (status, body).
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let status = String::from_utf8_lossy(&out[9..12]).parse().unwrap_or(0);
    (status, out)
}

/// Waits until the admin server answers /healthz.
fn wait_admin(addr: &str) {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the admin server on {addr} never listened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asks the admin server everything it answers, card numbers included in
/// the requests; returns every response, whole.
fn admin_responses(addr: &str, token: &str) -> Vec<(String, Vec<u8>)> {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let mut out = Vec::new();
    let mut get = |path: String| {
        let (status, body) = http(addr, "GET", &path, "", "");
        assert!(status > 0, "GET {path}");
        out.push((format!("GET {path} ({status})"), body));
    };
    for path in
        ["/healthz", "/readyz", "/metrics", "/", "/openapi.json", "/v1/status", "/v1/offers", "/v1/offers/safe-10"]
    {
        get(path.into());
    }
    for t in ["tok_safe_1", "tok_safe_3", "tok_nobody"] {
        get(format!("/v1/cards/{t}"));
    }
    for pan in PANS {
        get(format!("/v1/cards/{pan}"));
        get(format!("/v1/cards/tok_{pan}"));
        get(format!("/v1/offers/{pan}"));
    }
    let offer = |id: &str, currency: &str, percent: &str| {
        format!(r#"{{"id": "{id}", "currency": "{currency}", "reward": {{"percent": "{percent}"}}}}"#)
    };
    let puts = [
        (PANS[0].to_owned(), offer(PANS[0], "USD", "5")),
        ("o-1".to_owned(), offer("o-1", PANS[1], "5")),
        ("o-2".to_owned(), offer("o-2", "USD", PANS[2])),
        ("o-3".to_owned(), offer(PANS[3], "USD", "5")),
        ("o-4".to_owned(), format!("{{\"id\": \"o-4\", \"x\": {}", PANS[4])),
    ];
    for (id, body) in puts {
        for headers in [auth.as_str(), "", "Authorization: Bearer wrong\r\n"] {
            let (status, resp) = http(addr, "PUT", &format!("/v1/offers/{id}"), headers, &body);
            out.push((format!("PUT /v1/offers/{id} ({status})"), resp));
        }
    }
    for pan in PANS {
        let (status, resp) = http(addr, "DELETE", &format!("/v1/offers/{pan}"), &auth, "");
        out.push((format!("DELETE /v1/offers/{pan} ({status})"), resp));
    }
    out
}

/// The pipeline tests share one broker and two cores: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pipeline_writes_no_card_number(format: &str, admin_port: u16) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let formats =
        format!("events = \"{format}\"\noffers = \"{format}\"\nrewards = \"{format}\"\ndead_letters = \"{format}\"");
    let addr = format!("127.0.0.1:{admin_port}");
    let token = "no-pan-admin-token";
    let admin = format!("[admin]\nlisten = \"{addr}\"\ntoken = \"{token}\"\n");
    let Some(mut k) = Kafka::new(&format!("no-pan-{format}"), 2, &formats, &admin) else { return };
    std::fs::write(k.path("offers.json"), OFFERS).unwrap();
    let offers = k.path("offers.json").display().to_string();
    let publish = k.cardlink(&["offers", "publish", &offers], "trace");
    let records = records(format);
    assert_fed(&records, format);
    k.produce_events(records);
    k.start("trace");
    k.wait_caught_up(Duration::from_secs(180));
    wait_admin(&addr);
    let responses = admin_responses(&addr, token);
    k.stop();
    let mut scanned = 0;
    for topic in
        [&k.config.topics.rewards, &k.config.topics.dead_letters, &k.config.topics.state, &k.config.topics.offers]
    {
        let records = k.topic(topic);
        assert!(!records.is_empty(), "{topic} is empty");
        for r in records {
            assert_no_pan(&format!("a record value on {topic}"), r.value.as_deref().unwrap_or_default());
            assert_no_pan(&format!("a record key on {topic}"), r.key.as_deref().unwrap_or_default());
            scanned += 1;
        }
    }
    assert!(scanned > 10 * PANS.len());
    assert_no_pan("cardlink run's trace log", &k.log());
    assert_no_pan("cardlink offers publish", &[publish.stdout, publish.stderr].concat());
    let metrics = responses.iter().find(|(what, _)| what.starts_with("GET /metrics")).expect("asked");
    assert!(String::from_utf8_lossy(&metrics.1).contains("cardlink_rejects_total"), "the metrics are there");
    for (what, body) in &responses {
        assert_no_pan(&format!("the admin response to {what}"), body);
    }
    let asked: Vec<&str> = responses.iter().map(|(what, _)| what.as_str()).collect();
    eprintln!("{format}: scanned {scanned} topic records and {} admin responses: {asked:?}", responses.len());
}

#[test]
fn pipeline_with_json_topics_writes_no_card_number() {
    pipeline_writes_no_card_number("json", 44095);
}

#[test]
fn pipeline_with_protobuf_topics_writes_no_card_number() {
    pipeline_writes_no_card_number("protobuf", 44096);
}
