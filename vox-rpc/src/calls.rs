//! `Calls`: the fixed table of this side's calls in flight, shared by the
//! callers ([`Client`](crate::Client)) and the rpc runner that sends their
//! requests and routes the answers back. Sans-I/O: the runner feeds it
//! frames and time; callers wait on their own entry.

use crate::clock_sync::ClockSync;
use crate::ring::Ring;
use crate::wire::RpcFamily;
use crate::wire::{Frame, Request};
use crate::{Body, EndpointKey, Refusal};
use core::cell::RefCell;
use core::task::{Context, Poll, Waker};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use heapless::Vec;
use vox_types::{ConduitError, ConduitTxPermit, ErrorKind, Instant};

/// A call's id on the wire: `generation << slot_bits | slot`, where
/// `slot_bits` is the number of bits that hold `N - 1` (0 for one entry).
///
/// The generation (16 bits) grows each time the slot is freed, so an
/// answer to an abandoned call never matches the slot's next call; the
/// side is the direction (a request carries the sender's id, an answer
/// the receiver's), so the two sides' ids never meet.
// r[impl rpc.ids]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CallId {
    /// The entry in the table.
    pub slot: u16,
    /// How many times that entry was freed before (wrapping).
    pub generation: u16,
}

impl CallId {
    /// Bits of the slot in a table of `n` entries.
    pub const fn slot_bits(n: usize) -> u32 {
        if n <= 1 { 0 } else { usize::BITS - (n - 1).leading_zeros() }
    }

    /// The wire form in a table of `n` entries.
    pub const fn encode(self, n: usize) -> u32 {
        ((self.generation as u32) << Self::slot_bits(n)) | self.slot as u32
    }

    /// The id of wire form `id` in a table of `n` entries (`None` when it
    /// cannot be one of its ids).
    pub const fn decode(id: u32, n: usize) -> Option<Self> {
        let bits = Self::slot_bits(n);
        let slot = id & ((1u32 << bits) - 1);
        let generation = id >> bits;
        if generation > u16::MAX as u32 || slot as usize >= n {
            return None;
        }
        Some(Self { slot: slot as u16, generation: generation as u16 })
    }
}

/// Counters of a [`Calls`] table, over every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CallStats {
    /// Requests committed to a conduit.
    pub sent: u32,
    /// Answers matched to the call waiting for them.
    pub answered: u32,
    /// Answers that came after their call was dropped or timed out (never
    /// delivered to another call).
    pub late_answers: u32,
    /// Answers whose id matches no call ever sent in this session.
    pub unexpected_answers: u32,
    /// Cancels sent for committed calls that were dropped.
    pub cancels: u32,
    /// Cancels not sent because the cancel queue was full.
    pub cancels_dropped: u32,
}

/// What ended a call, as the table records it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Reply,
    Failed,
    Refused(Refusal),
    /// Never committed: the peer does not list the endpoint.
    Unknown,
    /// The request's frame does not fit the conduit: never committed.
    TooLarge,
    /// The response does not fit the entry: it ran.
    TooBig,
    Lost {
        kind: ErrorKind,
        committed: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Free,
    /// Freed and handed to the waiting caller with this ticket: only it
    /// may claim the entry (no newcomer takes it first).
    Handed {
        ticket: u32,
    },
    /// A caller is encoding its request.
    Claimed,
    Queued {
        seq: u32,
        key: EndpointKey,
        deadline: Instant,
    },
    Sent,
    Answered(Answer),
}

struct Entry<const BUF: usize> {
    state: State,
    generation: u16,
    waker: WakerRegistration,
    len: usize,
    buf: [u8; BUF],
}

impl<const BUF: usize> Entry<BUF> {
    const FREE: Self =
        Self { state: State::Free, generation: 0, waker: WakerRegistration::new(), len: 0, buf: [0; BUF] };
}

