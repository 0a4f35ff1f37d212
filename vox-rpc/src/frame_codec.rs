//! The codec [`RpcFamily`](crate::RpcFamily) encodes and decodes
//! [`Frame`]s with: postcard's bytes, written for this one type instead of
//! going through serde's generic serializer and visitor (772 B less of
//! the lm3s6965 device's flash). Tests hold it equal to postcard both
//! ways.
//!
//! Postcard's encoding of a frame: the variant index as a varint, then
//! the fields in order. Integers are varints (LEB128, at most
//! `ceil(bits / 7)` bytes, the last one carrying only the bits left),
//! `i64` zigzag-encoded first; a `bool` is one byte, 0 or 1; a body is a
//! byte string (a varint length, then the bytes); a [`Refusal`] is its
//! variant index.

use crate::Body;
use crate::wire::{Frame, Hello, Refusal, Request};
use postcard::Error;

/// Every frame is its variant index, then up to three integers, then up
/// to two bodies. Per variant: the width in bits of each integer (0: no
/// more; `bool` is the 1-bit integer, whose one byte is 0 or 1), and the
/// number of bodies. One table instead of twelve field-by-field readers
/// and writers: the codec's flash.
const LAYOUT: [([u8; 3], u8); 12] = [
    ([32, 16, 64], 1), // Request: id, endpoint, deadline (zigzag); body
    ([32, 0, 0], 1),   // Reply: id; body
    ([32, 0, 0], 1),   // Failed: id; body
    ([32, 32, 0], 0),  // Refused: id, why (a variant index)
    ([32, 0, 0], 0),   // NoReply: id
    ([32, 0, 0], 0),   // Cancel: id
    ([16, 16, 32], 2), // Hello: version, max_in_flight, fingerprint; endpoints, topics
    ([64, 0, 0], 0),   // TimeQuery: t0
    ([64, 64, 64], 0), // TimeReply: t0, t1, t2
    ([16, 16, 0], 0),  // Subscribe: topic, window
    ([16, 32, 1], 1),  // Sample: topic, seq, dup; body
    ([16, 32, 0], 0),  // Credit: topic, next
];

/// Where an encoding goes: a buffer, or (`COUNT`) only a count of its
/// bytes. Two copies, so that a device, which only encodes, holds no
/// branch for counting.
struct Writer<'b, const COUNT: bool> {
    /// Empty when counting.
    buf: &'b mut [u8],
    at: usize,
    /// The first error: after it nothing more is written (one check at
    /// the end instead of one after every field).
    failed: Option<Error>,
}

/// `v` as a postcard varint (LEB128), written into `bytes`: the bytes
/// used.
pub(crate) fn varint(mut v: u64, bytes: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    for b in bytes.iter_mut() {
        n += 1;
        if v < 0x80 {
            *b = v as u8;
            break;
        }
        *b = v as u8 | 0x80;
        v >>= 7;
    }
    bytes.get(..n).unwrap_or(&[])
}

