//! The sans-I/O stable session: a synchronous state machine that owns no
//! I/O and no timer (smoltcp's and quinn-proto's shape).
//!
//! Frames and the current time go in ([`Session::on_receive`],
//! [`Session::on_tick`]); frames to send come out of
//! [`Session::transmit`]; the application side pushes messages into the
//! replay ring and takes received ones from the receive ring. What the
//! caller must do next is reported as [`Wakes`] and as a [`Detach`] (end
//! this attachment). [`StableDriver`](crate::StableDriver) is the async
//! plumbing around it; tests and other drivers can feed it directly.
//!
//! Buffers are the caller's: a [`Session`] is a view of a
//! [`SessionState`] plus the replay ring's bytes and entries and the
//! receive ring's entries (the received bytes live wherever the caller
//! keeps them: [`Session::on_receive`] hands each message to a `store`
//! callback with its offset).
//!
//! # Files, one concern each
//!
//! `mod.rs` holds the state and the entry points for links and frames;
//! `handshake.rs` prologues, hellos, keys and resume; `outbound.rs` the
//! replay ring, the peer's window and what to transmit; `inbound.rs` data,
//! acks and the receive ring; `timers.rs` deadlines and what falls due;
//! `events.rs` what the core reports (violations, detaches, wakes);
//! `state.rs` the state's accessors and transitions; `storage.rs` a
//! session with its own buffers. Each concern's unit tests are in
//! `tests/` under the same name.
//!
//! # Flow control
//!
//! Each side advertises a [`Window`] on every `Hello`, `Data` and `Ack`:
//! how many more messages, and bytes, its receive ring is sure to take.
//! A side never sends a `Data` frame beyond the window its peer last
//! advertised, so every frame that arrives finds room; the link is read
//! whatever the application does, and acks and window updates always get
//! through. The receive window is monotone (a promise is never taken
//! back); a window update goes out at once when the application frees room
//! after the window had closed (less than one largest message left).

// r[impl stable.core]
// r[impl core.split]

mod events;
mod handshake;
mod inbound;
mod outbound;
mod ring;
mod state;
mod storage;
#[cfg(test)]
mod tests;
mod timers;

pub use events::{Detach, FrameKind, Violation, Wakes};
pub use inbound::{Received, RxEntry};
pub(crate) use outbound::Kind;
pub use outbound::{Outgoing, TxEntry};
pub use storage::SessionStorage;

use crate::wire::{
    ACK_LOW_SPAN, FrameError, Hello, RejectReason, ResumeKey, SEQ_LOW_SPAN, Window, WireFrame, WireSeq, seq_before,
};
use crate::{SendError, SessionError, StableConfig, StableStats};
use ring::{RingIndex, Span};
use vox_types::{
    ConduitMode, HandshakeError, LinkError, PROLOGUE_MAGIC, PROLOGUE_MAX_LEN, Prologue, SchemaFingerprint, SessionRole,
};

/// Milliseconds on the caller's clock. Only differences matter.
pub type Instant = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handshake {
    started: Instant,
    prologue_at: Instant,
    /// The peer's prologue arrived (initiator: our hello went out for it).
    peer_prologue: bool,
}

/// Where the session stands with its current link. `repr(u8)` with
/// `Detached` = 0 (and [`ZeroOption`] below) keep a fresh state all zero
/// bytes, so a `static` storage lands in `.bss`, not in flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// No link.
    Detached = 0,
    /// Prologues and hellos are being exchanged.
    Handshake(Handshake) = 1,
    /// Data flows.
    Attached = 2,
}

/// `Option` whose `None` is all zero bytes (`Option`'s niche would put a
/// non-zero tag there). The tag takes a whole word (the payload is word
/// aligned anyway): the payload is then copied in words, not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(u32)]
enum ZeroOption<T> {
    None = 0,
    Some(T) = 1,
}

