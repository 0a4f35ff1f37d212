//! `MsgFamily`: maps a lifetime to a message type, and names its schema.

use crate::SchemaFingerprint;
use serde::{Deserialize, Serialize};

/// Maps a lifetime to a concrete message type.
///
/// Rust has no higher-kinded types, so `F::Msg<'a>` names the message type
/// for any lifetime: the send path encodes a `Msg<'a>` that borrows the
/// caller's data, the receive path decodes a `Msg<'static>` inside a
/// [`SelfRef`](crate::SelfRef) whose fields borrow the received frame.
///
/// Messages are encoded with serde `postcard`. Implement it with
/// [`msg_family!`](crate::msg_family), which also writes [`reborrow`](Self::reborrow);
/// the conduits encode and decode through [`encode`](Self::encode) and
/// [`decode`](Self::decode), postcard's unless the family brings its own
/// codec for the same bytes.
///
/// ```
/// use postcard_schema::Schema;
/// use serde::{Deserialize, Serialize};
/// use vox_types::{MsgFamily, SchemaFingerprint, decode_message};
///
/// #[derive(Serialize, Deserialize, Schema, Debug, PartialEq)]
/// pub struct Reading<'a> { pub sensor: u8, pub label: &'a str }
/// vox_types::msg_family!(pub ReadingFamily => Reading<'a>);
///
/// assert_eq!(ReadingFamily::NAME, "Reading");
/// const FINGERPRINT: SchemaFingerprint = ReadingFamily::FINGERPRINT;
/// assert_eq!(FINGERPRINT, SchemaFingerprint::of::<Reading<'static>>());
///
/// // Sending encodes a `Msg<'a>` that borrows the caller's data...
/// let label = String::from("t");
/// let msg: <ReadingFamily as MsgFamily>::Msg<'_> = Reading { sensor: 3, label: &label };
/// let mut buf = [0u8; 16];
/// let wire = postcard::to_slice(&msg, &mut buf)?;
/// assert_eq!(wire, &[3, 1, b't']);
/// // ...receiving decodes one that borrows the frame.
/// assert_eq!(decode_message::<ReadingFamily>(wire)?, msg);
/// # Ok::<(), postcard::Error>(())
/// ```
// r[impl types.msg-family]
pub trait MsgFamily: 'static {
    /// The message type at lifetime `'a`.
    type Msg<'a>: Serialize + Deserialize<'a> + postcard_schema::Schema + 'a;

    /// Human-readable family name, used in error messages.
    const NAME: &'static str;

    /// Fingerprint of the message schema, compared in the link prologue.
    /// Available on a no-alloc MCU: it is a compile-time constant.
    const FINGERPRINT: SchemaFingerprint = SchemaFingerprint::of::<Self::Msg<'static>>();

    /// Shortens the lifetime of a borrowed message.
    ///
    /// The body is always just `msg`; it compiles only when `Msg<'a>` is
    /// covariant in `'a`, which is what makes [`SelfRef::get`](crate::SelfRef::get)
    /// sound without ever exposing the fake `'static` lifetime.
    fn reborrow<'s, 'l: 's>(msg: &'s Self::Msg<'l>) -> &'s Self::Msg<'s>;

    /// Length of `msg`'s encoding. The default asks postcard.
    ///
    /// A family may override [`encoded_len`](Self::encoded_len),
    /// [`encode`](Self::encode) and [`decode`](Self::decode) together with
    /// a codec written for its message type (to keep a small target's
    /// flash free of serde's generic code, say). The bytes must stay
    /// exactly postcard's, both ways: the peer may use postcard, and the
    /// schema fingerprint describes postcard's encoding.
    fn encoded_len(msg: &Self::Msg<'_>) -> Result<usize, postcard::Error> {
        postcard::experimental::serialized_size(msg)
    }

    /// Writes `msg`'s encoding to the front of `buf` and returns its
    /// length; [`postcard::Error::SerializeBufferFull`] when it does not
    /// fit. The default is [`postcard::to_slice`].
    fn encode(msg: &Self::Msg<'_>, buf: &mut [u8]) -> Result<usize, postcard::Error> {
        postcard::to_slice(msg, buf).map(|used| used.len())
    }

    /// Decodes one whole message from `bytes`: trailing bytes are an error
    /// ([`postcard::Error::DeserializeBadEncoding`]), not ignored. The
    /// default is postcard's decoder. Call it as [`decode_message`].
    fn decode(bytes: &[u8]) -> Result<Self::Msg<'_>, postcard::Error> {
        let (msg, rest) = postcard::take_from_bytes::<Self::Msg<'_>>(bytes)?;
        if rest.is_empty() { Ok(msg) } else { Err(postcard::Error::DeserializeBadEncoding) }
    }
}

