//! Link conformance kit: executor-agnostic async checks of every `link.*`
//! rule of the link contract (the `link.*` requirements), written once against the `Link` traits.
//!
//! An implementation provides a [`LinkHarness`]; [`check_all`] runs every
//! check on fresh pairs. The checks use only `futures` combinators, so they
//! run under tokio, `futures::executor` or embassy alike.

use futures::FutureExt;
use vox_types::{Backing, Link, LinkError, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

/// Makes fresh link pairs for the kit.
pub trait LinkHarness {
    /// The link under test.
    type Link: Link;

    /// A fresh connected pair (A, B).
    fn pair(&mut self) -> (Self::Link, Self::Link);

    /// A pair whose A→B direction breaks after `n` payloads: B receives
    /// those `n`, then an Rx error.
    fn failing_pair(&mut self, n: u32) -> (Self::Link, Self::Link);

    /// At most this many payloads can be committed and unreceived before
    /// `reserve` waits.
    fn capacity_bound(&self) -> usize;

    /// Whether the capacity is exact (no concurrent runner drains the
    /// queue), so refilling after a drain must reach the same count.
    fn exact_capacity(&self) -> bool;
}

type Tx<H> = <<H as LinkHarness>::Link as Link>::Tx;
type Rx<H> = <<H as LinkHarness>::Link as Link>::Rx;

fn halves<H: LinkHarness>(h: &mut H) -> (Tx<H>, Rx<H>, Tx<H>, Rx<H>) {
    let (a, b) = h.pair();
    let (atx, arx) = a.split();
    let (btx, brx) = b.split();
    (atx, arx, btx, brx)
}

/// Sends `bytes` as one payload.
pub async fn send<T: LinkTx>(tx: &T, bytes: &[u8]) -> Result<(), LinkError> {
    let permit = tx.reserve().await?;
    let mut slot = permit.alloc(bytes.len())?;
    slot.as_mut_slice().copy_from_slice(bytes);
    slot.commit();
    Ok(())
}

/// Receives one payload, panicking on end-of-stream or error.
pub async fn recv_payload<R: LinkRx>(rx: &mut R) -> Backing {
    match rx.recv().await {
        Ok(Some(b)) => b,
        other => panic!("expected a payload, got {other:?}"),
    }
}

/// A payload of `len` bytes derived from `seq`, so reordering, merging or
/// splitting shows up as a content mismatch.
pub fn pattern(seq: u32, len: usize) -> std::vec::Vec<u8> {
    (0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8).collect()
}

/// Commits one-byte payloads without waiting until `reserve` would wait;
/// returns how many were committed.
fn fill<T: LinkTx>(tx: &T, bound: usize, first_seq: u32) -> usize {
    let mut n = 0;
    loop {
        match tx.reserve().now_or_never() {
            None => return n,
            Some(Ok(p)) => {
                let mut slot = p.alloc(1).expect("alloc 1 byte");
                slot.as_mut_slice()[0] = (first_seq as usize + n) as u8;
                slot.commit();
                n += 1;
                assert!(n <= bound, "reserve never waited after {n} payloads: link is unbounded");
            }
            Some(Err(e)) => panic!("reserve failed on a healthy link: {e}"),
        }
    }
}

/// Every check, each on a fresh pair.
pub async fn check_all<H: LinkHarness>(h: &mut H) {
    message_boundaries(h).await;
    empty_payload(h).await;
    order_under_backpressure(h).await;
    reserve_waits_when_full(h).await;
    cancelled_reserve_leaks_nothing(h).await;
    dropped_permit_and_slot_publish_nothing(h).await;
    alloc_len_exact_or_too_large(h).await;
    close_delivers_then_eof(h).await;
    rx_error_is_final(h).await;
}

// r[verify link.message]
// r[verify link.commit]
/// Payloads of many sizes arrive one for one, with exactly their bytes.
pub async fn message_boundaries<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let max = atx.max_payload();
    let sizes = [1usize, 2, 3, 17, 254, 255, 256, max / 2, max - 1, max];
    let sizes: std::vec::Vec<usize> = sizes.into_iter().filter(|&s| s <= max).collect();
    let recv = async {
        for (i, &len) in sizes.iter().enumerate() {
            let got = recv_payload(&mut brx).await;
            assert_eq!(got.as_bytes(), &pattern(i as u32, len)[..], "payload {i} of {len} bytes");
        }
    };
    let send_all = async {
        for (i, &len) in sizes.iter().enumerate() {
            send(&atx, &pattern(i as u32, len)).await.unwrap();
        }
    };
    futures::join!(send_all, recv);
}

