//! vox-rpc calls against hand-written request/reply over the same
//! conduits, and against postcard-rpc, in one run on one tokio
//! `current_thread` runtime:
//!
//! - time per call with one call in flight: vox-rpc, `hand-min` (reserve +
//!   send, then recv, nothing else) and `hand-table` (a 64-entry table of
//!   signals routing replies by id, a reader task, a timeout per call);
//! - calls/s with 16 callers: vox-rpc and `hand-table`;
//! - postcard-rpc 0.12.1 over its in-memory test channels (a `Vec` per
//!   frame), the same call;
//! - wire bytes per call of the demo's hand protocol and of vox-rpc frames;
//! - `flood`: calls beside a latest-only topic offered at twice the rate of
//!   a paced 1 Mbit/s line: p99 latency against the quiet line's.
//!
//! `cargo bench -p vox-rpc --bench rpc`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use core::cell::Cell;
use core::pin::pin;
use core::time::Duration;
use embassy_futures::join::join;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use embassy_sync::signal::Signal;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use postcard_schema::Schema;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use vox_conduit_bare::BareConduit;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::sim::memory_link_source;
use vox_link_embedded::{MemoryLink, MemoryLinkPair};
use vox_rpc::{Calls, Client, Nil, RpcFamily, Server};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, MsgFamily, SessionRole};

// ---- allocation counter ----

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
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

// ---- parameters ----

/// Every call's timeout (vox-rpc's deadline, the baselines' and
/// postcard-rpc's `tokio::time::timeout`).
const TIMEOUT: Duration = Duration::from_millis(200);
/// Link slots each way and their size.
const SLOTS: usize = 8;
const MTU: usize = 256;
/// Calls before each timed run (greetings, clock samples, warm caches).
const WARMUP: u64 = 500;
/// Calls of the first, short run that sizes the timed ones.
const PILOT: u64 = 2_000;
/// Wall time aimed at per timed run.
const TARGET_SECS: f64 = 0.5;
/// Timed runs per measurement; the best is kept.
const REPEATS: usize = 3;
/// Concurrent callers of the throughput table.
const CALLERS: usize = 16;

type Storage = StableStorage<M, 4096, 32, 4096, 32>;
const STABLE: StableConfig = StableConfig::DEFAULT;

// ---- the hand protocol ----

#[derive(Serialize, Deserialize, Schema, Debug, Clone, Copy, PartialEq, Eq)]
enum Hand {
    Request { id: u32, x: u32 },
    Reply { id: u32, x: u32 },
}
vox_types::msg_family!(HandFamily => Hand);

vox_rpc::declare! {
    /// Doubles a number.
    pub endpoint Double = "double": u32 => u32;
}

// ---- conduits ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Bare,
    Stable,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Stable => "stable",
        }
    }
}

type Link = MemoryLink<M, SLOTS, MTU>;

async fn bare<F: MsgFamily>() -> (BareConduit<Link, F>, BareConduit<Link, F>) {
    let (a, b) = MemoryLinkPair::<M, SLOTS, MTU>::new_shared();
    let (host, device) = join(
        BareConduit::<_, F>::connect(a, SessionRole::Acceptor),
        BareConduit::<_, F>::connect(b, SessionRole::Initiator),
    )
    .await;
    (host.unwrap(), device.unwrap())
}

/// Runs `$work` (an expression using `$host` and `$device`, two conduits of
/// family `$family` of kind `$kind`) to its end; for stable conduits with
/// both drivers running beside it on a memory link source.
macro_rules! on_conduits {
    ($kind:expr, $family:ty, |$host:ident, $device:ident| $work:expr) => {
        async {
            match $kind {
                Kind::Bare => {
                    let ($host, $device) = bare::<$family>().await;
                    $work.await
                }
                Kind::Stable => {
                    let (dialer, listener) = memory_link_source::<M, SLOTS, MTU>([]);
                    let ($host, host_driver) =
                        StableConduit::<$family, Storage>::acceptor(Arc::new(Storage::new()), STABLE).unwrap();
                    let ($device, device_driver) =
                        StableConduit::<$family, Storage>::initiator(Arc::new(Storage::new()), STABLE).unwrap();
                    let drivers = join(
                        host_driver.run(listener, ChaCha20Rng::seed_from_u64(1), TokioClock),
                        device_driver.run(dialer, TokioClock),
                    );
                    match select(pin!($work), pin!(drivers)).await {
                        Either::First(out) => out,
                        Either::Second(ended) => panic!("the stable drivers ended: {ended:?}"),
                    }
                }
            }
        }
    };
}

