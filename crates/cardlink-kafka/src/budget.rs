//! Budget leases: how budgets (R6) stay exact when several instances serve
//! one offer.
//!
//! Card state is partitioned by card; a budget is global per offer. Each
//! input partition therefore spends only its *slice* of an offer's budget,
//! and the slices never add up to more than the budget. Slices change only
//! by [`BudgetRecord`]s on one log (the budget topic, keyed by offer id),
//! written by a partition's owner inside the transaction that commits the
//! partition's offsets (so a zombie owner is fenced), and read whole by
//! every instance. [`Leases`] folds that log; the fold is deterministic, so
//! every instance agrees on every slice without asking anyone.
//!
//! - A partition *claims ahead* (a claim that needs nothing) when its
//!   slack runs low, and goes on meanwhile: such a claim gets a share of
//!   the pool, or nothing, and never waits.
//! - A partition whose slice is too small for an event *claims* what it
//!   needs and holds the event (and its partition) until the claim is
//!   decided. While the pool (budget less all slices) covers it, the claim
//!   gets what it wants: a share of the pool, so that claims are rare while
//!   much is left and small when little is.
//! - A claim the pool cannot cover starts a *drain*: every other partition
//!   holding a slice releases its unspent part. When all have answered, the
//!   claim gets what it needs, or all that is left; in that case the offer
//!   enters its *tail*, and only then may an event be cut by the budget
//!   (R4): the budget is used up everywhere.
//! - In the tail no partition keeps slack: claims are decided at once for
//!   at most what they need, and partitions give back at once whatever they
//!   do not spend, including what a reversal or refund frees (R10, R11), so
//!   that freed budget returns to the pool. While the pool is empty the
//!   offer is *exhausted*: partitions cut without claiming. A larger budget
//!   ends the tail.

use std::collections::{BTreeMap, VecDeque};

use cardlink_core::book::OfferIdx;
use cardlink_core::{Budgets, CardState, OfferBook};
use cardlink_wire::v1 as pb;
use prost::Message;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

pub use pb::BudgetRecord;
pub use pb::budget_record::Op as BudgetOp;

/// One decided claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The offer.
    pub offer: Box<str>,
    /// The claiming partition.
    pub partition: i32,
    /// The claim's id.
    pub claim_id: String,
    /// Added to the partition's slice (may be zero).
    pub amount: Decimal,
    /// Decided after a drain: the pool held no more; an event may now be
    /// cut to what its partition holds.
    pub after_drain: bool,
}

/// A claim waiting for a drain.
#[derive(Debug, Clone)]
struct Waiter {
    partition: i32,
    claim_id: String,
    need: Decimal,
    drain: u64,
}

/// The leases of one offer.
#[derive(Debug, Clone, Default)]
struct OfferLeases {
    /// The budget, as the latest claim stated it.
    budget: Decimal,
    /// Each partition's slice.
    slices: BTreeMap<i32, Decimal>,
    /// Sum of the slices.
    granted: Decimal,
    /// A drain ended with less in the pool than its claim needed: from
    /// then on claims are decided at once and no partition keeps slack,
    /// until a larger budget.
    tail: bool,
    /// Generation of the latest drain.
    drain: u64,
    /// The latest drain each partition answered.
    answered: BTreeMap<i32, u64>,
    /// Claims waiting for their drain, oldest first.
    waiting: VecDeque<Waiter>,
}

impl OfferLeases {
    fn pool(&self) -> Decimal {
        (self.budget - self.granted).max(Decimal::ZERO)
    }

    fn add(&mut self, partition: i32, amount: Decimal) {
        *self.slices.entry(partition).or_default() += amount;
        self.granted += amount;
    }