impl<const COUNT: bool> Writer<'_, COUNT> {
    /// Writes `bytes` next; `false` (and nothing written) once failed.
    fn put(&mut self, bytes: &[u8]) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let Some(end) = self.at.checked_add(bytes.len()) else { return self.full() };
        if !COUNT {
            let Some(place) = self.buf.get_mut(self.at..end) else { return self.full() };
            place.copy_from_slice(bytes);
        }
        self.at = end;
        true
    }

    /// The buffer is full: fails (`false`).
    fn full(&mut self) -> bool {
        self.failed = Some(Error::SerializeBufferFull);
        false
    }

    fn varint(&mut self, v: u64) {
        self.put(varint(v, &mut [0; 10]));
    }

    fn body(&mut self, body: &Body<'_>) {
        match *body {
            Body::Bytes(bytes) => {
                self.varint(bytes.len() as u64);
                self.put(bytes);
            }
            Body::Value(value) => {
                let Some(len) = value.encoded_len() else {
                    self.failed.get_or_insert(Error::SerdeSerCustom);
                    return;
                };
                self.varint(len as u64);
                if COUNT {
                    match self.at.checked_add(len) {
                        Some(end) => self.at = end,
                        None => _ = self.failed.get_or_insert(Error::SerializeBufferFull),
                    }
                    return;
                }
                let start = self.at;
                let complete = value.encode(&mut |piece| self.put(piece));
                // A value that stopped, or wrote another length than it
                // announced, does not encode.
                if !complete || self.at - start != len {
                    self.failed.get_or_insert(Error::SerdeSerCustom);
                }
            }
        }
    }

    /// Writes `frame`: the bytes written, or the first error.
    fn frame(mut self, frame: &Frame<'_>) -> Result<usize, Error> {
        let (kind, numbers) = integers(frame);
        self.varint(u64::from(kind));
        let widths = LAYOUT.get(kind as usize).map_or(&[0; 3], |(widths, _)| widths);
        for (&v, &width) in numbers.iter().zip(widths.iter()) {
            if width != 0 {
                self.varint(v);
            }
        }
        for &body in bodies(frame).iter().flatten() {
            self.body(body);
        }
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.at),
        }
    }
}

/// A frame's variant index and integers, in wire order (the frames with
/// the same integers share an arm: less code).
fn integers(frame: &Frame<'_>) -> (u32, [u64; 3]) {
    let v = u64::from;
    let w = |n: u16| u64::from(n);
    let kind = match frame {
        Frame::Request(_) => 0,
        Frame::Reply { .. } => 1,
        Frame::Failed { .. } => 2,
        Frame::Refused { .. } => 3,
        Frame::NoReply { .. } => 4,
        Frame::Cancel { .. } => 5,
        Frame::Hello(_) => 6,
        Frame::TimeQuery { .. } => 7,
        Frame::TimeReply { .. } => 8,
        Frame::Subscribe { .. } => 9,
        Frame::Sample { .. } => 10,
        Frame::Credit { .. } => 11,
    };
    let numbers = match *frame {
        // Zigzag: small magnitudes of either sign stay short.
        Frame::Request(Request { id, endpoint, deadline, .. }) => {
            [v(id), w(endpoint), ((deadline << 1) ^ (deadline >> 63)) as u64]
        }
        Frame::Reply { id, .. } | Frame::Failed { id, .. } | Frame::NoReply { id } | Frame::Cancel { id } => {
            [v(id), 0, 0]
        }
        Frame::Refused { id, why } => [v(id), why as u64, 0],
        Frame::Hello(Hello { version, max_in_flight, fingerprint, .. }) => {
            [w(version), w(max_in_flight), v(fingerprint)]
        }
        Frame::TimeQuery { t0 } => [t0, 0, 0],
        Frame::TimeReply { t0, t1, t2 } => [t0, t1, t2],
        Frame::Subscribe { topic, window } => [w(topic), w(window), 0],
        Frame::Sample { topic, seq, dup, .. } => [w(topic), v(seq), u64::from(dup)],
        Frame::Credit { topic, next } => [w(topic), v(next), 0],
    };
    (kind, numbers)
}

/// A frame's bodies, in wire order (as many as its layout says).
fn bodies<'f, 'a>(frame: &'f Frame<'a>) -> [Option<&'f Body<'a>>; 2] {
    match frame {
        Frame::Request(Request { body, .. })
        | Frame::Reply { body, .. }
        | Frame::Failed { body, .. }
        | Frame::Sample { body, .. } => [Some(body), None],
        Frame::Hello(Hello { endpoints, topics, .. }) => [Some(endpoints), Some(topics)],
        _ => [None, None],
    }
}

/// The length of `frame`'s encoding.
pub(crate) fn encoded_len(frame: &Frame<'_>) -> Result<usize, Error> {
    Writer::<true> { buf: &mut [], at: 0, failed: None }.frame(frame)
}

