//! The stable conduit's frames: one postcard-encoded [`WireFrame`] per link
//! payload, after the link prologue. `docs/PROTOCOL.md` is the full
//! specification; this table is the summary.
//!
//! | frame | fields | meaning |
//! |-------|--------|---------|
//! | `Hello` | key: `Option<[u8; 16]>`, next_expected: `u32`, window | first frame each way on an attachment |
//! | `Reject` | reason | the acceptor does not know the resume key |
//! | `Data` | flags, seq, ack, window (optional), message bytes | one message; `ack` = next sequence expected from the peer |
//! | `Ack` | ack, next, window, done | ack-only, window update, keepalive; `next` = the sender's next sequence number; `done` = the sender has finished |
//! | `Close` | seq, ack | the sender's direction ends after `seq - 1` |
//!
//! Sequence numbers count from 0 per direction and wrap at `u32`. A
//! [`Window`] is relative to the frame's `ack` (or `next_expected`): the
//! sender of the frame can take messages up to `ack + msgs` (exclusive)
//! whose bytes end at most `bytes` after the first byte of message `ack`.
//!
//! A `Data` frame is compact (`docs/PROTOCOL.md` §6): a flags byte, `seq`
//! and `ack` as their low byte when the receiver can restore the rest
//! ([`WireSeq`]), the window only when the sender must announce it, and
//! the message filling the rest of the payload: 3 bytes of header in the
//! common case.

// r[impl proto.doc]
// The specification of these frames, with hex examples a test checks
// against this codec, is `docs/PROTOCOL.md`; keep it exact when this
// file changes.

use serde::{Deserialize, Serialize};

/// Length of a resume key.
pub const KEY_LEN: usize = 16;
/// A resume key.
pub type ResumeKey = [u8; KEY_LEN];
/// Largest header a `Data` frame adds to the message bytes (the flags
/// byte, four `u32` varints).
pub const MAX_HEADER: usize = 1 + 5 + 5 + 5 + 5;
/// Largest frame other than `Data`: a `Hello` with a key (variant, option
/// tag, 16 key bytes, three `u32` varints). A link must carry it whatever
/// `max_message` is.
pub const MAX_CONTROL_FRAME: usize = 1 + 1 + KEY_LEN + 5 + 5 + 5;
/// A `Data` frame's `seq` may travel as its low byte when the sender has at
/// most this many frames outstanding (sent, not acknowledged), counting
/// it: the receiver's expected number is then within `-128..=127` of it.
pub const SEQ_LOW_SPAN: u32 = 128;
/// A `Data` frame's `ack` may travel as its low byte when the sender's
/// largest grant reaches at most this far beyond it (minus one for the
/// peer's `Close`): the peer's next number to send is then within 255 of it.
pub const ACK_LOW_SPAN: u32 = 255;

/// The first byte of a compact `Data` frame: this bit, plus the flags.
const DATA_TAG: u8 = 0x80;
/// Flag: the window follows the counters.
const DATA_WINDOW: u8 = 0x01;
/// Flag: `seq` is a whole varint, not its low byte.
const DATA_SEQ_FULL: u8 = 0x02;
/// Flag: `ack` is a whole varint, not its low byte.
const DATA_ACK_FULL: u8 = 0x04;

/// A `Data` frame's `seq` or `ack` as it travels: the low byte of the
/// number when the receiver can restore the rest from its own state, else
/// the whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WireSeq {
    /// The number's low byte.
    Low(u8),
    /// The whole number.
    Full(u32),
}

impl WireSeq {
    /// `value` as its low byte if `fits` (the sender checked the span:
    /// [`SEQ_LOW_SPAN`] or [`ACK_LOW_SPAN`]), else whole.
    pub const fn compact(value: u32, fits: bool) -> Self {
        if fits { Self::Low(value as u8) } else { Self::Full(value) }
    }

    /// The sequence number this `seq` field names, for a receiver that
    /// expects `expected` next: the number with this low byte in
    /// `expected - 128 ..= expected + 127`.
    pub const fn resolve_seq(self, expected: u32) -> u32 {
        match self {
            Self::Full(v) => v,
            Self::Low(b) => expected.wrapping_add(b.wrapping_sub(expected as u8) as i8 as i32 as u32),
        }
    }