// ---- measuring ----

/// One timed run.
#[derive(Clone, Copy, Debug)]
struct Run {
    elapsed: Duration,
    calls: u64,
    allocs: u64,
}

impl Run {
    fn ns_per_call(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e9 / self.calls as f64
    }
    fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    fn allocs_per_call(&self) -> f64 {
        self.allocs as f64 / self.calls as f64
    }
}

/// A pilot run sizes the timed runs to about `TARGET_SECS` each; the best
/// of `REPEATS` is kept.
fn measure(mut run: impl FnMut(u64) -> Run) -> Run {
    let pilot = run(PILOT);
    let per = pilot.elapsed.as_secs_f64() / pilot.calls as f64;
    let n = ((TARGET_SECS / per) as u64).clamp(PILOT, 50_000_000);
    (0..REPEATS).map(|_| run(n)).min_by(|a, b| a.ns_per_call().total_cmp(&b.ns_per_call())).unwrap()
}

/// Makes calls `x = 0, 1, ...` until `total` were made, from `callers`
/// concurrent callers; checks every answer is `2x`.
async fn spread(callers: usize, total: u64, call: &impl AsyncFn(u32) -> u32) {
    let next = Cell::new(0u64);
    if callers == 1 {
        caller(&next, total, call).await;
    } else {
        let mut set: FuturesUnordered<_> = (0..callers).map(|_| caller(&next, total, call)).collect();
        while set.next().await.is_some() {}
    }
}

async fn caller(next: &Cell<u64>, total: u64, call: &impl AsyncFn(u32) -> u32) {
    loop {
        let i = next.get();
        if i >= total {
            return;
        }
        next.set(i + 1);
        let x = i as u32;
        let got = call(x).await;
        assert_eq!(got, x.wrapping_mul(2));
    }
}

/// Warms up, then times `n` calls spread over `callers`.
async fn timed(callers: usize, n: u64, call: impl AsyncFn(u32) -> u32) -> Run {
    spread(callers, WARMUP, &call).await;
    let a0 = allocs();
    let t0 = Instant::now();
    spread(callers, n, &call).await;
    let elapsed = t0.elapsed();
    Run { elapsed, calls: n, allocs: allocs() - a0 }
}

// ---- baseline: hand-min ----

/// The hand server: receive a request, reserve, send the reply.
async fn hand_server<C: Conduit<Msg = HandFamily>>(device: C) {
    let (tx, mut rx) = device.split();
    while let Ok(Some(m)) = rx.recv().await {
        let msg = *m.get::<HandFamily>();
        drop(m);
        if let Hand::Request { id, x } = msg {
            let Ok(permit) = tx.reserve().await else { return };
            if permit.send(Hand::Reply { id, x: x.wrapping_mul(2) }).is_err() {
                return;
            }
        }
    }
}

/// One hand call: reserve + send the request, then receive the reply.
async fn hand_call<T, R>(tx: &T, rx: &mut R, x: u32) -> u32
where
    T: ConduitTx<Msg = HandFamily>,
    R: ConduitRx<Msg = HandFamily>,
{
    tx.reserve().await.unwrap().send(Hand::Request { id: x, x }).unwrap();
    let m = rx.recv().await.unwrap().unwrap();
    match *m.get::<HandFamily>() {
        Hand::Reply { id, x: y } if id == x => y,
        other => panic!("unexpected {other:?}"),
    }
}

async fn hand_min<C: Conduit<Msg = HandFamily>>(host: C, device: C, n: u64) -> Run {
    let (tx, mut rx) = host.split();
    let client = async {
        for i in 0..WARMUP {
            hand_call(&tx, &mut rx, i as u32).await;
        }
        let a0 = allocs();
        let t0 = Instant::now();
        for i in 0..n {
            let x = i as u32;
            assert_eq!(hand_call(&tx, &mut rx, x).await, x.wrapping_mul(2));
        }
        let elapsed = t0.elapsed();
        Run { elapsed, calls: n, allocs: allocs() - a0 }
    };
    match select(pin!(client), pin!(hand_server(device))).await {
        Either::First(run) => run,
        Either::Second(()) => panic!("the hand server ended"),
    }
}

// ---- baseline: hand-table ----

const ENTRIES: usize = 64;
const FREE: u32 = u32::MAX;

