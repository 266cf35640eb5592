//! The ledger of contract section 6: per-card pending and confirmed sums,
//! per-offer usage and the event counts.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::book::OfferBook;
use crate::engine::Counters;
use crate::money::format_fixed;
use crate::state::{CardStore, RewardStatus};

/// Key of points in the per-card sums.
pub const POINTS: &str = "POINTS";

/// One card's sums by currency code (or `POINTS`), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CardTotals {
    /// Sums of CONFIRMED rewards.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub confirmed: BTreeMap<String, String>,
    /// Sums of PENDING rewards.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, String>,
}

/// One offer's live usage, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferTotals {
    /// Sum of live reward values.
    pub used: String,
    /// Number of live rewards.
    pub rewarded_transactions: u64,
}

/// Event counts, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventTotals {
    /// Valid, non-duplicate events.
    pub processed: u64,
    /// Duplicates (R2).
    pub duplicate: u64,
    /// Rejected (R1).
    pub rejected: u64,
}

/// The ledger. Maps are ordered so the written JSON is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Cards with a non-zero sum.
    pub cards: BTreeMap<String, CardTotals>,
    /// Offers with a live reward.
    pub offers: BTreeMap<String, OfferTotals>,
    /// Event counts.
    pub events: EventTotals,
}

impl Ledger {
    /// Builds the ledger from the book, the card stores (one, or one per
    /// partition) and the counters.
    pub fn build<'a>(book: &OfferBook, stores: impl IntoIterator<Item = &'a CardStore>, counters: &Counters) -> Ledger {
        let mut cards = BTreeMap::new();
        for store in stores {
            for (token, card) in store.iter() {
                let mut sums: [BTreeMap<&str, (Decimal, u32)>; 2] = Default::default();
                for tx in card.transactions.values() {
                    for r in &tx.rewards {
                        let slot = &book.slot(r.offer).offer;
                        let which = match r.status {
                            RewardStatus::Confirmed => 0,
                            RewardStatus::Pending => 1,
                            RewardStatus::Cancelled => continue,
                        };
                        let key = if slot.reward.is_cash() { slot.currency.code() } else { POINTS };
                        let e = sums[which].entry(key).or_insert((Decimal::ZERO, slot.value_digits()));
                        e.0 = e.0.saturating_add(r.value);
                    }
                }
                // Rewards of forgotten transactions (state retention) are
                // all CONFIRMED and still count.
                for a in card.transactions.archived() {
                    let slot = &book.slot(a.offer).offer;
                    let key = if slot.reward.is_cash() { slot.currency.code() } else { POINTS };
                    let e = sums[0].entry(key).or_insert((Decimal::ZERO, slot.value_digits()));
                    e.0 = e.0.saturating_add(a.value);
                }
                let written = |m: &BTreeMap<&str, (Decimal, u32)>| -> BTreeMap<String, String> {
                    m.iter()
                        .filter(|(_, (v, _))| !v.is_zero())
                        .map(|(k, (v, d))| (k.to_string(), format_fixed(*v, *d)))
                        .collect()
                };
                let totals = CardTotals { confirmed: written(&sums[0]), pending: written(&sums[1]) };
                if !totals.confirmed.is_empty() || !totals.pending.is_empty() {
                    cards.insert(token.to_string(), totals);
                }
            }
        }
        let offers = book
            .slots()
            .filter(|(_, s)| s.usage.live > 0)
            .map(|(_, s)| {
                (
                    s.offer.id.to_string(),
                    OfferTotals {
                        used: format_fixed(s.usage.used, s.offer.value_digits()),
                        rewarded_transactions: s.usage.live,
                    },
                )
            })
            .collect();
        Ledger {
            cards,
            offers,
            events: EventTotals {
                processed: counters.processed,
                duplicate: counters.duplicate,
                rejected: counters.rejected,
            },
        }
    }

    /// The ledger as pretty-printed JSON with sorted keys.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ledger always serializes")
    }
}