    /// The ack this `ack` field names, for a receiver that has sent every
    /// frame before `sent_high`: the number with this low byte in
    /// `sent_high - 255 ..= sent_high`.
    pub const fn resolve_ack(self, sent_high: u32) -> u32 {
        match self {
            Self::Full(v) => v,
            Self::Low(b) => sent_high.wrapping_sub((sent_high as u8).wrapping_sub(b) as u32),
        }
    }
}

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
    /// The acceptor's session table is full of live sessions (as of its
    /// last search of the table: `StableAcceptor` searches a full table
    /// at most every 100 ms): a new session is refused rather than
    /// evicting one.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFrame<'a> {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`RejectReason`].
    Reject(RejectReason),
    /// One message.
    Data {
        /// This frame's sequence number ([`WireSeq::resolve_seq`]).
        seq: WireSeq,
        /// Next sequence number the sender expects from the peer
        /// ([`WireSeq::resolve_ack`]).
        ack: WireSeq,
        /// The sender's receive window, from `ack`, when it announces one;
        /// `None` leaves the limits the receiver heard last as they are.
        window: Option<Window>,
        /// The message's postcard bytes: the rest of the payload.
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

/// The codec for [`WireFrame`], written by hand: a serde-derived one costs
/// a Cortex-M several KB of flash for five small variants, and the compact
/// `Data` frame is not a postcard enum. Every other frame's bytes are
/// exactly postcard's (a test checks both ways).
///
/// The writer stores the bytes that fit and counts them all: the count is
/// the encoding's length whatever the buffer (an empty one measures it),
/// so one routine both encodes and measures (on hosts the common `Data`
/// frame also has a shortcut of its own: see [`WireFrame::encode`]).
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.at) {
            *slot = b;
        }
        self.at += 1;
    }

    fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8)
    }

    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }

    fn window(&mut self, w: &Window) {
        self.varint(w.msgs);
        self.varint(w.bytes)
    }

    fn counter(&mut self, c: WireSeq) {
        match c {
            WireSeq::Low(b) => self.byte(b),
            WireSeq::Full(v) => self.varint(v),
        }
    }
}

/// Reads a payload. A read that fails keeps its error (the first one
/// counts) and returns 0, so a frame is parsed straight through and its
/// error, if any, checked once at the end.
struct Reader<'a> {
    bytes: &'a [u8],
    error: Option<FrameError>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, e: FrameError) {
        self.error.get_or_insert(e);
    }

    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => {
                self.fail(FrameError::Truncated);
                0
            }
        }
    }

    fn varint(&mut self) -> u32 {
        let mut v = 0u32;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u32::from(b & 0x7F) << shift;
            if shift == 28 {
                // The fifth byte holds the top four bits, and ends it.
                if b > 0x0F {
                    self.fail(FrameError::Malformed);
                }
                return v;
            }
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    fn flag(&mut self) -> bool {
        let b = self.byte();
        if b > 1 {
            self.fail(FrameError::Malformed);
        }
        b == 1
    }

    fn window(&mut self) -> Window {
        Window { msgs: self.varint(), bytes: self.varint() }
    }

    fn counter(&mut self, full: bool) -> WireSeq {
        if full { WireSeq::Full(self.varint()) } else { WireSeq::Low(self.byte()) }
    }
}

impl<'a> WireFrame<'a> {
    /// Length of the encoding.
    pub fn encoded_len(&self) -> usize {
        // On hosts (feature `std`), the common `Data` frame (both counters
        // as their low byte, no window) is measured and written without a
        // pass of the writer: one of each per message sent. Small targets
        // keep the one routine (both paths cost an lm3s6965 firmware
        // about 130 B).
        #[cfg(feature = "std")]
        if let Self::Data { seq: WireSeq::Low(_), ack: WireSeq::Low(_), window: None, msg } = self {
            return 3 + msg.len();
        }
        self.write(&mut [])
    }

