//! Handshake tests: prologues, hellos, resume keys, refusals, `Busy`, stale hellos on a later link.

use super::*;
use vox_types::PrologueError;

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

// r[verify stable.refusal]
#[test]
fn a_prologue_of_an_unknown_mode_is_answered_and_refused() {
    let mut b = side(SessionRole::Acceptor);
    b.parts().0.attach(0, Some(KEY));
    let mut bytes = [0u8; 32];
    let n = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, FP).encode(&mut bytes).unwrap();
    bytes[5] = 7; // the mode byte: no such mode
    feed(&mut b, 0, &[bytes[..n].to_vec()]);
    let answer = drain(&mut b, 0);
    assert!(answer.iter().any(|f| f.starts_with(&PROLOGUE_MAGIC)), "our prologue goes out first");
    assert_eq!(b.state.ended(), Some(&SessionError::Refused(HandshakeError::Prologue(PrologueError::UnknownMode(7)))));
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
