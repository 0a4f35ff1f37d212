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
fn drain(s: &mut Store, now: Instant) -> Vec<Vec<u8>> {
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

fn feed(s: &mut Store, now: Instant, frames: &[Vec<u8>]) {
    for f in frames {
        let (mut session, rx_bytes) = s.parts();
        session.on_receive(now, f, |at, msg| rx_bytes[at..at + msg.len()].copy_from_slice(msg));
    }
}

/// Exchanges frames until both sides are quiet; returns how many went
/// each way.
fn pump(a: &mut Store, b: &mut Store, now: Instant) -> (usize, usize) {
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

fn attach(a: &mut Store, b: &mut Store, now: Instant) {
    a.parts().0.attach(now, None);
    b.parts().0.attach(now, Some(KEY));
    pump(a, b, now);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(b.state.phase, Phase::Attached);
}

fn push(s: &mut Store, msg: &[u8]) -> bool {
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
fn read_all(s: &mut Store) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let (mut session, rx_bytes) = s.parts();
        let Some(r) = session.pop_received() else { return got };
        got.push(rx_bytes[r.start..r.start + r.len].to_vec());
        session.release(r.token);
    }
}

fn decode(frame: &[u8]) -> WireFrame<'_> {
    postcard::from_bytes(frame).unwrap()
}

fn data(seq: u32, ack: u32, msg: &[u8]) -> Vec<u8> {
    let window = Window { msgs: 3, bytes: 128 };
    postcard::to_allocvec(&WireFrame::Data { seq, ack, window, msg }).unwrap()
}

#[test]
// r[verify stable.handshake]
// r[verify stable.core]
fn handshake_prologues_then_hellos_carry_key_and_window() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    a.parts().0.attach(0, None);
    b.parts().0.attach(0, Some(KEY));
    let pa = drain(&mut a, 0);
    let pb = drain(&mut b, 0);
    assert_eq!(pa.len(), 1, "the initiator's prologue only");
    assert!(pa[0].starts_with(&PROLOGUE_MAGIC));
    assert!(pb[0].starts_with(&PROLOGUE_MAGIC));
    feed(&mut a, 1, &pb);
    let hello = drain(&mut a, 1);
    assert_eq!(
        decode(&hello[0]),
        WireFrame::Hello(Hello { key: None, next_expected: 0, window: Window { msgs: 3, bytes: 128 } })
    );
    feed(&mut b, 2, &pa);
    feed(&mut b, 2, &hello);
    let answer = drain(&mut b, 2);
    // The acceptor answers each prologue with its own, then its hello.
    assert!(answer[0].starts_with(&PROLOGUE_MAGIC));
    let WireFrame::Hello(h) = decode(&answer[1]) else { panic!("hello expected") };
    assert_eq!(h.key, Some(KEY));
    assert_eq!(b.state.phase, Phase::Attached);
    feed(&mut a, 3, &answer);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(a.state.keys.current, Some(KEY));
}

#[test]
// r[verify stable.flow.window]
fn data_never_goes_beyond_the_peers_window() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    for i in 0..4u8 {
        assert!(push(&mut a, &[i; 10]));
    }
    let frames = drain(&mut a, 1);
    let datas = frames.iter().filter(|f| matches!(decode(f), WireFrame::Data { .. })).count();
    assert_eq!(datas, 3, "the receive ring has 3 entries");
    assert_eq!(a.state.stats.window_waits, 1);
    feed(&mut b, 1, &frames);
    assert_eq!(b.state.stats.beyond_window, 0);
    // b's application has not read: its (delayed) ack says the window is
    // shut.
    b.parts().0.on_tick(11);
    let acks = drain(&mut b, 11);
    let WireFrame::Ack { ack: 3, window, .. } = decode(&acks[0]) else { panic!("ack expected") };
    assert_eq!(window.msgs, 0);
    feed(&mut a, 1, &acks);
    assert!(drain(&mut a, 1).is_empty(), "window shut: nothing more");
}

