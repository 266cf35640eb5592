//! Backtests of a small hand-written feed, with every expected figure
//! worked out by hand from the contract's rules.

use cardlink_core::parse_offer_file;
use cardlink_wire::Format;
use serde_json::{Value, json};

use crate::{Backtest, Options, Scenario, Window};

/// coffee-10: 10 % at coffee shops (MCC 5499), at most 2.00, budget 5.00.
/// coffee-5: 5 % at the same shops. pts-2: 2 points per USD at M1.
const OFFERS: &str = r#"[
  {"id": "coffee-10", "currency": "USD", "reward": {"percent": "10"}, "merchant": {"mccs": ["5499"]},
   "max_reward": "2.00", "budget": "5.00"},
  {"id": "coffee-5", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mccs": ["5499"]}},
  {"id": "pts-2", "currency": "USD", "reward": {"points_per_unit": "2"}, "merchant": {"mids": ["M1"]}}
]"#;

// One call per event line reads best in the feed below.
#[allow(clippy::too_many_arguments)]
fn purchase(id: &str, kind: &str, card: &str, tx: &str, amount: &str, mid: &str, network: &str, at: &str) -> String {
    json!({"event_id": id, "kind": kind, "card_token": card, "transaction_id": tx, "amount": amount,
           "currency": "USD", "network": network, "occurred_at": at,
           "merchant": {"mid": mid, "mcc": "5499", "country": "US", "name": format!("Shop {mid}")}})
    .to_string()
}

/// The feed, one JSON line per event; comments give what each does to the
/// offers of [`OFFERS`].
fn feed() -> Vec<String> {
    vec![
        // Monday 08:15 local (12:15 UTC, May 4). coffee-10: 10 % of 30 =
        // 3.00, capped at 2.00 (R4); coffee-5: 1.50; R5 gives 2.00 to
        // coffee-10. pts-2: 60 points. Both PENDING (R8).
        purchase("e1", "AUTHORIZATION", "c1", "tx1", "30.00", "M1", "VISA", "2026-05-04T08:15:00-04:00"),
        // Cleared at 35.00 (tip): coffee-10 stays 2.00 (cap), CONFIRMED with
        // delta 0; pts-2 becomes 70, CONFIRMED (R9).
        json!({"event_id": "e2", "kind": "CLEARING", "card_token": "c1", "transaction_id": "tx1", "amount": "35.00",
               "currency": "USD", "network": "VISA", "occurred_at": "2026-05-05T10:00:00Z",
               "merchant": {"mid": "M1", "mcc": "5499", "country": "US"}})
        .to_string(),
        // Tuesday 13:00 local (12:00 UTC, May 5). coffee-10 2.00 beats
        // coffee-5 1.00; 4.00 of the budget is now used.
        purchase("e3", "AUTHORIZATION", "c2", "tx2", "20.00", "M2", "MASTERCARD", "2026-05-05T13:00:00+01:00"),
        // Wednesday 09:00 local (08:00 UTC, May 6). coffee-10 would give
        // 1.20 but 1.00 is left: cut to 1.00 (R4, R6), which still beats
        // coffee-5's 0.60. The budget is now used up.
        purchase("e4", "AUTHORIZATION", "c2", "tx3", "12.00", "M2", "MASTERCARD", "2026-05-06T09:00:00+01:00"),
        // Wednesday 20:00 local (00:00 UTC, May 7). coffee-10's budget is
        // used up: not eligible (R3), a refusal. coffee-5 alone: 0.50;
        // pts-2: 20 points.
        purchase("e5", "AUTHORIZATION", "c1", "tx4", "10.00", "M1", "VISA", "2026-05-06T20:00:00-04:00"),
        // R10: tx2's pending 2.00 is cancelled, freeing budget.
        json!({"event_id": "e6", "kind": "AUTH_REVERSAL", "card_token": "c2", "transaction_id": "tx2",
               "occurred_at": "2026-05-07T10:00:00Z"})
        .to_string(),
        // R11: net 35 − 15 = 20. coffee-10 on 20 is 2.00, as before: no
        // record. pts-2 on 20 is 40: 30 points clawed back.
        json!({"event_id": "e7", "kind": "REFUND", "card_token": "c1", "transaction_id": "tx1", "amount": "15.00",
               "currency": "USD", "occurred_at": "2026-05-08T10:00:00Z"})
        .to_string(),
        // R2: e1 again.
        purchase("e1", "AUTHORIZATION", "c1", "tx1", "30.00", "M1", "VISA", "2026-05-04T08:15:00-04:00"),
        // R1: a raw card number as token.
        purchase("e9", "AUTHORIZATION", "4111111111111111", "tx9", "5.00", "M1", "VISA", "2026-05-08T11:00:00Z"),
        // R9: tx3 clears at 12.00; coffee-10 re-valued with the budget
        // counted without its own 1.00 (3.00 left): 1.20, delta +0.20.
        purchase("e10", "CLEARING", "c2", "tx3", "12.00", "M2", "MASTERCARD", "2026-05-08T12:00:00Z"),
    ]
}