/// Writes `frame` to the front of `buf`; the bytes written. Out of line,
/// as is `decode`: inlined into the futures that call them, they cost a
/// device 250 B more flash.
#[inline(never)]
pub(crate) fn encode(frame: &Frame<'_>, buf: &mut [u8]) -> Result<usize, Error> {
    Writer::<false> { buf, at: 0, failed: None }.frame(frame)
}

/// Reads a frame's fields, front to back.
struct Reader<'a> {
    bytes: &'a [u8],
    /// The first error: after it nothing more is read, and every field
    /// reads as 0 (one check at the end instead of one after every field).
    failed: Option<Error>,
}

impl<'a> Reader<'a> {
    /// A varint of a `bits`-bit integer, as postcard reads it: at most
    /// `ceil(bits / 7)` bytes, and the last of that many carries only the
    /// bits left (for a `bool`, one bit: the byte 0 or 1).
    fn varint(&mut self, bits: u32) -> u64 {
        if self.failed.is_some() {
            return 0;
        }
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let Some((&b, rest)) = self.bytes.split_first() else { return self.fail(Error::DeserializeUnexpectedEnd) };
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            // The bits this byte may still carry (no division: a counter).
            let left = bits.saturating_sub(shift);
            if b & 0x80 == 0 {
                return if left < 7 && u32::from(b) >> left != 0 { self.fail(Error::DeserializeBadVarint) } else { v };
            }
            if left <= 7 {
                return self.fail(Error::DeserializeBadVarint);
            }
            shift += 7;
        }
    }

    /// Fails with `error` (the first one): reads as 0.
    fn fail(&mut self, error: Error) -> u64 {
        self.failed = Some(error);
        0
    }

    /// A byte string, borrowed from the frame.
    fn body(&mut self) -> Body<'a> {
        let len = self.varint(usize::BITS) as usize;
        let Some((taken, rest)) = self.bytes.split_at_checked(len) else {
            self.fail(Error::DeserializeUnexpectedEnd);
            return Body::Bytes(&[]);
        };
        self.bytes = rest;
        Body::Bytes(taken)
    }

    fn frame(&mut self) -> Result<Frame<'a>, Error> {
        // A kind that did not read is 0, and the failure is reported below.
        let kind = self.varint(32);
        let (widths, count) = LAYOUT.get(kind as usize).ok_or(Error::DeserializeBadEnum)?;
        let mut n = [0u64; 3];
        for (v, &width) in n.iter_mut().zip(widths.iter()) {
            if width != 0 {
                *v = self.varint(u32::from(width));
            }
        }
        let mut bodies = [Body::Bytes(&[]); 2];
        for body in bodies.iter_mut().take(usize::from(*count)) {
            *body = self.body();
        }
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let [x, y] = bodies;
        // Every integer fits its field: `varint` read no more bits.
        let [a, b, c] = n;
        Ok(match kind {
            0 => Frame::Request(Request {
                id: a as u32,
                endpoint: b as u16,
                deadline: (c >> 1) as i64 ^ -((c & 1) as i64),
                body: x,
            }),
            1 => Frame::Reply { id: a as u32, body: x },
            2 => Frame::Failed { id: a as u32, body: x },
            3 => Frame::Refused {
                id: a as u32,
                why: match b {
                    0 => Refusal::Expired,
                    1 => Refusal::Busy,
                    2 => Refusal::Unknown,
                    3 => Refusal::Undecodable,
                    4 => Refusal::Cancelled,
                    _ => return Err(Error::DeserializeBadEnum),
                },
            },
            4 => Frame::NoReply { id: a as u32 },
            5 => Frame::Cancel { id: a as u32 },
            6 => Frame::Hello(Hello {
                version: a as u16,
                max_in_flight: b as u16,
                fingerprint: c as u32,
                endpoints: x,
                topics: y,
            }),
            7 => Frame::TimeQuery { t0: a },
            8 => Frame::TimeReply { t0: a, t1: b, t2: c },
            9 => Frame::Subscribe { topic: a as u16, window: b as u16 },
            10 => Frame::Sample { topic: a as u16, seq: b as u32, dup: c != 0, body: x },
            _ => Frame::Credit { topic: a as u16, next: b as u32 },
        })
    }
}

