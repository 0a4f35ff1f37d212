//! `Body`: the payload of a request or reply inside an rpc frame, received
//! as borrowed bytes and sent straight from a typed value (no buffer).

use core::fmt;
use postcard_schema::Schema;
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that writes its own postcard bytes, in pieces, to a sink.
///
/// Lets a frame carry a typed value as a length-prefixed byte string
/// without encoding it into a buffer first: the frame's encoder asks for
/// the length, then for the bytes, which go straight into the conduit's
/// slot.
pub trait EncodeBody {
    /// The number of bytes [`encode`](Self::encode) writes, or `None` when
    /// the value does not encode.
    fn encoded_len(&self) -> Option<usize>;
    /// Writes the bytes to `sink`, in order; stops (returns `false`) when
    /// the sink refuses a piece or the value does not encode.
    fn encode(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

/// Any serde value, encoded with postcard.
pub struct Postcard<'t, T: ?Sized>(pub &'t T);

impl<T: Serialize + ?Sized> EncodeBody for Postcard<'_, T> {
    fn encoded_len(&self) -> Option<usize> {
        postcard::serialize_with_flavor(self.0, postcard::ser_flavors::Size::default()).ok()
    }
    fn encode(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        postcard::serialize_with_flavor(self.0, Forward { sink }).is_ok()
    }
}

/// A postcard flavor that hands every piece to a sink.
struct Forward<'s> {
    sink: &'s mut dyn FnMut(&[u8]) -> bool,
}

impl postcard::ser_flavors::Flavor for Forward<'_> {
    type Output = ();
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.try_extend(&[byte])
    }
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if (self.sink)(bytes) { Ok(()) } else { Err(postcard::Error::SerializeBufferFull) }
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The payload of a request or a reply: on the wire a postcard byte
/// string (a varint length, then the body's own postcard bytes).
///
/// Received frames hold [`Body::Bytes`], borrowing the frame; frames this
/// side sends hold [`Body::Value`], encoded in place when the frame is.
/// Only postcard (which every conduit uses) writes a `Value` as those
/// bytes: it serializes as a tuple of the length and each byte.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    /// Encoded bytes (a received body, or bytes encoded earlier).
    Bytes(&'a [u8]),
    /// A value encoded when the frame is.
    Value(&'a (dyn EncodeBody + Sync)),
}

impl<'a> Body<'a> {
    /// The bytes of a received body (`None` for a [`Body::Value`]).
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Self::Bytes(b) => Some(b),
            Self::Value(_) => None,
        }
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Self::Value(value) => {
                let Some(len) = value.encoded_len() else {
                    return Err(serde::ser::Error::custom("body does not encode"));
                };
                let mut tuple = serializer.serialize_tuple(len.saturating_add(1))?;
                // postcard writes a `usize` as the same varint it writes
                // before a byte string.
                tuple.serialize_element(&len)?;
                let mut failed = None;
                let mut written = 0usize;
                let complete = value.encode(&mut |piece| {
                    for byte in piece {
                        if let Err(e) = tuple.serialize_element(byte) {
                            failed = Some(e);
                            return false;
                        }
                    }
                    written += piece.len();
                    true
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                if !complete || written != len {
                    return Err(serde::ser::Error::custom("body changed length while encoding"));
                }
                tuple.end()
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(deserializer).map(Body::Bytes)
    }
}

impl Schema for Body<'_> {
    const SCHEMA: &'static postcard_schema::schema::NamedType = <&[u8] as Schema>::SCHEMA;
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Body({} bytes)", b.len()),
            Self::Value(v) => write!(f, "Body(value, {:?} bytes)", v.encoded_len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Wrap<'a> {
        id: u32,
        body: Body<'a>,
    }

    #[test]
    fn a_value_body_encodes_exactly_as_its_bytes_would() {
        let value = (300u16, "héllo", [1u8, 2, 3]);
        let encoded = postcard::to_allocvec(&value).unwrap();
        let as_bytes = postcard::to_allocvec(&Wrap { id: 7, body: Body::Bytes(&encoded) }).unwrap();
        let typed = Postcard(&value);
        let as_value = postcard::to_allocvec(&Wrap { id: 7, body: Body::Value(&typed) }).unwrap();
        assert_eq!(as_bytes, as_value);
        // And a body of 200 bytes: a two-byte length.
        let long = [9u8; 200];
        let typed = Postcard(&long[..]);
        let encoded = postcard::to_allocvec(&long[..]).unwrap();
        assert_eq!(
            postcard::to_allocvec(&Body::Bytes(&encoded)).unwrap(),
            postcard::to_allocvec(&Body::Value(&typed)).unwrap()
        );
    }

    #[test]
    fn a_value_body_that_does_not_fit_is_an_error_not_a_panic() {
        let typed = Postcard(&[7u8; 40][..]);
        let mut small = [0u8; 16];
        assert!(postcard::to_slice(&Body::Value(&typed), &mut small).is_err());
    }

    #[test]
    fn received_bodies_borrow_the_frame() {
        let wire = postcard::to_allocvec(&Body::Bytes(b"abc")).unwrap();
        let body: Body<'_> = postcard::from_bytes(&wire).unwrap();
        assert_eq!(body.bytes(), Some(&b"abc"[..]));
        assert!(wire.as_ptr_range().contains(&body.bytes().unwrap().as_ptr()));
    }
}
