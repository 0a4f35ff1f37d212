//! Topics: a side publishes samples (`Publication`), the peer subscribes
//! (`Subscription`, a `futures_core::Stream`). Reliable topics are paced
//! by the subscriber's credit, granted when it has consumed a sample, and
//! samples never credited are sent again after a session loss, marked as
//! possible duplicates; latest-only topics keep only the newest unsent
//! sample; lossy rings (a log) drop the oldest when full. Every drop is
//! counted.

use crate::Topic;
use core::cell::RefCell;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;

/// How a publication treats a full buffer.
///
/// (`Lossy` is the zero discriminant: a log, often the largest ring, in a
/// `static` is then all zero bytes and stays in `.bss`, not an
/// initialised copy in flash.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Delivery {
    /// Every sample reaches the subscriber: `publish` waits while the
    /// buffer holds `N` samples not yet credited (a slow subscriber blocks
    /// only its publisher). Kept across session losses and sent again,
    /// marked as possible duplicates.
    Reliable = 1,
    /// Only the newest unsent sample is kept: publishing replaces it (the
    /// replaced one is counted as dropped, and takes no sequence number).
    /// At most `K = N - 1` sent samples wait for credit, whatever the
    /// subscriber's window, so the publisher coalesces while they are on
    /// their way (`N = 2`: K = 1, the default the protocol assumes).
    Latest = 2,
    /// A ring: a full buffer drops its oldest sample (counted); publishing
    /// never waits (a log).
    Lossy = 0,
}

/// Counters of a publication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PublishStats {
    /// Samples published.
    pub published: u32,
    /// Samples dropped before the subscriber credited them (latest-only
    /// replaced, lossy overwritten, too large).
    pub dropped: u32,
    /// Samples sent again in a later session (possible duplicates).
    pub resent: u32,
}

/// A held sample's bookkeeping; its bytes are at the same index in the
/// ring's `bytes`.
#[derive(Clone, Copy)]
struct PubSlot {
    seq: u32,
    len: u16,
    /// Sent in the session under way.
    sent: bool,
    /// Sent in any session (a resend is a possible duplicate).
    ever_sent: bool,
}

/// A publication's ring but its bytes, and all its logic: one copy of
/// the code for every publication type (only the bytes' size is generic,
/// and only publishing and sending touch them). Its slots are live from
/// `head`, `count` of them, wrapping at the slice's end.
struct PubCore {
    /// Index of the oldest slot.
    head: usize,
    count: usize,
    next_seq: u32,
    /// The subscriber's window (None: nobody subscribed this session).
    window: Option<u16>,
    /// Samples before this one are credited.
    credited: u32,
    stats: PublishStats,
    publisher: WakerRegistration,
    runner: WakerRegistration,
}

struct PubRing<const N: usize, const BUF: usize> {
    core: PubCore,
    /// Not `Option`s: their empty state is all zero bytes, so a
    /// publication in a `static` stays in `.bss` (`Option`'s `None` would
    /// be a non-zero niche, and the whole static an initialised copy in
    /// flash).
    slots: [PubSlot; N],
    bytes: [[u8; BUF]; N],
}

impl PubCore {
    /// The index of live slot `i` (0: the oldest) among `n`; `None`
    /// beyond the live ones.
    fn index(&self, n: usize, i: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        // `head < n` and `i < count <= n`: one subtraction wraps it.
        let j = self.head + i;
        Some(if j >= n { j - n } else { j })
    }

    fn pop_front(&mut self, n: usize) {
        if self.count == 0 {
            return;
        }
        // The slot stays (its place is reused in place, without moving
        // its bytes); only slots within `count` are live.
        self.head = if self.head + 1 >= n { 0 } else { self.head + 1 };
        self.count -= 1;
        self.publisher.wake();
    }

    /// Where a new sample goes: the index of its slot, and whether it
    /// replaces the newest unsent one (a latest-only topic); a new slot
    /// is made ready (numbered, unsent), room made as `delivery` says.
    fn place(&mut self, slots: &mut [PubSlot], delivery: Delivery) -> Result<(usize, bool), PublishError> {
        let n = slots.len();
        if delivery == Delivery::Latest {
            let newest_unsent = (0..self.count)
                .filter_map(|i| self.index(n, i))
                .find(|&j| slots.get(j).is_some_and(|e| !e.sent && !e.ever_sent));
            if let Some(j) = newest_unsent {
                return Ok((j, true));
            }
        }
        if self.count == n {
            if delivery == Delivery::Reliable {
                return Err(PublishError::Full);
            }
            self.pop_front(n);
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
        }
        // `count < n` now: the slot after the live ones (`head < n`, so
        // one subtraction wraps it).
        let j = self.head + self.count;
        let j = if j >= n { j - n } else { j };
        let slot = slots.get_mut(j).ok_or(PublishError::TooLarge)?;
        (slot.seq, slot.sent, slot.ever_sent) = (self.next_seq, false, false);
        Ok((j, false))
    }

