//! `run`: one rpc session over a conduit. One future moves every frame:
//! it sends the greeting, clock samples, this side's requests, answers and
//! cancels through a single permit it holds, and routes what it receives.
//! It never holds a received frame across an await, and never stops
//! receiving to wait for its own sending half.

use crate::calls::Answer;
use crate::describe;
use crate::dispatch::{Handled, Outcome};
use crate::server::{Owed, Parts};
use crate::wire::{Frame, Hello, PROTOCOL_VERSION, RpcFamily};
use crate::{Body, Calls, Dispatch, EncodeBody, Refusal, Server};
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;
use embassy_sync::blocking_mutex::raw::RawMutex;
use vox_types::{Clock, Conduit, ConduitError, ConduitRx, ConduitTx, ConduitTxPermit, ErrorKind, Instant};

/// Clock samples taken at connect, back to back, to find a short round
/// trip.
const SAMPLES_AT_CONNECT: u32 = 8;
/// Subscriptions a side holds at most.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// Topics a side publishes at most.
pub const MAX_PUBLICATIONS: usize = 32;
/// Time between clock samples after those (ms).
pub const RESYNC_MS: u64 = 30_000;

/// Why an rpc session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RunError {
    /// The conduit failed (what kind: a bare conduit's link, a stable
    /// conduit's session, ...).
    Conduit(ErrorKind),
    /// The peer speaks another version of the rpc envelope.
    Version {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer broke the protocol (the message says how).
    Violation(&'static str),
}

impl RunError {
    /// Whether a new session with the same peer would end the same way:
    /// another envelope version, a protocol violation, or a greeting too
    /// large for the conduit (too many endpoints).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Version { .. } | Self::Violation(_) | Self::Conduit(ErrorKind::TooLarge))
    }

    /// The kind of failure, for calls pending when the session ended.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Conduit(kind) => *kind,
            Self::Version { .. } => ErrorKind::Refused,
            Self::Violation(_) => ErrorKind::Other,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conduit(kind) => write!(f, "the conduit failed: {kind}"),
            Self::Version { ours, theirs } => {
                write!(f, "the peer speaks rpc envelope version {theirs}, this side {ours}")
            }
            Self::Violation(what) => write!(f, "the peer broke the rpc protocol: {what}"),
        }
    }
}

impl core::error::Error for RunError {}

/// Runs one rpc session on `conduit`: this side's calls (from `calls`)
/// go out, the peer's requests go to `server`, until the conduit ends.
/// `Ok(())` when the peer closed its direction in order.
///
/// Every call committed and not answered when it ends resolves at once
/// ("may have run": `SessionLost`, or `LinkLost` on a bare conduit);
/// calls not yet sent stay queued for the next session on the same table
/// (or their deadline). Run it again with a new conduit for a new
/// session; `server` keeps its handlers and forgets what it owed.
///
/// `clock` must be the one the [`Client`](crate::Client)s use.
// r[impl rpc.symmetric]
// r[impl rpc.exactly-once]
pub fn run<
    Co,
    M,
    const N: usize,
    const BUF: usize,
    const PEER: usize,
    const WAIT: usize,
    D,
    const Q: usize,
    const A: usize,
    C,
