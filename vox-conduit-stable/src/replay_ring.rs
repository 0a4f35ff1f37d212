//! `ReplayRing`: unacked outgoing messages, in order, in a byte ring
//! bounded in bytes (`BYTES`) and frames (`FRAMES`).
//!
//! Each message is stored contiguously; when it does not fit before the end
//! of the ring it starts again at offset 0 (the tail gap stays unused until
//! the ring drains past it). Plain safe data structure: the conduit keeps
//! it under its mutex.

use crate::wire::seq_before;
use heapless::Deque;

/// One stored frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u32,
    pub(crate) start: usize,
    pub(crate) len: usize,
    /// The end-of-stream marker rather than a message.
    pub(crate) close: bool,
}

pub(crate) struct ReplayRing<const BYTES: usize, const FRAMES: usize> {
    buf: [u8; BYTES],
    entries: Deque<Entry, FRAMES>,
    /// The stored frames run past the end of `buf` and continue at 0.
    /// Kept explicitly: offsets alone are ambiguous with zero-length frames.
    wrapped: bool,
}

impl<const BYTES: usize, const FRAMES: usize> ReplayRing<BYTES, FRAMES> {
    pub(crate) const fn new() -> Self {
        Self { buf: [0; BYTES], entries: Deque::new(), wrapped: false }
    }