fn run(offer_files: &[(&str, &str)], window: Window) -> Value {
    let scenarios = offer_files
        .iter()
        .map(|(name, json)| Scenario {
            name: name.to_string(),
            source: format!("{name}.json"),
            offers: parse_offer_file(json.as_bytes()).unwrap(),
        })
        .collect();
    let options = Options { window, events: "feed.jsonl".into(), ..Options::default() };
    let mut bt = Backtest::new(scenarios, options, None);
    let lines = feed().join("\n");
    bt.run(Format::Json, lines.as_bytes(), "feed.jsonl", |_| {}).unwrap();
    serde_json::to_value(bt.finish().unwrap()).unwrap()
}

/// Compares the value at each JSON pointer with what was worked out.
fn check(report: &Value, expected: &[(&str, Value)]) {
    for (pointer, want) in expected {
        let got = report.pointer(pointer).unwrap_or_else(|| panic!("{pointer} missing"));
        assert_eq!(got, want, "{pointer}");
    }
}

#[test]
fn one_scenario_worked_by_hand() {
    let r = run(&[("a", OFFERS)], Window::default());
    let c10 = "/scenarios/0/offers/0";
    let c5 = "/scenarios/0/offers/1";
    let pts = "/scenarios/0/offers/2";
    check(
        &r,
        &[
            // The feed: e1–e7 and e10 processed, e1 again a duplicate (R2),
            // e9 rejected (R1); four purchases opened transactions.
            ("/feed/records", json!(10)),
            ("/feed/processed", json!(8)),
            ("/feed/duplicate", json!(1)),
            ("/feed/rejected", json!(1)),
            ("/feed/rejected_by_reason", json!({"PAN_DETECTED": 1})),
            ("/feed/processed_by_kind/AUTHORIZATION", json!(4)),
            ("/feed/processed_by_kind/CLEARING", json!(2)),
            ("/feed/cards", json!(2)),
            ("/feed/purchases", json!(4)),
            ("/feed/purchase_spend", json!({"USD": "72.00"})),
            ("/feed/first_event_at", json!("2026-05-04T12:15:00Z")),
            ("/feed/last_event_at", json!("2026-05-08T12:00:00Z")),
            ("/days", json!(["2026-05-04", "2026-05-05", "2026-05-06", "2026-05-07", "2026-05-08"])),
            // coffee-10: tx1 2.00 and tx3 1.00→1.20 confirmed, tx2 reversed.
            (&format!("{c10}/rewards_issued"), json!(3)),
            (&format!("{c10}/rewarded_transactions"), json!(2)),
            (&format!("{c10}/rewards_ended"), json!(1)),
            (&format!("{c10}/distinct_cards"), json!(2)),
            (&format!("{c10}/distinct_cards_live"), json!(2)),
            (&format!("{c10}/issued"), json!("5.00")),
            (&format!("{c10}/adjusted_at_clearing"), json!("0.20")),
            (&format!("{c10}/reversed"), json!("2.00")),
            (&format!("{c10}/clawed_back"), json!("0.00")),
            (&format!("{c10}/pending"), json!("0.00")),
            (&format!("{c10}/confirmed"), json!("3.20")),
            (&format!("{c10}/cost"), json!("3.20")),
            (&format!("{c10}/reversals"), json!(1)),
            // tx1 on its net 20.00 (R11), tx3 on its cleared 12.00.
            (&format!("{c10}/qualifying_spend"), json!("32.00")),
            (&format!("{c10}/effective_rate"), json!("0.100000")),
            (&format!("{c10}/budget"), json!("5.00")),
            (&format!("{c10}/budget_ran_out_at"), json!("2026-05-06T09:00:00+01:00")),
            (&format!("{c10}/budget_ran_out_day"), json!("2026-05-06")),
            // e4 cut 1.20 to 1.00; e5 refused 1.00.
            (&format!("{c10}/budget_cut"), json!(1)),
            (&format!("{c10}/budget_refused"), json!(1)),
            (&format!("{c10}/budget_value_denied"), json!("1.20")),
            (&format!("{c10}/budget_first_refused_at"), json!("2026-05-06T20:00:00-04:00")),
            (&format!("{c10}/contested"), json!(3)),
            (&format!("{c10}/won"), json!(3)),
            (
                &format!("{c10}/by_day/0"),
                json!({"day": "2026-05-04", "new_rewards": 1, "issued": "2.00",
                "adjusted": "0.00", "reversed": "0.00", "clawed_back": "0.00", "net": "2.00",
                "cumulative_cost": "2.00", "cumulative_confirmed": "0.00"}),
            ),
            (&format!("{c10}/by_day/1/cumulative_cost"), json!("4.00")),
            (&format!("{c10}/by_day/1/cumulative_confirmed"), json!("2.00")),
            (&format!("{c10}/by_day/2/cumulative_cost"), json!("5.00")),
            (&format!("{c10}/by_day/3/net"), json!("-2.00")),
            (
                &format!("{c10}/by_day/4"),
                json!({"day": "2026-05-08", "new_rewards": 0, "issued": "0.00",
                "adjusted": "0.20", "reversed": "0.00", "clawed_back": "0.00", "net": "0.20",
                "cumulative_cost": "3.20", "cumulative_confirmed": "3.20"}),
            ),
            // Filed by the purchase's local hour and weekday (R3's local
            // time): tx1 Monday 08h, tx3 Wednesday 09h; tx2 ended at zero.
            (
                &format!("{c10}/by_hour/8"),
                json!({"key": "08", "rewarded_transactions": 1, "cost": "2.00", "qualifying_spend": "20.00"}),
            ),
            (
                &format!("{c10}/by_hour/9"),
                json!({"key": "09", "rewarded_transactions": 1, "cost": "1.20", "qualifying_spend": "12.00"}),
            ),
            (&format!("{c10}/by_hour/13/rewarded_transactions"), json!(0)),
            (&format!("{c10}/by_weekday/0/cost"), json!("2.00")),
            (&format!("{c10}/by_weekday/1/cost"), json!("0.00")),
            (&format!("{c10}/by_weekday/2/cost"), json!("1.20")),
            (&format!("{c10}/by_network/0/cost"), json!("2.00")),
            (&format!("{c10}/by_network/1/cost"), json!("1.20")),
            (
                &format!("{c10}/top_merchants"),
                json!([
                {"mid": "M1", "name": "Shop M1", "rewarded_transactions": 1, "cost": "2.00", "qualifying_spend": "20.00"},
                {"mid": "M2", "name": "Shop M2", "rewarded_transactions": 1, "cost": "1.20", "qualifying_spend": "12.00"}]),
            ),
            // coffee-5 won only e5 (alone there: not contested), pending.
            (&format!("{c5}/cost"), json!("0.50")),
            (&format!("{c5}/pending"), json!("0.50")),
            (&format!("{c5}/qualifying_spend"), json!("10.00")),
            (&format!("{c5}/effective_rate"), json!("0.050000")),
            (&format!("{c5}/contested"), json!(3)),
            (&format!("{c5}/won"), json!(0)),
            (&format!("{c5}/by_hour/20/cost"), json!("0.50")),
            (&format!("{c5}/budget"), json!(null)),
            // pts-2: 60→70 at clearing, 40 after the refund; 20 on tx4.
            (&format!("{pts}/kind"), json!("POINTS")),
            (&format!("{pts}/unit"), json!("POINTS")),
            (&format!("{pts}/issued"), json!("80")),
            (&format!("{pts}/adjusted_at_clearing"), json!("10")),
            (&format!("{pts}/clawed_back"), json!("30")),
            (&format!("{pts}/refunds"), json!(1)),
            (&format!("{pts}/confirmed"), json!("40")),
            (&format!("{pts}/pending"), json!("20")),
            (&format!("{pts}/cost"), json!("60")),
            (&format!("{pts}/qualifying_spend"), json!("30.00")),
            (&format!("{pts}/effective_rate"), json!("2.000000")),
            (&format!("{pts}/by_day/4/clawed_back"), json!("30")),
            (&format!("{pts}/contested"), json!(0)),
            // The scenario: tx1, tx3, tx4 hold live rewards.
            ("/scenarios/0/totals/cost", json!({"POINTS": "60", "USD": "3.70"})),
            ("/scenarios/0/totals/clawed_back", json!({"POINTS": "30", "USD": "0.00"})),
            ("/scenarios/0/totals/rewards_issued", json!(6)),
            ("/scenarios/0/totals/rewarded_transactions", json!(3)),
            ("/scenarios/0/totals/distinct_cards", json!(2)),
            ("/scenarios/0/totals/qualifying_spend", json!({"USD": "42.00"})),
            ("/scenarios/0/totals/offers_with_rewards", json!(3)),
            ("/scenarios/0/totals/budgets_exhausted", json!(1)),
            // R5: e1, e3 and e4 each had both cash offers eligible.
            (
                "/scenarios/0/competition",
                json!({"contested_purchases": 3, "purchases_checked": 4,
                "prediction_mismatches": 0,
                "pairs": [{"offers": ["coffee-10", "coffee-5"], "purchases": 3, "wins": [3, 0]}]}),
            ),
        ],
    );
}

