//! The demo device's application, the same on every board and in a host
//! process: a task that keeps a [`FramedLink`] attached to the board's
//! byte stream (a UART, or USB CDC-ACM), and sessions of a
//! [`StableConduit`] (initiator) carrying calls ([`vox_rpc`]): the device
//! serves the host's calls (`SetOutput`, `ReadSensor`, `Echo`), calls the
//! host (its clock, once per session) and publishes topics (a telemetry
//! sample every 20 ms, reliable; its log lines, lossy).
//!
//! Everything the application needs is passed in: where its state lives
//! (a [`DeviceMemory`]: [`StaticMemory`] on a board, [`SharedMemory`] per
//! device in a host process) and the [`Clock`] (`EmbassyClock` on a board,
//! a simulated clock in tests).
//!
//! A firmware spawns [`serial_port`] (or calls [`run_link`] in its own
//! loop, e.g. once per USB connection) and [`sessions`]; it supplies the
//! time driver, the executor and the byte stream. A host process runs
//! [`run`] per device; dropping its future stops the device, and running
//! it again on fresh memory reboots it.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

#[macro_use]
mod log;

use core::convert::Infallible;
use core::time::Duration;
use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, Write};
use vox_conduit_stable::{SessionError, StableConduit, StableStorage};
use vox_demo_protocol::{Echo, HostTime, Log, ReadSensor, Sample, SetOutput, Telemetry, UART_CONFIG, UART_MTU};
use vox_link_embedded::LinkChannel;
use vox_link_embedded::{FramedLink, FramedLinkStorage, FramedPort};
use vox_rpc::{Calls, Client, Delivery, Publication, RpcFamily, Server};
/// A board's clock: embassy-time (the firmware supplies its time driver).
pub use vox_types::EmbassyClock;
use vox_types::{Clock, StorageRef};

/// Every lock is taken in thread mode only (never from an interrupt), so
/// the cheapest mutex does; no interrupt is ever masked by the conduit.
#[cfg(target_os = "none")]
pub type DeviceMutex = ThreadModeMutex;

/// embassy-sync's [`ThreadModeRawMutex`](embassy_sync::blocking_mutex::raw::ThreadModeRawMutex)
/// with its check (thread mode, else a panic) in one routine rather than
/// inlined at each of the ~70 places that lock: the same mutex, 4 bytes
/// of flash per lock instead of ~10.
#[cfg(target_os = "none")]
pub struct ThreadModeMutex(embassy_sync::blocking_mutex::raw::ThreadModeRawMutex);

/// Panics unless in thread mode: `ThreadModeRawMutex`'s own check, taken
/// once here.
#[cfg(target_os = "none")]
#[inline(never)]
fn assert_thread_mode() {
    use embassy_sync::blocking_mutex::raw::RawMutex;
    embassy_sync::blocking_mutex::raw::ThreadModeRawMutex::new().lock(|| ());
}

#[cfg(target_os = "none")]
// SAFETY: `lock` runs `f` only in thread mode (the check above panics
// anywhere else), as `ThreadModeRawMutex` does: one execution context,
// never preempted by itself, so `f` never runs concurrently with another
// lock's closure. (Send and Sync come from the inner mutex.)
unsafe impl embassy_sync::blocking_mutex::raw::RawMutex for ThreadModeMutex {
    const INIT: Self = Self(embassy_sync::blocking_mutex::raw::ThreadModeRawMutex::new());
    fn lock<R>(&self, f: impl FnOnce() -> R) -> R {
        assert_thread_mode();
        f()
    }
}
/// Host builds (a device in a host process): a mutex that exists there.
#[cfg(not(target_os = "none"))]
pub type DeviceMutex = embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// Largest frame payload on the UART.
pub const MTU: usize = UART_MTU;
/// Frame slots each way on the UART link: the conduit copies each
/// received message out at once, so two keep the line busy.
pub const LINK_SLOTS: usize = 2;
/// Bytes of unacknowledged messages the device keeps for replay.
pub const REPLAY_BYTES: usize = 1024;
/// Unacknowledged messages the device keeps for replay.
pub const REPLAY_MSGS: usize = 16;
/// Bytes of received messages waiting for the application (the window
/// the device grants the host).
pub const RX_BYTES: usize = 512;
/// Received messages waiting for the application.
pub const RX_MSGS: usize = 8;

