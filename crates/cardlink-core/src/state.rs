//! Per-card state: what R2 and R7–R11 need to remember about one card.
//!
//! Everything here is keyed by card token, so a pipeline can split it by
//! the partition that owns the card, and snapshot or changelog it.
//!
//! Memory is laid out for the look-ups every event makes: the card table
//! holds each card's state in its entry, under a key that keeps short
//! tokens in place; transactions sit in one table per card whose keys also
//! keep short ids in place; seen event ids are one byte string per card
//! with a table of spans into it. A look-up reads a line of tags and the
//! entry itself, not separate heap strings, and the tables are ours
//! (`crate::flat`) so that the replay can prefetch those lines for the
//! events it is about to apply ([`CardStore::prefetch`]).
//!
//! With a [`Retention`], event ids and closed transactions are forgotten a
//! set number of days after the card's newest event (see
//! docs/reliability.md, "State retention"), so a card's memory stays
//! bounded however long it lives.

use rust_decimal::Decimal;
use std::cell::Cell;

use crate::book::OfferIdx;
use crate::event::Money;
use crate::flat::{Flat, Indexed};
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

/// How long a card remembers event ids (R2) and closed transactions, in
/// days of its own event time. `None` (the default) remembers everything,
/// as the contract's R2 reads; see docs/reliability.md, "State retention".
pub type Retention = Option<std::num::NonZeroU32>;

/// A day number: whole days since 1970-01-01 (UTC) of an event's instant.
/// Retention counts in these.
pub fn day_of(at: chrono::DateTime<chrono::FixedOffset>) -> i32 {
    let day = at.timestamp().div_euclid(86_400);
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN + 1 } else { i32::MAX })
}

/// A string key that keeps up to 22 bytes in place (card tokens and
/// transaction ids nearly always fit): comparing a key during a look-up
/// reads the table entry itself instead of a separate heap string.
#[derive(Clone)]
pub(crate) enum InlineKey {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl std::fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Default for InlineKey {
    fn default() -> Self {
        InlineKey::Inline { len: 0, bytes: [0; 22] }
    }
}

impl InlineKey {
    pub(crate) fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..b.len()].copy_from_slice(b);
            InlineKey::Inline { len: b.len() as u8, bytes }
        } else {
            InlineKey::Heap(Box::from(s))
        }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            InlineKey::Inline { len, bytes } => &bytes[..*len as usize],
            InlineKey::Heap(s) => s.as_bytes(),
        }
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Only ever made from a whole &str (see `new`).
            InlineKey::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("made from a str"),
            InlineKey::Heap(s) => s,
        }
    }
}

#[inline]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(b)
}

/// A set of ids (the event ids a card processed, R2; the offers it
/// activated, R3), stored in one byte string per set with a hash table of
/// spans into it: no allocation per insert, and about a third of the
/// memory of a set of boxed strings.
///
/// Ids inserted with a day ([`IdSet::insert_on`]) can be forgotten by day
/// ([`IdSet::forget_before`]). Days only grow along the string, so the
/// forgotten ids are always a prefix of it: a forgotten id is one whose
/// span starts below `forgotten`, and forgetting costs nothing per id.
#[derive(Clone, Default)]
pub struct IdSet {
    bytes: Vec<u8>,
    spans: Flat<(u32, u32)>,
    /// Byte offset below which ids are forgotten.
    forgotten: u32,
    /// `(offset, day)`: ids from `offset` on were inserted on `day` or
    /// later; offsets and days both increase.
    days: Vec<(u32, i32)>,
    /// The day of `days`' last mark (meaningful while there is one): read
    /// by every insert, and kept here so that it costs no extra cache line.
    last_day: i32,
}

impl IdSet {
    /// The hash an id is filed under, for [`IdSet::contains_hashed`].
    #[inline]
    pub fn hash(id: &str) -> u64 {
        hash_bytes(id.as_bytes())
    }

    #[inline]
    fn span(&self, (start, len): (u32, u32)) -> &str {
        // Only whole &strs are appended, so spans fall on char boundaries.
        std::str::from_utf8(&self.bytes[start as usize..start as usize + len as usize]).expect("ids are UTF-8")
    }

