//! The built-in call that lists a side's endpoints with their names and
//! keys, for tooling: endpoint index [`DESCRIBE`] on the wire. (A peer may
//! list topics too, as kind 1; this side lists endpoints only.)

use crate::body::Postcard;
use crate::dispatch::{Handled, Outcome};
use crate::{Dispatch, EndpointKey};
use core::marker::PhantomData;
use core::pin::Pin;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

/// The endpoint index of the built-in describe call: its request body is
/// empty, its reply a list of [`Described`] entries.
pub const DESCRIBE: u16 = u16::MAX;

/// The key a caller queues the describe call under (no declared endpoint
/// has it: `declare!` refuses a key of 0).
pub(crate) const DESCRIBE_KEY: EndpointKey = EndpointKey(0);

/// What an entry of a peer's list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// An endpoint it serves.
    Endpoint,
    /// A topic it publishes.
    Topic,
}

/// One entry of a peer's list (see [`Client::describe`](crate::Client::describe)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described<'a> {
    /// Endpoint or topic.
    pub kind: Kind,
    /// Its key.
    pub key: EndpointKey,
    /// Its name, as declared.
    pub name: &'a str,
}

/// On the wire: `(kind: u8, key: u32, name: string)`.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEntry<'a>(pub u8, pub u32, #[serde(borrow)] pub &'a str);

/// The list of `D`'s endpoints, encoded as a postcard sequence.
struct List<D>(PhantomData<fn() -> D>);

impl<D: Dispatch> Serialize for List<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The count first: only entries with a name and a key are written.
        let listed = (0..D::COUNT).filter(|&i| D::name(i).is_some() && D::key(i).is_some()).count();
        let mut seq = serializer.serialize_seq(Some(listed))?;
        for i in 0..D::COUNT {
            if let (Some(name), Some(key)) = (D::name(i), D::key(i)) {
                seq.serialize_element(&WireEntry(0, key.0, name))?;
            }
        }
        seq.end()
    }
}

/// Hands a request to `dispatch`, answering the built-in describe call
/// itself.
pub(crate) fn handle<D: Dispatch>(
    dispatch: Pin<&mut D>,
    index: usize,
    id: u32,
    body: &[u8],
    respond: Option<&mut dyn FnMut(Outcome<'_>)>,
) -> Handled {
    if index != usize::from(DESCRIBE) {
        return dispatch.handle(index, id, body, respond);
    }
    let Some(respond) = respond else { return Handled::NeedsPermit };
    respond(Outcome::Reply(&Postcard(&List::<D>(PhantomData))));
    Handled::Answered
}

/// Calls `f` for each entry of an encoded list; `false` when it does not
/// decode.
pub(crate) fn each(mut bytes: &[u8], f: &mut dyn FnMut(Described<'_>)) -> bool {
    let Ok((count, rest)) = postcard::take_from_bytes::<u32>(bytes) else { return false };
    bytes = rest;
    for _ in 0..count {
        let Ok((WireEntry(kind, key, name), rest)) = postcard::take_from_bytes::<WireEntry<'_>>(bytes) else {
            return false;
        };
        bytes = rest;
        let kind = match kind {
            0 => Kind::Endpoint,
            1 => Kind::Topic,
            // Reserved: skipped.
            _ => continue,
        };
        f(Described { kind, key: EndpointKey(key), name });
    }
    bytes.is_empty()
}