>(
    conduit: Co,
    calls: &Calls<M, N, BUF, PEER, WAIT>,
    mut server: Pin<&mut Server<D, Q, A>>,
    clock: C,
) -> impl Future<Output = Result<(), RunError>>
where
    Co: Conduit<Msg = RpcFamily>,
    M: RawMutex,
    D: Dispatch,
    C: Clock,
{
    // Split before the future is made: it keeps the halves, not also the
    // conduit they came from.
    let (tx, mut rx) = conduit.split();
    async move {
        calls.session_started();
        server.as_mut().parts().reset();
        // If this future is dropped mid-session, the calls it committed still
        // resolve at once (as "may have run").
        let mut guard = SessionGuard { calls, kind: ErrorKind::SessionLost };
        // The session: one loop that moves every frame, written here rather
        // than as a future of its own (one state machine: less flash and
        // RAM). The sending half is dropped when it ends.
        let clock = &clock;
        let ended: Result<(), RunError> = 'session: {
            let (tx, rx, server) = (tx, &mut rx, server.as_mut());
            let mut session = Session {
                calls,
                server,
                clock,
                greeted: false,
                hello_sent: false,
                time_reply: (0, 0),
                query_at: Instant::MAX,
                query_due: false,
                query_out: false,
                subscribe_due: 0,
            };
            session.topics_started();
            let mut permit = None;
            // The clock-sample timer and a pending reservation live across turns
            // of the loop: the timer is made again only when its deadline changes
            // (every 30 s), the reservation only after a permit was used.
            let mut timer = pin!(if false { Some(clock.sleep_until(Instant::ZERO)) } else { None });
            // `Instant::MAX`: no timer (8 bytes where an `Option` takes 16).
            let mut timer_at = Instant::MAX;
            let mut reserving = pin!(if false { Some(tx.reserve()) } else { None });
            // A peer of another envelope version is refused loudly: our
            // greeting (the first frame a permit sends) tells it our version,
            // then the session ends. Meanwhile nothing more is received.
            // (The peer's version: 4 bytes where the error takes 12.)
            let mut refusing: Option<u16> = None;
            let theirs = 'refused: loop {
                // The frame is handled and released in this block.
                let handled = {
                    let received = {
                        let mut recv = pin!(rx.recv());
                        loop {
                            if let Some(p) = permit.take() {
                                // One call for both modes: refusing, the greeting goes
                                // out and the session ends.
                                let step = session.send_next(p);
                                if let Some(theirs) = refusing {
                                    break 'refused theirs;
                                }
                                match step {
                                    Step::Sent => continue,
                                    Step::Idle(p) => keep(&mut permit, p),
                                    Step::Failed(e) => break 'session Err(e),
                                }
                            }
                            // A query due is sent at the top of the loop, once a permit
                            // is held; the timer waits for a later one. (No clock
                            // reading on an ordinary turn: only what is due reads it.)
                            {
                                let query_at = if session.query_out || session.query_due {
                                    Instant::MAX
                                } else {
                                    session.query_at
                                };
                                if query_at != timer_at {
                                    timer.set((query_at != Instant::MAX).then(|| clock.sleep_until(query_at)));
                                    timer_at = query_at;
                                }
                            }
                            if permit.is_none() && reserving.is_none() {
                                reserving.set(Some(tx.reserve()));
                            }
                            let hold = permit.is_some();
                            let subscribe_due = session.subscribe_due;
                            let (calls, server) = (session.calls, &mut session.server);
                            // One wait for everything: a frame, a permit, the timer, a
                            // call queued or a handler done.
                            let event = poll_fn(|cx| {
                                if refusing.is_none()
                                    && let Poll::Ready(received) = recv.as_mut().poll(cx)
                                {
                                    return Poll::Ready(Event::Received(received));
                                }
                                if let Some(reserve) = reserving.as_mut().as_pin_mut()
                                    && let Poll::Ready(reserved) = reserve.poll(cx)
                                {
                                    reserving.set(None);
                                    return Poll::Ready(Event::Reserved(reserved));
                                }
                                if let Some(t) = timer.as_mut().as_pin_mut()
                                    && t.poll(cx).is_ready()
                                {
                                    timer.set(None);
                                    return Poll::Ready(Event::Timer);
                                }
                                let mut parts = server.as_mut().parts();
                                let done = parts.dispatch.as_mut().poll_runs(cx);
                                let owed = !parts.owed.is_empty();
                                let work = calls.runner_work(cx.waker());
                                let topics = topics_ready(server.as_ref(), subscribe_due, cx.waker());
                                if hold && (done || owed || work || topics) {
                                    Poll::Ready(Event::Work)
                                } else {
                                    Poll::Pending
                                }
                            })
                            .await;
                            match event {
                                Event::Received(received) => break received,
                                Event::Reserved(Ok(p)) => keep(&mut permit, p),
                                Event::Reserved(Err(e)) => match refusing {
                                    Some(theirs) => break 'refused theirs,
                                    None => break 'session Err(RunError::Conduit(e.kind())),
                                },
                                Event::Timer => {
                                    timer_at = Instant::MAX;
                                    session.query_at = Instant::MAX;
                                    session.query_due = true;
                                }
                                Event::Work => {}
                            }
                        }
                    };
                    match received {
                        Ok(Some(msg)) => session.on_frame(msg.get::<RpcFamily>(), &mut permit),
                        Ok(None) => break 'session Ok(()),
                        Err(e) => break 'session Err(RunError::Conduit(e.kind())),
                    }
                };
                match handled {
                    Err(RunError::Version { theirs, .. }) if !session.hello_sent => refusing = Some(theirs),
                    Err(e) => break 'session Err(e),
                    Ok(()) => {}
                }
            };
            Err(RunError::Version { ours: PROTOCOL_VERSION, theirs })
        };
        guard.kind = ended.map_or_else(|e| e.kind(), |()| ErrorKind::SessionLost);
        drop(guard);
        server.as_mut().parts().reset();
        ended
    }
}