/// A fixed table of calls in flight: a signal per entry, the id each entry
/// waits for (`generation << 6 | slot`).
struct Table {
    signals: [Signal<M, u32>; ENTRIES],
    ids: [Cell<u32>; ENTRIES],
    generations: [Cell<u32>; ENTRIES],
    free: Cell<u64>,
}

impl Table {
    fn new() -> Self {
        Self {
            signals: core::array::from_fn(|_| Signal::new()),
            ids: core::array::from_fn(|_| Cell::new(FREE)),
            generations: core::array::from_fn(|_| Cell::new(0)),
            free: Cell::new(u64::MAX),
        }
    }

    fn claim(&self) -> (usize, u32) {
        let free = self.free.get();
        assert_ne!(free, 0, "more callers than entries");
        let slot = free.trailing_zeros() as usize;
        self.free.set(free & !(1 << slot));
        let id = (self.generations[slot].get() << 6) | slot as u32;
        self.ids[slot].set(id);
        self.signals[slot].reset();
        (slot, id)
    }

    fn release(&self, slot: usize) {
        self.ids[slot].set(FREE);
        let generation = &self.generations[slot];
        generation.set(generation.get().wrapping_add(1) & (u32::MAX >> 7));
        self.free.set(self.free.get() | (1 << slot));
    }

    /// The reader's routing: a reply for the call its entry waits for.
    fn route(&self, id: u32, x: u32) {
        let slot = (id as usize) % ENTRIES;
        if self.ids[slot].get() == id {
            self.signals[slot].signal(x);
        }
    }
}

async fn hand_table<C: Conduit<Msg = HandFamily>>(host: C, device: C, callers: usize, n: u64) -> Run {
    let (tx, mut rx) = host.split();
    let table = Table::new();
    let reader = async {
        while let Ok(Some(m)) = rx.recv().await {
            if let Hand::Reply { id, x } = *m.get::<HandFamily>() {
                table.route(id, x);
            }
        }
    };
    let call = async |x: u32| {
        let (slot, id) = table.claim();
        let answer = tokio::time::timeout(TIMEOUT, async {
            tx.reserve().await.unwrap().send(Hand::Request { id, x }).unwrap();
            table.signals[slot].wait().await
        })
        .await;
        table.release(slot);
        answer.expect("no timeout")
    };
    match select(pin!(timed(callers, n, call)), pin!(join(reader, hand_server(device)))).await {
        Either::First(run) => run,
        Either::Second(_) => panic!("the hand reader or server ended"),
    }
}

// ---- vox-rpc ----

async fn rpc<C: Conduit<Msg = RpcFamily>>(host: C, device: C, callers: usize, n: u64) -> Run {
    let host_calls: Arc<Calls<M, CALLERS, 64>> = Arc::new(Calls::new());
    let device_calls: Calls<M, 1, 16> = Calls::new();
    let client = Client::new(host_calls.clone(), TokioClock);
    let mut host_server = pin!(Server::new());
    // Room for as many requests owed as there are callers.
    let mut device_server =
        pin!(Server::<Nil, CALLERS, 256>::with_room().serve::<Double, _>(|x| Ok((*x).wrapping_mul(2))));
    let sessions = join(
        vox_rpc::run(host, &*host_calls, host_server.as_mut(), TokioClock),
        vox_rpc::run(device, &device_calls, device_server.as_mut(), TokioClock),
    );
    let call = async |x: u32| client.call::<Double>(x, TIMEOUT).await.unwrap();
    match select(pin!(timed(callers, n, call)), pin!(sessions)).await {
        Either::First(run) => run,
        Either::Second(ended) => panic!("the rpc sessions ended: {ended:?}"),
    }
}

// ---- postcard-rpc ----

mod prpc {
    use postcard_rpc::header::VarHeader;
    use postcard_rpc::server::impls::test_channels::dispatch_impl::{WireSpawnImpl, WireTxImpl};
    use postcard_rpc::{TopicDirection, define_dispatch, endpoints, topics};

    endpoints! {
        list = ENDPOINT_LIST;
        | EndpointTy | RequestTy | ResponseTy | Path     |
        | ---------- | --------- | ---------- | ----     |
        | Double     | u32       | u32        | "double" |
    }

    topics! {
        list = TOPICS_IN_LIST;
        direction = TopicDirection::ToServer;
        | TopicTy | MessageTy | Path |
        | ------- | --------- | ---- |
    }

