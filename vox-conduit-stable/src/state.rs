//! The state a stable conduit's halves and its driver share, kept under one
//! blocking mutex.

use crate::replay_ring::ReplayRing;
use crate::wire::ResumeKey;
use crate::{StableConfig, StableError, StableStats};
use embassy_sync::waitqueue::WakerRegistration;
use heapless::Deque;
use vox_types::{Backing, SessionRole};

/// `Option<StableError>` laid out so that "no error" is all zero bytes
/// (`Option`'s niche would put a non-zero tag there).
#[repr(u8)]
pub(crate) enum Fatal {
    Alive = 0,
    Ended(StableError) = 1,
}

impl Fatal {
    pub(crate) fn get(&self) -> Option<&StableError> {
        match self {
            Self::Alive => None,
            Self::Ended(e) => Some(e),
        }
    }
}

pub(crate) struct Shared<const BYTES: usize, const FRAMES: usize, const RX: usize> {
    pub(crate) config: StableConfig,
    pub(crate) role: SessionRole,
    /// Unacked outgoing frames.
    pub(crate) ring: ReplayRing<BYTES, FRAMES>,
    /// Sequence number of the next frame the application stores.
    pub(crate) next_seq: u32,
    /// Next frame the driver sends on the current attachment.
    pub(crate) next_to_send: u32,
    /// One past the highest sequence number ever sent (replays are below).
    pub(crate) sent_high: u32,
    /// A permit is out (one writer at a time keeps the ring contiguous).
    pub(crate) writer_active: bool,
    /// The application closed (or dropped) its sending half.
    pub(crate) tx_closed: bool,
    /// Received messages waiting for the application.
    pub(crate) rx_queue: Deque<Backing, RX>,
    /// The receiving half is alive (else messages are acked and dropped).
    pub(crate) rx_alive: bool,
    /// Next sequence number expected from the peer.
    pub(crate) rx_next: u32,
    /// Frames received since our last ack went out.
    pub(crate) unacked_rx: u32,
    /// Ack at once (a duplicate or the peer's close arrived).
    pub(crate) ack_now: bool,
    /// The peer's close arrived (after all its messages).
    pub(crate) peer_closed: bool,
    /// Frames received on the current attachment (the watchdog's evidence
    /// of life; wraps).
    pub(crate) rx_activity: u32,
    /// Frames sent on the current attachment (wraps).
    pub(crate) tx_activity: u32,
    /// The peer said it finished (everything both ways closed and acked).
    pub(crate) peer_done: bool,
    /// We told the peer we finished.
    pub(crate) done_sent: bool,
    /// The session's end; every later call reports it.
    pub(crate) fatal: Fatal,
    /// Current resume key (initiator: to present; acceptor: the latest it
    /// issued).
    pub(crate) key: Option<ResumeKey>,
    /// Acceptor: the key the initiator presented last time. Still accepted,
    /// because the hello carrying the newer key may have died with its link.
    pub(crate) presented_key: Option<ResumeKey>,
    /// A hello completed at least once.
    pub(crate) established: bool,
    pub(crate) stats: StableStats,
    pub(crate) writer: WakerRegistration,
    pub(crate) reader: WakerRegistration,
    pub(crate) driver_tx: WakerRegistration,
    pub(crate) driver_rx: WakerRegistration,
}

impl<const BYTES: usize, const FRAMES: usize, const RX: usize> Shared<BYTES, FRAMES, RX> {
    pub(crate) const fn new() -> Self {
        Self {
            // All-zero placeholders (set by `StableConduit::make`): storage in
            // a `static` then lands in `.bss`, not in flash-backed `.data`.
            config: StableConfig::ZEROED,
            role: SessionRole::Initiator,
            ring: ReplayRing::new(),
            next_seq: 0,
            next_to_send: 0,
            sent_high: 0,
            writer_active: false,
            tx_closed: false,
            rx_queue: Deque::new(),
            rx_alive: false,
            rx_next: 0,
            unacked_rx: 0,
            ack_now: false,
            peer_closed: false,
            rx_activity: 0,
            tx_activity: 0,
            peer_done: false,
            done_sent: false,
            fatal: Fatal::Alive,
            key: None,
            presented_key: None,
            established: false,
            stats: StableStats {
                frames_sent: 0,
                frames_received: 0,
                messages_delivered: 0,
                replays: 0,
                reattachments: 0,
                gaps: 0,
                duplicates: 0,
                crc_errors: 0,
                timeouts: 0,
                acks_sent: 0,
                replay_frames: 0,
                replay_bytes: 0,
                replay_frames_high: 0,
                replay_bytes_high: 0,
            },
            writer: WakerRegistration::new(),
            reader: WakerRegistration::new(),
            driver_tx: WakerRegistration::new(),
            driver_rx: WakerRegistration::new(),
        }
    }

    /// Records the replay buffer's occupancy after it changed.
    pub(crate) fn ring_changed(&mut self) {
        let (frames, bytes) = (self.ring.frames() as u32, self.ring.bytes() as u32);
        let s = &mut self.stats;
        s.replay_frames = frames;
        s.replay_bytes = bytes;
        s.replay_frames_high = s.replay_frames_high.max(frames);
        s.replay_bytes_high = s.replay_bytes_high.max(bytes);
    }

    /// Ends the session: every waiter wakes to the error.
    pub(crate) fn fail(&mut self, e: StableError) {
        if self.fatal.get().is_none() {
            self.fatal = Fatal::Ended(e);
        }
        self.wake_all();
    }

    pub(crate) fn wake_all(&mut self) {
        self.writer.wake();
        self.reader.wake();
        self.driver_tx.wake();
        self.driver_rx.wake();
    }

    /// Both directions are done: our close is acked, the peer's close (or
    /// our receiver's absence) is settled and acked.
    pub(crate) fn finished(&self) -> bool {
        self.tx_closed && self.ring.frames() == 0 && (self.peer_closed || !self.rx_alive) && self.unacked_rx == 0
    }
}