/// Ends the session on the table when dropped: committed calls resolve.
struct SessionGuard<'c, M: RawMutex, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> {
    calls: &'c Calls<M, N, BUF, PEER, WAIT>,
    kind: ErrorKind,
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize, const WAIT: usize> Drop
    for SessionGuard<'_, M, N, BUF, PEER, WAIT>
{
    fn drop(&mut self) {
        self.calls.session_ended(self.kind);
    }
}

/// Whether a topic has a frame to send; registers the runner's waker with
/// every topic.
fn topics_ready<D: Dispatch, const Q: usize, const A: usize>(
    server: Pin<&Server<D, Q, A>>,
    subscribe_due: u32,
    waker: &core::task::Waker,
) -> bool {
    let dispatch = &server.get_ref().dispatch;
    let mut ready = D::SUBS > 0 && subscribe_due != 0;
    for i in 0..D::SUBS.min(MAX_SUBSCRIPTIONS) {
        if let Some(s) = dispatch.subscription(i) {
            ready |= s.credit_ready(waker);
        }
    }
    for i in 0..D::PUBS.min(MAX_PUBLICATIONS) {
        if let Some(p) = dispatch.publication(i) {
            ready |= p.ready(waker);
        }
    }
    ready
}

/// What ended a wait of the runner.
enum Event<R, P> {
    Received(R),
    Reserved(P),
    Timer,
    Work,
}

enum Step<P> {
    Sent,
    Idle(P),
    Failed(RunError),
}

struct Session<
    's,
    'p,
    M: RawMutex,
    const N: usize,
    const BUF: usize,
    const PEER: usize,
    const WAIT: usize,
    D,
    const Q: usize,
    const A: usize,
    C,
> {
    calls: &'s Calls<M, N, BUF, PEER, WAIT>,
    server: Pin<&'p mut Server<D, Q, A>>,
    clock: &'s C,
    /// The peer's greeting arrived.
    greeted: bool,
    hello_sent: bool,
    /// A clock query to answer: (its t0, our clock when it arrived plus
    /// one); the second is 0 when there is none (16 bytes where an
    /// `Option` takes 24).
    time_reply: (u64, u64),
    /// When the next clock query is due (the timer waits for it);
    /// `Instant::MAX`: none is.
    query_at: Instant,
    /// A clock query is due now.
    query_due: bool,
    /// A clock query is out.
    query_out: bool,
    /// Subscriptions whose `Subscribe` is still to send (a bit each).
    subscribe_due: u32,
}

/// This side's endpoint keys, 4 bytes each, for the greeting.
struct KeyList<D>(core::marker::PhantomData<fn() -> D>);

impl<D: Dispatch> EncodeBody for KeyList<D> {
    fn encoded_len(&self) -> Option<usize> {
        Some(D::COUNT * 4)
    }
    fn encode(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        // The list walked once (not from its start for every key).
        let mut list = D::ENDPOINTS;
        (0..D::COUNT).all(|_| {
            list.is_some_and(|entry| {
                list = entry.next;
                sink(&entry.key.0.to_le_bytes())
            })
        })
    }
}

/// The service fingerprint: FNV-1a over the keys of the first `count`
/// entries of `list` (a side's endpoints, in order). A `const fn`: each
/// side's is a constant.
const fn fingerprint(mut list: Option<&'static crate::dispatch::EndpointEntry>, count: usize) -> u32 {
    let mut hash = 0x811c_9dc5u32;
    let mut left = count;
    while let Some(entry) = list
        && left > 0
    {
        let mut key = entry.key.0;
        let mut bytes = 4;
        while bytes > 0 {
            hash = (hash ^ (key & 0xff)).wrapping_mul(0x0100_0193);
            key >>= 8;
            bytes -= 1;
        }
        list = entry.next;
        left -= 1;
    }
    hash
}

