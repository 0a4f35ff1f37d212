//! What the core reports to its caller: which frame a violation was found
//! in ([`FrameKind`], [`Violation`]), why an attachment ends ([`Detach`])
//! and whom to wake ([`Wakes`]).

use crate::wire::FrameError;
use vox_types::LinkError;

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
/// in [`StableStats::violations`](crate::StableStats::violations)): the frame may be a stray one (a stale
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
    /// ([`SessionState::attach_not_before`](super::SessionState::attach_not_before)).
    Busy,
    /// The peer broke the protocol.
    Violation(Violation),
    /// Both directions are closed and acknowledged (or the linger time
    /// ran out): the session is complete.
    Finished,
    /// The session ended: [`SessionState::ended`](super::SessionState::ended) says why.
    Ended,
}

/// What the caller should wake after a call, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wakes(pub(super) u8);

impl Wakes {
    /// The application's sender: replay room, or the session ended.
    pub const WRITER: u8 = 1;
    /// The application's receiver: a message, the peer's close, or the end.
    pub const READER: u8 = 2;
    /// The transmitter: something to send.
    pub const TRANSMIT: u8 = 4;
    /// The driver: the attachment ends ([`SessionState::take_detach`](super::SessionState::take_detach)).
    pub const DETACH: u8 = 8;

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Whether any bit is set.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Clears `bit`.
    pub fn clear(&mut self, bit: u8) {
        self.0 &= !bit;
    }
}