#[test]
fn scenarios_side_by_side_are_independent() {
    let only5 =
        r#"[{"id": "coffee-5", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mccs": ["5499"]}}]"#;
    let both = run(&[("a", OFFERS), ("b", only5)], Window::default());
    let alone = run(&[("a", OFFERS)], Window::default());
    // The first scenario is what it is alone.
    assert_eq!(both["scenarios"][0], alone["scenarios"][0]);
    assert_eq!(both["feed"], alone["feed"]);
    // coffee-5 alone: tx1 1.50 → 1.75 at clearing → 1.00 on the net 20
    // (0.75 clawed back, R11); tx2 1.00 reversed (R10); tx3 0.60; tx4 0.50.
    check(
        &both,
        &[
            ("/scenarios/1/name", json!("b")),
            ("/scenarios/1/offers/0/issued", json!("3.60")),
            ("/scenarios/1/offers/0/adjusted_at_clearing", json!("0.25")),
            ("/scenarios/1/offers/0/reversed", json!("1.00")),
            ("/scenarios/1/offers/0/clawed_back", json!("0.75")),
            ("/scenarios/1/offers/0/cost", json!("2.10")),
            ("/scenarios/1/offers/0/confirmed", json!("1.60")),
            ("/scenarios/1/offers/0/qualifying_spend", json!("42.00")),
            ("/scenarios/1/offers/0/effective_rate", json!("0.050000")),
            ("/scenarios/1/competition/contested_purchases", json!(0)),
            ("/scenarios/1/competition/prediction_mismatches", json!(0)),
        ],
    );
}