/// The framed link on the UART.
pub type UartLink = FramedLink<DeviceMutex, LINK_SLOTS, MTU>;
/// The UART link's storage (its slots and statistics).
pub type UartLinkStorage = FramedLinkStorage<DeviceMutex, LINK_SLOTS, MTU>;
/// Hands each new link on the byte stream to the conduit.
pub type Links = LinkChannel<DeviceMutex, UartLink>;
/// The device's conduit storage.
pub type DeviceStorage = StableStorage<DeviceMutex, REPLAY_BYTES, REPLAY_MSGS, RX_BYTES, RX_MSGS>;
/// The device's conduit: rpc frames.
pub type DeviceConduit = StableConduit<RpcFamily, DeviceStorage>;
/// The device's calls to the host: one at a time (the host's clock),
/// answers of up to 24 bytes, up to 4 host endpoints, 2 callers waiting
/// in order.
pub type DeviceCalls = Calls<DeviceMutex, 1, 24, 4, 2>;
/// The device's telemetry: 4 samples held until the host credits them
/// (reliable: publishing waits when the host does not read).
pub type TelemetryPublication = Publication<Telemetry, DeviceMutex, 4, 16>;
/// The device's log: the last 4 lines of up to 40 bytes (lossy: the
/// logger never waits; an interrupt-safe mutex, so interrupt handlers may
/// log too).
pub type LogPublication = Publication<Log, embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 4, 40>;
/// With feature `defmt-conduit`, the device's defmt log: the program's
/// defmt global logger, whose frames (the newest 4, of up to 46 bytes)
/// go to the host on the [`vox_rpc::DefmtFrames`] topic; lossy, so
/// logging never waits, and interrupt handlers log too. On the target
/// only: one global logger per program, while a host process may run
/// many devices.
#[cfg(all(feature = "defmt-conduit", target_os = "none"))]
pub static DEFMT_LOG: vox_rpc::DefmtLogger<4, 48> = vox_rpc::DefmtLogger::new();
#[cfg(all(feature = "defmt-conduit", target_os = "none"))]
vox_rpc::defmt_global_logger!(DEFMT_LOG);

/// Requests of the host the device holds room for (the host keeps at most
/// this many unanswered).
pub const SERVE_ROOM: usize = 4;
/// Bytes to hold requests until the UART has room for their answers.
pub const SERVE_ARENA: usize = 64;

/// Where a device's state lives: its link storage, the channel that hands
/// links to the conduit, and the conduit's storage. Cheap to clone (a
/// unit struct, or shared handles): each task keeps a copy.
// r[impl found.device-host]
pub trait DeviceMemory: Clone {
    /// The UART link's storage.
    fn link(&self) -> StorageRef<UartLinkStorage>;
    /// The channel from the byte-stream task to the sessions.
    fn links(&self) -> &Links;
    /// The conduit's storage.
    fn conduit(&self) -> StorageRef<DeviceStorage>;
    /// The table of the device's calls to the host.
    fn calls(&self) -> StorageRef<DeviceCalls>;
    /// The telemetry topic.
    fn telemetry(&self) -> StorageRef<TelemetryPublication>;
    /// The log topic.
    fn log(&self) -> StorageRef<LogPublication>;
}

static LINK_STORAGE: UartLinkStorage = FramedLinkStorage::new();
static LINKS: Links = LinkChannel::new();
static CONDUIT_STORAGE: DeviceStorage = StableStorage::new();
static CALLS: DeviceCalls = Calls::new();
static TELEMETRY: TelemetryPublication = Publication::new(Delivery::Reliable);
static LOG: LogPublication = Publication::new(Delivery::Lossy);

/// A board's memory: the crate's `static`s (one device per program; no
/// allocator). Costs nothing at run time: a unit struct.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticMemory;

impl DeviceMemory for StaticMemory {
    fn link(&self) -> StorageRef<UartLinkStorage> {
        StorageRef::Static(&LINK_STORAGE)
    }
    fn links(&self) -> &Links {
        &LINKS
    }
    fn conduit(&self) -> StorageRef<DeviceStorage> {
        StorageRef::Static(&CONDUIT_STORAGE)
    }
    fn calls(&self) -> StorageRef<DeviceCalls> {
        StorageRef::Static(&CALLS)
    }
    fn telemetry(&self) -> StorageRef<TelemetryPublication> {
        StorageRef::Static(&TELEMETRY)
    }
    fn log(&self) -> StorageRef<LogPublication> {
        StorageRef::Static(&LOG)
    }
}

