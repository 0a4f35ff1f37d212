//! Deterministic simulation of two session cores over a simulated line
//! with a simulated clock: seeded random schedules mix line faults (cuts,
//! corruption, drops, duplicates, peer reboots) with application
//! behaviours (slow and pausing readers, bursty and paced senders,
//! pipelined request/response within the documented bound, separate
//! sending and reading far beyond it, one-way floods).
//!
//! Checks exactly-once in order, that no frame ever arrives beyond the
//! window granted, and liveness: everything is delivered and both
//! sessions finish within a simulated time bound. A failing seed is
//! printed; add it to `REGRESSIONS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use vox_conduit_stable::session::{Detach, Instant, Received, SessionStorage};
use vox_conduit_stable::{SendError, SessionError, StableConfig, StableStats};
use vox_types::{LinkError, SchemaFingerprint, SessionRole};

/// Seeds that once failed, run first.
const REGRESSIONS: &[u64] = &[];
/// Random schedules per run of the test.
const SCHEDULES: u64 = 5000;

const CFG: StableConfig = StableConfig {
    max_message: 40,
    ack_every: 4,
    ack_delay_ms: 5,
    keepalive_ms: 50,
    timeout_ms: 200,
    retry_delay_ms: 5,
    linger_ms: 400,
    connect_timeout_ms: 10_000,
};
const FP: SchemaFingerprint = SchemaFingerprint([3; 8]);

/// Replay 256 B / 6 messages, receive 128 B / 3 messages.
type Store = SessionStorage<256, 6, 128, 3>;
/// The documented single-task bound for `Store` on both sides.
const BOUND: usize = (6 - 1) + 3 + (6 - 1) + 3;

struct Rng(ChaCha8Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.next_u64() % n }
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

/// Message `id`: its id and a filler whose length depends on it.
fn message(id: u32) -> Vec<u8> {
    let mut m = id.to_le_bytes().to_vec();
    m.extend(std::iter::repeat_n(id as u8, (id as usize * 7) % 33));
    m
}