#[test]
// r[verify stable.flow.update]
fn freeing_room_after_the_window_closed_sends_an_update_at_once() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    for i in 0..5u8 {
        assert!(push(&mut a, &[i; 10]));
    }
    pump(&mut a, &mut b, 1);
    assert_eq!(b.state.rx.ring.len(), 3);
    // Reading one message frees an entry: the update goes out without a
    // timer (same `now`).
    let (mut session, _) = b.parts();
    let r = session.pop_received().unwrap();
    session.release(r.token);
    let update = drain(&mut b, 1);
    assert_eq!(update.len(), 1);
    let WireFrame::Ack { window, .. } = decode(&update[0]) else { panic!("ack expected") };
    assert_eq!(window.msgs, 1);
    assert_eq!(b.state.stats.window_updates, 1);
    feed(&mut a, 1, &update);
    let more = drain(&mut a, 1);
    assert!(matches!(decode(&more[0]), WireFrame::Data { seq: 3, .. }));
    feed(&mut b, 1, &more);
    pump(&mut a, &mut b, 1);
    let got: Vec<Vec<u8>> = (0..2).flat_map(|_| read_all(&mut b)).collect();
    assert_eq!(got.len(), 3);
    pump(&mut a, &mut b, 2);
    assert_eq!(read_all(&mut b), std::vec![std::vec![4u8; 10]]);
}

#[test]
// r[verify stable.flow.no-stall]
fn acks_are_processed_while_the_receive_ring_is_full() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    // Fill a's receive ring: b sends 3 messages, a's application sleeps.
    for i in 0..3u8 {
        assert!(push(&mut b, &[i; 5]));
    }
    pump(&mut a, &mut b, 1);
    assert_eq!(a.state.rx.ring.len(), 3);
    // a sends; b acks; a's replay ring drains although a reads nothing.
    assert!(push(&mut a, b"req"));
    pump(&mut a, &mut b, 2);
    read_all(&mut b);
    b.state.rx.ack_now = true;
    pump(&mut a, &mut b, 3);
    assert_eq!(a.state.tx.ring.len(), 0, "acked while a's own receive ring is full");
    // And data beyond the window is dropped unacked, its ack still used.
    assert!(push(&mut a, b"x"));
    let before = a.state.rx.next;
    feed(&mut a, 4, &[data(3, 1, b"beyond")]);
    assert_eq!(a.state.stats.beyond_window, 1);
    assert_eq!(a.state.rx.next, before, "not acked");
}

#[test]
// r[verify stable.gap]
fn a_skipped_sequence_number_detaches_with_a_gap() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    a.parts().1.fill(0);
    feed(&mut a, 1, &[data(1, 0, b"late")]);
    assert_eq!(a.state.take_detach(), Some(Detach::Gap { expected: 0, got: 1 }));
    assert_eq!(a.state.stats.gaps, 1);
}

#[test]
// r[verify stable.seq]
fn a_duplicate_is_dropped_and_acked_again() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    feed(&mut a, 1, &[data(0, 0, b"one")]);
    feed(&mut a, 1, &[data(0, 0, b"one")]);
    assert_eq!(a.state.stats.duplicates, 1);
    assert_eq!(read_all(&mut a), std::vec![b"one".to_vec()]);
    let acks = drain(&mut a, 1);
    assert!(matches!(decode(&acks[0]), WireFrame::Ack { ack: 1, .. }));
}

#[test]
// r[verify stable.liveness]
// r[verify stable.ack]
fn timers_delayed_ack_keepalive_and_silence_timeout() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    feed(&mut a, 1, &[data(0, 0, b"one")]);
    assert!(drain(&mut a, 1).is_empty(), "one frame: the ack waits");
    a.parts().0.on_tick(5);
    assert!(drain(&mut a, 5).is_empty());
    a.parts().0.on_tick(11);
    assert_eq!(drain(&mut a, 11).len(), 1, "ack_delay_ms passed");
    a.parts().0.on_tick(111);
    let keepalive = drain(&mut a, 111);
    assert!(matches!(decode(&keepalive[0]), WireFrame::Ack { .. }), "keepalive after keepalive_ms");
    a.parts().0.on_tick(400);
    assert_eq!(a.state.take_detach(), None, "frames arrived at 1");
    a.parts().0.on_tick(401);
    assert_eq!(a.state.take_detach(), Some(Detach::Timeout));
    assert_eq!(a.state.stats.timeouts, 1);
}