impl<T> ZeroOption<T> {
    fn take(&mut self) -> Option<T> {
        match core::mem::replace(self, Self::None) {
            Self::None => None,
            Self::Some(t) => Some(t),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

/// An optional instant in 8 bytes (`Option<Instant>` takes 16), zero when
/// empty like the rest of a fresh state: the instant plus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Since(u64);

impl Since {
    const NONE: Self = Self(0);
    /// A mark past every instant (the self-stall count: counted).
    const DONE: Self = Self(u64::MAX);

    fn get(self) -> Option<Instant> {
        self.0.checked_sub(1)
    }

    /// The instant kept, or `now` kept from now on.
    fn get_or_insert(&mut self, now: Instant) -> Instant {
        if *self == Self::NONE {
            // An instant as late as `DONE`'s stands for it: never reached.
            *self = Self(now.saturating_add(1));
        }
        self.0 - 1
    }
}

/// Whether and how the session ends: one field for the two ends, as a
/// refusal becomes the end once our prologue is out. `None` is all zero
/// bytes, like the rest of a fresh state; the tag is a word, like
/// [`ZeroOption`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Ending {
    None = 0,
    /// The peer's prologue was refused: ours goes out, then the session
    /// ends with this.
    Refusing(SessionError) = 1,
    /// The session is over.
    Ended(SessionError) = 2,
}

impl Ending {
    fn ended(&self) -> Option<&SessionError> {
        match self {
            Self::Ended(e) => Some(e),
            _ => None,
        }
    }

    fn is_refusing(&self) -> bool {
        matches!(self, Self::Refusing(_))
    }

    /// A refusal becomes the end, due now that our prologue is out (or
    /// the link is gone): whether there was one. The error stays where it
    /// is; only the tag changes.
    fn refusal_ends(&mut self) -> bool {
        match *self {
            Self::Refusing(e) => {
                *self = Self::Ended(e);
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Keys {
    /// Initiator: the key to present. Acceptor: the latest it issued.
    current: Option<ResumeKey>,
    /// Acceptor: the key the initiator presented last time. Still
    /// accepted: the hello carrying the newer one may have died.
    presented: Option<ResumeKey>,
    /// Acceptor: the key to issue at this attachment's hello.
    fresh: Option<ResumeKey>,
    /// A hello completed at least once.
    established: bool,
    /// Acceptor: a frame of the data phase arrived, so the initiator read
    /// our hello and holds a key: a keyless hello from now on is a new
    /// session (the initiator restarted), not a lost first hello.
    confirmed: bool,
}

/// The sending direction: the replay ring and the peer's window.
/// `repr(C)`, in this order: the fields read on every message sit at the
/// smallest offsets, which Thumb's 16-bit loads and stores reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Outbound {
    /// A permit is out (one writer keeps the ring in order).
    writer_active: bool,
    /// The application closed its sending half.
    closed: bool,
    /// Data waits for the peer's window (counted once per wait).
    window_blocked: bool,
    /// The application waits in `reserve` for replay room.
    writer_waiting: bool,
    /// Sequence number of the oldest entry (all before it are acked).
    base_seq: u32,
    /// Sequence number the next message gets.
    next_seq: u32,
    /// Stream byte offset the next message gets.
    next_off: u32,
    /// Stream byte offset of message `base_seq`.
    base_off: u32,
    /// Next frame to send on this attachment.
    next_to_send: u32,
    /// Stream byte offset of message `next_to_send`.
    send_off: u32,
    /// One past the highest sequence number ever sent.
    sent_high: u32,
    /// Peer's window: sequence numbers below this may be sent...
    limit_seq: u32,
    /// ...and message bytes up to this stream offset.
    limit_off: u32,
    ring: RingIndex,
    /// Since when it waits while its own receive ring holds unread
    /// messages and our window is shut: the application waits on itself.
    stalled_since: Since,
}

/// The receiving direction: the receive ring and the window we grant.
/// `repr(C)`: hot fields first, as in [`Outbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Inbound {
    /// Ack at once (duplicate, close, window update, new attachment).
    ack_now: bool,
    /// The peer's close arrived after all its messages.
    peer_closed: bool,
    /// The application dropped its receiver: messages are dropped. False
    /// in a fresh state, so building one stores nothing here.
    receiver_gone: bool,
    /// Hosts: the window granted is what [`Session::grant_window`] would
    /// grant now (nothing it depends on changed since it last ran): a
    /// `Data` frame then carries it without computing it again.
    #[cfg(feature = "std")]
    granted_now: bool,
    /// Next sequence number expected.
    next: u32,
    /// Stream byte offset of message `next`.
    off: u32,
    /// Window granted so far (never taken back): sequence limit...
    granted_seq: u32,
    /// ...and stream byte limit.
    granted_off: u32,
    /// The limits the peer last heard.
    advertised_seq: u32,
    advertised_off: u32,
    /// The limits the last `Data` frame of this attachment carried: the
    /// peer heard them, or lost that frame and detects the gap (the loss
    /// of an `Ack`, or of one of several hellos, goes unnoticed).
    carried_seq: u32,
    carried_off: u32,
    /// Frames received since our last ack.
    unacked: u32,
    /// Entries handed to the application (the oldest ones).
    delivered: usize,
    /// Bytes of the receive buffer.
    capacity: usize,
    ring: RingIndex,
    /// When the oldest of them arrived.
    first_unacked_at: Instant,
}

/// Everything a stable session knows, without its buffers. Plain data:
/// put it in a `static` ([`SessionState::new`] is `const`).
///
/// `repr(C)`, in this order: flags and the two directions first, at
/// offsets Thumb's 16-bit loads and stores reach (a field order changed
/// carelessly costs hundreds of bytes of firmware flash); the rarely
/// touched after.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct SessionState {
    wakes: u8,
    send_prologue: bool,
    send_hello: bool,
    send_reject: bool,
    /// The peer said it finished.
    peer_done: bool,
    /// We told the peer we finished.
    done_sent: bool,
    /// Finished and the peer knows, or the linger time ran out.
    complete: bool,
    role: SessionRole,
    tx: Outbound,
    rx: Inbound,
    config: StableConfig,
    last_rx: Instant,
    last_tx: Instant,
    phase: Phase,
    ending: Ending,
    /// When this side first had everything (linger starts).
    finished_at: Since,
    stats: StableStats,
    /// The acceptor's reason for the `Reject` it sends.
    reject_reason: RejectReason,
    keys: Keys,
    detach: ZeroOption<Detach>,
    /// Next to `busy`: the zeros around it are cleared as whole words.
    fingerprint: SchemaFingerprint,
    /// Initiator: retries after the acceptor's `Busy`.
    busy: BusyRetry,
}

/// Initiator: how it keeps trying a busy acceptor. Times are never 0
/// when set (each is at least one `timeout_ms` or one backoff after the
/// clock's start), so 0 means "none" and a fresh state stays all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BusyRetry {
    /// When this run of `Busy` answers ends the session: its first one
    /// plus `connect_timeout_ms` (0: no run).
    give_up_at: Instant,
    /// No link before this: the backoff after the last `Busy` (0: none).
    not_before: Instant,
    /// `Busy` answers in this run.
    retries: u8,
}

impl BusyRetry {
    const NONE: Self = Self { give_up_at: 0, not_before: 0, retries: 0 };
}

/// A [`SessionState`] with the buffers it works on. Every operation of
/// the protocol is a method here.
///
/// ```
/// use vox_conduit_stable::StableConfig;
/// use vox_conduit_stable::session::{Outgoing, SessionStorage};
/// use vox_types::{PROLOGUE_MAGIC, SchemaFingerprint, SessionRole};
///
/// let mut store = SessionStorage::<512, 4, 512, 4>::new(
///     SessionRole::Initiator,
///     StableConfig::DEFAULT,
///     SchemaFingerprint::of::<u32>(),
/// );
/// let (mut session, _rx_bytes) = store.parts();
/// // Nothing can be sent before the first handshake.
/// assert_eq!(session.try_reserve(), Ok(false));
/// // On a new link, the prologue goes first, then the session waits for
/// // the peer's.
/// session.attach(0, None);
/// let mut first = Vec::new();
/// let sent = session.transmit(0, |out| {
///     assert!(matches!(out, Outgoing::Prologue(_)));
///     first.resize(out.len(), 0);
///     out.encode(&mut first)
/// });
/// assert_eq!(sent, Some(Ok(())));
/// assert!(first.starts_with(&PROLOGUE_MAGIC));
/// assert!(!session.wants_transmit());
/// ```
pub struct Session<'a> {
    /// The state.
    pub state: &'a mut SessionState,
    /// Replay ring bytes (sent messages kept until acknowledged); at most
    /// [`MAX_RING_BYTES`], as the receive ring's.
    pub tx_bytes: &'a mut [u8],
    /// Replay ring entries (one is kept for the close marker).
    pub tx_entries: &'a mut [TxEntry],
    /// Receive ring entries (the bytes are the caller's).
    pub rx_entries: &'a mut [RxEntry],
}

/// The most bytes a ring may hold (replay or receive): an entry keeps its
/// length in 30 bits. The storages refuse more at compile time.
pub const MAX_RING_BYTES: usize = (1 << 30) - 1;

fn seq_max(a: u32, b: u32) -> u32 {
    if seq_before(a, b) { b } else { a }
}

fn elapsed(now: Instant, since: Instant) -> u64 {
    now.saturating_sub(since)
}

impl Session<'_> {
    // ---- attachments ---------------------------------------------------