impl<
    M: RawMutex,
    const N: usize,
    const BUF: usize,
    const PEER: usize,
    const WAIT: usize,
    D: Dispatch,
    const Q: usize,
    const A: usize,
    C: Clock,
> Session<'_, '_, M, N, BUF, PEER, WAIT, D, Q, A, C>
{
    /// Sends the most urgent frame owed, if any: the greeting and clock
    /// samples, answers owed, topics' control frames, cancels and requests,
    /// and only then samples (telemetry never holds a call back).
    // r[impl rpc.no-hol]
    fn send_next<P: ConduitTxPermit<Msg = RpcFamily>>(&mut self, permit: P) -> Step<P> {
        // Every frame built here goes out through the one send at the end.
        let keys = KeyList::<D>(core::marker::PhantomData);
        let mut topics: [u8; 4 * MAX_PUBLICATIONS];
        let (permit, frame) = 'pick: {
            if !self.hello_sent {
                topics = [0u8; 4 * MAX_PUBLICATIONS];
                let dispatch = &self.server.as_ref().get_ref().dispatch;
                let mut len = 0;
                for i in 0..D::PUBS.min(MAX_PUBLICATIONS) {
                    if let (Some(p), Some(place)) = (dispatch.publication(i), topics.get_mut(len..len + 4)) {
                        place.copy_from_slice(&p.key().0.to_le_bytes());
                        len += 4;
                    }
                }
                self.hello_sent = true;
                break 'pick (
                    permit,
                    Frame::Hello(Hello {
                        version: PROTOCOL_VERSION,
                        max_in_flight: Q as u16,
                        fingerprint: const { fingerprint(D::ENDPOINTS, D::COUNT) },
                        endpoints: Body::Value(&keys),
                        topics: Body::Bytes(topics.get(..len).unwrap_or(&[])),
                    }),
                );
            }
            if let (t0, t1 @ 1..) = core::mem::take(&mut self.time_reply) {
                let t1 = t1 - 1;
                let t2 = self.clock.now().as_millis();
                break 'pick (permit, Frame::TimeReply { t0, t1, t2 });
            }
            if self.greeted && !self.query_out && self.query_due {
                self.query_out = true;
                self.query_due = false;
                break 'pick (permit, Frame::TimeQuery { t0: self.clock.now().as_millis() });
            }
            let mut parts = self.server.as_mut().parts();
            if let Some(owed) = parts.owed.pop_front() {
                // A refusal owed, or a held request whose deadline passed.
                let (id, why) = match owed {
                    Owed::Refuse { id, why } => (id, why),
                    Owed::NoReply { id } => break 'pick (permit, Frame::NoReply { id }),
                    Owed::Deferred { id, deadline, .. } if (self.clock.now().as_millis() as i64) > deadline => {
                        parts.stats.expired = parts.stats.expired.wrapping_add(1);
                        (id, Refusal::Expired)
                    }
                    Owed::Deferred { id, index, start, len, .. } => {
                        let body = parts.arena.get(start..start + len).unwrap_or(&[]);
                        let (handled, permit, result) =
                            run_request(parts.dispatch.as_mut(), usize::from(index), id, body, Some(permit));
                        return finish_plain(&mut parts, handled, id, permit, result);
                    }
                };
                break 'pick (permit, Frame::Refused { id, why });
            }
            let mut permit = Some(permit);
            let mut result = Ok(());
            let mut done_id = 0;
            if parts.dispatch.as_mut().take_done(&mut |id, outcome| {
                done_id = id;
                result = answer(&mut permit, id, outcome);
            }) {
                return finish_plain(&mut parts, Handled::Answered, done_id, None, result);
            }
            let Some(permit) = permit else { return Step::Sent };
            // Topics' control frames: they unblock the peer.
            // (Only a side that subscribes to something owes a `Subscribe`.)
            if D::SUBS > 0 && self.subscribe_due != 0 {
                let i = self.subscribe_due.trailing_zeros() as usize;
                self.subscribe_due &= !(1 << i);
                let dispatch = &self.server.as_ref().get_ref().dispatch;
                if let Some(sub) = dispatch.subscription(i)
                    && let Some(topic) = sub.peer_topic()
                {
                    break 'pick (permit, Frame::Subscribe { topic, window: sub.window() });
                }
                return Step::Idle(permit);
            }
            let noop = core::task::Waker::noop();
            for i in 0..D::SUBS.min(MAX_SUBSCRIPTIONS) {
                let dispatch = &self.server.as_ref().get_ref().dispatch;
                if let Some((topic, next)) = dispatch.subscription(i).and_then(|sub| sub.take_credit(noop)) {
                    break 'pick (permit, Frame::Credit { topic, next });
                }
            }
            return self.send_calls_or_samples(permit);
        };
        sent(permit.send(frame))
    }

    /// Sends this side's next request or cancel, else a sample.
    fn send_calls_or_samples<P: ConduitTxPermit<Msg = RpcFamily>>(&mut self, permit: P) -> Step<P> {
        // Calls go before samples.
        let permit = match self.calls.send_next(permit) {
            Ok(Some(permit)) => permit,
            Ok(None) => return Step::Sent,
            Err(e) => return Step::Failed(RunError::Conduit(e.kind())),
        };
        let mut permit = Some(permit);
        let mut result = Ok(());
        for i in 0..D::PUBS.min(MAX_PUBLICATIONS) {
            let dispatch = &self.server.as_ref().get_ref().dispatch;
            let Some(publication) = dispatch.publication(i) else { continue };
            let topic = i as u16;
            let sent_one = publication.send_next(&mut |seq, dup, bytes| match permit.take() {
                Some(p) => {
                    result = p.send(Frame::Sample { topic, seq, dup, body: Body::Bytes(bytes) }).map_err(|e| e.kind());
                    result.is_ok()
                }
                None => false,
            });
            if sent_one || permit.is_none() {
                // The permit went with the sample (or with a failed send).
                debug_assert!(permit.is_none());
                core::mem::forget(permit);
                return match result {
                    Ok(()) => Step::Sent,
                    Err(kind) => Step::Failed(RunError::Conduit(kind)),
                };
            }
        }
        permit.map_or(Step::Sent, Step::Idle)
    }

    /// A session starts: topics forget the last one.
    fn topics_started(&mut self) {
        let dispatch = &self.server.as_ref().get_ref().dispatch;
        for i in 0..D::PUBS {
            if let Some(p) = dispatch.publication(i) {
                p.on_session();
            }
        }
        for i in 0..D::SUBS {
            if let Some(s) = dispatch.subscription(i) {
                s.on_session();
            }
        }
    }

    /// Handles one received frame (released when this returns).
    fn on_frame<P: ConduitTxPermit<Msg = RpcFamily>>(
        &mut self,
        frame: &Frame<'_>,
        permit: &mut Option<P>,
    ) -> Result<(), RunError> {
        match *frame {
            Frame::Hello(ref hello) => {
                if hello.version != PROTOCOL_VERSION {
                    return Err(RunError::Version { ours: PROTOCOL_VERSION, theirs: hello.version });
                }
                if self.greeted {
                    return Err(RunError::Violation("a second greeting"));
                }
                let endpoints = hello.endpoints.bytes().unwrap_or(&[]);
                let topics = hello.topics.bytes().unwrap_or(&[]);
                if (endpoints.len() | topics.len()) % 4 != 0 {
                    return Err(RunError::Violation("a key list whose length is not a multiple of 4"));
                }
                self.calls.greeted(endpoints, hello.max_in_flight, hello.fingerprint);
                self.greeted = true;
                self.query_due = true;
                let dispatch = &self.server.as_ref().get_ref().dispatch;
                for i in 0..D::SUBS.min(MAX_SUBSCRIPTIONS) {
                    let Some(sub) = dispatch.subscription(i) else { continue };
                    let at = crate::wire::keys(topics).position(|k| k == sub.key()).map(|j| j as u16);
                    if at.is_some() {
                        self.subscribe_due |= 1 << i;
                    }
                    sub.set_peer_topic(at);
                }
            }
            _ if !self.greeted => return Err(RunError::Violation("a frame before the greeting")),
            Frame::TimeQuery { t0 } => self.time_reply = (t0, self.clock.now().as_millis().saturating_add(1)),
            Frame::TimeReply { t0, t1, t2 } => {
                let now = self.clock.now();
                let samples = self.calls.clock_sample(t0, t1, t2, now);
                self.query_out = false;
                if samples < SAMPLES_AT_CONNECT {
                    self.query_due = true;
                } else {
                    self.query_at = now.add_millis(RESYNC_MS);
                }
            }
            Frame::Request(ref request) => {
                let mut parts = self.server.as_mut().parts();
                let deadline = parts.last_deadline.wrapping_add(request.deadline);
                *parts.last_deadline = deadline;
                let id = request.id;
                let body = request.body.bytes().unwrap_or(&[]);
                let index = usize::from(request.endpoint);
                // One call of the handler, with the permit if one is held,
                // unless the request is refused; one path for what became
                // of it (a refusal owed, an answer sent, ...).
                let p = permit.take();
                let held = p.is_some();
                let (handled, p, result) = if index >= D::COUNT && request.endpoint != describe::DESCRIBE {
                    (Handled::Refused(Refusal::Unknown), p, Ok(()))
                } else if (self.clock.now().as_millis() as i64) > deadline {
                    (Handled::Refused(Refusal::Expired), p, Ok(()))
                } else {
                    run_request(parts.dispatch.as_mut(), index, id, body, p)
                };
                if handled == Handled::NeedsPermit && !held {
                    // No permit came in, none comes back.
                    debug_assert!(p.is_none());
                    core::mem::forget(p);
                    if !parts.defer(id, request.endpoint, deadline, body) {
                        return Err(RunError::Violation("more requests unanswered than the window allows"));
                    }
                } else {
                    // An unused permit stays for the next frame.
                    match finish_plain(&mut parts, handled, id, p, result) {
                        Step::Idle(p) => keep(permit, p),
                        Step::Sent => {}
                        Step::Failed(e) => return Err(e),
                    }
                }
            }
            Frame::Reply { id, body } | Frame::Failed { id, body } => {
                let answer = if matches!(frame, Frame::Reply { .. }) { Answer::Reply } else { Answer::Failed };
                self.calls.answer(id, answer, body.bytes().unwrap_or(&[]))
            }
            Frame::Refused { id, .. } | Frame::NoReply { id } => {
                let answer = match *frame {
                    Frame::Refused { why, .. } => Answer::Refused(why),
                    _ => Answer::TooBig,
                };
                self.calls.answer(id, answer, &[])
            }
            Frame::Cancel { id } => self.server.as_mut().parts().cancel(id),
            Frame::Subscribe { topic, window } => {
                match self.server.as_ref().get_ref().dispatch.publication(usize::from(topic)) {
                    Some(p) => p.on_subscribe(window),
                    None => return Err(RunError::Violation("a subscription to a topic not published")),
                }
            }
            Frame::Credit { topic, next } => {
                match self.server.as_ref().get_ref().dispatch.publication(usize::from(topic)) {
                    Some(p) => p.on_credit(next),
                    None => return Err(RunError::Violation("a credit for a topic not published")),
                }
            }
            Frame::Sample { topic, seq, dup, body } => {
                let dispatch = &self.server.as_ref().get_ref().dispatch;
                let mut subs = (0..D::SUBS.min(MAX_SUBSCRIPTIONS)).filter_map(|i| dispatch.subscription(i));
                let Some(sub) = subs.find(|sub| sub.peer_topic() == Some(topic)) else {
                    return Err(RunError::Violation("a sample of a topic not subscribed"));
                };
                if !sub.on_sample(seq, dup, body.bytes().unwrap_or(&[])) {
                    return Err(RunError::Violation("more samples than the credit window allows"));
                }
            }
        }
        Ok(())
    }
}

