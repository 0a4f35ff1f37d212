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

// r[impl proto.doc]
// The specification of these frames, with hex examples a test checks
// against this codec, is `docs/PROTOCOL.md`; keep it exact when this
// file changes.

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
    /// The acceptor's session table is full of live sessions: a new
    /// session is refused rather than evicting one.
    TableFull,
    /// The acceptor's application is not taking new sessions (its queue of
    /// sessions waiting for `accept` is full).
    Busy,
}

impl RejectReason {
    const fn to_wire(self) -> u8 {
        match self {
            Self::SessionUnknown => 0,
            Self::TableFull => 1,
            Self::Busy => 2,
        }
    }

    const fn from_wire(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::SessionUnknown),
            1 => Some(Self::TableFull),
            2 => Some(Self::Busy),
            _ => None,
        }
    }
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

/// Why a payload is not a stable frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// The payload ended inside the frame.
    Truncated,
    /// An unknown variant, a varint over `u32`, a bool or option tag other
    /// than 0 or 1, or bytes after the frame.
    Malformed,
}

/// A postcard-compatible codec for [`WireFrame`], written by hand: the
/// serde-derived one costs a Cortex-M several KB of flash for five small
/// variants. The bytes are exactly postcard's (a test checks both ways).
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) -> Option<()> {
        *self.buf.get_mut(self.at)? = b;
        self.at += 1;
        Some(())
    }

    fn varint(&mut self, mut v: u32) -> Option<()> {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }

    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.buf.get_mut(self.at..self.at + b.len())?.copy_from_slice(b);
        self.at += b.len();
        Some(())
    }

    fn window(&mut self, w: &Window) -> Option<()> {
        self.varint(w.msgs)?;
        self.varint(w.bytes)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, FrameError> {
        let (&b, rest) = self.bytes.split_first().ok_or(FrameError::Truncated)?;
        self.bytes = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u32, FrameError> {
        let mut v = 0u32;
        for i in 0..5 {
            let b = self.byte()?;
            if i == 4 && b > 0x0F {
                return Err(FrameError::Malformed);
            }
            v |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FrameError::Malformed)
    }

    fn flag(&mut self) -> Result<bool, FrameError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(FrameError::Malformed),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.bytes.len() {
            return Err(FrameError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn window(&mut self) -> Result<Window, FrameError> {
        Ok(Window { msgs: self.varint()?, bytes: self.varint()? })
    }
}

fn varint_len(v: u32) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

impl<'a> WireFrame<'a> {
    /// Length of the encoding.
    pub fn encoded_len(&self) -> usize {
        let w = |w: &Window| varint_len(w.msgs) + varint_len(w.bytes);
        1 + match self {
            Self::Hello(h) => 1 + h.key.map_or(0, |_| KEY_LEN) + varint_len(h.next_expected) + w(&h.window),
            Self::Reject(_) => 1,
            Self::Data { seq, ack, window, msg } => {
                varint_len(*seq) + varint_len(*ack) + w(window) + varint_len(msg.len() as u32) + msg.len()
            }
            Self::Ack { ack, next, window, .. } => varint_len(*ack) + varint_len(*next) + w(window) + 1,
            Self::Close { seq, ack } => varint_len(*seq) + varint_len(*ack),
        }
    }

    /// Writes the encoding (postcard's bytes) into `buf`; returns its
    /// length, or `None` if `buf` is too short.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut w = Writer { buf, at: 0 };
        match self {
            Self::Hello(h) => {
                w.byte(0)?;
                match &h.key {
                    Some(k) => {
                        w.byte(1)?;
                        w.bytes(k)?;
                    }
                    None => w.byte(0)?,
                }
                w.varint(h.next_expected)?;
                w.window(&h.window)?;
            }
            Self::Reject(reason) => {
                w.byte(1)?;
                w.byte(reason.to_wire())?;
            }
            Self::Data { seq, ack, window, msg } => {
                w.byte(2)?;
                w.varint(*seq)?;
                w.varint(*ack)?;
                w.window(window)?;
                w.varint(u32::try_from(msg.len()).ok()?)?;
                w.bytes(msg)?;
            }
            Self::Ack { ack, next, window, done } => {
                w.byte(3)?;
                w.varint(*ack)?;
                w.varint(*next)?;
                w.window(window)?;
                w.byte(u8::from(*done))?;
            }
            Self::Close { seq, ack } => {
                w.byte(4)?;
                w.varint(*seq)?;
                w.varint(*ack)?;
            }
        }
        Some(w.at)
    }

    /// Decodes a whole payload (nothing may follow the frame). `Data`'s
    /// message borrows from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Reader { bytes };
        let frame = match r.varint()? {
            0 => {
                let key = if r.flag()? {
                    let mut k = [0; KEY_LEN];
                    k.copy_from_slice(r.take(KEY_LEN)?);
                    Some(k)
                } else {
                    None
                };
                Self::Hello(Hello { key, next_expected: r.varint()?, window: r.window()? })
            }
            1 => Self::Reject(RejectReason::from_wire(r.varint()?).ok_or(FrameError::Malformed)?),
            2 => {
                let (seq, ack, window) = (r.varint()?, r.varint()?, r.window()?);
                let len = r.varint()? as usize;
                Self::Data { seq, ack, window, msg: r.take(len)? }
            }
            3 => Self::Ack { ack: r.varint()?, next: r.varint()?, window: r.window()?, done: r.flag()? },
            4 => Self::Close { seq: r.varint()?, ack: r.varint()? },
            _ => return Err(FrameError::Malformed),
        };
        if r.bytes.is_empty() { Ok(frame) } else { Err(FrameError::Malformed) }
    }
}

/// `a` comes before `b` in wrapping sequence order.
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window() -> impl Strategy<Value = Window> {
        (any::<u32>(), any::<u32>()).prop_map(|(msgs, bytes)| Window { msgs, bytes })
    }

    fn frame() -> impl Strategy<Value = (u8, Option<ResumeKey>, u32, u32, Window, std::vec::Vec<u8>, bool)> {
        (
            0u8..5,
            any::<Option<ResumeKey>>(),
            any::<u32>(),
            any::<u32>(),
            window(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
        )
    }

    fn build(f: &(u8, Option<ResumeKey>, u32, u32, Window, std::vec::Vec<u8>, bool)) -> WireFrame<'_> {
        let (kind, key, a, b, window, msg, done) = f;
        match kind {
            0 => WireFrame::Hello(Hello { key: *key, next_expected: *a, window: *window }),
            1 => WireFrame::Reject(
                [RejectReason::SessionUnknown, RejectReason::TableFull, RejectReason::Busy][*b as usize % 3],
            ),
            2 => WireFrame::Data { seq: *a, ack: *b, window: *window, msg },
            3 => WireFrame::Ack { ack: *a, next: *b, window: *window, done: *done },
            _ => WireFrame::Close { seq: *a, ack: *b },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The hand codec writes exactly postcard's bytes and reads them
        /// back.
        #[test]
        fn hand_codec_is_postcard(f in frame()) {
            let frame = build(&f);
            let expected = postcard::to_allocvec(&frame).unwrap();
            let mut buf = std::vec![0u8; frame.encoded_len()];
            prop_assert_eq!(frame.encode(&mut buf), Some(expected.len()));
            prop_assert_eq!(&buf, &expected);
            prop_assert_eq!(WireFrame::decode(&expected), Ok(frame));
            prop_assert!(frame.encode(&mut buf[..expected.len() - 1]).is_none(), "a short buffer is refused");
        }

        /// On any bytes, the hand decoder accepts exactly what postcard
        /// accepts (as a whole payload), with the same result.
        #[test]
        fn hand_decoder_agrees_with_postcard_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40), kind in 0u8..6) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = kind; }
            let ours = WireFrame::decode(&bytes).ok();
            let theirs = match postcard::take_from_bytes::<WireFrame<'_>>(&bytes) {
                Ok((f, [])) => Some(f),
                _ => None,
            };
            prop_assert_eq!(ours, theirs);
        }
    }

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
