//! Per-card state: what R2 and R7–R11 need to remember about one card.
//!
//! Everything here is keyed by card token, so a pipeline can split it by
//! the partition that owns the card, and snapshot or changelog it.

use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::book::OfferIdx;
use crate::event::Money;
use crate::money::Currency;

/// Status of a reward (contract section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RewardStatus {
    /// Decided on authorization; not yet settled.
    Pending,
    /// Settled by a clearing.
    Confirmed,
    /// Reverted; its value is zero.
    Cancelled,
}

impl RewardStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RewardStatus::Pending => "PENDING",
            RewardStatus::Confirmed => "CONFIRMED",
            RewardStatus::Cancelled => "CANCELLED",
        }
    }
}

/// The event ids a card has processed (R2), stored in one string per card
/// with a hash table of spans into it: no allocation per event, and about
/// a third of the memory of a set of boxed strings.
#[derive(Clone, Default)]
pub struct SeenIds {
    bytes: String,
    spans: hashbrown::HashTable<(u32, u32)>,
}

impl SeenIds {
    #[inline]
    fn hash(id: &str) -> u64 {
        use std::hash::BuildHasher;
        rustc_hash::FxBuildHasher.hash_one(id)
    }

    #[inline]
    fn span(&self, (start, len): (u32, u32)) -> &str {
        &self.bytes[start as usize..start as usize + len as usize]
    }

    /// True when `id` was processed.
    #[inline]
    pub fn contains(&self, id: &str) -> bool {
        self.spans.find(Self::hash(id), |&s| self.span(s) == id).is_some()
    }

    /// Remembers `id`; false when it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        let hash = Self::hash(id);
        let SeenIds { bytes, spans } = self;
        let span_of = |(start, len): (u32, u32)| &bytes[start as usize..start as usize + len as usize];
        if spans.find(hash, |&s| span_of(s) == id).is_some() {
            return false;
        }
        let start = u32::try_from(bytes.len()).expect("a card's event ids stay under 4 GiB");
        let len = u32::try_from(id.len()).expect("event ids are short");
        bytes.push_str(id);
        let bytes = &*bytes;
        spans.insert_unique(hash, (start, len), |&(s, l)| Self::hash(&bytes[s as usize..(s + l) as usize]));
        true
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no id was processed.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|&s| self.span(s))
    }

    /// Bytes of memory held, for sizing.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.spans.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
    }
}

impl<S: AsRef<str>> Extend<S> for SeenIds {
    fn extend<I: IntoIterator<Item = S>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for SeenIds {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        let mut seen = SeenIds::default();
        seen.extend(ids);
        seen
    }
}

impl PartialEq for SeenIds {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|id| other.contains(id))
    }
}

impl Eq for SeenIds {}

impl std::fmt::Debug for SeenIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One offer's reward on one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reward {
    /// The offer that made it.
    pub offer: OfferIdx,
    /// Current status.
    pub status: RewardStatus,
    /// Current value, in the reward's unit.
    pub value: Decimal,
}

impl Reward {
    /// Live: pending or confirmed with a value above zero (R6).
    #[inline]
    pub fn is_live(&self) -> bool {
        self.status != RewardStatus::Cancelled && self.value > Decimal::ZERO
    }
}

/// A purchase of a card: authorized, cleared, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Currency of the authorization, when there was one.
    pub auth_currency: Option<Currency>,
    /// The clearing, once cleared.
    pub cleared: Option<Money>,
    /// Cleared amount less refunds so far, never below zero (R11).
    pub net: Decimal,
    /// The rewards decided for it, at most one per offer.
    pub rewards: Vec<Reward>,
}

/// What cardlink remembers about one card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardState {
    /// Ids of processed events (R2).
    pub seen: SeenIds,
    /// Offers the card activated (R3).
    pub activations: FxHashSet<Box<str>>,
    /// Transactions by id (R8–R11).
    pub transactions: FxHashMap<Box<str>, Transaction>,
    /// Live rewards per offer (R7); entries at zero are removed.
    pub live: Vec<(OfferIdx, u32)>,
}

impl CardState {
    /// Live rewards of `offer` on this card (R7).
    #[inline]
    pub fn live_count(&self, offer: OfferIdx) -> u32 {
        self.live.iter().find(|(o, _)| *o == offer).map_or(0, |(_, n)| *n)
    }
}

/// Adjusts the per-card live count of `offer` by +1 or −1.
pub(crate) fn bump_live(live: &mut Vec<(OfferIdx, u32)>, offer: OfferIdx, up: bool) {
    match live.iter().position(|(o, _)| *o == offer) {
        Some(i) if up => live[i].1 += 1,
        Some(i) => {
            live[i].1 -= 1;
            if live[i].1 == 0 {
                live.swap_remove(i);
            }
        }
        None if up => live.push((offer, 1)),
        None => debug_assert!(false, "live count below zero"),
    }
}

/// Every card's state, by card token.
#[derive(Debug, Clone, Default)]
pub struct CardStore {
    // Boxed so the table stays dense (one key and one pointer an entry):
    // the look-up per event then touches fewer cache lines, and growing
    // the table moves pointers rather than whole states.
    cards: FxHashMap<Box<str>, Box<CardState>>,
}

impl CardStore {
    /// The state of a card, if it has any.
    #[inline]
    pub fn get(&self, token: &str) -> Option<&CardState> {
        self.cards.get(token).map(|c| &**c)
    }

    /// The state of a card, for change.
    #[inline]
    pub fn get_mut(&mut self, token: &str) -> Option<&mut CardState> {
        self.cards.get_mut(token).map(|c| &mut **c)
    }

    /// The state of a card, created empty when new.
    pub fn get_or_insert(&mut self, token: &str) -> &mut CardState {
        if !self.cards.contains_key(token) {
            self.cards.insert(Box::from(token), Box::default());
        }
        self.cards.get_mut(token).expect("just inserted")
    }

    /// Every card, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CardState)> {
        self.cards.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of cards with state.
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// True when no card has state.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// Puts a card's state in place (restoring from a snapshot).
    pub fn insert(&mut self, token: &str, state: CardState) {
        self.cards.insert(Box::from(token), Box::new(state));
    }

    /// Removes a card's state (a partition moving away).
    pub fn remove(&mut self, token: &str) -> Option<CardState> {
        self.cards.remove(token).map(|c| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_behave_as_a_set() {
        let mut seen = SeenIds::default();
        for i in 0..10_000 {
            assert!(seen.insert(&format!("e-{i}")));
        }
        assert!(!seen.insert("e-17"));
        assert!(seen.contains("e-9999") && !seen.contains("e-10000") && !seen.contains(""));
        assert!(seen.insert(""));
        assert_eq!(seen.len(), 10_001);
        let copy: SeenIds = seen.iter().collect();
        assert_eq!(copy, seen);
        assert_ne!(copy, SeenIds::default());
    }
}
