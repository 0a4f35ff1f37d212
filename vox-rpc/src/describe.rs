//! The built-in call that lists a side's endpoints with their names and
//! keys, for tooling: endpoint index [`DESCRIBE`] on the wire. (A peer may
//! list topics too, as kind 1; this side lists endpoints only.)

use crate::dispatch::{EndpointEntry, Handled, Outcome};
use crate::{Dispatch, EncodeBody, EndpointKey};
use core::marker::PhantomData;
use core::pin::Pin;
use serde::{Deserialize, Serialize};

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

/// The list of `D`'s endpoints: postcard's bytes of a sequence of
/// [`WireEntry`], written by hand (no serde serializer per server type).
struct List<D>(PhantomData<fn() -> D>);

impl<D: Dispatch> EncodeBody for List<D> {
    fn encoded_len(&self) -> Option<usize> {
        Some(const { list_len(D::ENDPOINTS) })
    }
    fn encode(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        write_list(D::ENDPOINTS, sink)
    }
}

/// The bytes [`write_list`] writes for `list`: a constant for each
/// server type.
const fn list_len(list: Option<&'static EndpointEntry>) -> usize {
    const fn varint_len(mut v: usize) -> usize {
        let mut len = 1;
        while v >= 0x80 {
            v >>= 7;
            len += 1;
        }
        len
    }
    let (mut count, mut len, mut at) = (0, 0, list);
    while let Some(e) = at {
        len += 1 + varint_len(e.key.0 as usize) + varint_len(e.name.len()) + e.name.len();
        count += 1;
        at = e.next;
    }
    varint_len(count) + len
}

/// The entries of `list`, first to last.
fn entries(list: Option<&'static EndpointEntry>) -> impl Iterator<Item = &'static EndpointEntry> {
    core::iter::successors(list, |e| e.next)
}

/// Writes the entries of `list` as postcard writes a sequence of
/// [`WireEntry`]: the count, then each entry's kind (a byte), key and
/// name (varints; the name's bytes after its length). Not generic: one
/// copy whatever the server.
fn write_list(list: Option<&'static EndpointEntry>, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    varint(entries(list).count(), sink)
        && entries(list).all(|e| {
            sink(&[0]) && varint(e.key.0 as usize, sink) && varint(e.name.len(), sink) && sink(e.name.as_bytes())
        })
}

/// Writes `v` as a postcard varint (LEB128).
fn varint(v: usize, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    sink(crate::frame_codec::varint(v as u64, &mut [0; 10]))
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
    respond(Outcome::Reply(&List::<D>(PhantomData)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Server};
    use std::vec::Vec;

    crate::declare! {
        pub endpoint Double = "double": u32 => u32;
        pub endpoint Greet = "a/longer/name/for/a/two/byte/length/............................................................................................................": () => ();
    }

    fn list_of<D: Dispatch, const Q: usize, const A: usize>(_: &Server<D, Q, A>) -> (Option<usize>, Vec<u8>) {
        let list = List::<D>(PhantomData);
        let mut bytes = Vec::new();
        assert!(list.encode(&mut |piece| {
            bytes.extend_from_slice(piece);
            true
        }));
        (list.encoded_len(), bytes)
    }

    /// The list written by hand is postcard's sequence of entries, and
    /// decodes back to the endpoints.
    #[test]
    fn the_list_is_postcards_sequence_of_entries() {
        let server = Server::new().serve::<Double, _>(|n| Ok(*n * 2)).serve::<Greet, _>(|_| Ok(()));
        let (len, bytes) = list_of(&server);
        // The last endpoint added is index 0.
        let entries: Vec<_> = [(Greet::NAME, Greet::KEY), (Double::NAME, Double::KEY)]
            .into_iter()
            .map(|(name, key)| WireEntry(0, key.0, name))
            .collect();
        assert_eq!(bytes, postcard::to_allocvec(&entries).unwrap());
        assert_eq!(len, Some(bytes.len()));
        let mut names = Vec::new();
        assert!(each(&bytes, &mut |d| names.push((d.kind, d.key, d.name.len()))));
        assert_eq!(names, [(Kind::Endpoint, Greet::KEY, Greet::NAME.len()), (Kind::Endpoint, Double::KEY, 6)]);
        let (len, bytes) = list_of(&Server::new());
        assert_eq!((len, bytes), (Some(1), std::vec![0]));
    }
}