/// Hands request `id` for endpoint `index` to its handler (the describe
/// call answered here), with the permit if one is held: what became of
/// it, the permit if unused, and how sending the answer went. One copy
/// for a request as it arrives and one held until a permit came.
fn run_request<D: Dispatch, P: ConduitTxPermit<Msg = RpcFamily>>(
    dispatch: Pin<&mut D>,
    index: usize,
    id: u32,
    body: &[u8],
    mut permit: Option<P>,
) -> (Handled, Option<P>, Result<(), ErrorKind>) {
    let held = permit.is_some();
    let mut result = Ok(());
    let mut respond = |outcome: Outcome<'_>| result = answer(&mut permit, id, outcome);
    let handled = describe::handle(dispatch, index, id, body, if held { Some(&mut respond) } else { None });
    (handled, permit, result)
}

/// Sends a handler's outcome as the answer to `id` with the permit.
fn answer<P: ConduitTxPermit<Msg = RpcFamily>>(
    permit: &mut Option<P>,
    id: u32,
    outcome: Outcome<'_>,
) -> Result<(), ErrorKind> {
    let Some(p) = permit.take() else { return Err(ErrorKind::Other) };
    let frame = match outcome {
        Outcome::Reply(body) => Frame::Reply { id, body: Body::Value(body) },
        Outcome::Failed(body) => Frame::Failed { id, body: Body::Value(body) },
        // It ran: not a refusal (every refusal means "did not run").
        Outcome::Cancelled => Frame::NoReply { id },
    };
    p.send(frame).map_err(|e| e.kind())
}