/// Decodes one whole frame; trailing bytes are an error.
#[inline(never)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Frame<'_>, Error> {
    let mut r = Reader { bytes, failed: None };
    let frame = r.frame()?;
    if r.bytes.is_empty() { Ok(frame) } else { Err(Error::DeserializeBadEncoding) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Postcard;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The frame of kind `kind % 12` made of these values (cut to each
    /// field's type).
    fn frame<'a>(kind: u8, n: [u64; 4], deadline: i64, dup: bool, bodies: (&'a [u8], &'a [u8])) -> Frame<'a> {
        let (a, b) = (Body::Bytes(bodies.0), Body::Bytes(bodies.1));
        let why = [Refusal::Expired, Refusal::Busy, Refusal::Unknown, Refusal::Undecodable, Refusal::Cancelled];
        match kind % 12 {
            0 => Frame::Request(Request { id: n[0] as u32, endpoint: n[1] as u16, deadline, body: a }),
            1 => Frame::Reply { id: n[0] as u32, body: a },
            2 => Frame::Failed { id: n[0] as u32, body: a },
            3 => Frame::Refused { id: n[0] as u32, why: why[n[1] as usize % why.len()] },
            4 => Frame::NoReply { id: n[0] as u32 },
            5 => Frame::Cancel { id: n[0] as u32 },
            6 => Frame::Hello(Hello {
                version: n[0] as u16,
                max_in_flight: n[1] as u16,
                fingerprint: n[2] as u32,
                endpoints: a,
                topics: b,
            }),
            7 => Frame::TimeQuery { t0: n[0] },
            8 => Frame::TimeReply { t0: n[0], t1: n[1], t2: n[2] },
            9 => Frame::Subscribe { topic: n[0] as u16, window: n[1] as u16 },
            10 => Frame::Sample { topic: n[0] as u16, seq: n[1] as u32, dup, body: a },
            _ => Frame::Credit { topic: n[0] as u16, next: n[1] as u32 },
        }
    }

    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..300, 0u64..70_000, any::<u32>().prop_map(u64::from), any::<u64>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Every frame: the codec writes postcard's bytes and length, reads
        /// them back to the same frame, and fails as postcard does (buffer
        /// full) in every buffer too small. (Not under Miri: safe code
        /// only, and proptest reads the file system.)
        #[test]
        #[cfg_attr(miri, ignore)]
        fn encoding_is_postcards(
            kind in 0u8..12,
            n in [number(), number(), number(), number()],
            deadline in prop_oneof![-300i64..300, any::<i64>()],
            dup in any::<bool>(),
            a in prop::collection::vec(any::<u8>(), 0..140),
            b in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let frame = frame(kind, n, deadline, dup, (&a, &b));
            let theirs = postcard::to_allocvec(&frame).unwrap();
            prop_assert_eq!(encoded_len(&frame), Ok(theirs.len()));
            let mut buf = std::vec![0u8; theirs.len() + 3];
            let len = encode(&frame, &mut buf).unwrap();
            prop_assert_eq!(&buf[..len], &theirs[..]);
            let back = decode(&theirs).unwrap();
            prop_assert_eq!(postcard::to_allocvec(&back).unwrap(), theirs.clone());
            for short in 0..theirs.len() {
                let mut buf = std::vec![0u8; short];
                prop_assert_eq!(encode(&frame, &mut buf), Err(Error::SerializeBufferFull));
                prop_assert!(postcard::to_slice(&frame, &mut buf).is_err());
            }
        }

        /// Any bytes: the codec and postcard's serde decoding both decode,
        /// to the same frame (the same bytes encoded again), or both fail;
        /// trailing bytes fail both.
        #[test]
        #[cfg_attr(miri, ignore)]
        fn decoding_is_postcards(
            kind in 0u8..14,
            rest in prop::collection::vec(prop_oneof![any::<u8>(), 0u8..4, 0x7cu8..0x82, Just(0xff)], 0..24),
        ) {
            let mut bytes = std::vec![kind];
            bytes.extend_from_slice(&rest);
            let ours = decode(&bytes);
            let theirs = postcard::take_from_bytes::<Frame<'_>>(&bytes)
                .and_then(|(f, rest)| if rest.is_empty() { Ok(f) } else { Err(Error::DeserializeBadEncoding) });
            match (ours, theirs) {
                (Ok(a), Ok(b)) => prop_assert_eq!(postcard::to_allocvec(&a).unwrap(), postcard::to_allocvec(&b).unwrap()),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "codec {:?}, postcard {:?}", a, b),
            }
        }
    }

    #[test]
    fn varints_at_their_limits_decode_as_postcard_decodes_them() {
        // `Subscribe`'s u16 topic: three bytes, the last at most 3.
        assert!(matches!(decode(&[9, 0xff, 0xff, 0x03, 0]), Ok(Frame::Subscribe { topic: 0xffff, window: 0 })));
        assert_eq!(decode(&[9, 0xff, 0xff, 0x04, 0]).unwrap_err(), Error::DeserializeBadVarint);
        assert_eq!(decode(&[9, 0x80, 0x80, 0x80, 0x00, 0]).unwrap_err(), Error::DeserializeBadVarint);
        // A u64 of ten bytes, the last at most 1.
        let max = [7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(decode(&max), Ok(Frame::TimeQuery { t0: u64::MAX })));
        let mut over = max;
        over[10] = 2;
        assert_eq!(decode(&over).unwrap_err(), Error::DeserializeBadVarint);
        assert_eq!(decode(&[7]).unwrap_err(), Error::DeserializeUnexpectedEnd);
        assert_eq!(decode(&[12]).unwrap_err(), Error::DeserializeBadEnum);
        assert!(decode(&[10, 0, 0, 2, 0]).is_err(), "a bool byte of 2");
        assert!(decode(&[10, 0, 0, 0x81, 0, 0]).is_err(), "a bool of two bytes");
        assert_eq!(decode(&[4, 1, 0]).unwrap_err(), Error::DeserializeBadEncoding);
        assert_eq!(decode(&[1, 1, 3, 0]).unwrap_err(), Error::DeserializeUnexpectedEnd);
    }

    #[test]
    fn a_value_body_encodes_as_its_postcard_bytes_straight_into_the_buffer() {
        let value = (300u16, "héllo", [1u8, 2, 3]);
        let typed = Postcard(&value);
        let bytes = postcard::to_allocvec(&value).unwrap();
        let by_value = Frame::Reply { id: 9, body: Body::Value(&typed) };
        let by_bytes = Frame::Reply { id: 9, body: Body::Bytes(&bytes) };
        let expected = postcard::to_allocvec(&by_bytes).unwrap();
        assert_eq!(encoded_len(&by_value), Ok(expected.len()));
        let mut buf = [0u8; 32];
        let len = encode(&by_value, &mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..]);
        for short in 0..expected.len() {
            assert_eq!(encode(&by_value, &mut buf[..short]), Err(Error::SerializeBufferFull), "{short} bytes");
        }
    }

    /// A value whose bytes are not what its length said.
    struct Liar {
        says: usize,
        writes: usize,
    }

    impl crate::EncodeBody for Liar {
        fn encoded_len(&self) -> Option<usize> {
            Some(self.says)
        }
        fn encode(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
            sink(&Vec::from_iter(0..self.writes as u8))
        }
    }

    #[test]
    fn a_value_that_writes_another_length_than_it_announced_is_an_error() {
        let mut buf = [0u8; 32];
        for (says, writes) in [(3, 2), (2, 3)] {
            let liar = Liar { says, writes };
            let frame = Frame::Reply { id: 1, body: Body::Value(&liar) };
            assert_eq!(encode(&frame, &mut buf), Err(Error::SerdeSerCustom), "says {says}, writes {writes}");
        }
    }
}
