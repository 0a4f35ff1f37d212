//! Two session cores over a simulated UART: one byte stream each way that
//! outlives the links framed on it. Unlike `simulation.rs` (where a cut
//! kills both ends at once and empties the line), here each side's link
//! dies on its own (a CRC error, a timeout, a driver that gives up), and
//! frames already on the line are still delivered to whatever link the
//! receiver has next. The line also stalls (a reader that does not read,
//! a pty nobody has open: bytes queue and arrive in a burst, much later
//! than `keepalive_ms`), blacks out (output dropped), drops and corrupts
//! frames.
//!
//! With both sides alive nothing may end the session: no `SessionLost`,
//! no violation, and once the faults stop both sides attach again and
//! messages flow (the resume keys did not diverge).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use vox_conduit_stable::session::{Detach, Instant, Received, SessionStorage};
use vox_conduit_stable::wire::WireFrame;
use vox_conduit_stable::{SendError, StableConfig};
use vox_types::{LinkError, PROLOGUE_MAGIC, SchemaFingerprint, SessionRole};

/// Seeds that once failed, run first.
const REGRESSIONS: &[u64] = &[690];
/// Random schedules per run of the test (`UART_SCHEDULES` overrides).
const SCHEDULES: u64 = 100;

/// The demo's UART timing (`UART_CONFIG`), small buffers.
const CFG: StableConfig = StableConfig {
    max_message: 40,
    ack_every: 8,
    ack_delay_ms: 10,
    keepalive_ms: 200,
    timeout_ms: 800,
    retry_delay_ms: 20,
    linger_ms: 2000,
    connect_timeout_ms: 10_000,
};
const FP: SchemaFingerprint = SchemaFingerprint([5; 8]);
type Store = SessionStorage<512, 8, 256, 6>;

struct Rng(ChaCha8Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.next_u64() % n }
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

fn key_name(key: Option<[u8; 16]>) -> String {
    key.map_or_else(|| "-".to_string(), |k| format!("K{}", k[0]))
}

/// A frame, for the trace.
fn show(bytes: &[u8]) -> String {
    if bytes.starts_with(&PROLOGUE_MAGIC) {
        return "Prologue".to_string();
    }
    match WireFrame::decode(bytes) {
        Ok(WireFrame::Hello(h)) => format!("Hello(key {}, next {})", key_name(h.key), h.next_expected),
        Ok(WireFrame::Reject(r)) => format!("Reject({r:?})"),
        Ok(WireFrame::Data { seq, ack, .. }) => format!("Data(seq {seq:?}, ack {ack:?})"),
        Ok(WireFrame::Ack { ack, next, .. }) => format!("Ack(ack {ack}, next {next})"),
        Ok(WireFrame::Close { seq, ack }) => format!("Close(seq {seq}, ack {ack})"),
        Err(e) => format!("garbage {e:?}"),
    }
}

struct Frame {
    at: Instant,
    bytes: Vec<u8>,
    /// The receiver's link dies on it (a CRC error); the frame is lost.
    corrupt: bool,
}

struct Side {
    name: &'static str,
    store: Box<Store>,
    role: SessionRole,
    /// Detached: when the next link attaches.
    attach_at: Option<Instant>,
    /// Frames on the line towards this side.
    inbound: VecDeque<Frame>,
    /// This side does not read the line until then (bytes queue).
    stalled_until: Instant,
    /// Frames this side sends are lost until then (nobody reads them).
    blackout_until: Instant,
    /// Messages pushed, messages received.
    sent: u32,
    got: u32,
    /// Requests received and not yet answered (acceptor).
    owed: u32,
}

impl Side {
    fn new(name: &'static str, role: SessionRole) -> Self {
        Self {
            name,
            store: Box::new(Store::new(role, CFG, FP)),
            role,
            attach_at: Some(0),
            inbound: VecDeque::new(),
            stalled_until: 0,
            blackout_until: 0,
            sent: 0,
            got: 0,
            owed: 0,
        }
    }

    fn try_send(&mut self) -> bool {
        let (mut s, _) = self.store.parts();
        match s.try_reserve() {
            Ok(true) => {}
            Ok(false) | Err(SendError::Session(_)) => return false,
            Err(e) => panic!("reserve: {e}"),
        }
        let id = self.sent;
        s.push_message(|buf| {
            buf[..4].copy_from_slice(&id.to_le_bytes());
            Ok(4)
        })
        .unwrap();
        s.end_reserve();
        self.sent += 1;
        true
    }