    /// A new link: the handshake starts (our prologue goes first). An
    /// acceptor passes the resume key it will issue if the peer's hello
    /// is good; an initiator passes `None` (it makes no keys).
    // r[impl stable.handshake]
    // r[impl stable.resume-key]
    pub fn attach(&mut self, now: Instant, fresh_key: Option<ResumeKey>) {
        let s = &mut *self.state;
        if s.ending.ended().is_some() {
            s.detach_with(Detach::Ended);
            return;
        }
        s.keys.fresh = fresh_key;
        s.detach = ZeroOption::None;
        s.phase = Phase::Handshake(Handshake { started: now, prologue_at: now, peer_prologue: false });
        s.send_prologue = true;
        s.send_hello = false;
        s.send_reject = false;
        s.last_rx = now;
        s.last_tx = now;
        s.wakes |= Wakes::TRANSMIT;
    }

    /// The link reported `error` (or its end, as [`LinkError::Closed`]):
    /// the attachment is over.
    pub fn link_failed(&mut self, error: LinkError) {
        if error == LinkError::CrcMismatch {
            self.state.stats.crc_errors += 1;
        }
        if self.state.ending.refusal_ends() {
            self.state.ended_now();
            return;
        }
        if !matches!(self.state.phase, Phase::Detached) {
            self.state.detach_with(Detach::LinkFailed(error));
        }
    }