    /// Writes the encoding (postcard's bytes) into `buf`; returns its
    /// length, or `None` if `buf` is too short.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        // The common `Data` frame on hosts, as in `encoded_len`: its flags
        // byte (no flag set) and both counters' low bytes, then the message.
        #[cfg(feature = "std")]
        if let Self::Data { seq: WireSeq::Low(seq), ack: WireSeq::Low(ack), window: None, msg } = self {
            let (head, rest) = buf.split_first_chunk_mut::<3>()?;
            *head = [DATA_TAG, *seq, *ack];
            rest.get_mut(..msg.len())?.copy_from_slice(msg);
            return Some(3 + msg.len());
        }
        let max = buf.len();
        let len = self.write(buf);
        (len <= max).then_some(len)
    }

    /// Writes as much of the encoding as fits into `buf`; returns the
    /// whole encoding's length.
    fn write(&self, buf: &mut [u8]) -> usize {
        let mut w = Writer { buf, at: 0 };
        match self {
            Self::Hello(h) => {
                w.byte(0);
                match &h.key {
                    Some(k) => {
                        w.byte(1);
                        w.bytes(k);
                    }
                    None => w.byte(0),
                }
                w.varint(h.next_expected);
                w.window(&h.window);
            }
            Self::Reject(reason) => {
                w.byte(1);
                w.byte(reason.to_wire());
            }
            Self::Data { seq, ack, window, msg } => {
                let full = |c: &WireSeq, flag| if matches!(c, WireSeq::Full(_)) { flag } else { 0 };
                let flags = full(seq, DATA_SEQ_FULL) | full(ack, DATA_ACK_FULL);
                w.byte(DATA_TAG | flags | if window.is_some() { DATA_WINDOW } else { 0 });
                w.counter(*seq);
                w.counter(*ack);
                if let Some(window) = window {
                    w.window(window);
                }
                w.bytes(msg);
            }
            Self::Ack { ack, next, window, done } => {
                w.byte(3);
                w.varint(*ack);
                w.varint(*next);
                w.window(window);
                w.byte(u8::from(*done));
            }
            Self::Close { seq, ack } => {
                w.byte(4);
                w.varint(*seq);
                w.varint(*ack);
            }
        }
        w.at
    }

    /// Decodes a whole payload (nothing may follow the frame). `Data`'s
    /// message borrows from `bytes`. Inlined on hosts (feature `std`):
    /// once per frame received.
    #[cfg_attr(feature = "std", inline(always))]
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        // The common `Data` frame on hosts, as in `encode`: its flags byte
        // (no flag set) and both counters' low bytes, then the message.
        #[cfg(feature = "std")]
        if let Some(([DATA_TAG, seq, ack], msg)) = bytes.split_first_chunk::<3>() {
            return Ok(Self::Data { seq: WireSeq::Low(*seq), ack: WireSeq::Low(*ack), window: None, msg });
        }
        let mut r = Reader { bytes, error: None };
        let tag = r.byte();
        let frame = if tag & DATA_TAG != 0 {
            if tag & !(DATA_TAG | DATA_WINDOW | DATA_SEQ_FULL | DATA_ACK_FULL) != 0 {
                r.fail(FrameError::Malformed);
            }
            let seq = r.counter(tag & DATA_SEQ_FULL != 0);
            let ack = r.counter(tag & DATA_ACK_FULL != 0);
            let window = if tag & DATA_WINDOW != 0 { Some(r.window()) } else { None };
            let msg = core::mem::take(&mut r.bytes);
            Self::Data { seq, ack, window, msg }
        } else {
            match tag {
                0 => {
                    let key = if r.flag() {
                        Some(match r.bytes.split_first_chunk::<KEY_LEN>() {
                            Some((k, rest)) => {
                                r.bytes = rest;
                                *k
                            }
                            None => {
                                r.bytes = &[];
                                r.fail(FrameError::Truncated);
                                [0; KEY_LEN]
                            }
                        })
                    } else {
                        None
                    };
                    Self::Hello(Hello { key, next_expected: r.varint(), window: r.window() })
                }
                1 => {
                    let reason = RejectReason::from_wire(r.varint());
                    Self::Reject(reason.unwrap_or_else(|| {
                        r.fail(FrameError::Malformed);
                        RejectReason::SessionUnknown
                    }))
                }
                3 => Self::Ack { ack: r.varint(), next: r.varint(), window: r.window(), done: r.flag() },
                4 => Self::Close { seq: r.varint(), ack: r.varint() },
                _ => return Err(FrameError::Malformed),
            }
        };
        match r.error {
            Some(e) => Err(e),
            None if r.bytes.is_empty() => Ok(frame),
            None => Err(FrameError::Malformed),
        }
    }
}

