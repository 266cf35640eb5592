//! `cardlink backtest` end to end on a simulated feed: its JSON report
//! agrees with `cardlink replay`'s ledger of the same feed, adds up, and
//! does not depend on the feed's format.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("backtest-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn cardlink(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cardlink")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A simulated week (protobuf and JSON Lines, same seed) and its offers,
/// plus a second offer file: the simulated offers without their budgets.
fn feed() -> &'static (PathBuf, PathBuf, PathBuf, PathBuf) {
    static FEED: OnceLock<(PathBuf, PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    FEED.get_or_init(|| {
        let (pb, jsonl, offers, unbudgeted) =
            (tmp("feed.pb"), tmp("feed.jsonl"), tmp("offers.json"), tmp("unbudgeted.json"));
        for events in [&pb, &jsonl] {
            let (code, _, err) = cardlink(&[
                "simulate",
                "--count",
                "40000",
                "--days",
                "7",
                "--cards",
                "3000",
                "--merchants",
                "600",
                "--offer-count",
                "120",
                "--seed",
                "7",
                "--events",
                path(events),
                "--offers",
                path(&offers),
            ]);
            assert_eq!(code, 0, "{err}");
        }
        let mut list: Vec<Value> = serde_json::from_slice(&std::fs::read(&offers).unwrap()).unwrap();
        for o in &mut list {
            o.as_object_mut().unwrap().remove("budget");
        }
        std::fs::write(&unbudgeted, serde_json::to_vec(&list).unwrap()).unwrap();
        (pb, jsonl, offers, unbudgeted)
    })
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a decimal string")).parse().unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Runs a backtest and returns its JSON report.
fn backtest(name: &str, extra: &[&str]) -> Value {
    let json = tmp(&format!("{name}.json"));
    let html = tmp(&format!("{name}.html"));
    let mut args = vec!["backtest", "--json", path(&json), "--report", path(&html), "--quiet"];
    args.extend_from_slice(extra);
    let (code, _, err) = cardlink(&args);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg class=\"chart\""));
    read_json(&json)
}

