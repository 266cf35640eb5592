//! Per-card state: what R2 and R7–R11 need to remember about one card.
//!
//! Everything here is keyed by card token, so a pipeline can split it by
//! the partition that owns the card, and snapshot or changelog it.

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

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

/// A set of ids (the event ids a card processed, R2; the offers it
/// activated, R3), stored in one string per set with a hash table of spans
/// into it: no allocation per insert, and about a third of the memory of a
/// set of boxed strings.
#[derive(Clone, Default)]
pub struct IdSet {
    bytes: String,
    spans: hashbrown::HashTable<(u32, u32)>,
}

impl IdSet {
    /// The hash an id is filed under, for [`IdSet::contains_hashed`].
    #[inline]
    pub fn hash(id: &str) -> u64 {
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

    /// True when `id` is in the set, given its [`IdSet::hash`]: the id itself
    /// is only produced when a stored id has a matching hash tag.
    #[inline]
    pub fn contains_hashed<'i>(&self, hash: u64, id: impl Fn() -> &'i str) -> bool {
        !self.is_empty() && self.spans.find(hash, |&s| self.span(s) == id()).is_some()
    }

    /// Remembers `id`; false when it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        let hash = Self::hash(id);
        let IdSet { bytes, spans } = self;
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

impl<S: AsRef<str>> Extend<S> for IdSet {
    fn extend<I: IntoIterator<Item = S>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for IdSet {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        let mut seen = IdSet::default();
        seen.extend(ids);
        seen
    }
}

impl PartialEq for IdSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|id| other.contains(id))
    }
}

impl Eq for IdSet {}

impl std::fmt::Debug for IdSet {
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
    pub seen: IdSet,
    /// Offers the card activated (R3).
    pub activations: IdSet,
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

/// A card token as a table key: tokens up to 23 bytes (the common case)
/// are stored inline, so comparing a key during a look-up reads the table
/// entry itself instead of a separate heap string.
#[derive(Clone)]
enum TokenKey {
    Inline { len: u8, bytes: [u8; 23] },
    Heap(Box<str>),
}

impl TokenKey {
    fn new(token: &str) -> Self {
        let b = token.as_bytes();
        if b.len() <= 23 {
            let mut bytes = [0u8; 23];
            bytes[..b.len()].copy_from_slice(b);
            TokenKey::Inline { len: b.len() as u8, bytes }
        } else {
            TokenKey::Heap(Box::from(token))
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            TokenKey::Inline { len, bytes } => &bytes[..*len as usize],
            TokenKey::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("made from a str")
    }
}

#[inline]
fn token_hash(token: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(token)
}

/// Every card's state, by card token.
#[derive(Clone, Default)]
pub struct CardStore {
    // States are boxed so the table stays dense (a key and a pointer an
    // entry): the look-up per event touches one table line, and growing the
    // table moves pointers rather than whole states.
    cards: hashbrown::HashTable<(TokenKey, Box<CardState>)>,
}

impl std::fmt::Debug for CardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl CardStore {
    /// The state of a card, if it has any.
    #[inline]
    pub fn get(&self, token: &str) -> Option<&CardState> {
        let t = token.as_bytes();
        self.cards.find(token_hash(t), |(k, _)| k.as_bytes() == t).map(|(_, c)| &**c)
    }

    /// The state of a card, for change.
    #[inline]
    pub fn get_mut(&mut self, token: &str) -> Option<&mut CardState> {
        let t = token.as_bytes();
        self.cards.find_mut(token_hash(t), |(k, _)| k.as_bytes() == t).map(|(_, c)| &mut **c)
    }

    /// The state of a card, created empty when new.
    pub fn get_or_insert(&mut self, token: &str) -> &mut CardState {
        let t = token.as_bytes();
        let entry = self.cards.entry(token_hash(t), |(k, _)| k.as_bytes() == t, |(k, _)| token_hash(k.as_bytes()));
        &mut entry.or_insert_with(|| (TokenKey::new(token), Box::default())).into_mut().1
    }

    /// Every card, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CardState)> {
        self.cards.iter().map(|(k, v)| (k.as_str(), &**v))
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
        *self.get_or_insert(token) = state;
    }

    /// Removes a card's state (a partition moving away).
    pub fn remove(&mut self, token: &str) -> Option<CardState> {
        let t = token.as_bytes();
        match self.cards.find_entry(token_hash(t), |(k, _)| k.as_bytes() == t) {
            Ok(entry) => Some(*entry.remove().0.1),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_behave_as_a_set() {
        let mut seen = IdSet::default();
        for i in 0..10_000 {
            assert!(seen.insert(&format!("e-{i}")));
        }
        assert!(!seen.insert("e-17"));
        assert!(seen.contains("e-9999") && !seen.contains("e-10000") && !seen.contains(""));
        assert!(seen.insert(""));
        assert_eq!(seen.len(), 10_001);
        let copy: IdSet = seen.iter().collect();
        assert_eq!(copy, seen);
        assert_ne!(copy, IdSet::default());
    }

    #[test]
    fn card_store_keys_short_and_long_tokens() {
        let mut store = CardStore::default();
        let long = "t".repeat(64);
        for token in ["c1", "tok_12345678901234567890", "exactly_twenty_three_ch", long.as_str()] {
            assert!(store.get(token).is_none());
            store.get_or_insert(token).activations.insert(token);
        }
        assert_eq!(store.len(), 4);
        for token in ["c1", "tok_12345678901234567890", "exactly_twenty_three_ch", long.as_str()] {
            assert!(store.get(token).unwrap().activations.contains(token));
        }
        assert!(store.get("c").is_none() && store.get("c12").is_none());
        let mut tokens: Vec<&str> = store.iter().map(|(t, _)| t).collect();
        tokens.sort();
        assert_eq!(tokens.len(), 4);
        assert!(store.remove("c1").is_some() && store.remove("c1").is_none());
        assert_eq!(store.len(), 3);
    }
}
