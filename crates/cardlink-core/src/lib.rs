//! The pure core of cardlink.
//!
//! Validation (R1), duplicate detection (R2), offers and their index,
//! matching (R3–R7) and the transaction lifecycle (R8–R11), with exact
//! decimal money. Nothing here performs I/O or knows about Kafka: the
//! replay command, the Kafka pipeline, the tests and the benchmarks all
//! drive the same code.
#![warn(missing_docs)]

pub mod book;
pub mod country;
pub mod engine;
pub mod event;
mod flat;
pub mod ledger;
pub mod money;
pub mod offer;
pub mod pan;
pub mod state;

pub use book::{OfferBook, OfferIdx};
pub use engine::{
    Applied, Budgets, Counters, Engine, Lookahead, Outcome, RewardKind, RewardSink, RewardUpdate, WholeBudget, apply,
    apply_keyed, apply_with, reward_value,
};
pub use event::{
    CardEvent, EventBody, EventKind, Field, MerchantField, Network, RawEvent, RawMerchant, RejectReason, Rejection,
    validate,
};
pub use ledger::Ledger;
pub use money::Currency;
pub use offer::{Offer, OfferError, parse_offer, parse_offer_file};
pub use state::{CardState, CardStore, IdSet, KeyHashes, Prefetch, PrefetchKeys, RewardStatus};

/// Asks the processor to bring the cache line holding `p` closer: for an
/// adapter that knows what the engine will read next. A hint only; it
/// changes no value and never faults.
#[inline(always)]
pub fn prefetch_hint<T>(p: *const T) {
    flat::prefetch(p)
}

/// The reward id of an offer's reward on a transaction: the same on every
/// run. `offer|transaction|card`, with `%` and `|` percent-escaped in the
/// offer and transaction ids so that distinct triples never collide
/// (card tokens cannot contain either).
pub fn reward_id(offer_id: &str, transaction_id: &str, card_token: &str) -> String {
    let mut s = String::with_capacity(offer_id.len() + transaction_id.len() + card_token.len() + 2);
    for part in [offer_id, transaction_id] {
        for c in part.chars() {
            match c {
                '%' => s.push_str("%25"),
                '|' => s.push_str("%7C"),
                c => s.push(c),
            }
        }
        s.push('|');
    }
    s.push_str(card_token);
    s
}
