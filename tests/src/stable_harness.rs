//! Helpers for stable-conduit tests: a tokio timer, deterministic key
//! generators, and a two-peer exchange over a fault-scheduled memory link
//! source.

use crate::conduit_kit::{KitFamily, kit_msg};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::time::Duration;
use vox_conduit_stable::{
    Acceptor, Initiator, SessionError, StableConduit, StableConfig, StableDriver, StableStats, StableStorage,
};
use vox_link_embedded::sim::{FaultPlan, memory_link_source};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

pub use vox_link_embedded::host::TokioClock;

/// A seeded CSPRNG for resume keys.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Replay ring bytes and messages, receive ring bytes and messages used by
/// the tests.
pub const BYTES: usize = 1024;
/// See [`BYTES`].
pub const FRAMES: usize = 8;
/// See [`BYTES`].
pub const RX_BYTES: usize = 512;
/// See [`BYTES`].
pub const RX: usize = 4;

/// The storage the tests use.
pub type TestStorage = StableStorage<CriticalSectionRawMutex, BYTES, FRAMES, RX_BYTES, RX>;
/// The conduit the tests use.
pub type TestStable = StableConduit<KitFamily, TestStorage>;
/// An initiator's driver.
pub type InitiatorDriver = StableDriver<KitFamily, TestStorage, Initiator>;
/// An acceptor's driver.
pub type AcceptorDriver = StableDriver<KitFamily, TestStorage, Acceptor>;

/// A fresh initiator with the [`FAST`] config.
pub fn initiator() -> (TestStable, InitiatorDriver) {
    TestStable::initiator(std::sync::Arc::new(TestStorage::new()), FAST).unwrap()
}

/// A fresh acceptor with the [`FAST`] config.
pub fn acceptor() -> (TestStable, AcceptorDriver) {
    TestStable::acceptor(std::sync::Arc::new(TestStorage::new()), FAST).unwrap()
}

/// A config with short timers, for tests.
pub const FAST: StableConfig = StableConfig {
    max_message: 200,
    ack_every: 4,
    ack_delay_ms: 5,
    keepalive_ms: 50,
    timeout_ms: 300,
    retry_delay_ms: 5,
    linger_ms: 600,
    connect_timeout_ms: 10_000,
};

/// What one side of an exchange saw.
#[derive(Debug)]
pub struct SideReport {
    /// Ids received, in order.
    pub received: Vec<u32>,
    /// How the driver ended.
    pub driver: Result<(), SessionError>,
    /// Final counters.
    pub stats: StableStats,
}

/// The text of message `id` (its length varies with the id).
pub fn text_for(id: u32) -> String {
    "m".repeat((id as usize * 13) % 150)
}

async fn side(
    conduit: TestStable,
    driver_done: tokio::task::JoinHandle<Result<(), SessionError>>,
    send: u32,
) -> SideReport {
    let stats = conduit.stats_handle();
    let (tx, mut rx) = conduit.split();
    let sending = async {
        for id in 0..send {
            let text = text_for(id);
            tx.reserve().await.expect("reserve").send(kit_msg(id, &text)).expect("send");
        }
        tx.close().await.expect("close");
    };
    let receiving = async {
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Ok(Some(m)) => {
                    let msg = m.get::<KitFamily>();
                    assert_eq!(msg, &kit_msg(msg.id, &text_for(msg.id)), "message content");
                    got.push(msg.id);
                }
                Ok(None) => break,
                Err(e) => panic!("recv failed: {e}"),
            }
        }
        got
    };
    let ((), received) = tokio::join!(sending, receiving);
    let driver = driver_done.await.expect("driver task");
    SideReport { received, driver, stats: stats.get() }
}

/// Initiator A and acceptor B each send `n` messages and close; links come
/// from a memory link source whose n-th link gets `schedule[n]`.
pub async fn exchange(n: u32, schedule: Vec<(FaultPlan, FaultPlan)>) -> (SideReport, SideReport) {
    exchange_asym(n, n, schedule).await
}

/// A sends `na` messages, B sends `nb`, both close.
pub async fn exchange_asym(na: u32, nb: u32, schedule: Vec<(FaultPlan, FaultPlan)>) -> (SideReport, SideReport) {
    exchange_with(na, nb, schedule).await
}

async fn exchange_with(na: u32, nb: u32, schedule: Vec<(FaultPlan, FaultPlan)>) -> (SideReport, SideReport) {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>(schedule);
    let (a, a_driver) = initiator();
    let (b, b_driver) = acceptor();
    let (ha, hb) = (a.stats_handle(), b.stats_handle());
    let a_task = tokio::spawn(a_driver.run(dialer, TokioClock));
    let b_task = tokio::spawn(b_driver.run(listener, rng(2), TokioClock));
    let run = async { tokio::join!(side(a, a_task, na), side(b, b_task, nb)) };
    match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(r) => r,
        Err(_) => {
            panic!("exchange stuck:\nA {:?}\nB {:?}", ha.get(), hb.get())
        }
    }
}

/// Several initiators (or one that restarts) dialing the same memory
/// listener.
#[derive(Clone)]
pub struct SharedDialer(
    pub std::sync::Arc<tokio::sync::Mutex<vox_link_embedded::sim::MemoryDialer<CriticalSectionRawMutex, 4, 256>>>,
);

impl vox_types::LinkSource for SharedDialer {
    type Link = vox_link_embedded::MemoryLink<CriticalSectionRawMutex, 4, 256>;
    async fn next_link(&mut self) -> Result<Self::Link, vox_types::LinkError> {
        Ok(self.0.lock().await.connect())
    }
}

/// Writes, as the first payload on `tx`, a stable prologue of protocol
/// `version` (another version than ours, for refusal tests).
pub async fn send_prologue_of_version<T: vox_types::LinkTx>(
    tx: &T,
    version: u16,
    role: vox_types::SessionRole,
    fingerprint: vox_types::SchemaFingerprint,
) {
    use vox_types::{LinkTxPermit, WriteSlot};
    let mut prologue = vox_types::Prologue::new(vox_types::ConduitMode::Stable, role, fingerprint);
    prologue.version = version;
    let mut buf = [0u8; 32];
    let n = prologue.encode(&mut buf).expect("a prologue fits 32 bytes");
    let mut slot = tx.reserve().await.expect("link open").alloc(n).expect("link payload");
    slot.as_mut_slice().copy_from_slice(&buf[..n]);
    slot.commit();
}