    /// Decides the waiting claims whose drain every other slice-holding
    /// partition has answered; in the tail, every waiting claim.
    fn settle(&mut self, offer: &str, out: &mut Vec<Grant>) {
        while let Some(w) = self.waiting.front() {
            let answered = self.slices.iter().all(|(&q, &slice)| {
                q == w.partition || slice.is_zero() || self.answered.get(&q).is_some_and(|&a| a >= w.drain)
            });
            if !answered && !self.tail {
                return;
            }
            let w = self.waiting.pop_front().expect("front exists");
            let amount = w.need.min(self.pool());
            self.tail |= amount < w.need;
            self.add(w.partition, amount);
            out.push(Grant {
                offer: offer.into(),
                partition: w.partition,
                claim_id: w.claim_id,
                amount,
                after_drain: amount < w.need,
            });
        }
    }
}

/// The fold of the budget log: every partition's slice of every offer.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    offers: FxHashMap<Box<str>, OfferLeases>,
    /// Claims waiting for a drain, over all offers.
    waiting: usize,
}

/// Why a budget record was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a decodable [`BudgetRecord`].
    #[error("undecodable budget record: {0}")]
    Decode(String),
    /// A field is missing or out of range.
    #[error("budget record for {offer}: {detail}")]
    Invalid {
        /// The offer named, if any.
        offer: String,
        /// What is wrong.
        detail: String,
    },
}

fn amount(offer: &str, field: &str, s: &str) -> Result<Decimal, RecordError> {
    match s.parse::<Decimal>() {
        Ok(d) if d >= Decimal::ZERO => Ok(d),
        _ => Err(RecordError::Invalid { offer: offer.into(), detail: format!("{field} {s:?} is not a decimal >= 0") }),
    }
}

impl Leases {
    /// Folds one record of the log, in log order; decided claims are
    /// pushed to `out`. A bad record changes nothing (every reader ignores
    /// it alike).
    pub fn apply(&mut self, record: &BudgetRecord, out: &mut Vec<Grant>) -> Result<(), RecordError> {
        let waiting = |l: &Leases| l.offers.get(record.offer_id.as_str()).map_or(0, |o| o.waiting.len());
        let before = waiting(self);
        let result = self.fold(record, out);
        self.waiting = self.waiting + waiting(self) - before;
        result
    }

    fn fold(&mut self, record: &BudgetRecord, out: &mut Vec<Grant>) -> Result<(), RecordError> {
        let offer = record.offer_id.as_str();
        if offer.is_empty() {
            return Err(RecordError::Invalid { offer: String::new(), detail: "no offer_id".into() });
        }
        let p = record.partition;
        match &record.op {
            Some(pb::budget_record::Op::Claim(c)) => {
                let need = amount(offer, "need", &c.need)?;
                let want = amount(offer, "want", &c.want)?.max(need);
                let budget = amount(offer, "budget", &c.budget)?;
                let o = self.offers.entry(offer.into()).or_default();
                if budget > o.budget {
                    o.tail = false;
                }
                o.budget = budget;
                let grant = |o: &mut OfferLeases, amount: Decimal, after_drain: bool| {
                    o.add(p, amount);
                    let claim_id = c.claim_id.clone();
                    Grant { offer: offer.into(), partition: p, claim_id, amount, after_drain }
                };
                if need.is_zero() {
                    // Ahead of need: a share while the pool is free for
                    // the taking, else nothing; it never waits.
                    let amount = if o.waiting.is_empty() && !o.tail { want.min(o.pool()) } else { Decimal::ZERO };
                    out.push(grant(o, amount, false));
                } else if o.tail {
                    // No partition keeps slack in the tail: the pool is all
                    // there is, and no drain could find more.
                    let amount = need.min(o.pool());
                    out.push(grant(o, amount, amount < need));
                } else if o.waiting.is_empty() && o.pool() >= need {
                    let amount = want.min(o.pool());
                    out.push(grant(o, amount, false));
                } else {
                    o.drain += 1;
                    let drain = o.drain;
                    o.waiting.push_back(Waiter { partition: p, claim_id: c.claim_id.clone(), need, drain });
                    o.settle(offer, out);
                }
            }
            Some(pb::budget_record::Op::Release(r)) => {
                let released = amount(offer, "amount", &r.amount)?;
                let o = self.offers.entry(offer.into()).or_default();
                let slice = o.slices.entry(p).or_default();
                // Never below zero, whatever a record says.
                let released = released.min(*slice);
                *slice -= released;
                o.granted -= released;
                let a = o.answered.entry(p).or_default();
                *a = (*a).max(r.drain);
                o.settle(offer, out);
            }
            None => {
                return Err(RecordError::Invalid { offer: offer.into(), detail: "neither claim nor release".into() });
            }
        }
        Ok(())
    }

