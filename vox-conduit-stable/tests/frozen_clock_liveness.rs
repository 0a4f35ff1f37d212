//! Liveness with a clock that stands still, on a multi-thread runtime:
//! no ack delay, keepalive or timeout can rescue a stall, so every window
//! update has to go out when the room it grants appears (a release, or a
//! delivery that used the last credit the peer heard). Small rings, and
//! received messages dropped on other tasks and threads.

#![cfg(all(feature = "std", feature = "send"))]
#![allow(clippy::unwrap_used, clippy::panic)]

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::sim::{SimClock, memory_link_source};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
struct Blob<'a>(u32, &'a [u8]);
vox_types::msg_family!(BlobFamily => Blob<'a>);

/// 3 received messages of 64 bytes in all, 4 unacked sent ones.
type Small = StableStorage<CriticalSectionRawMutex, 128, 4, 64, 3>;
type Pair = StableConduit<BlobFamily, Small>;

/// How long a run may take before it counts as stalled.
const STALLED: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Both sides of a session over an in-memory link, drivers spawned.
fn session(ack_every: u32) -> (Pair, Pair) {
    let config = StableConfig { max_message: 24, ack_every, ..StableConfig::DEFAULT };
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
    let (a, a_driver) = Pair::initiator(Arc::new(Small::new()), config).unwrap();
    let (b, b_driver) = Pair::acceptor(Arc::new(Small::new()), config).unwrap();
    let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(7);
    // A simulated clock nobody moves: it stands at 0 for ever.
    let clock = SimClock::new();
    tokio::spawn(a_driver.run(dialer, clock.clone()));
    tokio::spawn(b_driver.run(listener, rng, clock));
    (a, b)
}

// r[verify stable.flow.no-stall]
#[test]
fn a_receiver_that_drops_batches_on_another_thread_never_waits_for_a_timer() {
    for (ack_every, batch, len) in [(1u32, 1usize, 20usize), (1, 2, 4), (2, 2, 4), (4, 2, 4), (4, 1, 20)] {
        let rt = runtime();
        rt.block_on(async {
            let (a, b) = session(ack_every);
            let (tx, _a_rx) = a.split();
            let (_b_tx, mut rx) = b.split();
            const N: u32 = 1_500;
            let send = tokio::spawn(async move {
                for i in 0..N {
                    tx.reserve().await.unwrap().send(Blob(i, &std::vec![i as u8; len])).unwrap();
                }
                tx
            });
            let receive = tokio::spawn(async move {
                let mut i = 0;
                while i < N {
                    let mut held = Vec::new();
                    while held.len() < batch && i < N {
                        let m = rx.recv().await.unwrap().unwrap();
                        assert_eq!(m.get::<BlobFamily>().0, i);
                        i += 1;
                        held.push(m);
                    }
                    tokio::task::spawn_blocking(move || drop(held)).await.unwrap();
                }
                rx
            });
            let ran = tokio::time::timeout(STALLED, async {
                let _tx = send.await.unwrap();
                let _rx = receive.await.unwrap();
            })
            .await;
            assert!(ran.is_ok(), "stalled: ack_every {ack_every}, batch {batch}, {len}-byte messages");
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    }
}

// r[verify stable.flow.no-stall]
#[test]
fn requests_and_replies_dropped_on_other_tasks_never_wait_for_a_timer() {
    for ack_every in [1u32, 2] {
        let rt = runtime();
        rt.block_on(async {
            let (a, b) = session(ack_every);
            let (a_tx, mut a_rx) = a.split();
            let (b_tx, mut b_rx) = b.split();
            const N: u32 = 3_000;
            let server = tokio::spawn(async move {
                while let Some(m) = b_rx.recv().await.unwrap() {
                    let id = m.get::<BlobFamily>().0;
                    tokio::spawn(async move { drop(m) });
                    b_tx.reserve().await.unwrap().send(Blob(id, &[1; 16])).unwrap();
                    if id == N - 1 {
                        break;
                    }
                }
                (b_tx, b_rx)
            });
            let client = tokio::spawn(async move {
                for i in 0..N {
                    a_tx.reserve().await.unwrap().send(Blob(i, &[2; 16])).unwrap();
                    let m = a_rx.recv().await.unwrap().unwrap();
                    assert_eq!(m.get::<BlobFamily>().0, i);
                    if i % 2 == 0 {
                        tokio::spawn(async move { drop(m) });
                    }
                }
                (a_tx, a_rx)
            });
            let ran = tokio::time::timeout(STALLED, async {
                let _client = client.await.unwrap();
                let _server = server.await.unwrap();
            })
            .await;
            assert!(ran.is_ok(), "stalled: ack_every {ack_every}");
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    }
}

// r[verify stable.flow.no-stall]
#[test]
fn writers_on_several_threads_share_a_half_and_never_wait_for_a_timer() {
    let rt = runtime();
    rt.block_on(async {
        let (a, b) = session(1);
        let (tx, _a_rx) = a.split();
        let (_b_tx, mut rx) = b.split();
        let tx = Arc::new(tx);
        const WRITERS: u32 = 5;
        const EACH: u32 = 1_000;
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let tx = tx.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..EACH {
                    let permit = tx.reserve().await.unwrap();
                    if i % 5 == 3 {
                        tokio::task::yield_now().await;
                    }
                    // Some reservations are given up unused.
                    if i % 11 == 5 {
                        drop(permit);
                        continue;
                    }
                    permit.send(Blob(w * EACH + i, &[w as u8; 3])).unwrap();
                }
            }));
        }
        let expected = WRITERS * (EACH - (0..EACH).filter(|i| i % 11 == 5).count() as u32);
        let receive = tokio::spawn(async move {
            let mut next = [0u32; WRITERS as usize];
            for _ in 0..expected {
                let m = rx.recv().await.unwrap().unwrap();
                let id = m.get::<BlobFamily>().0;
                let (w, i) = ((id / EACH) as usize, id % EACH);
                assert!(i >= next[w], "each writer's messages in its order");
                next[w] = i + 1;
                tokio::spawn(async move { drop(m) });
            }
            rx
        });
        let ran = tokio::time::timeout(STALLED, async {
            for w in writers {
                w.await.unwrap();
            }
            let _rx = receive.await.unwrap();
        })
        .await;
        assert!(ran.is_ok(), "stalled");
    });
    rt.shutdown_timeout(Duration::from_millis(100));
}