/// The deadline the core reports is exactly when `on_tick` acts: a
/// driver that sleeps until it (and not a fixed tick) misses nothing.
// r[verify core.deadline]
#[test]
fn next_deadline_names_exactly_when_the_next_timer_acts() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    assert_eq!(a.parts().0.next_deadline(), Instant::MAX, "no link: nothing is due");
    a.parts().0.attach(0, None);
    // Handshaking: the prologue waits for the link (not repeated), then is
    // repeated after keepalive_ms; the handshake times out after timeout_ms.
    assert_eq!(a.parts().0.next_deadline(), 400, "a prologue waiting to go is not repeated");
    assert_eq!(drain(&mut a, 0).len(), 1, "the prologue, lost: the acceptor is not there yet");
    assert_eq!(a.parts().0.next_deadline(), 100, "the prologue is repeated after keepalive_ms");
    a.parts().0.on_tick(99);
    assert!(drain(&mut a, 99).is_empty(), "nothing before the deadline");
    a.parts().0.on_tick(100);
    b.parts().0.attach(100, Some(KEY));
    pump(&mut a, &mut b, 100);
    assert_eq!(a.state.phase, Phase::Attached);
    // Attached and idle: the keepalive comes first.
    assert_eq!(a.parts().0.next_deadline(), 200);
    // A data frame arrives: its ack is due ack_delay_ms later.
    feed(&mut a, 101, &[data(0, 0, b"one")]);
    assert_eq!(a.parts().0.next_deadline(), 111);
    a.parts().0.on_tick(110);
    assert!(drain(&mut a, 110).is_empty(), "nothing before the deadline");
    a.parts().0.on_tick(111);
    assert_eq!(a.parts().0.next_deadline(), 501, "an owed ack waits for the link, not for time");
    assert_eq!(drain(&mut a, 111).len(), 1, "the ack goes at the deadline");
    assert_eq!(a.parts().0.next_deadline(), 211, "then the keepalive, keepalive_ms after the last frame sent");
    // Silence: keepalives at 211, 311, 411, then the timeout at 501.
    for t in [211, 311, 411] {
        a.parts().0.on_tick(t);
        assert_eq!(drain(&mut a, t).len(), 1, "a keepalive at {t}");
    }
    assert_eq!(a.parts().0.next_deadline(), 501);
    a.parts().0.on_tick(501);
    assert_eq!(a.state.take_detach(), Some(Detach::Timeout));
    assert_eq!(a.parts().0.next_deadline(), Instant::MAX, "detached: nothing is due");
}

#[test]
// r[verify stable.replay.order]
// r[verify stable.replay]
fn reattachment_replays_unacked_frames_in_order_then_new_ones() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    for i in 0..3u8 {
        assert!(push(&mut a, &[i; 3]));
    }
    let lost = drain(&mut a, 1);
    feed(&mut b, 1, &lost[..1]); // frames 1 and 2 die with the link
    a.parts().0.link_failed(LinkError::Closed);
    b.parts().0.link_failed(LinkError::Closed);
    assert!(push(&mut a, &[3; 3]));
    attach(&mut a, &mut b, 10);
    assert_eq!(a.state.stats.reattachments, 1);
    assert_eq!(a.state.stats.replays, 2);
    let got = read_all(&mut b);
    assert_eq!(got, std::vec![std::vec![0u8; 3], std::vec![1u8; 3], std::vec![2u8; 3]]);
    pump(&mut a, &mut b, 11);
    assert_eq!(read_all(&mut b), std::vec![std::vec![3u8; 3]]);
    // A full replay ring refuses a reservation (backpressure).
    while push(&mut a, &[9; 40]) {}
    assert!(a.state.tx.ring.len() + 2 > 6 || a.state.stats.replay_bytes > 200);
}

#[test]
// r[verify stable.session-lost]
fn an_unknown_key_is_rejected_and_the_initiator_loses_the_session() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    let mut fresh = side(SessionRole::Acceptor); // the acceptor restarted
    a.parts().0.link_failed(LinkError::Closed);
    a.parts().0.attach(10, None);
    fresh.parts().0.attach(10, Some([9; KEY_LEN]));
    pump(&mut a, &mut fresh, 10);
    assert_eq!(fresh.state.take_detach(), Some(Detach::Refused));
    assert_eq!(a.state.ended(), Some(&SessionError::SessionLost));
    assert!(matches!(a.parts().0.try_reserve(), Err(SendError::Session(SessionError::SessionLost))));
}

