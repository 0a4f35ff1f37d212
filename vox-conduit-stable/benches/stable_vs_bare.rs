//! Time per 64-byte message through `StableConduit` and `BareConduit` over
//! the in-memory link, in one run (interleaved bare/stable pairs, the
//! median pair's ratio); wire bytes per message; and messages needed to
//! recover after a link kill.
//!
//! `cargo bench -p vox-conduit-stable --features std --bench stable_vs_bare`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use postcard_schema::Schema;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use vox_conduit_bare::BareConduit;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::{
    MemoryLinkPair,
    sim::{FaultPlan, memory_link_source},
};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};

#[derive(Serialize, Deserialize, Schema, Debug)]
struct Sample<'a> {
    id: u32,
    name: &'a str,
    #[serde(borrow)]
    data: &'a [u8],
}
vox_types::msg_family!(SampleFamily => Sample<'a>);

type M = CriticalSectionRawMutex;
type Storage = StableStorage<M, 8192, 64, 8192, 64>;
type Stable = StableConduit<SampleFamily, Storage>;
const COUNT: u32 = 100_000;
/// Bare/stable pairs of runs (odd: one median).
const PAIRS: usize = 7;
const DATA: [u8; 41] = [7; 41];

fn msg(id: u32) -> Sample<'static> {
    Sample { id: 100_000 + id, name: "sensor/temperature", data: &DATA }
}