fn id_of(bytes: &[u8]) -> u32 {
    let id = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    assert_eq!(bytes, &message(id)[..], "message {id} content");
    id
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reader {
    /// Reads everything each millisecond.
    Eager,
    /// Reads one message every `n` ms.
    Slow(u64),
    /// Reads eagerly except during `[from, to)`.
    Pausing(Instant, Instant),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sender {
    /// Sends whenever there is room.
    Bursty,
    /// Sends one message every `n` ms.
    Paced(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
    /// Both sides send streams, independently of reading.
    Streams { a: u32, b: u32, a_send: Sender, b_send: Sender, a_read: Reader, b_read: Reader },
    /// A sends requests, B answers each while holding it. `pipelined`: A
    /// is one task that sends `depth` requests and then reads their
    /// replies, round after round (`depth` within the bound); otherwise A
    /// sends and reads independently.
    Requests { n: u32, pipelined: bool, depth: usize, b_read: Reader },
    /// One side restarts mid-session: the other must end with
    /// `SessionLost`, having received a clean prefix.
    Reboot { a_reboots: bool, at: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Faults {
    /// Per million frames.
    drop: u64,
    duplicate: u64,
    corrupt: u64,
    /// Per million milliseconds.
    cut: u64,
}

struct Frame {
    at: Instant,
    bytes: Vec<u8>,
    /// Corrupted: the receiving link dies on it (a CRC error).
    corrupt: bool,
}

struct Peer {
    store: Box<Store>,
    role: SessionRole,
    /// Ids received, in order.
    got: Vec<u32>,
    /// Messages taken but not released: (token, id).
    held: VecDeque<(usize, u32)>,
    sent: u32,
    to_send: u32,
    closed: bool,
    complete: bool,
    /// Frames in flight towards this peer.
    inbound: VecDeque<Frame>,
}

impl Peer {
    fn new(role: SessionRole, to_send: u32) -> Self {
        Self {
            store: Box::new(Store::new(role, CFG, FP)),
            role,
            got: Vec::new(),
            held: VecDeque::new(),
            sent: 0,
            to_send,
            closed: false,
            complete: false,
            inbound: VecDeque::new(),
        }
    }

    fn stats(&self) -> StableStats {
        self.store.state.stats()
    }

    fn ended(&self) -> Option<SessionError> {
        self.store.state.ended().cloned()
    }

    /// Pushes message `id` if there is room.
    fn try_send(&mut self, id: u32) -> bool {
        let (mut s, _) = self.store.parts();
        match s.try_reserve() {
            Ok(true) => {}
            Ok(false) | Err(SendError::Session(_)) => return false,
            Err(e) => panic!("reserve: {e}"),
        }
        let m = message(id);
        s.push_message(|buf| {
            buf[..m.len()].copy_from_slice(&m);
            Ok(m.len())
        })
        .unwrap();
        s.end_reserve();
        true
    }

    /// Takes the next received message (kept until released).
    fn take(&mut self) -> Option<u32> {
        let (mut s, rx) = self.store.parts();
        let Received { token, start, len } = s.pop_received()?;
        let id = id_of(&rx[start..start + len]);
        self.held.push_back((token, id));
        Some(id)
    }

    fn release_oldest(&mut self) {
        if let Some((token, _)) = self.held.pop_front() {
            self.store.parts().0.release(token);
        }
    }

    fn read_one(&mut self) -> bool {
        match self.take() {
            Some(id) => {
                self.got.push(id);
                self.release_oldest();
                true
            }
            None => false,
        }
    }
}

struct Sim {
    rng: Rng,
    now: Instant,
    a: Peer,
    b: Peer,
    faults: Faults,
    /// The line is up (both ends attached to the same link).
    up: bool,
    reconnect_at: Instant,
    /// Frames in flight each way at most (the link's slots).
    capacity: usize,
    latency: u64,
    cuts: u32,
    /// A side dropped its link: frames in flight still arrive, then the
    /// other side sees the link end (the framed runner flushes on drop).
    closing: bool,
}

impl Sim {
    fn cut(&mut self) {
        self.closing = false;
        if !self.up {
            return;
        }
        self.up = false;
        self.cuts += 1;
        for p in [&mut self.a, &mut self.b] {
            p.inbound.clear();
            p.store.parts().0.link_failed(LinkError::Closed);
            let _ = p.store.state.take_detach();
        }
        self.reconnect_at = self.now + 1 + self.rng.below(20);
    }

    fn reconnect(&mut self) {
        if self.up || self.now < self.reconnect_at {
            return;
        }
        let live = |p: &Peer| !p.complete && p.ended().is_none();
        if !live(&self.a) && !live(&self.b) {
            return;
        }
        self.up = true;
        let mut key = [0u8; 16];
        self.rng.0.fill_bytes(&mut key);
        for p in [&mut self.a, &mut self.b] {
            if live(p) {
                let fresh = (p.role == SessionRole::Acceptor).then_some(key);
                p.store.parts().0.attach(self.now, fresh);
            }
        }
    }

    /// Delivers due frames; a corrupt one kills the line.
    fn deliver(&mut self) {
        for which in [0, 1] {
            loop {
                let now = self.now;
                let p = if which == 0 { &mut self.a } else { &mut self.b };
                let due = p.inbound.front().is_some_and(|f| f.at <= now);
                if !due {
                    break;
                }
                let f = p.inbound.pop_front().unwrap();
                if f.corrupt {
                    p.store.parts().0.link_failed(LinkError::CrcMismatch);
                    self.cut();
                    break;
                }
                let (mut s, rx) = p.store.parts();
                s.on_receive(now, &f.bytes, |at, msg| rx[at..at + msg.len()].copy_from_slice(msg));
            }
        }
    }

    /// Each side sends what it wants while the link has room.
    fn transmit(&mut self) {
        if !self.up || self.closing {
            return;
        }
        for which in [0, 1] {
            loop {
                let (from, to) = if which == 0 { (&mut self.a, &mut self.b) } else { (&mut self.b, &mut self.a) };
                if to.inbound.len() >= self.capacity {
                    break;
                }
                let mut out = None;
                let sent = from.store.parts().0.transmit(self.now, |o| {
                    let mut buf = vec![0u8; o.len()];
                    o.encode(&mut buf).map(|()| out = Some(buf))
                });
                let Some(Ok(())) = sent else { break };
                let bytes = out.unwrap();
                let at = self.now + self.rng.below(self.latency + 1);
                let at = to.inbound.back().map_or(at, |f| f.at.max(at));
                if self.rng.chance(self.faults.drop) {
                    continue;
                }
                let corrupt = self.rng.chance(self.faults.corrupt);
                if self.rng.chance(self.faults.duplicate) {
                    to.inbound.push_back(Frame { at, bytes: bytes.clone(), corrupt: false });
                }
                to.inbound.push_back(Frame { at, bytes, corrupt });
            }
        }
    }

    fn detaches(&mut self) {
        if self.closing && self.a.inbound.is_empty() && self.b.inbound.is_empty() {
            self.cut();
        }
        let mut cut = false;
        for p in [&mut self.a, &mut self.b] {
            match p.store.state.take_detach() {
                Some(Detach::Finished) => p.complete = true,
                Some(_) => cut = true,
                None => {}
            }
            if p.store.state.is_complete() {
                p.complete = true;
            }
        }
        if cut && self.up {
            self.closing = true;
        }
    }

    fn tick(&mut self) {
        for p in [&mut self.a, &mut self.b] {
            p.store.parts().0.on_tick(self.now);
        }
    }

    /// What a step can change: equal before and after a step, nothing
    /// happened in it, and nothing will until a time-based event.
    fn progress(&self) -> [u64; 14] {
        let (a, b) = (self.a.stats(), self.b.stats());
        [
            u64::from(self.a.sent) << 32 | u64::from(self.b.sent),
            (self.a.got.len() as u64) << 32 | self.b.got.len() as u64,
            (self.a.held.len() as u64) << 32 | self.b.held.len() as u64,
            a.frames_sent,
            b.frames_sent,
            a.frames_received,
            b.frames_received,
            (self.a.inbound.len() as u64) << 32 | self.b.inbound.len() as u64,
            u64::from(self.up) | u64::from(self.closing) << 1 | u64::from(self.cuts) << 2,
            u64::from(self.a.complete) | u64::from(self.b.complete) << 1,
            u64::from(self.a.closed) | u64::from(self.b.closed) << 1,
            u64::from(a.reattachments) << 32 | u64::from(b.reattachments),
            u64::from(self.a.ended().is_some()) | u64::from(self.b.ended().is_some()) << 1,
            u64::from(a.timeouts) << 32 | u64::from(b.timeouts),
        ]
    }

    // r[impl core.sim-time]
    /// The next time anything can happen: a frame arriving, a core's
    /// deadline (what `next_deadline` reports: a core that acted earlier
    /// than it said would stall the schedule and fail it), the line
    /// coming back, or the workload's own clock (`trigger`).
    fn next_event(&mut self, trigger: Instant) -> Instant {
        let mut next = trigger;
        for p in [&mut self.a, &mut self.b] {
            if let Some(f) = p.inbound.front() {
                next = next.min(f.at);
            }
            next = next.min(p.store.parts().0.next_deadline());
        }
        if !self.up {
            next = next.min(self.reconnect_at);
        }
        next.max(self.now + 1)
    }
}

/// The next multiple of `n` after `now`.
fn next_multiple(now: Instant, n: u64) -> Instant {
    (now / n + 1) * n
}

/// When a reader next does something on its own clock.
fn reader_trigger(mode: Reader, now: Instant) -> Instant {
    match mode {
        Reader::Eager => Instant::MAX,
        Reader::Slow(n) => next_multiple(now, n),
        Reader::Pausing(from, _) if now < from => from,
        Reader::Pausing(_, to) if now < to => to,
        Reader::Pausing(..) => Instant::MAX,
    }
}

/// When a sender with messages left next does something on its own clock.
fn sender_trigger(mode: Sender, p: &Peer, now: Instant) -> Instant {
    match mode {
        Sender::Paced(n) if p.sent < p.to_send => next_multiple(now, n),
        _ => Instant::MAX,
    }
}

fn read(p: &mut Peer, mode: Reader, now: Instant) {
    match mode {
        Reader::Eager => while p.read_one() {},
        Reader::Slow(n) => {
            if now.is_multiple_of(n) {
                p.read_one();
            }
        }
        Reader::Pausing(from, to) => {
            if !(from..to).contains(&now) {
                while p.read_one() {}
            }
        }
    }
}

fn send(p: &mut Peer, mode: Sender, now: Instant) {
    let go = match mode {
        Sender::Bursty => u32::MAX,
        Sender::Paced(n) => u32::from(now.is_multiple_of(n)),
    };
    for _ in 0..go {
        if p.sent >= p.to_send || !p.try_send(p.sent) {
            break;
        }
        p.sent += 1;
    }
    if p.sent == p.to_send && !p.closed {
        p.closed = true;
        p.store.parts().0.close_tx();
    }
}

/// Builds a schedule from a seed.
fn schedule(seed: u64) -> (Workload, Faults, usize, u64) {
    let mut r = Rng(ChaCha8Rng::seed_from_u64(seed ^ 0x5151));
    let reader = |r: &mut Rng| match r.below(3) {
        0 => Reader::Eager,
        1 => Reader::Slow(1 + r.below(5)),
        _ => {
            let from = r.below(500);
            Reader::Pausing(from, from + r.below(1500))
        }
    };
    let sender = |r: &mut Rng| if r.below(2) == 0 { Sender::Bursty } else { Sender::Paced(1 + r.below(4)) };
    let workload = match r.below(10) {
        0..=3 => Workload::Streams {
            a: r.below(120) as u32,
            b: if r.below(4) == 0 { 0 } else { r.below(120) as u32 },
            a_send: sender(&mut r),
            b_send: sender(&mut r),
            a_read: reader(&mut r),
            b_read: reader(&mut r),
        },
        4..=8 => {
            let pipelined = r.below(2) == 0;
            let depth = if pipelined { 1 + r.below(BOUND as u64) as usize } else { 0 };
            Workload::Requests { n: r.below(150) as u32, pipelined, depth, b_read: reader(&mut r) }
        }
        _ => Workload::Reboot { a_reboots: r.below(2) == 0, at: 20 + r.below(400) },
    };
    let faulty = r.below(4) != 0;
    let faults = if faulty {
        Faults { drop: r.below(20_000), duplicate: r.below(20_000), corrupt: r.below(10_000), cut: r.below(3_000) }
    } else {
        Faults { drop: 0, duplicate: 0, corrupt: 0, cut: 0 }
    };
    (workload, faults, 1 + r.below(4) as usize, r.below(4))
}

/// Simulated time allowed for a schedule: generous, but bounded.
const LIMIT: Instant = 120_000;

/// What one schedule exercised.
#[derive(Default)]
struct Totals {
    messages: u64,
    reattachments: u64,
    cuts: u64,
    window_waits: u64,
    window_updates: u64,
    self_stalls: u64,
    simulated_ms: u64,
    /// Simulated milliseconds jumped over (quiet: nothing due).
    jumped_ms: u64,
}

fn run(seed: u64, totals: &mut Totals) -> Result<(), String> {
    let (workload, faults, capacity, latency) = schedule(seed);
    let (na, nb) = match workload {
        Workload::Streams { a, b, .. } => (a, b),
        Workload::Requests { n, .. } => (n, 0),
        Workload::Reboot { .. } => (1000, 1000),
    };
    let mut sim = Sim {
        rng: Rng(ChaCha8Rng::seed_from_u64(seed)),
        now: 0,
        a: Peer::new(SessionRole::Initiator, na),
        b: Peer::new(SessionRole::Acceptor, nb),
        faults,
        up: false,
        reconnect_at: 0,
        capacity,
        latency,
        cuts: 0,
        closing: false,
    };
    // Requests: replies B owes (ids of requests it holds).
    let mut replies_sent = 0u32;
    let (mut a_reading, mut outstanding) = (false, 0usize);
    let mut rebooted = false;
    // Time jumps over quiet spans to the next event: `skipped` ms were
    // jumped over before this step (a cut's chance scales with them).
    let mut skipped = 0u64;
    while sim.now < LIMIT {
        let before = sim.progress();
        sim.reconnect();
        sim.deliver();
        sim.tick();
        if sim.rng.chance(sim.faults.cut.saturating_mul(1 + skipped)) {
            sim.cut();
        }
        let now = sim.now;
        match workload {
            Workload::Streams { a_send, b_send, a_read, b_read, .. } => {
                send(&mut sim.a, a_send, now);
                send(&mut sim.b, b_send, now);
                read(&mut sim.a, a_read, now);
                read(&mut sim.b, b_read, now);
            }
            Workload::Requests { n, pipelined, depth, b_read } => {
                // B: one task that holds a request until its reply fits.
                let b = &mut sim.b;
                let may_read = match b_read {
                    Reader::Eager => true,
                    Reader::Slow(k) => now.is_multiple_of(k),
                    Reader::Pausing(from, to) => !(from..to).contains(&now),
                };
                loop {
                    if b.held.is_empty() && !(may_read && b.take().is_some()) {
                        break;
                    }
                    let (_, id) = *b.held.front().unwrap();
                    if !b.try_send(id) {
                        break;
                    }
                    b.got.push(id);
                    b.release_oldest();
                    replies_sent += 1;
                    if !may_read {
                        break;
                    }
                }
                if b.got.len() as u32 == n && !b.closed && sim.a.closed {
                    b.closed = true;
                    b.store.parts().0.close_tx();
                }
                // A: pipelined rounds of `depth` (send them all, then read
                // their replies), or free sending and reading.
                let a = &mut sim.a;
                if pipelined {
                    if !a_reading {
                        while outstanding < depth && a.sent < n && a.try_send(a.sent) {
                            a.sent += 1;
                            outstanding += 1;
                        }
                        a_reading = outstanding == depth || (a.sent == n && outstanding > 0);
                    }
                    if a_reading {
                        while outstanding > 0 && a.read_one() {
                            outstanding -= 1;
                        }
                        a_reading = outstanding > 0;
                    }
                } else {
                    while a.sent < n && a.try_send(a.sent) {
                        a.sent += 1;
                    }
                    while a.read_one() {}
                }
                if a.sent == n && !a.closed {
                    a.closed = true;
                    a.store.parts().0.close_tx();
                }
            }
            Workload::Reboot { a_reboots, at } => {
                // Once both sides hold messages of the other (before that a
                // restart is indistinguishable from a lost first hello, and
                // the session rightly goes on).
                let exchanged = !sim.a.got.is_empty() && !sim.b.got.is_empty();
                if now >= at && exchanged && !rebooted {
                    rebooted = true;
                    let victim = if a_reboots { &mut sim.a } else { &mut sim.b };
                    let fresh = Peer::new(victim.role, 1000);
                    *victim = fresh;
                    sim.cut();
                }
                send(&mut sim.a, Sender::Paced(2), now);
                send(&mut sim.b, Sender::Paced(3), now);
                read(&mut sim.a, Reader::Eager, now);
                read(&mut sim.b, Reader::Eager, now);
                let survivor = if a_reboots { &sim.b } else { &sim.a };
                if rebooted && survivor.ended().is_some() {
                    break;
                }
            }
        }
        sim.detaches();
        sim.transmit();
        sim.detaches();
        let want = match workload {
            Workload::Requests { n, .. } => (n as usize, n as usize),
            _ => (nb as usize, na as usize),
        };
        let done = sim.a.complete && sim.b.complete && (sim.a.got.len(), sim.b.got.len()) == want;
        if done && !matches!(workload, Workload::Reboot { .. }) {
            break;
        }
        // r[verify core.sim-time]
        let next = if sim.progress() == before {
            let trigger = match workload {
                Workload::Streams { a_send, b_send, a_read, b_read, .. } => sender_trigger(a_send, &sim.a, now)
                    .min(sender_trigger(b_send, &sim.b, now))
                    .min(reader_trigger(a_read, now))
                    .min(reader_trigger(b_read, now)),
                Workload::Requests { b_read, .. } => reader_trigger(b_read, now),
                Workload::Reboot { at, .. } => {
                    let paced = sender_trigger(Sender::Paced(2), &sim.a, now).min(sender_trigger(
                        Sender::Paced(3),
                        &sim.b,
                        now,
                    ));
                    if rebooted { paced } else { paced.min(at.max(now + 1)) }
                }
            };
            sim.next_event(trigger).min(LIMIT)
        } else {
            sim.now + 1
        };
        skipped = next - sim.now - 1;
        totals.jumped_ms += skipped;
        sim.now = next;
    }
    let describe = || {
        format!(
            "workload {workload:?}\nfaults {faults:?}, capacity {capacity}, latency {latency}, cuts {}, t={} ms\nA got {} ended {:?} complete {}\n  {:?}\nB got {} ended {:?} complete {}\n  {:?}",
            sim.cuts,
            sim.now,
            sim.a.got.len(),
            sim.a.ended(),
            sim.a.complete,
            sim.a.stats(),
            sim.b.got.len(),
            sim.b.ended(),
            sim.b.complete,
            sim.b.stats()
        )
    };
    for p in [&sim.a, &sim.b] {
        let s = p.stats();
        if s.beyond_window != 0 || s.violations != 0 {
            return Err(format!("a frame beyond the window or a violation\n{}", describe()));
        }
        for (i, id) in p.got.iter().enumerate() {
            if *id != i as u32 {
                return Err(format!("out of order or duplicated at {i}: {id}\n{}", describe()));
            }
        }
    }
    match workload {
        Workload::Reboot { a_reboots, .. } => {
            let survivor = if a_reboots { &sim.b } else { &sim.a };
            if survivor.ended() != Some(SessionError::SessionLost) {
                return Err(format!("the survivor of a reboot must see SessionLost\n{}", describe()));
            }
        }
        _ => {
            let want = match workload {
                Workload::Requests { n, .. } => (n as usize, n as usize),
                _ => (nb as usize, na as usize),
            };
            if (sim.a.got.len(), sim.b.got.len()) != want || !(sim.a.complete && sim.b.complete) {
                return Err(format!("not delivered and finished within {LIMIT} ms\n{}", describe()));
            }
            if sim.a.ended().is_some() || sim.b.ended().is_some() {
                return Err(format!("a session ended\n{}", describe()));
            }
        }
    }
    let _ = replies_sent;
    totals.messages += (sim.a.got.len() + sim.b.got.len()) as u64;
    totals.cuts += u64::from(sim.cuts);
    totals.simulated_ms += sim.now;
    for p in [&sim.a, &sim.b] {
        let st = p.stats();
        totals.reattachments += u64::from(st.reattachments);
        totals.window_waits += st.window_waits;
        totals.window_updates += st.window_updates;
        totals.self_stalls += u64::from(st.self_stalls);
    }
    Ok(())
}

// r[verify stable.core]
// r[verify stable.exactly-once]
// r[verify stable.flow.pipeline]
// r[verify stable.flow.no-stall]
#[test]
fn random_schedules_deliver_exactly_once_in_order_and_finish() {
    let seeds = REGRESSIONS.iter().copied().chain(0..SCHEDULES);
    let mut failures = Vec::new();
    let mut t = Totals::default();
    for seed in seeds {
        if let Err(e) = run(seed, &mut t) {
            eprintln!("seed {seed} failed: {e}\n");
            failures.push(seed);
        }
    }
    println!(
        "{SCHEDULES} schedules: {} messages delivered, {} line cuts, {} reattachments, {} window waits, {} window updates, {} self-stalls, {:.0} s simulated ({:.0} s of it jumped over to the next deadline)",
        t.messages,
        t.cuts,
        t.reattachments,
        t.window_waits,
        t.window_updates,
        t.self_stalls,
        t.simulated_ms as f64 / 1000.0,
        t.jumped_ms as f64 / 1000.0
    );
    assert!(failures.is_empty(), "failing seeds (add them to REGRESSIONS): {failures:?}");
}
