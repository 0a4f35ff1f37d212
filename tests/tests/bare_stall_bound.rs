//! The bare conduit's one-task stall bound: a task that sends `N`
//! requests before reading any reply, against a server that answers each
//! request before reading the next, completes exactly while `N` is within
//! the bound stated on `BareConduit`, and stalls at one more; the link's
//! `stalled_reserves` counter shows the stall.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use std::cell::Cell;
use std::rc::Rc;
use vox_conduit_bare::BareConduit;
use vox_link_embedded::MemoryLinkPair;
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};

/// Whether one task sending `n` requests, then reading the `n` replies,
/// completes over links of `SLOTS` slots each way, and the client's count
/// of `reserve` calls that waited while its own receive slots were full.
fn run<const SLOTS: usize>(n: u32) -> (bool, u32) {
    let pair: &'static MemoryLinkPair<CriticalSectionRawMutex, SLOTS, 128> = Box::leak(Box::new(MemoryLinkPair::new()));
    let mut pool = LocalPool::new();
    let done = Rc::new(Cell::new(false));
    let finished = done.clone();
    pool.spawner()
        .spawn_local(async move {
            let (a, b) = pair.split();
            let (client, server) = futures::join!(
                BareConduit::<_, KitFamily>::connect(a, SessionRole::Initiator),
                BareConduit::<_, KitFamily>::connect(b, SessionRole::Acceptor)
            );
            let (ctx, mut crx) = client.unwrap().split();
            let (stx, mut srx) = server.unwrap().split();
            let serve = async move {
                // Answers each request before reading the next; holds the
                // request while it waits to send.
                while let Ok(Some(request)) = srx.recv().await {
                    let id = request.get::<KitFamily>().id;
                    let Ok(permit) = stx.reserve().await else { return };
                    if permit.send(kit_msg(id, "reply")).is_err() {
                        return;
                    }
                }
            };
            let client = async move {
                for id in 0..n {
                    ctx.reserve().await.unwrap().send(kit_msg(id, "request")).unwrap();
                }
                for _ in 0..n {
                    crx.recv().await.unwrap().unwrap();
                }
                finished.set(true);
            };
            futures::future::select(Box::pin(serve), Box::pin(client)).await;
        })
        .unwrap();
    pool.run_until_stalled();
    (done.get(), pair.stalled_reserves().0)
}

fn completes<const SLOTS: usize>(n: u32) -> bool {
    run::<SLOTS>(n).0
}

/// On in-memory links (no runner buffers, no socket buffers in between),
/// exactly `SLOTS` (requests, the one the server holds included) +
/// `SLOTS` (replies) complete; one more stalls.
#[test]
fn one_task_completes_exactly_up_to_twice_the_link_slots() {
    assert!(completes::<2>(4) && !completes::<2>(5), "2 slots each way: 4 complete, 5 stall");
    assert!(completes::<4>(8) && !completes::<4>(9), "4 slots each way: 8 complete, 9 stall");
    assert!(completes::<8>(16) && !completes::<8>(17), "8 slots each way: 16 complete, 17 stall");
    assert!(completes::<4>(1), "far below the bound");
}

/// The stall is visible: the client's link counts a `reserve` that began
/// waiting while its own receive slots were all unread; within the bound
/// nothing is counted.
// r[verify bare.stall-bound]
#[test]
fn the_link_counts_the_reserve_that_waits_for_its_own_reader() {
    for (n, within) in [(8, true), (9, false)] {
        let (done, stalled) = run::<4>(n);
        assert_eq!(done, within, "{n} requests over 4 slots each way");
        assert_eq!(stalled > 0, !within, "{n} requests: {stalled} stalled reserves counted");
    }
}
