//! The demo device's application, the same on every board: a task that
//! keeps a [`FramedLink`] attached to the board's byte stream (a UART, or
//! USB CDC-ACM), and sessions of a [`StableConduit`] (initiator) that
//! answer the host's requests and stream telemetry. Plain loops: the
//! conduit's flow control needs no request window, no skip rule and no
//! second link storage.
//!
//! A firmware spawns [`serial_port`] (or calls [`run_link`] in its own loop,
//! e.g. once per USB connection) and [`sessions`]; it supplies the time
//! driver, the executor and the byte stream.
#![no_std]

#[macro_use]
mod log;

use embassy_futures::select::{Either, select};
use embassy_time::{Delay, Duration, Ticker, Timer};
use embedded_io_async::{Read, Write};
use vox_conduit_stable::{LinkChannel, RecvError, SendError, SessionError, StableConduit, StableStorage};
use vox_demo_protocol::{DemoFamily, DemoMsg, UART_CONFIG, UART_MTU, answer};
use vox_link_embedded::{FramedLink, FramedLinkStorage};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

/// Every lock is taken in thread mode only (never from an interrupt), so
/// the cheapest mutex does; no interrupt is ever masked by the conduit.
#[cfg(target_os = "none")]
pub type DeviceMutex = embassy_sync::blocking_mutex::raw::ThreadModeRawMutex;
/// Host builds (checks only): a mutex that exists there.
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
/// The device's conduit storage.
pub type DeviceStorage = StableStorage<DeviceMutex, REPLAY_BYTES, REPLAY_MSGS, RX_BYTES, RX_MSGS>;
/// The device's conduit.
pub type DeviceConduit = StableConduit<DemoFamily, DeviceStorage>;

static LINK_STORAGE: FramedLinkStorage<DeviceMutex, LINK_SLOTS, MTU> = FramedLinkStorage::new();
static LINKS: LinkChannel<DeviceMutex, UartLink> = LinkChannel::new();
static CONDUIT_STORAGE: DeviceStorage = StableStorage::new();

/// How often the device sends a telemetry sample.
pub const TELEMETRY_PERIOD: Duration = Duration::from_millis(20);

/// Keeps a framed link on a byte stream that is always there (a UART):
/// what [`run_link`] does, again and again, each new link on the same
/// stream. Written out flat rather than calling `run_link`: the nested
/// future costs 240 B of flash on a Cortex-M3.
pub async fn serial_port<R: Read, W: Write>(mut rx: R, mut tx: W) -> ! {
    loop {
        let Some((link, runner)) = LINK_STORAGE.attach() else {
            Timer::after_millis(1).await;
            continue;
        };
        LINKS.offer(link).await;
        let ended = runner.run(&mut rx, &mut tx).await;
        info!("link ended: {}", ended);
    }
}

/// One link on the byte stream: attach a framed link (once the conduit has
/// dropped the previous one), hand it to the conduit, and run it until it
/// dies (a line error, or the stream going away: a USB host closing the
/// port). The session outlives it and resumes on the next link.
pub async fn run_link<R: Read, W: Write>(rx: &mut R, tx: &mut W) {
    let (link, runner) = loop {
        match LINK_STORAGE.attach() {
            Some(attached) => break attached,
            None => Timer::after_millis(1).await,
        }
    };
    LINKS.offer(link).await;
    let ended = runner.run(rx, tx).await;
    info!("link ended: {}", ended);
}

// r[impl port.firmware]
/// Runs sessions one after another: a session ends when the host forgets it
/// (it restarted) and a new one starts.
pub async fn sessions() -> ! {
    let mut session = 0u32;
    loop {
        session = session.wrapping_add(1);
        info!("session {}: connecting", session);
        let (conduit, driver) = match DeviceConduit::initiator(&CONDUIT_STORAGE, UART_CONFIG) {
            Ok(made) => made,
            Err(e) => {
                // The configuration cannot work with this storage: say so
                // once and stop.
                warn!("the conduit's configuration is refused: {}", e);
                core::future::pending().await
            }
        };
        // An initiator makes no resume keys: no random numbers needed.
        let (driven, served) = embassy_futures::join::join(driver.run(LINKS.receiver(), Delay), serve(conduit)).await;
        warn!("session {} ended: driver {}, application {}", session, driven, served);
        if let Err(SessionError::Refused(_) | SessionError::Config(_)) = driven {
            // The host speaks another schema, mode, version or role (or the
            // link cannot carry our frames): a new session would end the
            // same way. Say so once and stop.
            warn!("session {}: refused by the host; not retrying", session);
            core::future::pending::<()>().await;
        }
    }
}

/// Why the application stopped.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stopped {
    /// Receiving failed (the session ended).
    Recv(RecvError),
    /// Sending failed (the session ended).
    Send(SendError),
}

impl From<RecvError> for Stopped {
    fn from(e: RecvError) -> Self {
        Self::Recv(e)
    }
}

impl From<SendError> for Stopped {
    fn from(e: SendError) -> Self {
        Self::Send(e)
    }
}

/// Answers requests and streams telemetry until the session ends: two
/// plain loops on one conduit.
pub async fn serve(conduit: DeviceConduit) -> Result<(), Stopped> {
    let (tx, mut rx) = conduit.split();
    let answering = async {
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
            let millivolts = 3300 - (seq % 64) as u16;
            tx.reserve().await?.send(DemoMsg::Telemetry { seq, millivolts, label: "vbat" })?;
            seq = seq.wrapping_add(1);
        }
    };
    match select(answering, telemetry).await {
        Either::First(r) | Either::Second(r) => r,
    }
}