#[test]
fn window_skips_events_outside_it() {
    let w = Window {
        from: Some(Window::parse_bound("2026-05-05").unwrap()),
        until: Some(Window::parse_bound("2026-05-08").unwrap()),
    };
    let r = run(&[("a", OFFERS)], w);
    // e1, its duplicate, e7 and e10 fall outside; e9 is rejected anyway.
    // Without e1, e2 is a clearing never authorized: judged like a purchase
    // and CONFIRMED at once (R9): coffee-10 2.00 (cap), pts-2 70.
    check(
        &r,
        &[
            ("/window", json!({"from": "2026-05-05T00:00:00Z", "until": "2026-05-08T00:00:00Z"})),
            ("/feed/outside_window", json!(4)),
            ("/feed/processed", json!(5)),
            ("/feed/rejected", json!(1)),
            ("/feed/duplicate", json!(0)),
            ("/days", json!(["2026-05-05", "2026-05-06", "2026-05-07"])),
            ("/scenarios/0/offers/0/rewards_issued", json!(3)),
            ("/scenarios/0/offers/0/confirmed", json!("2.00")),
            ("/scenarios/0/offers/0/pending", json!("1.00")),
            ("/scenarios/0/offers/0/cost", json!("3.00")),
            ("/scenarios/0/offers/0/budget_ran_out_day", json!("2026-05-06")),
            ("/scenarios/0/offers/2/confirmed", json!("70")),
            ("/scenarios/0/offers/2/pending", json!("20")),
        ],
    );
}