    /// Where `len` contiguous free bytes start, if anywhere, and whether
    /// using them wraps the ring.
    fn free_region(&self, len: usize) -> Option<(usize, bool)> {
        let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) else {
            return (len <= BYTES).then_some((0, false));
        };
        let tail = last.start + last.len;
        if self.wrapped {
            // Used: [first.start, ..) and [0, tail). Free: [tail, first.start).
            (first.start - tail >= len).then_some((tail, true))
        } else if BYTES - tail >= len {
            // Used: [first.start, tail). Free: [tail, BYTES) then [0, first.start).
            Some((tail, false))
        } else {
            (first.start >= len).then_some((0, true))
        }
    }

    /// Whether a message of up to `len` bytes plus `spare_frames` more
    /// entries fit now.
    pub(crate) fn has_room(&self, len: usize, spare_frames: usize) -> bool {
        self.entries.len() + 1 + spare_frames <= FRAMES && self.free_region(len).is_some()
    }

    /// Stores message `seq`, written by `write` into a region of exactly
    /// `len` bytes. Nothing changes when there is no room or `write` fails.
    pub(crate) fn push<E>(
        &mut self,
        seq: u32,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<bool, E> {
        let Some((start, wraps)) = self.free_region(len) else { return Ok(false) };
        if self.entries.len() == FRAMES {
            return Ok(false);
        }
        let Some(region) = self.buf.get_mut(start..start + len) else { return Ok(false) };
        write(region)?;
        let stored = self.entries.push_back(Entry { seq, start, len, close: false }).is_ok();
        self.wrapped |= stored && wraps;
        Ok(stored)
    }

    /// Stores the end-of-stream marker as frame `seq`.
    pub(crate) fn push_close(&mut self, seq: u32) -> bool {
        let start = self.entries.back().map_or(0, |e| e.start + e.len);
        self.entries.push_back(Entry { seq, start, len: 0, close: true }).is_ok()
    }

    /// Drops every frame before `next_expected` (the peer has them).
    pub(crate) fn ack(&mut self, next_expected: u32) {
        while let Some(first) = self.entries.front().copied() {
            if !seq_before(first.seq, next_expected) {
                break;
            }
            self.entries.pop_front();
            match self.entries.front() {
                // Crossed from the end of the buffer back to its start.
                Some(next) if next.start < first.start => self.wrapped = false,
                None => self.wrapped = false,
                _ => {}
            }
        }
    }

    /// The frame with sequence number `seq` and its bytes.
    pub(crate) fn get(&self, seq: u32) -> Option<(Entry, &[u8])> {
        let first = self.entries.front()?;
        let idx = seq.wrapping_sub(first.seq) as usize;
        let entry = *self.entries.iter().nth(idx)?;
        Some((entry, self.buf.get(entry.start..entry.start + entry.len)?))
    }

    /// Sequence number of the oldest stored frame.
    pub(crate) fn first_seq(&self) -> Option<u32> {
        self.entries.front().map(|e| e.seq)
    }

    /// Frames stored.
    pub(crate) fn frames(&self) -> usize {
        self.entries.len()
    }

    /// Message bytes stored.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    fn push(r: &mut ReplayRing<64, 4>, seq: u32, bytes: &[u8]) -> bool {
        r.push::<()>(seq, bytes.len(), |b| {
            b.copy_from_slice(bytes);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn wraps_and_keeps_every_frame_intact() {
        let mut r = ReplayRing::<64, 4>::new();
        assert!(push(&mut r, 0, &[1; 30]));
        assert!(push(&mut r, 1, &[2; 30]));
        assert!(!r.has_room(30, 0), "only 4 bytes left");
        r.ack(1);
        assert!(push(&mut r, 2, &[3; 20]), "wraps to offset 0");
        assert_eq!(r.get(1).unwrap().1, &[2; 30]);
        assert_eq!(r.get(2).unwrap().1, &[3; 20]);
        assert!(!push(&mut r, 3, &[4; 20]), "would overwrite frame 1");
        assert!(r.push_close(3));
        assert_eq!((r.frames(), r.bytes(), r.first_seq()), (3, 50, Some(1)));
        r.ack(4);
        assert_eq!((r.frames(), r.bytes()), (0, 0));
        assert!(push(&mut r, 4, &[5; 64]), "empty ring takes a full-size frame");
    }

    #[test]
    fn zero_length_frame_at_the_oldest_offset_does_not_hide_the_wrap() {
        // The sequence proptest found: a wrapped ring whose newest frame is
        // empty and sits at the oldest frame's offset.
        let mut r = ReplayRing::<128, 6>::new();
        let push = |r: &mut ReplayRing<128, 6>, seq, len: usize, fill| {
            r.push::<()>(seq, len, |b| {
                b.fill(fill);
                Ok(())
            })
            .unwrap()
        };
        assert!(push(&mut r, 0, 39, 0));
        assert!(push(&mut r, 1, 22, 1));
        r.ack(1);
        assert!(push(&mut r, 2, 29, 2));
        assert!(push(&mut r, 3, 39, 3), "wraps to 0");
        assert!(push(&mut r, 4, 0, 4));
        assert!(!push(&mut r, 5, 1, 5), "no room: must not overwrite frame 1");
        assert_eq!(r.get(1).unwrap().1, &[1u8; 22]);
    }

    #[test]
    fn failed_write_changes_nothing() {
        let mut r = ReplayRing::<64, 4>::new();
        assert_eq!(r.push(0, 10, |_| Err("encode failed")), Err("encode failed"));
        assert_eq!(r.frames(), 0);
        assert!(r.get(0).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Against a model: random pushes and acks; stored bytes always
        /// match, bounds always hold.
        #[test]
        fn matches_a_model(ops in prop::collection::vec((0u8..3, 0usize..40, any::<u8>()), 1..300), start in any::<u32>()) {
            let mut r = ReplayRing::<128, 6>::new();
            let mut model: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
            let mut next = start;
            for (op, len, fill) in ops {
                if op < 2 {
                    let bytes = std::vec![fill; len];
                    let stored = r.push::<()>(next, len, |b| { b.copy_from_slice(&bytes); Ok(()) }).unwrap();
                    if stored {
                        model.push_back((next, bytes));
                        next = next.wrapping_add(1);
                    } else {
                        prop_assert!(!model.is_empty(), "an empty ring takes any frame up to its size");
                    }
                } else if let Some(&(first, _)) = model.front() {
                    let upto = first.wrapping_add((len % (model.len() + 1)) as u32);
                    r.ack(upto);
                    while model.front().is_some_and(|m| seq_before(m.0, upto)) {
                        model.pop_front();
                    }
                }
                prop_assert!(r.frames() <= 6 && r.bytes() <= 128);
                prop_assert_eq!(r.frames(), model.len());
                for (seq, bytes) in &model {
                    prop_assert_eq!(r.get(*seq).unwrap().1, &bytes[..]);
                }
            }
        }
    }
}
