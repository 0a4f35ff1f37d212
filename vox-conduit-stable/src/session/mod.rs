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

mod ring;
#[cfg(test)]
mod tests;
mod timers;

use crate::wire::{FrameError, Hello, RejectReason, ResumeKey, Window, WireFrame, seq_before};
use crate::{SendError, SessionError, StableConfig, StableStats};
use ring::{RingIndex, Span};
use vox_types::{
    ConduitMode, HandshakeError, LinkError, PROLOGUE_MAGIC, PROLOGUE_MAX_LEN, Prologue, PrologueError,
    SchemaFingerprint, SessionRole,
};

/// Milliseconds on the caller's clock. Only differences matter.
pub type Instant = u64;

/// One message (or the close marker) in the replay ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxEntry {
    start: u32,
    len: u32,
    /// Byte offset of the message in this direction's stream (wraps).
    off: u32,
    close: bool,
}

impl TxEntry {
    /// An unused entry, for array initialisers.
    pub const EMPTY: Self = Self { start: 0, len: 0, off: 0, close: false };
}

impl Span for TxEntry {
    fn start(&self) -> usize {
        self.start as usize
    }
    fn len(&self) -> usize {
        self.len as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
enum RxState {
    /// Waiting for the application.
    #[default]
    Queued = 0,
    /// The application holds it.
    Lent,
    /// The application is done with it; freed once older ones are.
    Released,
}

/// One received message in the receive ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxEntry {
    start: u32,
    len: u32,
    state: RxState,
}

impl RxEntry {
    /// An unused entry, for array initialisers.
    pub const EMPTY: Self = Self { start: 0, len: 0, state: RxState::Queued };
}

impl Span for RxEntry {
    fn start(&self) -> usize {
        self.start as usize
    }
    fn len(&self) -> usize {
        self.len as usize
    }
}

/// A received message handed to the application: where its bytes are in
/// the receive buffer, and the token that frees them
/// ([`Session::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Give it back to [`Session::release`].
    pub token: usize,
    /// Offset of the message in the receive buffer.
    pub start: usize,
    /// Length of the message.
    pub len: usize,
}

/// Which stable frame a [`Violation`] was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameKind {
    /// `Hello`.
    Hello,
    /// `Data`.
    Data,
    /// `Ack`.
    Ack,
    /// `Close`.
    Close,
}

/// The peer broke the protocol: which frame, which field, what was
/// expected.
///
/// Policy: a violation ends the **attachment**, not the session (counted
/// in [`StableStats::violations`]): the frame may be a stray one (a stale
/// link's, or one that got past the CRC), and the reattachment's
/// handshake puts both sides back in step, replaying what is missing. The
/// one exception is [`ResumeOutOfRange`](Self::ResumeOutOfRange), which
/// ends the session: the peer's hello says its state and ours cannot be
/// reconciled, and no new link changes that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Violation {
    /// The `ack` field of a `Data`, `Ack` or `Close` acknowledged frames
    /// never sent (expected: at most `sent`).
    AckAhead {
        /// The frame.
        frame: FrameKind,
        /// The frame's `ack`.
        ack: u32,
        /// One past the highest sequence number ever sent.
        sent: u32,
    },
    /// A hello's `next_expected` is outside what was sent and not yet
    /// acknowledged. Ends the session: the two sides' states cannot be
    /// reconciled.
    ResumeOutOfRange {
        /// The hello's `next_expected`.
        next_expected: u32,
        /// Oldest frame still unacknowledged.
        oldest: u32,
        /// One past the highest sequence number ever sent.
        sent: u32,
    },
}

/// Why an attachment ends (the session goes on unless it is
/// [`Detach::Ended`] or [`Detach::Finished`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Detach {
    /// The link reported an error or its end.
    LinkFailed(LinkError),
    /// Nothing arrived for `timeout_ms`.
    Timeout,
    /// No handshake within `timeout_ms`.
    HandshakeTimeout,
    /// A frame skipped sequence numbers: frames were lost.
    Gap {
        /// The sequence number expected.
        expected: u32,
        /// The one that arrived.
        got: u32,
    },
    /// An `Ack` says frames were sent that never arrived.
    FramesLost {
        /// The sequence number expected.
        expected: u32,
        /// The peer's next sequence number.
        next: u32,
    },
    /// A payload that is not a stable frame (after the handshake), with
    /// what the decoder found, or a garbage prologue.
    Malformed(FrameError),
    /// We refused the peer's resume key (the `Reject` was sent).
    Refused,
    /// Initiator: the acceptor answered our new session with `Busy`; the
    /// next link comes after a backoff
    /// ([`SessionState::attach_not_before`]).
    Busy,
    /// The peer broke the protocol.
    Violation(Violation),
    /// Both directions are closed and acknowledged (or the linger time
    /// ran out): the session is complete.
    Finished,
    /// The session ended: [`SessionState::ended`] says why.
    Ended,
}

/// What the caller should wake after a call, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wakes(u8);

impl Wakes {
    /// The application's sender: replay room, or the session ended.
    pub const WRITER: u8 = 1;
    /// The application's receiver: a message, the peer's close, or the end.
    pub const READER: u8 = 2;
    /// The transmitter: something to send.
    pub const TRANSMIT: u8 = 4;
    /// The driver: the attachment ends ([`SessionState::take_detach`]).
    pub const DETACH: u8 = 8;

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Clears `bit`.
    pub fn clear(&mut self, bit: u8) {
        self.0 &= !bit;
    }
}

