//! `Ring`: a fixed-capacity first-in, first-out queue, the little of a
//! deque the call table uses (push at the back, pop at the front, keep
//! some, look through every place). No `unsafe`: a place not in use
//! holds the item type's [`Vacant`] value, chosen all zero bytes where it
//! can be, so a ring in a `static` stays in `.bss` and a new one is cheap
//! to make.

/// The value a ring's unused places hold (never popped as an item;
/// [`Ring::places_mut`] shows them beside the live ones).
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

    /// Keeps the items `keep` says, in order; drops the others.
    pub(crate) fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            let (from, to) = (self.place(i), self.place(kept));
            let item = match self.items.get_mut(from) {
                Some(place) => core::mem::replace(place, T::VACANT),
                None => continue,
            };
            if keep(&item)
                && let Some(place) = self.items.get_mut(to)
            {
                // The place holds a vacant value (moved out above, or
                // never in use): nothing to drop.
                core::mem::forget(core::mem::replace(place, item));
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Drops every item.
    pub(crate) fn clear(&mut self) {
        while self.pop_front().is_some() {}
        self.head = 0;
    }

    /// Every place, live or vacant, in storage order.
    pub(crate) fn places_mut(&mut self) -> &mut [T] {
        &mut self.items
    }

    /// The items, oldest first, to change in place: the places from
    /// `head` to the end, then from the start. (Tests only: the call table
    /// looks a waiter up among all places.)
    #[cfg(test)]
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let (before, after) = self.items.split_at_mut(self.head.min(N));
        after.iter_mut().chain(before).take(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn items_leave_in_order_and_wrap() {
        let mut ring = Ring::<u32, 3>::new();
        assert_eq!(ring.pop_front(), None);
        assert!(ring.push_back(1).is_ok() && ring.push_back(2).is_ok());
        assert_eq!(ring.pop_front(), Some(1));
        assert!(ring.push_back(3).is_ok() && ring.push_back(4).is_ok());
        assert_eq!(ring.push_back(5), Err(5));
        assert!(ring.is_full());
        assert_eq!(ring.iter_mut().map(|x| *x).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(ring.pop_front(), Some(2));
        assert!(ring.push_back(7).is_ok());
        ring.iter_mut().for_each(|x| *x *= 10);
        assert_eq!(ring.iter_mut().map(|x| *x).collect::<Vec<_>>(), [30, 40, 70]);
        ring.retain(|x| *x != 40);
        assert_eq!(ring.iter_mut().map(|x| *x).collect::<Vec<_>>(), [30, 70]);
        assert!(ring.push_back(8).is_ok());
        ring.retain(|x| *x != 30);
        assert_eq!(ring.iter_mut().map(|x| *x).collect::<Vec<_>>(), [70, 8]);
        ring.clear();
        assert!(ring.is_empty());
        assert_eq!(ring.iter_mut().count(), 0);
        assert!(ring.push_back(9).is_ok());
        assert_eq!(ring.pop_front(), Some(9));
        let mut none = Ring::<u32, 0>::new();
        assert_eq!(none.push_back(1), Err(1));
        assert_eq!(none.pop_front(), None);
    }
}