    #[inline]
    fn span_bytes(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..start as usize + len as usize]
    }

    /// True when `id` is remembered.
    #[inline]
    pub fn contains(&self, id: &str) -> bool {
        self.contains_hashed(Self::hash(id), || id)
    }

    /// True when `id` is remembered, given its [`IdSet::hash`]: the id
    /// itself is only produced when a stored id has a matching hash tag.
    #[inline]
    pub fn contains_hashed<'i>(&self, hash: u64, id: impl Fn() -> &'i str) -> bool {
        self.spans
            .find(hash, |&s| self.span_bytes(s) == id().as_bytes())
            .is_some_and(|slot| self.spans.get(slot).0 >= self.forgotten)
    }

    /// Prefetches what looking `hash` up and appending an id will read.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        self.spans.prefetch(hash, 1);
        crate::flat::prefetch(self.bytes.as_ptr().wrapping_add(self.bytes.len()));
    }

    /// Prefetches the start of a small set (a card's activations), whose
    /// look-ups are by keys not known ahead.
    #[inline]
    pub(crate) fn prefetch_small(&self) {
        if !self.bytes.is_empty() {
            self.spans.prefetch_start();
            crate::flat::prefetch(self.bytes.as_ptr());
        }
    }

    /// Remembers `id`; false when it was already remembered.
    pub fn insert(&mut self, id: &str) -> bool {
        self.insert_hashed(id, Self::hash(id))
    }

    /// Remembers `id` as seen on `day` (days never go back between calls);
    /// false when it was already remembered.
    pub fn insert_on(&mut self, id: &str, day: i32) -> bool {
        self.mark_day(day);
        self.insert_hashed(id, Self::hash(id))
    }

    /// Ids inserted from now on count from `day` (days never go back).
    #[inline]
    fn mark_day(&mut self, day: i32) {
        // A day mark with no id after it is harmless: the next id of that
        // day falls in it.
        if self.days.is_empty() {
            // The first day also covers ids inserted without one before it
            // (restored from a snapshot): they count from that day.
            self.days.push((self.forgotten, day));
            self.last_day = day;
        } else if self.last_day < day {
            self.days.push((self.bytes_len(), day));
            self.last_day = day;
        }
    }

    fn bytes_len(&self) -> u32 {
        u32::try_from(self.bytes.len()).expect("a card's ids stay under 4 GiB")
    }

    fn insert_hashed(&mut self, id: &str, hash: u64) -> bool {
        if let Some(slot) = self.spans.find(hash, |&s| self.span_bytes(s) == id.as_bytes()) {
            if self.spans.get(slot).0 >= self.forgotten {
                return false;
            }
            // Forgotten but still stored: filed again at the end.
            self.spans.remove(slot);
        }
        self.append(id, hash);
        true
    }

    /// [`IdSet::insert_on`] of an id, hashed `hash`, that the caller found
    /// not remembered ([`IdSet::contains_hashed`]): while nothing is
    /// forgotten, the table cannot hold it, and is not searched again.
    #[inline]
    pub(crate) fn insert_unseen_on_hashed(&mut self, id: &str, hash: u64, day: i32) {
        debug_assert!(!self.contains_hashed(hash, || id), "an id already remembered");
        self.mark_day(day);
        if self.forgotten == 0 {
            self.append(id, hash);
        } else {
            self.insert_hashed(id, hash);
        }
    }

    /// Files `id`, which the table does not hold.
    fn append(&mut self, id: &str, hash: u64) {
        let start = self.bytes_len();
        let len = u32::try_from(id.len()).expect("ids are short");
        let IdSet { bytes, spans, .. } = self;
        let rehash = |&(s, l): &(u32, u32)| hash_bytes(&bytes[s as usize..(s + l) as usize]);
        if spans.capacity() == 0 {
            // Skip the first growth steps: a card that has one event
            // nearly always has more.
            spans.reserve(8, rehash);
            bytes.reserve(64);
        }
        bytes.extend_from_slice(id.as_bytes());
        let bytes = &self.bytes;
        self.spans.insert_new(hash, (start, len), |&(s, l)| hash_bytes(&bytes[s as usize..(s + l) as usize]));
    }

    /// Forgets the ids inserted before `day`; ids inserted without a day
    /// count from the first day given after them. Memory is given back
    /// once most of the string is forgotten.
    pub fn forget_before(&mut self, day: i32) {
        let k = self.days.partition_point(|&(_, d)| d < day);
        if k == 0 {
            return;
        }
        self.forgotten = self.days.get(k).map_or(self.bytes_len(), |&(offset, _)| offset);
        self.days.drain(..k);
        if let Some(&(_, d)) = self.days.last() {
            self.last_day = d;
        }
        if self.forgotten as usize * 2 >= self.bytes.len() {
            self.compact();
        }
    }

    /// Drops forgotten ids from memory: the string, the table and the day
    /// marks start again at the first remembered id.
    fn compact(&mut self) {
        let cut = self.forgotten;
        let kept: Vec<(u32, u32)> = self.spans.iter().filter(|s| s.0 >= cut).map(|&(s, l)| (s - cut, l)).collect();
        self.bytes.drain(..cut as usize);
        self.bytes.shrink_to(self.bytes.len() * 2);
        let bytes = &self.bytes;
        let hash = |&(s, l): &(u32, u32)| hash_bytes(&bytes[s as usize..(s + l) as usize]);
        let mut spans = Flat::default();
        spans.reserve(kept.len(), hash);
        for span in kept {
            spans.insert_new(hash(&span), span, hash);
        }
        self.spans = spans;
        for d in &mut self.days {
            d.0 -= cut;
        }
        self.forgotten = 0;
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        if self.forgotten == 0 { self.spans.len() } else { self.iter().count() }
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every remembered id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().filter(|s| s.0 >= self.forgotten).map(|&s| self.span(s))
    }

    /// Every remembered id with the day it counts from (`None`: inserted
    /// without a day and not followed by one yet), in insertion order: what
    /// a snapshot needs to restore the set exactly with
    /// [`IdSet::insert_on`].
    pub fn iter_with_days(&self) -> impl Iterator<Item = (&str, Option<i32>)> {
        let mut spans: Vec<(u32, u32)> = self.spans.iter().filter(|s| s.0 >= self.forgotten).copied().collect();
        spans.sort_unstable();
        spans.into_iter().map(move |s| {
            let day = self.days.partition_point(|&(offset, _)| offset <= s.0).checked_sub(1).map(|i| self.days[i].1);
            (self.span(s), day)
        })
    }

    /// Bytes of memory held, for sizing.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.spans.capacity() * (std::mem::size_of::<(u32, u32)>() + 2)
            + self.days.capacity() * std::mem::size_of::<(u32, i32)>()
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// A day stamp not given yet: a transaction restored from a snapshot
/// counts from the card's next event.
const UNSTAMPED: i32 = i32::MIN;