    /// Decodes and folds one record of the log.
    pub fn apply_bytes(&mut self, bytes: &[u8], out: &mut Vec<Grant>) -> Result<(), RecordError> {
        let record = BudgetRecord::decode(bytes).map_err(|e| RecordError::Decode(e.to_string()))?;
        self.apply(&record, out)
    }

    /// The slice of `offer`'s budget held by `partition`.
    pub fn slice(&self, offer: &str, partition: i32) -> Decimal {
        self.offers.get(offer).and_then(|o| o.slices.get(&partition)).copied().unwrap_or_default()
    }

    /// Sum of all slices of `offer`: never above the budget its claims
    /// stated.
    pub fn granted(&self, offer: &str) -> Decimal {
        self.offers.get(offer).map(|o| o.granted).unwrap_or_default()
    }

    /// Whether the offer is in its tail: a drain found less than its claim
    /// needed, and the budget was not raised since.
    pub fn tail(&self, offer: &str) -> bool {
        self.offers.get(offer).is_some_and(|o| o.tail)
    }

    /// Whether the offer's budget is used up: in the tail, with nothing in
    /// the pool.
    pub fn exhausted(&self, offer: &str) -> bool {
        self.offers.get(offer).is_some_and(|o| o.tail && o.pool().is_zero())
    }

    /// What no partition holds of the offer's budget.
    pub fn pool(&self, offer: &str) -> Option<Decimal> {
        self.offers.get(offer).map(OfferLeases::pool)
    }

    /// Whether any claim waits for a drain.
    pub fn any_waiting(&self) -> bool {
        self.waiting > 0
    }

    /// The drains `partition` owes an answer to: per offer with waiting
    /// claims where it holds a slice and has not answered the newest drain,
    /// that drain's generation.
    pub fn owed(&self, partition: i32) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.offers.iter().filter_map(move |(id, o)| {
            let newest = o.waiting.iter().filter(|w| w.partition != partition).map(|w| w.drain).max()?;
            let holds = o.slices.get(&partition).is_some_and(|s| !s.is_zero());
            let answered = o.answered.get(&partition).copied().unwrap_or(0);
            (holds && answered < newest).then_some((&**id, newest))
        })
    }
}

/// A claim record.
pub fn claim_record(
    offer: &str,
    partition: i32,
    claim_id: &str,
    need: Decimal,
    want: Decimal,
    budget: Decimal,
) -> Vec<u8> {
    BudgetRecord {
        offer_id: offer.into(),
        partition,
        op: Some(pb::budget_record::Op::Claim(pb::BudgetClaim {
            claim_id: claim_id.into(),
            need: need.normalize().to_string(),
            want: want.normalize().to_string(),
            budget: budget.normalize().to_string(),
        })),
    }
    .encode_to_vec()
}

/// A release record.
pub fn release_record(offer: &str, partition: i32, amount: Decimal, drain: u64) -> Vec<u8> {
    BudgetRecord {
        offer_id: offer.into(),
        partition,
        op: Some(pb::budget_record::Op::Release(pb::BudgetRelease { amount: amount.normalize().to_string(), drain })),
    }
    .encode_to_vec()
}

/// A release written by this instance and not yet read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Releasing {
    /// Amount given back.
    pub amount: Decimal,
    /// The drain it answers (0: none, freed value given back).
    pub drain: u64,
    /// The transaction that wrote it, until that commits.
    pub txn: Option<u64>,
}