    /// A sample was encoded into slot `j` (`len` bytes; `None`: it did
    /// not fit).
    fn published(
        &mut self,
        slots: &mut [PubSlot],
        j: usize,
        replacing: bool,
        len: Option<usize>,
    ) -> Result<(), PublishError> {
        let (Some(len), Some(slot)) = (len, slots.get_mut(j)) else {
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return Err(PublishError::TooLarge);
        };
        slot.len = len as u16;
        if replacing {
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
        } else {
            self.next_seq = self.next_seq.wrapping_add(1);
            self.count += 1;
        }
        self.stats.published = self.stats.published.wrapping_add(1);
        self.runner.wake();
        Ok(())
    }

    /// A session starts: nobody is subscribed; everything held is to be
    /// sent again.
    fn on_session(&mut self, slots: &mut [PubSlot]) {
        let n = slots.len();
        self.window = None;
        for i in 0..self.count {
            if let Some(e) = self.index(n, i).and_then(|j| slots.get_mut(j)) {
                e.sent = false;
            }
        }
        let oldest = self.index(n, 0).and_then(|j| slots.get(j)).map(|e| e.seq);
        self.credited = oldest.unwrap_or(self.next_seq);
    }

    /// The subscriber consumed every sample before `next`.
    fn on_credit(&mut self, slots: &[PubSlot], next: u32) {
        let n = slots.len();
        while let Some(e) = self.index(n, 0).and_then(|j| slots.get(j)) {
            // Sequence numbers wrap: "before" by the signed distance.
            if (next.wrapping_sub(e.seq) as i32) > 0 {
                self.pop_front(n);
            } else {
                break;
            }
        }
        if (next.wrapping_sub(self.credited) as i32) > 0 {
            self.credited = next;
        }
        self.runner.wake();
    }

    /// The slot of the first held sample not yet sent in this session,
    /// if the subscriber's window lets it go. A latest-only topic keeps
    /// at most `K = N - 1` samples sent and not yet credited, so one slot
    /// is always free to take the newest value (replaced in place, never
    /// a sample the subscriber may already have).
    fn next_sendable(&self, slots: &[PubSlot], delivery: Delivery) -> Option<usize> {
        let window = self.window?;
        let n = slots.len();
        let live = || (0..self.count).filter_map(|i| self.index(n, i));
        if delivery == Delivery::Latest {
            let in_flight = live().filter(|&j| slots.get(j).is_some_and(|e| e.sent)).count();
            if in_flight >= n.saturating_sub(1).max(1) {
                return None;
            }
        }
        live().find(|&j| slots.get(j).is_some_and(|e| !e.sent && e.seq.wrapping_sub(self.credited) < u32::from(window)))
    }