#[derive(Clone, Default)]
struct TxEntry {
    key: InlineKey,
    /// The day of the last event that named the transaction.
    day: i32,
    /// An AUTH_REVERSAL was processed for it.
    reversed: bool,
    tx: Transaction,
}

impl TxEntry {
    /// Closed (cleared, or reversed before clearing) and last named before
    /// `cutoff`: forgotten.
    #[inline]
    fn expired(&self, cutoff: i32) -> bool {
        self.day < cutoff && self.day != UNSTAMPED && (self.tx.cleared.is_some() || self.reversed)
    }
}

/// The live value of one offer's rewards on forgotten transactions: they
/// still count in the card's ledger sums, the offer's usage (R6) and the
/// card's per-offer count (R7), but no event can change them any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archived {
    /// The offer.
    pub offer: OfferIdx,
    /// Sum of the values (all CONFIRMED).
    pub value: Decimal,
    /// Number of the rewards.
    pub live: u32,
}

/// A card's transactions by id (R8–R11), in one flat table whose keys keep
/// short ids in place. With a retention, closed transactions are forgotten
/// (see [`Retention`]); their live rewards move to [`TxMap::archived`].
#[derive(Clone)]
pub struct TxMap {
    table: Indexed<TxEntry>,
    archived: Vec<Archived>,
    /// Closed transactions last named before this day are forgotten.
    cutoff: i32,
    /// The day stamped on transactions an event names.
    today: i32,
    /// The day the table was last swept of forgotten transactions.
    swept: i32,
    /// Some entries are [`UNSTAMPED`].
    unstamped: bool,
}

impl Default for TxMap {
    fn default() -> Self {
        TxMap {
            table: Indexed::default(),
            archived: Vec::new(),
            cutoff: i32::MIN,
            today: 0,
            swept: i32::MIN,
            unstamped: false,
        }
    }
}

impl TxMap {
    /// The slot of transaction `id`, remembered or not.
    #[inline]
    fn slot(&self, id: &str) -> Option<usize> {
        self.slot_hashed(id, hash_bytes(id.as_bytes()))
    }

    #[inline]
    fn slot_hashed(&self, id: &str, hash: u64) -> Option<usize> {
        self.table.find(hash, |e| e.key.as_bytes() == id.as_bytes())
    }

    #[inline]
    fn find(&self, id: &str) -> Option<&TxEntry> {
        self.slot(id).map(|i| self.table.get(i)).filter(|e| !e.expired(self.cutoff))
    }

    /// The remembered entry of `id`, stamped with today (the event being
    /// applied names it).
    #[inline]
    fn named(&mut self, id: &str) -> Option<&mut TxEntry> {
        self.named_at(self.slot(id))
    }

    /// [`TxMap::named`] of the entry at `position` (from [`TxMap::position`]).
    #[inline]
    fn named_at(&mut self, position: Option<usize>) -> Option<&mut TxEntry> {
        let (cutoff, today) = (self.cutoff, self.today);
        let e = self.table.get_mut(position?);
        if e.expired(cutoff) {
            return None;
        }
        e.day = today;
        Some(e)
    }

    /// Where transaction `id` (hashed `hash`) is held, remembered or not,
    /// trying the position a prefetch step found first. Valid until an
    /// entry next moves: entries move only when one is removed (a sweep at
    /// the end of an event, [`TxMap::end`]); inserts append, and
    /// [`TxMap::begin`] only stamps days.
    #[inline]
    pub(crate) fn position(&self, id: &str, hash: u64, hint: Option<usize>) -> Option<usize> {
        self.table.find_hinted(hint, hash, |e| e.key.as_bytes() == id.as_bytes())
    }

    /// The remembered transaction at `position` (see [`TxMap::position`]).
    #[inline]
    pub(crate) fn get_at(&self, position: Option<usize>) -> Option<&Transaction> {
        Some(&self.table.get(position?)).filter(|e| !e.expired(self.cutoff)).map(|e| &e.tx)
    }

    /// [`TxMap::get_mut`] at `position` (see [`TxMap::position`]).
    #[inline]
    pub(crate) fn get_mut_at(&mut self, position: Option<usize>) -> Option<&mut Transaction> {
        self.named_at(position).map(|e| &mut e.tx)
    }

    /// Prefetches where a look-up of the transaction with id hash `hash`
    /// starts.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// Once [`TxMap::prefetch`] has answered: prefetches the entry.
    #[inline]
    pub(crate) fn prefetch_entry(&self, hash: u64) -> Option<usize> {
        self.table.prefetch_entry(hash, 2)
    }

