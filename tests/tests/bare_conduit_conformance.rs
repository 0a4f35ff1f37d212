//! The conduit conformance kit on `BareConduit`, over the in-memory link
//! and over the framed link (in-memory byte pipes), plus the bare-only
//! rules: exact postcard bytes, death with the link, prologue refusals.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::FutureExt;
use vox_conduit_bare::{BareConduit, ConnectError, RecvError, SendError};
use vox_link_embedded::{MemoryLink, MemoryLinkPair, sim::FaultPlan};
use vox_tests::bare_harness::BareHarness;
use vox_tests::conduit_kit::{self, KitFamily, kit_msg, send_msg};
use vox_tests::framed_harness::{self, MTU, spawn_thread, spawn_tokio};
use vox_types::{
    Conduit, ConduitError, ConduitMode, ConduitRx, ConduitTx, ConduitTxPermit, ErrorKind, HandshakeError, Link,
    LinkError, MsgFamily, PROTOCOL_VERSION, Prologue, PrologueError, SchemaFingerprint, SessionRole, exchange_prologue,
};

type Mem = MemoryLink<CriticalSectionRawMutex, 4, 256>;
type MemPair = MemoryLinkPair<CriticalSectionRawMutex, 4, 256>;

fn memory_harness() -> BareHarness<Mem, impl FnMut() -> (Mem, Mem)> {
    BareHarness::new(MemPair::new_shared, 4, 256)
}