/// One partition's side of the leases: what its rewards spend of each
/// budgeted offer, what it released but has not read back from the log
/// yet, and the offers whose shortfall is final for the event it holds.
#[derive(Debug, Clone, Default)]
pub struct PartBudget {
    /// Live value of this partition's rewards per budgeted offer.
    pub used: FxHashMap<OfferIdx, Decimal>,
    /// Releases not yet read back, oldest first, per offer id.
    pub releasing: FxHashMap<Box<str>, VecDeque<Releasing>>,
    /// Offers whose claim was decided after a drain for the held event:
    /// a shortfall on them is final.
    pub final_for: Vec<OfferIdx>,
    /// Offers in their tail whose slack this partition may hold: to give
    /// back at once (what a reversal or refund freed, or what an event did
    /// not spend of a grant).
    pub freed: Vec<OfferIdx>,
    /// Offers whose live value the event being applied changed.
    pub touched: Vec<OfferIdx>,
    /// Claims ahead of need written and not yet read back: offer, claim id.
    pub ahead: Vec<(OfferIdx, Box<str>)>,
}

impl PartBudget {
    /// Counts a restored card's live rewards of budgeted offers.
    pub fn add_card(&mut self, book: &OfferBook, card: &CardState) {
        // Rewards of forgotten transactions (state retention) count too.
        for (offer, value, _) in card.transactions.live_values() {
            if book.slot(offer).offer.budget.is_some() {
                *self.used.entry(offer).or_default() += value;
            }
        }
    }

    /// What is released but not yet read back.
    pub fn releasing(&self, offer: &str) -> Decimal {
        self.releasing.get(offer).map_or(Decimal::ZERO, |q| q.iter().map(|r| r.amount).sum())
    }

    /// Whether a release answering `drain` (or a later one) is on its way.
    pub fn answering(&self, offer: &str, drain: u64) -> bool {
        self.releasing.get(offer).is_some_and(|q| q.iter().any(|r| r.drain >= drain))
    }

    /// The unspent part of the partition's slice of `offer` (`idx` when the
    /// book knows it).
    pub fn slack(&self, leases: &Leases, offer: &str, idx: Option<OfferIdx>, partition: i32) -> Decimal {
        leases.slice(offer, partition)
            - self.releasing(offer)
            - idx.and_then(|i| self.used.get(&i)).copied().unwrap_or_default()
    }

    /// Notes that the release of `offer` first in line was read back.
    pub fn read_back(&mut self, offer: &str) {
        if let Some(q) = self.releasing.get_mut(offer) {
            q.pop_front();
            if q.is_empty() {
                self.releasing.remove(offer);
            }
        }
    }

    /// Keeps only the releases that `keep` accepts.
    pub fn retain_releasing(&mut self, mut keep: impl FnMut(&Releasing) -> bool) {
        self.releasing.retain(|_, q| {
            q.retain(|r| keep(r));
            !q.is_empty()
        });
    }
}

/// A shortfall the held event needs leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The offer.
    pub idx: OfferIdx,
    /// How much more than the slice's slack.
    pub amount: Decimal,
}

/// The [`Budgets`] of one partition during one event.
pub struct PartitionBudgets<'a> {
    /// The log's fold.
    pub leases: &'a Leases,
    /// The partition's side.
    pub part: &'a mut PartBudget,
    /// The partition.
    pub partition: i32,
    /// Shortfalls that hold the event.
    pub needs: &'a mut Vec<Need>,
    /// The largest single reward value spent per offer, over the
    /// instance's partitions.
    pub largest: &'a mut FxHashMap<OfferIdx, Decimal>,
}

/// The size of reward that claims of `offer` make room for: the largest
/// spent yet (`largest`), else what the offer tells (its fixed value or its
/// cap), so that a partition's first claim is not too small for one reward.
pub fn reward_hint(offer: &cardlink_core::Offer, largest: Option<Decimal>) -> Decimal {
    let told = match offer.reward {
        cardlink_core::offer::RewardRule::Fixed(v) => Some(v),
        _ => offer.max_reward,
    };
    largest.unwrap_or_default().max(told.unwrap_or_default())
}