    /// The transaction at a position [`TxMap::prefetch_entry`] returned,
    /// if the table still has one there (expired or not: a hint only).
    #[inline]
    pub(crate) fn at_position(&self, position: usize) -> Option<&Transaction> {
        self.table.try_get(position).map(|e| &e.tx)
    }

    /// The transaction `id`, if remembered.
    #[inline]
    pub fn get(&self, id: &str) -> Option<&Transaction> {
        self.find(id).map(|e| &e.tx)
    }

    /// True when `id` is remembered.
    #[inline]
    pub fn contains_key(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// The transaction `id`, for change by the event being applied (which
    /// makes it count as named today).
    #[inline]
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Transaction> {
        self.named(id).map(|e| &mut e.tx)
    }

    /// R10's look-up: the transaction `id` when it is not cleared, marked
    /// as reversed (a closed transaction, for retention).
    #[inline]
    pub fn reverse(&mut self, id: &str) -> Option<&mut Transaction> {
        self.reverse_at(self.slot(id))
    }

    /// [`TxMap::reverse`] at `position` (see [`TxMap::position`]).
    #[inline]
    pub(crate) fn reverse_at(&mut self, position: Option<usize>) -> Option<&mut Transaction> {
        let e = self.named_at(position)?;
        if e.tx.cleared.is_some() {
            return None;
        }
        e.reversed = true;
        Some(&mut e.tx)
    }

    /// Files a new transaction `id` named by the event being applied, or
    /// returns the remembered one. A forgotten transaction of that id is
    /// archived and replaced.
    pub fn insert_new(&mut self, id: &str, tx: Transaction) -> &mut Transaction {
        let hash = hash_bytes(id.as_bytes());
        self.insert_new_at(id, hash, self.slot_hashed(id, hash), tx)
    }

    /// [`TxMap::insert_new`] given the id's hash and its
    /// [`TxMap::position`].
    pub(crate) fn insert_new_at(
        &mut self,
        id: &str,
        hash: u64,
        position: Option<usize>,
        tx: Transaction,
    ) -> &mut Transaction {
        let rehash = tx_hash;
        if self.table.capacity() == 0 {
            // Skip the first growth steps, as for seen ids.
            self.table.reserve(4, rehash);
        }
        let today = self.today;
        let slot = match position {
            Some(slot) => {
                let e = self.table.get_mut(slot);
                if e.expired(self.cutoff) {
                    archive(&mut self.archived, &e.tx);
                    (e.tx, e.reversed) = (tx, false);
                }
                slot
            }
            None => {
                let entry = TxEntry { key: InlineKey::new(id), day: today, reversed: false, tx };
                self.table.insert_new(hash, entry, rehash)
            }
        };
        let e = self.table.get_mut(slot);
        e.day = today;
        &mut e.tx
    }

    /// Puts a transaction in place (restoring from a snapshot); it counts
    /// from the card's next event.
    pub fn insert(&mut self, id: impl AsRef<str>, tx: Transaction) {
        self.insert_on(id, tx, None, false);
    }

    /// Puts a transaction in place with the day it was last named and
    /// whether it was reversed (restoring a snapshot exactly).
    pub fn insert_on(&mut self, id: impl AsRef<str>, tx: Transaction, day: Option<i32>, reversed: bool) {
        let id = id.as_ref();
        let b = id.as_bytes();
        let day = day.unwrap_or(UNSTAMPED);
        self.unstamped |= day == UNSTAMPED;
        let entry = TxEntry { key: InlineKey::new(id), day, reversed, tx };
        match self.slot(id) {
            Some(slot) => *self.table.get_mut(slot) = entry,
            None => {
                self.table.insert_new(hash_bytes(b), entry, tx_hash);
            }
        }
    }

    /// Number of transactions held. With a retention, forgotten ones are
    /// held until the next sweep (look-ups no longer find them); a reward
    /// is always either on a held transaction or in [`TxMap::archived`].
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no transaction is held.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Every held transaction with its id, in no particular order (see
    /// [`TxMap::len`]): summing their live rewards and the archived ones
    /// counts every live reward of the card once.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Transaction)> {
        self.table.iter().map(|e| (e.key.as_str(), &e.tx))
    }

    /// Every remembered transaction with its id, the day it was last named
    /// (`None` before the card's first event after a restore) and whether
    /// it was reversed: what a snapshot needs for [`TxMap::insert_on`].
    /// Forgotten transactions not yet swept are left out; their rewards are
    /// in [`TxMap::archived_for_snapshot`].
    pub fn iter_with_days(&self) -> impl Iterator<Item = (&str, &Transaction, Option<i32>, bool)> {
        self.table
            .iter()
            .filter(|e| !e.expired(self.cutoff))
            .map(|e| (e.key.as_str(), &e.tx, (e.day != UNSTAMPED).then_some(e.day), e.reversed))
    }

    /// The archived rewards a snapshot keeps: [`TxMap::archived`] and the
    /// live rewards of forgotten transactions not yet swept, so that a
    /// restore from [`TxMap::iter_with_days`] and this is the same state
    /// as this one, swept.
    pub fn archived_for_snapshot(&self) -> Vec<Archived> {
        let mut archived = self.archived.clone();
        for e in self.table.iter().filter(|e| e.expired(self.cutoff)) {
            archive(&mut archived, &e.tx);
        }
        archived
    }

    /// Every held transaction.
    pub fn values(&self) -> impl Iterator<Item = &Transaction> {
        self.table.iter().map(|e| &e.tx)
    }

    /// Every live reward of the card as `(offer, value, count)`: each
    /// held transaction's live rewards (count 1) and the archived totals.
    /// What offer usage and budget slices count for a card.
    pub fn live_values(&self) -> impl Iterator<Item = (OfferIdx, Decimal, u32)> + '_ {
        let held = self.values().flat_map(|tx| tx.rewards.iter().filter(|r| r.is_live()));
        held.map(|r| (r.offer, r.value, 1)).chain(self.archived.iter().map(|a| (a.offer, a.value, a.live)))
    }

