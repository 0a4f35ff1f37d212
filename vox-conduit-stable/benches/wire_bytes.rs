//! Wire bytes per call of the demo's call mix (SetOutput, ReadSensor and
//! a 48-byte Echo, as `vox-rpc` frames, one call at a time) through
//! `BareConduit` and `StableConduit` over `FramedLink` (COBS + CRC-32) on
//! an in-memory byte stream, with the demo's UART settings and the
//! device's and host's buffer sizes, bare and stable in the same run. The
//! bytes come from the links' own statistics (both directions, the
//! handshake excluded); the goal is stable/bare ≤ 1.25.
//!
//! `cargo bench -p vox-conduit-stable --features std --bench wire_bytes`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use core::pin::pin;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::future::{Either, select};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::time::Duration;
use vox_conduit_bare::BareConduit;
use vox_conduit_stable::{StableConduit, StableStorage};
use vox_demo_protocol::{Echo, Pin, ReadSensor, SetOutput, UART_CONFIG, UART_MTU, sensor_value};
use vox_link_embedded::framed::{FramedLink, FramedLinkStorage, FramedStats};
use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
use vox_link_embedded::{FramedPort, LinkChannel};
use vox_rpc::{Body, Endpoint, Frame, Request, RpcFamily};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};

type M = CriticalSectionRawMutex;
/// The device's link and conduit storage (`vox-demo-device`).
type DeviceLink = FramedLink<M, 2, UART_MTU>;
type DeviceStorage = StableStorage<M, 1024, 16, 512, 8>;
/// The host's (`device_host`).
type HostLink = FramedLink<M, 8, UART_MTU>;
type HostStorage = StableStorage<M, 4096, 64, 4096, 64>;
type Pipe = BytePipe<M, 4096>;

const CALLS: u32 = 3_000;
/// Calls before counting starts (the handshake is not a call's cost).
const WARM_UP: u32 = 3;

/// A clock on tokio's time (the library's `TokioClock` needs the `tokio`
/// feature, which would turn on `send` for this crate's benches).
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

fn body<T: serde::Serialize>(value: T) -> Vec<u8> {
    postcard::to_allocvec(&value).unwrap()
}

/// The mix: (endpoint, request body, reply body), postcard-encoded.
fn mix() -> Vec<(u16, Vec<u8>, Vec<u8>)> {
    let payload = [0x5au8; 48];
    let pin: <SetOutput as Endpoint>::Req<'_> = Pin { pin: 5, high: true };
    let set_resp: <SetOutput as Endpoint>::Resp<'_> = ();
    let read_req: <ReadSensor as Endpoint>::Req<'_> = 3;
    let read_resp: <ReadSensor as Endpoint>::Resp<'_> = sensor_value(3);
    let echo: <Echo as Endpoint>::Req<'_> = &payload;
    vec![(0, body(pin), body(set_resp)), (1, body(read_req), body(read_resp)), (2, body(echo), body(echo))]
}

/// The host calls, the device answers; `counters` reads the device's
/// link statistics. Returns the statistics over the counted calls.
async fn calls<D: Conduit<Msg = RpcFamily>, H: Conduit<Msg = RpcFamily>>(
    device: D,
    host: H,
    counters: impl Fn() -> FramedStats,
) -> FramedStats {
    let mix = mix();
    let (dtx, mut drx) = device.split();
    let (htx, mut hrx) = host.split();
    let serve = async {
        loop {
            let Ok(Some(msg)) = drx.recv().await else { return };
            let Frame::Request(r) = *msg.get::<RpcFamily>() else { panic!("a request") };
            let (_, _, resp) = &mix[usize::from(r.endpoint)];
            dtx.reserve().await.unwrap().send(Frame::Reply { id: r.id, body: Body::Bytes(resp) }).unwrap();
        }
    };
    let call = async {
        let mut start = FramedStats::default();
        for i in 0..WARM_UP + CALLS {
            if i == WARM_UP {
                start = counters();
            }
            let (endpoint, req, _) = &mix[i as usize % mix.len()];
            let request = Request { id: i % 64, endpoint: *endpoint, deadline: 3, body: Body::Bytes(req) };
            htx.reserve().await.unwrap().send(Frame::Request(request)).unwrap();
            let reply = hrx.recv().await.ok().flatten().expect("a reply");
            assert!(matches!(*reply.get::<RpcFamily>(), Frame::Reply { id, .. } if id == i % 64));
        }
        let end = counters();
        FramedStats {
            frames_sent: end.frames_sent - start.frames_sent,
            frames_received: end.frames_received - start.frames_received,
            wire_bytes_sent: end.wire_bytes_sent - start.wire_bytes_sent,
            wire_bytes_received: end.wire_bytes_received - start.wire_bytes_received,
            payload_bytes_sent: end.payload_bytes_sent - start.payload_bytes_sent,
            payload_bytes_received: end.payload_bytes_received - start.payload_bytes_received,
            ..FramedStats::default()
        }
    };
    match select(pin!(serve), pin!(call)).await {
        Either::Right((stats, _)) => stats,
        Either::Left(_) => panic!("the device stopped serving"),
    }
}