#[test]
fn a_schema_mismatch_ends_the_session_with_both_fingerprints() {
    let mut a = side(SessionRole::Initiator);
    let mut b = Box::new(Store::new(SessionRole::Acceptor, CFG, SchemaFingerprint([9; 8])));
    a.parts().0.attach(0, None);
    b.parts().0.attach(0, Some(KEY));
    pump(&mut a, &mut b, 0);
    let Some(SessionError::Refused(HandshakeError::Prologue(PrologueError::SchemaMismatch { .. }))) = a.state.ended()
    else {
        panic!("schema mismatch expected, got {:?}", a.state.ended())
    };
    assert!(b.state.ended().is_some());
}

#[test]
fn an_ack_for_frames_never_sent_is_a_violation_that_ends_the_attachment() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    feed(&mut a, 1, &[data(0, 5, b"x")]);
    assert_eq!(
        a.state.take_detach(),
        Some(Detach::Violation(Violation::AckAhead { frame: FrameKind::Data, ack: 5, sent: 0 }))
    );
    assert_eq!(a.state.ended(), None, "the session survives a stray frame");
}

#[test]
fn both_close_then_finish_and_the_peer_hears_it() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    assert!(push(&mut a, b"last"));
    a.parts().0.close_tx();
    b.parts().0.close_tx();
    pump(&mut a, &mut b, 1);
    assert_eq!(read_all(&mut b), std::vec![b"last".to_vec()]);
    assert!(b.parts().0.peer_closed());
    assert!(a.parts().0.peer_closed());
    pump(&mut a, &mut b, 2);
    assert!(a.state.is_complete() && b.state.is_complete());
    assert_eq!(a.state.take_detach(), Some(Detach::Finished));
}

#[test]
fn a_released_message_out_of_order_frees_room_only_when_older_ones_are_released() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    for i in 0..3u8 {
        assert!(push(&mut a, &[i; 8]));
    }
    pump(&mut a, &mut b, 1);
    let (mut s, rx) = b.parts();
    let first = s.pop_received().unwrap();
    let second = s.pop_received().unwrap();
    assert_eq!(&rx[second.start..second.start + second.len], &[1u8; 8]);
    s.release(second.token);
    assert_eq!(b.state.rx.ring.len(), 3, "the oldest is still held");
    let (mut s, rx) = b.parts();
    assert_eq!(&rx[first.start..first.start + first.len], &[0u8; 8], "a held message is never overwritten");
    s.release(first.token);
    assert_eq!(b.state.rx.ring.len(), 1);
}

#[test]
fn an_initiator_that_restarts_after_any_frame_of_the_data_phase_is_a_new_session() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    // Only a keepalive reached the acceptor: no data, but proof that the
    // initiator read the acceptor's hello (and its key).
    a.parts().0.on_tick(100);
    pump(&mut a, &mut b, 100);
    let mut restarted = side(SessionRole::Initiator);
    b.parts().0.link_failed(LinkError::Closed);
    restarted.parts().0.attach(110, None);
    b.parts().0.attach(110, Some([8; KEY_LEN]));
    pump(&mut restarted, &mut b, 110);
    assert_eq!(b.state.ended(), Some(&SessionError::SessionLost));
}

#[test]
fn a_keyless_hello_after_a_first_hello_that_died_is_the_same_session() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    a.parts().0.attach(0, None);
    b.parts().0.attach(0, Some(KEY));
    feed(&mut b, 0, &drain(&mut a, 0));
    feed(&mut a, 0, &drain(&mut b, 0));
    feed(&mut b, 0, &drain(&mut a, 0)); // the hello: b is attached
    let _lost = drain(&mut b, 0); // b's hello dies with the link
    a.parts().0.link_failed(LinkError::Closed);
    b.parts().0.link_failed(LinkError::Closed);
    attach(&mut a, &mut b, 10);
    assert_eq!(b.state.ended(), None, "nothing was confirmed: the same session");
}

