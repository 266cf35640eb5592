//! The offer book: every offer by id, the index that finds the candidates
//! for a purchase without scanning the catalogue, and each offer's budget
//! usage (R6).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::country::Country;
use crate::flat::{Indexed, prefetch};
use crate::money::Currency;
use crate::offer::{Hours, Offer, RewardRule};
use crate::state::{InlineKey, Prefetch, PrefetchKeys, hash_bytes};

/// Position of an offer in the book. Slots are never reused, so an index
/// stays valid for rewards that outlive their offer's retirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferIdx(pub u32);

/// What an offer's live rewards add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of live reward values (R6), in the reward's unit.
    pub used: Decimal,
    /// Number of live rewards: transactions rewarded by this offer.
    pub live: u64,
}

/// One offer and its usage.
///
/// Aligned to a cache line, whose 64 bytes hold everything that applying a
/// reward of the offer reads and writes: the usage, the id (in place when
/// short, as a reward record names it), the reward's kind and whether there
/// is a budget. At a large catalogue that is one line per reward instead of
/// three, and no separate read of the id's heap string.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct OfferSlot {
    /// Budget usage.
    pub usage: Usage,
    /// `offer.id`, kept in place when short.
    id: InlineKey,
    /// `RewardKind::of(&offer)`.
    kind: crate::engine::RewardKind,
    /// `offer.budget.is_some()`.
    budgeted: bool,
    /// False once retired: it matches nothing, but its rewards still settle.
    pub active: bool,
    /// The current definition.
    pub offer: Offer,
}

const _: () = assert!(std::mem::offset_of!(OfferSlot, active) < 64, "a reward's fields share the slot's first line");

/// Where the offer's fields that re-valuing a reward reads end in an
/// [`OfferSlot`] (the offer's fields before its merchant lists).
const SLOT_RULES_END: usize = std::mem::offset_of!(OfferSlot, offer) + std::mem::offset_of!(Offer, mids);

impl OfferSlot {
    fn new(offer: Offer) -> Self {
        OfferSlot {
            usage: Usage::default(),
            id: InlineKey::new(&offer.id),
            kind: crate::engine::RewardKind::of(&offer),
            budgeted: offer.budget.is_some(),
            active: true,
            offer,
        }
    }

    /// Replaces the definition, keeping the usage and whether it is active.
    fn redefine(&mut self, offer: Offer) {
        let OfferSlot { usage, active, .. } = *self;
        *self = OfferSlot { usage, active, ..OfferSlot::new(offer) };
    }

    /// The offer's id (from the slot's first line when short).
    #[inline]
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The kind of the offer's rewards.
    #[inline]
    pub fn kind(&self) -> crate::engine::RewardKind {
        self.kind
    }

    /// True when the offer has a budget (R6).
    #[inline]
    pub fn budgeted(&self) -> bool {
        self.budgeted
    }
}

/// What the matcher needs of an offer, copied into the index lists so that
/// judging the candidates of a purchase reads one contiguous list instead
/// of one scattered offer each.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The offer.
    pub idx: OfferIdx,
    /// Network bit set; 0 matches any.
    pub networks: u8,
    /// Weekday bit set; 0 matches any.
    pub days: u8,
    /// The card must have activated the offer.
    pub activation_required: bool,
    /// [`crate::state::IdSet::hash`] of the offer id, to look activations
    /// up without hashing the id per candidate.
    pub id_hash: u64,
    /// MCC or country lists beyond the anchor: judged on the offer itself.
    pub extra_merchant_rules: bool,
    /// Local time window.
    pub hours: Option<Hours>,
    /// Validity window.
    pub valid_from: Option<DateTime<Utc>>,
    #[allow(missing_docs)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Minimum purchase amount.
    pub min_spend: Decimal,
    /// Value rule.
    pub reward: RewardRule,
    /// Cap per transaction.
    pub max_reward: Option<Decimal>,
    /// The offer has a budget (its amount is read from the offer when it
    /// matters, which is rarely).
    pub budgeted: bool,
    /// Per-card limit; 0 for none (a limit is positive).
    pub max_per_card: u64,
    /// Digits of the reward's unit.
    pub value_digits: u8,
}

