//! Refusals on the wire: a stable handshake refused for its schema, mode,
//! version or role ends both sides with the same typed error within one
//! round trip, and nothing sent before it is reported as sent.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_bare::{BareConduit, ConnectError};
use vox_conduit_stable::{AcceptorConfig, SendError, SessionError, StableAcceptor, StableConduit};
use vox_demo_protocol::DemoFamily;
use vox_link_embedded::{MemoryLink, sim::memory_link_source};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{FAST, TestStorage, TokioClock, acceptor, initiator, rng, send_prologue_of_version};
use vox_types::{
    ConduitError, ConduitTx, ErrorKind, HandshakeError, Link, LinkRx, LinkSource, MsgFamily, PROTOCOL_VERSION,
    Prologue, PrologueError, SessionRole,
};

type Demo = StableConduit<DemoFamily, TestStorage>;
/// Within one round trip on a memory link, with margin for a loaded machine.
const QUICK: Duration = Duration::from_secs(1);

fn schema_mismatch(e: &SessionError) -> bool {
    matches!(e, SessionError::Refused(HandshakeError::Prologue(PrologueError::SchemaMismatch { .. })))
}

// r[verify stable.refusal]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_mismatch_ends_both_sides_with_both_fingerprints() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (kit, kit_driver) = initiator();
    let (demo, demo_driver) = Demo::acceptor(Arc::new(TestStorage::new()), FAST).unwrap();
    let a = tokio::spawn(kit_driver.run(dialer, TokioClock));
    let b = tokio::spawn(demo_driver.run(listener, rng(1), TokioClock));
    let (ka, kb) = tokio::time::timeout(QUICK, async { (a.await.unwrap(), b.await.unwrap()) }).await.expect("quick");
    let (ka, kb) = (ka.unwrap_err(), kb.unwrap_err());
    assert!(schema_mismatch(&ka) && schema_mismatch(&kb), "{ka:?} / {kb:?}");
    let SessionError::Refused(HandshakeError::Prologue(PrologueError::SchemaMismatch { local, peer })) = ka else {
        unreachable!()
    };
    assert_eq!((local, peer), (KitFamily::FINGERPRINT, DemoFamily::FINGERPRINT), "both fingerprints named");
    // Nothing was reported sent: reserve fails with the refusal.
    let (tx, _rx) = vox_types::Conduit::split(kit);
    assert!(matches!(tx.reserve().await, Err(SendError::Session(e)) if schema_mismatch(&e)));
    drop(demo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_mismatch_through_the_acceptor_reaches_the_initiator() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (mut acceptor, runner) = StableAcceptor::<DemoFamily, TestStorage, CriticalSectionRawMutex, _>::new(
        listener,
        TokioClock,
        FAST,
        AcceptorConfig { pending: 8, ..AcceptorConfig::with_sessions(4) },
    )
    .unwrap();
    tokio::spawn(runner.run());
    tokio::spawn(async move { while acceptor.accept().await.is_ok() {} });
    let (_kit, kit_driver) = initiator();
    let end = tokio::time::timeout(QUICK, kit_driver.run(dialer, TokioClock)).await.expect("quick");
    assert!(matches!(&end, Err(e) if schema_mismatch(e)), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_peer_and_a_stable_peer_refuse_each_other_for_the_mode() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (_stable, driver) = acceptor();
    let stable = tokio::spawn(driver.run(listener, rng(1), TokioClock));
    let mut dialer = dialer;
    let link = dialer.next_link().await.unwrap();
    let bare = tokio::time::timeout(QUICK, BareConduit::<_, KitFamily>::connect(link, SessionRole::Initiator))
        .await
        .expect("quick");
    let mode = |e: &HandshakeError| matches!(e, HandshakeError::Prologue(PrologueError::ModeMismatch { .. }));
    assert!(
        matches!(&bare, Err(ConnectError::Refused(e)) if mode(&HandshakeError::Prologue(*e))),
        "bare: {:?}",
        bare.err()
    );
    let stable = tokio::time::timeout(QUICK, stable).await.expect("quick").unwrap();
    assert!(matches!(&stable, Err(SessionError::Refused(e)) if mode(e)), "stable: {stable:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_version_is_refused_and_gets_our_version_back() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (_stable, driver) = acceptor();
    let stable = tokio::spawn(driver.run(listener, rng(1), TokioClock));
    let mut dialer = dialer;
    let link: MemoryLink<CriticalSectionRawMutex, 4, 256> = dialer.next_link().await.unwrap();
    let (tx, mut rx) = link.split();
    send_prologue_of_version(&tx, 1, SessionRole::Initiator, KitFamily::FINGERPRINT).await;
    let answer = tokio::time::timeout(QUICK, rx.recv()).await.expect("quick").unwrap().unwrap();
    let ours = Prologue::decode(answer.as_bytes()).unwrap();
    assert_eq!(ours.version, PROTOCOL_VERSION, "the acceptor answers with its own version");
    let stable = tokio::time::timeout(QUICK, stable).await.expect("quick").unwrap();
    let expected = PrologueError::UnsupportedVersion { found: 1, supported: PROTOCOL_VERSION };
    assert_eq!(stable, Err(SessionError::Refused(HandshakeError::Prologue(expected))));
    assert_eq!(stable.err().map(|e| e.kind()), Some(ErrorKind::Refused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_initiators_refuse_each_other_for_the_role() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (a, ad) = initiator();
    let (b, bd) = initiator();
    let ta = tokio::spawn(ad.run(dialer, TokioClock));
    let tb = tokio::spawn(bd.run(listener, TokioClock));
    let (ra, rb) = tokio::time::timeout(QUICK, async { (ta.await.unwrap(), tb.await.unwrap()) }).await.expect("quick");
    let role = |r: &Result<(), SessionError>| {
        matches!(r, Err(SessionError::Refused(HandshakeError::Prologue(PrologueError::RoleConflict { .. }))))
    };
    assert!(role(&ra) && role(&rb), "{ra:?} / {rb:?}");
    drop((a, b, kit_msg(0, "")));
}