    /// The live rewards of forgotten transactions, per offer. They count
    /// in the ledger and in usage like any live reward.
    pub fn archived(&self) -> &[Archived] {
        &self.archived
    }

    /// Adds to the archived rewards (restoring a snapshot).
    pub fn add_archived(&mut self, a: Archived) {
        match self.archived.iter_mut().find(|x| x.offer == a.offer) {
            Some(x) => {
                x.value += a.value;
                x.live += a.live;
            }
            None => self.archived.push(a),
        }
    }

    /// Starts an event of `day` (the card's clock after it): what it
    /// names is stamped with that day.
    fn begin(&mut self, day: i32) {
        self.today = day;
        if self.unstamped {
            self.unstamped = false;
            for e in self.table.iter_mut().filter(|e| e.day == UNSTAMPED) {
                e.day = day;
            }
        }
    }

    /// Ends an event: closed transactions last named before `cutoff` are
    /// forgotten from now on, and now and then swept from memory.
    fn end(&mut self, cutoff: i32, sweep_every: i32) {
        self.cutoff = cutoff;
        if self.today.saturating_sub(self.swept) >= sweep_every {
            self.swept = self.today;
            let TxMap { table, archived, .. } = self;
            table.retain(
                |e| {
                    if e.expired(cutoff) {
                        archive(archived, &e.tx);
                        false
                    } else {
                        true
                    }
                },
                tx_hash,
            );
        }
    }

    /// Bytes of memory held, for sizing.
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * 8
            + self.table.entries_capacity() * std::mem::size_of::<TxEntry>()
            + self
                .table
                .iter()
                .map(|e| {
                    e.tx.rewards.capacity() * std::mem::size_of::<Reward>()
                        + if let InlineKey::Heap(s) = &e.key { s.len() } else { 0 }
                })
                .sum::<usize>()
            + self.archived.capacity() * std::mem::size_of::<Archived>()
    }
}

/// The hash a transaction is filed under.
fn tx_hash(e: &TxEntry) -> u64 {
    hash_bytes(e.key.as_bytes())
}

/// Moves the live rewards of a forgotten transaction into `archived`.
fn archive(archived: &mut Vec<Archived>, tx: &Transaction) {
    for r in tx.rewards.iter().filter(|r| r.is_live()) {
        match archived.iter_mut().find(|a| a.offer == r.offer) {
            Some(a) => {
                a.value += r.value;
                a.live += 1;
            }
            None => archived.push(Archived { offer: r.offer, value: r.value, live: 1 }),
        }
    }
}

impl<'a> IntoIterator for &'a TxMap {
    type Item = (&'a str, &'a Transaction);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a Transaction)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<&str> for TxMap {
    type Output = Transaction;
    fn index(&self, id: &str) -> &Transaction {
        self.get(id).expect("no such transaction")
    }
}

impl PartialEq for TxMap {
    fn eq(&self, other: &Self) -> bool {
        // Equal when they remember the same transactions and hold the same
        // archived rewards.
        let remembered = |m: &TxMap| m.table.iter().filter(|e| !e.expired(m.cutoff)).count();
        remembered(self) == remembered(other)
            && self.table.iter().filter(|e| !e.expired(self.cutoff)).all(|e| other.get(e.key.as_str()) == Some(&e.tx))
            && self.archived.len() == other.archived.len()
            && self.archived.iter().all(|a| other.archived.contains(a))
    }
}

impl Eq for TxMap {}

impl std::fmt::Debug for TxMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()?;
        if !self.archived.is_empty() {
            write!(f, " archived {:?}", self.archived)?;
        }
        Ok(())
    }
}

/// What cardlink remembers about one card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardState {
    /// Ids of processed events (R2).
    pub seen: IdSet,
    /// Offers the card activated (R3).
    pub activations: IdSet,
    /// Transactions by id (R8–R11).
    pub transactions: TxMap,
    /// Live rewards per offer (R7); entries at zero are removed.
    pub live: Vec<(OfferIdx, u32)>,
    /// The newest day of the card's processed events; `None` before the
    /// first (or the first after a restore).
    clock: Option<i32>,
    /// Days to remember; 0 for ever. Set by the [`CardStore`].
    retention_days: u32,
}

impl CardState {
    /// Live rewards of `offer` on this card (R7).
    #[inline]
    pub fn live_count(&self, offer: OfferIdx) -> u32 {
        self.live.iter().find(|(o, _)| *o == offer).map_or(0, |(_, n)| *n)
    }