    /// Publishes the sample `encode` writes (its length; `None`: it does
    /// not fit), into `bytes`, the ring's samples of `scratch.len()` bytes
    /// each. Not generic: one copy for every publication type.
    fn publish(
        &mut self,
        slots: &mut [PubSlot],
        bytes: &mut [u8],
        scratch: &mut [u8],
        delivery: Delivery,
        encode: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<(), PublishError> {
        let buf = scratch.len();
        // Where the sample goes: the newest unsent one of a latest-only
        // topic is replaced; otherwise a new slot (making room as the
        // kind says). Encoded in place: no buffer moves.
        let (j, replacing) = self.place(slots, delivery)?;
        let Some(bytes) = bytes.get_mut(j * buf..).and_then(|b| b.get_mut(..buf)) else {
            return Err(PublishError::TooLarge);
        };
        // A new slot is encoded in place; a replacement first beside
        // it (on the stack), as a sample too large for the slot would
        // overwrite part of the one it replaces, which then stays whole.
        let len = encode(if replacing { &mut *scratch } else { &mut *bytes });
        if replacing
            && let Some(n) = len
            && let (Some(to), Some(from)) = (bytes.get_mut(..n), scratch.get(..n))
        {
            to.copy_from_slice(from);
        }
        self.published(slots, j, replacing, len)
    }

    /// Hands the next sample that may go to `send` (see
    /// [`PublicationState::send_next`]); `bytes`: the ring's samples,
    /// `buf` bytes each. Not generic: one copy for every publication type.
    fn send_next(
        &mut self,
        slots: &mut [PubSlot],
        bytes: &[u8],
        buf: usize,
        delivery: Delivery,
        send: &mut dyn FnMut(u32, bool, &[u8]) -> bool,
    ) -> bool {
        let Some(j) = self.next_sendable(slots, delivery) else { return false };
        let Some(e) = slots.get(j) else { return false };
        let sample = bytes.get(j * buf..).and_then(|b| b.get(..usize::from(e.len))).unwrap_or(&[]);
        let sent = send(e.seq, e.ever_sent, sample);
        if sent {
            self.sent(slots, j);
        }
        sent
    }

    /// Slot `j`'s sample went out.
    fn sent(&mut self, slots: &mut [PubSlot], j: usize) {
        if let Some(e) = slots.get_mut(j) {
            if e.ever_sent {
                self.stats.resent = self.stats.resent.wrapping_add(1);
            }
            e.sent = true;
            e.ever_sent = true;
        }
    }
}

/// A topic this side publishes: a buffer of `N` encoded samples of up to
/// `BUF` bytes each, delivered as [`Delivery`] says. Put it in a `static`
/// (or an `Arc`), add it to the [`Server`](crate::Server) with
/// [`publish`](crate::Server::publish), and publish from any task (a
/// [`Delivery::Lossy`] or `Latest` one from an interrupt too, with an
/// interrupt-safe mutex `M`).
///
/// RAM: `N × (BUF + 12) + 48` bytes; publishing takes `BUF` bytes of
/// stack besides (a latest-only replacement is encoded there first, so a
/// sample too large for the entries leaves the one it would replace
/// whole).
// r[impl rpc.topic]
pub struct Publication<T: Topic, M: RawMutex, const N: usize, const BUF: usize> {
    ring: Mutex<M, RefCell<PubRing<N, BUF>>>,
    delivery: Delivery,
    _topic: PhantomData<fn() -> T>,
}

/// A sample could not be published: the buffer is full (a reliable topic
/// whose subscriber has not credited `N` samples) or the sample does not
/// encode into `BUF` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PublishError {
    /// The buffer is full (reliable topics only).
    Full,
    /// The sample does not encode into the buffer's entries.
    TooLarge,
}

impl<T: Topic, M: RawMutex, const N: usize, const BUF: usize> Publication<T, M, N, BUF> {
    /// An empty publication.
    pub const fn new(delivery: Delivery) -> Self {
        const { assert!(N >= 1 && BUF <= u16::MAX as usize, "a publication holds at least one sample") };
        Self {
            ring: Mutex::new(RefCell::new(PubRing {
                core: PubCore {
                    head: 0,
                    count: 0,
                    next_seq: 0,
                    window: None,
                    credited: 0,
                    stats: PublishStats { published: 0, dropped: 0, resent: 0 },
                    publisher: WakerRegistration::new(),
                    runner: WakerRegistration::new(),
                },
                slots: [PubSlot { seq: 0, len: 0, sent: false, ever_sent: false }; N],
                bytes: [[0; BUF]; N],
            })),
            delivery,
            _topic: PhantomData,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut PubRing<N, BUF>) -> R) -> R {
        self.ring.lock(|r| f(&mut r.borrow_mut()))
    }

    /// Counters.
    pub fn stats(&self) -> PublishStats {
        self.with(|r| r.core.stats)
    }

    /// Samples held (not yet credited by the subscriber).
    pub fn held(&self) -> usize {
        self.with(|r| r.core.count)
    }

    /// Publishes `msg` without waiting: a reliable topic with a full
    /// buffer refuses it ([`PublishError::Full`]); the other kinds make
    /// room (counted).
    pub fn try_publish(&self, msg: &T::Msg<'_>) -> Result<(), PublishError> {
        let delivery = self.delivery;
        let mut scratch = [0u8; BUF];
        let mut encode = |dst: &mut [u8]| postcard::to_slice(msg, dst).map(|b| b.len()).ok();
        self.with(|r| r.core.publish(&mut r.slots, r.bytes.as_flattened_mut(), &mut scratch, delivery, &mut encode))
    }