    topics! {
        list = TOPICS_OUT_LIST;
        direction = TopicDirection::ToClient;
        | TopicTy | MessageTy | Path |
        | ------- | --------- | ---- |
    }

    pub struct Context;

    define_dispatch! {
        app: App;
        spawn_fn: spawn_fn;
        tx_impl: WireTxImpl;
        spawn_impl: WireSpawnImpl;
        context: Context;

        endpoints: {
            list: ENDPOINT_LIST;

            | EndpointTy | kind     | handler |
            | ---------- | ----     | ------- |
            | Double     | blocking | double  |
        };
        topics_in: {
            list: TOPICS_IN_LIST;

            | TopicTy | kind | handler |
            | ------- | ---- | ------- |
        };
        topics_out: {
            list: TOPICS_OUT_LIST;
        };
    }

    fn double(_context: &mut Context, _header: VarHeader, x: u32) -> u32 {
        x.wrapping_mul(2)
    }
}

async fn postcard_rpc(callers: usize, n: u64) -> Run {
    use postcard_rpc::header::VarSeqKind;
    use postcard_rpc::host_client::test_channels::new_from_channels;
    use postcard_rpc::server::Dispatch;
    use postcard_rpc::server::impls::test_channels::dispatch_impl::{Settings, new_server};
    use postcard_rpc::server::impls::test_channels::{ChannelWireRx, ChannelWireSpawn, ChannelWireTx};

    let (client_tx, server_rx) = tokio::sync::mpsc::channel(CALLERS);
    let (server_tx, client_rx) = tokio::sync::mpsc::channel(CALLERS);
    let app = prpc::App::new(prpc::Context, ChannelWireSpawn);
    let kkind = app.min_key_len();
    let mut server = new_server(
        app,
        Settings { tx: ChannelWireTx::new(server_tx), rx: ChannelWireRx::new(server_rx), buf: MTU, kkind },
    );
    let client = new_from_channels(client_tx, client_rx, VarSeqKind::Seq2);
    let call = async |x: u32| {
        let answer = tokio::time::timeout(TIMEOUT, client.send_resp::<prpc::Double>(&x)).await;
        answer.expect("no timeout").unwrap()
    };
    let run = match select(pin!(timed(callers, n, call)), pin!(server.run())).await {
        Either::First(run) => run,
        Either::Second(_) => panic!("the postcard-rpc server ended"),
    };
    client.close();
    run
}

// ---- wire bytes ----

struct WireRow {
    call: &'static str,
    hand: (usize, usize),
    rpc: (usize, usize),
}

fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut buf = [0u8; MTU];
    postcard::to_slice(value, &mut buf).unwrap().len()
}

/// The vox-rpc request and reply frames of one call with request body
/// `req` and response body `resp` (each already postcard-encoded).
fn rpc_frames(endpoint: u16, req: &[u8], resp: &[u8]) -> (usize, usize) {
    use vox_rpc::{Body, Frame, Request};
    let request = Frame::Request(Request { id: ID, endpoint, deadline: DEADLINE_DELTA, body: Body::Bytes(req) });
    let reply = Frame::Reply { id: ID, body: Body::Bytes(resp) };
    (encoded_len(&request), encoded_len(&reply))
}

/// The call id in both protocols.
const ID: u32 = 5;
/// Deadline of a request minus that of the previous one (ms): calls a few
/// ms apart with the same timeout.
const DEADLINE_DELTA: i64 = 3;

fn body<T: Serialize>(value: T) -> Vec<u8> {
    let mut buf = [0u8; MTU];
    postcard::to_slice(&value, &mut buf).unwrap().to_vec()
}