    /// The card's clock: the newest day (see [`day_of`]) of its processed
    /// events, from which retention counts.
    pub fn clock(&self) -> Option<i32> {
        self.clock
    }

    /// Sets the card's clock (restoring a snapshot that kept it).
    pub fn restore_clock(&mut self, clock: Option<i32>) {
        self.clock = clock;
    }

    /// Starts applying a processed event (R2 judged, the event valid):
    /// remembers its id and stamps what it names with the card's clock
    /// moved to this event's day. What the event looks up is judged by the
    /// clock before it, up to [`CardState::end_event`].
    #[inline]
    pub fn begin_event(&mut self, event_id: &str, at: chrono::DateTime<chrono::FixedOffset>) {
        let day = self.advance_clock(at);
        self.seen.insert_on(event_id, day);
    }

    /// [`CardState::begin_event`] of an event whose id, hashed `hash`
    /// ([`IdSet::hash`]), the caller found not remembered (R2 judged on
    /// this state).
    #[inline]
    pub(crate) fn begin_unseen_event(&mut self, event_id: &str, hash: u64, at: chrono::DateTime<chrono::FixedOffset>) {
        let day = self.advance_clock(at);
        self.seen.insert_unseen_on_hashed(event_id, hash, day);
    }

    /// Moves the clock to the day of an event at `at` (never back), and
    /// has the transactions it names stamped with that day; returns it.
    #[inline]
    fn advance_clock(&mut self, at: chrono::DateTime<chrono::FixedOffset>) -> i32 {
        let day = self.clock.map_or(day_of(at), |c| c.max(day_of(at)));
        self.transactions.begin(day);
        self.clock = Some(day);
        day
    }

    /// Ends the event [`CardState::begin_event`] started: with a retention,
    /// ids and closed transactions more than the retention's days older
    /// than the clock are forgotten.
    #[inline]
    pub fn end_event(&mut self) {
        let (Some(clock), days) = (self.clock, self.retention_days) else { return };
        if days == 0 {
            return;
        }
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let cutoff = clock.saturating_sub(days);
        self.seen.forget_before(cutoff);
        self.transactions.end(cutoff, (days / 8).max(1));
    }

    /// Bytes of memory the state holds beyond its own size, for sizing.
    pub fn heap_bytes(&self) -> usize {
        self.seen.heap_bytes()
            + self.activations.heap_bytes()
            + self.transactions.heap_bytes()
            + self.live.capacity() * std::mem::size_of::<(OfferIdx, u32)>()
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

/// The hash a card is filed under.
fn card_hash((key, _): &(InlineKey, CardState)) -> u64 {
    hash_bytes(key.as_bytes())
}

/// The steps of [`CardStore::prefetch`], farthest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// Where the card's entry is filed.
    Card,
    /// The card's entry.
    State,
    /// Where its seen ids and its transaction are filed, and its live counts.
    Ids,
    /// The transaction's entry.
    Transaction,
    /// The transaction's rewards.
    Rewards,
    /// The offers of the transaction's rewards (see `Engine::prefetch`).
    Offers,
}

/// An event's keys and their hashes, computed once for all the steps of
/// its prefetch ([`CardStore::prefetch`]), and where the steps found its
/// card, transaction and merchant, so that a later step need not look
/// them up again. Positions are hints: the tables may change between
/// steps, and a stale position only prefetches the wrong lines.
#[derive(Debug, Clone)]
pub struct PrefetchKeys<'a> {
    card_token: &'a str,
    card: u64,
    pub(crate) event_id: u64,
    pub(crate) transaction: Option<(&'a str, u64)>,
    /// A purchase's currency, merchant id and the id's hash.
    pub(crate) merchant: Option<(Currency, &'a str, u64)>,
    /// Position of the card's entry in the card table.
    card_at: Cell<Option<usize>>,
    /// Position of the transaction's entry in the card's table.
    pub(crate) transaction_at: Cell<Option<usize>>,
    /// Position of the merchant's candidate list in the book's index.
    pub(crate) merchant_at: Cell<Option<usize>>,
}

/// The hashes of an event's keys ([`PrefetchKeys`]), computable apart from
/// the engine: the replay's reading thread computes them beside decoding,
/// so that the engine's thread does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHashes {
    card: u64,
    event_id: u64,
    /// 0 when the event names no transaction.
    transaction: u64,
    /// 0 when the event is not a purchase.
    merchant: u64,
}

impl KeyHashes {
    /// The hashes of `event`'s keys.
    #[inline]
    pub fn of(event: &crate::event::CardEvent<'_>) -> Self {
        let merchant = match event.body {
            crate::event::EventBody::Authorization(p) | crate::event::EventBody::Clearing(p) => {
                hash_bytes(p.merchant.mid.as_bytes())
            }
            _ => 0,
        };
        KeyHashes {
            card: hash_bytes(event.card_token.as_bytes()),
            event_id: IdSet::hash(event.event_id),
            transaction: event.transaction_id().map_or(0, |t| hash_bytes(t.as_bytes())),
            merchant,
        }
    }
}

impl<'a> PrefetchKeys<'a> {
    /// The keys of `event`.
    #[inline]
    pub fn of(event: &crate::event::CardEvent<'a>) -> Self {
        Self::hashed(event, KeyHashes::of(event))
    }