    /// Publishes `msg`, waiting while a reliable topic's buffer is full
    /// (until the subscriber credits a sample).
    pub fn publish(&self, msg: &T::Msg<'_>) -> impl Future<Output = Result<(), PublishError>> {
        // A `poll_fn`, not an `async fn` around one (smaller and less code).
        core::future::poll_fn(move |cx| match self.try_publish(msg) {
            Err(PublishError::Full) => {
                self.with(|r| r.core.publisher.register(cx.waker()));
                // Credited meanwhile?
                match self.try_publish(msg) {
                    Err(PublishError::Full) => Poll::Pending,
                    done => Poll::Ready(done),
                }
            }
            done => Poll::Ready(done),
        })
    }
}

/// What the runner needs of a publication, whatever its types. Sealed:
/// implemented by [`Publication`] only (the runner's steps go through one
/// hidden method, so each publication type has one routine for them).
/// The steps themselves (`on_session`, `on_subscribe`, `on_credit`,
/// `ready`, `send_next`) are methods of `dyn PublicationState`: a test or
/// a runner of your own calls them on `&publication as &dyn
/// PublicationState`.
pub trait PublicationState: sealed::Sealed {
    /// The topic's key.
    fn key(&self) -> crate::EndpointKey;
    /// The topic's name.
    fn name(&self) -> &'static str;
    /// Does the runner's `step` (see the methods of `dyn PublicationState`).
    #[doc(hidden)]
    fn runner_step(&self, step: RunnerStep<'_, '_>) -> bool;
}

mod sealed {
    /// Implemented by [`Publication`](super::Publication) and
    /// [`Subscription`](super::Subscription) only.
    pub trait Sealed {}
}

impl<T: Topic, M: RawMutex, const N: usize, const BUF: usize> sealed::Sealed for Publication<T, M, N, BUF> {}

impl<T: Topic, M: RawMutex, const N: usize, const BUF: usize> PublicationState for Publication<T, M, N, BUF> {
    fn key(&self) -> crate::EndpointKey {
        T::KEY
    }
    fn name(&self) -> &'static str {
        T::NAME
    }
    /// The lock taken in one place per publication type, the work in
    /// `PubCore::runner_step`, one copy for every type.
    #[inline(never)]
    fn runner_step(&self, step: RunnerStep<'_, '_>) -> bool {
        let delivery = self.delivery;
        self.with(|r| r.core.runner_step(&mut r.slots, r.bytes.as_flattened(), BUF, delivery, step))
    }
}

/// The runner's steps, on any publication: each names its step for the
/// one routine of the publication's type.
impl dyn PublicationState + '_ {
    /// A session starts: nobody is subscribed; everything held is to be
    /// sent again (as possible duplicates).
    pub fn on_session(&self) {
        self.runner_step(RunnerStep::Session);
    }
    /// The peer subscribed with this credit window.
    pub fn on_subscribe(&self, window: u16) {
        self.runner_step(RunnerStep::Subscribe(u32::from(window)));
    }
    /// The peer consumed every sample before `next`.
    pub fn on_credit(&self, next: u32) {
        self.runner_step(RunnerStep::Credit(next));
    }
    /// Registers the runner's waker; whether a sample can be sent now.
    pub fn ready(&self, runner: &Waker) -> bool {
        self.runner_step(RunnerStep::Ready(runner))
    }
    /// Hands the next sample that may go to `send` (seq, possible
    /// duplicate, bytes); `false` when none may.
    pub fn send_next(&self, send: &mut dyn FnMut(u32, bool, &[u8]) -> bool) -> bool {
        self.runner_step(RunnerStep::Send(&mut { send }))
    }
}

/// What the runner asks of a publication (the [`PublicationState`]
/// methods but the key and name): one routine per publication type takes
/// the lock for all of them, and one non-generic routine does the work.
/// Each variant holds one word (the window widened, the sender's closure
/// behind a thin reference), so a step is passed in two registers.
#[doc(hidden)]
pub enum RunnerStep<'a, 's> {
    Session,
    /// The subscriber's window (a `u16`).
    Subscribe(u32),
    Credit(u32),
    Ready(&'a Waker),
    Send(&'a mut &'s mut dyn FnMut(u32, bool, &[u8]) -> bool),
}

impl PubCore {
    /// Does the runner's `step` (see [`PublicationState`]); `bytes`: the
    /// ring's samples, `buf` bytes each.
    fn runner_step(
        &mut self,
        slots: &mut [PubSlot],
        bytes: &[u8],
        buf: usize,
        delivery: Delivery,
        step: RunnerStep<'_, '_>,
    ) -> bool {
        match step {
            RunnerStep::Session => self.on_session(slots),
            RunnerStep::Subscribe(window) => {
                // Widened from a `u16` by `on_subscribe`: exact.
                self.window = Some(window as u16);
                self.runner.wake();
            }
            RunnerStep::Credit(next) => self.on_credit(slots, next),
            RunnerStep::Ready(runner) => {
                self.runner.register(runner);
                return self.next_sendable(slots, delivery).is_some();
            }
            RunnerStep::Send(send) => return self.send_next(slots, bytes, buf, delivery, send),
        }
        false
    }
}

// ---------------------------------------------------------------- subscriber

#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Arrived, not yet handed to the consumer.
    Waiting,
    /// Handed out; credited when the consumer drops it.
    Out,
    /// Consumed.
    Done,
}