/// A device's memory on the heap (feature `alloc`): one per device, so
/// many devices run in one host process; dropped with its last clone, so
/// a reboot (new memory, the old futures dropped) forgets everything, as
/// a real one does.
#[cfg(feature = "alloc")]
#[derive(Clone)]
pub struct SharedMemory {
    link: alloc::sync::Arc<UartLinkStorage>,
    links: alloc::sync::Arc<Links>,
    conduit: alloc::sync::Arc<DeviceStorage>,
    calls: alloc::sync::Arc<DeviceCalls>,
    telemetry: alloc::sync::Arc<TelemetryPublication>,
    log: alloc::sync::Arc<LogPublication>,
}

#[cfg(feature = "alloc")]
impl SharedMemory {
    /// Fresh memory: a device that just booted.
    pub fn new() -> Self {
        use alloc::sync::Arc;
        Self {
            link: Arc::new(FramedLinkStorage::new()),
            links: Arc::new(LinkChannel::new()),
            conduit: Arc::default(),
            calls: Arc::default(),
            telemetry: Arc::new(Publication::new(Delivery::Reliable)),
            log: Arc::new(Publication::new(Delivery::Lossy)),
        }
    }
}

#[cfg(feature = "alloc")]
impl Default for SharedMemory {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl DeviceMemory for SharedMemory {
    fn link(&self) -> StorageRef<UartLinkStorage> {
        StorageRef::Shared(self.link.clone())
    }
    fn links(&self) -> &Links {
        &self.links
    }
    fn conduit(&self) -> StorageRef<DeviceStorage> {
        StorageRef::Shared(self.conduit.clone())
    }
    fn calls(&self) -> StorageRef<DeviceCalls> {
        StorageRef::Shared(self.calls.clone())
    }
    fn telemetry(&self) -> StorageRef<TelemetryPublication> {
        StorageRef::Shared(self.telemetry.clone())
    }
    fn log(&self) -> StorageRef<LogPublication> {
        StorageRef::Shared(self.log.clone())
    }
}

/// Whether the device publishes telemetry (on unless a firmware turns it
/// off before starting the sessions: an idle-measurement build). A switch
/// rather than a cargo feature: the workspace's `--all-features` test
/// run must keep the telemetry its host tests check.
pub static TELEMETRY_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// How often the device sends a telemetry sample.
pub const TELEMETRY_PERIOD: Duration = Duration::from_millis(20);

/// The whole device on one byte stream: [`serial_port`] and [`sessions`]
/// together. Never returns; drop it to stop the device. (The lm3s6965
/// `device` firmware writes this out in its task, with the clock by value:
/// 48 bytes less task RAM.)
pub async fn run<M: DeviceMemory, C: Clock, R: Read, W: Write>(memory: M, clock: C, rx: R, tx: W) -> ! {
    match select(serial_port(memory.clone(), &clock, rx, tx), sessions(memory, &clock)).await {
        Either::First(never) => match never {},
        Either::Second(never) => never,
    }
}

/// Keeps a framed link on a byte stream that is always there (a UART):
/// the library's [`FramedPort::serve_forever`], a fresh link after each
/// one dies, each handed to the sessions.
///
/// A plain function returning an `async move` block (its output
/// `Infallible`): an `async fn` would keep its arguments twice.
pub fn serial_port<M: DeviceMemory, C: Clock, R: Read, W: Write>(
    memory: M,
    clock: C,
    rx: R,
    tx: W,
) -> impl Future<Output = Infallible> {
    async move {
        let links = memory.links();
        FramedPort::new(memory.link()).serve_forever(rx, tx, clock, |link| links.offer(link)).await
    }
}

/// One link on the byte stream (one USB connection): the library's
/// [`FramedPort::run_link`], the link handed to the sessions. The session
/// outlives it and resumes on the next link.
pub async fn run_link<M: DeviceMemory, C: Clock, R: Read, W: Write>(memory: M, clock: C, rx: &mut R, tx: &mut W) {
    let links = memory.links();
    let _ended = FramedPort::new(memory.link()).run_link(rx, tx, &clock, |link| links.offer(link)).await;
    info!("link ended: {}", _ended);
}

// r[impl port.firmware]
/// Runs sessions one after another: a session ends when the host forgets it
/// (it restarted) and a new one starts.
pub async fn sessions<M: DeviceMemory, C: Clock + Clone>(memory: M, clock: C) -> ! {
    let mut outputs = 0u32;
    let (telemetry, log) = (memory.telemetry(), memory.log());
    let _ = log.try_publish(&"booted");
    let server = Server::<_, SERVE_ROOM, SERVE_ARENA>::with_room()
        .serve::<SetOutput, _>(|pin| vox_demo_protocol::set_output(&mut outputs, *pin))
        .serve::<ReadSensor, _>(|sensor| Ok(vox_demo_protocol::sensor_value(*sensor)))
        .serve::<Echo, _>(|bytes| Ok(bytes.into_inner()))
        .publish(&*telemetry)
        .publish(&*log);
    #[cfg(all(feature = "defmt-conduit", target_os = "none"))]
    let server = server.publish(DEFMT_LOG.publication());
    let mut server = core::pin::pin!(server);
    let calls = memory.calls();
    let client = Client::new(calls.clone(), clock.clone());
    let mut session = 0u32;
    loop {
        session = session.wrapping_add(1);
        info!("session {}: connecting", session);
        let (conduit, driver) = match DeviceConduit::initiator(memory.conduit(), UART_CONFIG) {
            Ok(made) => made,
            Err(e) => {
                // The configuration cannot work with this storage: say so
                // once and stop.
                warn!("the conduit's configuration is refused: {}", e);
                break;
            }
        };
        // An initiator makes no resume keys: no random numbers needed.
        let running = embassy_futures::join::join(
            driver.run(memory.links().receiver(), clock.clone()),
            vox_rpc::run(conduit, &calls, server.as_mut(), clock.clone()),
        );
        let _ = log.try_publish(&"session started");
        let (driven, served) = match select(running, call_the_host(&client, &clock, &telemetry)).await {
            Either::First(ended) => ended,
            Either::Second(never) => match never {},
        };
        warn!("session {} ended: driver {}, calls {}", session, driven, served);
        if matches!(driven, Err(SessionError::Refused(_) | SessionError::Config(_)))
            || served.is_err_and(|e| e.is_final())
        {
            // The host speaks another schema, mode, version or role, or
            // another rpc envelope (or the link cannot carry our frames): a
            // new session would end the same way. Say so once and stop.
            warn!("session {}: refused by the host; not retrying", session);
            break;
        }
    }
    // Stopped (one wait for both reasons).
    core::future::pending().await
}

/// How long the device gives the host to answer a call.
const HOST_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The device's calls to the host (its clock, once) and its telemetry: a
/// sample every [`TELEMETRY_PERIOD`], each the next `seq`, published on
/// the telemetry topic (waiting while the host has not credited the
/// samples it holds). Never returns: run it beside a session and drop it
/// when the session ends (the `device_bare` firmware does, over a bare
/// conduit).
pub fn call_the_host<C: Clock>(
    client: &Client<DeviceCalls, C>,
    clock: &C,
    telemetry: &TelemetryPublication,
) -> impl Future<Output = core::convert::Infallible> {
    async move {
        match client.call::<HostTime>((), HOST_CALL_TIMEOUT).await {
            Ok(ms) => info!("the host's clock: {} ms", ms),
            Err(e) => warn!("asking the host's clock failed: {}", e),
        }
        // An idle-measurement build: no telemetry, only the host's calls.
        if !TELEMETRY_ON.load(core::sync::atomic::Ordering::Relaxed) {
            core::future::pending::<()>().await;
        }
        // Deadlines on the clock: a late sample does not delay the next.
        let mut next = clock.now();
        let mut seq = 0u32;
        loop {
            next = next.add_millis(TELEMETRY_PERIOD.as_millis() as u64);
            clock.sleep_until(next).await;
            let sample = Sample { seq, millivolts: 3300 - (seq % 64) as u16, label: "vbat" };
            if telemetry.publish(&sample).await.is_err() {
                warn!("telemetry sample {} does not fit", seq);
            }
            seq = seq.wrapping_add(1);
        }
    }
}
