//! Outbound tests: the peer's window, replay after a reattachment, acks of frames never sent, close.

use super::*;

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

/// The sequence numbers of the `Data` frames among `frames` (whole
/// counters: the tests' sessions are young).
fn data_seqs(frames: &[Vec<u8>]) -> Vec<u32> {
    frames
        .iter()
        .filter_map(|f| match decode(f) {
            WireFrame::Data { seq: WireSeq::Full(seq), .. } => Some(seq),
            WireFrame::Data { seq: WireSeq::Low(seq), .. } => Some(u32::from(seq)),
            _ => None,
        })
        .collect()
}

/// Attaches `a` to an acceptor that answers with `window` and expects
/// `next_expected` (frames fed directly: no acceptor session).
fn attach_with_window(a: &mut Store, now: Instant, next_expected: u32, window: Window) {
    a.parts().0.attach(now, None);
    // Our prologue and hello: not looked at.
    drain(a, now);
    let mut prologue = [0u8; PROLOGUE_MAX_LEN];
    let n = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, FP).encode(&mut prologue).unwrap();
    let hello = WireFrame::Hello(Hello { key: Some(KEY), next_expected, window });
    let mut buf = std::vec![0; hello.encoded_len()];
    hello.encode(&mut buf).unwrap();
    feed(a, now, &[prologue[..n].to_vec(), buf]);
    assert_eq!(a.state.phase, Phase::Attached);
}

#[test]
// r[verify stable.flow.window]
fn data_never_goes_beyond_the_peers_byte_window_after_acks_and_replays() {
    let mut a = side(SessionRole::Initiator);
    // The peer allows many messages but 25 bytes: two of 10 bytes.
    attach_with_window(&mut a, 0, 0, Window { msgs: 10, bytes: 25 });
    for i in 0..5u8 {
        assert!(push(&mut a, &[i; 10]));
    }
    assert_eq!(data_seqs(&drain(&mut a, 1)), [0, 1]);
    // Frame 0 acked, 30 bytes from its end (stream offset 10): 1 is out,
    // 2 and 3 fit (bytes 20..40), 4 does not.
    feed(&mut a, 2, &[ack_frame(1, 0, Window { msgs: 10, bytes: 30 })]);
    assert_eq!(data_seqs(&drain(&mut a, 2)), [2, 3]);
    // The link dies with 1..=3 unacked; the peer, resuming, expects 1
    // (the oldest kept). Limits never shrink: 1, 2 and 3 are replayed,
    // within the 40 bytes granted before; 4 still waits.
    a.parts().0.link_failed(LinkError::Closed);
    attach_with_window(&mut a, 3, 1, Window { msgs: 10, bytes: 5 });
    assert_eq!(data_seqs(&drain(&mut a, 3)), [1, 2, 3]);
    assert_eq!(a.state.stats.replays, 3);
    // Acked with room for one more: 4 goes.
    feed(&mut a, 4, &[ack_frame(4, 0, Window { msgs: 10, bytes: 10 })]);
    assert_eq!(data_seqs(&drain(&mut a, 4)), [4]);
    // The link dies again, the peer got 4 (the hello acks it) and grants
    // 10 bytes after it: of two more messages, one goes.
    for i in 5..7u8 {
        assert!(push(&mut a, &[i; 10]));
    }
    a.parts().0.link_failed(LinkError::Closed);
    attach_with_window(&mut a, 5, 5, Window { msgs: 10, bytes: 10 });
    assert_eq!(data_seqs(&drain(&mut a, 5)), [5]);
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

/// Both rings hold 300 messages: more than a low byte can name.
type Wide = SessionStorage<4096, 300, 4096, 300>;

/// The `Data` frames among `frames`: (seq, ack, window carried).
fn data_fields(frames: &[Vec<u8>]) -> Vec<(WireSeq, WireSeq, bool)> {
    frames
        .iter()
        .filter_map(|f| match decode(f) {
            WireFrame::Data { seq, ack, window, .. } => Some((seq, ack, window.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
// r[verify core.wire-bytes]
fn data_counters_are_low_bytes_within_their_span_and_whole_beyond_it() {
    let (mut a, mut b) =
        (Box::new(Wide::new(SessionRole::Initiator, CFG, FP)), Box::new(Wide::new(SessionRole::Acceptor, CFG, FP)));
    attach(&mut a, &mut b, 0);
    for i in 0..200u32 {
        assert!(push(&mut a, &i.to_le_bytes()));
    }
    let frames = drain(&mut a, 1);
    let fields = data_fields(&frames);
    assert_eq!(fields.len(), 200);
    for (i, (seq, ack, _)) in fields.iter().enumerate() {
        // Frame i has i + 1 frames outstanding: low while that is <= 128.
        let expected = if i < 128 { WireSeq::Low(i as u8) } else { WireSeq::Full(i as u32) };
        assert_eq!(*seq, expected, "frame {i}");
        // b may send up to 300 frames past a's ack: more than 255.
        assert_eq!(*ack, WireSeq::Full(0), "frame {i}");
    }
    feed(&mut b, 1, &frames);
    let got = read_all(&mut b);
    assert_eq!(got, (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect::<Vec<_>>(), "all, in order");
    assert_eq!((b.state.stats.gaps, b.state.stats.duplicates), (0, 0));
}

#[test]
// r[verify core.wire-bytes]
fn a_request_reply_loop_sends_three_byte_headers_and_the_window_only_when_credit_runs_low() {
    let (mut a, mut b) = (side(SessionRole::Initiator), side(SessionRole::Acceptor));
    attach(&mut a, &mut b, 0);
    let (mut carried, mut headers) = (0, 0);
    let rounds = 60u32;
    for i in 0..rounds {
        let now = 1 + u64::from(i);
        // a's request, b's reply, each read at once.
        for turn in 0..2 {
            let (from, to) = if turn == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
            assert!(push(from, &[i as u8; 5]));
            let frames = drain(from, now);
            for (seq, ack, window) in data_fields(&frames) {
                assert!(matches!((seq, ack), (WireSeq::Low(_), WireSeq::Low(_))), "round {i}");
                carried += usize::from(window);
            }
            headers += frames.iter().filter(|f| f[0] & 0x80 != 0).map(|f| f.len() - 5).sum::<usize>();
            feed(to, now, &frames);
            assert_eq!(read_all(to), [std::vec![i as u8; 5]], "round {i}");
        }
    }
    let datas = 2 * rounds as usize;
    std::println!("{carried} of {datas} data frames carried the window; {headers} header bytes");
    // The receive ring holds 3 messages: the window goes out when the
    // peer's credit falls to 1, about every second frame.
    assert!(carried * 2 <= datas + 2, "{carried} of {datas} carried the window");
    assert!(headers <= 3 * datas + 3 * carried, "3 B + the window when carried");
    assert_eq!((a.state.stats.gaps, b.state.stats.gaps), (0, 0));
    assert_eq!((a.state.stats.beyond_window, b.state.stats.beyond_window), (0, 0));
}