async fn bare_run() -> FramedStats {
    let (to_device, to_host) = (Pipe::new(), Pipe::new());
    let (device_link, device_runner) = FramedLinkStorage::<M, 2, UART_MTU>::new_shared();
    let (host_link, host_runner) = FramedLinkStorage::<M, 8, UART_MTU>::new_shared();
    let counters = device_runner.stats_handle();
    let (mut dr, mut dw, mut hr, mut hw) =
        (PipeReader(&to_device), PipeWriter(&to_host), PipeReader(&to_host), PipeWriter(&to_device));
    let links = async { tokio::join!(device_runner.run(&mut dr, &mut dw), host_runner.run(&mut hr, &mut hw)) };
    let exchange = async {
        let (device, host) = tokio::join!(
            BareConduit::<_, RpcFamily>::connect(device_link, SessionRole::Initiator),
            BareConduit::<_, RpcFamily>::connect(host_link, SessionRole::Acceptor)
        );
        calls(device.unwrap(), host.unwrap(), || counters.get()).await
    };
    match select(pin!(links), pin!(exchange)).await {
        Either::Right((stats, _)) => stats,
        Either::Left(_) => panic!("a link ended"),
    }
}

async fn stable_run() -> FramedStats {
    let clock = TokioClock(tokio::time::Instant::now());
    let (to_device, to_host) = (Pipe::new(), Pipe::new());
    let device_port = FramedPort::new(std::sync::Arc::new(FramedLinkStorage::<M, 2, UART_MTU>::new()));
    let host_port = FramedPort::new(std::sync::Arc::new(FramedLinkStorage::<M, 8, UART_MTU>::new()));
    let device_links = LinkChannel::<M, DeviceLink>::new();
    let host_links = LinkChannel::<M, HostLink>::new();
    let (device, device_driver) =
        StableConduit::<RpcFamily, DeviceStorage>::initiator(std::sync::Arc::new(DeviceStorage::new()), UART_CONFIG)
            .unwrap();
    let (host, host_driver) =
        StableConduit::<RpcFamily, HostStorage>::acceptor(std::sync::Arc::new(HostStorage::new()), UART_CONFIG)
            .unwrap();
    let (mut dr, mut dw, mut hr, mut hw) =
        (PipeReader(&to_device), PipeWriter(&to_host), PipeReader(&to_host), PipeWriter(&to_device));
    let background = async {
        tokio::join!(
            device_port.serve(&mut dr, &mut dw, &clock, |l| device_links.offer(l)),
            host_port.serve(&mut hr, &mut hw, &clock, |l| host_links.offer(l)),
            device_driver.run(device_links.receiver(), clock),
            host_driver.run(host_links.receiver(), ChaCha20Rng::seed_from_u64(1), clock),
        )
    };
    match select(pin!(background), pin!(calls(device, host, || device_port.stats()))).await {
        Either::Right((stats, _)) => stats,
        Either::Left(_) => panic!("the stable session ended"),
    }
}

fn per_call(s: &FramedStats) -> (f64, f64, f64) {
    let calls = f64::from(CALLS);
    (
        (s.wire_bytes_sent + s.wire_bytes_received) as f64 / calls,
        (s.payload_bytes_sent + s.payload_bytes_received) as f64 / calls,
        f64::from(s.frames_sent + s.frames_received) / calls,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bare = per_call(&rt.block_on(bare_run()));
    let stable = per_call(&rt.block_on(stable_run()));
    println!(
        "demo call mix (SetOutput, ReadSensor, Echo 48 B as vox-rpc frames), one call at a time, {CALLS} calls over FramedLink, UART_CONFIG"
    );
    println!("| conduit | wire bytes per call | payload bytes per call | frames per call |");
    println!("|---------|--------------------:|-----------------------:|----------------:|");
    for (name, (wire, payload, frames)) in [("BareConduit", bare), ("StableConduit", stable)] {
        println!("| {name} | {wire:.1} | {payload:.1} | {frames:.2} |");
    }
    println!("stable/bare wire bytes per call: {:.3} (goal <= 1.25)", stable.0 / bare.0);
}
