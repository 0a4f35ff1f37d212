//! `PendingHandshakes`: the handshakes an acceptor has in progress, polled
//! by readiness together with its link source, and the admission policy
//! that keeps connections which send nothing from locking clients out
//! (feature `alloc`).
//!
//! # Admission policy
//!
//! A new link takes a free place. When every place is taken, it takes the
//! place of the oldest handshake that has not yet [presented a valid
//! prologue](HandshakeProgress::mark_presented); a handshake that has is
//! never evicted by a newcomer (it ends on its own: done, refused or timed
//! out). When every place holds such a handshake, the newcomer is refused
//! (its link is dropped, which closes it).
//!
//! So with `P` places and idle connections arriving at `R` per second, a
//! client whose first valid bytes arrive `T` seconds after it connected is
//! served while `R × T < P` (its place is the oldest silent one after
//! `P / R` seconds at the latest). With 1,024 places, 1,000 idle
//! connections a second leave a client about 1 s to speak. Peers that
//! send a valid prologue and then nothing hold a place for at most the
//! acceptor's handshake timeout.
//!
//! Each handshake is polled only when its own waker fired (a ready set of
//! one bit per place): an event costs one poll, not one per place.

use crate::{LinkError, LinkSource};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

/// What [`PendingHandshakes::next`] saw first.
pub enum AcceptEvent<L, O> {
    /// The link source gave a link (or failed).
    Link(Result<L, LinkError>),
    /// A handshake finished with this outcome.
    Handshake(O),
}

/// What [`PendingHandshakes::push_with`] did with a new handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It took a free place.
    Admitted,
    /// It took the place of the oldest handshake that had presented
    /// nothing valid yet (dropped, with its link).
    EvictedSilent,
    /// Every place holds a handshake that presented a valid prologue: the
    /// new one was not made (its link is dropped).
    Refused,
}

/// A pending handshake's progress, shared with its future: it marks the
/// moment its peer presented a valid prologue, after which no newcomer
/// evicts it.
#[derive(Debug, Clone, Default)]
pub struct HandshakeProgress(Arc<AtomicBool>);

impl HandshakeProgress {
    /// The peer presented a valid prologue: the handshake keeps its place
    /// until it ends on its own.
    pub fn mark_presented(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`mark_presented`](Self::mark_presented) was called.
    pub fn presented(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One bit per place: set by that place's waker, taken by `next`.
struct ReadySet {
    words: Vec<AtomicUsize>,
}

impl ReadySet {
    fn set(&self, index: usize) {
        if let Some(word) = self.words.get(index / usize::BITS as usize) {
            word.fetch_or(1 << (index % usize::BITS as usize), Ordering::AcqRel);
        }
    }
}

/// The waker of one place: marks the place ready, then wakes the task
/// that runs `next`.
struct PlaceWaker {
    ready: Arc<ReadySet>,
    index: usize,
    task: Waker,
}

impl Wake for PlaceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.set(self.index);
        self.task.wake_by_ref();
    }
}

struct Place<H> {
    handshake: Pin<Box<H>>,
    progress: HandshakeProgress,
    waker: Waker,
    /// Admission order (never reused), to tell a place's occupants apart.
    admitted: u64,
}

/// At most `capacity` handshake futures in progress, each boxed once. An
/// acceptor's runner pushes one per new link and waits, with
/// [`next`](Self::next), for whichever comes first: a new link or a
/// finished handshake. So a slow handshake delays no other, and the
/// number in progress is bounded; see the module's admission policy.
pub struct PendingHandshakes<H> {
    places: Vec<Option<Place<H>>>,
    free: Vec<usize>,
    ready: Arc<ReadySet>,
    /// Places in admission order, with the occupant they were pushed
    /// for: eviction candidates (entries of ended or presented
    /// handshakes are skipped, and compacted away).
    order: VecDeque<(usize, u64)>,
    /// The task running `next`, as the places' wakers know it.
    task: Option<Waker>,
    admitted: u64,
    polls: u64,
}

