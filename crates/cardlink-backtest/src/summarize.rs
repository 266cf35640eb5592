//! Builds the report at the end of the run: flows from the reward records,
//! final values from each engine's state, filed by the facts of the
//! purchases that earned them.

use std::collections::BTreeMap;

use cardlink_core::money::format_fixed;
use cardlink_core::offer::RewardRule;
use cardlink_core::{Currency, EventKind, Network, Offer, OfferIdx, RejectReason, RewardStatus};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::flows::DayFlow;
use crate::report::*;
use crate::run::{Run, Shared};
use crate::{FeedCounts, Options, Window};

/// Longest span of days listed one by one; a longer feed (a stray event
/// decades away) lists only the days on which something happened.
const MAX_DENSE_DAYS: i64 = 1_000;

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Live rewards filed under one hour, weekday, network or merchant.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    n: u64,
    cost: Decimal,
    spend: Decimal,
}

impl Bucket {
    fn add(&mut self, value: Decimal, spend: Decimal) {
        self.n += 1;
        self.cost += value;
        self.spend += spend;
    }

    fn report(&self, key: String, digits: u32, spend_digits: u32) -> BucketReport {
        BucketReport {
            key,
            rewarded_transactions: self.n,
            cost: format_fixed(self.cost, digits),
            qualifying_spend: format_fixed(self.spend, spend_digits),
        }
    }
}

/// One offer's final state, gathered from the cards.
#[derive(Debug, Clone, Default)]
struct Fin {
    rewards: u64,
    live: u64,
    pending: Decimal,
    confirmed: Decimal,
    spend: Decimal,
    cards: u64,
    cards_live: u64,
    /// The last card counted, so that each card counts once.
    stamp: u32,
    stamp_live: u32,
    hours: [Bucket; 24],
    weekdays: [Bucket; 7],
    networks: [Bucket; 4],
    merchants: FxHashMap<u32, Bucket>,
}

/// Scenario-wide figures gathered from the cards.
#[derive(Debug, Default)]
struct ScenarioFin {
    tx_live: u64,
    cards: u64,
    cards_live: u64,
    spend: BTreeMap<&'static str, Decimal>,
}

fn day_string(day: i64) -> String {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    epoch.checked_add_signed(chrono::Duration::days(day)).map_or_else(|| format!("day {day}"), |d| d.to_string())
}

fn utc_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn unit_digits(unit: &str) -> u32 {
    Currency::from_code(unit).map_or(0, Currency::exponent)
}

fn sums(m: &BTreeMap<String, Decimal>) -> BTreeMap<String, String> {
    m.iter().map(|(u, v)| (u.clone(), format_fixed(*v, unit_digits(u)))).collect()
}

/// The report of a finished run.
pub(crate) fn report(options: &Options, feed: &FeedCounts, runs: &mut [Run], shared: &mut Shared) -> Report {
    let days = report_days(feed, runs);
    let scenarios = runs.iter().map(|run| scenario(options, &days, run, shared)).collect();
    let cards = runs.first().map_or(0, |r| r.engine.cards.len() as u64);
    Report {
        format: REPORT_FORMAT.to_string(),
        events: options.events.clone(),
        window: WindowReport { from: Window::format(options.window.from), until: Window::format(options.window.until) },
        feed: FeedReport {
            records: feed.records,
            outside_window: feed.outside_window,
            processed: feed.processed_by_kind.iter().sum(),
            duplicate: feed.duplicate,
            rejected: feed.rejected_by_reason.iter().sum(),
            processed_by_kind: EventKind::ALL
                .iter()
                .zip(feed.processed_by_kind)
                .map(|(k, n)| (k.as_str().to_string(), n))
                .collect(),
            rejected_by_reason: RejectReason::ALL
                .iter()
                .zip(feed.rejected_by_reason)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.as_str().to_string(), n))
                .collect(),
            first_event_at: feed.first.map(utc_string),
            last_event_at: feed.last.map(utc_string),
            cards,
            purchases: feed.purchases,
            purchase_spend: feed.spend.iter().map(|(c, v)| (c.to_string(), format_fixed(*v, unit_digits(c)))).collect(),
        },
        days: days.iter().map(|d| day_string(*d)).collect(),
        scenarios,
    }
}