#[test]
fn a_frame_that_does_not_decode_after_the_handshake_says_why() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    feed(&mut a, 1, &[std::vec![9, 0]]);
    assert_eq!(a.state.take_detach(), Some(Detach::Malformed(FrameError::Malformed)));
    attach(&mut a, &mut b, 2);
    feed(&mut a, 3, &[std::vec![2, 0]]);
    assert_eq!(a.state.take_detach(), Some(Detach::Malformed(FrameError::Truncated)));
}

/// One handshake of a new initiator against an acceptor that answers its
/// hello with `Busy` at `now`.
fn busy_round(a: &mut Store, now: Instant) {
    a.parts().0.attach(now, None);
    let mut acceptor = side(SessionRole::Acceptor);
    acceptor.parts().0.attach(now, Some(KEY));
    let prologue = drain(a, now);
    feed(&mut acceptor, now, &prologue);
    feed(a, now, &drain(&mut acceptor, now));
    // The initiator's hello; the acceptor's queue is full.
    assert!(!drain(a, now).is_empty());
    acceptor.state.reject(RejectReason::Busy);
    feed(a, now, &drain(&mut acceptor, now));
}

// r[verify core.burst]
#[test]
fn busy_is_transient_the_initiator_backs_off_until_its_connect_timeout() {
    let mut a = side(SessionRole::Initiator);
    busy_round(&mut a, 0);
    assert_eq!(a.state.ended(), None, "Busy does not end the session");
    assert_eq!(a.state.take_detach(), Some(Detach::Busy));
    assert_eq!(a.state.stats.busy_retries, 1);
    assert_eq!(a.state.attach_not_before(), Some(5), "retry_delay_ms first");
    busy_round(&mut a, 5);
    assert_eq!(a.state.attach_not_before(), Some(15), "then doubled");
    busy_round(&mut a, 15);
    assert_eq!(a.state.attach_not_before(), Some(35));
    // The backoff stops growing at one timeout.
    let mut now = 35;
    for _ in 0..10 {
        busy_round(&mut a, now);
        now = a.state.attach_not_before().unwrap();
    }
    busy_round(&mut a, now);
    assert_eq!(a.state.attach_not_before().unwrap() - now, u64::from(CFG.timeout_ms));
    assert_eq!(a.state.stats.busy_retries, 14);
    // An acceptor with room at last: the session is on, the backoff gone.
    let mut b = side(SessionRole::Acceptor);
    let now = a.state.attach_not_before().unwrap();
    a.parts().0.attach(now, None);
    b.parts().0.attach(now, Some(KEY));
    pump(&mut a, &mut b, now);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(a.state.attach_not_before(), None);
    // A new run of Busy answers, past the connect timeout: refused, typed.
    let mut late = side(SessionRole::Initiator);
    busy_round(&mut late, 100);
    busy_round(&mut late, 100 + u64::from(CFG.connect_timeout_ms));
    assert_eq!(late.state.ended(), Some(&SessionError::Rejected(RejectReason::Busy)));
    assert_eq!(late.state.stats.busy_retries, 1);
}