/// What this side knows of the session's peer.
struct Peer<const PEER: usize> {
    /// The peer's greeting arrived.
    greeted: bool,
    endpoints: Vec<EndpointKey, PEER>,
    /// Endpoints the peer listed beyond `PEER` (unknown to this side).
    endpoints_ignored: u16,
    max_in_flight: u16,
    fingerprint: u32,
    /// Requests committed and not yet answered.
    unanswered: u16,
    /// The absolute deadline (peer's clock) of the last request sent.
    last_deadline: i64,
    sync: ClockSync,
    /// The session under way (0: none yet).
    session: u32,
}

impl<const PEER: usize> Peer<PEER> {
    const NONE: Self = Self {
        greeted: false,
        endpoints: Vec::new(),
        endpoints_ignored: 0,
        max_in_flight: 0,
        fingerprint: 0,
        unanswered: 0,
        last_deadline: 0,
        sync: ClockSync::new(),
        session: 0,
    };
}

/// A caller waiting for an entry: its ticket and waker (`None`: a free
/// place).
struct Waiter(u32, Option<Waker>);

impl Waiter {
    const FREE: Self = Self(0, None);
}

struct Table<const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> {
    entries: [Entry<BUF>; N],
    next_seq: u32,
    /// Callers waiting for a free entry, in places in no order: they are
    /// served in the order of their tickets (the oldest is the furthest
    /// behind `next_ticket`). Plain places, not a queue: a caller that
    /// gives up only frees its place.
    waiters: [Waiter; WAIT],
    next_ticket: u32,
    runner: WakerRegistration,
    /// Ids of committed calls that were dropped: the runner sends a
    /// cancel for each.
    cancels: Ring<u32, N>,
    peer: Peer<PEER>,
    stats: CallStats,
}