impl<H: Future> PendingHandshakes<H> {
    /// An empty set of at most `capacity` handshakes (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let words = capacity.div_ceil(usize::BITS as usize);
        Self {
            places: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
            ready: Arc::new(ReadySet { words: (0..words).map(|_| AtomicUsize::new(0)).collect() }),
            order: VecDeque::with_capacity(capacity),
            task: None,
            admitted: 0,
            polls: 0,
        }
    }

    /// [`new`](Self::new) for the futures `make` returns (`make` only
    /// names the type).
    pub fn for_maker<A>(_make: &impl Fn(A, HandshakeProgress) -> H, capacity: usize) -> Self {
        Self::new(capacity)
    }

    /// Handshakes in progress.
    pub fn len(&self) -> usize {
        self.places.len() - self.free.len()
    }

    /// Whether none is in progress.
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.places.len()
    }

    /// Places in all.
    pub fn capacity(&self) -> usize {
        self.places.len()
    }

    /// Polls of handshake futures so far (each one's waker fired, or it
    /// was new).
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Adds the handshake `make` returns, given its progress handle, by
    /// the module's admission policy; `make` is not called when the
    /// handshake is [`Admission::Refused`].
    // r[impl core.churn]
    pub fn push_with(&mut self, make: impl FnOnce(HandshakeProgress) -> H) -> Admission {
        let mut admission = Admission::Admitted;
        if self.free.is_empty() {
            match self.oldest_silent() {
                Some(index) => {
                    if let Some(place) = self.places.get_mut(index) {
                        drop(place.take());
                    }
                    self.free.push(index);
                    admission = Admission::EvictedSilent;
                }
                None => return Admission::Refused,
            }
        }
        let Some(index) = self.free.pop() else { return Admission::Refused };
        let progress = HandshakeProgress::default();
        let handshake = Box::pin(make(progress.clone()));
        self.admitted += 1;
        let waker = self.place_waker(index);
        if let Some(place) = self.places.get_mut(index) {
            *place = Some(Place { handshake, progress, waker, admitted: self.admitted });
        }
        self.order.push_back((index, self.admitted));
        if self.order.len() > 2 * self.places.len() {
            self.compact_order();
        }
        // A new handshake is polled once before anything wakes it.
        self.ready.set(index);
        admission
    }

    /// The oldest handshake still evictable: admitted, and silent. Entries
    /// passed over are gone for good (a handshake never becomes silent
    /// again), so this is amortised O(1).
    fn oldest_silent(&mut self) -> Option<usize> {
        while let Some((index, admitted)) = self.order.pop_front() {
            if let Some(Some(place)) = self.places.get(index)
                && place.admitted == admitted
                && !place.progress.presented()
            {
                return Some(index);
            }
        }
        None
    }

    /// Drops the order's entries of handshakes that ended or presented.
    fn compact_order(&mut self) {
        let places = &self.places;
        self.order.retain(|&(index, admitted)| {
            matches!(places.get(index), Some(Some(p)) if p.admitted == admitted && !p.progress.presented())
        });
    }

    fn place_waker(&self, index: usize) -> Waker {
        let task = self.task.clone().unwrap_or_else(|| Waker::noop().clone());
        Waker::from(Arc::new(PlaceWaker { ready: self.ready.clone(), index, task }))
    }

    /// Remembers the task that polls `next`; when it changed, every
    /// place gets a waker for the new task and is polled once.
    fn track_task(&mut self, task: &Waker) {
        if self.task.as_ref().is_some_and(|t| t.will_wake(task)) {
            return;
        }
        self.task = Some(task.clone());
        for index in 0..self.places.len() {
            if matches!(self.places.get(index), Some(Some(_))) {
                let waker = self.place_waker(index);
                if let Some(Some(place)) = self.places.get_mut(index) {
                    place.waker = waker;
                }
                self.ready.set(index);
            }
        }
    }

    /// Polls the handshakes whose wakers fired; the first that finished.
    fn poll_ready(&mut self) -> Option<H::Output> {
        for w in 0..self.ready.words.len() {
            let Some(word) = self.ready.words.get(w) else { break };
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let index = w * usize::BITS as usize + bit;
                let Some(slot) = self.places.get_mut(index) else { continue };
                let Some(place) = slot else { continue };
                self.polls += 1;
                let mut cx = Context::from_waker(&place.waker);
                if let Poll::Ready(outcome) = place.handshake.as_mut().poll(&mut cx) {
                    *slot = None;
                    self.free.push(index);
                    // The rest of this word stays ready for the next call.
                    if let Some(word) = self.ready.words.get(w) {
                        word.fetch_or(bits, Ordering::AcqRel);
                    }
                    return Some(outcome);
                }
            }
        }
        None
    }

    /// Waits for a finished handshake or a new link from `source`,
    /// whichever comes first (handshakes first when both are ready). Each
    /// call starts a fresh `next_link`, and drops it unfinished when a
    /// handshake finishes first: `source`'s `next_link` must be
    /// cancel-safe.
    pub async fn next<S: LinkSource>(&mut self, source: &mut S) -> AcceptEvent<S::Link, H::Output> {
        let mut next_link = core::pin::pin!(source.next_link());
        poll_fn(|cx| {
            // Handshakes first: a client whose prologue has come is not
            // left waiting (and evictable) behind a stream of new links.
            self.track_task(cx.waker());
            if let Some(outcome) = self.poll_ready() {
                return Poll::Ready(AcceptEvent::Handshake(outcome));
            }
            next_link.as_mut().poll(cx).map(AcceptEvent::Link)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::{pending, ready};
    use core::task::{Context, Waker};

    /// A link that carries nothing (the source below never makes one).
    struct NoLink;
    struct NoTx;
    struct NoRx;
    struct NoPermit;
    struct NoSlot;
    impl crate::Link for NoLink {
        type Tx = NoTx;
        type Rx = NoRx;
        fn split(self) -> (NoTx, NoRx) {
            (NoTx, NoRx)
        }
    }
    impl crate::LinkTx for NoTx {
        type Permit<'a> = NoPermit;
        async fn reserve(&self) -> Result<NoPermit, LinkError> {
            pending().await
        }
        fn max_payload(&self) -> usize {
            0
        }
        async fn close(self) -> Result<(), LinkError> {
            Ok(())
        }
    }
    impl crate::LinkTxPermit for NoPermit {
        type Slot = NoSlot;
        fn alloc(self, _len: usize) -> Result<NoSlot, LinkError> {
            Err(LinkError::Closed)
        }
    }
    impl crate::WriteSlot for NoSlot {
        fn as_mut_slice(&mut self) -> &mut [u8] {
            &mut []
        }
        fn commit(self) {}
    }
    impl crate::LinkRx for NoRx {
        fn poll_recv(&mut self, _cx: &mut Context<'_>) -> Poll<Result<Option<crate::Backing>, LinkError>> {
            Poll::Pending
        }
    }

    /// A source that never yields a link.
    struct Never;
    impl LinkSource for Never {
        type Link = NoLink;
        async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
            pending().await
        }
    }

    /// One task's waker for every poll (`Waker::noop()` may not
    /// `will_wake` itself: each use of it can be another instance).
    struct Task;
    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }
    std::thread_local! {
        static TASK: Waker = Waker::from(Arc::new(Task));
    }

    fn poll_now<T>(fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = core::pin::pin!(fut);
        let task = TASK.with(Waker::clone);
        match fut.as_mut().poll(&mut Context::from_waker(&task)) {
            Poll::Ready(t) => Some(t),
            Poll::Pending => None,
        }
    }

    /// A handshake that finishes with `n` once `go` is set (and someone
    /// wakes it): the waker it saw last is kept in `waker`.
    struct Gate {
        go: Arc<AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
        n: u32,
    }
    impl Future for Gate {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.go.load(Ordering::Relaxed) {
                return Poll::Ready(self.n);
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_finished_handshake_comes_out_and_a_full_set_evicts_its_oldest_silent_one() {
        let make =
            |n: u32, _: HandshakeProgress| async move { if n == 0 { pending::<u32>().await } else { ready(n).await } };
        let mut set = PendingHandshakes::for_maker(&make, 2);
        assert_eq!(set.push_with(|p| make(0, p)), Admission::Admitted);
        assert_eq!(set.push_with(|p| make(0, p)), Admission::Admitted);
        assert_eq!(set.push_with(|p| make(7, p)), Admission::EvictedSilent, "the oldest made room");
        assert_eq!(set.len(), 2);
        let mut source = Never;
        match poll_now(set.next(&mut source)) {
            Some(AcceptEvent::Handshake(7)) => {}
            _ => panic!("the finished handshake comes out"),
        }
        assert_eq!(set.len(), 1);
        assert!(poll_now(set.next(&mut source)).is_none(), "nothing else is ready");
    }

    // r[verify core.churn]
    #[test]
    fn a_handshake_that_presented_a_valid_prologue_is_never_evicted_by_a_silent_newcomer() {
        let make = |_: (), p: HandshakeProgress| async move {
            let _p = p;
            pending::<u32>().await
        };
        let mut set = PendingHandshakes::for_maker(&make, 3);
        let mut progress = Vec::new();
        for _ in 0..3 {
            assert_eq!(
                set.push_with(|p| {
                    progress.push(p.clone());
                    make((), p)
                }),
                Admission::Admitted
            );
        }
        // The oldest and the youngest presented a prologue; the middle
        // one is the only one a newcomer may take.
        progress[0].mark_presented();
        progress[2].mark_presented();
        assert_eq!(set.push_with(|p| make((), p)), Admission::EvictedSilent);
        // Now the newcomer is the only silent one: evicted next.
        assert_eq!(set.push_with(|p| make((), p)), Admission::EvictedSilent);
        assert_eq!(set.len(), 3);
        // Idle connections keep arriving: each takes the last silent
        // place, the two that presented stay.
        for _ in 0..1_000 {
            assert_eq!(set.push_with(|p| make((), p)), Admission::EvictedSilent);
        }
        assert!(progress[0].presented() && progress[2].presented());
        // Every place presented: a newcomer is refused, and not even made.
        let mut made = false;
        let mut last = HandshakeProgress::default();
        set.push_with(|p| {
            last = p.clone();
            make((), p)
        });
        last.mark_presented();
        assert_eq!(
            set.push_with(|p| {
                made = true;
                make((), p)
            }),
            Admission::Refused
        );
        assert!(!made);
        assert!(set.order.len() <= 2 * set.capacity(), "the eviction order stays bounded");
    }

    #[test]
    fn only_the_handshake_whose_waker_fired_is_polled_again() {
        let mut set = PendingHandshakes::new(1_024);
        let mut gates = Vec::new();
        for n in 0..1_000 {
            let go = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(std::sync::Mutex::new(None));
            gates.push((go.clone(), waker.clone()));
            assert_eq!(set.push_with(|_| Gate { go, waker, n }), Admission::Admitted);
        }
        let mut source = Never;
        assert!(poll_now(set.next(&mut source)).is_none());
        assert_eq!(set.polls(), 1_000, "each new handshake is polled once");
        // Nothing fired: nothing is polled.
        assert!(poll_now(set.next(&mut source)).is_none());
        assert_eq!(set.polls(), 1_000);
        // One fires: one poll, and it comes out.
        let (go, waker) = &gates[617];
        go.store(true, Ordering::Relaxed);
        waker.lock().unwrap().take().unwrap().wake();
        match poll_now(set.next(&mut source)) {
            Some(AcceptEvent::Handshake(617)) => {}
            _ => panic!("the woken handshake comes out"),
        }
        assert_eq!(set.polls(), 1_001);
        assert_eq!(set.len(), 999);
    }
}
