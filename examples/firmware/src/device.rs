//! The device application: a serial-port task that keeps a [`FramedLink`]
//! attached to the UART, and sessions of a [`StableConduit`] (initiator)
//! that answer the host's requests and stream telemetry.

use crate::board::{UartRx, UartTx};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::ThreadModeRawMutex;
use embassy_time::{Delay, Duration, Ticker, Timer};
use vox_conduit_stable::{LinkChannel, StableConduit, StableError, StableStorage};
use vox_demo_protocol::{DemoFamily, DemoMsg, UART_CONFIG, UART_MTU, answer};
use vox_link_embedded::{FramedLink, FramedLinkStorage};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};

/// Every lock is taken in thread mode only (never from an interrupt), so
/// the cheapest mutex does; no interrupt is ever masked by the conduit.
pub type DeviceMutex = ThreadModeRawMutex;
/// Largest frame payload on the UART.
pub const MTU: usize = UART_MTU;
/// Frame slots each way on the UART link.
pub const LINK_SLOTS: usize = 4;
/// Bytes of unacknowledged messages the device keeps for replay.
pub const REPLAY_BYTES: usize = 2048;
/// Unacknowledged messages the device keeps for replay.
pub const REPLAY_FRAMES: usize = 32;
/// Received messages waiting for the application.
pub const RX_FRAMES: usize = 4;

/// The framed link on the UART.
pub type UartLink = FramedLink<DeviceMutex, LINK_SLOTS, MTU>;
/// The device's conduit.
pub type DeviceConduit = StableConduit<DemoFamily, DeviceMutex, REPLAY_BYTES, REPLAY_FRAMES, RX_FRAMES>;

/// Two link storages, used in turn: a request the application still holds
/// keeps its link's storage busy, and the next link must not wait for it
/// (the acks that let the application finish with it come over that link).
static LINK_STORAGE: [FramedLinkStorage<DeviceMutex, LINK_SLOTS, MTU>; 2] =
    [FramedLinkStorage::new(), FramedLinkStorage::new()];
static LINKS: LinkChannel<DeviceMutex, UartLink> = LinkChannel::new();
static CONDUIT_STORAGE: StableStorage<DeviceMutex, REPLAY_BYTES, REPLAY_FRAMES, RX_FRAMES> = StableStorage::new();

/// Telemetry waits while this many frames are unacknowledged... With the
/// host's [`REQUEST_WINDOW`](vox_demo_protocol::REQUEST_WINDOW) of 8 (a request carries the ack of the reply
/// that let it go, so at most 8 replies are unacknowledged), the replay
/// buffer never has to refuse a reply: 8 + 8 frames, the close marker and
/// one free entry fit 32; 512 B + 8 echo replies of at most 150 B + room
/// for a 200 B message fit 2048 B.
pub const TELEMETRY_MAX_FRAMES: usize = 8;
/// ...or this many bytes.
pub const TELEMETRY_MAX_BYTES: usize = 512;
/// How often the device sends a telemetry sample.
pub const TELEMETRY_PERIOD: Duration = Duration::from_millis(20);

/// Keeps a framed link on the UART: attach one, hand it to the conduit, run
/// it until it dies, and attach the next to the same byte stream.
pub async fn serial_port(mut rx: UartRx, mut tx: UartTx) -> ! {
    let mut next = 0;
    loop {
        // A storage is free once the conduit dropped that link's halves and
        // the application its messages.
        let Some((link, runner)) = LINK_STORAGE.get(next).and_then(FramedLinkStorage::attach) else {
            next ^= 1;
            Timer::after_millis(1).await;
            continue;
        };
        next ^= 1;
        LINKS.offer(link).await;
        let ended = runner.run(&mut rx, &mut tx).await;
        info!("uart link ended: {}", ended);
    }
}

// r[impl port.firmware]
/// Runs sessions one after another: a session ends when the host forgets it
/// (it restarted) and a new one starts.
pub async fn sessions() -> ! {
    let mut session = 0u32;
    loop {
        session = session.wrapping_add(1);
        info!("session {}: connecting", session);
        let (conduit, driver) = DeviceConduit::new_static(&CONDUIT_STORAGE, SessionRole::Initiator, UART_CONFIG);
        let (driven, served) =
            // An initiator makes no resume keys: no random numbers needed.
            embassy_futures::join::join(driver.run_initiator(LINKS.receiver(), Delay), serve(conduit)).await;
        warn!("session {} ended: driver {}, application {}", session, driven, served);
    }
}

/// Answers requests and streams telemetry until the session ends.
///
/// Replies have priority: a telemetry sample is skipped (not numbered)
/// while [`TELEMETRY_MAX_FRAMES`] frames or [`TELEMETRY_MAX_BYTES`] bytes
/// wait for acks, so that the answer to each of the host's requests in
/// flight (at most [`REQUEST_WINDOW`](vox_demo_protocol::REQUEST_WINDOW)) finds room at once. An answer that
/// waits for room holds its request, and with it a UART link's slot.
pub async fn serve(conduit: DeviceConduit) -> Result<(), StableError> {
    let stats = conduit.stats_handle();
    let (tx, mut rx) = conduit.split();
    let answer = async {
        let mut outputs = 0u32;
        while let Some(msg) = rx.recv().await? {
            if let Some(reply) = answer(msg.get::<DemoFamily>(), &mut outputs) {
                tx.reserve().await?.send(reply)?;
            }
        }
        Ok(())
    };
    let telemetry = async {
        let mut ticker = Ticker::every(TELEMETRY_PERIOD);
        let mut seq = 0u32;
        loop {
            ticker.next().await;
            let s = stats.get();
            if s.replay_frames as usize >= TELEMETRY_MAX_FRAMES || s.replay_bytes as usize >= TELEMETRY_MAX_BYTES {
                continue;
            }
            let millivolts = 3300 - (seq % 64) as u16;
            tx.reserve().await?.send(DemoMsg::Telemetry { seq, millivolts, label: "vbat" })?;
            seq = seq.wrapping_add(1);
        }
    };
    match select(answer, telemetry).await {
        Either::First(r) | Either::Second(r) => r,
    }
}
