//! The backtest report: what is written as JSON and drawn as HTML.
//!
//! Field names are stable. Money and points are decimal strings with
//! exactly the unit's digits (the currency's minor unit, none for points),
//! as in the contract's reward records; rates have six decimals.
//! `docs/backtest.md` explains every figure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format and version of the report.
pub const REPORT_FORMAT: &str = "cardlink-backtest/1";

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// The event file, as named on the command line.
    pub events: String,
    /// The `--from`/`--until` window.
    pub window: WindowReport,
    /// What the feed held.
    pub feed: FeedReport,
    /// UTC days of every `by_day` series, in order (`YYYY-MM-DD`).
    pub days: Vec<String>,
    /// One per offer file, in command-line order.
    pub scenarios: Vec<ScenarioReport>,
}

/// The window on `occurred_at`; `null` is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowReport {
    /// First instant included (UTC, RFC 3339).
    pub from: Option<String>,
    /// First instant excluded.
    pub until: Option<String>,
}

/// The feed, whatever the offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedReport {
    /// Records read.
    pub records: u64,
    /// Valid events outside the window: skipped.
    pub outside_window: u64,
    /// Valid, new events in the window (ACTIVATION included).
    pub processed: u64,
    /// Events already processed for the card (R2).
    pub duplicate: u64,
    /// Rejected records (R1), in or out of the window.
    pub rejected: u64,
    /// Processed events by kind (all five kinds).
    pub processed_by_kind: BTreeMap<String, u64>,
    /// Rejected records by reason (reasons that occurred).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Earliest and latest `occurred_at` of the processed events (UTC).
    pub first_event_at: Option<String>,
    /// See `first_event_at`.
    pub last_event_at: Option<String>,
    /// Cards with a processed event.
    pub cards: u64,
    /// Purchases: transactions opened (R8 authorizations, and R9 clearings
    /// without authorization).
    pub purchases: u64,
    /// Amounts of those purchases, by currency.
    pub purchase_spend: BTreeMap<String, String>,
}

/// One offer file run over the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioReport {
    /// Name given on the command line (`NAME=PATH`), else the file's stem.
    pub name: String,
    /// The offer file.
    pub source: String,
    /// Offers in the file.
    pub offer_count: u64,
    /// The scenario's offers added up.
    pub totals: ScenarioTotals,
    /// Cash offers that were eligible for the same purchase (R5).
    pub competition: CompetitionReport,
    /// Every offer, in file order.
    pub offers: Vec<OfferReport>,
}

/// A scenario's offers added up; sums by unit (currency code, or `POINTS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTotals {
    /// Live value at the end (pending + confirmed): what the offers cost.
    pub cost: BTreeMap<String, String>,
    /// PENDING values at the end.
    pub pending: BTreeMap<String, String>,
    /// CONFIRMED values at the end.
    pub confirmed: BTreeMap<String, String>,
    /// Values of the rewards when created.
    pub issued: BTreeMap<String, String>,
    /// Pending values cancelled by reversals (R10).
    pub reversed: BTreeMap<String, String>,
    /// Confirmed values taken back by refunds (R11).
    pub clawed_back: BTreeMap<String, String>,
    /// Rewards created.
    pub rewards_issued: u64,
    /// Transactions holding at least one live reward at the end.
    pub rewarded_transactions: u64,
    /// Cards that received at least one reward.
    pub distinct_cards: u64,
    /// Cards holding a live reward at the end.
    pub distinct_cards_live: u64,
    /// Amounts of the transactions holding a live reward, by currency.
    pub qualifying_spend: BTreeMap<String, String>,
    /// Offers with a live reward at the end.
    pub offers_with_rewards: u64,
    /// Offers whose budget ran out.
    pub budgets_exhausted: u64,
}

/// R5 among a scenario's cash offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompetitionReport {
    /// New purchases for which two or more cash offers were eligible with
    /// a value above zero.
    pub contested_purchases: u64,
    /// Pairs of offers that competed most often (at most `--top-pairs`).
    pub pairs: Vec<PairReport>,
    /// Purchases whose rewards were predicted from R3–R5 before the engine
    /// applied them, and how many differed from what it did (0 expected).
    pub purchases_checked: u64,
    /// See `purchases_checked`.
    pub prediction_mismatches: u64,
}

/// Two cash offers eligible for the same purchases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairReport {
    /// The offers (ids in byte order).
    pub offers: [String; 2],
    /// Purchases both were eligible for.
    pub purchases: u64,
    /// Of those, won by the first offer and by the second (the rest went
    /// to a third offer).
    pub wins: [u64; 2],
}

