//! Endpoints and topics: a name and its types, declared once for both
//! sides with [`declare!`](crate::declare), and the key both sides agree on.

use postcard_schema::Schema;
use serde::{Deserialize, Serialize};

/// A call both sides know: its request, response and handler-error types,
/// and its name. Declare it with [`declare!`](crate::declare).
///
/// The types are lifetime families, like a conduit's
/// [`MsgFamily`](vox_types::MsgFamily): a handler receives `Req<'a>`
/// borrowing the received frame (`&str`, `&[u8]` are not copied) and may
/// answer a `Resp<'a>` that borrows it back.
pub trait Endpoint: 'static {
    /// The request.
    type Req<'a>: Serialize + Deserialize<'a> + Schema + Sync + 'a;
    /// The response of a call that succeeded.
    type Resp<'a>: Serialize + Deserialize<'a> + Schema + Sync + 'a;
    /// The handler's own error ([`NoError`] when it has none).
    type Err<'a>: Serialize + Deserialize<'a> + Schema + Sync + 'a;
    /// The name, as declared (unique within a declaration).
    const NAME: &'static str;
    /// Hash of the name and the three schemas: see [`EndpointKey`].
    const KEY: EndpointKey;
}

/// A stream of messages one side publishes (see the topics in
/// [`declare!`](crate::declare)). Declared now so that both sides list it
/// at connect; publishing comes with the topics layer.
pub trait Topic: 'static {
    /// One message of the topic.
    type Msg<'a>: Serialize + Deserialize<'a> + Schema + 'a;
    /// The name, as declared.
    const NAME: &'static str;
    /// Hash of the name and the message schema.
    const KEY: EndpointKey;
}

/// The 32-bit key of an endpoint or topic: the first four bytes (little
/// endian) of postcard-schema's 64-bit FNV-1a key of the name and the
/// schema of `(Req, Resp, Err)` (a topic: of its message).
///
/// Change any of the types, or the name, and the key changes: an old peer
/// then answers "unknown endpoint" for that one endpoint, and every other
/// endpoint keeps working. On the wire a request does not carry the key
/// but the endpoint's index in the list the server sent at connect (one
/// byte for up to 128 endpoints): see `docs/PROTOCOL.md`.
// r[impl rpc.keys]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EndpointKey(pub u32);

impl EndpointKey {
    /// The key of an endpoint named `name` with these types.
    pub const fn endpoint<Req: Schema + ?Sized, Resp: Schema + ?Sized, Err: Schema + ?Sized>(name: &str) -> Self {
        Self::from_key(postcard_schema::key::Key::for_path::<(&Req, &Resp, &Err)>(name))
    }

    /// The key of a topic named `name` carrying `Msg`.
    pub const fn topic<Msg: Schema + ?Sized>(name: &str) -> Self {
        Self::from_key(postcard_schema::key::Key::for_path::<Msg>(name))
    }