/// `a` comes before `b` in wrapping sequence order.
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    // `b - a` (wrapping) in `1..2^31`: positive as an `i32`.
    b.wrapping_sub(a).cast_signed() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The postcard enum every frame but `Data` is encoded as (index 2 was
    /// the uncompact `Data` of protocol version 1).
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum PostcardFrame {
        Hello(Hello),
        Reject(RejectReason),
        Version1Data,
        Ack { ack: u32, next: u32, window: Window, done: bool },
        Close { seq: u32, ack: u32 },
    }

    fn window() -> impl Strategy<Value = Window> {
        (any::<u32>(), any::<u32>()).prop_map(|(msgs, bytes)| Window { msgs, bytes })
    }

    fn counter() -> impl Strategy<Value = WireSeq> {
        prop_oneof![any::<u8>().prop_map(WireSeq::Low), any::<u32>().prop_map(WireSeq::Full)]
    }

    type Parts = (u8, Option<ResumeKey>, u32, u32, Window, std::vec::Vec<u8>, bool, WireSeq, WireSeq);

    fn frame() -> impl Strategy<Value = Parts> {
        (
            0u8..5,
            any::<Option<ResumeKey>>(),
            any::<u32>(),
            any::<u32>(),
            window(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
            counter(),
            counter(),
        )
    }

    fn build(f: &Parts) -> WireFrame<'_> {
        let (kind, key, a, b, window, msg, done, seq, ack) = f;
        match kind {
            0 => WireFrame::Hello(Hello { key: *key, next_expected: *a, window: *window }),
            1 => WireFrame::Reject(
                [RejectReason::SessionUnknown, RejectReason::TableFull, RejectReason::Busy][*b as usize % 3],
            ),
            2 => WireFrame::Data { seq: *seq, ack: *ack, window: done.then_some(*window), msg },
            3 => WireFrame::Ack { ack: *a, next: *b, window: *window, done: *done },
            _ => WireFrame::Close { seq: *a, ack: *b },
        }
    }

    fn postcard_twin(f: &WireFrame<'_>) -> Option<PostcardFrame> {
        Some(match *f {
            WireFrame::Hello(h) => PostcardFrame::Hello(h),
            WireFrame::Reject(r) => PostcardFrame::Reject(r),
            WireFrame::Data { .. } => return None,
            WireFrame::Ack { ack, next, window, done } => PostcardFrame::Ack { ack, next, window, done },
            WireFrame::Close { seq, ack } => PostcardFrame::Close { seq, ack },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Every frame reads back as written, `encoded_len` is exact, a
        /// short buffer is refused, `encode` writes what the writer writes,
        /// and every frame but `Data` is postcard's bytes.
        #[test]
        fn frames_round_trip_and_match_postcard(f in frame()) {
            let frame = build(&f);
            let mut buf = std::vec![0u8; frame.encoded_len()];
            prop_assert_eq!(frame.encode(&mut buf), Some(buf.len()));
            prop_assert_eq!(WireFrame::decode(&buf), Ok(frame));
            prop_assert!(frame.encode(&mut buf[..frame.encoded_len() - 1]).is_none(), "a short buffer is refused");
            // The hosts' shortcut for the common `Data` frame writes the
            // writer's bytes.
            let mut written = std::vec![0u8; buf.len()];
            prop_assert_eq!(frame.write(&mut written), buf.len());
            prop_assert_eq!(&written, &buf);
            if let Some(twin) = postcard_twin(&frame) {
                prop_assert_eq!(postcard::to_allocvec(&twin).unwrap(), buf);
            }
        }

        /// On any bytes the decoder returns a frame or an error (no
        /// panic), and a frame it returns encodes to a payload that decodes
        /// to the same frame; outside `Data` it accepts exactly what
        /// postcard accepts.
        #[test]
        fn decoder_is_total_and_agrees_with_postcard(bytes in prop::collection::vec(any::<u8>(), 0..40), tag in prop_oneof![0u8..6, 0x80u8..=0xff]) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = tag; }
            let ours = WireFrame::decode(&bytes);
            if let Ok(f) = ours {
                let mut buf = std::vec![0u8; f.encoded_len()];
                f.encode(&mut buf).unwrap();
                prop_assert_eq!(WireFrame::decode(&buf), Ok(f));
            }
            if tag < 0x80 {
                let theirs = match postcard::take_from_bytes::<PostcardFrame>(&bytes) {
                    Ok((f, [])) if f != PostcardFrame::Version1Data => Some(f),
                    _ => None,
                };
                prop_assert_eq!(ours.ok().and_then(|f| postcard_twin(&f)), theirs);
            }
        }

        /// A low-byte `seq` restores every number within -128..=127 of
        /// the expected one, a low-byte `ack` every number up to 255 below
        /// the receiver's `sent_high`, across the wrap.
        #[test]
        fn low_bytes_restore_within_their_span(base in any::<u32>(), ahead in -128i32..=127, behind in 0u32..ACK_LOW_SPAN + 1) {
            let seq = base.wrapping_add(ahead as u32);
            prop_assert_eq!(WireSeq::compact(seq, true).resolve_seq(base), seq);
            let ack = base.wrapping_sub(behind);
            prop_assert_eq!(WireSeq::compact(ack, true).resolve_ack(base), ack);
            prop_assert_eq!(WireSeq::compact(ack, false).resolve_ack(base), ack);
        }
    }

    // r[verify core.wire-bytes]
    #[test]
    fn common_data_header_is_three_bytes_and_max_header_bounds_all() {
        let common = WireFrame::Data { seq: WireSeq::Low(7), ack: WireSeq::Low(9), window: None, msg: &[0u8; 300] };
        assert_eq!(common.encoded_len() - 300, 3);
        let window = Window { msgs: u32::MAX, bytes: u32::MAX };
        let (seq, ack) = (WireSeq::Full(u32::MAX), WireSeq::Full(u32::MAX));
        let f = WireFrame::Data { seq, ack, window: Some(window), msg: &[0u8; 300] };
        assert_eq!(f.encoded_len() - 300, MAX_HEADER);
        // The largest frame besides data: a keyed hello with maximal varints.
        let hello = Hello { key: Some([0xff; KEY_LEN]), next_expected: u32::MAX, window };
        assert_eq!(WireFrame::Hello(hello).encoded_len(), MAX_CONTROL_FRAME);
        let ack = WireFrame::Ack { ack: u32::MAX, next: u32::MAX, window, done: true };
        assert!(ack.encoded_len() <= MAX_CONTROL_FRAME);
        assert!(seq_before(u32::MAX, 0));
        assert!(!seq_before(0, u32::MAX));
        assert!(!seq_before(5, 5));
        assert!(seq_before(1, 2));
        // The half-way point: 2^31 ahead is not "after" (nor behind).
        assert!(seq_before(0, (1 << 31) - 1));
        assert!(!seq_before(0, 1 << 31));
        assert!(!seq_before(1 << 31, 0));
        assert!(seq_before(7, 7u32.wrapping_add((1 << 31) - 1)));
    }

    #[test]
    fn version_1_data_and_reserved_flags_are_malformed() {
        assert_eq!(WireFrame::decode(&[2, 5, 3, 8, 0x80, 4, 0]), Err(FrameError::Malformed));
        for flag in [0x08, 0x10, 0x20, 0x40] {
            assert_eq!(WireFrame::decode(&[0x80 | flag, 1, 2]), Err(FrameError::Malformed));
        }
        assert_eq!(WireFrame::decode(&[0x80, 1]), Err(FrameError::Truncated));
    }
}