/// The days every `by_day` series lists.
fn report_days(feed: &FeedCounts, runs: &[Run]) -> Vec<i64> {
    let (Some(first), Some(last)) = (feed.first, feed.last) else { return Vec::new() };
    let (a, b) = (first.timestamp().div_euclid(86_400), last.timestamp().div_euclid(86_400));
    if b - a < MAX_DENSE_DAYS {
        return (a..=b).collect();
    }
    let mut days: Vec<i64> = runs.iter().flat_map(|r| r.flows.iter().flat_map(|f| f.days.active())).collect();
    days.sort_unstable();
    days.dedup();
    days
}

fn scenario(options: &Options, days: &[i64], run: &Run, shared: &mut Shared) -> ScenarioReport {
    let book = &run.engine.book;
    let n = run.flows.len();
    let mut fin = vec![Fin::default(); n];
    let mut sfin = ScenarioFin::default();
    for (card_no, (token, card)) in run.engine.cards.iter().enumerate() {
        let stamp = card_no as u32 + 1;
        let (mut any, mut any_live) = (false, false);
        for (tx_id, tx) in &card.transactions {
            if tx.rewards.is_empty() {
                continue;
            }
            any = true;
            let mut attr = None;
            let mut tx_live = false;
            for r in &tx.rewards {
                let f = &mut fin[r.offer.0 as usize];
                f.rewards += 1;
                if f.stamp != stamp {
                    f.stamp = stamp;
                    f.cards += 1;
                }
                if !r.is_live() {
                    continue;
                }
                let a = *attr.get_or_insert_with(|| {
                    shared.attr(token, tx_id).expect("every rewarded purchase was remembered when rewarded")
                });
                // R11: once cleared the reward is valued on the net amount;
                // before, on the authorized amount.
                let base = if tx.cleared.is_some() { tx.net } else { a.amount };
                tx_live = true;
                f.live += 1;
                match r.status {
                    RewardStatus::Pending => f.pending += r.value,
                    RewardStatus::Confirmed => f.confirmed += r.value,
                    RewardStatus::Cancelled => unreachable!("a live reward is not cancelled"),
                }
                f.spend += base;
                if f.stamp_live != stamp {
                    f.stamp_live = stamp;
                    f.cards_live += 1;
                }
                f.hours[a.hour as usize].add(r.value, base);
                f.weekdays[a.weekday as usize].add(r.value, base);
                f.networks[a.network as usize].add(r.value, base);
                f.merchants.entry(a.merchant).or_default().add(r.value, base);
            }
            if tx_live {
                any_live = true;
                sfin.tx_live += 1;
                let a = attr.expect("looked up for the live reward");
                let (amount, currency) = match (tx.cleared, tx.auth_currency) {
                    (Some(m), _) => (tx.net, m.currency),
                    (None, Some(c)) => (a.amount, c),
                    (None, None) => unreachable!("a transaction is authorized or cleared"),
                };
                *sfin.spend.entry(currency.code()).or_default() += amount;
            }
        }
        sfin.cards += u64::from(any);
        sfin.cards_live += u64::from(any_live);
    }

    let mut offers = Vec::with_capacity(n);
    let mut totals: BTreeMap<&str, BTreeMap<String, Decimal>> = BTreeMap::new();
    let (mut rewards_issued, mut offers_with_rewards, mut budgets_exhausted) = (0, 0, 0);
    for (i, (idx, slot)) in book.slots().enumerate() {
        debug_assert_eq!(idx, OfferIdx(i as u32));
        let offer = &slot.offer;
        let f = &fin[i];
        let flow = &run.flows[i];
        let short = &run.short[i];
        let t = flow.days.total();
        let digits = offer.value_digits();
        let spend_digits = offer.currency.exponent();
        let unit = if offer.reward.is_cash() { offer.currency.code() } else { "POINTS" };
        let cost = f.pending + f.confirmed;
        // The flows and the final state are two views of one history.
        debug_assert_eq!(t.net(), cost, "offer {}", offer.id);
        debug_assert_eq!(t.new_rewards, f.rewards, "offer {}", offer.id);
        debug_assert_eq!(slot.usage.used, cost, "offer {}", offer.id);
        for (name, v) in [
            ("cost", cost),
            ("pending", f.pending),
            ("confirmed", f.confirmed),
            ("issued", t.issued),
            ("reversed", t.reversed),
            ("clawed_back", t.clawed_back),
        ] {
            *totals.entry(name).or_default().entry(unit.to_string()).or_default() += v;
        }
        rewards_issued += f.rewards;
        offers_with_rewards += u64::from(f.live > 0);
        budgets_exhausted += u64::from(flow.ran_out.is_some());
        let fmt = |v: Decimal| format_fixed(v, digits);
        let mut cumulative = Decimal::ZERO;
        let mut cumulative_confirmed = Decimal::ZERO;
        let by_day = days
            .iter()
            .map(|&day| {
                let zero = DayFlow::default();
                let d = flow.days.get(day).unwrap_or(&zero);
                cumulative += d.net();
                cumulative_confirmed += d.confirmed_in - d.clawed_back;
                DayReport {
                    day: day_string(day),
                    new_rewards: d.new_rewards,
                    issued: fmt(d.issued),
                    adjusted: fmt(d.adjusted),
                    reversed: fmt(d.reversed),
                    clawed_back: fmt(d.clawed_back),
                    net: fmt(d.net()),
                    cumulative_cost: fmt(cumulative),
                    cumulative_confirmed: fmt(cumulative_confirmed),
                }
            })
            .collect();
        let mut merchants: Vec<(&u32, &Bucket)> = f.merchants.iter().collect();
        merchants.sort_by(|(a, x), (b, y)| {
            y.cost
                .cmp(&x.cost)
                .then(y.n.cmp(&x.n))
                .then_with(|| shared.merchants[**a as usize].mid.cmp(&shared.merchants[**b as usize].mid))
        });
        let top_merchants = merchants
            .iter()
            .take(options.top_merchants)
            .map(|(m, b)| {
                let info = &shared.merchants[**m as usize];
                MerchantReport {
                    mid: info.mid.to_string(),
                    name: info.name.as_deref().map(str::to_string),
                    rewarded_transactions: b.n,
                    cost: fmt(b.cost),
                    qualifying_spend: format_fixed(b.spend, spend_digits),
                }
            })
            .collect();
        offers.push(OfferReport {
            id: offer.id.to_string(),
            kind: if offer.reward.is_cash() { "CASH" } else { "POINTS" }.to_string(),
            unit: unit.to_string(),
            currency: offer.currency.code().to_string(),
            terms: terms(offer),
            rewards_issued: f.rewards,
            rewarded_transactions: f.live,
            rewards_ended: f.rewards - f.live,
            distinct_cards: f.cards,
            distinct_cards_live: f.cards_live,
            merchants: f.merchants.len() as u64,
            issued: fmt(t.issued),
            adjusted_at_clearing: fmt(t.adjusted),
            reversed: fmt(t.reversed),
            clawed_back: fmt(t.clawed_back),
            pending: fmt(f.pending),
            confirmed: fmt(f.confirmed),
            cost: fmt(cost),
            reversals: flow.reversals,
            refunds: flow.refunds,
            cancelled_at_clearing: flow.cancelled_at_clearing,
            qualifying_spend: format_fixed(f.spend, spend_digits),
            effective_rate: (!f.spend.is_zero()).then(|| format!("{:.6}", (cost / f.spend).round_dp(6))),
            budget: offer.budget.map(fmt),
            budget_ran_out_at: flow.ran_out.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            budget_ran_out_day: flow.ran_out.map(|t| day_string(t.timestamp().div_euclid(86_400))),
            budget_cut: short.cut,
            budget_refused: short.refused,
            budget_value_denied: fmt(short.denied),
            budget_first_refused_at: short.first_refused.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            contested: run.competition.contested[i],
            won: run.competition.won[i],
            by_day,
            by_hour: f
                .hours
                .iter()
                .enumerate()
                .map(|(h, b)| b.report(format!("{h:02}"), digits, spend_digits))
                .collect(),
            by_weekday: f
                .weekdays
                .iter()
                .zip(WEEKDAYS)
                .map(|(b, d)| b.report(d.to_string(), digits, spend_digits))
                .collect(),
            by_network: f
                .networks
                .iter()
                .zip(Network::ALL)
                .map(|(b, n)| b.report(n.as_str().to_string(), digits, spend_digits))
                .collect(),
            top_merchants,
        });
    }

    let c = &run.competition;
    let id = |o: u32| book.slot(OfferIdx(o)).offer.id.to_string();
    let mut pairs: Vec<PairReport> = c
        .pairs
        .iter()
        .map(|(&(a, b), &[purchases, wa, wb])| {
            let (ia, ib) = (id(a), id(b));
            if ia <= ib {
                PairReport { offers: [ia, ib], purchases, wins: [wa, wb] }
            } else {
                PairReport { offers: [ib, ia], purchases, wins: [wb, wa] }
            }
        })
        .collect();
    pairs.sort_by(|a, b| b.purchases.cmp(&a.purchases).then_with(|| a.offers.cmp(&b.offers)));
    pairs.truncate(options.top_pairs);

    let total = |name: &str| totals.get(name).map(sums).unwrap_or_default();
    ScenarioReport {
        name: run.name.clone(),
        source: run.source.clone(),
        offer_count: n as u64,
        totals: ScenarioTotals {
            cost: total("cost"),
            pending: total("pending"),
            confirmed: total("confirmed"),
            issued: total("issued"),
            reversed: total("reversed"),
            clawed_back: total("clawed_back"),
            rewards_issued,
            rewarded_transactions: sfin.tx_live,
            distinct_cards: sfin.cards,
            distinct_cards_live: sfin.cards_live,
            qualifying_spend: sfin
                .spend
                .iter()
                .map(|(c, v)| (c.to_string(), format_fixed(*v, unit_digits(c))))
                .collect(),
            offers_with_rewards,
            budgets_exhausted,
        },
        competition: CompetitionReport {
            contested_purchases: c.contested_purchases,
            pairs,
            purchases_checked: c.checked,
            prediction_mismatches: c.mismatches,
        },
        offers,
    }
}