/// What a plain handler's run means for the runner: the answer was sent
/// (or owed as "no reply" when it does not fit), or the request was
/// refused (owed), or the permit is still there.
fn finish_plain<D: Dispatch, P, const Q: usize, const A: usize>(
    parts: &mut Parts<'_, D, Q, A>,
    handled: Handled,
    id: u32,
    permit: Option<P>,
    result: Result<(), ErrorKind>,
) -> Step<P> {
    match handled {
        Handled::Answered => {
            parts.stats.ran = parts.stats.ran.wrapping_add(1);
            match result {
                Ok(()) => Step::Sent,
                // The response does not fit the conduit: it ran, say so.
                Err(ErrorKind::TooLarge) => {
                    if parts.owed.push_front(Owed::NoReply { id }) {
                        Step::Sent
                    } else {
                        Step::Failed(RunError::Violation("more requests unanswered than the window allows"))
                    }
                }
                Err(kind) => Step::Failed(RunError::Conduit(kind)),
            }
        }
        Handled::Refused(why) => {
            if !parts.refuse(id, why) {
                return Step::Failed(RunError::Violation("more requests unanswered than the window allows"));
            }
            permit.map_or(Step::Sent, Step::Idle)
        }
        Handled::Started | Handled::NeedsPermit => permit.map_or(Step::Sent, Step::Idle),
    }
}

