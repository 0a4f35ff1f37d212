//! Conduit conformance kit: executor-agnostic async checks of every
//! `conduit.*` requirement of the conduit contract, written once against the `Conduit` traits.

use futures::FutureExt;
use postcard_schema::Schema;
use postcard_schema::schema::NamedType;
use serde::{Deserialize, Serialize};
use std::future::Future;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, MsgFamily};

/// A field whose serialization fails when it is `true`: provokes encode
/// errors on the send path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Poison(pub bool);

impl Serialize for Poison {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 { Err(serde::ser::Error::custom("poisoned field")) } else { s.serialize_bool(false) }
    }
}

impl Schema for Poison {
    const SCHEMA: &'static NamedType = bool::SCHEMA;
}

/// The kit's message: borrowed text and bytes, an id, and a poison switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub struct KitMsg<'a> {
    /// Sequence number.
    pub id: u32,
    /// Borrowed text.
    pub text: &'a str,
    /// Borrowed bytes.
    #[serde(borrow)]
    pub blob: &'a [u8],
    /// Fails serialization when set.
    pub poison: Poison,
}

vox_types::msg_family!(
    /// The kit's message family.
    pub KitFamily => KitMsg<'a>
);

/// The message with `id`: text and blob derived from it.
pub fn kit_msg(id: u32, text: &str) -> KitMsg<'_> {
    KitMsg { id, text, blob: &BLOB[..(id as usize % BLOB.len())], poison: Poison(false) }
}

static BLOB: [u8; 48] = {
    let mut b = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        b[i] = i as u8 * 3 + 1;
        i += 1;
    }
    b
};

/// A peer that sends raw encoded messages (after doing its own setup).
pub trait RawPeer {
    /// Delivers `encoded` as if it were one message's encoding.
    fn send_raw(&mut self, encoded: &[u8]) -> impl Future<Output = ()>;
}

/// Makes fresh conduit pairs for the kit.
pub trait ConduitHarness {
    /// The conduit under test.
    type Conduit: Conduit<Msg = KitFamily>;
    /// A raw peer of that conduit.
    type Raw: RawPeer;

    /// A fresh connected pair (A, B).
    fn pair(&mut self) -> impl Future<Output = (Self::Conduit, Self::Conduit)>;

    /// A conduit whose peer sends raw bytes.
    fn pair_with_raw_peer(&mut self) -> impl Future<Output = (Self::Conduit, Self::Raw)>;

    /// At most this many messages are in flight before `reserve` waits.
    fn capacity_bound(&self) -> usize;

    /// Largest message encoding the conduit carries.
    fn max_message_len(&self) -> usize;
}

type Tx<H> = <<H as ConduitHarness>::Conduit as Conduit>::Tx;
type Rx<H> = <<H as ConduitHarness>::Conduit as Conduit>::Rx;

/// Sends `msg` (reserve, then send).
pub async fn send_msg<T: ConduitTx<Msg = KitFamily>>(tx: &T, msg: KitMsg<'_>) {
    let permit = tx.reserve().await.unwrap_or_else(|e| panic!("reserve: {e}"));
    permit.send(msg).unwrap_or_else(|e| panic!("send: {e}"));
}

/// Receives one message and checks it equals `expected`.
pub async fn expect_msg<R: ConduitRx<Msg = KitFamily>>(rx: &mut R, expected: &KitMsg<'_>) {
    match rx.recv().await {
        Ok(Some(m)) => assert_eq!(m.get::<KitFamily>(), expected),
        Ok(None) => panic!("end-of-stream, expected message {}", expected.id),
        Err(e) => panic!("error {e}, expected message {}", expected.id),
    }
}

async fn halves<H: ConduitHarness>(h: &mut H) -> (Tx<H>, Rx<H>, Tx<H>, Rx<H>) {
    let (a, b) = h.pair().await;
    let (atx, arx) = a.split();
    let (btx, brx) = b.split();
    (atx, arx, btx, brx)
}

/// Every check, each on a fresh pair.
pub async fn check_all<H: ConduitHarness>(h: &mut H) {
    both_ways_on_split_halves(h).await;
    reserve_is_backpressure(h).await;
    failed_send_sends_nothing(h).await;
    dropped_permit_sends_nothing(h).await;
    received_fields_borrow_the_frame(h).await;
    bad_input_is_a_typed_error(h).await;
}

// r[verify conduit.split]
// r[verify conduit.recv]
/// Halves used concurrently, both directions; each message arrives once,
/// in order; after a graceful close the peer gets `Ok(None)`, every time.
pub async fn both_ways_on_split_halves<H: ConduitHarness>(h: &mut H) {
    let (atx, mut arx, btx, mut brx) = halves(h).await;
    let n = (3 * h.capacity_bound() + 20).min(2_000) as u32;
    let a_send = async {
        for id in 0..n {
            send_msg(&atx, kit_msg(id, "from a")).await;
        }
        atx.close().await.unwrap();
    };
    let b_send = async {
        for id in 0..n {
            send_msg(&btx, kit_msg(id, "from b")).await;
        }
        btx
    };
    let a_recv = async {
        for id in 0..n {
            expect_msg(&mut arx, &kit_msg(id, "from b")).await;
        }
    };
    let b_recv = async {
        for id in 0..n {
            expect_msg(&mut brx, &kit_msg(id, "from a")).await;
        }
        for _ in 0..3 {
            assert!(matches!(brx.recv().await, Ok(None)), "end-of-stream after close, and it stays");
        }
    };
    let (_, _btx, _, _) = futures::join!(a_send, b_send, a_recv, b_recv);
}

