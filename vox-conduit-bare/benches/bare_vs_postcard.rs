//! `BareConduit` over the in-memory link against a hand-written baseline:
//! `postcard::to_slice` + copy through the same link queue +
//! `postcard::from_bytes`. Also counts heap allocations per message.
//!
//! `cargo bench -p vox-conduit-bare --features std --bench bare_vs_postcard`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::executor::block_on;
use postcard_schema::Schema;
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vox_conduit_bare::BareConduit;
use vox_link_embedded::MemoryLinkPair;
use vox_types::{
    Conduit, ConduitRx, ConduitTx, ConduitTxPermit, Link, LinkRx, LinkTx, LinkTxPermit, SessionRole, WriteSlot,
};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Serialize, Deserialize, Schema, Debug, PartialEq)]
struct Sample<'a> {
    id: u32,
    name: &'a str,
    #[serde(borrow)]
    data: &'a [u8],
}
vox_types::msg_family!(SampleFamily => Sample<'a>);

const NAME: &str = "sensor/temperature";
const DATA: [u8; 41] = [7; 41];
const COUNT: u32 = 200_000;
const REPEATS: usize = 5;
type Pair = MemoryLinkPair<CriticalSectionRawMutex, 8, 128>;

fn msg(id: u32) -> Sample<'static> {
    Sample { id: 100_000 + id, name: NAME, data: &DATA }
}

/// Time for COUNT messages through BareConduit, and allocations counted.
fn conduit_run() -> (Duration, u64) {
    let (a, b) = Pair::new_shared();
    let (a, b) = block_on(async {
        futures::join!(
            BareConduit::<_, SampleFamily>::connect(a, SessionRole::Initiator),
            BareConduit::<_, SampleFamily>::connect(b, SessionRole::Acceptor)
        )
    });
    let (atx, _arx) = a.unwrap().split();
    let (_btx, mut brx) = b.unwrap().split();
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let start = Instant::now();
    block_on(async {
        let send = async {
            for id in 0..COUNT {
                atx.reserve().await.unwrap().send(msg(id)).unwrap();
            }
        };
        let recv = async {
            for id in 0..COUNT {
                let m = brx.recv().await.unwrap().unwrap();
                assert_eq!(m.get::<SampleFamily>().id, 100_000 + id);
            }
        };
        futures::join!(send, recv);
    });
    (start.elapsed(), ALLOCS.load(Ordering::Relaxed) - allocs)
}

/// The baseline: encode to a stack buffer, copy through the same link
/// queue, decode from the received bytes.
fn baseline_run() -> (Duration, u64) {
    let (a, b) = Pair::new_shared();
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let start = Instant::now();
    block_on(async {
        let send = async {
            let mut buf = [0u8; 128];
            for id in 0..COUNT {
                let bytes = postcard::to_slice(&msg(id), &mut buf).unwrap();
                let mut slot = atx.reserve().await.unwrap().alloc(bytes.len()).unwrap();
                slot.as_mut_slice().copy_from_slice(bytes);
                slot.commit();
            }
        };
        let recv = async {
            for id in 0..COUNT {
                let frame = brx.recv().await.unwrap().unwrap();
                let m: Sample<'_> = postcard::from_bytes(frame.as_bytes()).unwrap();
                assert_eq!(m.id, 100_000 + id);
            }
        };
        futures::join!(send, recv);
    });
    (start.elapsed(), ALLOCS.load(Ordering::Relaxed) - allocs)
}

fn best(f: fn() -> (Duration, u64)) -> (Duration, u64) {
    (0..REPEATS).map(|_| f()).min_by_key(|r| r.0).unwrap()
}

fn main() {
    let mut buf = [0u8; 128];
    let size = postcard::to_slice(&msg(0), &mut buf).unwrap().len();
    let (tc, ac) = best(conduit_run);
    let (tb, ab) = best(baseline_run);
    let per = |t: Duration| t.as_secs_f64() * 1e9 / f64::from(COUNT);
    println!("{size}-byte message (borrowed &str + &[u8]) over MemoryLink, {COUNT} messages, best of {REPEATS}");
    println!("| path | ns/msg | msgs/s | allocations/msg |");
    println!("|------|-------:|-------:|----------------:|");
    println!("| BareConduit | {:.1} | {:.0} | {:.3} |", per(tc), 1e9 / per(tc), ac as f64 / f64::from(COUNT));
    println!(
        "| to_slice + copy + from_bytes | {:.1} | {:.0} | {:.3} |",
        per(tb),
        1e9 / per(tb),
        ab as f64 / f64::from(COUNT)
    );
    println!("ratio BareConduit / baseline time per message: {:.2} (goal <= 1.25)", per(tc) / per(tb));
}