#[derive(Clone, Copy)]
struct SubEntry<const BUF: usize> {
    seq: u32,
    dup: bool,
    held: Held,
    len: u16,
    bytes: [u8; BUF],
}

struct SubRing<const W: usize, const BUF: usize> {
    /// Live from `head`, `count` of them; all zero bytes when empty (see
    /// the publication's ring).
    entries: [SubEntry<BUF>; W],
    head: usize,
    count: usize,
    /// The session the entries belong to.
    epoch: u32,
    /// The next sequence number expected (gaps are lost samples).
    expected: Option<u32>,
    /// A credit to send: every sample before this one is consumed.
    credit_due: Option<u32>,
    /// The topic's index in this session's peer greeting (`None`: the
    /// peer does not publish it, or has not greeted yet).
    peer_topic: Option<u16>,
    stats: SubscribeStats,
    consumer: WakerRegistration,
    runner: WakerRegistration,
}

/// Counters of a subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubscribeStats {
    /// Samples received.
    pub received: u32,
    /// Samples the publisher dropped (gaps in the sequence numbers).
    pub lost: u32,
    /// Samples marked as possible duplicates.
    pub duplicates: u32,
}

impl<const W: usize, const BUF: usize> SubRing<W, BUF> {
    /// Live entry `i` (0: the oldest); `None` beyond the live ones.
    fn at(&mut self, i: usize) -> Option<&mut SubEntry<BUF>> {
        if i >= self.count {
            return None;
        }
        let idx = (self.head + i) % W;
        self.entries.get_mut(idx)
    }

    /// Drops consumed samples from the front and owes the credit.
    fn advance(&mut self) {
        let mut moved = false;
        while let Some(e) = self.at(0) {
            if e.held != Held::Done {
                break;
            }
            let next = e.seq.wrapping_add(1);
            self.head = (self.head + 1) % W;
            self.count -= 1;
            self.credit_due = Some(next);
            moved = true;
        }
        if moved {
            self.runner.wake();
        }
    }
}

/// A topic of the peer this side subscribes to: room for `W` samples of
/// up to `BUF` bytes (the credit window it grants). Put it in a `static`
/// (or an `Arc`), add it to the [`Server`](crate::Server) with
/// [`subscribe`](crate::Server::subscribe), and read it with
/// [`samples`](Self::samples), a `futures_core::Stream`.
///
/// RAM: `W × (BUF + 12) + 64` bytes.
pub struct Subscription<T: Topic, M: RawMutex, const W: usize, const BUF: usize> {
    ring: Mutex<M, RefCell<SubRing<W, BUF>>>,
    _topic: PhantomData<fn() -> T>,
}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> Default for Subscription<T, M, W, BUF> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> Subscription<T, M, W, BUF> {
    /// An empty subscription.
    pub const fn new() -> Self {
        const { assert!(W >= 1 && W <= u16::MAX as usize && BUF <= u16::MAX as usize, "a window of 1 to 65,535") };
        Self {
            ring: Mutex::new(RefCell::new(SubRing {
                entries: [SubEntry { seq: 0, dup: false, held: Held::Waiting, len: 0, bytes: [0; BUF] }; W],
                head: 0,
                count: 0,
                epoch: 0,
                expected: None,
                credit_due: None,
                peer_topic: None,
                stats: SubscribeStats { received: 0, lost: 0, duplicates: 0 },
                consumer: WakerRegistration::new(),
                runner: WakerRegistration::new(),
            })),
            _topic: PhantomData,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut SubRing<W, BUF>) -> R) -> R {
        self.ring.lock(|r| f(&mut r.borrow_mut()))
    }

    /// Counters.
    pub fn stats(&self) -> SubscribeStats {
        self.with(|r| r.stats)
    }

    /// The samples, as a `futures_core::Stream` (never ending: sessions
    /// come and go under it).
    pub fn samples(&self) -> Samples<'_, T, M, W, BUF> {
        Samples { sub: self }
    }

    fn poll_sample(&self, cx: &mut Context<'_>) -> Poll<Received<'_, T, M, W, BUF>> {
        self.with(|r| {
            for i in 0..r.count {
                let epoch = r.epoch;
                if let Some(e) = r.at(i)
                    && e.held == Held::Waiting
                {
                    e.held = Held::Out;
                    return Poll::Ready(Received {
                        sub: self,
                        epoch,
                        seq: e.seq,
                        dup: e.dup,
                        len: usize::from(e.len),
                        bytes: e.bytes,
                    });
                }
            }
            r.consumer.register(cx.waker());
            Poll::Pending
        })
    }

    fn consumed(&self, epoch: u32, seq: u32) {
        self.with(|r| {
            if r.epoch != epoch {
                return;
            }
            for i in 0..r.count {
                if let Some(e) = r.at(i)
                    && e.seq == seq
                {
                    e.held = Held::Done;
                }
            }
            r.advance();
        });
    }
}