/// The replay ledger of `offers` over the feed.
fn ledger(offers: &Path, name: &str) -> Value {
    let (pb, ..) = feed();
    let out = tmp(&format!("{name}.ledger.json"));
    let (code, _, err) =
        cardlink(&["replay", "--offers", path(offers), "--events", path(pb), "--ledger", path(&out), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    read_json(&out)
}

/// Checks one scenario against the replay's ledger and its own sums.
fn check(scenario: &Value, ledger: &Value) {
    let offers = scenario["offers"].as_array().unwrap();
    assert!(offers.iter().any(|o| o["rewarded_transactions"].as_u64().unwrap() > 0));
    let mut cards_live = 0;
    for o in offers {
        let id = o["id"].as_str().unwrap();
        // The ledger lists offers with a live reward (contract section 6).
        match ledger["offers"].get(id) {
            Some(l) => {
                assert_eq!(o["cost"], l["used"], "{id}");
                assert_eq!(o["rewarded_transactions"], l["rewarded_transactions"], "{id}");
            }
            None => assert_eq!(o["rewarded_transactions"], 0, "{id}"),
        }
        let cost = dec(&o["cost"]);
        assert_eq!(cost, dec(&o["pending"]) + dec(&o["confirmed"]), "{id}");
        assert_eq!(
            cost,
            dec(&o["issued"]) + dec(&o["adjusted_at_clearing"]) - dec(&o["reversed"]) - dec(&o["clawed_back"]),
            "{id}"
        );
        let days = o["by_day"].as_array().unwrap();
        let last = days.last().unwrap();
        assert_eq!(dec(&last["cumulative_cost"]), cost, "{id}");
        assert_eq!(dec(&last["cumulative_confirmed"]), dec(&o["confirmed"]), "{id}");
        assert_eq!(days.iter().map(|d| d["new_rewards"].as_u64().unwrap()).sum::<u64>(), o["rewards_issued"], "{id}");
        for series in ["by_hour", "by_weekday", "by_network"] {
            let buckets = o[series].as_array().unwrap();
            assert_eq!(buckets.iter().map(|b| dec(&b["cost"])).sum::<Decimal>(), cost, "{id} {series}");
            assert_eq!(
                buckets.iter().map(|b| dec(&b["qualifying_spend"])).sum::<Decimal>(),
                dec(&o["qualifying_spend"]),
                "{id} {series}"
            );
            let n: u64 = buckets.iter().map(|b| b["rewarded_transactions"].as_u64().unwrap()).sum();
            assert_eq!(n, o["rewarded_transactions"], "{id} {series}");
        }
        assert_eq!(
            o["rewards_issued"].as_u64().unwrap() - o["rewarded_transactions"].as_u64().unwrap(),
            o["rewards_ended"]
        );
        assert!(o["won"].as_u64() <= o["contested"].as_u64(), "{id}");
        if o["budget"].is_string() {
            assert!(cost <= dec(&o["budget"]), "{id}: R6");
        }
        assert_eq!(o["budget_ran_out_at"].is_null(), o["budget_ran_out_day"].is_null());
        cards_live = cards_live.max(o["distinct_cards_live"].as_u64().unwrap());
    }
    let c = &scenario["competition"];
    assert_eq!(c["prediction_mismatches"], 0, "R3–R5 predicted differently from the engine");
    assert!(c["purchases_checked"].as_u64().unwrap() > 0);
    assert!(scenario["totals"]["distinct_cards_live"].as_u64().unwrap() >= cards_live);
    // Cards holding a live reward: the ledger's cards with a non-zero sum.
    assert_eq!(scenario["totals"]["distinct_cards_live"], ledger["cards"].as_object().unwrap().len() as u64);
}

#[test]
fn backtest_agrees_with_replay_and_adds_up() {
    let (pb, _, offers, unbudgeted) = feed();
    let r = backtest(
        "both",
        &["--offers", path(offers), "--offers", &format!("open={}", path(unbudgeted)), "--events", path(pb)],
    );
    assert_eq!(r["format"], "cardlink-backtest/1");
    let f = &r["feed"];
    let replayed = ledger(offers, "offers");
    assert_eq!(f["processed"], replayed["events"]["processed"]);
    assert_eq!(f["duplicate"], replayed["events"]["duplicate"]);
    assert_eq!(f["rejected"], replayed["events"]["rejected"]);
    assert_eq!(f["records"], 40_000);
    assert_eq!(r["days"].as_array().unwrap().len(), 7);
    let names: Vec<&str> = r["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["offers", "open"]);
    check(&r["scenarios"][0], &replayed);
    check(&r["scenarios"][1], &ledger(unbudgeted, "unbudgeted"));
    // The simulated offers have budgets that run out within the week;
    // without budgets nothing runs out and nothing is cut.
    assert!(r["scenarios"][0]["totals"]["budgets_exhausted"].as_u64().unwrap() > 0);
    assert_eq!(r["scenarios"][1]["totals"]["budgets_exhausted"], 0);
    assert!(r["scenarios"][1]["offers"].as_array().unwrap().iter().all(|o| o["budget_refused"] == 0));
    // The cash offers compete for purchases (R5).
    assert!(r["scenarios"][0]["competition"]["contested_purchases"].as_u64().unwrap() > 0);
}

#[test]
fn formats_give_the_same_report() {
    let (pb, jsonl, offers, _) = feed();
    let mut a = backtest("pb", &["--offers", path(offers), "--events", path(pb)]);
    let mut b = backtest("jsonl", &["--offers", path(offers), "--events", path(jsonl)]);
    a["events"] = Value::Null;
    b["events"] = Value::Null;
    assert_eq!(a, b);
}

#[test]
fn window_takes_part_of_the_feed() {
    let (pb, _, offers, _) = feed();
    let whole = backtest("whole", &["--offers", path(offers), "--events", path(pb)]);
    let part = backtest(
        "part",
        &["--offers", path(offers), "--events", path(pb), "--from", "2026-05-03", "--until", "2026-05-05T00:00:00Z"],
    );
    let f = &part["feed"];
    assert_eq!(part["days"], serde_json::json!(["2026-05-03", "2026-05-04"]));
    assert!(f["first_event_at"].as_str().unwrap() >= "2026-05-03T00:00:00Z");
    assert!(f["last_event_at"].as_str().unwrap() < "2026-05-05T00:00:00Z");
    let sum = |v: &Value, keys: &[&str]| keys.iter().map(|k| v[*k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum(f, &["processed", "duplicate", "rejected", "outside_window"]), 40_000);
    assert!(f["outside_window"].as_u64().unwrap() > 20_000);
    assert!(sum(&whole["feed"], &["processed"]) > sum(f, &["processed"]));
}

#[test]
fn bad_arguments_exit_2() {
    let (pb, _, offers, _) = feed();
    let bad_offers = tmp("bad-offers.json");
    std::fs::write(&bad_offers, r#"[{"id": "x", "currency": "USD", "reward": {"percent": "120"}}]"#).unwrap();
    let json = tmp("never.json");
    for (args, says) in [
        (vec!["--offers", path(&bad_offers), "--events", path(pb), "--json", path(&json)], "x"),
        (vec!["--offers", path(offers), "--events", path(pb)], "--report"),
        (vec!["--offers", path(offers), "--events", path(pb), "--json", path(&json), "--from", "May 1"], "--from"),
        (
            vec![
                "--offers",
                path(offers),
                "--events",
                path(pb),
                "--json",
                path(&json),
                "--from",
                "2026-05-05",
                "--until",
                "2026-05-01",
            ],
            "before",
        ),
    ] {
        let mut all = vec!["backtest"];
        all.extend(args);
        let (code, _, err) = cardlink(&all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, _, _) =
        cardlink(&["backtest", "--offers", path(offers), "--events", "/nonexistent.pb", "--json", path(&json)]);
    assert_eq!(code, 1);
}