    /// The keys of `event`, whose hashes are `hashes`, which must be
    /// `KeyHashes::of(event)`: they are trusted (a debug build checks).
    #[inline]
    pub(crate) fn hashed(event: &crate::event::CardEvent<'a>, hashes: KeyHashes) -> Self {
        let merchant = match event.body {
            crate::event::EventBody::Authorization(p) | crate::event::EventBody::Clearing(p) => {
                Some((p.money.currency, p.merchant.mid, hashes.merchant))
            }
            _ => None,
        };
        PrefetchKeys {
            card_token: event.card_token,
            card: hashes.card,
            event_id: hashes.event_id,
            transaction: event.transaction_id().map(|t| (t, hashes.transaction)),
            merchant,
            card_at: Cell::new(None),
            transaction_at: Cell::new(None),
            merchant_at: Cell::new(None),
        }
    }
}

impl PrefetchKeys<'_> {
    /// True when these are the keys of `event` (for debug checks).
    pub(crate) fn is_of(&self, event: &crate::event::CardEvent<'_>) -> bool {
        let of_event = PrefetchKeys::of(event);
        self.card_token == of_event.card_token
            && (self.card, self.event_id) == (of_event.card, of_event.event_id)
            && self.transaction == of_event.transaction
            && self.merchant == of_event.merchant
    }
}

impl Prefetch {
    /// Every step with how many events ahead of the one being applied it
    /// is best taken: one event apart, about the time memory takes to
    /// answer (an event takes the engine around a microsecond), and near
    /// enough that what arrives is still in the cache when used.
    pub const PIPELINE: [(usize, Prefetch); 6] = [
        (6, Prefetch::Card),
        (5, Prefetch::State),
        (4, Prefetch::Ids),
        (3, Prefetch::Transaction),
        (2, Prefetch::Rewards),
        (1, Prefetch::Offers),
    ];
}

/// Every card's state, by card token.
#[derive(Clone, Default)]
pub struct CardStore {
    // States are held in the table itself: the look-up each event starts
    // with lands on the state it needs.
    cards: Indexed<(InlineKey, CardState)>,
    retention_days: u32,
}

impl std::fmt::Debug for CardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl CardStore {
    /// An empty store whose cards remember for `retention` (see
    /// [`Retention`]).
    pub fn with_retention(retention: Retention) -> Self {
        CardStore { retention_days: retention.map_or(0, |d| d.get()), ..CardStore::default() }
    }

    /// How long this store's cards remember.
    pub fn retention(&self) -> Retention {
        std::num::NonZeroU32::new(self.retention_days)
    }

    #[inline]
    fn slot(&self, token: &str) -> Option<usize> {
        self.slot_hashed(token, hash_bytes(token.as_bytes()))
    }

    #[inline]
    fn slot_hashed(&self, token: &str, hash: u64) -> Option<usize> {
        self.cards.find(hash, |(k, _)| k.as_bytes() == token.as_bytes())
    }

    /// The state of a card, if it has any.
    #[inline]
    pub fn get(&self, token: &str) -> Option<&CardState> {
        self.slot(token).map(|i| &self.cards.get(i).1)
    }

    /// The state of a card, for change.
    #[inline]
    pub fn get_mut(&mut self, token: &str) -> Option<&mut CardState> {
        self.slot(token).map(|i| &mut self.cards.get_mut(i).1)
    }

    /// The state of the card of `keys` (see [`PrefetchKeys::of`]), for
    /// change: where a prefetch step found it, else looked up by its hash.
    #[inline]
    pub(crate) fn get_mut_keyed(&mut self, keys: &PrefetchKeys<'_>) -> Option<&mut CardState> {
        let token = keys.card_token.as_bytes();
        let position = self.cards.find_hinted(keys.card_at.get(), keys.card, |(k, _)| k.as_bytes() == token)?;
        Some(&mut self.cards.get_mut(position).1)
    }

    /// A new, empty state for the card of `keys`, which has none.
    pub(crate) fn insert_keyed(&mut self, keys: &PrefetchKeys<'_>) -> &mut CardState {
        let state = CardState { retention_days: self.retention_days, ..CardState::default() };
        let position = self.cards.insert_new(keys.card, (InlineKey::new(keys.card_token), state), card_hash);
        &mut self.cards.get_mut(position).1
    }

    /// The state of a card, created empty when new.
    pub fn get_or_insert(&mut self, token: &str) -> &mut CardState {
        let slot = match self.slot(token) {
            Some(slot) => slot,
            None => {
                let state = CardState { retention_days: self.retention_days, ..CardState::default() };
                self.cards.insert_new(hash_bytes(token.as_bytes()), (InlineKey::new(token), state), card_hash)
            }
        };
        &mut self.cards.get_mut(slot).1
    }