/// The table of this side's calls in flight: `N` entries (at most 65,536),
/// each with a `BUF`-byte buffer that holds the encoded request until it is
/// sent and the encoded answer until the caller decodes it; `PEER` is how
/// many of the peer's endpoints this side can address; `WAIT` how many
/// callers may wait for an entry: in order, each woken once, when an
/// entry is handed to it (a caller beyond `WAIT` waiting ones fails at
/// once with [`CallError::Busy`](crate::CallError::Busy), not sent).
///
/// RAM: about `N × (BUF + 48) + WAIT × 12 + PEER × 4 + 120` bytes on a
/// 32-bit MCU (the demo device's `Calls<_, 1, 24, 4, 2>`: 232 B, as the
/// `firmware_size` bench's symbols show). Put it in a `static` on a
/// device, in an `Arc` on a host; a [`Client`](crate::Client) reaches it
/// through a [`StorageRef`](vox_types::StorageRef).
// r[impl rpc.inflight]
pub struct Calls<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize = 16, const WAIT: usize = 8> {
    table: Mutex<M, RefCell<Table<N, BUF, PEER, WAIT>>>,
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> Default
    for Calls<M, N, BUF, PEER, WAIT>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> Calls<M, N, BUF, PEER, WAIT> {
    const ASSERT: () = assert!(N >= 1 && N <= 1 << 16, "a Calls table has 1 to 65,536 entries");

    /// An empty table.
    pub const fn new() -> Self {
        let () = Self::ASSERT;
        Self {
            table: Mutex::new(RefCell::new(Table {
                entries: [Entry::FREE; N],
                next_seq: 0,
                waiters: [const { Waiter::FREE }; WAIT],
                next_ticket: 0,
                runner: WakerRegistration::new(),
                cancels: Ring::new(),
                peer: Peer::NONE,
                stats: CallStats {
                    sent: 0,
                    answered: 0,
                    late_answers: 0,
                    unexpected_answers: 0,
                    cancels: 0,
                    cancels_dropped: 0,
                },
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Table<N, BUF, PEER, WAIT>) -> R) -> R {
        self.table.lock(|t| f(&mut t.borrow_mut()))
    }

    /// Counters over every session.
    pub fn stats(&self) -> CallStats {
        self.with(|t| t.stats)
    }

    /// The bound ε (ms) on how late after a call's deadline the peer may
    /// still start it, at `now`: half the best clock sample's round trip,
    /// plus 1 ms of resolution, plus 100 ppm drift since that sample.
    /// `None` until the session's first sample.
    // r[impl rpc.deadline]
    pub fn epsilon(&self, now: Instant) -> Option<u64> {
        self.with(|t| t.peer.sync.epsilon(now))
    }

    /// What this side knows of the peer of the session under way.
    pub fn peer(&self) -> Option<PeerInfo> {
        self.with(|t| {
            t.peer.greeted.then(|| PeerInfo {
                session: t.peer.session,
                endpoints: t.peer.endpoints.len() as u16 + t.peer.endpoints_ignored,
                max_in_flight: t.peer.max_in_flight,
                fingerprint: t.peer.fingerprint,
            })
        })
    }

    /// Whether the peer of the session under way serves `key`.
    pub fn peer_serves(&self, key: EndpointKey) -> bool {
        self.with(|t| t.peer.endpoints.contains(&key))
    }

    // ---- callers ----

    /// Claims a free entry, or queues the caller (`ticket`) until one is
    /// handed to it, in order. `Err` when `WAIT` callers wait already.
    pub(crate) fn poll_claim(&self, ticket: &mut Option<u32>, cx: &mut Context<'_>) -> Poll<Result<CallId, ()>> {
        self.with(|t| {
            // A waiting caller takes the entry handed to it; a newcomer a
            // free entry, which there is only when nobody waits (entries
            // freed while callers wait are handed to them).
            let slot = t.entries.iter().position(|e| match (e.state, *ticket) {
                (State::Handed { ticket }, Some(mine)) => ticket == mine,
                (State::Free, None) => true,
                _ => false,
            });
            if let Some(slot) = slot {
                *ticket = None;
                let entry = t.entry(slot);
                entry.state = State::Claimed;
                return Poll::Ready(Ok(CallId { slot: slot as u16, generation: entry.generation }));
            }
            match *ticket {
                Some(mine) => {
                    // (A free place has no waker.)
                    if let Some(Waiter(_, Some(w))) = t.waiters.iter_mut().find(|w| w.0 == mine && w.1.is_some()) {
                        w.clone_from(cx.waker());
                    }
                }
                None => {
                    let mine = t.next_ticket;
                    // `WAIT` callers wait already: refused.
                    let Some(place) = t.waiters.iter_mut().find(|w| w.1.is_none()) else {
                        return Poll::Ready(Err(()));
                    };
                    *place = Waiter(mine, Some(cx.waker().clone()));
                    t.next_ticket = mine.wrapping_add(1);
                    *ticket = Some(mine);
                }
            }
            Poll::Pending
        })
    }

    /// A call was dropped (one lock for both halves): a caller waiting
    /// for an entry (`ticket`) leaves the queue, and an entry already
    /// handed to it goes to the next caller waiting; a call holding an
    /// entry (`id`) frees it at once, and a committed request gets a
    /// best-effort cancel.
    // r[impl rpc.cancel]
    pub(crate) fn give_up(&self, ticket: Option<u32>, id: Option<CallId>) {
        self.with(|t| {
            if let Some(ticket) = ticket {
                t.stop_waiting(ticket);
            }
            if let Some(id) = id {
                t.abandon(id);
            }
        });
    }

    /// Encodes the request into the claimed entry and queues it for the
    /// runner. On an encoding failure the entry is freed.
    pub(crate) fn queue(
        &self,
        id: CallId,
        key: EndpointKey,
        deadline: Instant,
        encode: &mut (dyn FnMut(&mut [u8]) -> Option<usize> + Send),
    ) -> bool {
        self.with(|t| {
            let seq = t.next_seq;
            let entry = t.entry(id.slot as usize);
            match encode(&mut entry.buf) {
                Some(len) => {
                    entry.len = len;
                    entry.state = State::Queued { seq, key, deadline };
                    t.next_seq = seq.wrapping_add(1);
                    t.runner.wake();
                    true
                }
                None => {
                    t.free(id.slot as usize);
                    false
                }
            }
        })
    }

    /// The call's answer, once there is one; registers the caller's waker.
    pub(crate) fn poll_answer(&self, id: CallId, cx: &mut Context<'_>) -> Poll<()> {
        self.with(|t| {
            let entry = t.entry(id.slot as usize);
            if entry.generation == id.generation && matches!(entry.state, State::Answered(_)) {
                Poll::Ready(())
            } else {
                entry.waker.register(cx.waker());
                Poll::Pending
            }
        })
    }

    /// Takes the call's answer and frees the entry at once; `f` gets what
    /// was found and the answer's bytes (copied out: `f` runs with the
    /// table unlocked), and its result is returned. With no answer yet the call is given up (see
    /// [`give_up`](Self::give_up)).
    pub(crate) fn finish<R>(&self, id: CallId, f: impl FnOnce(Finished, &[u8]) -> R) -> R {
        let mut bytes = [0u8; BUF];
        let finished = self.with(|t| {
            let entry = t.entry(id.slot as usize);
            if entry.generation != id.generation {
                return Finished::Gone(true);
            }
            let finished = match entry.state {
                State::Answered(answer) => {
                    let len = entry.len.min(BUF);
                    if let (Some(dst), Some(src)) = (bytes.get_mut(..len), entry.buf.get(..len)) {
                        dst.copy_from_slice(src);
                    }
                    Finished::Answer(answer, len)
                }
                State::Sent => Finished::Pending { committed: true },
                State::Free | State::Handed { .. } | State::Claimed | State::Queued { .. } => {
                    Finished::Pending { committed: false }
                }
            };
            if let Finished::Pending { committed: true } = finished {
                t.cancel(id);
            }
            t.free(id.slot as usize);
            finished
        });
        let len = match finished {
            Finished::Answer(_, len) => len,
            _ => 0,
        };
        f(finished, bytes.get(..len).unwrap_or(&[]))
    }

    // ---- the runner ----

    /// Registers the runner's waker (woken when a request is queued or a
    /// cancel is due) and says whether one is waiting now: one lock.
    pub(crate) fn runner_work(&self, waker: &Waker) -> bool {
        self.with(|t| {
            t.runner.register(waker);
            !t.cancels.is_empty() || t.next_queued().is_some()
        })
    }

    /// A new session starts: forget the last peer.
    pub(crate) fn session_started(&self) -> u32 {
        self.with(|t| {
            let session = t.peer.session.wrapping_add(1);
            t.peer = Peer::NONE;
            t.peer.session = session;
            t.cancels.clear();
            session
        })
    }

    /// The session ended with an error of `kind`: every committed call
    /// resolves at once; queued ones wait for the next session (or their
    /// deadline).
    pub(crate) fn session_ended(&self, kind: ErrorKind) {
        self.with(|t| {
            for entry in t.entries.iter_mut() {
                if matches!(entry.state, State::Sent) {
                    entry.state = State::Answered(Answer::Lost { kind, committed: true });
                    entry.len = 0;
                    entry.waker.wake();
                }
            }
            // (Cancels left are dropped when the next session starts.)
            t.peer.greeted = false;
            t.peer.sync = ClockSync::new();
        });
    }

    /// The peer's greeting.
    pub(crate) fn greeted(&self, endpoints: &[u8], max_in_flight: u16, fingerprint: u32) {
        self.with(|t| {
            // Once per session (a second greeting ends it), after
            // `session_started` forgot the last peer: the list is empty.
            for key in crate::wire::keys(endpoints) {
                if t.peer.endpoints.push(key).is_err() {
                    t.peer.endpoints_ignored = t.peer.endpoints_ignored.saturating_add(1);
                }
            }
            t.peer.max_in_flight = max_in_flight;
            t.peer.fingerprint = fingerprint;
            t.peer.greeted = true;
            t.runner.wake();
        });
    }

    /// A clock sample (our `t0`, `t3`; the peer's `t1`, `t2`): the
    /// samples taken in this session, this one included (one lock).
    pub(crate) fn clock_sample(&self, t0: u64, t1: u64, t2: u64, t3: Instant) -> u32 {
        self.with(|t| {
            t.peer.sync.sample(t0, t1, t2, t3);
            t.runner.wake();
            t.peer.sync.samples()
        })
    }

    /// Clock samples taken in the session under way: 8 at its start, then
    /// one every 30 s.
    pub fn clock_samples(&self) -> u32 {
        self.with(|t| t.peer.sync.samples())
    }

    /// Sends this side's most urgent frame with `permit`, in one lock: a
    /// cancel, else the oldest queued request that can go (greeting and a
    /// clock sample arrived, room in the peer's window); calls to
    /// endpoints the peer does not list are answered `Unknown` on the way
    /// (never sent). `Ok(Some(permit))`: nothing to send. A request the
    /// conduit finds too large resolves its call (never sent); any other
    /// error is the conduit's.
    pub(crate) fn send_next<P: ConduitTxPermit<Msg = RpcFamily>>(&self, permit: P) -> Result<Option<P>, P::Error> {
        self.with(|t| {
            if let Some(id) = t.cancels.pop_front() {
                t.stats.cancels = t.stats.cancels.wrapping_add(1);
                return permit.send(Frame::Cancel { id }).map(|()| None);
            }
            let Some((slot, index, deadline)) = t.next_queued() else { return Ok(Some(permit)) };
            let Some(deadline) = t.peer.sync.to_peer(deadline) else { return Ok(Some(permit)) };
            let delta = deadline.wrapping_sub(t.peer.last_deadline);
            let id = CallId { slot: slot as u16, generation: t.entry(slot).generation }.encode(N);
            let entry = t.entry(slot);
            let body = entry.buf.get(..entry.len).unwrap_or(&[]);
            let frame = Frame::Request(Request { id, endpoint: index, deadline: delta, body: Body::Bytes(body) });
            match permit.send(frame) {
                Ok(()) => {
                    entry.state = State::Sent;
                    t.peer.last_deadline = deadline;
                    t.peer.unanswered = t.peer.unanswered.saturating_add(1);
                    t.stats.sent = t.stats.sent.wrapping_add(1);
                    Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::TooLarge => {
                    entry.state = State::Answered(Answer::TooLarge);
                    entry.waker.wake();
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
    }

    /// An answer to call `id` arrived: a reply, a handler error (`body`)
    /// or a refusal. Wakes the caller; counts an answer nobody waits for.
    pub(crate) fn answer(&self, id: u32, answer: Answer, body: &[u8]) {
        self.with(|t| {
            if t.peer.unanswered == 0 {
                t.stats.unexpected_answers = t.stats.unexpected_answers.wrapping_add(1);
                return;
            }
            t.peer.unanswered -= 1;
            t.runner.wake();
            let matched = CallId::decode(id, N).filter(|id| {
                let entry = t.entry(id.slot as usize);
                entry.generation == id.generation && matches!(entry.state, State::Sent)
            });
            let Some(id) = matched else {
                t.stats.late_answers = t.stats.late_answers.wrapping_add(1);
                return;
            };
            t.stats.answered = t.stats.answered.wrapping_add(1);
            let entry = t.entry(id.slot as usize);
            match entry.buf.get_mut(..body.len()) {
                Some(dst) => {
                    dst.copy_from_slice(body);
                    entry.len = body.len();
                    entry.state = State::Answered(answer);
                }
                None => {
                    entry.len = 0;
                    entry.state = State::Answered(Answer::TooBig);
                }
            }
            entry.waker.wake();
        });
    }
}

/// A [`Calls`] table, whatever its sizes: what a [`Client`](crate::Client)
/// needs of it. Sealed: implemented by [`Calls`] only.
pub trait CallTable: sealed::Sealed + 'static {
    /// The bound ε (ms) on how late after a call's deadline the peer may
    /// still start it, at `now` (see [`Calls::epsilon`]).
    fn epsilon(&self, now: Instant) -> Option<u64>;
    #[doc(hidden)]
    fn poll_claim(&self, ticket: &mut Option<u32>, cx: &mut Context<'_>) -> Poll<Result<CallId, ()>>;
    #[doc(hidden)]
    fn queue(
        &self,
        id: CallId,
        key: EndpointKey,
        deadline: Instant,
        encode: &mut (dyn FnMut(&mut [u8]) -> Option<usize> + Send),
    ) -> bool;
    #[doc(hidden)]
    fn poll_answer(&self, id: CallId, cx: &mut Context<'_>) -> Poll<()>;
    #[doc(hidden)]
    fn finish<R>(&self, id: CallId, f: impl FnOnce(Finished, &[u8]) -> R) -> R;
    #[doc(hidden)]
    fn give_up(&self, ticket: Option<u32>, id: Option<CallId>);
}

mod sealed {
    pub trait Sealed {}
}

impl<M: RawMutex + 'static, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> sealed::Sealed
    for Calls<M, N, BUF, PEER, WAIT>
{
}

impl<M: RawMutex + 'static, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> CallTable
    for Calls<M, N, BUF, PEER, WAIT>
{
    fn epsilon(&self, now: Instant) -> Option<u64> {
        Calls::epsilon(self, now)
    }
    fn poll_claim(&self, ticket: &mut Option<u32>, cx: &mut Context<'_>) -> Poll<Result<CallId, ()>> {
        Calls::poll_claim(self, ticket, cx)
    }
    fn queue(
        &self,
        id: CallId,
        key: EndpointKey,
        deadline: Instant,
        encode: &mut (dyn FnMut(&mut [u8]) -> Option<usize> + Send),
    ) -> bool {
        Calls::queue(self, id, key, deadline, encode)
    }
    fn poll_answer(&self, id: CallId, cx: &mut Context<'_>) -> Poll<()> {
        Calls::poll_answer(self, id, cx)
    }
    fn finish<R>(&self, id: CallId, f: impl FnOnce(Finished, &[u8]) -> R) -> R {
        Calls::finish(self, id, f)
    }
    fn give_up(&self, ticket: Option<u32>, id: Option<CallId>) {
        Calls::give_up(self, ticket, id)
    }
}

/// What [`Calls::finish`] found.
#[derive(Clone, Copy)]
#[doc(hidden)]
pub enum Finished {
    /// The answer, its bytes copied out (this many).
    Answer(Answer, usize),
    /// No answer yet; the call was given up.
    Pending { committed: bool },
    /// The entry was freed already (cannot happen through `Client`).
    Gone(bool),
}

/// What a side knows of its peer, from the peer's greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerInfo {
    /// The session under way, counted from 1 on this table.
    pub session: u32,
    /// Endpoints the peer serves.
    pub endpoints: u16,
    /// Requests the peer holds room for.
    pub max_in_flight: u16,
    /// Hash of the peer's endpoint and topic keys (reported, not enforced).
    pub fingerprint: u32,
}

impl<const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> Table<N, BUF, PEER, WAIT> {
    // Slots come from this table or from `CallId::decode` (both below
    // `N`); anything else is clamped to 0, which exists because `N >= 1` is
    // checked at compile time: this indexing cannot panic.
    #[allow(clippy::indexing_slicing)]
    fn entry(&mut self, slot: usize) -> &mut Entry<BUF> {
        &mut self.entries[if slot < N { slot } else { 0 }]
    }

    fn free(&mut self, slot: usize) {
        let entry = self.entry(slot);
        entry.generation = entry.generation.wrapping_add(1);
        entry.len = 0;
        self.hand_on(slot);
    }

    /// The entry goes to the first caller waiting (woken, once), or is free.
    fn hand_on(&mut self, slot: usize) {
        let issued = self.next_ticket;
        let oldest = self.waiters.iter_mut().filter(|w| w.1.is_some()).max_by_key(|w| issued.wrapping_sub(w.0));
        let next = oldest.map(|w| core::mem::replace(w, Waiter::FREE));
        let entry = self.entry(slot);
        match next {
            Some(Waiter(ticket, waker)) => {
                entry.state = State::Handed { ticket };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => entry.state = State::Free,
        }
    }

    fn cancel(&mut self, id: CallId) {
        if self.cancels.push_back(id.encode(N)).is_ok() {
            self.runner.wake();
        } else {
            self.stats.cancels_dropped = self.stats.cancels_dropped.wrapping_add(1);
        }
    }

    /// A caller that waited for an entry gave up: it leaves the queue, and
    /// an entry already handed to it goes to the next caller waiting.
    fn stop_waiting(&mut self, ticket: u32) {
        self.remove_waiter(ticket);
        let handed = self.entries.iter().position(|e| matches!(e.state, State::Handed { ticket: k } if k == ticket));
        if let Some(slot) = handed {
            self.hand_on(slot);
        }
    }

    /// The caller dropped the call: its entry is freed at once; a
    /// committed request gets a best-effort cancel.
    fn abandon(&mut self, id: CallId) {
        let entry = self.entry(id.slot as usize);
        if entry.generation != id.generation || matches!(entry.state, State::Free | State::Handed { .. }) {
            return;
        }
        if matches!(entry.state, State::Sent) {
            self.cancel(id);
        }
        self.free(id.slot as usize);
    }

    fn remove_waiter(&mut self, ticket: u32) {
        if let Some(w) = self.waiters.iter_mut().find(|w| w.0 == ticket && w.1.is_some()) {
            *w = Waiter::FREE;
        }
    }

    /// The oldest queued call that can go now: (slot, the endpoint's index
    /// at the peer, deadline). Resolves calls to endpoints the peer lacks.
    fn next_queued(&mut self) -> Option<(usize, u16, Instant)> {
        if !self.peer.greeted
            || self.peer.sync.to_peer(Instant::from_millis(0)).is_none()
            || self.peer.unanswered >= self.peer.max_in_flight
        {
            return None;
        }
        loop {
            let (slot, key, deadline) = self
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match e.state {
                    State::Queued { seq, key, deadline } => Some((seq, i, key, deadline)),
                    _ => None,
                })
                .min_by_key(|&(seq, ..)| seq.wrapping_sub(self.next_seq))
                .map(|(_, i, key, deadline)| (i, key, deadline))?;
            if key == crate::describe::DESCRIBE_KEY {
                return Some((slot, crate::describe::DESCRIBE, deadline));
            }
            match self.peer.endpoints.iter().position(|k| *k == key) {
                Some(index) => return Some((slot, index as u16, deadline)),
                None => {
                    let entry = self.entry(slot);
                    entry.state = State::Answered(Answer::Unknown);
                    entry.len = 0;
                    entry.waker.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::Wake;

    struct Counter(AtomicU32);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicU32::new(0)));
        (c.clone(), Waker::from(c))
    }

    // r[verify rpc.inflight]
    #[test]
    fn a_freed_entry_goes_to_the_first_waiting_caller_and_the_others_sleep() {
        let calls: Calls<M, 1, 8, 4, 3> = Calls::new();
        let claim = |t: &mut Option<u32>, w: &Waker| calls.poll_claim(t, &mut Context::from_waker(w));
        let (_, w0) = waker();
        let mut t0 = None;
        let Poll::Ready(Ok(held)) = claim(&mut t0, &w0) else { panic!("free") };
        // Three callers wait, each with its own waker.
        let counters: std::vec::Vec<_> = (0..3).map(|_| waker()).collect();
        let mut tickets = [None, None, None];
        for ((_, w), t) in counters.iter().zip(tickets.iter_mut()) {
            assert!(claim(t, w).is_pending());
        }
        // A fourth is beyond WAIT: refused at once, nothing sent.
        let (c4, w4) = waker();
        assert_eq!(claim(&mut None, &w4), Poll::Ready(Err(())));
        // Polling a waiter again wakes nobody (no ping-pong).
        assert!(claim(&mut tickets[1], &counters[1].1).is_pending());
        assert!(counters.iter().all(|(c, _)| c.0.load(Ordering::SeqCst) == 0));
        // The entry frees: it is handed to the first waiter, woken once.
        calls.give_up(None, Some(held));
        let woken: std::vec::Vec<u32> = counters.iter().map(|(c, _)| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [1, 0, 0]);
        // A newcomer cannot take it first: it waits behind the others.
        let mut t4 = None;
        assert!(claim(&mut t4, &w4).is_pending());
        let Poll::Ready(Ok(next)) = claim(&mut tickets[0], &counters[0].1) else {
            panic!("the woken caller gets the entry")
        };
        assert_eq!(next.slot, held.slot);
        assert_eq!(next.generation, held.generation.wrapping_add(1), "a new generation");
        // A waiter that gives up leaves the queue; the next free goes on to
        // the one after it.
        calls.give_up(tickets[1].take(), None);
        calls.give_up(None, Some(next));
        assert_eq!(counters[1].0.0.load(Ordering::SeqCst), 0);
        assert_eq!(counters[2].0.0.load(Ordering::SeqCst), 1);
        // Handed to a caller that then gives up: it goes on to the next.
        calls.give_up(tickets[2].take(), None);
        assert_eq!(c4.0.load(Ordering::SeqCst), 1);
        assert!(matches!(claim(&mut t4, &w4), Poll::Ready(Ok(_))));
    }

    #[test]
    fn waiters_are_served_oldest_first_across_the_ticket_wrap() {
        let calls: Calls<M, 1, 8, 4, 3> = Calls::new();
        calls.with(|t| t.next_ticket = u32::MAX - 1);
        let claim = |t: &mut Option<u32>, w: &Waker| calls.poll_claim(t, &mut Context::from_waker(w));
        let (_, w0) = waker();
        let Poll::Ready(Ok(mut held)) = claim(&mut None, &w0) else { panic!("free") };
        // Tickets u32::MAX - 1, u32::MAX, 0: the last is the newest.
        let counters: std::vec::Vec<_> = (0..3).map(|_| waker()).collect();
        let mut tickets = [None, None, None];
        for ((_, w), t) in counters.iter().zip(tickets.iter_mut()) {
            assert!(claim(t, w).is_pending());
        }
        assert_eq!(tickets, [Some(u32::MAX - 1), Some(u32::MAX), Some(0)]);
        for (i, (c, w)) in counters.iter().enumerate() {
            calls.give_up(None, Some(held));
            assert_eq!(c.0.load(Ordering::SeqCst), 1, "waiter {i} is woken next");
            let Poll::Ready(Ok(next)) = claim(&mut tickets[i], w) else { panic!("handed to waiter {i}") };
            held = next;
        }
    }

    #[test]
    fn ids_carry_slot_and_generation_and_reject_what_no_table_entry_could_be() {
        let id = CallId { slot: 5, generation: 0xbeef };
        assert_eq!(CallId::slot_bits(1), 0);
        assert_eq!(CallId::slot_bits(8), 3);
        assert_eq!(CallId::slot_bits(9), 4);
        assert_eq!(CallId::decode(id.encode(8), 8), Some(id));
        assert_eq!(CallId::decode(6, 6), None, "slot 6 of a 6-entry table");
        assert_eq!(CallId::decode(u32::MAX, 8), None, "a generation beyond 16 bits");
        assert_eq!(
            CallId::decode(CallId { slot: 0, generation: 7 }.encode(1), 1),
            Some(CallId { slot: 0, generation: 7 })
        );
    }
}
