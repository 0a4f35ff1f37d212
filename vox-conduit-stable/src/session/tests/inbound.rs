//! Inbound tests: the window granted, acks while the ring is full, gaps, duplicates, release order, frames that do not decode.

use super::*;

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
    assert!(matches!(decode(&more[0]), WireFrame::Data { seq: WireSeq::Low(3), .. }));
    feed(&mut b, 1, &more);
    pump(&mut a, &mut b, 1);
    let got: Vec<Vec<u8>> = (0..2).flat_map(|_| read_all(&mut b)).collect();
    assert_eq!(got.len(), 3);
    pump(&mut a, &mut b, 2);
    assert_eq!(read_all(&mut b), std::vec![std::vec![4u8; 10]]);
}

#[test]
// r[verify stable.flow.no-stall]
fn a_delivery_that_closes_the_heard_window_with_room_left_updates_it_at_once() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    // a heard a window of 3 messages. It sends two; b reads and releases
    // both while a may still send one more: no update is owed yet.
    for i in 0..2u8 {
        assert!(push(&mut a, &[i; 10]));
    }
    let frames = drain(&mut a, 1);
    feed(&mut b, 1, &frames);
    assert_eq!(read_all(&mut b).len(), 2);
    assert!(drain(&mut b, 1).is_empty(), "the window a heard is still open");
    // The third uses the last of that credit while b's ring has room: the
    // update goes at once (same `now`), not when the ack delay ends.
    assert!(push(&mut a, &[2; 10]));
    let frames = drain(&mut a, 1);
    feed(&mut b, 1, &frames);
    let update = drain(&mut b, 1);
    assert_eq!(update.len(), 1);
    let WireFrame::Ack { window, .. } = decode(&update[0]) else { panic!("ack expected") };
    assert_eq!(window.msgs, 2, "the two entries the releases freed");
    feed(&mut a, 1, &update);
    assert!(push(&mut a, &[3; 10]), "a may send again");
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
fn a_frame_that_does_not_decode_after_the_handshake_says_why() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    feed(&mut a, 1, &[std::vec![9, 0]]);
    assert_eq!(a.state.take_detach(), Some(Detach::Malformed(FrameError::Malformed)));
    attach(&mut a, &mut b, 2);
    feed(&mut a, 3, &[std::vec![0x80, 0]]);
    assert_eq!(a.state.take_detach(), Some(Detach::Malformed(FrameError::Truncated)));
}