    // ---- receiving -----------------------------------------------------

    /// One payload from the link. A message that arrives in order is
    /// handed to `store(offset, bytes)`, which copies it into the receive
    /// buffer at `offset`; then the link's payload can be freed.
    pub fn on_receive(&mut self, now: Instant, bytes: &[u8], store: impl FnOnce(usize, &[u8])) {
        let role = self.state.role;
        self.on_receive_as(role, now, bytes, store);
    }

    /// [`on_receive`](Self::on_receive) for a caller that knows its role
    /// at compile time (the driver): the other role's code is then dead
    /// and a firmware does not carry it. `role` is the session's role.
    pub(crate) fn on_receive_as(
        &mut self,
        role: SessionRole,
        now: Instant,
        bytes: &[u8],
        store: impl FnOnce(usize, &[u8]),
    ) {
        if matches!(self.state.phase, Phase::Detached) {
            return;
        }
        self.state.stats.frames_received += 1;
        self.state.last_rx = now;
        if bytes.starts_with(&PROLOGUE_MAGIC) {
            self.on_prologue(role, now, bytes);
        } else {
            match WireFrame::decode(bytes) {
                Ok(frame) => self.on_frame(role, now, frame, store),
                // Stale frames of an earlier link are skipped until the
                // handshake is done; after it, a frame must parse.
                Err(_) if matches!(self.state.phase, Phase::Handshake(_)) => {}
                Err(e) => self.state.detach_with(Detach::Malformed(e)),
            }
        }
        self.check_complete();
    }

    // ---- sending -------------------------------------------------------

    // ---- the application's side ---------------------------------------
}