/// What the runner needs of a subscription, whatever its types. Sealed:
/// implemented by [`Subscription`] only.
pub trait SubscriptionState: sealed::Sealed {
    /// The topic's key.
    fn key(&self) -> crate::EndpointKey;
    /// A session starts: samples not yet handed out are forgotten (the
    /// publisher sends them again).
    fn on_session(&self);
    /// The credit window this side grants.
    fn window(&self) -> u16;
    /// The peer greeted: the topic's index in its greeting, `None` when
    /// it does not publish the topic. Kept until the next session starts.
    fn set_peer_topic(&self, topic: Option<u16>);
    /// The topic's index in this session's peer greeting.
    fn peer_topic(&self) -> Option<u16>;
    /// A sample arrived; `false` when it exceeds the window (a violation).
    fn on_sample(&self, seq: u32, dup: bool, body: &[u8]) -> bool;
    /// Registers the runner's waker; the credit to send, if one is owed,
    /// with the peer's index of the topic.
    fn take_credit(&self, runner: &Waker) -> Option<(u16, u32)>;
    /// Registers the runner's waker; whether a credit is owed (and the
    /// peer publishes the topic).
    fn credit_ready(&self, runner: &Waker) -> bool;
}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> sealed::Sealed for Subscription<T, M, W, BUF> {}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> SubscriptionState for Subscription<T, M, W, BUF> {
    fn key(&self) -> crate::EndpointKey {
        T::KEY
    }
    fn on_session(&self) {
        self.with(|r| {
            r.epoch = r.epoch.wrapping_add(1);
            r.head = 0;
            r.count = 0;
            r.expected = None;
            r.credit_due = None;
            r.peer_topic = None;
        });
    }

    fn window(&self) -> u16 {
        W as u16
    }

    fn set_peer_topic(&self, topic: Option<u16>) {
        self.with(|r| r.peer_topic = topic);
    }

    fn peer_topic(&self) -> Option<u16> {
        self.with(|r| r.peer_topic)
    }

    fn on_sample(&self, seq: u32, dup: bool, body: &[u8]) -> bool {
        self.with(|r| {
            if r.count == W {
                return false;
            }
            if let Some(expected) = r.expected {
                let gap = seq.wrapping_sub(expected);
                if (gap as i32) > 0 {
                    r.stats.lost = r.stats.lost.wrapping_add(gap);
                }
            }
            r.expected = Some(seq.wrapping_add(1));
            r.stats.received = r.stats.received.wrapping_add(1);
            if dup {
                r.stats.duplicates = r.stats.duplicates.wrapping_add(1);
            }
            let idx = (r.head + r.count) % W;
            if let Some(e) = r.entries.get_mut(idx) {
                (e.seq, e.dup, e.held) = (seq, dup, Held::Waiting);
                // Too large for this side's entries: delivered empty (its
                // `get` fails), and credited like any other.
                e.len = match e.bytes.get_mut(..body.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(body);
                        body.len() as u16
                    }
                    None => 0,
                };
                r.count += 1;
            }
            r.consumer.wake();
            true
        })
    }

    fn take_credit(&self, runner: &Waker) -> Option<(u16, u32)> {
        self.with(|r| {
            if !runner.will_wake(Waker::noop()) {
                r.runner.register(runner);
            }
            let topic = r.peer_topic?;
            r.credit_due.take().map(|next| (topic, next))
        })
    }

    fn credit_ready(&self, runner: &Waker) -> bool {
        self.with(|r| {
            r.runner.register(runner);
            r.peer_topic.is_some() && r.credit_due.is_some()
        })
    }
}