/// One offer's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferReport {
    /// Offer id.
    pub id: String,
    /// `CASH` or `POINTS`.
    pub kind: String,
    /// Unit of every value below: the currency code, or `POINTS`.
    pub unit: String,
    /// The offer's currency: of its purchases and its qualifying spend.
    pub currency: String,
    /// The offer's terms in words.
    pub terms: String,
    /// Rewards created (R8, R9).
    pub rewards_issued: u64,
    /// Transactions holding a live reward of the offer at the end (the
    /// ledger's `rewarded_transactions`).
    pub rewarded_transactions: u64,
    /// Rewards that ended cancelled or at zero.
    pub rewards_ended: u64,
    /// Cards that received at least one reward.
    pub distinct_cards: u64,
    /// Cards holding a live reward at the end.
    pub distinct_cards_live: u64,
    /// Merchants where a live reward was earned.
    pub merchants: u64,
    /// Values when created.
    pub issued: String,
    /// Changes by clearings to pending rewards (R9), signed.
    pub adjusted_at_clearing: String,
    /// Pending values cancelled by reversals (R10).
    pub reversed: String,
    /// Confirmed values taken back by refunds (R11).
    pub clawed_back: String,
    /// PENDING values at the end.
    pub pending: String,
    /// CONFIRMED values at the end.
    pub confirmed: String,
    /// pending + confirmed = issued + adjusted_at_clearing − reversed −
    /// clawed_back: what the offer cost.
    pub cost: String,
    /// Rewards cancelled by reversals, refund records, and pending rewards
    /// a clearing cancelled.
    pub reversals: u64,
    /// See `reversals`.
    pub refunds: u64,
    /// See `reversals`.
    pub cancelled_at_clearing: u64,
    /// Amounts of the transactions holding a live reward of the offer (the
    /// net amount once cleared, the authorized amount before), in
    /// `currency`.
    pub qualifying_spend: String,
    /// cost ÷ qualifying_spend (cash: a fraction, 0.05 is 5 %; points:
    /// points per unit of currency); `null` without qualifying spend.
    pub effective_rate: Option<String>,
    /// The offer's budget, if any.
    pub budget: Option<String>,
    /// When the live value first reached the budget (the event's own
    /// `occurred_at`), and its UTC day.
    pub budget_ran_out_at: Option<String>,
    /// See `budget_ran_out_at`.
    pub budget_ran_out_day: Option<String>,
    /// Purchases or clearings whose value the budget cut, and purchases it
    /// refused because nothing was left (R3, R4, R6).
    pub budget_cut: u64,
    /// See `budget_cut`.
    pub budget_refused: u64,
    /// Value asked beyond what the budget had left, summed.
    pub budget_value_denied: String,
    /// The first refusal.
    pub budget_first_refused_at: Option<String>,
    /// Purchases it competed for with other cash offers (R5), and won.
    pub contested: u64,
    /// See `contested`.
    pub won: u64,
    /// By the UTC day of the event that moved the money; one entry per
    /// report day.
    pub by_day: Vec<DayReport>,
    /// By the purchase's local hour: 24 entries, `"00"`…`"23"`.
    pub by_hour: Vec<BucketReport>,
    /// By the purchase's local weekday: `"MON"`…`"SUN"`.
    pub by_weekday: Vec<BucketReport>,
    /// By network: `VISA`, `MASTERCARD`, `AMEX`, `DISCOVER`.
    pub by_network: Vec<BucketReport>,
    /// The merchants with the highest cost (at most `--top-merchants`).
    pub top_merchants: Vec<MerchantReport>,
}

/// One UTC day of one offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayReport {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Rewards created that day.
    pub new_rewards: u64,
    /// Their values.
    pub issued: String,
    /// Changes by clearings that day.
    pub adjusted: String,
    /// Reversed that day.
    pub reversed: String,
    /// Clawed back that day.
    pub clawed_back: String,
    /// issued + adjusted − reversed − clawed_back.
    pub net: String,
    /// Live value at the end of the day.
    pub cumulative_cost: String,
    /// Confirmed value at the end of the day.
    pub cumulative_confirmed: String,
}

/// Live rewards at the end, filed by a fact of their purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketReport {
    /// Hour, weekday or network.
    pub key: String,
    /// Transactions holding a live reward.
    pub rewarded_transactions: u64,
    /// Their live value.
    pub cost: String,
    /// Their qualifying amounts.
    pub qualifying_spend: String,
}

/// One merchant's share of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantReport {
    /// Merchant id.
    pub mid: String,
    /// Name as the first rewarded purchase reported it.
    pub name: Option<String>,
    /// Transactions holding a live reward.
    pub rewarded_transactions: u64,
    /// Their live value.
    pub cost: String,
    /// Their qualifying amounts.
    pub qualifying_spend: String,
}

impl Report {
    /// The report as pretty JSON with a final newline.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }
}
