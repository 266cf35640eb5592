//! The readable summary printed at the end of a replay.

use std::collections::BTreeMap;
use std::fmt;

use cardlink_core::{Engine, EventKind, Ledger, RejectReason, RewardStatus, RewardUpdate};
use rust_decimal::Decimal;

/// Counts of reward records by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewardTally {
    /// Records emitted, by status: pending, confirmed, cancelled.
    pub records: [u64; 3],
}

impl RewardTally {
    /// Counts one record.
    pub fn count(&mut self, u: &RewardUpdate<'_>) {
        self.records[match u.status {
            RewardStatus::Pending => 0,
            RewardStatus::Confirmed => 1,
            RewardStatus::Cancelled => 2,
        }] += 1;
    }
}

/// What a run did, for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Processed events by kind.
    pub processed_by_kind: Vec<(&'static str, u64)>,
    /// Processed, duplicate, rejected.
    pub processed: u64,
    #[allow(missing_docs)]
    pub duplicate: u64,
    #[allow(missing_docs)]
    pub rejected: u64,
    /// Rejected events by reason (non-zero only).
    pub rejected_by_reason: Vec<(&'static str, u64)>,
    /// Reward records by status.
    pub records: RewardTally,
    /// Confirmed and pending sums per currency (or POINTS), over all cards.
    pub confirmed: BTreeMap<String, Decimal>,
    #[allow(missing_docs)]
    pub pending: BTreeMap<String, Decimal>,
    /// Cards holding a live reward.
    pub rewarded_cards: usize,
    /// Offers with a live reward, and active offers.
    pub offers_used: usize,
    #[allow(missing_docs)]
    pub offers_active: usize,
    /// Offers whose budget is fully used.
    pub budgets_exhausted: usize,
    /// Cards with state, and the bytes that state holds in memory.
    pub cards: usize,
    #[allow(missing_docs)]
    pub state_bytes: usize,
}

impl Summary {
    /// Summarizes an engine's run and its ledger.
    pub fn new(engine: &Engine, ledger: &Ledger, records: RewardTally) -> Self {
        let c = &engine.counters;
        let mut confirmed = BTreeMap::new();
        let mut pending = BTreeMap::new();
        for card in ledger.cards.values() {
            for (m, sums) in [(&mut confirmed, &card.confirmed), (&mut pending, &card.pending)] {
                for (k, v) in sums {
                    *m.entry(k.clone()).or_insert(Decimal::ZERO) += v.parse::<Decimal>().unwrap_or_default();
                }
            }
        }
        let budgets_exhausted = engine
            .book
            .slots()
            .filter(|(_, s)| s.offer.budget.is_some_and(|b| s.usage.used >= b && b > Decimal::ZERO))
            .count();
        Summary {
            processed_by_kind: EventKind::ALL.iter().map(|k| k.as_str()).zip(c.processed_by_kind).collect(),
            processed: c.processed,
            duplicate: c.duplicate,
            rejected: c.rejected,
            rejected_by_reason: RejectReason::ALL
                .iter()
                .map(|r| r.as_str())
                .zip(c.rejected_by_reason)
                .filter(|(_, n)| *n > 0)
                .collect(),
            records,
            confirmed,
            pending,
            rewarded_cards: ledger.cards.len(),
            offers_used: ledger.offers.len(),
            offers_active: engine.book.active_len(),
            budgets_exhausted,
            cards: engine.cards.len(),
            state_bytes: engine.cards.heap_bytes(),
        }
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.processed + self.duplicate + self.rejected;
        writeln!(f, "events      {:>14} read", thousands(total))?;
        writeln!(f, "            {:>14} processed", thousands(self.processed))?;
        for (k, n) in &self.processed_by_kind {
            writeln!(f, "            {:>14}   {}", thousands(*n), k)?;
        }
        writeln!(f, "            {:>14} duplicates (R2)", thousands(self.duplicate))?;
        writeln!(f, "            {:>14} rejected (R1)", thousands(self.rejected))?;
        for (r, n) in &self.rejected_by_reason {
            writeln!(f, "            {:>14}   {}", thousands(*n), r)?;
        }
        let [p, c, x] = self.records.records;
        writeln!(f, "rewards     {:>14} records", thousands(p + c + x))?;
        writeln!(f, "            {:>14}   PENDING", thousands(p))?;
        writeln!(f, "            {:>14}   CONFIRMED", thousands(c))?;
        writeln!(f, "            {:>14}   CANCELLED", thousands(x))?;
        writeln!(f, "            {:>14} cards rewarded", thousands(self.rewarded_cards as u64))?;
        writeln!(
            f,
            "offers      {:>14} of {} active offers rewarded, {} budgets used up",
            thousands(self.offers_used as u64),
            self.offers_active,
            self.budgets_exhausted
        )?;
        writeln!(
            f,
            "state       {:>14} cards, {} bytes per card",
            thousands(self.cards as u64),
            thousands((self.state_bytes / self.cards.max(1)) as u64)
        )?;
        let keys: std::collections::BTreeSet<&String> = self.confirmed.keys().chain(self.pending.keys()).collect();
        if !keys.is_empty() {
            writeln!(f, "issued      {:>8} {:>16} {:>16}", "", "confirmed", "pending")?;
            for k in keys {
                let show = |m: &BTreeMap<String, Decimal>| m.get(k).map_or("-".to_string(), |v| v.to_string());
                writeln!(f, "            {:>8} {:>16} {:>16}", k, show(&self.confirmed), show(&self.pending))?;
            }
        }
        Ok(())
    }
}