/// The samples of a [`Subscription`], as a `futures_core::Stream`.
pub struct Samples<'s, T: Topic, M: RawMutex, const W: usize, const BUF: usize> {
    sub: &'s Subscription<T, M, W, BUF>,
}

impl<'s, T: Topic, M: RawMutex, const W: usize, const BUF: usize> futures_core::Stream for Samples<'s, T, M, W, BUF> {
    type Item = Received<'s, T, M, W, BUF>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.sub.poll_sample(cx).map(Some)
    }
}

impl<'s, T: Topic, M: RawMutex, const W: usize, const BUF: usize> Samples<'s, T, M, W, BUF> {
    /// The next sample.
    pub async fn next(&mut self) -> Received<'s, T, M, W, BUF> {
        let sub = self.sub;
        core::future::poll_fn(|cx| sub.poll_sample(cx)).await
    }
}

/// A received sample: its bytes (copied out of the conduit at once), its
/// sequence number and whether it may be a duplicate. Dropping it grants
/// the publisher credit for it: keep it until the sample is safe (a
/// broker bridge drops it once the broker has it).
pub struct Received<'s, T: Topic, M: RawMutex, const W: usize, const BUF: usize> {
    sub: &'s Subscription<T, M, W, BUF>,
    epoch: u32,
    seq: u32,
    dup: bool,
    len: usize,
    bytes: [u8; BUF],
}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> Received<'_, T, M, W, BUF> {
    /// The sample, decoded (borrowing this value); `None` when it does not
    /// decode as the topic's type.
    pub fn get(&self) -> Option<T::Msg<'_>> {
        let bytes = self.bytes.get(..self.len)?;
        match postcard::take_from_bytes::<T::Msg<'_>>(bytes) {
            Ok((msg, [])) => Some(msg),
            _ => None,
        }
    }

    /// The publisher's sequence number of the sample.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Sent again after a session loss: the subscriber may have had it.
    pub fn possibly_duplicate(&self) -> bool {
        self.dup
    }
}