impl Candidate {
    /// The per-card limit (R7), if any.
    #[inline]
    pub fn max_per_card(&self) -> Option<u64> {
        (self.max_per_card != 0).then_some(self.max_per_card)
    }

    fn of(idx: OfferIdx, offer: &Offer) -> Self {
        let extra_merchant_rules = if !offer.mids.is_empty() {
            !offer.mccs.is_empty() || !offer.countries.is_empty()
        } else {
            !offer.mccs.is_empty() && !offer.countries.is_empty()
        };
        Candidate {
            idx,
            networks: offer.networks,
            days: offer.days,
            activation_required: offer.activation_required,
            id_hash: crate::state::IdSet::hash(&offer.id),
            extra_merchant_rules,
            hours: offer.hours,
            valid_from: offer.valid_from,
            valid_until: offer.valid_until,
            min_spend: offer.min_spend,
            reward: offer.reward,
            max_reward: offer.max_reward,
            budgeted: offer.budget.is_some(),
            max_per_card: offer.max_per_card.unwrap_or(0),
            value_digits: offer.value_digits() as u8,
        }
    }
}

/// Candidate lists of one currency. Each offer sits under exactly one
/// anchor, its most selective non-empty restriction: merchant ids, else
/// MCCs, else countries, else the catch-all list. A purchase has one mid,
/// one MCC and at most one country, so it meets each offer at most once.
#[derive(Clone, Default)]
struct CurrencyIndex {
    /// Keys keep short merchant ids in place: a look-up reads no separate
    /// key string. A table of ours, so a coming purchase's list can be
    /// prefetched ([`OfferBook::prefetch`]).
    by_mid: Indexed<(InlineKey, Vec<Candidate>)>,
    by_mcc: FxHashMap<u16, Vec<Candidate>>,
    by_country: FxHashMap<Country, Vec<Candidate>>,
    any: Vec<Candidate>,
}

impl std::fmt::Debug for CurrencyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrencyIndex")
            .field("by_mid", &self.by_mid.len())
            .field("by_mcc", &self.by_mcc.len())
            .field("by_country", &self.by_country.len())
            .field("any", &self.any.len())
            .finish()
    }
}

/// The hash a merchant's candidate list is filed under.
fn mid_hash((key, _): &(InlineKey, Vec<Candidate>)) -> u64 {
    hash_bytes(key.as_bytes())
}

impl CurrencyIndex {
    #[inline]
    fn mid_position(&self, mid: &str) -> Option<usize> {
        self.mid_position_hashed(mid, hash_bytes(mid.as_bytes()))
    }

    #[inline]
    fn mid_position_hashed(&self, mid: &str, hash: u64) -> Option<usize> {
        self.by_mid.find(hash, |(k, _)| k.as_bytes() == mid.as_bytes())
    }

    fn mid_mut(&mut self, mid: &str) -> &mut Vec<Candidate> {
        let position = match self.mid_position(mid) {
            Some(p) => p,
            None => self.by_mid.insert_new(hash_bytes(mid.as_bytes()), (InlineKey::new(mid), Vec::new()), mid_hash),
        };
        &mut self.by_mid.get_mut(position).1
    }
}

/// All offers, indexed for matching, with their budget usage.
#[derive(Debug, Clone, Default)]
pub struct OfferBook {
    slots: Vec<OfferSlot>,
    by_id: FxHashMap<Box<str>, OfferIdx>,
    index: FxHashMap<Currency, CurrencyIndex>,
    active: usize,
}

impl OfferBook {
    /// A book holding `offers`.
    pub fn new(offers: impl IntoIterator<Item = Offer>) -> Self {
        let mut book = OfferBook::default();
        for offer in offers {
            book.upsert(offer);
        }
        book
    }