/// An offer's terms in words, for people reading the report.
pub(crate) fn terms(o: &Offer) -> String {
    let cur = o.currency.code();
    let digits = o.currency.exponent();
    let money = |v: Decimal| format!("{} {cur}", format_fixed(v, digits));
    let mut parts = vec![match o.reward {
        RewardRule::Percent(p) => format!("{}% back", p.normalize()),
        RewardRule::Fixed(f) => format!("{} back", money(f)),
        RewardRule::PointsPerUnit(k) => format!("{} points per {cur}", k.normalize()),
    }];
    if let Some(m) = o.max_reward {
        parts.push(if o.reward.is_cash() {
            format!("up to {}", money(m))
        } else {
            format!("up to {} points", m.normalize())
        });
    }
    if !o.min_spend.is_zero() {
        parts.push(format!("on {} or more", money(o.min_spend)));
    }
    match o.mids.len() {
        0 => {}
        1 => parts.push(format!("at merchant {}", o.mids[0])),
        n => parts.push(format!("at {n} merchants")),
    }
    if !o.mccs.is_empty() {
        let list: Vec<String> = o.mccs.iter().map(|m| format!("{m:04}")).collect();
        parts.push(format!("MCC {}", list.join(", ")));
    }
    if !o.countries.is_empty() {
        let list: Vec<String> = o.countries.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        parts.push(format!("in {}", list.join(", ")));
    }
    if o.networks != 0 {
        let list: Vec<&str> = Network::ALL.iter().filter(|n| o.networks & n.bit() != 0).map(|n| n.as_str()).collect();
        parts.push(format!("{} cards", list.join("/")));
    }
    if o.days != 0 {
        let list: Vec<&str> = (0..7).filter(|d| o.days & (1 << d) != 0).map(|d| WEEKDAYS[d]).collect();
        parts.push(list.join(" "));
    }
    if let Some(h) = o.hours {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s / 60 % 60);
        parts.push(format!("{}–{}", hm(h.from), hm(h.until)));
    }
    match (o.valid_from, o.valid_until) {
        (Some(f), Some(u)) => parts.push(format!("from {} until {}", utc_string(f), utc_string(u))),
        (Some(f), None) => parts.push(format!("from {}", utc_string(f))),
        (None, Some(u)) => parts.push(format!("until {}", utc_string(u))),
        (None, None) => {}
    }
    if o.activation_required {
        parts.push("activation required".into());
    }
    if let Some(m) = o.max_per_card {
        parts.push(format!("{m} per card"));
    }
    if let Some(b) = o.budget {
        parts.push(if o.reward.is_cash() {
            format!("budget {}", money(b))
        } else {
            format!("budget {} points", b.normalize())
        });
    }
    parts.join(", ")
}
