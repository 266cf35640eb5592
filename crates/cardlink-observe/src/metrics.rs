//! Every metric of cardlink, registered and recorded here: the engine's
//! code calls one function per thing that happened (an event processed, a
//! reward issued, a transaction committed) and this module logs and counts
//! it. So the names and label sets live in one file, and a label can never
//! carry a card number or a card token by accident.
//!
//! The hot-path functions use handles registered once by [`enable`]; until
//! then (in `cardlink replay`, the tests, the benchmarks) they are no-ops
//! that cost a branch. Gauges are set through the registry each time
//! instead: they change every few seconds at most, and the exporter may
//! drop an idle gauge (a revoked partition's lag), which a held handle
//! would not bring back.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cardlink_core::{Currency, EventKind, OfferBook, RejectReason, RewardKind, RewardStatus, RewardUpdate};
use metrics::{Counter, Histogram, Unit};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Card events read, by kind; `invalid` for rejected ones.
pub const EVENTS_TOTAL: &str = "cardlink_events_total";
/// Rejected events by reason.
pub const REJECTS_TOTAL: &str = "cardlink_rejects_total";
/// Valid events whose id was already processed (R2).
pub const DUPLICATES_TOTAL: &str = "cardlink_duplicates_total";
/// Reward records emitted, by status and kind (cash or points).
pub const REWARDS_TOTAL: &str = "cardlink_rewards_total";
/// Cash granted, in major units, by currency.
pub const CASH_ISSUED_TOTAL: &str = "cardlink_cash_issued_total";
/// Points granted.
pub const POINTS_ISSUED_TOTAL: &str = "cardlink_points_issued_total";
/// Share of a budgeted offer's budget used by live rewards.
pub const OFFER_BUDGET_USED_RATIO: &str = "cardlink_offer_budget_used_ratio";
/// Time to decode, validate and match one event.
pub const MATCH_SECONDS: &str = "cardlink_match_seconds";
/// Time to commit one Kafka transaction.
pub const TRANSACTION_COMMIT_SECONDS: &str = "cardlink_transaction_commit_seconds";
/// Records behind the end of each assigned input partition.
pub const CONSUMER_LAG: &str = "cardlink_consumer_lag";
/// Active offers in the index.
pub const OFFERS_INDEXED: &str = "cardlink_offers_indexed";
/// 1 when the instance is ready (`/readyz`), else 0.
pub const READY: &str = "cardlink_ready";

/// At most this many offers get a budget gauge: the most used, so the
/// number of series stays bounded whatever the catalogue's size.
pub const TOP_BUDGETS: usize = 50;

/// Histogram buckets of [`MATCH_SECONDS`]: matching takes microseconds.
pub const MATCH_BUCKETS: &[f64] =
    &[0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.01];