impl Budgets for PartitionBudgets<'_> {
    fn left(&self, book: &OfferBook, idx: OfferIdx, own: Decimal) -> Decimal {
        self.part.slack(self.leases, &book.slot(idx).offer.id, Some(idx), self.partition) + own
    }

    fn short(&mut self, book: &OfferBook, idx: OfferIdx, wanted: Decimal, left: Decimal) -> bool {
        if self.part.final_for.contains(&idx) || self.leases.exhausted(&book.slot(idx).offer.id) {
            return true;
        }
        let amount = wanted - left.max(Decimal::ZERO);
        match self.needs.iter_mut().find(|n| n.idx == idx) {
            Some(n) => n.amount = n.amount.max(amount),
            None => self.needs.push(Need { idx, amount }),
        }
        false
    }

    fn spent(&mut self, _: &OfferBook, idx: OfferIdx, delta: Decimal) {
        *self.part.used.entry(idx).or_default() += delta;
        if delta > Decimal::ZERO {
            let largest = self.largest.entry(idx).or_default();
            *largest = (*largest).max(delta);
        }
        if !self.part.touched.contains(&idx) {
            self.part.touched.push(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A step of the log: `"claim P id need want budget"` or
    /// `"release P amount drain"`. Expected: the grants, as
    /// `"P id amount [drained]"`, then the slices as `"P=amount"`.
    fn check(steps: &[&str], grants: &[&str], slices: &[&str]) {
        let mut leases = Leases::default();
        let mut out = Vec::new();
        for step in steps {
            let f: Vec<&str> = step.split(' ').collect();
            let p: i32 = f[1].parse().unwrap();
            let bytes = match f[0] {
                "claim" => claim_record("o", p, f[2], d(f[3]), d(f[4]), d(f[5])),
                "release" => release_record("o", p, d(f[2]), f[3].parse().unwrap()),
                _ => unreachable!("test step {step}"),
            };
            leases.apply_bytes(&bytes, &mut out).unwrap();
            assert!(leases.granted("o") <= d("100"), "never more than the budget is leased");
        }
        let got: Vec<String> = out
            .iter()
            .map(|g| {
                format!("{} {} {}{}", g.partition, g.claim_id, g.amount, if g.after_drain { " drained" } else { "" })
            })
            .collect();
        assert_eq!(got, grants);
        let got: Vec<String> = (0..4)
            .filter(|&p| !leases.slice("o", p).is_zero())
            .map(|p| format!("{p}={}", leases.slice("o", p)))
            .collect();
        assert_eq!(got, slices);
    }

    #[test]
    fn claims_get_what_they_want_while_the_pool_lasts() {
        check(
            &["claim 0 a 5 25 100", "claim 1 b 5 25 100", "claim 2 c 10 25 100"],
            &["0 a 25", "1 b 25", "2 c 25"],
            &["0=25", "1=25", "2=25"],
        );
    }

    #[test]
    fn the_last_of_the_pool_goes_to_a_claim_it_covers() {
        check(&["claim 0 a 30 80 100", "claim 1 b 10 50 100"], &["0 a 80", "1 b 20"], &["0=80", "1=20"]);
    }

    #[test]
    fn a_claim_the_pool_cannot_cover_waits_for_a_drain() {
        check(
            &[
                "claim 0 a 10 60 100",
                "claim 1 b 10 40 100",
                // The pool is empty: partition 2 waits for 0 and 1.
                "claim 2 c 10 10 100",
                "release 0 45 1",
                "release 1 0 1",
            ],
            &["0 a 60", "1 b 40", "2 c 10"],
            &["0=15", "1=40", "2=10"],
        );
    }

    #[test]
    fn a_drain_refills_the_pool_for_later_claims() {
        check(
            &["claim 0 a 10 100 100", "claim 1 b 10 10 100", "release 0 70 1", "claim 3 d 5 50 100"],
            &["0 a 100", "1 b 10", "3 d 50"],
            &["0=30", "1=10", "3=50"],
        );
    }

    /// R6 and R11: in the tail, budget that a refund frees returns to the
    /// pool and the next claim takes it without a drain; R4: a claim the
    /// pool cannot cover is cut to what is left.
    #[test]
    fn in_the_tail_claims_are_decided_at_once_from_what_is_released() {
        check(
            &[
                "claim 0 a 100 100 100",
                "claim 1 b 5 5 100",
                "release 0 0 1",
                // The tail: decided at once, no drain.
                "claim 1 c 5 5 100",
                // A refund freed 3 on partition 0: the pool has it again,
                // and the next claim takes it without a drain.
                "release 0 3 0",
                "claim 1 d 5 5 100",
                "release 0 2 0",
                "claim 2 e 1 9 100",
            ],
            &["0 a 100", "1 b 0 drained", "1 c 0 drained", "1 d 3 drained", "2 e 1"],
            &["0=95", "1=3", "2=1"],
        );
    }

    /// R6: claims ahead never take more than the pool holds.
    #[test]
    fn claims_ahead_take_a_share_and_never_wait() {
        check(
            &[
                "claim 0 a 0 30 100",
                "claim 1 b 0 80 100",
                // Nothing left: a claim ahead gets nothing and starts no drain.
                "claim 2 c 0 10 100",
                "claim 3 d 5 5 100",
                // A drain is on: a claim ahead gets nothing.
                "release 1 40 0",
                "claim 2 e 0 10 100",
                "release 0 0 1",
                "release 1 0 1",
                "claim 2 f 0 10 100",
            ],
            &["0 a 30", "1 b 70", "2 c 0", "2 e 0", "3 d 5", "2 f 10"],
            &["0=30", "1=30", "2=10", "3=5"],
        );
    }

    #[test]
    fn a_larger_budget_ends_the_tail() {
        check(
            &["claim 0 a 50 50 50", "claim 1 b 5 5 50", "release 0 0 1", "claim 1 c 0 5 50", "claim 1 d 0 10 100"],
            &["0 a 50", "1 b 0 drained", "1 c 0", "1 d 10"],
            &["0=50", "1=10"],
        );
    }

    #[test]
    fn the_tail_decides_every_waiting_claim() {
        check(
            &["claim 0 a 90 90 100", "claim 1 b 20 20 100", "claim 2 c 5 5 100", "release 0 0 2"],
            &["0 a 90", "1 b 10 drained", "2 c 0 drained"],
            &["0=90", "1=10"],
        );
    }

    #[test]
    fn a_used_up_budget_grants_what_is_left_then_nothing() {
        check(
            &["claim 0 a 90 90 100", "claim 1 b 20 20 100", "release 0 0 1", "claim 1 e 5 5 100", "release 0 0 2"],
            &["0 a 90", "1 b 10 drained", "1 e 0 drained"],
            &["0=90", "1=10"],
        );
    }

    #[test]
    fn a_release_never_takes_a_slice_below_zero() {
        check(&["claim 0 a 10 10 100", "release 0 50 0"], &["0 a 10"], &[]);
    }

    #[test]
    fn owed_names_the_partitions_a_drain_waits_for() {
        let mut leases = Leases::default();
        let mut out = Vec::new();
        for bytes in [
            claim_record("o", 0, "a", d("50"), d("50"), d("60")),
            claim_record("o", 1, "b", d("10"), d("10"), d("60")),
            claim_record("o", 2, "c", d("5"), d("5"), d("60")),
        ] {
            leases.apply_bytes(&bytes, &mut out).unwrap();
        }
        let owed = |p| leases.owed(p).map(|(o, g)| format!("{o}@{g}")).collect::<Vec<_>>();
        assert_eq!(owed(0), ["o@1"]);
        assert_eq!(owed(1), ["o@1"]);
        assert!(owed(2).is_empty(), "the claimant itself owes nothing");
        assert!(owed(3).is_empty(), "a partition without a slice owes nothing");
    }

    #[test]
    fn bad_records_are_refused_and_change_nothing() {
        let mut leases = Leases::default();
        let mut out = Vec::new();
        assert!(leases.apply_bytes(b"\xff\xff", &mut out).is_err());
        let bad = claim_record("o", 0, "a", d("-1"), d("1"), d("10"));
        assert!(matches!(leases.apply_bytes(&bad, &mut out), Err(RecordError::Invalid { .. })));
        assert!(out.is_empty() && leases.granted("o").is_zero());
    }
}