/// A frame to send: the prologue's bytes or a stable frame.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    /// The link prologue (raw bytes).
    Prologue(&'a [u8]),
    /// A stable frame (postcard).
    Frame(WireFrame<'a>),
}

impl Outgoing<'_> {
    /// Encoded length.
    pub fn len(&self) -> usize {
        match self {
            Self::Prologue(b) => b.len(),
            Self::Frame(f) => f.encoded_len(),
        }
    }

    /// Whether the encoding is empty (never: kept for the `len` lint).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the encoding into `buf` (exactly [`len`](Self::len) bytes).
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), LinkError> {
        match self {
            Self::Prologue(b) => {
                let max = buf.len();
                buf.get_mut(..b.len()).ok_or(LinkError::TooLarge { len: b.len(), max })?.copy_from_slice(b);
                Ok(())
            }
            Self::Frame(f) => {
                f.encode(buf).map(|_| ()).ok_or(LinkError::TooLarge { len: f.encoded_len(), max: buf.len() })
            }
        }
    }
}

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
/// non-zero tag there).
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(u8)]
enum ZeroOption<T> {
    None = 0,
    Some(T) = 1,
}

impl<T> ZeroOption<T> {
    fn as_ref(&self) -> Option<&T> {
        match self {
            Self::None => None,
            Self::Some(t) => Some(t),
        }
    }

