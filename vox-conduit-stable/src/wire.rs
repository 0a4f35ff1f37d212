//! The stable conduit's frames: one postcard-encoded [`WireFrame`] per link
//! payload, after the link prologue. `docs/PROTOCOL.md` is the full
//! specification; this table is the summary.
//!
//! | frame | fields | meaning |
//! |-------|--------|---------|
//! | `Hello` | key: `Option<[u8; 16]>`, next_expected: `u32`, window | first frame each way on an attachment |
//! | `Reject` | reason | the acceptor does not know the resume key |
//! | `Data` | seq, ack, window, message bytes | one message; `ack` = next sequence expected from the peer |
//! | `Ack` | ack, next, window, done | ack-only, window update, keepalive; `next` = the sender's next sequence number; `done` = the sender has finished |
//! | `Close` | seq, ack | the sender's direction ends after `seq - 1` |
//!
//! Sequence numbers count from 0 per direction and wrap at `u32`. A
//! [`Window`] is relative to the frame's `ack` (or `next_expected`): the
//! sender of the frame can take messages up to `ack + msgs` (exclusive)
//! whose bytes end at most `bytes` after the first byte of message `ack`.

use serde::{Deserialize, Serialize};

/// Length of a resume key.
pub const KEY_LEN: usize = 16;
/// A resume key.
pub type ResumeKey = [u8; KEY_LEN];
/// Largest header a `Data` frame adds to the message bytes (variant, four
/// `u32` varints, a length varint).
pub const MAX_HEADER: usize = 1 + 5 + 5 + 5 + 5 + 5;

/// How much more the sender of a frame can receive, counted from the
/// frame's `ack`: credit flow control, like TCP's window or QUIC's
/// `MAX_STREAM_DATA`.
// r[impl stable.flow.window]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Messages: sequence numbers below `ack + msgs` may be sent.
    pub msgs: u32,
    /// Message bytes, counted from the first byte of message `ack`.
    pub bytes: u32,
}

/// The hello each side sends first on an attachment.
// r[impl stable.handshake]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Initiator: the key of the session to resume, `None` for a new one.
    /// Acceptor: the new key for the initiator's next resume.
    pub key: Option<ResumeKey>,
    /// The next sequence number this side expects (all before it arrived).
    pub next_expected: u32,
    /// This side's receive window, counted from `next_expected`.
    pub window: Window,
}

/// Why an acceptor refused a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RejectReason {
    /// The resume key is unknown or expired (e.g. the acceptor restarted).
    SessionUnknown,
}

/// One stable-conduit frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireFrame<'a> {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`RejectReason`].
    Reject(RejectReason),
    /// One message.
    Data {
        /// This frame's sequence number.
        seq: u32,
        /// Next sequence number the sender expects from the peer.
        ack: u32,
        /// The sender's receive window, from `ack`.
        window: Window,
        /// The message's postcard bytes.
        msg: &'a [u8],
    },
    /// Ack only (also the window update and the keepalive).
    Ack {
        /// Next sequence number the sender expects from the peer.
        ack: u32,
        /// The sender's next sequence number: every frame before it was
        /// sent earlier on this link, so (links being in order) a receiver
        /// still missing one has lost it: a gap, even with no later data.
        next: u32,
        /// The sender's receive window, from `ack`.
        window: Window,
        /// The sender is finished: both directions closed and acked. Its
        /// peer may leave once it is finished too.
        done: bool,
    },
    /// End of the sender's direction.
    Close {
        /// This frame's sequence number.
        seq: u32,
        /// Next sequence number the sender expects from the peer.
        ack: u32,
    },
}

/// `a` comes before `b` in wrapping sequence order.
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_header_fits_max_header_and_order_wraps() {
        let window = Window { msgs: u32::MAX, bytes: u32::MAX };
        let f = WireFrame::Data { seq: u32::MAX, ack: u32::MAX, window, msg: &[0u8; 300] };
        let n = postcard::experimental::serialized_size(&f).unwrap();
        assert!(n - 300 <= MAX_HEADER);
        assert!(seq_before(u32::MAX, 0));
        assert!(!seq_before(0, u32::MAX));
        assert!(!seq_before(5, 5));
        assert!(seq_before(1, 2));
    }
}