fn wire_rows() -> Vec<WireRow> {
    use vox_demo_protocol::{Command, DemoMsg, Echo, Outcome, Pin, ReadSensor, SetOutput, sensor_value};
    use vox_rpc::Endpoint;
    let hand = |command: Command<'_>, outcome: Outcome<'_>| {
        (encoded_len(&DemoMsg::Request { id: ID, command }), encoded_len(&DemoMsg::Reply { id: ID, outcome }))
    };
    let payload = *b"8 bytes!";
    let pin = Pin { pin: 5, high: true };
    let set_req: <SetOutput as Endpoint>::Req<'_> = pin;
    let set_resp: <SetOutput as Endpoint>::Resp<'_> = ();
    let read_req: <ReadSensor as Endpoint>::Req<'_> = 3;
    let read_resp: <ReadSensor as Endpoint>::Resp<'_> = sensor_value(3);
    let echo_req: <Echo as Endpoint>::Req<'_> = &payload;
    let echo_resp: <Echo as Endpoint>::Resp<'_> = &payload;
    vec![
        WireRow {
            call: "SetOutput(pin 5, high) → ok",
            hand: hand(Command::SetOutput { pin: pin.pin, high: pin.high }, Outcome::Done),
            rpc: rpc_frames(0, &body(set_req), &body(set_resp)),
        },
        WireRow {
            call: "ReadSensor(3) → 260",
            hand: hand(Command::ReadSensor { sensor: 3 }, Outcome::Value(sensor_value(3))),
            rpc: rpc_frames(1, &body(read_req), &body(read_resp)),
        },
        WireRow {
            call: "Echo(8 B) → 8 B",
            hand: hand(Command::Echo(&payload), Outcome::Echo(&payload)),
            rpc: rpc_frames(2, &body(echo_req), &body(echo_resp)),
        },
    ]
}

// ---- report ----

fn ns(run: &Run) -> String {
    format!("{:.0} ns", run.ns_per_call())
}

fn per_sec(run: &Run) -> String {
    format!("{:.0}", run.calls_per_sec())
}

fn main() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kinds = [Kind::Bare, Kind::Stable];

    let mut latency = Vec::new();
    let mut throughput = Vec::new();
    for kind in kinds {
        let rpc1 = measure(|n| rt.block_on(on_conduits!(kind, RpcFamily, |h, d| rpc(h, d, 1, n))));
        let min = measure(|n| rt.block_on(on_conduits!(kind, HandFamily, |h, d| hand_min(h, d, n))));
        let table1 = measure(|n| rt.block_on(on_conduits!(kind, HandFamily, |h, d| hand_table(h, d, 1, n))));
        latency.push((kind, rpc1, min, table1));
        let rpc16 = measure(|n| rt.block_on(on_conduits!(kind, RpcFamily, |h, d| rpc(h, d, CALLERS, n))));
        let table16 = measure(|n| rt.block_on(on_conduits!(kind, HandFamily, |h, d| hand_table(h, d, CALLERS, n))));
        throughput.push((kind, rpc16, table16));
    }
    let prpc1 = measure(|n| rt.block_on(postcard_rpc(1, n)));
    let prpc16 = measure(|n| rt.block_on(postcard_rpc(CALLERS, n)));

    println!(
        "vox-rpc calls (u32 → doubled u32, {} ms deadline) against hand-written request/reply on the same conduits \
         and postcard-rpc, over in-memory links, one tokio current_thread runtime, best of {REPEATS} runs of ~{TARGET_SECS} s \
         each; absolute numbers are this machine's, compare the ratios.",
        TIMEOUT.as_millis()
    );
    println!();
    println!("One call in flight (time per call):");
    println!();
    println!("| conduit | rpc | hand-min | hand-table | rpc/hand time | rpc/hand-min | rpc allocs/call | note |");
    println!("|---|--:|--:|--:|--:|--:|--:|---|");
    for (kind, rpc1, min, table1) in &latency {
        println!(
            "| {} | {} | {} | {} | {:.2} (goal ≤ 1.2) | {:.2} (goal ≤ 2.0) | {:.2} | |",
            kind.name(),
            ns(rpc1),
            ns(min),
            ns(table1),
            rpc1.ns_per_call() / table1.ns_per_call(),
            rpc1.ns_per_call() / min.ns_per_call(),
            rpc1.allocs_per_call(),
        );
    }
    println!(
        "| postcard-rpc | {} | – | – | – | – | {:.2} | postcard-rpc 0.12.1 over its tokio mpsc test channels; allocates per frame |",
        ns(&prpc1),
        prpc1.allocs_per_call(),
    );
    println!();
    println!("{CALLERS} concurrent callers (calls/s):");
    println!();
    println!("| conduit | rpc | hand-table | rpc / hand-table | rpc allocs/call | note |");
    println!("|---|--:|--:|--:|--:|---|");
    for (kind, rpc16, table16) in &throughput {
        println!(
            "| {} | {} | {} | {:.2} (goal ≥ 0.8) | {:.2} | |",
            kind.name(),
            per_sec(rpc16),
            per_sec(table16),
            rpc16.calls_per_sec() / table16.calls_per_sec(),
            rpc16.allocs_per_call(),
        );
    }
    println!(
        "| postcard-rpc | {} | – | – | {:.2} | postcard-rpc 0.12.1 over its tokio mpsc test channels; allocates per frame |",
        per_sec(&prpc16),
        prpc16.allocs_per_call(),
    );
    println!();
    println!(
        "hand-min: reserve + send, then recv (no ids, no timeout); hand-table: a 64-entry table of signals, \
         one reader routing replies by id, tokio::time::timeout per call; rpc: Client::call with a \
         {}-entry Calls table, a server with room for {CALLERS} requests owed. Stable: StableConfig::DEFAULT.",
        CALLERS
    );

    flood_row(&rt);
    topic_rows(&rt);

    let rows = wire_rows();
    println!();
    println!(
        "Wire bytes per call (request + reply; id {ID}, deadline delta {DEADLINE_DELTA} ms, conduit framing not counted):"
    );
    println!();
    println!("| call | hand request | rpc request | hand reply | rpc reply | hand total | rpc total |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.call,
            r.hand.0,
            r.rpc.0,
            r.hand.1,
            r.rpc.1,
            r.hand.0 + r.hand.1,
            r.rpc.0 + r.rpc.1
        );
    }
    let count = rows.len() as f64;
    let mean = |f: fn(&WireRow) -> usize| rows.iter().map(f).sum::<usize>() as f64 / count;
    let (hand_req, rpc_req) = (mean(|r| r.hand.0), mean(|r| r.rpc.0));
    let (hand_rep, rpc_rep) = (mean(|r| r.hand.1), mean(|r| r.rpc.1));
    println!(
        "| mean | {hand_req:.2} | {rpc_req:.2} | {hand_rep:.2} | {rpc_rep:.2} | {:.2} | {:.2} |",
        hand_req + hand_rep,
        rpc_req + rpc_rep
    );
    println!();
    println!(
        "rpc envelope vs hand protocol: request {:+.2} B, reply {:+.2} B (goal: at most +2 B each way)",
        rpc_req - hand_req,
        rpc_rep - hand_rep
    );
    println!();
    println!("(whole bench: {:.1} s)", started.elapsed().as_secs_f64());
}

