//! The link conformance kit on `MemoryLink`, under tokio (both runtimes)
//! and under `futures::executor` (no tokio), to show runtime-agnosticism.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use vox_link_embedded::{MemoryLink, MemoryLinkPair, sim::FaultPlan};
use vox_tests::link_kit::{self, LinkHarness};

const SLOTS: usize = 4;
const MTU: usize = 512;
type Pair = MemoryLinkPair<CriticalSectionRawMutex, SLOTS, MTU>;

struct MemoryHarness;

impl LinkHarness for MemoryHarness {
    type Link = MemoryLink<CriticalSectionRawMutex, SLOTS, MTU>;

    fn pair(&mut self) -> (Self::Link, Self::Link) {
        Pair::new_shared()
    }

    fn failing_pair(&mut self, n: u32) -> (Self::Link, Self::Link) {
        Pair::new_shared_with_faults(FaultPlan::kill_after(n), FaultPlan::NONE).0
    }

    fn capacity_bound(&self) -> usize {
        SLOTS
    }

    fn exact_capacity(&self) -> bool {
        true
    }
}

#[test]
fn conformance_under_futures_executor() {
    futures::executor::block_on(link_kit::check_all(&mut MemoryHarness));
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_under_tokio_current_thread() {
    link_kit::check_all(&mut MemoryHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_under_tokio_multi_thread() {
    link_kit::check_all(&mut MemoryHarness).await;
}

/// The halves live in different tokio tasks on different threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_in_separate_tasks() {
    use vox_types::Link;
    let (a, b) = Pair::new_shared();
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    let sender = tokio::spawn(async move {
        for seq in 0..2_000u32 {
            link_kit::send(&atx, &link_kit::pattern(seq, (seq % 64) as usize)).await.unwrap();
        }
    });
    let receiver = tokio::spawn(async move {
        for seq in 0..2_000u32 {
            let got = link_kit::recv_payload(&mut brx).await;
            assert_eq!(got.as_bytes(), &link_kit::pattern(seq, (seq % 64) as usize)[..]);
        }
    });
    sender.await.unwrap();
    receiver.await.unwrap();
}

/// A static (no allocator) pair runs the same checks it can: one pair only.
#[test]
fn static_storage_pair_under_futures_executor() {
    use vox_types::Link;
    static PAIR: Pair = Pair::new();
    let (a, b) = PAIR.split();
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    futures::executor::block_on(async {
        let send_all = async {
            for seq in 0..100u32 {
                link_kit::send(&atx, &link_kit::pattern(seq, 33)).await.unwrap();
            }
        };
        let recv_all = async {
            for seq in 0..100u32 {
                assert_eq!(link_kit::recv_payload(&mut brx).await.as_bytes(), &link_kit::pattern(seq, 33)[..]);
            }
        };
        futures::join!(send_all, recv_all);
    });
    assert_eq!(PAIR.slots_in_use(), 0);
}

/// With the `send` feature, link futures are `Send`: tokio can spawn them.
// r[verify types.maybe-send]
#[test]
fn reserve_and_recv_futures_are_send_with_the_send_feature() {
    use vox_types::{Link, LinkRx, LinkTx};
    fn assert_send<T: Send>(_: &T) {}
    let (a, _b) = Pair::new_shared();
    let (atx, mut arx) = a.split();
    let reserve = atx.reserve();
    assert_send(&reserve);
    drop(reserve);
    let recv = arx.recv();
    assert_send(&recv);
}