#[test]
fn html_is_self_contained_and_carries_the_json_figures() {
    let report = {
        let scenarios = vec![Scenario {
            name: "a".into(),
            source: "a.json".into(),
            offers: parse_offer_file(OFFERS.as_bytes()).unwrap(),
        }];
        let mut bt = Backtest::new(scenarios, Options::default(), None);
        bt.run(Format::Json, feed().join("\n").as_bytes(), "feed", |_| {}).unwrap();
        bt.finish().unwrap()
    };
    let html = crate::render_html(&report, 10);
    let json = serde_json::to_value(&report).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    // Nothing to fetch: no script, stylesheet or image from elsewhere.
    for banned in ["<script", "http://", "https://", "src=", "@import", "url("] {
        let allowed = html.matches("http://www.w3.org/2000/svg").count();
        let n = html.matches(banned).count();
        assert!(n == 0 || (banned == "http://" && n == allowed), "{banned} found");
    }
    // Every data-json pointer resolves, and its figure is the JSON's.
    let mut seen = 0;
    for part in html.split("data-json=\"").skip(1) {
        let pointer = &part[..part.find('"').unwrap()];
        let value = json.pointer(pointer).unwrap_or_else(|| panic!("{pointer} does not resolve"));
        let want = match value {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let rest = &part[pointer.len() + 1..];
        let shown = match rest.trim_start().strip_prefix("data-value=\"") {
            Some(v) => v[..v.find('"').unwrap()].to_string(),
            None => {
                let text = &rest[rest.find('>').unwrap() + 1..];
                text[..text.find('<').unwrap()].replace(',', "")
            }
        };
        assert_eq!(shown, want, "{pointer}");
        seen += 1;
    }
    assert!(seen > 200, "only {seen} figures tied to the JSON");
    for chart in ["cost-over-time", "hours", "weekdays", "networks"] {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    assert!(html.contains("class=\"budget\""), "coffee-10's budget line");
}
