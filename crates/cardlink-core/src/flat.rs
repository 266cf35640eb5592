//! Small open-addressing hash tables whose slot for a hash is known before
//! reading any memory, so the memory an event will need can be prefetched
//! while earlier events are applied (see [`crate::state::CardStore::prefetch`]).
//! The general-purpose tables hide where a key's slot lies; per-card state
//! is far larger than the caches, and waiting for each of its cache lines
//! in turn was most of the engine's time in a long replay.
//!
//! Both probe linearly over a power-of-two array of 16-bit tags (bits of the
//! hash; 0 is an empty slot, 1 a deleted one), so a miss reads one line of
//! tags. [`Flat`] keeps small entries in a parallel array, with defaults in
//! empty slots; [`Indexed`] keeps large entries densely in a vector and
//! only their positions beside the tags, so empty slots cost 8 bytes.

use std::cell::Cell;

/// Tag of an empty slot; probing stops at one.
const EMPTY: u16 = 0;
/// Tag of a deleted slot; probing goes on past one.
const DELETED: u16 = 1;

#[inline]
fn tag_of(hash: u64) -> u16 {
    ((hash >> 48) as u16).max(2)
}

/// Asks the processor to bring the cache line holding `p` closer. A hint
/// only: it changes no value and never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing the program can observe and is
    // defined for any address, valid or not; SSE is part of x86-64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[derive(Clone)]
pub(crate) struct Flat<T> {
    tags: Box<[u16]>,
    slots: Box<[T]>,
    /// Full slots.
    len: usize,
    /// Full and deleted slots: what lengthens probes.
    used: usize,
}

impl<T> Default for Flat<T> {
    fn default() -> Self {
        Flat { tags: Box::default(), slots: Box::default(), len: 0, used: 0 }
    }
}

impl<T: Default> Flat<T> {
    #[inline]
    fn mask(&self) -> usize {
        self.tags.len().wrapping_sub(1)
    }

    /// Number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// The slot of the entry with `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.tags.is_empty() {
            return None;
        }
        let (tag, mask) = (tag_of(hash), self.mask());
        let mut i = hash as usize & mask;
        loop {
            match self.tags[i] {
                EMPTY => return None,
                t if t == tag && eq(&self.slots[i]) => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, slot: usize) -> &T {
        &self.slots[slot]
    }

    /// Files `value`, which must not be in the table (the caller looked it
    /// up first), and returns its slot. `rehash` gives an entry's hash when
    /// the table grows.
    pub(crate) fn insert_new(&mut self, hash: u64, value: T, rehash: impl Fn(&T) -> u64) -> usize {
        // At most 3/4 of the slots full or deleted: probes stay short and
        // always end at an empty slot.
        if (self.used + 1) * 4 > self.tags.len() * 3 {
            self.rebuild((self.len + 1).max(4) * 2, &rehash);
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.tags[i] > DELETED {
            i = (i + 1) & mask;
        }
        if self.tags[i] == EMPTY {
            self.used += 1;
        }
        self.tags[i] = tag_of(hash);
        self.slots[i] = value;
        self.len += 1;
        i
    }

    /// Room for at least `n` entries without growing.
    pub(crate) fn reserve(&mut self, n: usize, rehash: impl Fn(&T) -> u64) {
        if (self.used + n) * 4 > self.tags.len() * 3 {
            self.rebuild((self.len + n) * 2, &rehash);
        }
    }

    /// Takes the entry out of `slot`.
    pub(crate) fn remove(&mut self, slot: usize) -> T {
        debug_assert!(self.tags[slot] > DELETED);
        self.tags[slot] = DELETED;
        self.len -= 1;
        std::mem::take(&mut self.slots[slot])
    }

    /// Moves every entry into a table of at least `want` slots (a power of
    /// two), dropping deleted slots.
    fn rebuild(&mut self, want: usize, rehash: &impl Fn(&T) -> u64) {
        let cap = want.next_power_of_two().max(8);
        let mut next = Flat {
            tags: vec![EMPTY; cap].into_boxed_slice(),
            slots: (0..cap).map(|_| T::default()).collect(),
            len: 0,
            used: 0,
        };
        let mask = cap - 1;
        for i in 0..self.tags.len() {
            if self.tags[i] > DELETED {
                let value = std::mem::take(&mut self.slots[i]);
                let hash = rehash(&value);
                let mut j = hash as usize & mask;
                while next.tags[j] != EMPTY {
                    j = (j + 1) & mask;
                }
                next.tags[j] = tag_of(hash);
                next.slots[j] = value;
                next.len += 1;
                next.used += 1;
            }
        }
        *self = next;
    }

    /// Every entry, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.tags.iter().zip(self.slots.iter()).filter(|(t, _)| **t > DELETED).map(|(_, v)| v)
    }

    /// Prefetches the first line of the tags and of the entries: the
    /// whole of a small table.
    #[inline]
    pub(crate) fn prefetch_start(&self) {
        if self.len != 0 {
            prefetch(self.tags.as_ptr());
            prefetch(self.slots.as_ptr());
        }
    }

    /// Prefetches the tag and the first `lines` cache lines of the entry
    /// where a look-up of `hash` starts.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64, lines: usize) {
        if self.tags.is_empty() {
            return;
        }
        let i = hash as usize & self.mask();
        prefetch(&self.tags[i]);
        let entry = (&self.slots[i] as *const T).cast::<u8>();
        for line in 0..lines {
            prefetch(entry.wrapping_add(line * 64));
        }
    }
}