/// Histogram buckets of [`TRANSACTION_COMMIT_SECONDS`]: milliseconds to
/// seconds.
pub const COMMIT_BUCKETS: &[f64] = &[0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The label value of a rejected event in [`EVENTS_TOTAL`].
pub const INVALID_KIND: &str = "invalid";

struct Handles {
    enabled: bool,
    /// By [`EventKind::ALL`] position, then `invalid`.
    events: [Counter; 6],
    /// By [`RejectReason::ALL`] position.
    rejects: [Counter; 5],
    duplicates: Counter,
    /// By status (pending, confirmed, cancelled), then cash / points.
    rewards: [[Counter; 2]; 3],
    points: Counter,
    /// Cash granted per currency, exact; currencies are few, so a short
    /// list beats a map.
    cash: Mutex<Vec<(Currency, Decimal)>>,
    match_seconds: Histogram,
    commit_seconds: Histogram,
}

const STATUSES: [RewardStatus; 3] = [RewardStatus::Pending, RewardStatus::Confirmed, RewardStatus::Cancelled];
const REWARD_KINDS: [&str; 2] = ["cash", "points"];

impl Handles {
    fn noop() -> Handles {
        Handles {
            enabled: false,
            events: std::array::from_fn(|_| Counter::noop()),
            rejects: std::array::from_fn(|_| Counter::noop()),
            duplicates: Counter::noop(),
            rewards: std::array::from_fn(|_| std::array::from_fn(|_| Counter::noop())),
            points: Counter::noop(),
            cash: Mutex::new(Vec::new()),
            match_seconds: Histogram::noop(),
            commit_seconds: Histogram::noop(),
        }
    }

    /// Registers every series with a fixed label set up front, so a
    /// dashboard sees them at zero from the start.
    fn registered() -> Handles {
        let kinds = EventKind::ALL.map(EventKind::as_str);
        Handles {
            enabled: true,
            events: std::array::from_fn(
                |i| metrics::counter!(EVENTS_TOTAL, "kind" => kinds.get(i).copied().unwrap_or(INVALID_KIND)),
            ),
            rejects: RejectReason::ALL.map(|r| metrics::counter!(REJECTS_TOTAL, "reason" => r.as_str())),
            duplicates: metrics::counter!(DUPLICATES_TOTAL),
            rewards: STATUSES
                .map(|s| REWARD_KINDS.map(|k| metrics::counter!(REWARDS_TOTAL, "status" => s.as_str(), "kind" => k))),
            points: metrics::counter!(POINTS_ISSUED_TOTAL),
            cash: Mutex::new(Vec::new()),
            match_seconds: metrics::histogram!(MATCH_SECONDS),
            commit_seconds: metrics::histogram!(TRANSACTION_COMMIT_SECONDS),
        }
    }
}

static HANDLES: OnceLock<Handles> = OnceLock::new();
static NOOP: OnceLock<Handles> = OnceLock::new();

fn handles() -> &'static Handles {
    match HANDLES.get() {
        Some(h) => h,
        None => NOOP.get_or_init(Handles::noop),
    }
}

/// Starts recording: call once, after a metrics recorder is installed
/// (the admin server installs the Prometheus one). Describes every metric.
pub fn enable() {
    if HANDLES.set(Handles::registered()).is_err() {
        return;
    }
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(EVENTS_TOTAL, "Card events read, by kind (invalid: rejected)");
    describe_counter!(REJECTS_TOTAL, "Rejected card events, by reason; each goes to the dead letters");
    describe_counter!(DUPLICATES_TOTAL, "Valid card events whose id was already processed (R2)");
    describe_counter!(REWARDS_TOTAL, "Reward records emitted, by status and kind");
    describe_gauge!(CASH_ISSUED_TOTAL, "Cash granted by rewards, in major units; only grows (observability only)");
    describe_counter!(POINTS_ISSUED_TOTAL, "Points granted by rewards");
    describe_gauge!(OFFER_BUDGET_USED_RATIO, "Budget used by live rewards, 0..1 (the 50 most used budgeted offers)");
    describe_histogram!(MATCH_SECONDS, Unit::Seconds, "Time to decode, validate and match one card event");
    describe_histogram!(TRANSACTION_COMMIT_SECONDS, Unit::Seconds, "Time to commit one Kafka transaction");
    describe_gauge!(CONSUMER_LAG, "Records behind the end of an assigned input partition (librdkafka statistics)");
    describe_gauge!(OFFERS_INDEXED, "Active offers in the index");
    describe_gauge!(READY, "1 when the instance is ready to process (see /readyz)");
}

/// True once [`enable`] ran.
pub fn enabled() -> bool {
    handles().enabled
}

fn kind_index(kind: EventKind) -> usize {
    EventKind::ALL.iter().position(|k| *k == kind).expect("listed")
}

/// A valid, new event was processed.
#[inline]
pub fn event_processed(kind: EventKind) {
    handles().events[kind_index(kind)].increment(1);
}

/// A valid event was a duplicate (R2).
#[inline]
pub fn event_duplicate(kind: EventKind) {
    let h = handles();
    h.events[kind_index(kind)].increment(1);
    h.duplicates.increment(1);
}

/// An event was rejected and goes to the dead letters.
#[inline]
pub fn event_rejected(reason: RejectReason) {
    let h = handles();
    h.events[5].increment(1);
    h.rejects[RejectReason::ALL.iter().position(|r| *r == reason).expect("listed")].increment(1);
    log::trace!("event rejected: {}", reason.as_str());
}