    const fn from_key(key: postcard_schema::key::Key) -> Self {
        let b = key.to_bytes();
        Self(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl core::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The error type of a handler that cannot fail: it has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NoError {}

/// Refused without reading a byte: no bytes encode a value of a type
/// that has none (serde's derived visitor would read a variant index
/// first, and refuse it).
impl<'de> Deserialize<'de> for NoError {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("NoError has no values"))
    }
}

impl Schema for NoError {
    const SCHEMA: &'static postcard_schema::schema::NamedType =
        &postcard_schema::schema::NamedType { name: "NoError", ty: &postcard_schema::schema::DataModelType::Enum(&[]) };
}

impl core::fmt::Display for NoError {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

/// Fails the build when two entries of a declaration share a name or a
/// key (used by [`declare!`](crate::declare); a `const` panic is a
/// compile-time error).
// r[impl rpc.endpoint]
#[doc(hidden)]
// Evaluated only at compile time (in a `const _`): an index out of range
// or a panic there is a build error, never a run-time panic.
#[allow(clippy::indexing_slicing, clippy::panic)]
pub const fn assert_unique(names: &[&str], keys: &[u32]) {
    let mut i = 0;
    while i < names.len() {
        if keys[i] == 0 {
            panic!("vox_rpc::declare!: an entry's key is 0, reserved for the built-in describe call; rename it");
        }
        let mut j = i + 1;
        while j < names.len() {
            if str_eq(names[i], names[j]) {
                panic!("vox_rpc::declare!: two entries have the same name");
            }
            if keys[i] == keys[j] {
                panic!("vox_rpc::declare!: two entries have the same key; rename one");
            }
            j += 1;
        }
        i += 1;
    }
}

#[allow(clippy::indexing_slicing)] // compile time only, and `i < len`
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares endpoints and topics once, for both sides: one line each.
///
/// `endpoint Name = "name": Req => Resp;` or, with a handler error type,
/// `endpoint Name = "name": Req => Resp, Err;`; `topic Name = "name": Msg;`.
/// Types may borrow with the lifetime `'a` (`&'a str`, `&'a [u8]`). Two
/// entries with the same name or key fail the build.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use postcard_schema::Schema;
/// use vox_rpc::{Endpoint, Topic};
///
/// #[derive(Serialize, Deserialize, Schema)]
/// pub struct Pin { pub pin: u8, pub high: bool }
///
/// vox_rpc::declare! {
///     /// Drives an output pin; fails with a reason.
///     pub endpoint SetOutput = "demo/set_output": Pin => (), &'a str;
///     /// Sends the bytes back (borrowed both ways: nothing is copied).
///     pub endpoint Echo = "demo/echo": &'a [u8] => &'a [u8];
///     /// The supply voltage, sampled.
///     pub topic Millivolts = "demo/millivolts": u16;
/// }
///
/// assert_eq!(SetOutput::NAME, "demo/set_output");
/// assert_ne!(SetOutput::KEY, Echo::KEY);
/// assert_eq!(Millivolts::NAME, "demo/millivolts");
/// ```
///
/// A duplicate is a compile-time error:
///
/// ```compile_fail
/// vox_rpc::declare! {
///     pub endpoint A = "same": u8 => u8;
///     pub endpoint B = "same": u16 => u16;
/// }
/// ```
#[macro_export]
macro_rules! declare {
    ($($(#[$meta:meta])* $vis:vis $what:ident $name:ident = $path:literal : $first:ty $(=> $resp:ty $(, $err:ty)?)?);+ $(;)?) => {
        $( $crate::__declare_one!($(#[$meta])* $vis $what $name = $path : $first $(=> $resp $(, $err)?)?); )+
        const _: () = $crate::endpoint::assert_unique(
            &[$($path),+],
            &[$($crate::__declare_key!($what $name)),+],
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __declare_key {
    (endpoint $name:ident) => {
        <$name as $crate::Endpoint>::KEY.0
    };
    (topic $name:ident) => {
        <$name as $crate::Topic>::KEY.0
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __declare_one {
    ($(#[$meta:meta])* $vis:vis endpoint $name:ident = $path:literal : $req:ty => $resp:ty) => {
        $crate::__declare_one!($(#[$meta])* $vis endpoint $name = $path : $req => $resp, $crate::NoError);
    };
    ($(#[$meta:meta])* $vis:vis endpoint $name:ident = $path:literal : $req:ty => $resp:ty, $err:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $name;
        impl $crate::Endpoint for $name {
            type Req<'a> = $req;
            type Resp<'a> = $resp;
            type Err<'a> = $err;
            const NAME: &'static str = $path;
            const KEY: $crate::EndpointKey = $crate::EndpointKey::endpoint::<
                <$name as $crate::Endpoint>::Req<'static>,
                <$name as $crate::Endpoint>::Resp<'static>,
                <$name as $crate::Endpoint>::Err<'static>,
            >($path);
        }
    };
    ($(#[$meta:meta])* $vis:vis topic $name:ident = $path:literal : $msg:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        $vis struct $name;
        impl $crate::Topic for $name {
            type Msg<'a> = $msg;
            const NAME: &'static str = $path;
            const KEY: $crate::EndpointKey =
                $crate::EndpointKey::topic::<<$name as $crate::Topic>::Msg<'static>>($path);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::declare! {
        /// One line each, both sides.
        pub endpoint Get = "get": u8 => u32;
        pub endpoint GetWide = "get_wide": u16 => u32;
        pub endpoint Fails = "fails": () => (), &'a str;
        pub topic Temp = "temp": i16;
    }

    mod renamed {
        crate::declare! { pub endpoint Get = "get2": u8 => u32; }
    }
    mod retyped {
        crate::declare! { pub endpoint Get = "get": u16 => u32; }
    }

    // r[verify rpc.endpoint]
    // r[verify rpc.keys]
    #[test]
    fn no_bytes_decode_to_no_error() {
        for bytes in [&[][..], &[0], &[1, 2, 3], &[0xff; 6]] {
            assert!(postcard::from_bytes::<NoError>(bytes).is_err());
            assert!(postcard::take_from_bytes::<NoError>(bytes).is_err());
        }
    }

    #[test]
    fn keys_hash_the_name_and_every_type_and_duplicates_are_refused() {
        let keys = [Get::KEY, GetWide::KEY, Fails::KEY, <Temp as Topic>::KEY];
        for (i, a) in keys.iter().enumerate() {
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        assert_ne!(Get::KEY, renamed::Get::KEY, "the name is in the key");
        assert_ne!(Get::KEY, retyped::Get::KEY, "the request type is in the key");
        assert_eq!(Get::KEY, EndpointKey::endpoint::<u8, u32, NoError>("get"), "the same declaration, the same key");
        assert_eq!(Fails::NAME, "fails");
        // The check `declare!` runs at compile time (see the compile_fail
        // example of `declare!`), here at run time.
        assert!(std::panic::catch_unwind(|| assert_unique(&["a", "b", "a"], &[1, 2, 3])).is_err());
        assert!(std::panic::catch_unwind(|| assert_unique(&["a", "b"], &[7, 7])).is_err());
        assert_unique(&["a", "b"], &[1, 2]);
    }
}
