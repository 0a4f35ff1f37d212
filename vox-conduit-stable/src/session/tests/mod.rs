//! The session core fed frames at explicit times, the way smoltcp tests
//! its TCP socket: no links, no tasks, no clock but the `now` given.

use super::*;
use crate::wire::{KEY_LEN, Window};
use std::boxed::Box;
use std::vec::Vec;

const CFG: StableConfig = StableConfig {
    max_message: 40,
    ack_every: 4,
    ack_delay_ms: 10,
    keepalive_ms: 100,
    timeout_ms: 400,
    retry_delay_ms: 5,
    linger_ms: 1000,
    connect_timeout_ms: 10_000,
};
const FP: SchemaFingerprint = SchemaFingerprint([1, 2, 3, 4, 5, 6, 7, 8]);
const KEY: ResumeKey = [7; KEY_LEN];

/// Replay ring 256 B / 6 entries; receive ring 128 B / 3 entries.
type Store = SessionStorage<256, 6, 128, 3>;

fn side(role: SessionRole) -> Box<Store> {
    Box::new(Store::new(role, CFG, FP))
}

/// Every frame `s` wants to send now.
fn drain<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    s: &mut SessionStorage<TB, TM, RB, RM>,
    now: Instant,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    loop {
        let (mut session, _) = s.parts();
        let sent = session.transmit(now, |out| {
            let mut buf = std::vec![0u8; out.len()];
            out.encode(&mut buf).map(|()| frames.push(buf))
        });
        if sent.is_none() {
            return frames;
        }
    }
}

fn feed<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    s: &mut SessionStorage<TB, TM, RB, RM>,
    now: Instant,
    frames: &[Vec<u8>],
) {
    for f in frames {
        let (mut session, rx_bytes) = s.parts();
        session.on_receive(now, f, |at, msg| rx_bytes[at..at + msg.len()].copy_from_slice(msg));
    }
}

/// Exchanges frames until both sides are quiet; returns how many went
/// each way.
fn pump<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    a: &mut SessionStorage<TB, TM, RB, RM>,
    b: &mut SessionStorage<TB, TM, RB, RM>,
    now: Instant,
) -> (usize, usize) {
    let (mut ab, mut ba) = (0, 0);
    loop {
        let fa = drain(a, now);
        let fb = drain(b, now);
        if fa.is_empty() && fb.is_empty() {
            return (ab, ba);
        }
        (ab, ba) = (ab + fa.len(), ba + fb.len());
        feed(b, now, &fa);
        feed(a, now, &fb);
    }
}

fn attach<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    a: &mut SessionStorage<TB, TM, RB, RM>,
    b: &mut SessionStorage<TB, TM, RB, RM>,
    now: Instant,
) {
    a.parts().0.attach(now, None);
    b.parts().0.attach(now, Some(KEY));
    pump(a, b, now);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(b.state.phase, Phase::Attached);
}

fn push<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    s: &mut SessionStorage<TB, TM, RB, RM>,
    msg: &[u8],
) -> bool {
    let (mut session, _) = s.parts();
    if !session.try_reserve().unwrap() {
        return false;
    }
    session
        .push_message(|buf| {
            buf[..msg.len()].copy_from_slice(msg);
            Ok(msg.len())
        })
        .unwrap();
    session.end_reserve();
    true
}

/// Takes and releases every received message.
fn read_all<const TB: usize, const TM: usize, const RB: usize, const RM: usize>(
    s: &mut SessionStorage<TB, TM, RB, RM>,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let (mut session, rx_bytes) = s.parts();
        let Some(r) = session.pop_received() else { return got };
        got.push(rx_bytes[r.start..r.start + r.len].to_vec());
        session.release(r.token);
    }
}

fn decode(frame: &[u8]) -> WireFrame<'_> {
    WireFrame::decode(frame).unwrap()
}

/// A `Data` frame with whole counters and a window of 3 messages / 128 B.
fn data(seq: u32, ack: u32, msg: &[u8]) -> Vec<u8> {
    let window = Some(Window { msgs: 3, bytes: 128 });
    let frame = WireFrame::Data { seq: WireSeq::Full(seq), ack: WireSeq::Full(ack), window, msg };
    let mut buf = std::vec![0; frame.encoded_len()];
    frame.encode(&mut buf).unwrap();
    buf
}

/// An `Ack` frame: everything before `ack` received, `window` more.
fn ack_frame(ack: u32, next: u32, window: Window) -> Vec<u8> {
    let frame = WireFrame::Ack { ack, next, window, done: false };
    let mut buf = std::vec![0; frame.encoded_len()];
    frame.encode(&mut buf).unwrap();
    buf
}

mod handshake;
mod inbound;
mod outbound;
mod timers;