    fn read_all(&mut self) -> Result<(), String> {
        loop {
            let (mut s, rx) = self.store.parts();
            let Some(Received { token, start, len }) = s.pop_received() else { return Ok(()) };
            let id = u32::from_le_bytes(rx[start..start + len].try_into().unwrap());
            s.release(token);
            if id != self.got {
                return Err(format!("{} got message {id}, expected {}", self.name, self.got));
            }
            self.got += 1;
            self.owed += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Faults {
    /// Per million frames.
    drop: u64,
    corrupt: u64,
    /// Per million milliseconds, per side.
    kill: u64,
    stall: u64,
    blackout: u64,
    /// Longest stall / blackout.
    stall_ms: u64,
    latency: u64,
    /// Frames that reach a side with no link wait for its next link
    /// (the port buffers them) rather than being lost.
    hold: bool,
    /// Longest wait before a side's next link.
    retry_ms: u64,
}

fn faults(seed: u64) -> Faults {
    let mut r = Rng(ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5));
    Faults {
        drop: r.below(40_000),
        corrupt: r.below(40_000),
        kill: r.below(3_000),
        stall: r.below(2_000),
        blackout: r.below(1_000),
        stall_ms: 1 + r.below(2_000),
        latency: r.below(6),
        hold: r.below(2) == 0,
        retry_ms: r.below(300),
    }
}

struct Sim {
    rng: Rng,
    now: Instant,
    a: Side,
    b: Side,
    f: Faults,
    keys: u8,
    trace: Vec<String>,
}

impl Sim {
    fn log(&mut self, s: String) {
        self.trace.push(format!("{:>6} {s}", self.now));
    }

    fn sides(&mut self, which: usize) -> (&mut Side, &mut Side) {
        if which == 0 { (&mut self.a, &mut self.b) } else { (&mut self.b, &mut self.a) }
    }

    fn attach(&mut self) {
        for which in [0, 1] {
            let now = self.now;
            let fresh = self.keys.wrapping_add(1);
            let (p, _) = self.sides(which);
            if p.attach_at.is_none_or(|t| t > now) {
                continue;
            }
            p.attach_at = None;
            let key = (p.role == SessionRole::Acceptor).then_some([fresh; 16]);
            p.store.parts().0.attach(now, key);
            let name = p.name;
            if key.is_some() {
                self.keys = fresh;
            }
            self.log(format!("{name}: new link, attach (fresh key {})", key_name(key)));
        }
    }

    fn deliver(&mut self) {
        let hold = self.f.hold;
        for which in [0, 1] {
            loop {
                let now = self.now;
                let (p, _) = self.sides(which);
                if p.stalled_until > now || p.inbound.front().is_none_or(|f| f.at > now) {
                    break;
                }
                let linked = p.store.state.has_link();
                if !linked && hold {
                    break;
                }
                let f = p.inbound.pop_front().unwrap();
                let name = p.name;
                let what = show(&f.bytes);
                if !linked {
                    self.log(format!("{name} <- {what}: no link, lost"));
                } else if f.corrupt {
                    p.store.parts().0.link_failed(LinkError::CrcMismatch);
                    self.log(format!("{name} <- {what}: CRC error, {name}'s link dies"));
                } else {
                    let (mut s, rx) = p.store.parts();
                    s.on_receive(now, &f.bytes, |at, msg| rx[at..at + msg.len()].copy_from_slice(msg));
                    self.log(format!("{name} <- {what}"));
                }
                self.detaches();
            }
        }
    }

    fn detaches(&mut self) {
        for which in [0, 1] {
            let now = self.now;
            let retry = CFG.retry_delay_ms as u64 + self.rng.below(self.f.retry_ms + 1);
            let (p, _) = self.sides(which);
            let Some(why) = p.store.state.take_detach() else { continue };
            let name = p.name;
            if p.store.state.ended().is_none() && why != Detach::Finished {
                p.attach_at = Some(now + retry);
            }
            let ended = p.store.state.ended().cloned();
            let next = p.attach_at;
            self.log(format!("{name}: detach {why:?} (ended {ended:?}), next link at {next:?}"));
        }
    }

    fn transmit(&mut self, faulty: bool) {
        for which in [0, 1] {
            loop {
                let now = self.now;
                let drop = faulty && self.rng.chance(self.f.drop);
                let corrupt = faulty && self.rng.chance(self.f.corrupt);
                let delay = self.rng.below(self.f.latency + 1);
                let (from, to) = self.sides(which);
                let mut out = None;
                let sent = from.store.parts().0.transmit(now, |o| {
                    let mut buf = vec![0u8; o.len()];
                    o.encode(&mut buf).map(|()| out = Some(buf))
                });
                let Some(Ok(())) = sent else { break };
                let bytes = out.unwrap();
                let what = show(&bytes);
                let name = from.name;
                let blackout = from.blackout_until > now;
                let at = to.inbound.back().map_or(now + delay, |f| f.at.max(now + delay));
                let fate = if blackout {
                    " (blackout: lost)"
                } else if drop {
                    " (lost on the line)"
                } else {
                    to.inbound.push_back(Frame { at, bytes, corrupt });
                    if corrupt { " (corrupted)" } else { "" }
                };
                self.log(format!("{name} -> {what}{fate}"));
            }
            self.detaches();
        }
    }

    fn faults(&mut self) {
        let f = self.f;
        for which in [0, 1] {
            let now = self.now;
            if self.rng.chance(f.kill) {
                let (p, _) = self.sides(which);
                if p.store.state.has_link() {
                    p.store.parts().0.link_failed(LinkError::Closed);
                    let name = p.name;
                    self.log(format!("{name}: its link dies"));
                }
            }
            if self.rng.chance(f.stall) {
                let until = now + 1 + self.rng.below(f.stall_ms);
                let (p, _) = self.sides(which);
                p.stalled_until = p.stalled_until.max(until);
                let name = p.name;
                self.log(format!("{name}: stops reading the line until {until}"));
            }
            if self.rng.chance(f.blackout) {
                let until = now + 1 + self.rng.below(f.stall_ms);
                let (p, _) = self.sides(which);
                p.blackout_until = p.blackout_until.max(until);
                let name = p.name;
                self.log(format!("{name}: output lost until {until}"));
            }
        }
        self.detaches();
    }

    fn ended(&self) -> Option<String> {
        for p in [&self.a, &self.b] {
            if let Some(e) = p.store.state.ended() {
                return Some(format!("{} ended: {e:?}", p.name));
            }
        }
        None
    }
}

/// Faults for this long, then a quiet line for `QUIET`.
const FAULTY: Instant = 20_000;
const QUIET: Instant = 6_000;

fn run(seed: u64) -> Result<(), (String, Vec<String>)> {
    let mut sim = Sim {
        rng: Rng(ChaCha8Rng::seed_from_u64(seed)),
        now: 0,
        a: Side::new("device", SessionRole::Initiator),
        b: Side::new("host", SessionRole::Acceptor),
        f: faults(seed),
        keys: 0,
        trace: Vec::new(),
    };
    sim.log(format!("faults {:?}", sim.f));
    let mut got_at_quiet = (0, 0);
    while sim.now < FAULTY + QUIET {
        let faulty = sim.now < FAULTY;
        if sim.now == FAULTY {
            got_at_quiet = (sim.a.got, sim.b.got);
            sim.log("the line is quiet from now on".to_string());
            for p in [&mut sim.a, &mut sim.b] {
                p.stalled_until = p.stalled_until.min(FAULTY);
                p.blackout_until = p.blackout_until.min(FAULTY);
                for f in &mut p.inbound {
                    f.corrupt = false;
                }
            }
        }
        sim.attach();
        sim.deliver();
        for p in [&mut sim.a, &mut sim.b] {
            p.store.parts().0.on_tick(sim.now);
        }
        sim.detaches();
        if faulty {
            sim.faults();
        }
        // The device sends a request every 20 ms; the host answers each.
        let now = sim.now;
        if now.is_multiple_of(20) {
            sim.a.try_send();
        }
        for p in [&mut sim.a, &mut sim.b] {
            if let Err(e) = p.read_all() {
                return Err((e, sim.trace));
            }
        }
        while sim.b.owed > 0 && sim.b.try_send() {
            sim.b.owed -= 1;
        }
        sim.transmit(faulty);
        if let Some(e) = sim.ended() {
            return Err((e, sim.trace));
        }
        sim.now += 1;
    }
    if sim.a.got <= got_at_quiet.0 + 10 || sim.b.got <= got_at_quiet.1 + 10 {
        let e = format!(
            "no progress on a quiet line: device got {} (was {}), host got {} (was {})",
            sim.a.got, got_at_quiet.0, sim.b.got, got_at_quiet.1
        );
        return Err((e, sim.trace));
    }
    Ok(())
}

#[test]
fn independent_link_deaths_on_a_byte_stream_never_end_the_session() {
    let n = std::env::var("UART_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(SCHEDULES);
    let first = std::env::var("UART_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut failures = Vec::new();
    for seed in REGRESSIONS.iter().copied().chain(first..first + n) {
        if let Err((e, trace)) = run(seed) {
            if failures.is_empty() {
                let tail = trace.len().saturating_sub(120);
                eprintln!("seed {seed} failed: {e}\n{}\n  ...\n{}", trace[0], trace[tail..].join("\n"));
            }
            failures.push(seed);
        }
    }
    assert!(failures.is_empty(), "failing seeds (add them to REGRESSIONS): {failures:?}");
}