/// Decodes one whole message of family `F` from `bytes`; trailing bytes
/// are an error ([`postcard::Error::DeserializeBadEncoding`]), not ignored.
///
/// ```
/// use vox_types::decode_message;
///
/// vox_types::msg_family!(CountFamily => u16);
/// assert_eq!(decode_message::<CountFamily>(&[0xAC, 0x02]), Ok(300));
/// assert_eq!(decode_message::<CountFamily>(&[0xAC, 0x02, 0]), Err(postcard::Error::DeserializeBadEncoding));
/// ```
pub fn decode_message<F: MsgFamily>(bytes: &[u8]) -> Result<F::Msg<'_>, postcard::Error> {
    F::decode(bytes)
}

/// Declares a [`MsgFamily`] marker type for a message type.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use postcard_schema::Schema;
///
/// #[derive(Serialize, Deserialize, Schema)]
/// pub struct Ping<'a> { pub seq: u32, pub note: &'a str }
///
/// vox_types::msg_family!(
///     /// Ping messages.
///     pub PingFamily => Ping<'a>
/// );
/// ```
#[macro_export]
macro_rules! msg_family {
    ($(#[$meta:meta])* $vis:vis $family:ident => $msg:ident < $lt:lifetime >) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $family;
        impl $crate::MsgFamily for $family {
            type Msg<$lt> = $msg<$lt>;
            const NAME: &'static str = ::core::stringify!($msg);
            fn reborrow<'s, 'l: 's>(msg: &'s $msg<'l>) -> &'s $msg<'s> {
                msg
            }
        }
    };
    ($(#[$meta:meta])* $vis:vis $family:ident => $msg:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $family;
        impl $crate::MsgFamily for $family {
            type Msg<'a> = $msg;
            const NAME: &'static str = ::core::stringify!($msg);
            fn reborrow<'s, 'l: 's>(msg: &'s $msg) -> &'s $msg {
                msg
            }
        }
    };
}

/// A [`MsgFamily`] whose message type has a facet `Shape`, for host tooling
/// (pretty printing, schema dumps). Implemented for every such family.
#[cfg(feature = "facet")]
pub trait FacetFamily: MsgFamily {
    /// The facet shape of `Msg<'static>`.
    fn shape() -> &'static facet::Shape;
}

#[cfg(feature = "facet")]
impl<F> FacetFamily for F
where
    F: MsgFamily,
    F::Msg<'static>: facet::Facet<'static>,
{
    fn shape() -> &'static facet::Shape {
        <F::Msg<'static> as facet::Facet<'static>>::SHAPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postcard_schema::Schema;

    #[derive(Serialize, Deserialize, Schema, Debug, PartialEq)]
    #[cfg_attr(feature = "facet", derive(facet::Facet))]
    struct Reading<'a> {
        sensor: u8,
        label: &'a str,
    }
    crate::msg_family!(ReadingFamily => Reading<'a>);

    // r[verify types.msg-family]
    #[test]
    fn family_encodes_with_postcard_and_has_a_const_fingerprint() {
        const FP: SchemaFingerprint = <ReadingFamily as MsgFamily>::FINGERPRINT;
        assert_eq!(FP, SchemaFingerprint::of::<Reading<'static>>());
        assert_eq!(ReadingFamily::NAME, "Reading");
        let mut buf = [0u8; 16];
        let msg: <ReadingFamily as MsgFamily>::Msg<'_> = Reading { sensor: 3, label: "t" };
        let wire = postcard::to_slice(&msg, &mut buf).unwrap();
        assert_eq!(wire, &[3, 1, b't']);
        let back: Reading<'_> = postcard::from_bytes(wire).unwrap();
        assert_eq!(ReadingFamily::reborrow(&back), &msg);
    }

    #[cfg(feature = "facet")]
    #[test]
    fn facet_shape_is_exposed() {
        let shape = <ReadingFamily as FacetFamily>::shape();
        let text = std::format!("{shape}");
        assert!(text.contains("Reading"), "{text}");
    }
}