// r[verify link.empty]
/// A zero-length payload is a payload, between two others.
pub async fn empty_payload<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    send(&atx, b"x").await.unwrap();
    send(&atx, b"").await.unwrap();
    send(&atx, b"y").await.unwrap();
    assert_eq!(recv_payload(&mut brx).await.as_bytes(), b"x");
    assert!(recv_payload(&mut brx).await.is_empty());
    assert_eq!(recv_payload(&mut brx).await.as_bytes(), b"y");
}

// r[verify link.order]
// r[verify link.split]
/// Many more payloads than the link holds, sender and receiver running
/// concurrently on their own halves: all arrive, in order, once.
pub async fn order_under_backpressure<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let max = atx.max_payload().min(300);
    let count = (3 * h.capacity_bound() + 50).min(5_000) as u32;
    let send_all = async {
        for seq in 0..count {
            send(&atx, &pattern(seq, seq as usize % (max + 1))).await.unwrap();
        }
    };
    let recv_all = async {
        for seq in 0..count {
            let got = recv_payload(&mut brx).await;
            assert_eq!(got.as_bytes(), &pattern(seq, seq as usize % (max + 1))[..], "payload {seq}");
        }
    };
    futures::join!(send_all, recv_all);
}

// r[verify link.reserve]
/// `reserve` is the backpressure point: it waits when the link is full and
/// completes once the receiver takes a payload.
pub async fn reserve_waits_when_full<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let n = fill(&atx, h.capacity_bound(), 0);
    assert!(n >= 1, "a fresh link accepts at least one payload");
    if h.exact_capacity() {
        assert!(atx.reserve().now_or_never().is_none(), "reserve must wait on a full link");
    }
    let first = recv_payload(&mut brx).await;
    assert_eq!(first.as_bytes(), &[0]);
    drop(first);
    let permit = atx.reserve().await.expect("reserve after the receiver made room");
    drop(permit);
    for i in 1..n {
        assert_eq!(recv_payload(&mut brx).await.as_bytes(), &[i as u8]);
    }
}

// r[verify link.reserve.cancel]
/// Dropping pending `reserve` futures publishes nothing and leaks no capacity.
pub async fn cancelled_reserve_leaks_nothing<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let bound = h.capacity_bound();
    let n1 = fill(&atx, bound, 0);
    for _ in 0..(2 * bound).min(1000) {
        // Polled once and dropped: pending (cancelled) when the link is
        // full; a concurrent runner may have made room, then it is a permit
        // dropped unused. Neither may publish anything.
        let polled = atx.reserve().now_or_never();
        if h.exact_capacity() {
            assert!(polled.is_none(), "still full");
        }
    }
    for i in 0..n1 {
        assert_eq!(recv_payload(&mut brx).await.as_bytes(), &[i as u8]);
    }
    assert!(brx.recv().now_or_never().is_none(), "cancelled reserves published nothing");
    let n2 = fill(&atx, bound, n1 as u32);
    if h.exact_capacity() {
        assert_eq!(n2, n1, "capacity after cancelled reserves");
    }
    assert!(n2 >= 1);
    for i in 0..n2 {
        assert_eq!(recv_payload(&mut brx).await.as_bytes(), &[(n1 + i) as u8]);
    }
}