// r[verify conduit.permit]
/// `reserve` waits when the conduit is full and completes after the peer
/// takes a message.
pub async fn reserve_is_backpressure<H: ConduitHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h).await;
    let bound = h.capacity_bound();
    let mut sent = 0u32;
    while let Some(permit) = atx.reserve().now_or_never() {
        permit.unwrap().send(kit_msg(sent, "fill")).unwrap();
        sent += 1;
        assert!(sent as usize <= bound, "reserve never waited: unbounded");
    }
    assert!(sent >= 1);
    expect_msg(&mut brx, &kit_msg(0, "fill")).await;
    let permit = atx.reserve().await.expect("room after the peer received");
    permit.send(kit_msg(sent, "fill")).unwrap();
    for id in 1..=sent {
        expect_msg(&mut brx, &kit_msg(id, "fill")).await;
    }
}

// r[verify conduit.permit.send]
/// A send that fails (encoding error, message too large) sends nothing and
/// returns the capacity; a good send commits exactly one message.
pub async fn failed_send_sends_nothing<H: ConduitHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h).await;
    let huge = "x".repeat(h.max_message_len() + 1);
    for round in 0..(2 * h.capacity_bound()).min(500) as u32 {
        let permit = atx.reserve().now_or_never().expect("capacity came back").unwrap();
        let result = if round % 2 == 0 {
            permit.send(KitMsg { poison: Poison(true), ..kit_msg(round, "poisoned") })
        } else {
            permit.send(kit_msg(round, &huge))
        };
        let err = result.expect_err("this send must fail");
        assert!(!err.to_string().is_empty());
    }
    send_msg(&atx, kit_msg(7, "after failures")).await;
    expect_msg(&mut brx, &kit_msg(7, "after failures")).await;
    assert!(brx.recv().now_or_never().is_none(), "nothing else was sent");
}

// r[verify conduit.permit.drop]
/// Dropped permits send nothing and return their capacity.
pub async fn dropped_permit_sends_nothing<H: ConduitHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h).await;
    for _ in 0..(2 * h.capacity_bound()).min(500) {
        drop(atx.reserve().now_or_never().expect("capacity came back").unwrap());
    }
    send_msg(&atx, kit_msg(1, "marker")).await;
    expect_msg(&mut brx, &kit_msg(1, "marker")).await;
    assert!(brx.recv().now_or_never().is_none(), "nothing else was sent");
}

// r[verify conduit.zero-copy]
/// Received `&str` and `&[u8]` fields point into the received frame.
pub async fn received_fields_borrow_the_frame<H: ConduitHarness>(h: &mut H) {
    let (atx, _arx, _btx, mut brx) = halves(h).await;
    send_msg(&atx, kit_msg(40, "borrowed text")).await;
    let got = brx.recv().await.unwrap().unwrap();
    let msg = got.get::<KitFamily>();
    let frame = got.backing().as_bytes().as_ptr_range();
    assert!(frame.contains(&msg.text.as_ptr()), "text is not in the frame");
    assert!(frame.contains(&msg.blob.as_ptr()), "blob is not in the frame");
    let mut direct = [0u8; 128];
    let wire = postcard::to_slice(&kit_msg(40, "borrowed text"), &mut direct).unwrap();
    assert_eq!(got.backing().as_bytes(), &wire[..], "frame bytes are postcard::to_slice output");
}

// r[verify conduit.bad-input]
/// Bytes that are not a message are a typed error naming the family; the
/// next good message is still received.
pub async fn bad_input_is_a_typed_error<H: ConduitHarness>(h: &mut H) {
    let (conduit, mut raw) = h.pair_with_raw_peer().await;
    let (_tx, mut rx) = conduit.split();
    let mut good = [0u8; 128];
    let good = postcard::to_slice(&kit_msg(3, "good"), &mut good).unwrap().to_vec();
    for garbage in
        [&[0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..], &[], &good[..good.len() - 1], &[&good[..], &[0]].concat()]
    {
        raw.send_raw(garbage).await;
        match rx.recv().await {
            Err(e) => assert!(e.to_string().contains(KitFamily::NAME), "error names the family: {e}"),
            Ok(m) => panic!("garbage {garbage:?} decoded as {:?}", m.map(|m| m.get::<KitFamily>().id)),
        }
    }
    raw.send_raw(&good).await;
    expect_msg(&mut rx, &kit_msg(3, "good")).await;
}
