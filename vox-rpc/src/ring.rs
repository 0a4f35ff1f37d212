//! `Ring`: a fixed-capacity first-in, first-out queue, the little of a
//! deque the call table uses (push at the back, pop at the front). No
//! `unsafe`: a place not in use holds the item type's [`Vacant`] value,
//! chosen all zero bytes where it can be, so a ring in a `static` stays
//! in `.bss` and a new one is cheap to make.

/// The value a ring's unused places hold (never read as an item).
pub(crate) trait Vacant: Sized {
    /// The unused place.
    const VACANT: Self;
}

impl Vacant for u32 {
    const VACANT: Self = 0;
}

/// Up to `N` items of `T`, oldest first.
pub(crate) struct Ring<T, const N: usize> {
    items: [T; N],
    /// The oldest item's place (below `N`, or 0).
    head: usize,
    len: usize,
}

impl<T: Vacant, const N: usize> Ring<T, N> {
    /// An empty ring.
    pub(crate) const fn new() -> Self {
        Self { items: [const { T::VACANT }; N], head: 0, len: 0 }
    }

    /// The place of the `i`-th item from the oldest (`head < N` and
    /// `i <= N`: one subtraction wraps it).
    fn place(&self, i: usize) -> usize {
        let j = self.head + i;
        if j >= N { j - N } else { j }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len >= N
    }

    /// Queues `item` last; gives it back when the ring is full.
    pub(crate) fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.is_full() {
            return Err(item);
        }
        let at = self.place(self.len);
        self.put(at, item)
    }

    fn put(&mut self, at: usize, item: T) -> Result<(), T> {
        match self.items.get_mut(at) {
            Some(place) => {
                // The place held its vacant value: nothing to drop.
                core::mem::forget(core::mem::replace(place, item));
                self.len += 1;
                Ok(())
            }
            None => Err(item),
        }
    }

    /// Takes the oldest item.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let item = self.items.get_mut(self.head).map(|place| core::mem::replace(place, T::VACANT));
        self.head = self.place(1);
        self.len -= 1;
        item
    }

    /// Drops every item.
    pub(crate) fn clear(&mut self) {
        while self.pop_front().is_some() {}
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Every item, oldest first (the ring emptied).
    fn drain(ring: &mut Ring<u32, 3>) -> Vec<u32> {
        core::iter::from_fn(|| ring.pop_front()).collect()
    }

    #[test]
    fn items_leave_in_order_and_wrap() {
        let mut ring = Ring::<u32, 3>::new();
        assert_eq!(ring.pop_front(), None);
        assert!(ring.push_back(1).is_ok() && ring.push_back(2).is_ok());
        assert_eq!(ring.pop_front(), Some(1));
        assert!(ring.push_back(3).is_ok() && ring.push_back(4).is_ok());
        assert_eq!(ring.push_back(5), Err(5));
        assert!(ring.is_full());
        assert_eq!(ring.pop_front(), Some(2));
        assert!(ring.push_back(7).is_ok());
        assert_eq!(drain(&mut ring), [3, 4, 7]);
        assert!(ring.is_empty());
        for i in 10..13 {
            assert!(ring.push_back(i).is_ok());
        }
        ring.clear();
        assert!(ring.is_empty());
        assert!(ring.push_back(9).is_ok() && ring.push_back(8).is_ok());
        assert_eq!(drain(&mut ring), [9, 8]);
        let mut none = Ring::<u32, 0>::new();
        assert_eq!(none.push_back(1), Err(1));
        assert_eq!(none.pop_front(), None);
    }
}