// r[verify link.permit.drop]
/// Dropped permits and uncommitted slots publish nothing and return their
/// capacity, however many times it happens.
pub async fn dropped_permit_and_slot_publish_nothing<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    for round in 0..(2 * h.capacity_bound()).min(2000) {
        let permit = atx.reserve().now_or_never().expect("capacity came back").unwrap();
        if round % 2 == 0 {
            drop(permit);
        } else {
            let mut slot = permit.alloc(4).unwrap();
            slot.as_mut_slice().copy_from_slice(b"junk");
            drop(slot);
        }
    }
    send(&atx, b"marker").await.unwrap();
    assert_eq!(recv_payload(&mut brx).await.as_bytes(), b"marker");
    assert!(brx.recv().now_or_never().is_none(), "nothing else was published");
}

// r[verify link.alloc.len]
/// `alloc(len)` gives exactly `len` bytes up to the maximum, and a typed
/// error above it that returns the permit's capacity.
pub async fn alloc_len_exact_or_too_large<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let max = atx.max_payload();
    for _ in 0..(2 * h.capacity_bound()).min(2000) {
        let err = atx.reserve().now_or_never().expect("capacity came back").unwrap().alloc(max + 1);
        match err {
            Err(LinkError::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
            other => panic!("alloc(max + 1) gave {:?}", other.map(|_| ())),
        }
    }
    for len in [0, 1, max] {
        let mut slot = atx.reserve().await.unwrap().alloc(len).unwrap();
        assert_eq!(slot.as_mut_slice().len(), len);
        slot.as_mut_slice().copy_from_slice(&pattern(len as u32, len));
        slot.commit();
        assert_eq!(recv_payload(&mut brx).await.as_bytes(), &pattern(len as u32, len)[..]);
    }
}

// r[verify link.close]
// r[verify link.rx.eof]
/// After a graceful close the peer gets every earlier payload, then
/// `Ok(None)` on every later call.
pub async fn close_delivers_then_eof<H: LinkHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h);
    let n = h.capacity_bound().clamp(1, 4) as u32;
    for seq in 0..n {
        send(&atx, &pattern(seq, 5)).await.unwrap();
    }
    let closing = atx.close();
    let receiving = async {
        for seq in 0..n {
            assert_eq!(recv_payload(&mut brx).await.as_bytes(), &pattern(seq, 5)[..]);
        }
    };
    let (closed, ()) = futures::join!(closing, receiving);
    closed.unwrap();
    for _ in 0..3 {
        assert!(matches!(brx.recv().await, Ok(None)), "end-of-stream is sticky");
    }
}

// r[verify link.rx.error]
/// After an Rx error no further payload is delivered.
pub async fn rx_error_is_final<H: LinkHarness>(h: &mut H) {
    let (a, b) = h.failing_pair(3);
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    let send_some = async {
        for seq in 0..6u32 {
            if send(&atx, &pattern(seq, 8)).await.is_err() {
                break;
            }
        }
        atx
    };
    let receive = async {
        let mut seq = 0u32;
        loop {
            match brx.recv().await {
                Ok(Some(p)) => {
                    assert_eq!(p.as_bytes(), &pattern(seq, 8)[..], "payload {seq} before the error");
                    seq += 1;
                }
                Ok(None) => panic!("end-of-stream instead of an Rx error"),
                Err(_) => break seq,
            }
        }
    };
    let (_atx, delivered) = futures::join!(send_some, receive);
    assert_eq!(delivered, 3, "payloads before the break");
    for _ in 0..3 {
        match brx.recv().now_or_never() {
            Some(Err(_)) | Some(Ok(None)) => {}
            Some(Ok(Some(p))) => panic!("payload {p:?} after an Rx error"),
            None => panic!("recv after an Rx error must fail at once, not wait"),
        }
    }
}
