//! Timer tests: delayed acks, keepalives, the silence timeout, and the next deadline.

use super::*;

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

/// Keepalive coalescing: a peer's keepalive that arrives when ours is due
/// within a quarter period takes ours out at once (one wake-up for both);
/// earlier than that it does not; and a request never gets a standalone
/// ack this way (its reply carries the ack).
// r[verify core.deadline]
#[test]
fn a_keepalive_arriving_near_our_own_takes_ours_out_and_requests_wait_for_replies() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    // CFG: keepalive 100 ms. b's keepalive at 100; a's own would be due at
    // 100 too (both last sent at 0).
    b.parts().0.on_tick(100);
    let keepalive = drain(&mut b, 100);
    assert_eq!(keepalive.len(), 1);
    feed(&mut a, 60, &keepalive);
    assert!(drain(&mut a, 60).is_empty(), "60 ms: ours is 40 ms away, more than a quarter period");
    feed(&mut a, 80, &keepalive);
    let answer = drain(&mut a, 80);
    assert_eq!(answer.len(), 1, "80 ms: ours was due within 25 ms, so it goes now");
    assert!(matches!(decode(&answer[0]), WireFrame::Ack { .. }));
    assert_eq!(a.parts().0.next_deadline(), 180, "the next keepalive is a period after this one");
    // A request 90 ms after a's last frame: no frame until the reply.
    feed(&mut b, 100, &answer);
    let _ = drain(&mut b, 100);
    assert!(push(&mut b, b"request"));
    let request = drain(&mut b, 170);
    feed(&mut a, 170, &request);
    assert!(drain(&mut a, 170).is_empty(), "a request is answered by the reply, not by a keepalive");
    assert_eq!(read_all(&mut a), [b"request".to_vec()]);
    assert!(push(&mut a, b"reply"));
    let reply = drain(&mut a, 171);
    assert_eq!(reply.len(), 1, "one frame: the reply, carrying the ack");
}

/// The linger time and the self-stall count start on the first tick after
/// their condition holds: until then their deadline is now.
// r[verify core.deadline]
#[test]
fn the_linger_and_a_self_stall_start_on_the_first_tick_after_they_begin() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    // b sends what fills a's receive ring (3 entries), unread: a's window
    // is shut; a's writer then waits on itself.
    for i in 0..3u8 {
        assert!(push(&mut b, &[i; 10]));
    }
    pump(&mut a, &mut b, 1);
    a.parts().0.note_writer_waiting();
    assert_eq!(a.parts().0.next_deadline(), 0, "the stall's start is taken at once");
    a.parts().0.on_tick(2);
    assert_eq!(a.state.tx.stalled_since.get(), Some(2));
    assert!(a.parts().0.next_deadline() > 2, "then the other timers come first");
    // Keepalives keep the link alive meanwhile.
    for t in [100, 200, 300, 400] {
        a.parts().0.on_tick(t);
        b.parts().0.on_tick(t);
        pump(&mut a, &mut b, t);
    }
    assert_eq!(a.state.stats.self_stalls, 0);
    a.parts().0.on_tick(402);
    assert_eq!(a.state.stats.self_stalls, 1, "counted timeout_ms after its start");
    // Reading the messages ends the stall; a finished session lingers.
    read_all(&mut a);
    a.parts().0.close_tx();
    a.parts().0.drop_receiver();
    pump(&mut a, &mut b, 403);
    assert!(a.state.finished() && !a.state.complete, "b has not finished");
    assert_eq!(a.state.finished_at.get(), None);
    assert_eq!(a.parts().0.next_deadline(), 0, "the linger's start is taken at once");
    a.parts().0.on_tick(404);
    assert_eq!(a.state.finished_at.get(), Some(404));
    assert!(a.parts().0.next_deadline() > 404);
}