impl<T: Topic, M: RawMutex, const W: usize, const BUF: usize> Drop for Received<'_, T, M, W, BUF> {
    fn drop(&mut self) {
        self.sub.consumed(self.epoch, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::task::Waker;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;

    crate::declare! {
        pub topic Num = "num": u32;
        pub topic Pair = "pair": (u32, u32);
    }

    /// The runner's view of a publication.
    fn st(p: &dyn PublicationState) -> &dyn PublicationState {
        p
    }

    fn sent(p: &dyn PublicationState) -> std::vec::Vec<(u32, bool, u32)> {
        let mut out = std::vec::Vec::new();
        while p.send_next(&mut |seq, dup, bytes| {
            out.push((seq, dup, postcard::from_bytes::<u32>(bytes).unwrap()));
            true
        }) {}
        out
    }

    #[test]
    fn a_reliable_publication_waits_for_credit_and_resends_what_was_not_credited() {
        let p: Publication<Num, M, 3, 8> = Publication::new(Delivery::Reliable);
        for n in 0..3 {
            p.try_publish(&n).unwrap();
        }
        assert_eq!(p.try_publish(&3), Err(PublishError::Full));
        assert!(sent(&p).is_empty(), "nobody subscribed");
        st(&p).on_subscribe(2);
        assert_eq!(sent(&p), [(0, false, 0), (1, false, 1)], "the window: 2 beyond the credit");
        st(&p).on_credit(1);
        assert_eq!(sent(&p), [(2, false, 2)]);
        p.try_publish(&3).unwrap();
        // The session is lost: what was not credited comes again, marked.
        st(&p).on_session();
        assert!(sent(&p).is_empty());
        st(&p).on_subscribe(8);
        assert_eq!(sent(&p), [(1, true, 1), (2, true, 2), (3, false, 3)]);
        assert_eq!(p.stats(), PublishStats { published: 4, dropped: 0, resent: 2 });
        st(&p).on_credit(4);
        assert_eq!(p.held(), 0);
        assert!(!st(&p).ready(Waker::noop()));
    }

    #[test]
    fn latest_only_keeps_the_newest_unsent_and_lossy_drops_the_oldest() {
        let latest: Publication<Num, M, 2, 8> = Publication::new(Delivery::Latest);
        st(&latest).on_subscribe(1);
        for n in 0..100 {
            latest.try_publish(&n).unwrap();
        }
        assert_eq!(sent(&latest), [(0, false, 99)]);
        assert_eq!(latest.stats().dropped, 99);
        let lossy: Publication<Num, M, 3, 8> = Publication::new(Delivery::Lossy);
        for n in 0..5 {
            lossy.try_publish(&n).unwrap();
        }
        st(&lossy).on_subscribe(8);
        assert_eq!(sent(&lossy), [(2, false, 2), (3, false, 3), (4, false, 4)]);
        assert_eq!(lossy.stats().dropped, 2);
        let tiny: Publication<Num, M, 1, 2> = Publication::new(Delivery::Lossy);
        assert_eq!(tiny.try_publish(&u32::MAX), Err(PublishError::TooLarge));
    }

    /// A newest value too large for the entries is refused, and the value
    /// it would have replaced goes out whole (not overwritten in part).
    #[test]
    fn latest_only_keeps_the_replaced_value_whole_when_the_new_one_is_too_large() {
        let latest: Publication<Pair, M, 2, 3> = Publication::new(Delivery::Latest);
        latest.try_publish(&(1, 2)).unwrap();
        // (7, 1,000,000) takes 4 bytes: its first one would fit.
        assert_eq!(latest.try_publish(&(7, 1_000_000)), Err(PublishError::TooLarge));
        st(&latest).on_subscribe(1);
        let mut out = std::vec::Vec::new();
        while st(&latest).send_next(&mut |seq, dup, bytes| {
            out.push((seq, dup, postcard::from_bytes::<(u32, u32)>(bytes).unwrap()));
            true
        }) {}
        assert_eq!(out, [(0, false, (1, 2))]);
        assert_eq!(latest.stats(), PublishStats { published: 1, dropped: 1, resent: 0 });
    }

    /// A wide subscriber window does not let a latest-only topic send more
    /// than K = N - 1: the newest value always has a free entry, and a
    /// sample sent (and perhaps delivered) is never counted as dropped.
    // r[verify rpc.no-hol]
    #[test]
    fn latest_only_keeps_at_most_k_in_flight_whatever_the_window() {
        let latest: Publication<Num, M, 2, 8> = Publication::new(Delivery::Latest);
        st(&latest).on_subscribe(16);
        latest.try_publish(&1).unwrap();
        assert_eq!(sent(&latest), [(0, false, 1)]);
        for n in 2..10 {
            latest.try_publish(&n).unwrap();
        }
        assert!(sent(&latest).is_empty(), "K = 1 sample in flight until credited");
        assert_eq!(latest.stats().dropped, 7, "2..=8 replaced, unsent; the delivered 1 is not among them");
        st(&latest).on_credit(1);
        assert_eq!(sent(&latest), [(1, false, 9)], "then the newest");
    }

    #[test]
    fn a_subscription_credits_in_order_counts_gaps_and_refuses_beyond_its_window() {
        let s: Subscription<Num, M, 2, 8> = Subscription::new();
        s.on_session();
        s.set_peer_topic(Some(3));
        let bytes = |n: u32| postcard::to_allocvec(&n).unwrap();
        assert!(s.on_sample(5, false, &bytes(50)));
        assert!(s.on_sample(7, true, &bytes(70)));
        assert!(!s.on_sample(8, false, &bytes(80)), "beyond the window");
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(a) = s.poll_sample(&mut cx) else { panic!() };
        let Poll::Ready(b) = s.poll_sample(&mut cx) else { panic!() };
        assert!(s.poll_sample(&mut cx).is_pending());
        assert_eq!((a.get(), a.seq(), a.possibly_duplicate()), (Some(50), 5, false));
        assert_eq!((b.get(), b.seq(), b.possibly_duplicate()), (Some(70), 7, true));
        // Consumed out of order: the credit waits for the older one.
        drop(b);
        assert_eq!(s.take_credit(waker), None);
        drop(a);
        assert!(s.credit_ready(waker));
        assert_eq!(s.take_credit(waker), Some((3, 8)), "the credit, with the peer's index of the topic");
        assert_eq!(s.stats(), SubscribeStats { received: 2, lost: 1, duplicates: 1 });
        // A sample handed out in an old session credits nothing in the new,
        // and the new session knows no peer index until the peer greets.
        assert!(s.on_sample(8, false, &bytes(80)));
        let Poll::Ready(old) = s.poll_sample(&mut cx) else { panic!() };
        s.on_session();
        assert_eq!(s.peer_topic(), None);
        drop(old);
        assert_eq!(s.take_credit(waker), None);
    }
}