    fn take(&mut self) -> Option<T> {
        match core::mem::replace(self, Self::None) {
            Self::None => None,
            Self::Some(t) => Some(t),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    fn is_some(&self) -> bool {
        !self.is_none()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outbound {
    ring: RingIndex,
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
    /// One past the highest sequence number ever sent.
    sent_high: u32,
    /// Peer's window: sequence numbers below this may be sent...
    limit_seq: u32,
    /// ...and message bytes up to this stream offset.
    limit_off: u32,
    /// A permit is out (one writer keeps the ring in order).
    writer_active: bool,
    /// The application closed its sending half.
    closed: bool,
    /// Data waits for the peer's window (counted once per wait).
    window_blocked: bool,
    /// The application waits in `reserve` for replay room.
    writer_waiting: bool,
    /// Since when it waits while its own receive ring holds unread
    /// messages and our window is shut: the application waits on itself.
    stalled_since: Option<Instant>,
}

/// The receiving direction: the receive ring and the window we grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inbound {
    ring: RingIndex,
    /// Bytes of the receive buffer.
    capacity: usize,
    /// Entries handed to the application (the oldest ones).
    delivered: usize,
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
    /// Frames received since our last ack.
    unacked: u32,
    /// When the oldest of them arrived.
    first_unacked_at: Instant,
    /// Ack at once (duplicate, close, window update, new attachment).
    ack_now: bool,
    /// The peer's close arrived after all its messages.
    peer_closed: bool,
    /// The application's receiver exists (else messages are dropped).
    alive: bool,
}

/// Everything a stable session knows, without its buffers. Plain data:
/// put it in a `static` ([`SessionState::new`] is `const`).
#[derive(Debug, Clone)]
pub struct SessionState {
    config: StableConfig,
    role: SessionRole,
    fingerprint: SchemaFingerprint,
    phase: Phase,
    keys: Keys,
    tx: Outbound,
    rx: Inbound,
    send_prologue: bool,
    send_hello: bool,
    send_reject: bool,
    last_rx: Instant,
    last_tx: Instant,
    /// The peer said it finished.
    peer_done: bool,
    /// We told the peer we finished.
    done_sent: bool,
    /// When this side first had everything (linger starts).
    finished_at: Option<Instant>,
    /// Finished and the peer knows, or the linger time ran out.
    complete: bool,
    ended: ZeroOption<SessionError>,
    /// The peer's prologue was refused: our prologue goes out, then the
    /// session ends with this.
    refusing: ZeroOption<SessionError>,
    /// The acceptor's reason for the `Reject` it sends.
    reject_reason: RejectReason,
    detach: ZeroOption<Detach>,
    /// Initiator: retries after the acceptor's `Busy`.
    busy: BusyRetry,
    wakes: u8,
    stats: StableStats,
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

impl SessionState {
    /// A session that has not attached yet. `rx_capacity` is the size of
    /// the receive buffer the caller keeps.
    pub const fn new(
        role: SessionRole,
        config: StableConfig,
        fingerprint: SchemaFingerprint,
        rx_capacity: usize,
    ) -> Self {
        Self {
            config,
            role,
            fingerprint,
            phase: Phase::Detached,
            keys: Keys { current: None, presented: None, fresh: None, established: false, confirmed: false },
            tx: Outbound {
                ring: RingIndex::new(),
                base_seq: 0,
                next_seq: 0,
                next_off: 0,
                base_off: 0,
                next_to_send: 0,
                sent_high: 0,
                limit_seq: 0,
                limit_off: 0,
                writer_active: false,
                closed: false,
                window_blocked: false,
                writer_waiting: false,
                stalled_since: None,
            },
            rx: Inbound {
                ring: RingIndex::new(),
                capacity: rx_capacity,
                delivered: 0,
                next: 0,
                off: 0,
                granted_seq: 0,
                granted_off: 0,
                advertised_seq: 0,
                advertised_off: 0,
                unacked: 0,
                first_unacked_at: 0,
                ack_now: false,
                peer_closed: false,
                alive: true,
            },
            send_prologue: false,
            send_hello: false,
            send_reject: false,
            last_rx: 0,
            last_tx: 0,
            peer_done: false,
            done_sent: false,
            finished_at: None,
            complete: false,
            ended: ZeroOption::None,
            refusing: ZeroOption::None,
            reject_reason: RejectReason::SessionUnknown,
            detach: ZeroOption::None,
            busy: BusyRetry::NONE,
            wakes: 0,
            stats: StableStats::ZERO,
        }
    }

    /// All zero bytes: the placeholder a `static` storage holds until a
    /// conduit is made on it (so it lands in `.bss`, not in flash).
    pub const fn zeroed() -> Self {
        let mut s = Self::new(SessionRole::Initiator, StableConfig::ZEROED, SchemaFingerprint([0; 8]), 0);
        s.rx.alive = false;
        s
    }

    /// The role given at creation.
    pub fn role(&self) -> SessionRole {
        self.role
    }

    /// The configuration given at creation.
    pub fn config(&self) -> &StableConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> StableStats {
        self.stats
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&SessionError> {
        self.ended.as_ref()
    }

    /// Both directions closed and acknowledged, and the peer knows (or the
    /// linger time ran out): nothing more to do.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Initiator: no link should be attached before this (the backoff
    /// after the acceptor answered `Busy`); `None` when a link may come
    /// at once.
    pub fn attach_not_before(&self) -> Option<Instant> {
        (self.busy.not_before != 0).then_some(self.busy.not_before)
    }

    /// Initiator: the acceptor answered our new session with `Busy` (its
    /// queue of sessions waiting for `accept` is full). Transient: the
    /// attachment ends and the next link comes after a backoff, from
    /// `retry_delay_ms` doubling up to `timeout_ms`, until
    /// `connect_timeout_ms` after the first `Busy`; then the session ends
    /// with `Rejected(Busy)`.
    // r[impl core.burst]
    fn on_busy(&mut self, now: Instant) {
        if self.busy.give_up_at == 0 {
            self.busy.give_up_at = now.saturating_add(u64::from(self.config.connect_timeout_ms)).max(1);
        }
        if now >= self.busy.give_up_at {
            self.end(SessionError::Rejected(RejectReason::Busy));
            return;
        }
        let first = u64::from(self.config.retry_delay_ms.max(1));
        let backoff = (first << self.busy.retries.min(16)).min(u64::from(self.config.timeout_ms).max(first));
        self.busy.retries = self.busy.retries.saturating_add(1);
        self.busy.not_before = now.saturating_add(backoff);
        self.stats.busy_retries = self.stats.busy_retries.saturating_add(1);
        state_info!("stable: the acceptor is busy; trying again in {} ms", backoff);
        self.detach_with(Detach::Busy);
    }

    /// Acceptor: whether `key` resumes this session.
    pub fn knows_key(&self, key: &ResumeKey) -> bool {
        self.ended.is_none() && (self.keys.current.as_ref() == Some(key) || self.keys.presented.as_ref() == Some(key))
    }

    /// Acceptor: refuse the initiator's hello on the current attachment
    /// with `reason` (a `Reject` frame), e.g. when a table is full.
    pub fn reject(&mut self, reason: RejectReason) {
        self.reject_reason = reason;
        self.send_reject = true;
        self.wakes |= Wakes::TRANSMIT;
    }

    /// Milliseconds since the last frame arrived (or the last attachment
    /// began), on the caller's clock.
    pub fn silent_for(&self, now: Instant) -> u64 {
        now.saturating_sub(self.last_rx)
    }

    /// The driver's clock starts at `now`: the session has been silent
    /// since then, not since the clock's epoch.
    pub(crate) fn start_clock(&mut self, now: Instant) {
        self.last_rx = now;
        self.last_tx = now;
    }

    /// Whether a link is attached (handshake or data phase).
    pub fn has_link(&self) -> bool {
        self.phase != Phase::Detached
    }

    /// Drops an outstanding wake of the transmitter: a driver that runs
    /// its transmitter right after, in the same task, saves itself a poll.
    pub(crate) fn skip_transmit_wake(&mut self) {
        self.wakes &= !Wakes::TRANSMIT;
    }

    /// The outstanding wakes, cleared.
    pub fn take_wakes(&mut self) -> Wakes {
        Wakes(core::mem::take(&mut self.wakes))
    }

    /// Why the current attachment ended, once (the driver drops the link).
    pub fn take_detach(&mut self) -> Option<Detach> {
        self.detach.take()
    }

    /// Ends the session with `error` (the first error wins); everyone
    /// waiting wakes to it.
    pub fn end(&mut self, error: SessionError) {
        if self.ended.is_none() {
            self.ended = ZeroOption::Some(error);
        }
        self.detach_with(Detach::Ended);
        self.wakes |= Wakes::WRITER | Wakes::READER | Wakes::TRANSMIT;
    }

    fn detach_with(&mut self, why: Detach) {
        if self.phase != Phase::Detached || self.detach.is_none() {
            self.detach = ZeroOption::Some(why);
        }
        self.phase = Phase::Detached;
        self.send_prologue = false;
        self.send_hello = false;
        self.send_reject = false;
        self.wakes |= Wakes::DETACH;
    }

    /// The link source will give no more links. A session that has
    /// everything completes (its peer left first); any other ends with
    /// [`SessionError::SourceClosed`].
    pub fn source_closed(&mut self) {
        if self.finished() {
            self.complete = true;
            self.wakes |= Wakes::DETACH;
        } else {
            self.end(SessionError::SourceClosed);
        }
    }

    /// Both directions are done: our close is acked, the peer's close (or
    /// our receiver's absence) is settled and acked.
    fn finished(&self) -> bool {
        self.tx.closed && self.tx.ring.is_empty() && (self.rx.peer_closed || !self.rx.alive) && self.rx.unacked == 0
    }
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
    /// Replay ring bytes (sent messages kept until acknowledged).
    pub tx_bytes: &'a mut [u8],
    /// Replay ring entries (one is kept for the close marker).
    pub tx_entries: &'a mut [TxEntry],
    /// Receive ring entries (the bytes are the caller's).
    pub rx_entries: &'a mut [RxEntry],
}

fn seq_max(a: u32, b: u32) -> u32 {
    if seq_before(a, b) { b } else { a }
}

fn elapsed(now: Instant, since: Instant) -> u64 {
    now.saturating_sub(since)
}

impl Session<'_> {
    fn local_prologue(&self) -> Prologue {
        Prologue::new(ConduitMode::Stable, self.state.role, self.state.fingerprint)
    }

    // ---- attachments ---------------------------------------------------

    /// A new link: the handshake starts (our prologue goes first). An
    /// acceptor passes the resume key it will issue if the peer's hello
    /// is good; an initiator passes `None` (it makes no keys).
    // r[impl stable.handshake]
    // r[impl stable.resume-key]
    pub fn attach(&mut self, now: Instant, fresh_key: Option<ResumeKey>) {
        let s = &mut *self.state;
        if s.ended.is_some() {
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
        if let Some(e) = self.state.refusing.take() {
            self.state.end(e);
            return;
        }
        if self.state.phase != Phase::Detached {
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
        if self.state.phase == Phase::Detached {
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

    fn on_prologue(&mut self, role: SessionRole, now: Instant, bytes: &[u8]) {
        let local = self.local_prologue();
        match Prologue::decode(bytes).and_then(|p| local.check_peer(&p)) {
            Err(
                e @ (PrologueError::SchemaMismatch { .. }
                | PrologueError::ModeMismatch { .. }
                | PrologueError::UnsupportedVersion { .. }
                | PrologueError::RoleConflict { .. }),
            ) => {
                // Refused for good. Answer with our prologue first, so that
                // the peer finds the same mismatch (within one round trip)
                // instead of waiting for ours; then the session ends.
                // r[impl stable.refusal]
                let s = &mut *self.state;
                s.refusing = ZeroOption::Some(SessionError::Refused(HandshakeError::Prologue(e)));
                s.send_prologue = true;
                s.wakes |= Wakes::TRANSMIT;
            }
            Err(_) => self.state.detach_with(Detach::Malformed(FrameError::Malformed)),
            Ok(()) => {
                let s = &mut *self.state;
                let mut h = match s.phase {
                    Phase::Handshake(h) => h,
                    // The peer started a new attachment on this byte stream
                    // (its previous link died on its side): handshake again
                    // on this link.
                    _ => {
                        s.send_prologue = true;
                        Handshake { started: now, prologue_at: now, peer_prologue: false }
                    }
                };
                match role {
                    // Repeats answer our earlier prologues: one hello each
                    // time we (re)started.
                    SessionRole::Initiator if !h.peer_prologue => s.send_hello = true,
                    SessionRole::Initiator => {}
                    SessionRole::Acceptor => s.send_prologue = true,
                }
                h.peer_prologue = true;
                s.phase = Phase::Handshake(h);
                s.wakes |= Wakes::TRANSMIT;
            }
        }
    }

    fn on_frame(&mut self, role: SessionRole, now: Instant, frame: WireFrame<'_>, store: impl FnOnce(usize, &[u8])) {
        match self.state.phase {
            Phase::Handshake(h) => match frame {
                WireFrame::Hello(hello) if h.peer_prologue => match role {
                    SessionRole::Initiator => self.initiator_hello(now, hello),
                    SessionRole::Acceptor => self.acceptor_hello(now, hello),
                },
                WireFrame::Reject(RejectReason::Busy) if h.peer_prologue && role == SessionRole::Initiator => {
                    self.state.on_busy(now);
                }
                WireFrame::Reject(reason) if h.peer_prologue && role == SessionRole::Initiator => {
                    self.state.end(match reason {
                        RejectReason::SessionUnknown => SessionError::SessionLost,
                        other => SessionError::Rejected(other),
                    });
                }
                // A frame of an earlier link still on the line.
                _ => {}
            },
            Phase::Attached => self.on_data_phase_frame(now, frame, store),
            Phase::Detached => {}
        }
    }

    /// Initiator: the acceptor's hello carries our next resume key.
    fn initiator_hello(&mut self, now: Instant, hello: Hello) {
        let Some(key) = hello.key else { return };
        self.state.keys.current = Some(key);
        self.resume(now, hello);
    }

    /// Acceptor: checks the initiator's resume key; issues a new one.
    // r[impl stable.session-lost]
    fn acceptor_hello(&mut self, now: Instant, hello: Hello) {
        let s = &mut *self.state;
        let keys = s.keys;
        let confirmed = keys.confirmed || keys.presented.is_some() || s.rx.next != 0;
        let accepted = match (keys.established, hello.key) {
            (false, None) => true,
            // Our first hello died with its link before the initiator read
            // it: it never had a key nor sent a frame: the same session.
            (true, None) if !confirmed => true,
            // The latest key, or the one before it if the hello that
            // carried the latest died with its link.
            (true, Some(k)) if Some(k) == keys.current || Some(k) == keys.presented => true,
            // The initiator started over: our session is gone.
            (true, None) => {
                s.end(SessionError::SessionLost);
                return;
            }
            // A key we do not know (we restarted, or it is stale).
            (_, Some(_)) => false,
        };
        if !accepted {
            s.reject(RejectReason::SessionUnknown);
            return;
        }
        // A new key only when the hello proves the initiator holds our
        // latest one (or it has none yet). Any other accepted hello may be
        // a stale one (a byte stream outlives its links: it was sent before
        // our hello carrying `current` arrived, and read by a later link of
        // ours), so the initiator may hold `current` already: re-issue it,
        // so that the keys we accept stay the ones it can hold. (A handshake
        // restarted on the same link has no fresh key: it re-issues too.)
        let proven = !keys.established || (hello.key.is_some() && hello.key == keys.current);
        let issue = if proven { keys.fresh.or(keys.current) } else { keys.current };
        let Some(issue) = issue else { return };
        s.keys.presented = hello.key;
        s.keys.current = Some(issue);
        if proven {
            s.keys.fresh = None;
        }
        s.send_hello = true;
        self.resume(now, hello);
    }

    /// The handshake is done: the peer expects `hello.next_expected` next.
    /// Drop what it has, resend the rest in order before anything new.
    // r[impl stable.replay.order]
    fn resume(&mut self, now: Instant, hello: Hello) {
        let s = &mut *self.state;
        let (oldest, sent) = (s.tx.base_seq, s.tx.sent_high);
        let next = hello.next_expected;
        if seq_before(next, oldest) || seq_before(sent, next) {
            s.stats.violations += 1;
            let v = Violation::ResumeOutOfRange { next_expected: next, oldest, sent };
            s.end(SessionError::Violation(v));
            return;
        }
        if s.keys.established {
            s.stats.reattachments += 1;
        }
        s.keys.established = true;
        s.busy = BusyRetry::NONE;
        s.wakes |= Wakes::WRITER;
        s.phase = Phase::Attached;
        s.tx.next_to_send = oldest;
        s.rx.ack_now = true;
        s.last_rx = now;
        s.wakes |= Wakes::TRANSMIT;
        let _replaying = sent.wrapping_sub(next);
        state_info!(
            "stable: attached (reattachments {}), peer expects seq {}, replaying {} frames",
            s.stats.reattachments,
            next,
            _replaying
        );
        self.on_ack(FrameKind::Hello, next, Some(hello.window));
    }

    fn on_data_phase_frame(&mut self, now: Instant, frame: WireFrame<'_>, store: impl FnOnce(usize, &[u8])) {
        if !matches!(frame, WireFrame::Hello(_) | WireFrame::Reject(_)) {
            self.state.keys.confirmed = true;
        }
        match frame {
            WireFrame::Ack { ack, next, window, done } => {
                if !self.on_ack(FrameKind::Ack, ack, Some(window)) {
                    return;
                }
                let s = &mut *self.state;
                if done && !s.peer_done {
                    s.peer_done = true;
                    s.wakes |= Wakes::TRANSMIT;
                }
                if seq_before(s.rx.next, next) {
                    // Frames sent before this ack never arrived.
                    s.stats.gaps += 1;
                    s.detach_with(Detach::FramesLost { expected: s.rx.next, next });
                }
            }
            WireFrame::Data { seq, ack, window, msg } => {
                if self.on_ack(FrameKind::Data, ack, Some(window)) {
                    self.deliver(now, seq, Some(msg), store);
                }
            }
            WireFrame::Close { seq, ack } => {
                if self.on_ack(FrameKind::Close, ack, None) {
                    self.deliver(now, seq, None, store);
                }
            }
            // Late handshake frames of this or an earlier link.
            WireFrame::Hello(_) | WireFrame::Reject(_) => {}
        }
    }

    /// The peer has everything before `ack` and can take `window` more.
    /// `false` if the frame broke the protocol (the attachment ends).
    // r[impl stable.flow.window]
    fn on_ack(&mut self, frame: FrameKind, ack: u32, window: Option<Window>) -> bool {
        let s = &mut *self.state;
        if seq_before(s.tx.sent_high, ack) {
            s.stats.violations += 1;
            s.detach_with(Detach::Violation(Violation::AckAhead { frame, ack, sent: s.tx.sent_high }));
            return false;
        }
        if seq_before(ack, s.tx.base_seq) {
            // Older than an ack already seen: nothing new, window included.
            return true;
        }
        let mut freed = false;
        while seq_before(s.tx.base_seq, ack) {
            let Some(e) = s.tx.ring.pop_front(self.tx_entries) else { break };
            s.tx.base_seq = s.tx.base_seq.wrapping_add(1);
            s.tx.base_off = e.off.wrapping_add(e.len);
            freed = true;
        }
        if s.tx.ring.is_empty() {
            s.tx.base_off = s.tx.next_off;
        }
        if seq_before(s.tx.next_to_send, ack) {
            s.tx.next_to_send = ack;
        }
        if let Some(w) = window {
            let (limit_seq, limit_off) = (ack.wrapping_add(w.msgs), s.tx.base_off.wrapping_add(w.bytes));
            if seq_before(s.tx.limit_seq, limit_seq) || seq_before(s.tx.limit_off, limit_off) {
                s.tx.limit_seq = seq_max(s.tx.limit_seq, limit_seq);
                s.tx.limit_off = seq_max(s.tx.limit_off, limit_off);
                s.wakes |= Wakes::TRANSMIT;
            }
        }
        if freed {
            self.replay_changed();
            self.state.wakes |= Wakes::WRITER;
        }
        true
    }

    // r[impl stable.seq]
    // r[impl stable.gap]
    fn deliver(&mut self, now: Instant, seq: u32, msg: Option<&[u8]>, store: impl FnOnce(usize, &[u8])) {
        let s = &mut *self.state;
        if seq_before(seq, s.rx.next) {
            // Already have it (a replay after a lost ack): drop, re-ack.
            s.stats.duplicates += 1;
            s.rx.ack_now = true;
            s.wakes |= Wakes::TRANSMIT;
            return;
        }
        if seq != s.rx.next {
            s.stats.gaps += 1;
            s.detach_with(Detach::Gap { expected: s.rx.next, got: seq });
            return;
        }
        match msg {
            Some(msg) => {
                if s.rx.alive {
                    let Some((start, wraps)) = s.rx.ring.free_region(self.rx_entries, s.rx.capacity, msg.len()) else {
                        // Beyond the window we granted: dropped unacked
                        // (its ack field was processed). The next frame is
                        // a gap, and the replay brings this one again.
                        s.stats.beyond_window += 1;
                        return;
                    };
                    store(start, msg);
                    let entry = RxEntry { start: start as u32, len: msg.len() as u32, state: RxState::Queued };
                    s.rx.ring.push(self.rx_entries, entry, wraps);
                    s.wakes |= Wakes::READER;
                }
                s.rx.off = s.rx.off.wrapping_add(msg.len() as u32);
                s.stats.messages_delivered += 1;
            }
            None => {
                s.rx.peer_closed = true;
                s.rx.ack_now = true;
                s.wakes |= Wakes::READER;
            }
        }
        s.rx.next = seq.wrapping_add(1);
        if s.rx.unacked == 0 {
            s.rx.first_unacked_at = now;
        }
        s.rx.unacked += 1;
        if s.rx.ack_now || s.rx.unacked >= s.config.ack_every {
            s.wakes |= Wakes::TRANSMIT;
        }
    }

    /// The receive window from `rx.next`, granted now (never less than
    /// before).
    fn grant_window(&mut self) -> Window {
        let s = &mut *self.state;
        let (msgs, bytes) = if s.rx.alive {
            let free = self.rx_entries.len().saturating_sub(s.rx.ring.len());
            let bytes = s.rx.ring.guaranteed_bytes(self.rx_entries, s.rx.capacity, s.config.max_message);
            (free, bytes)
        } else {
            // Messages are dropped on arrival: any amount fits.
            (self.rx_entries.len(), s.rx.capacity)
        };
        let limit_seq = s.rx.next.wrapping_add(msgs as u32);
        let limit_off = s.rx.off.wrapping_add(bytes as u32);
        s.rx.granted_seq = seq_max(s.rx.granted_seq, limit_seq);
        // Never below `next`/`off`: the new limits are at or past them.
        s.rx.granted_off = seq_max(s.rx.granted_off, limit_off);
        Window { msgs: s.rx.granted_seq.wrapping_sub(s.rx.next), bytes: s.rx.granted_off.wrapping_sub(s.rx.off) }
    }

    /// Whether the window the peer last heard is too small for one more
    /// message of the largest size.
    fn advertised_closed(&self) -> bool {
        let rx = &self.state.rx;
        !seq_before(rx.next, rx.advertised_seq)
            || (rx.advertised_off.wrapping_sub(rx.off) as usize) < self.state.config.max_message
            || seq_before(rx.advertised_off, rx.off)
    }

    // ---- sending -------------------------------------------------------

    /// The next frame to send, and whether data waits for the peer's
    /// window.
    fn next_outgoing(&self) -> (Option<Kind>, bool) {
        let s = &*self.state;
        match s.phase {
            Phase::Detached => return (None, false),
            _ if s.send_prologue => return (Some(Kind::Prologue), false),
            _ if s.refusing.is_some() => return (None, false),
            _ if s.send_hello => return (Some(Kind::Hello), false),
            _ if s.send_reject => return (Some(Kind::Reject), false),
            Phase::Handshake(_) => return (None, false),
            Phase::Attached => {}
        }
        if self.state.finished() && !s.done_sent {
            return (Some(Kind::Ack), false);
        }
        let i = s.tx.next_to_send.wrapping_sub(s.tx.base_seq) as usize;
        let mut blocked = false;
        if let Some(e) = s.tx.ring.get(self.tx_entries, i) {
            let seq = s.tx.next_to_send;
            let fits = seq_before(seq, s.tx.limit_seq)
                && !seq_before(s.tx.limit_off, e.off)
                && s.tx.limit_off.wrapping_sub(e.off) >= e.len;
            if e.close || fits {
                return (Some(Kind::Data), false);
            }
            blocked = true;
        }
        ((s.rx.ack_now || s.rx.unacked >= s.config.ack_every).then_some(Kind::Ack), blocked)
    }

    /// The next frame to send; counts a wait for the peer's window (once
    /// per wait) when data is ready but may not go.
    fn poll_outgoing(&mut self) -> Option<Kind> {
        let (kind, blocked) = self.next_outgoing();
        let tx = &mut self.state.tx;
        if blocked && !tx.window_blocked {
            self.state.stats.window_waits += 1;
        }
        self.state.tx.window_blocked = blocked;
        kind
    }

    /// Whether [`transmit`](Self::transmit) has a frame to send now.
    pub fn wants_transmit(&mut self) -> bool {
        self.poll_outgoing().is_some()
    }

    /// The next frame to send, if any, handed to `write` (which encodes it
    /// into the link and commits). Once `write` succeeds the session counts
    /// the frame as sent. `None`: nothing to send now.
    // r[impl stable.ack]
    pub fn transmit<E>(
        &mut self,
        now: Instant,
        write: impl FnOnce(&Outgoing<'_>) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let kind = self.poll_outgoing()?;
        let ack = self.state.rx.next;
        let result = match kind {
            Kind::Prologue => {
                let mut buf = [0u8; PROLOGUE_MAX_LEN];
                let n = self.local_prologue().encode(&mut buf).unwrap_or(0);
                let r = write(&Outgoing::Prologue(buf.get(..n).unwrap_or(&[])));
                if r.is_ok() {
                    let s = &mut *self.state;
                    s.send_prologue = false;
                    if let Phase::Handshake(h) = &mut s.phase {
                        h.prologue_at = now;
                    }
                    if let Some(e) = s.refusing.take() {
                        s.end(e);
                    }
                }
                r
            }
            Kind::Hello => {
                let window = self.grant_window();
                let s = &*self.state;
                let key = s.keys.current;
                let r = write(&Outgoing::Frame(WireFrame::Hello(Hello { key, next_expected: ack, window })));
                if r.is_ok() {
                    self.state.send_hello = false;
                    self.sent_window();
                }
                r
            }
            Kind::Reject => {
                let r = write(&Outgoing::Frame(WireFrame::Reject(self.state.reject_reason)));
                if r.is_ok() {
                    self.state.send_reject = false;
                    self.state.detach_with(Detach::Refused);
                }
                r
            }
            Kind::Data => {
                let window = self.grant_window();
                let s = &*self.state;
                let seq = s.tx.next_to_send;
                let i = seq.wrapping_sub(s.tx.base_seq) as usize;
                let e = s.tx.ring.get(self.tx_entries, i)?;
                let frame = if e.close {
                    WireFrame::Close { seq, ack }
                } else {
                    let msg = self.tx_bytes.get(e.start()..e.end()).unwrap_or(&[]);
                    WireFrame::Data { seq, ack, window, msg }
                };
                let r = write(&Outgoing::Frame(frame));
                if r.is_ok() {
                    let s = &mut *self.state;
                    s.tx.next_to_send = seq.wrapping_add(1);
                    if seq_before(seq, s.tx.sent_high) {
                        s.stats.replays += 1;
                    } else {
                        s.tx.sent_high = seq.wrapping_add(1);
                    }
                    if !e.close {
                        self.sent_window();
                    }
                }
                r
            }
            Kind::Ack => {
                let window = self.grant_window();
                let done = self.state.finished();
                let next = self.state.tx.next_to_send;
                let r = write(&Outgoing::Frame(WireFrame::Ack { ack, next, window, done }));
                if r.is_ok() {
                    let s = &mut *self.state;
                    s.stats.acks_sent += 1;
                    s.done_sent |= done;
                    self.sent_window();
                }
                r
            }
        };
        if result.is_ok() {
            let s = &mut *self.state;
            s.stats.frames_sent += 1;
            s.last_tx = now;
            if matches!(kind, Kind::Data | Kind::Ack) {
                s.rx.unacked = 0;
                s.rx.ack_now = false;
            }
            self.check_complete();
        }
        Some(result)
    }

    /// The peer heard the window just granted (and every ack before it).
    fn sent_window(&mut self) {
        let rx = &mut self.state.rx;
        rx.advertised_seq = rx.granted_seq;
        rx.advertised_off = rx.granted_off;
    }

    fn check_complete(&mut self) {
        let s = &mut *self.state;
        if !s.complete && s.finished() && s.done_sent && s.peer_done {
            s.complete = true;
            s.detach_with(Detach::Finished);
        }
    }

    // ---- the application's side ---------------------------------------

    /// Reserves room for one message of up to `max_message` bytes in the
    /// replay ring (and keeps an entry for the close marker). `Ok(false)`:
    /// no room now; wait for [`Wakes::WRITER`].
    // r[impl stable.replay]
    pub fn try_reserve(&mut self) -> Result<bool, SendError> {
        let s = &*self.state;
        if let Some(e) = s.ended.as_ref() {
            return Err(SendError::Session(*e));
        }
        if s.tx.closed {
            return Err(SendError::Closed);
        }
        let room = self.replay_room();
        let s = &mut *self.state;
        if s.tx.writer_active || !room {
            s.tx.writer_waiting = true;
            return Ok(false);
        }
        s.tx.writer_active = true;
        s.tx.writer_waiting = false;
        s.tx.stalled_since = None;
        Ok(true)
    }

    /// Room for one more message in the replay ring (and the entry kept
    /// for the close marker). Nothing is reported sent before the first
    /// handshake: a refused one then fails `reserve` instead of
    /// swallowing messages.
    fn replay_room(&self) -> bool {
        let s = &*self.state;
        s.keys.established
            && s.tx.ring.len() + 2 <= self.tx_entries.len()
            && s.tx.ring.free_region(self.tx_entries, self.tx_bytes.len(), s.config.max_message).is_some()
    }

    /// Whether a waiting `reserve` would end now ([`try_reserve`](Self::try_reserve)
    /// returns other than `Ok(false)`): a writer is woken only then, so
    /// none polls in vain.
    pub fn writer_may_proceed(&self) -> bool {
        let s = &*self.state;
        s.ended.is_some() || s.tx.closed || (!s.tx.writer_active && self.replay_room())
    }

    /// Writers wait for room (queued behind the one that reserves): the
    /// self-stall count watches them.
    pub fn note_writer_waiting(&mut self) {
        self.state.tx.writer_waiting = true;
    }

    /// The reservation ends (its message was pushed or abandoned).
    pub fn end_reserve(&mut self) {
        self.state.tx.writer_active = false;
        self.state.wakes |= Wakes::WRITER;
    }

    /// Stores the next message after a successful
    /// [`try_reserve`](Self::try_reserve): `encode` writes it into a
    /// region of `max_message` bytes and returns its length (one encoding
    /// pass). Nothing changes when `encode` fails.
    pub fn push_message(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, SendError>,
    ) -> Result<(), SendError> {
        let s = &mut *self.state;
        if let Some(e) = s.ended.as_ref() {
            return Err(SendError::Session(*e));
        }
        let max = s.config.max_message;
        let Some((start, wraps)) = s.tx.ring.free_region(self.tx_entries, self.tx_bytes.len(), max) else {
            return Err(SendError::TooLarge { max });
        };
        let region = self.tx_bytes.get_mut(start..start + max).ok_or(SendError::TooLarge { max })?;
        let len = encode(region)?.min(max);
        let entry = TxEntry { start: start as u32, len: len as u32, off: s.tx.next_off, close: false };
        s.tx.ring.push(self.tx_entries, entry, wraps);
        s.tx.next_seq = s.tx.next_seq.wrapping_add(1);
        s.tx.next_off = s.tx.next_off.wrapping_add(len as u32);
        s.wakes |= Wakes::TRANSMIT;
        self.replay_changed();
        Ok(())
    }

    /// The application closed (or dropped) its sending half: the close
    /// marker follows every message pushed so far.
    pub fn close_tx(&mut self) {
        let s = &mut *self.state;
        if s.tx.closed {
            return;
        }
        s.tx.closed = true;
        // `try_reserve` always keeps an entry free for this marker.
        if let Some((start, wraps)) = s.tx.ring.free_region(self.tx_entries, self.tx_bytes.len(), 0) {
            let entry = TxEntry { start: start as u32, len: 0, off: s.tx.next_off, close: true };
            if s.tx.ring.push(self.tx_entries, entry, wraps) {
                s.tx.next_seq = s.tx.next_seq.wrapping_add(1);
            }
        }
        s.wakes |= Wakes::TRANSMIT | Wakes::WRITER;
        self.replay_changed();
    }

    /// The next received message for the application, if any.
    pub fn pop_received(&mut self) -> Option<Received> {
        let s = &mut *self.state;
        let token = s.rx.ring.position(s.rx.delivered, self.rx_entries.len())?;
        let entry = self.rx_entries.get_mut(token)?;
        entry.state = RxState::Lent;
        s.rx.delivered += 1;
        Some(Received { token, start: entry.start(), len: entry.len() })
    }

    /// The peer closed its direction and every message before it was
    /// popped.
    pub fn peer_closed(&self) -> bool {
        let rx = &self.state.rx;
        rx.peer_closed && rx.delivered == rx.ring.len()
    }

    /// The application is done with a received message: its room returns
    /// to the window, and a window update goes out at once if the window
    /// had closed.
    // r[impl stable.flow.update]
    pub fn release(&mut self, token: usize) {
        if let Some(e) = self.rx_entries.get_mut(token) {
            e.state = RxState::Released;
        }
        self.free_released();
    }

    fn free_released(&mut self) {
        let s = &mut *self.state;
        while s.rx.ring.front(self.rx_entries).is_some_and(|e| e.state == RxState::Released) {
            s.rx.ring.pop_front(self.rx_entries);
            s.rx.delivered = s.rx.delivered.saturating_sub(1);
        }
        let attached = s.phase == Phase::Attached;
        if attached && !s.rx.ack_now && self.advertised_closed() {
            let before = (self.state.rx.granted_seq, self.state.rx.granted_off);
            self.grant_window();
            let s = &mut *self.state;
            if (s.rx.granted_seq, s.rx.granted_off) != before {
                s.rx.ack_now = true;
                s.stats.window_updates += 1;
                s.wakes |= Wakes::TRANSMIT;
            }
        }
    }

    /// The application dropped its receiver: messages are acked and
    /// dropped from now on; the ones not yet taken are freed.
    pub fn drop_receiver(&mut self) {
        let s = &mut *self.state;
        s.rx.alive = false;
        for i in s.rx.delivered..s.rx.ring.len() {
            if let Some(e) = s.rx.ring.position(i, self.rx_entries.len()).and_then(|p| self.rx_entries.get_mut(p)) {
                e.state = RxState::Released;
            }
        }
        s.rx.delivered = s.rx.ring.len();
        s.rx.ack_now = true;
        s.wakes |= Wakes::TRANSMIT;
        self.free_released();
    }

    fn replay_changed(&mut self) {
        let s = &mut *self.state;
        let frames = s.tx.ring.len() as u32;
        // Stream offsets: the stored messages are exactly those between.
        let bytes = s.tx.next_off.wrapping_sub(s.tx.base_off);
        let st = &mut s.stats;
        st.replay_frames = frames;
        st.replay_bytes = bytes;
        st.replay_frames_high = st.replay_frames_high.max(frames);
        st.replay_bytes_high = st.replay_bytes_high.max(bytes);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prologue,
    Hello,
    Reject,
    Data,
    Ack,
}

/// A session with buffers it owns: for tests, simulations and drivers of
/// your own. `TXB`/`TXN`: replay bytes and entries; `RXB`/`RXN`: receive
/// bytes and entries.
///
/// Two sessions fed each other's frames by hand, at explicit times, with
/// no link, task or clock:
///
/// ```
/// use vox_conduit_stable::StableConfig;
/// use vox_conduit_stable::session::SessionStorage;
/// use vox_types::{SchemaFingerprint, SessionRole};
///
/// type Store = SessionStorage<512, 4, 512, 4>;
/// const FP: SchemaFingerprint = SchemaFingerprint::of::<[u8]>();
/// let mut device = Store::new(SessionRole::Initiator, StableConfig::DEFAULT, FP);
/// let mut host = Store::new(SessionRole::Acceptor, StableConfig::DEFAULT, FP);
///
/// /// Hands every frame `from` wants to send to `to`; returns how many.
/// fn deliver(from: &mut Store, to: &mut Store, now: u64) -> usize {
///     let (mut frame, mut len, mut sent) = ([0u8; 512], 0, 0);
///     while let Some(written) = from.parts().0.transmit(now, |out| {
///         len = out.len();
///         out.encode(&mut frame[..len])
///     }) {
///         written.unwrap();
///         let (mut session, rx_bytes) = to.parts();
///         session.on_receive(now, &frame[..len], |at, msg| rx_bytes[at..at + msg.len()].copy_from_slice(msg));
///         sent += 1;
///     }
///     sent
/// }
/// let pump = |device: &mut Store, host: &mut Store, now| {
///     while deliver(device, host, now) + deliver(host, device, now) > 0 {}
/// };
///
/// // A new link: prologues and hellos (the acceptor brings a resume key).
/// device.parts().0.attach(0, None);
/// host.parts().0.attach(0, Some([7; 16]));
/// pump(&mut device, &mut host, 1);
///
/// // The device's application sends one message...
/// let (mut session, _) = device.parts();
/// assert_eq!(session.try_reserve(), Ok(true));
/// session.push_message(|buf| { buf[..5].copy_from_slice(b"hello"); Ok(5) })?;
/// session.end_reserve();
/// pump(&mut device, &mut host, 2);
///
/// // ...and the host's takes it from its receive ring, then frees it.
/// let (mut session, rx_bytes) = host.parts();
/// let msg = session.pop_received().unwrap();
/// assert_eq!(&rx_bytes[msg.start..msg.start + msg.len], b"hello");
/// session.release(msg.token);
/// assert_eq!(host.state.stats().messages_delivered, 1);
/// # Ok::<(), vox_conduit_stable::SendError>(())
/// ```
pub struct SessionStorage<const TXB: usize, const TXN: usize, const RXB: usize, const RXN: usize> {
    /// The state.
    pub state: SessionState,
    tx_bytes: [u8; TXB],
    tx_entries: [TxEntry; TXN],
    rx_entries: [RxEntry; RXN],
    rx_bytes: [u8; RXB],
}

impl<const TXB: usize, const TXN: usize, const RXB: usize, const RXN: usize> SessionStorage<TXB, TXN, RXB, RXN> {
    /// A fresh session.
    pub const fn new(role: SessionRole, config: StableConfig, fingerprint: SchemaFingerprint) -> Self {
        Self {
            state: SessionState::new(role, config, fingerprint, RXB),
            tx_bytes: [0; TXB],
            tx_entries: [TxEntry::EMPTY; TXN],
            rx_entries: [RxEntry::EMPTY; RXN],
            rx_bytes: [0; RXB],
        }
    }

    /// The session, and the receive buffer that `store` writes into and
    /// [`Received`] points into.
    pub fn parts(&mut self) -> (Session<'_>, &mut [u8]) {
        let session = Session {
            state: &mut self.state,
            tx_bytes: &mut self.tx_bytes,
            tx_entries: &mut self.tx_entries,
            rx_entries: &mut self.rx_entries,
        };
        (session, &mut self.rx_bytes)
    }
}