/// A reward record was emitted. What a positive change grants counts as
/// issued; a clawback shows as a CANCELLED record (counters only grow).
#[inline]
pub fn reward(u: &RewardUpdate<'_>) {
    let h = handles();
    if !h.enabled {
        return;
    }
    let s = STATUSES.iter().position(|s| *s == u.status).expect("listed");
    match u.kind {
        RewardKind::Cash(currency) => {
            h.rewards[s][0].increment(1);
            if u.delta > Decimal::ZERO {
                let mut cash = h.cash.lock().unwrap_or_else(|p| p.into_inner());
                match cash.iter_mut().find(|(c, _)| *c == currency) {
                    Some((_, total)) => *total = total.saturating_add(u.delta),
                    None => cash.push((currency, u.delta)),
                }
            }
        }
        RewardKind::Points => {
            h.rewards[s][1].increment(1);
            if u.delta > Decimal::ZERO {
                h.points.increment(u.delta.to_u64().unwrap_or(u64::MAX));
            }
        }
    }
}

/// Publishes the cash totals. The metrics facade has integer counters
/// only, so cash (major units, with fractions) is a gauge that only grows,
/// set from an exact running total every few seconds by the thread that
/// owns the engine ([`crate::Observed::tick`]).
pub fn publish_cash() {
    let h = handles();
    if !h.enabled {
        return;
    }
    let cash = h.cash.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (currency, total) in cash {
        metrics::gauge!(CASH_ISSUED_TOTAL, "currency" => currency.code()).set(total.to_f64().unwrap_or(f64::MAX));
    }
}

/// Starts timing one event's match, when recording.
#[inline]
pub fn match_timer() -> Option<Instant> {
    handles().enabled.then(Instant::now)
}

/// Records the match time of an event timed by [`match_timer`].
#[inline]
pub fn matched(started: Option<Instant>) {
    if let Some(t) = started {
        handles().match_seconds.record(t.elapsed().as_secs_f64());
    }
}

/// A transaction of `records` input records committed in `took`.
pub fn transaction_committed(records: u64, took: Duration) {
    handles().commit_seconds.record(took.as_secs_f64());
    log::trace!("transaction of {records} records committed in {took:?}");
}

/// Sets the readiness gauge.
pub fn set_ready(ready: bool) {
    metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// Sets the lag gauge of one input partition.
pub fn set_consumer_lag(topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(CONSUMER_LAG, "topic" => topic.to_owned(), "partition" => partition.to_string())
        .set(lag.max(0) as f64);
}

/// Sets the index size and the budget gauges of the [`TOP_BUDGETS`] most
/// used budgeted offers; returns those (offer id, ratio), most used first.
pub fn set_offer_gauges(book: &OfferBook) -> Vec<(String, f64)> {
    metrics::gauge!(OFFERS_INDEXED).set(book.active_len() as f64);
    let top = budget_burn(book, TOP_BUDGETS);
    for (id, ratio) in &top {
        metrics::gauge!(OFFER_BUDGET_USED_RATIO, "offer" => id.clone()).set(*ratio);
    }
    top
}

/// The `n` budgeted offers in use with the highest used share of their
/// budget, highest first (ties by id). Offer ids are masked should one hold a
/// card number, since they become label values.
pub fn budget_burn(book: &OfferBook, n: usize) -> Vec<(String, f64)> {
    let mut all: Vec<(f64, &str)> = book
        .slots()
        .filter_map(|(_, s)| {
            let budget = s.offer.budget.filter(|b| *b > Decimal::ZERO && s.usage.used > Decimal::ZERO)?;
            let ratio = (s.usage.used / budget).to_f64().unwrap_or(0.0).clamp(0.0, 1.0);
            Some((ratio, &*s.offer.id))
        })
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    all.into_iter().take(n).map(|(r, id)| (cardlink_core::pan::mask_pans(id).into_owned(), r)).collect()
}