// ---- flood: a latest-only topic at twice the line rate beside calls ----

mod flood {
    use super::M;
    use core::time::Duration;
    use embassy_futures::select::{Either, select};
    use std::sync::Arc;
    use std::time::Instant;
    use vox_conduit_bare::BareConduit;
    use vox_link_embedded::host::TokioClock;
    use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
    use vox_link_embedded::{FramedLinkStorage, FramedPort, SharedLinkChannel};
    use vox_rpc::{Calls, Client, Delivery, Publication, RpcFamily, Server, Subscription};
    use vox_types::{LinkSource, SessionRole};

    /// The line: 1 Mbit/s each way.
    pub const RATE: f64 = 125_000.0;
    /// Samples held unsent and in flight on the latest-only topic: K = 1.
    pub const K: usize = 1;

    vox_rpc::declare! {
        pub endpoint Ping = "flood/ping": u32 => u32;
        pub topic Level = "flood/level": (u32, u32, u32, u32, u32, u32);
    }

    type Line = BytePipe<M, 65536>;

    /// A writer that sends at most `RATE` bytes per second.
    /// The line: busy until `busy_until`; a write that would take it more
    /// than `BURST` ahead of now waits until it is within it (a token
    /// bucket one millisecond deep: tokio sleeps in whole milliseconds, and
    /// an idle line gathers no credit).
    struct Paced<W> {
        inner: W,
        busy_until: Instant,
    }

    /// Line time a write may run ahead of the clock.
    const BURST: Duration = Duration::from_millis(1);

    impl<W: embedded_io_async::ErrorType> embedded_io_async::ErrorType for Paced<W> {
        type Error = W::Error;
    }