    /// Brings closer the memory that applying an event of `card_token`
    /// reads first. Applying an event follows a chain of look-ups (the
    /// card, then its seen ids and its transaction, then the transaction's
    /// rewards), so this comes in steps, each to be called when the
    /// previous one's memory has had time to arrive, as
    /// [`Prefetch::PIPELINE`] says. A hint only: it changes nothing.
    #[inline]
    pub fn prefetch(&self, step: Prefetch, keys: &PrefetchKeys<'_>) {
        match step {
            Prefetch::Card => self.cards.prefetch(keys.card),
            // An entry (key and state) spans five to six cache lines,
            // wherever it starts; the first rules read most of them.
            Prefetch::State => keys.card_at.set(self.cards.prefetch_entry(keys.card, 6)),
            Prefetch::Ids => {
                // Looked up when filed beyond the probe line the last step read.
                let found = self.cards.remembered(&keys.card_at, || self.slot_hashed(keys.card_token, keys.card));
                let Some((_, card)) = found else { return };
                card.seen.prefetch(keys.event_id);
                if let Some((_, tx)) = keys.transaction {
                    card.transactions.prefetch(tx);
                }
                if keys.merchant.is_some() {
                    card.activations.prefetch_small();
                }
                crate::flat::prefetch(card.live.as_ptr());
            }
            Prefetch::Transaction => {
                if let (Some(card), Some((_, tx))) = (self.card_found(keys), keys.transaction) {
                    keys.transaction_at.set(card.transactions.prefetch_entry(tx));
                }
            }
            Prefetch::Rewards => {
                if let Some(tx) = self.transaction_found(keys) {
                    crate::flat::prefetch(tx.rewards.as_ptr());
                }
            }
            // The offers are the book's: see `Engine::prefetch`.
            Prefetch::Offers => {}
        }
    }

    /// The card an earlier step of `keys` found.
    #[inline]
    fn card_found(&self, keys: &PrefetchKeys<'_>) -> Option<&CardState> {
        self.cards.try_get(keys.card_at.get()?).map(|(_, card)| card)
    }

    /// The transaction an earlier step of `keys` found (a hint only: the
    /// position may have changed hands since).
    #[inline]
    pub(crate) fn transaction_found(&self, keys: &PrefetchKeys<'_>) -> Option<&Transaction> {
        self.card_found(keys)?.transactions.at_position(keys.transaction_at.get()?)
    }

    /// Every card, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CardState)> {
        self.cards.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of cards with state.
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// True when no card has state.
    pub fn is_empty(&self) -> bool {
        self.cards.len() == 0
    }

    /// Puts a card's state in place (restoring from a snapshot); it keeps
    /// this store's retention.
    pub fn insert(&mut self, token: &str, mut state: CardState) {
        state.retention_days = self.retention_days;
        *self.get_or_insert(token) = state;
    }

    /// Removes a card's state (a partition moving away).
    pub fn remove(&mut self, token: &str) -> Option<CardState> {
        let position = self.slot(token)?;
        Some(self.cards.remove(position, card_hash).1)
    }

    /// Bytes of memory the store holds, for sizing: the table and every
    /// card's own allocations.
    pub fn heap_bytes(&self) -> usize {
        self.cards.capacity() * 8
            + self.cards.entries_capacity() * std::mem::size_of::<(InlineKey, CardState)>()
            + self
                .cards
                .iter()
                .map(|(k, c)| c.heap_bytes() + if let InlineKey::Heap(s) = k { s.len() } else { 0 })
                .sum::<usize>()
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

    /// R2 under a retention (docs/kafka.md, `retention_days`): an id forgotten by day
    /// is new again.
    #[test]
    fn ids_are_forgotten_by_day_and_memory_is_given_back() {
        let mut seen = IdSet::default();
        // Restored ids (no day) count from the first day given after them.
        seen.extend(["r1", "r2"]);
        for day in 10..20 {
            for i in 0..100 {
                assert!(seen.insert_on(&format!("d{day}-{i}"), day));
            }
        }
        assert!(!seen.insert_on("d12-5", 19));
        assert_eq!(seen.len(), 1002);
        let days: Vec<(String, Option<i32>)> = seen
            .iter_with_days()
            .filter(|(id, _)| id.ends_with("-0") || id.starts_with('r'))
            .map(|(i, d)| (i.to_owned(), d))
            .collect();
        assert_eq!(days[..3], [("r1".into(), Some(10)), ("r2".into(), Some(10)), ("d10-0".into(), Some(10))]);
        seen.forget_before(11);
        assert!(!seen.contains("r1") && !seen.contains("d10-99") && seen.contains("d11-0"));
        assert_eq!(seen.len(), 900);
        let before = seen.heap_bytes();
        seen.forget_before(16);
        assert_eq!(seen.len(), 400);
        assert!(seen.heap_bytes() < before * 2 / 3, "{} of {before}", seen.heap_bytes());
        assert!(!seen.contains("d15-3") && seen.contains("d16-3") && seen.contains("d19-99"));
        // A forgotten id is new again, and counts from its new day.
        assert!(seen.insert_on("d10-5", 19) && seen.contains("d10-5"));
        seen.forget_before(20);
        assert!(seen.is_empty() && !seen.contains("d10-5"));
        assert!(seen.insert_on("x", 25) && seen.len() == 1);
        // Once every mark is dropped, the next days are marked afresh.
        assert!(seen.insert_on("y", 26) && seen.insert_on("z", 26));
        seen.forget_before(26);
        assert!(!seen.contains("x") && seen.contains("y") && seen.contains("z"));
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