    /// Adds an offer or replaces the definition of the offer with its id.
    /// Usage is kept across a replacement: the live rewards still count
    /// against the budget.
    pub fn upsert(&mut self, offer: Offer) -> OfferIdx {
        if let Some(&idx) = self.by_id.get(&offer.id) {
            self.unindex(idx);
            let slot = &mut self.slots[idx.0 as usize];
            slot.redefine(offer);
            // Counted once: replacing an active offer adds none.
            if !slot.active {
                slot.active = true;
                self.active += 1;
            }
            self.index_offer(idx);
            return idx;
        }
        let idx = OfferIdx(u32::try_from(self.slots.len()).expect("fewer than 2^32 offers"));
        self.by_id.insert(offer.id.clone(), idx);
        self.slots.push(OfferSlot::new(offer));
        self.active += 1;
        self.index_offer(idx);
        idx
    }

    /// Retires an offer: it matches no new purchase, while its existing
    /// rewards still settle, revert and refund by its last definition.
    /// Returns false when no active offer has that id.
    pub fn retire(&mut self, id: &str) -> bool {
        match self.by_id.get(id) {
            Some(&idx) if self.slots[idx.0 as usize].active => {
                self.unindex(idx);
                self.slots[idx.0 as usize].active = false;
                self.active -= 1;
                true
            }
            _ => false,
        }
    }

    /// The slot of an offer.
    #[inline]
    pub fn slot(&self, idx: OfferIdx) -> &OfferSlot {
        &self.slots[idx.0 as usize]
    }

    /// The usage of an offer, for the lifecycle to update.
    #[inline]
    pub fn usage_mut(&mut self, idx: OfferIdx) -> &mut Usage {
        &mut self.slots[idx.0 as usize].usage
    }

    /// Looks an offer up by id (active or retired).
    pub fn find(&self, id: &str) -> Option<OfferIdx> {
        self.by_id.get(id).copied()
    }

    /// Every slot, in the order offers were first added.
    pub fn slots(&self) -> impl Iterator<Item = (OfferIdx, &OfferSlot)> {
        self.slots.iter().enumerate().map(|(i, s)| (OfferIdx(i as u32), s))
    }

    /// Forgets every offer's usage, for a run that starts with no card
    /// state (usage must always equal what the card stores hold).
    pub fn clear_usage(&mut self) {
        for slot in &mut self.slots {
            slot.usage = Usage::default();
        }
    }

    /// Number of active offers.
    pub fn active_len(&self) -> usize {
        self.active
    }

    /// Calls `f` for each active offer that a purchase in `currency` at this
    /// merchant could match; the caller judges the remaining rules. Costs a
    /// few hash look-ups plus the candidates, whatever the catalogue's size.
    #[inline]
    pub fn for_each_candidate(
        &self,
        currency: Currency,
        mid: &str,
        mcc: u16,
        country: Option<Country>,
        f: impl FnMut(&Candidate),
    ) {
        self.for_each_candidate_hashed(currency, mid, hash_bytes(mid.as_bytes()), None, mcc, country, f);
    }

