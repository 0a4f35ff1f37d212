//! `RingIndex`: the bookkeeping of a byte ring of variable-length entries
//! kept in caller-provided slices (an entry array and a byte capacity), in
//! order, oldest first.
//!
//! Each entry's bytes are contiguous; an entry that does not fit before the
//! end of the bytes starts again at offset 0, and the tail gap stays unused
//! until the ring drains past it. The replay ring and the receive ring both
//! use it. No bytes live here: the index only says where they go.

/// Where an entry's bytes are.
pub(crate) trait Span: Copy {
    fn start(&self) -> usize;
    fn len(&self) -> usize;
    fn end(&self) -> usize {
        self.start() + self.len()
    }
}

/// Ring bookkeeping over `entries` (capacity `entries.len()`) and `bytes`
/// bytes of storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RingIndex {
    /// Array position of the oldest entry.
    first: usize,
    /// Entries stored.
    count: usize,
    /// The stored bytes run past the end of the storage and continue at 0.
    /// Kept explicitly: offsets alone are ambiguous with empty entries.
    wrapped: bool,
}

impl RingIndex {
    pub(crate) const fn new() -> Self {
        Self { first: 0, count: 0, wrapped: false }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Array position of the `i`-th oldest entry (`i < len`).
    pub(crate) fn position(&self, i: usize, cap: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        (self.first + i).checked_rem(cap)
    }

    /// The `i`-th oldest entry. A reference, not a copy: it comes back in
    /// a register, where an `Option` of an entry goes through memory.
    pub(crate) fn get<'e, E: Span>(&self, entries: &'e [E], i: usize) -> Option<&'e E> {
        entries.get(self.position(i, entries.len())?)
    }

    /// The oldest entry: at `first`, which is always below the capacity
    /// (no remainder to take, as `get` does: the replay and receive rings
    /// ask for their front several times per message, and every call site
    /// carried the division: 152 B of an lm3s6965 firmware). A `first`
    /// out of range (a broken invariant) finds no entry.
    pub(crate) fn front<'e, E: Span>(&self, entries: &'e [E]) -> Option<&'e E> {
        if self.count == 0 {
            return None;
        }
        entries.get(self.first)
    }

    fn back<'e, E: Span>(&self, entries: &'e [E]) -> Option<&'e E> {
        self.get(entries, self.count.checked_sub(1)?)
    }

    /// Where `len` contiguous free bytes start, and whether using them
    /// wraps the ring; `None` if they do not fit now.
    pub(crate) fn free_region<E: Span>(&self, entries: &[E], bytes: usize, len: usize) -> Option<(usize, bool)> {
        if self.count >= entries.len() {
            return None;
        }
        let (Some(first), Some(last)) = (self.front(entries), self.back(entries)) else {
            return (len <= bytes).then_some((0, false));
        };
        let tail = last.end();
        if self.wrapped {
            // Used: [first.start, ..) and [0, tail). Free: [tail, first.start).
            (first.start().saturating_sub(tail) >= len).then_some((tail, true))
        } else if bytes.saturating_sub(tail) >= len {
            // Used: [first.start, tail). Free: [tail, bytes) then [0, first.start).
            Some((tail, false))
        } else {
            (first.start() >= len).then_some((0, true))
        }
    }

    /// Bytes that any sequence of entries, each at most `max_len` long and
    /// together at most this many bytes, is sure to find room for (the
    /// gap left where the ring wraps is accounted for).
    pub(crate) fn guaranteed_bytes<E: Span>(&self, entries: &[E], bytes: usize, max_len: usize) -> usize {
        let (Some(first), Some(last)) = (self.front(entries), self.back(entries)) else {
            return bytes;
        };
        let tail = last.end();
        if self.wrapped {
            first.start().saturating_sub(tail)
        } else {
            let at_end = bytes.saturating_sub(tail);
            // Filling the end wastes less than one entry where it wraps.
            at_end.max((at_end + first.start()).saturating_sub(max_len.saturating_sub(1)))
        }
    }

    /// Appends `entry`, placed where [`free_region`](Self::free_region)
    /// said (`wraps` as it said).
    pub(crate) fn push<E: Span>(&mut self, entries: &mut [E], entry: E, wraps: bool) -> bool {
        let cap = entries.len();
        if self.count >= cap {
            return false;
        }
        let Some(slot) = (self.first + self.count).checked_rem(cap).and_then(|p| entries.get_mut(p)) else {
            return false;
        };
        *slot = entry;
        self.count += 1;
        self.wrapped |= wraps;
        true
    }

    /// Removes the oldest entry.
    pub(crate) fn pop_front<E: Span>(&mut self, entries: &[E]) -> Option<E> {
        let first = *self.front(entries)?;
        self.first = (self.first + 1).checked_rem(entries.len()).unwrap_or(0);
        self.count -= 1;
        match self.front(entries) {
            // Crossed from the end of the bytes back to their start.
            Some(next) if next.start() < first.start() => self.wrapped = false,
            None => self.wrapped = false,
            _ => {}
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    struct E(usize, usize, u8);
    impl Span for E {
        fn start(&self) -> usize {
            self.0
        }
        fn len(&self) -> usize {
            self.1
        }
    }

    struct Ring {
        idx: RingIndex,
        entries: [E; 6],
        bytes: [u8; 128],
    }

    impl Ring {
        fn push(&mut self, len: usize, fill: u8) -> bool {
            let Some((start, wraps)) = self.idx.free_region(&self.entries, 128, len) else { return false };
            self.bytes[start..start + len].fill(fill);
            self.idx.push(&mut self.entries, E(start, len, fill), wraps)
        }
    }

    #[test]
    fn zero_length_entry_at_the_oldest_offset_does_not_hide_the_wrap() {
        let mut r = Ring { idx: RingIndex::new(), entries: [E::default(); 6], bytes: [0; 128] };
        assert!(r.push(39, 0));
        assert!(r.push(22, 1));
        r.idx.pop_front(&r.entries);
        assert!(r.push(29, 2));
        assert!(r.push(39, 3), "wraps to 0");
        assert!(r.push(0, 4));
        assert!(!r.push(1, 5), "no room: must not overwrite entry 1");
        let e = *r.idx.front(&r.entries).unwrap();
        assert_eq!(&r.bytes[e.0..e.0 + e.1], &[1u8; 22]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Against a model: random pushes and pops; stored bytes always
        /// match, bounds always hold, and a run of pushes within the
        /// guaranteed bytes always fits.
        #[test]
        fn matches_a_model(ops in prop::collection::vec((0u8..4, 0usize..40, any::<u8>()), 1..300)) {
            let mut r = Ring { idx: RingIndex::new(), entries: [E::default(); 6], bytes: [0; 128] };
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for (op, len, fill) in ops {
                match op {
                    0 | 1 => {
                        if r.push(len, fill) {
                            model.push_back(std::vec![fill; len]);
                        } else {
                            prop_assert!(!model.is_empty() || len > 128, "an empty ring takes any entry up to its size");
                        }
                    }
                    2 => {
                        if r.idx.pop_front(&r.entries).is_some() {
                            model.pop_front();
                        }
                    }
                    _ => {
                        // Fill within the guarantee with entries of at most 40
                        // bytes (and as many entries as are free): all fit.
                        let mut budget = r.idx.guaranteed_bytes(&r.entries, 128, 40);
                        let mut k = 0;
                        while r.idx.len() < 6 {
                            let l = (len + k * 7) % 41;
                            if l > budget { break; }
                            prop_assert!(r.push(l, fill), "within the guarantee");
                            model.push_back(std::vec![fill; l]);
                            budget -= l;
                            k += 1;
                        }
                    }
                }
                prop_assert_eq!(r.idx.len(), model.len());
                for (i, bytes) in model.iter().enumerate() {
                    let e = *r.idx.get(&r.entries, i).unwrap();
                    prop_assert_eq!(&r.bytes[e.0..e.0 + e.1], &bytes[..]);
                }
            }
        }
    }
}