/// A clock on tokio's time (the library's `TokioClock` needs the `tokio`
/// feature, which would turn on `send` for this crate's tests).
#[derive(Clone, Copy)]
struct TokioClock(tokio::time::Instant);
impl vox_types::Clock for TokioClock {
    fn now(&self) -> vox_types::Instant {
        vox_types::Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
    fn sleep_until(&self, at: vox_types::Instant) -> impl Future<Output = ()> + vox_types::MaybeSend {
        tokio::time::sleep_until(self.0 + Duration::from_millis(at.as_millis()))
    }
}

async fn pump<C: Conduit<Msg = SampleFamily>>(a: C, b: C, count: u32) {
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    let send = async {
        for id in 0..count {
            atx.reserve().await.unwrap().send(msg(id)).unwrap();
        }
    };
    let recv = async {
        for id in 0..count {
            let m = brx.recv().await.unwrap().unwrap();
            assert_eq!(m.get::<SampleFamily>().id, 100_000 + id);
        }
    };
    tokio::join!(send, recv);
}

async fn bare_run(count: u32) -> Duration {
    let (a, b) = MemoryLinkPair::<M, 16, 256>::new_shared();
    let (a, b) = tokio::join!(
        BareConduit::<_, SampleFamily>::connect(a, SessionRole::Initiator),
        BareConduit::<_, SampleFamily>::connect(b, SessionRole::Acceptor)
    );
    let start = Instant::now();
    pump(a.unwrap(), b.unwrap(), count).await;
    start.elapsed()
}

/// Returns elapsed time, the sender's and the receiver's counters.
async fn stable_run(
    schedule: Vec<(FaultPlan, FaultPlan)>,
    count: u32,
) -> (Duration, vox_conduit_stable::StableStats, vox_conduit_stable::StableStats) {
    let (dialer, listener) = memory_link_source::<M, 16, 256>(schedule);
    let config = StableConfig { ack_every: 16, ..StableConfig::DEFAULT };
    let (a, ad) = Stable::initiator(std::sync::Arc::new(Storage::new()), config).unwrap();
    let (b, bd) = Stable::acceptor(std::sync::Arc::new(Storage::new()), config).unwrap();
    let (stats, peer) = (a.stats_handle(), b.stats_handle());
    let clock = TokioClock(tokio::time::Instant::now());
    let ta = tokio::spawn(ad.run(dialer, clock));
    let tb = tokio::spawn(bd.run(listener, ChaCha20Rng::seed_from_u64(2), clock));
    let start = Instant::now();
    pump(a, b, count).await;
    let elapsed = start.elapsed();
    ta.abort();
    tb.abort();
    (elapsed, stats.get(), peer.get())
}

/// `STABLE_VS_BARE_ONLY=bare|stable` (with `STABLE_VS_BARE_COUNT=n`, else
/// `COUNT`): one run of one conduit and nothing else, to count its
/// instructions under `valgrind --tool=callgrind` (the difference between
/// two counts, divided by the difference in messages, is the cost per
/// message without the setup).
fn only(rt: &tokio::runtime::Runtime) -> bool {
    let Ok(which) = std::env::var("STABLE_VS_BARE_ONLY") else { return false };
    let count = std::env::var("STABLE_VS_BARE_COUNT").map_or(COUNT, |n| n.parse().unwrap());
    match which.as_str() {
        "bare" => drop(rt.block_on(bare_run(count))),
        "stable" => drop(rt.block_on(stable_run(vec![], count))),
        _ => panic!("STABLE_VS_BARE_ONLY is bare or stable"),
    }
    true
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if only(&rt) {
        return;
    }
    let mut buf = [0u8; 128];
    let size = postcard::to_slice(&msg(0), &mut buf).unwrap().len();
    // Interleaved: a bare run, then a stable run, PAIRS times; the ratio
    // is taken within each pair and the pair with the median ratio is
    // reported. On a machine whose speed drifts or jumps between modes
    // (a shared VM), the two runs of a pair mostly share its mode, where
    // a best of each taken in two blocks mixes them.
    let pair = || {
        let bare = rt.block_on(bare_run(COUNT));
        let (stable, _, receiver) = rt.block_on(stable_run(vec![], COUNT));
        (stable.as_secs_f64() / bare.as_secs_f64(), bare, stable, receiver)
    };
    // A first pair warms both paths (allocator, caches, branch history)
    // and is not counted.
    pair();
    let mut pairs: Vec<_> = (0..PAIRS).map(|_| pair()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lowest, highest) = (pairs[0].0, pairs[PAIRS - 1].0);
    let (_, bare, stable, receiver) = pairs.swap_remove(PAIRS / 2);
    let per = |t: Duration| t.as_secs_f64() * 1e9 / f64::from(COUNT);
    // Wire bytes: each data frame is header + message; acks come back the
    // other way. Frames sent by A per message, and A's frame header size.
    use vox_conduit_stable::wire::{WireFrame, WireSeq};
    let common = WireFrame::Data { seq: WireSeq::Low(0), ack: WireSeq::Low(0), window: None, msg: &buf[..size] };
    let header = common.encoded_len() - size;
    println!(
        "{size}-byte message over MemoryLink, {COUNT} messages, one tokio thread, {PAIRS} interleaved bare/stable pairs after a warm-up pair, the pair with the median ratio"
    );
    println!("| conduit | ns/msg | ratio to bare |");
    println!("|---------|-------:|--------------:|");
    println!("| BareConduit | {:.1} | 1.00 |", per(bare));
    println!("| StableConduit | {:.1} | {:.2} (goal <= 1.5) |", per(stable), per(stable) / per(bare));
    println!("ratio over the {PAIRS} pairs: {lowest:.2}-{highest:.2}");
    println!(
        "stable wire bytes per message: {size} (message) + {header} (data header, common case); the receiver sent {} ack-only frames for {COUNT} messages ({:.3} per message)",
        receiver.acks_sent,
        receiver.acks_sent as f64 / f64::from(COUNT)
    );
    // Recovery after a kill: A→B link dies after 1000 frames; how many
    // messages were sent again.
    let (_, killed, _) = rt.block_on(stable_run(vec![(FaultPlan::kill_after(1000), FaultPlan::NONE)], 5_000));
    println!(
        "after a link kill at frame 1000: {} reattachment(s), {} message(s) replayed to recover",
        killed.reattachments, killed.replays
    );
}