    /// [`OfferBook::for_each_candidate`] given the merchant id's hash and
    /// where a prefetch step found its list (a hint, checked).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_each_candidate_hashed(
        &self,
        currency: Currency,
        mid: &str,
        mid_hash: u64,
        hint: Option<usize>,
        mcc: u16,
        country: Option<Country>,
        mut f: impl FnMut(&Candidate),
    ) {
        let Some(ci) = self.index.get(&currency) else { return };
        if let Some(p) = ci.by_mid.find_hinted(hint, mid_hash, |(k, _)| k.as_bytes() == mid.as_bytes()) {
            ci.by_mid.get(p).1.iter().for_each(&mut f);
        }
        if let Some(list) = ci.by_mcc.get(&mcc) {
            list.iter().for_each(&mut f);
        }
        if let Some(list) = country.and_then(|c| ci.by_country.get(&c)) {
            list.iter().for_each(&mut f);
        }
        ci.any.iter().for_each(&mut f);
    }

    /// Brings closer what matching a purchase at merchant `mid` in
    /// `currency` will read, one step of [`Prefetch::PIPELINE`] at a
    /// time: where the merchant's candidate list is filed, its entry, the
    /// list, and the candidates' offers (nothing for an event that is not a
    /// purchase). A hint only: it changes nothing.
    #[inline]
    pub fn prefetch_candidates(&self, step: Prefetch, keys: &PrefetchKeys<'_>) {
        let Some((currency, mid, hash)) = keys.merchant else { return };
        let Some(ci) = self.index.get(&currency) else { return };
        // Where the State step found the merchant, or a look-up when the
        // merchant was filed beyond the probe line it read.
        let list = || ci.by_mid.remembered(&keys.merchant_at, || ci.mid_position_hashed(mid, hash)).map(|(_, l)| l);
        match step {
            Prefetch::Card => ci.by_mid.prefetch(hash),
            Prefetch::State => keys.merchant_at.set(ci.by_mid.prefetch_entry(hash, 1)),
            Prefetch::Ids => {
                if let Some(list) = list() {
                    let start = list.as_ptr().cast::<u8>();
                    let bytes = (list.len() * std::mem::size_of::<Candidate>()).min(16 * 64);
                    for offset in (0..bytes).step_by(64) {
                        prefetch(start.wrapping_add(offset));
                    }
                }
            }
            Prefetch::Transaction => {
                if let Some(list) = list() {
                    for c in list {
                        self.prefetch_slot(c.idx);
                    }
                }
            }
            Prefetch::Rewards | Prefetch::Offers => {}
        }
    }

    /// Brings closer the cache line of an offer's slot that applying a new
    /// reward of it reads and writes.
    #[inline]
    pub fn prefetch_slot(&self, idx: OfferIdx) {
        if let Some(slot) = self.slots.get(idx.0 as usize) {
            prefetch(slot as *const OfferSlot);
        }
    }

    /// Brings closer the lines of an offer's slot that re-valuing a reward
    /// of it (a clearing, a refund) reads: the first, and the offer's
    /// value rule, caps and minimum spend.
    #[inline]
    pub fn prefetch_slot_rules(&self, idx: OfferIdx) {
        if let Some(slot) = self.slots.get(idx.0 as usize) {
            let start = (slot as *const OfferSlot).cast::<u8>();
            for line in 0..SLOT_RULES_END.div_ceil(64) {
                prefetch(start.wrapping_add(line * 64));
            }
        }
    }

    fn index_offer(&mut self, idx: OfferIdx) {
        let offer = &self.slots[idx.0 as usize].offer;
        let candidate = Candidate::of(idx, offer);
        let ci = self.index.entry(offer.currency).or_default();
        if !offer.mids.is_empty() {
            for mid in &offer.mids {
                ci.mid_mut(mid).push(candidate.clone());
            }
        } else if !offer.mccs.is_empty() {
            for &mcc in &offer.mccs {
                ci.by_mcc.entry(mcc).or_default().push(candidate.clone());
            }
        } else if !offer.countries.is_empty() {
            for &c in &offer.countries {
                ci.by_country.entry(c).or_default().push(candidate.clone());
            }
        } else {
            ci.any.push(candidate);
        }
    }

    fn unindex(&mut self, idx: OfferIdx) {
        let offer = &self.slots[idx.0 as usize].offer;
        let Some(ci) = self.index.get_mut(&offer.currency) else { return };
        let drop_from = |list: &mut Vec<Candidate>| list.retain(|c| c.idx != idx);
        if !offer.mids.is_empty() {
            for mid in &offer.mids {
                if let Some(position) = ci.mid_position(mid) {
                    let list = &mut ci.by_mid.get_mut(position).1;
                    drop_from(list);
                    if list.is_empty() {
                        ci.by_mid.remove(position, mid_hash);
                    }
                }
            }
        } else if !offer.mccs.is_empty() {
            for mcc in &offer.mccs {
                if let Some(list) = ci.by_mcc.get_mut(mcc) {
                    drop_from(list);
                }
            }
        } else if !offer.countries.is_empty() {
            for c in &offer.countries {
                if let Some(list) = ci.by_country.get_mut(c) {
                    drop_from(list);
                }
            }
        } else {
            drop_from(&mut ci.any);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::parse_offer;

    fn offer(json: serde_json::Value) -> Offer {
        parse_offer(&json).unwrap()
    }

    /// The offers a USD purchase at `mid` (MCC 5812, US) meets.
    fn candidates(book: &OfferBook, mid: &str) -> Vec<String> {
        let usd = Currency::from_code("USD").unwrap();
        let mut out = Vec::new();
        book.for_each_candidate(usd, mid, 5812, Some(*b"US"), |c| out.push(book.slot(c.idx).offer.id.to_string()));
        out.sort();
        out
    }

    #[test]
    fn the_index_follows_upserts_and_retirements() {
        let long_mid = "M".repeat(40);
        let mut book = OfferBook::new([
            offer(
                serde_json::json!({"id": "a", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mids": ["M1", long_mid]}}),
            ),
            offer(
                serde_json::json!({"id": "b", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mids": ["M1"]}}),
            ),
            offer(
                serde_json::json!({"id": "c", "currency": "USD", "reward": {"percent": "5"}, "merchant": {"mccs": ["5812"]}}),
            ),
            offer(serde_json::json!({"id": "d", "currency": "EUR", "reward": {"percent": "5"}})),
        ]);
        assert_eq!(candidates(&book, "M1"), ["a", "b", "c"]);
        assert_eq!(candidates(&book, &long_mid), ["a", "c"]);
        assert_eq!(candidates(&book, "M2"), ["c"]);
        assert!(book.retire("a") && !book.retire("a"));
        assert_eq!(candidates(&book, "M1"), ["b", "c"]);
        assert_eq!(candidates(&book, &long_mid), ["c"]);
        // A new definition moves the offer to its new anchor.
        book.upsert(offer(
            serde_json::json!({"id": "b", "currency": "USD", "reward": {"fixed": "1"}, "merchant": {"mids": ["M2"]}}),
        ));
        assert_eq!(candidates(&book, "M1"), ["c"]);
        assert_eq!(candidates(&book, "M2"), ["b", "c"]);
        assert_eq!(book.active_len(), 3);
    }

    /// The copies in a slot's first line (what applying a reward reads)
    /// follow the definition; the usage stays across a new definition.
    #[test]
    fn a_slot_keeps_its_first_line_in_step_with_its_offer() {
        let long_id = format!("offer-{}", "x".repeat(40));
        let mut book = OfferBook::new([offer(
            serde_json::json!({"id": long_id, "currency": "JPY", "reward": {"percent": "5"}, "budget": "100"}),
        )]);
        let idx = book.find(&long_id).unwrap();
        let check = |book: &OfferBook, kind: &str, digits: u32, budgeted: bool| {
            let slot = book.slot(idx);
            assert_eq!((slot.id(), &*slot.offer.id), (&*long_id, &*long_id));
            assert_eq!((slot.kind().as_str(), slot.kind().digits(), slot.budgeted()), (kind, digits, budgeted));
            assert_eq!(slot.kind(), crate::engine::RewardKind::of(&slot.offer));
        };
        check(&book, "CASH", 0, true);
        book.usage_mut(idx).used = Decimal::from(7);
        book.upsert(offer(serde_json::json!({"id": long_id, "currency": "JPY", "reward": {"points_per_unit": "2"}})));
        check(&book, "POINTS", 0, false);
        assert_eq!(book.slot(idx).usage.used, Decimal::from(7));
        assert!(book.retire(&long_id));
        book.upsert(offer(
            serde_json::json!({"id": long_id, "currency": "KWD", "reward": {"fixed": "1"}, "budget": "9"}),
        ));
        check(&book, "CASH", 3, true);
        assert!(book.slot(idx).active);
        let short =
            OfferBook::new([offer(serde_json::json!({"id": "s", "currency": "USD", "reward": {"fixed": "1"}}))]);
        assert_eq!(short.slot(OfferIdx(0)).id(), "s");
        assert_eq!(std::mem::align_of::<OfferSlot>(), 64);
    }
}