    impl<W: embedded_io_async::Write> embedded_io_async::Write for Paced<W> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
            let now = Instant::now();
            let free_at = self.busy_until.max(now);
            if free_at > now + BURST {
                tokio::time::sleep_until((free_at - BURST).into()).await;
            }
            let n = self.inner.write(buf).await?;
            self.busy_until = free_at + Duration::from_secs_f64(n as f64 / RATE);
            Ok(n)
        }
        async fn flush(&mut self) -> Result<(), W::Error> {
            self.inner.flush().await
        }
    }

    fn end(
        from: Arc<Line>,
        to: Arc<Line>,
    ) -> (SharedLinkChannel<M, vox_link_embedded::FramedLink<M, 4, 256>>, impl Future<Output = ()>) {
        let links = SharedLinkChannel::new();
        let offer = links.clone();
        let serve = async move {
            let port = FramedPort::new(Arc::new(FramedLinkStorage::<M, 4, 256>::new()));
            let (mut rx, mut tx) = (PipeReader(from), Paced { inner: PipeWriter(to), busy_until: Instant::now() });
            port.serve(&mut rx, &mut tx, &TokioClock, |link| offer.offer(link)).await;
        };
        (links, serve)
    }

    /// Call latencies of `calls` sequential calls, with the topic flooded
    /// at twice the line rate or quiet; and one sample frame's bytes.
    pub async fn run(flooded: bool, calls: usize) -> (Vec<Duration>, u32, f64) {
        let (to_device, to_host) = (Arc::new(Line::new()), Arc::new(Line::new()));
        let (mut host_links, host_line) = end(to_host.clone(), to_device.clone());
        let (mut device_links, device_line) = end(to_device, to_host);
        let level: Publication<Level, M, { K + 1 }, 32> = Publication::new(Delivery::Latest);
        let subscription: Subscription<Level, M, K, 32> = Subscription::new();
        let host_calls: Arc<Calls<M, 4, 64>> = Arc::new(Calls::new());
        let device_calls: Calls<M, 1, 16> = Calls::new();
        let client = Client::new(host_calls.clone(), TokioClock);
        let sessions = async {
            let (host, device) = embassy_futures::join::join(
                async {
                    BareConduit::<_, RpcFamily>::connect(host_links.next_link().await.unwrap(), SessionRole::Acceptor)
                        .await
                },
                async {
                    BareConduit::<_, RpcFamily>::connect(
                        device_links.next_link().await.unwrap(),
                        SessionRole::Initiator,
                    )
                    .await
                },
            )
            .await;
            let mut host_server = core::pin::pin!(Server::new().subscribe(&subscription));
            let mut device_server = core::pin::pin!(Server::new().serve::<Ping, _>(|n| Ok(*n)).publish(&level));
            embassy_futures::join::join(
                vox_rpc::run(host.unwrap(), &*host_calls, host_server.as_mut(), TokioClock),
                vox_rpc::run(device.unwrap(), &device_calls, device_server.as_mut(), TokioClock),
            )
            .await
        };
        // Samples of 6 varints (about 20 bytes with the envelope and
        // framing); offered at twice what the line carries, in 1 ms bursts.
        let frame = 22.0;
        let per_ms = ((2.0 * RATE / frame) / 1000.0).ceil() as u32;
        let publisher = async {
            let mut n = 0u32;
            loop {
                if flooded {
                    for _ in 0..per_ms {
                        let _ = level.try_publish(&(n, n, n, n, n, n));
                        n = n.wrapping_add(1);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let consumed = core::cell::Cell::new(0u64);
        let consumer = async {
            let mut samples = subscription.samples();
            loop {
                drop(samples.next().await);
                consumed.set(consumed.get() + 1);
            }
        };
        let caller = async {
            // The session is up once the first call answers.
            client.call::<Ping>(0, Duration::from_secs(5)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut latencies = Vec::with_capacity(calls);
            let (start, before) = (Instant::now(), consumed.get());
            for i in 0..calls as u32 {
                let t0 = Instant::now();
                client.call::<Ping>(i, Duration::from_secs(5)).await.unwrap();
                latencies.push(t0.elapsed());
            }
            (latencies, (consumed.get() - before) as f64 / start.elapsed().as_secs_f64())
        };
        let background = embassy_futures::join::join5(host_line, device_line, sessions, publisher, consumer);
        let (mut latencies, samples_per_sec) = match select(caller, background).await {
            Either::First(done) => done,
            Either::Second(_) => panic!("the flood's sessions ended"),
        };
        latencies.sort();
        (latencies, frame as u32, samples_per_sec)
    }
}

fn p99(l: &[Duration]) -> Duration {
    l[(l.len() - 1) * 99 / 100]
}

fn flood_row(rt: &tokio::runtime::Runtime) {
    let (quiet, _, _) = rt.block_on(flood::run(false, 400));
    let (flooded, frame, samples) = rt.block_on(flood::run(true, 400));
    let frame_time = Duration::from_secs_f64(f64::from(frame) / flood::RATE);
    let bound = p99(&quiet) + frame_time * (flood::K as u32 + 1) + Duration::from_millis(1);
    println!();
    println!(
        "Calls beside a latest-only topic offered at twice the line rate (a paced in-memory line at 1 Mbit/s each way, \
         bare conduit, K = {}, 400 calls one at a time):",
        flood::K
    );
    println!();
    println!(
        "| row | p99 quiet | p99 flooded | samples delivered | bound: p99 quiet + (K + 1) × frame time + 1 ms | flooded / quiet p99 |"
    );
    println!("|---|--:|--:|--:|--:|--:|");
    println!(
        "| flood | {:.0} µs | {:.0} µs | {:.0}/s | {:.0} µs | {:.2} (goal ≤ 2.0) |",
        p99(&quiet).as_secs_f64() * 1e6,
        p99(&flooded).as_secs_f64() * 1e6,
        samples,
        bound.as_secs_f64() * 1e6,
        p99(&flooded).as_secs_f64() / p99(&quiet).as_secs_f64()
    );
    println!(
        "(The latest-only topic keeps at most K = {} sample in flight until the subscriber credits it, so the offered \
         flood never fills the line: the publisher coalesces.)",
        flood::K
    );
}

// ---- reliable topic throughput against the raw conduit ----

vox_rpc::declare! {
    pub topic Counter = "bench/counter": u32;
}

/// `n` samples of a reliable topic from the device to the host (a window
/// of 16, as fast as credit allows), consumed as they come.
async fn topic_stream<C: Conduit<Msg = RpcFamily>>(host: C, device: C, n: u64) -> Run {
    let publication: vox_rpc::Publication<Counter, M, 16, 16> = vox_rpc::Publication::new(vox_rpc::Delivery::Reliable);
    let subscription: vox_rpc::Subscription<Counter, M, 16, 16> = vox_rpc::Subscription::new();
    let (host_calls, device_calls) = (Calls::<M, 1, 16>::new(), Calls::<M, 1, 16>::new());
    let mut host_server = pin!(Server::new().subscribe(&subscription));
    let mut device_server = pin!(Server::new().publish(&publication));
    let sessions = join(
        vox_rpc::run(host, &host_calls, host_server.as_mut(), TokioClock),
        vox_rpc::run(device, &device_calls, device_server.as_mut(), TokioClock),
    );
    let work = async {
        let start = Instant::now();
        let publishing = async {
            for i in 0..n as u32 {
                publication.publish(&i).await.unwrap();
            }
        };
        let consuming = async {
            let mut samples = subscription.samples();
            for i in 0..n as u32 {
                assert_eq!(samples.next().await.get(), Some(i));
            }
        };
        join(publishing, consuming).await;
        Run { elapsed: start.elapsed(), calls: n, allocs: 0 }
    };
    match select(pin!(work), pin!(sessions)).await {
        Either::First(run) => run,
        Either::Second(ended) => panic!("the topic's sessions ended: {ended:?}"),
    }
}

/// `n` messages one way on the conduit itself: a sending task, a receiving
/// task.
async fn raw_stream<C: Conduit<Msg = HandFamily>>(host: C, device: C, n: u64) -> Run {
    let (tx, _keep) = device.split();
    let (_keep2, mut rx) = host.split();
    let start = Instant::now();
    let sending = async {
        for i in 0..n as u32 {
            tx.reserve().await.unwrap().send(Hand::Request { id: i, x: i }).unwrap();
        }
    };
    let receiving = async {
        for _ in 0..n {
            rx.recv().await.unwrap().unwrap();
        }
    };
    join(sending, receiving).await;
    Run { elapsed: start.elapsed(), calls: n, allocs: 0 }
}

fn topic_rows(rt: &tokio::runtime::Runtime) {
    println!();
    println!("A reliable topic (window 16, credit per sample consumed) against the raw conduit, one way:");
    println!();
    println!("| conduit | reliable topic samples/s | raw conduit messages/s | topic / raw |");
    println!("|---|--:|--:|--:|");
    for kind in [Kind::Bare, Kind::Stable] {
        let topic = measure(|n| rt.block_on(on_conduits!(kind, RpcFamily, |h, d| topic_stream(h, d, n))));
        let raw = measure(|n| rt.block_on(on_conduits!(kind, HandFamily, |h, d| raw_stream(h, d, n))));
        println!(
            "| {} | {} | {} | {:.2} |",
            kind.name(),
            per_sec(&topic),
            per_sec(&raw),
            topic.calls_per_sec() / raw.calls_per_sec()
        );
    }
}