#[test]
fn kit_on_memory_link_under_futures_executor() {
    futures::executor::block_on(conduit_kit::check_all(&mut memory_harness()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_on_memory_link_under_tokio() {
    conduit_kit::check_all(&mut memory_harness()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn kit_on_framed_link_over_pipes() {
    let mut h = BareHarness::new(|| framed_harness::pipe_pair(spawn_tokio, None), framed_harness::SLOTS, MTU);
    conduit_kit::check_all(&mut h).await;
}

#[test]
fn kit_on_framed_link_runners_on_threads() {
    let bound = 2 * framed_harness::SLOTS + (512 + framed_harness::PIPE) / 7 + 16;
    let mut h = BareHarness::new(|| framed_harness::pipe_pair(spawn_thread, None), bound, MTU);
    futures::executor::block_on(conduit_kit::check_all(&mut h));
}

/// A connected pair whose A→B direction dies after the prologue and two
/// payloads.
async fn connected_with_a_to_b_killed_after_3()
-> (BareConduit<Mem, KitFamily>, BareConduit<Mem, KitFamily>, std::sync::Arc<MemPair>) {
    let ((a, b), pair) = MemPair::new_shared_with_faults(FaultPlan::kill_after(3), FaultPlan::NONE);
    let (a, b) =
        futures::join!(BareConduit::connect(a, SessionRole::Initiator), BareConduit::connect(b, SessionRole::Acceptor));
    (a.unwrap(), b.unwrap(), pair)
}

async fn connected() -> (BareConduit<Mem, KitFamily>, BareConduit<Mem, KitFamily>) {
    let (a, b) = MemPair::new_shared();
    let (a, b) =
        futures::join!(BareConduit::connect(a, SessionRole::Initiator), BareConduit::connect(b, SessionRole::Acceptor));
    (a.unwrap(), b.unwrap())
}

// r[verify bare.postcard]
#[test]
fn wire_bytes_are_exactly_postcard_to_slice() {
    futures::executor::block_on(async {
        let (a, b) = MemPair::new_shared();
        let (atx, mut arx) = a.split();
        let (btx, brx) = b.split();
        let b_link = BareConduit::<_, KitFamily>::connect(ReassembledLink(btx, brx), SessionRole::Acceptor);
        let local = Prologue::new(ConduitMode::Bare, SessionRole::Initiator, KitFamily::FINGERPRINT);
        let (raw, conduit) = futures::join!(exchange_prologue(&atx, &mut arx, &local), b_link);
        raw.unwrap();
        let (ctx, _crx) = conduit.unwrap().split();
        for id in [0u32, 1, 300, 70_000] {
            let msg = kit_msg(id, "exact bytes ✓");
            send_msg(&ctx, msg.clone()).await;
            let got = vox_types::LinkRx::recv(&mut arx).await.unwrap().unwrap();
            let mut buf = [0u8; 256];
            assert_eq!(got.as_bytes(), postcard::to_slice(&msg, &mut buf).unwrap());
        }
    });
}

/// A link rebuilt from its halves (to keep one end raw in a test).
struct ReassembledLink<T, R>(T, R);
impl<T: vox_types::LinkTx, R: vox_types::LinkRx> Link for ReassembledLink<T, R> {
    type Tx = T;
    type Rx = R;
    fn split(self) -> (T, R) {
        (self.0, self.1)
    }
}

// r[verify bare.dies]
// r[verify found.error-kind]
#[test]
fn conduit_reports_the_link_failure_and_stays_dead() {
    futures::executor::block_on(async {
        // The A→B direction dies after the prologue and two messages.
        let (a, b, _pair) = connected_with_a_to_b_killed_after_3().await;
        let (atx, _arx) = a.split();
        let (btx, mut brx) = b.split();
        for id in 0..3 {
            send_msg(&atx, kit_msg(id, "x")).await; // the third is lost with the link
        }
        assert!(matches!(atx.reserve().await, Err(SendError::Link(LinkError::Reset))));
        assert!(matches!(atx.reserve().await, Err(SendError::Link(LinkError::Reset))), "stays dead");
        for id in 0..2 {
            conduit_kit::expect_msg(&mut brx, &kit_msg(id, "x")).await;
        }
        for _ in 0..3 {
            assert!(matches!(brx.recv().await, Err(RecvError::Link(LinkError::Reset))));
        }
        assert!(matches!(btx.reserve().await, Err(SendError::Link(LinkError::Reset))));
        // What a layer above any conduit sees: the link is lost.
        assert_eq!(btx.reserve().await.err().map(|e| e.kind()), Some(ErrorKind::LinkLost));
        assert_eq!(brx.recv().await.err().map(|e| e.kind()), Some(ErrorKind::LinkLost));
    });
}

#[test]
fn errors_are_sent_on_both_halves_and_display_plainly() {
    let e = RecvError::Decode { family: "KitMsg", error: postcard::Error::DeserializeUnexpectedEnd };
    assert!(e.to_string().contains("not a valid KitMsg message"));
    futures::executor::block_on(async {
        let (a, b) = connected().await;
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        send_msg(&atx, kit_msg(1, "ok")).await;
        assert!(brx.recv().now_or_never().unwrap().unwrap().is_some());
    });
}

/// Schema mismatch, wrong mode, garbage and another version: a typed error
/// on both sides, never a hang.
// r[verify prologue.schema]
// r[verify prologue.mode]
// r[verify prologue.version]
#[test]
fn prologue_refusals_are_typed_on_both_sides() {
    vox_types::msg_family!(OtherFamily => u64);
    futures::executor::block_on(async {
        // Different schemas: both sides name both fingerprints.
        let (a, b) = MemPair::new_shared();
        let (ra, rb) = futures::join!(
            BareConduit::<_, KitFamily>::connect(a, SessionRole::Initiator),
            BareConduit::<_, OtherFamily>::connect(b, SessionRole::Acceptor)
        );
        let (kit, other) = (KitFamily::FINGERPRINT, OtherFamily::FINGERPRINT);
        assert_ne!(kit, other);
        let expect = |local: SchemaFingerprint, peer: SchemaFingerprint| {
            ConnectError::Refused(PrologueError::SchemaMismatch { local, peer })
        };
        assert_eq!(ra.err(), Some(expect(kit, other)));
        assert_eq!(rb.err(), Some(expect(other, kit)));

        // The peer asks for the stable mode: explicit refusal, no fallback.
        let (a, b) = MemPair::new_shared();
        let (btx, mut brx) = b.split();
        let stable = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, KitFamily::FINGERPRINT);
        let (ra, rb) = futures::join!(
            BareConduit::<_, KitFamily>::connect(a, SessionRole::Initiator),
            exchange_prologue(&btx, &mut brx, &stable)
        );
        let mismatch = PrologueError::ModeMismatch { local: ConduitMode::Bare, peer: ConduitMode::Stable };
        assert_eq!(ra.err(), Some(ConnectError::Refused(mismatch)));
        assert!(matches!(rb, Err(HandshakeError::Prologue(PrologueError::ModeMismatch { .. }))));

        // Garbage, another version, silence then close: typed errors.
        for (first, expected) in [
            (&b"GET / HTTP/1.1"[..], PrologueError::BadMagic { found: *b"GET " }),
            // A peer of version 1 (before the compact data frame).
            (
                &[b'V', b'O', b'X', b'E', 1, 0, 0][..],
                PrologueError::UnsupportedVersion { found: 1, supported: PROTOCOL_VERSION },
            ),
        ] {
            let (a, b) = MemPair::new_shared();
            let (btx, _brx) = b.split();
            let feed = vox_tests::link_kit::send(&btx, first);
            let (ra, fed) = futures::join!(BareConduit::<_, KitFamily>::connect(a, SessionRole::Initiator), feed);
            fed.unwrap();
            assert_eq!(ra.as_ref().err(), Some(&ConnectError::Refused(expected)));
            assert_eq!(ra.err().map(|e| e.kind()), Some(ErrorKind::Refused));
        }
        let (a, b) = MemPair::new_shared();
        drop(b);
        let ra = BareConduit::<_, KitFamily>::connect(a, SessionRole::Initiator).await;
        assert!(matches!(ra.err(), Some(ConnectError::Link(_) | ConnectError::PeerClosed)));
    });
}

/// A silent peer: the optional timer bounds the wait.
#[tokio::test(flavor = "current_thread")]
async fn silent_peer_times_out_with_the_application_timer() {
    use vox_link_embedded::host::TokioClock;
    let (a, _b) = MemPair::new_shared();
    let r = BareConduit::<_, KitFamily>::connect_within(a, SessionRole::Initiator, TokioClock, 50).await;
    assert_eq!(r.as_ref().err(), Some(&ConnectError::TimedOut));
    assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::LinkLost), "a silent peer may answer next time");
}

#[test]
fn conduit_trait_is_implemented() {
    fn is_conduit<C: Conduit<Msg = KitFamily>>() {}
    is_conduit::<BareConduit<Mem, KitFamily>>();
}

/// Dropped pending `reserve` futures and dropped permits leave the
/// conduit's capacity exactly as it was.
// r[verify conduit.permit.drop]
#[test]
fn cancelled_reserves_and_dropped_permits_leak_no_capacity() {
    futures::executor::block_on(async {
        let (a, b) = connected().await;
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        let fill = |first: u32| {
            let mut n = 0;
            while let Some(p) = atx.reserve().now_or_never() {
                p.unwrap().send(kit_msg(first + n, "fill")).unwrap();
                n += 1;
            }
            n
        };
        let n1 = fill(0);
        for _ in 0..100 {
            assert!(atx.reserve().now_or_never().is_none(), "full: the reserve future is dropped while pending");
        }
        for id in 0..n1 {
            conduit_kit::expect_msg(&mut brx, &kit_msg(id, "fill")).await;
        }
        for _ in 0..100 {
            drop(atx.reserve().await.unwrap());
        }
        assert_eq!(fill(n1), n1, "same capacity after cancellations");
        assert!(n1 >= 1);
    });
}

/// The bare receiver is a `futures_core::Stream` too: every message, then
/// `None` after the peer closed.
// r[verify host.stream]
#[test]
fn the_bare_receiver_is_a_stream() {
    use futures::StreamExt;
    futures::executor::block_on(async {
        let (a, b) = connected().await;
        let (atx, _arx) = a.split();
        let (_btx, brx) = b.split();
        let send = async {
            for id in 0..20 {
                send_msg(&atx, kit_msg(id, "streamed")).await;
            }
            atx.close().await.unwrap();
        };
        let ids = brx.map(|m| m.unwrap().get::<KitFamily>().id).collect::<Vec<u32>>();
        let ((), ids) = futures::join!(send, ids);
        assert_eq!(ids, (0..20).collect::<Vec<u32>>());
    });
}

/// A link failure is one error item, then the stream ends.
#[test]
fn the_bare_stream_yields_a_link_failure_once_then_ends() {
    use futures::StreamExt;
    futures::executor::block_on(async {
        let (a, b, _pair) = connected_with_a_to_b_killed_after_3().await;
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        for id in 0..2 {
            send_msg(&atx, kit_msg(id, "before the kill")).await;
        }
        let _ = atx.reserve().await.map(|p| p.send(kit_msg(2, "killed")));
        let mut items = Vec::new();
        while let Some(item) = brx.next().await {
            items.push(item.map(|m| m.get::<KitFamily>().id));
        }
        assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 2, "{items:?}");
        assert!(matches!(items.last(), Some(Err(RecvError::Link(_)))), "one error, then the end: {items:?}");
        assert!(brx.next().await.is_none());
    });
}