/// Keeps permit `p` in `slot`, empty here: the old value is not dropped
/// (a call to the permit's drop glue, never needed).
fn keep<P>(slot: &mut Option<P>, p: P) {
    debug_assert!(slot.is_none());
    core::mem::forget(slot.replace(p));
}

fn sent<P, E: ConduitError>(result: Result<(), E>) -> Step<P> {
    match result {
        Ok(()) => Step::Sent,
        Err(e) => Step::Failed(RunError::Conduit(e.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use crate::EndpointKey;
    use crate::dispatch::EndpointEntry;

    /// FNV-1a over the keys' little-endian bytes, as the peer computes it.
    fn fnv1a(keys: &[u32]) -> u32 {
        let mut hash = 0x811c_9dc5u32;
        for byte in keys.iter().flat_map(|k| k.to_le_bytes()) {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        hash
    }

    #[test]
    fn the_fingerprint_is_fnv1a_over_the_first_count_keys_in_order() {
        static LAST: EndpointEntry = EndpointEntry { key: EndpointKey(0xdead_beef), name: "b", next: None };
        static FIRST: EndpointEntry = EndpointEntry { key: EndpointKey(0x0403_0201), name: "a", next: Some(&LAST) };
        const BOTH: u32 = fingerprint(Some(&FIRST), 2);
        assert_eq!(BOTH, fnv1a(&[0x0403_0201, 0xdead_beef]));
        assert_eq!(fingerprint(Some(&FIRST), 1), fnv1a(&[0x0403_0201]));
        assert_eq!(fingerprint(Some(&FIRST), 5), BOTH, "a list shorter than the count");
        assert_eq!(fingerprint(None, 0), fnv1a(&[]));
    }
}