/// A hash table over a dense vector of entries, for entries too large to
/// leave empty slots of: the probe array holds only a tag and an entry's
/// position (8 bytes a slot), so memory is the entries themselves plus a
/// little, and growing moves no entry. Finding an entry reads one line of
/// the probe array and then the entry; both can be prefetched, the entry
/// once the probe line is near ([`Indexed::prefetch_entry`]).
#[derive(Clone)]
pub(crate) struct Indexed<T> {
    /// 0 empty, 1 deleted, else `tag << 32 | position`.
    probe: Box<[u64]>,
    entries: Vec<T>,
    /// Full and deleted probe slots.
    used: usize,
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed { probe: Box::default(), entries: Vec::new(), used: 0 }
    }
}

impl<T> Indexed<T> {
    #[inline]
    fn mask(&self) -> usize {
        self.probe.len().wrapping_sub(1)
    }

    #[inline]
    fn full(tag: u16, position: usize) -> u64 {
        (u64::from(tag) << 32) | position as u64
    }

    /// Number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Probe slots allocated.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.probe.len()
    }

    /// Entries allocated.
    #[inline]
    pub(crate) fn entries_capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The position of the entry with `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.probe.is_empty() {
            return None;
        }
        let (tag, mask) = (u64::from(tag_of(hash)), self.mask());
        let mut i = hash as usize & mask;
        loop {
            match self.probe[i] {
                0 => return None,
                p if p >> 32 == tag && eq(&self.entries[p as u32 as usize]) => return Some(p as u32 as usize),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// [`Indexed::find`], trying first the position `hint` (where a
    /// prefetch step found the key): taken only when `eq` holds there.
    #[inline]
    pub(crate) fn find_hinted(&self, hint: Option<usize>, hash: u64, eq: impl Fn(&T) -> bool) -> Option<usize> {
        match hint {
            Some(p) if self.try_get(p).is_some_and(&eq) => Some(p),
            _ => self.find(hash, eq),
        }
    }

    #[inline]
    pub(crate) fn get(&self, position: usize) -> &T {
        &self.entries[position]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, position: usize) -> &mut T {
        &mut self.entries[position]
    }

    /// The entry at `position`, if there is one: for hints that remember
    /// a position across changes to the table.
    #[inline]
    pub(crate) fn try_get(&self, position: usize) -> Option<&T> {
        self.entries.get(position)
    }

    /// Files `value`, which must not be in the table, and returns its
    /// position; `rehash` gives an entry's hash when the probe array grows.
    pub(crate) fn insert_new(&mut self, hash: u64, value: T, rehash: impl Fn(&T) -> u64) -> usize {
        if (self.used + 1) * 4 > self.probe.len() * 3 {
            self.rebuild((self.entries.len() + 1).max(4) * 2, &rehash);
        }
        let position = self.entries.len();
        assert!(position < u32::MAX as usize, "fewer than 2^32 entries");
        self.entries.push(value);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.probe[i] > 1 {
            i = (i + 1) & mask;
        }
        if self.probe[i] == 0 {
            self.used += 1;
        }
        self.probe[i] = Self::full(tag_of(hash), position);
        position
    }

    /// Room for `n` more entries without growing.
    pub(crate) fn reserve(&mut self, n: usize, rehash: impl Fn(&T) -> u64) {
        if (self.used + n) * 4 > self.probe.len() * 3 {
            self.rebuild((self.entries.len() + n) * 2, &rehash);
            self.entries.reserve(n);
        }
    }

    /// The probe slot holding `position`, found from its entry's hash.
    fn slot_of(&self, position: usize, hash: u64) -> usize {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.probe[i] <= 1 || self.probe[i] as u32 as usize != position {
            i = (i + 1) & mask;
        }
        i
    }

    /// Takes out the entry at `position`; the last entry takes its place.
    pub(crate) fn remove(&mut self, position: usize, rehash: impl Fn(&T) -> u64) -> T {
        let slot = self.slot_of(position, rehash(&self.entries[position]));
        self.probe[slot] = 1;
        let last = self.entries.len() - 1;
        if position != last {
            let moved = self.slot_of(last, rehash(&self.entries[last]));
            self.probe[moved] = Self::full((self.probe[moved] >> 32) as u16, position);
        }
        self.entries.swap_remove(position)
    }

    /// Keeps the entries for which `keep` holds; the others are passed to
    /// `keep` as they go (it may take what it needs from them).
    /// A table left much emptier than its allocation shrinks to four times
    /// what it holds (so it does not grow back at once): otherwise a card
    /// keeps the memory of its busiest week for ever.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&mut T) -> bool, rehash: impl Fn(&T) -> u64) {
        let before = self.entries.len();
        self.entries.retain_mut(|e| keep(e));
        let len = self.entries.len();
        if len != before {
            if self.entries.capacity() > 8 * len.max(1) {
                self.entries.shrink_to(4 * len);
            }
            let want = if 8 * len < self.probe.len() { 4 * len } else { self.probe.len() };
            self.rebuild(want, &rehash);
        }
    }

    /// A probe array of at least `want` slots (a power of two) for the
    /// entries, without deleted slots.
    fn rebuild(&mut self, want: usize, rehash: &impl Fn(&T) -> u64) {
        let cap = want.next_power_of_two().max(8);
        let mut probe = vec![0u64; cap].into_boxed_slice();
        let mask = cap - 1;
        for (position, e) in self.entries.iter().enumerate() {
            let hash = rehash(e);
            let mut i = hash as usize & mask;
            while probe[i] != 0 {
                i = (i + 1) & mask;
            }
            probe[i] = Self::full(tag_of(hash), position);
        }
        self.probe = probe;
        self.used = self.entries.len();
    }

    /// Every entry, in insertion order (less removals).
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.entries.iter()
    }

    /// Every entry, for change.
    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.entries.iter_mut()
    }

    /// Prefetches the probe line where a look-up of `hash` starts.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if !self.probe.is_empty() {
            prefetch(&self.probe[hash as usize & self.mask()]);
        }
    }

    /// Once the probe line of `hash` is near: prefetches `lines` cache
    /// lines of the entry it names, or, when the key is not there, of the
    /// place an insert would put it (the end of the entries). Only the
    /// probe line already asked for is read: a match or an empty slot
    /// beyond it is not looked for.
    ///
    /// Returns the position of the entry whose tag matched, if one did
    /// (a hint: the key itself is not compared).
    #[inline]
    pub(crate) fn prefetch_entry(&self, hash: u64, lines: usize) -> Option<usize> {
        if self.probe.is_empty() {
            return None;
        }
        let (tag, mask) = (u64::from(tag_of(hash)), self.mask());
        let start = hash as usize & mask;
        // Slots of the probe line from `start` to the line's end.
        let in_line = (63 - (&self.probe[start] as *const u64 as usize & 63)) / 8;
        let line_end = (start + in_line).min(mask);
        // `Some(None)`: an empty slot, the key is absent.
        let hit = self.probe[start..=line_end].iter().find_map(|&p| match p {
            0 => Some(None),
            p if p >> 32 == tag => Some(Some(p as u32 as usize)),
            _ => None,
        })?;
        let entry = match hit {
            Some(position) => &self.entries[position] as *const T,
            None => self.entries.as_ptr().wrapping_add(self.entries.len()),
        };
        for line in 0..lines {
            prefetch(entry.cast::<u8>().wrapping_add(line * 64));
        }
        hit
    }

    /// The entry at the position `at` remembers, or else the one `find`
    /// finds, remembered in `at` for next time: for the prefetch steps of
    /// one event, which find an entry once and come back to it.
    #[inline]
    pub(crate) fn remembered(&self, at: &Cell<Option<usize>>, find: impl FnOnce() -> Option<usize>) -> Option<&T> {
        match at.get() {
            Some(position) => self.try_get(position),
            None => {
                let position = find()?;
                at.set(Some(position));
                self.try_get(position)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(k: u32) -> u64 {
        use std::hash::BuildHasher;
        // Few distinct low bits: long probe runs and tag collisions.
        rustc_hash::FxBuildHasher.hash_one(k) & 0xffff_0000_0000_003f
    }

    proptest! {
        /// The table holds what a model map holds, through inserts,
        /// removals, retains and growth.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((0u8..4, 0u32..200), 0..600)) {
            let mut t: Flat<(u32, u32)> = Flat::default();
            let mut model = std::collections::BTreeMap::new();
            for (op, k) in ops {
                let slot = t.find(h(k), |e| e.0 == k);
                prop_assert_eq!(slot.map(|s| t.get(s).1), model.get(&k).copied());
                match (op, slot) {
                    (0 | 1, None) => {
                        t.insert_new(h(k), (k, k * 3), |e| h(e.0));
                        model.insert(k, k * 3);
                    }
                    (0 | 1, Some(s)) => {
                        let (_, v) = t.remove(s);
                        t.insert_new(h(k), (k, v + 1), |e| h(e.0));
                        *model.get_mut(&k).unwrap() += 1;
                    }
                    (2 | 3, Some(s)) => {
                        prop_assert_eq!(t.remove(s).0, k);
                        model.remove(&k);
                    }
                    _ => {}
                }
                prop_assert_eq!(t.len(), model.len());
            }
            let mut all: Vec<(u32, u32)> = t.iter().copied().collect();
            all.sort();
            prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }

        /// So does the indexed table.
        #[test]
        fn indexed_behaves_as_a_map(ops in prop::collection::vec((0u8..4, 0u32..200), 0..600)) {
            let mut t: Indexed<(u32, u32)> = Indexed::default();
            let mut model = std::collections::BTreeMap::new();
            let rehash = |e: &(u32, u32)| h(e.0);
            for (op, k) in ops {
                let pos = t.find(h(k), |e| e.0 == k);
                prop_assert_eq!(pos.map(|p| t.get(p).1), model.get(&k).copied());
                match (op, pos) {
                    (0 | 1, None) => {
                        let p = t.insert_new(h(k), (k, k * 3), rehash);
                        prop_assert_eq!(t.get(p).0, k);
                        model.insert(k, k * 3);
                    }
                    (0 | 1, Some(p)) => {
                        t.get_mut(p).1 += 1;
                        *model.get_mut(&k).unwrap() += 1;
                    }
                    (2, Some(p)) => {
                        prop_assert_eq!(t.remove(p, rehash).0, k);
                        model.remove(&k);
                    }
                    (3, _) => {
                        t.retain(|e| e.0 % 7 != k % 7, rehash);
                        model.retain(|key, _| key % 7 != k % 7);
                    }
                    _ => {}
                }
                prop_assert_eq!(t.len(), model.len());
            }
            let mut all: Vec<(u32, u32)> = t.iter().copied().collect();
            all.sort();
            prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }

    /// A table emptied by `retain` gives its memory back (a card's busiest
    /// week is not kept for ever), and still finds what it holds.
    #[test]
    fn retain_shrinks_a_sparse_table() {
        let mut t: Indexed<(u32, u32)> = Indexed::default();
        let rehash = |e: &(u32, u32)| h(e.0);
        for k in 0..1000 {
            t.insert_new(h(k), (k, k), rehash);
        }
        let (probe, entries) = (t.capacity(), t.entries_capacity());
        t.retain(|e| e.0 < 10, rehash);
        assert!(t.capacity() <= 64 && t.capacity() < probe, "probe {} of {probe}", t.capacity());
        assert!(t.entries_capacity() <= 40 && t.entries_capacity() < entries);
        for k in 0..1000 {
            assert_eq!(t.find(h(k), |e| e.0 == k).is_some(), k < 10);
        }
    }
}
