//! What the reward records of a run add up to, as they happen: per offer
//! and per UTC day, split by what moved the money (R8–R11).

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;

/// One UTC day of one offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DayFlow {
    /// Rewards created (R8 pending, or R9 confirmed without authorization).
    pub new_rewards: u64,
    /// Values of the rewards created.
    pub issued: Decimal,
    /// Changes made by clearings to pending rewards (R9): re-valuation on
    /// the cleared amount, and cancellation (negative).
    pub adjusted: Decimal,
    /// Pending values cancelled by reversals (R10), as a positive amount.
    pub reversed: Decimal,
    /// Confirmed values taken back by refunds (R11), as a positive amount.
    pub clawed_back: Decimal,
    /// Values that became confirmed: rewards confirmed at once, and pending
    /// rewards at their cleared value.
    pub confirmed_in: Decimal,
}

impl DayFlow {
    /// Change of the offer's live value over the day.
    pub fn net(&self) -> Decimal {
        self.issued + self.adjusted - self.reversed - self.clawed_back
    }

    fn add(&mut self, other: &DayFlow) {
        self.new_rewards += other.new_rewards;
        self.issued += other.issued;
        self.adjusted += other.adjusted;
        self.reversed += other.reversed;
        self.clawed_back += other.clawed_back;
        self.confirmed_in += other.confirmed_in;
    }
}

/// Days numbered from 1970-01-01 (UTC), grown to either side as events
/// arrive (the feed is nearly in time order, so this rarely moves).
#[derive(Debug, Clone, Default)]
pub(crate) struct Days {
    start: i64,
    days: Vec<DayFlow>,
}

impl Days {
    /// The flow of `day`, created empty.
    pub fn at(&mut self, day: i64) -> &mut DayFlow {
        if self.days.is_empty() {
            self.start = day;
        }
        if day < self.start {
            let grow = usize::try_from(self.start - day).expect("positive");
            self.days.splice(0..0, std::iter::repeat_n(DayFlow::default(), grow));
            self.start = day;
        }
        let i = usize::try_from(day - self.start).expect("not before start");
        if i >= self.days.len() {
            self.days.resize(i + 1, DayFlow::default());
        }
        &mut self.days[i]
    }

    /// The flow of `day`, if anything happened then.
    pub fn get(&self, day: i64) -> Option<&DayFlow> {
        let i = usize::try_from(day.checked_sub(self.start)?).ok()?;
        self.days.get(i).filter(|d| **d != DayFlow::default())
    }

    /// Days on which anything happened.
    pub fn active(&self) -> impl Iterator<Item = i64> + '_ {
        self.days.iter().enumerate().filter(|(_, d)| **d != DayFlow::default()).map(|(i, _)| self.start + i as i64)
    }

    /// All days added up.
    pub fn total(&self) -> DayFlow {
        let mut t = DayFlow::default();
        self.days.iter().for_each(|d| t.add(d));
        t
    }
}

/// Running figures of one offer in one scenario.
#[derive(Debug, Clone, Default)]
pub(crate) struct OfferFlow {
    /// By UTC day of the event that moved the money.
    pub days: Days,
    /// Pending rewards cancelled by a reversal (R10).
    pub reversals: u64,
    /// Reward records of refunds (R11): confirmed rewards lowered or cancelled.
    pub refunds: u64,
    /// Pending rewards a clearing cancelled (R9: cleared at zero or below
    /// `min_spend`).
    pub cancelled_at_clearing: u64,
    /// The event after which the live value first reached the budget (R6).
    pub ran_out: Option<DateTime<FixedOffset>>,
}

/// What a budget took away (R3, R4, R6): told by the engine through
/// [`cardlink_core::engine::Budgets::short`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Shortfall {
    /// Purchases and clearings whose value the budget cut (some was left).
    pub cut: u64,
    /// Purchases the offer was otherwise eligible for when nothing was left.
    pub refused: u64,
    /// Value asked beyond what was left, summed.
    pub denied: Decimal,
    /// The first refusal.
    pub first_refused: Option<DateTime<FixedOffset>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn days_grow_both_ways_and_keep_their_numbers() {
        let mut d = Days::default();
        d.at(100).issued = dec("1");
        d.at(98).issued = dec("2");
        d.at(103).reversed = dec("0.5");
        assert_eq!(d.active().collect::<Vec<_>>(), vec![98, 100, 103]);
        assert_eq!(d.get(98).unwrap().issued, dec("2"));
        assert!(d.get(99).is_none() && d.get(97).is_none() && d.get(104).is_none());
        let t = d.total();
        assert_eq!((t.issued, t.reversed, t.net()), (dec("3"), dec("0.5"), dec("2.5")));
    }
}