/// On a UART the byte stream outlives the links: a hello the initiator
/// sent on an earlier round is still read by the acceptor's next link.
/// Here two keyless hellos (two handshake rounds) are on the line; the
/// acceptor reads the first and issues K1, which the initiator keeps;
/// then the acceptor's link dies, its next link (fresh key K2) reads the
/// second, stale, keyless hello. The acceptor must keep accepting K1: the
/// initiator may hold it (its hello carrying K2 never arrives here).
#[test]
fn a_stale_keyless_hello_on_the_acceptors_next_link_keeps_the_key_issued() {
    const K1: ResumeKey = [1; KEY_LEN];
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    a.parts().0.attach(0, None);
    b.parts().0.attach(0, Some(K1));
    let a_prologue1 = drain(&mut a, 0);
    let b_prologue = drain(&mut b, 0);
    feed(&mut a, 1, &b_prologue);
    let a_hello1 = drain(&mut a, 1);
    // No answer within keepalive_ms: the initiator starts a new round.
    a.parts().0.on_tick(100);
    let a_prologue2 = drain(&mut a, 100);
    // The acceptor answers the first prologue; the initiator's new round
    // sends its hello on that answer.
    feed(&mut b, 101, &a_prologue1);
    let b_answer = drain(&mut b, 101);
    feed(&mut a, 102, &b_answer);
    let a_hello2 = drain(&mut a, 102);
    assert!(matches!(decode(&a_hello2[0]), WireFrame::Hello(Hello { key: None, .. })));
    // The acceptor reads the first hello: attached, K1 issued.
    feed(&mut b, 103, &a_hello1);
    let b_hello_k1 = drain(&mut b, 103);
    // Its link dies; the next one (fresh key K2) reads the rest of the
    // line: the second round's prologue and keyless hello.
    b.parts().0.link_failed(LinkError::CrcMismatch);
    b.parts().0.attach(110, Some([2; KEY_LEN]));
    let _lost = drain(&mut b, 110); // its prologue, and what follows, die on the initiator's side
    feed(&mut b, 111, &a_prologue2);
    feed(&mut b, 111, &a_hello2);
    let _lost_too = drain(&mut b, 111);
    // The initiator read K1.
    feed(&mut a, 112, &b_hello_k1);
    assert_eq!(a.state.keys.current, Some(K1));
    assert_eq!(a.state.phase, Phase::Attached);
    // Both links die; the next handshake resumes with K1.
    a.parts().0.link_failed(LinkError::CrcMismatch);
    b.parts().0.link_failed(LinkError::Closed);
    a.parts().0.attach(120, None);
    b.parts().0.attach(120, Some([3; KEY_LEN]));
    pump(&mut a, &mut b, 120);
    assert_eq!(a.state.ended(), None, "the initiator's key must still be accepted");
    assert_eq!(b.state.ended(), None);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(b.state.phase, Phase::Attached);
}

/// The same with keys: the initiator presents K1 in two rounds; the
/// acceptor reads the first, rotates to K2 (which the initiator keeps),
/// then its next link (fresh key K3) reads the second, stale, hello with
/// K1. K2 must stay accepted.
#[test]
fn a_stale_hello_with_the_previous_key_on_the_acceptors_next_link_keeps_the_latest_key() {
    const K1: ResumeKey = [1; KEY_LEN];
    const K2: ResumeKey = [2; KEY_LEN];
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    a.parts().0.attach(0, None);
    b.parts().0.attach(0, Some(K1));
    pump(&mut a, &mut b, 0);
    assert_eq!(a.state.keys.current, Some(K1));
    a.parts().0.link_failed(LinkError::Closed);
    b.parts().0.link_failed(LinkError::Closed);
    // A new handshake, the same rounds as above, presenting K1.
    a.parts().0.attach(10, None);
    b.parts().0.attach(10, Some(K2));
    let a_prologue1 = drain(&mut a, 10);
    let b_prologue = drain(&mut b, 10);
    feed(&mut a, 11, &b_prologue);
    let a_hello1 = drain(&mut a, 11);
    a.parts().0.on_tick(110);
    let a_prologue2 = drain(&mut a, 110);
    feed(&mut b, 111, &a_prologue1);
    let b_answer = drain(&mut b, 111);
    feed(&mut a, 112, &b_answer);
    let a_hello2 = drain(&mut a, 112);
    assert!(matches!(decode(&a_hello2[0]), WireFrame::Hello(Hello { key: Some(K1), .. })));
    feed(&mut b, 113, &a_hello1);
    let b_hello_k2 = drain(&mut b, 113);
    b.parts().0.link_failed(LinkError::CrcMismatch);
    b.parts().0.attach(120, Some([3; KEY_LEN]));
    let _lost = drain(&mut b, 120);
    feed(&mut b, 121, &a_prologue2);
    feed(&mut b, 121, &a_hello2);
    let _lost_too = drain(&mut b, 121);
    feed(&mut a, 122, &b_hello_k2);
    assert_eq!(a.state.keys.current, Some(K2));
    a.parts().0.link_failed(LinkError::CrcMismatch);
    b.parts().0.link_failed(LinkError::Closed);
    a.parts().0.attach(130, None);
    b.parts().0.attach(130, Some([4; KEY_LEN]));
    pump(&mut a, &mut b, 130);
    assert_eq!(a.state.ended(), None, "the initiator's key must still be accepted");
    assert_eq!(b.state.ended(), None);
    assert_eq!(a.state.phase, Phase::Attached);
    assert_eq!(b.state.phase, Phase::Attached);
}
