//! The frames the rpc layer sends over a conduit: the connect greeting,
//! clock samples, requests, their one answer each, and cancels.
//! `docs/PROTOCOL.md` ("Calls") describes every field.

use crate::{Body, frame_codec};
use postcard_schema::Schema;
use serde::{Deserialize, Serialize};
use vox_types::MsgFamily;

/// Version of the rpc envelope. Both sides send it in [`Hello`]; a peer
/// with another version is refused (the only refusal at connect besides
/// the conduit's own). Version 2 added topics (`Subscribe`, `Sample`,
/// `Credit`).
pub const PROTOCOL_VERSION: u16 = 2;

/// One rpc frame: the message family ([`RpcFamily`]) of the conduit under
/// the rpc layer. Its postcard bytes are the wire format; the conduits
/// encode and decode them with a codec written for this type (the same
/// bytes as the serde derives, without their code on a device).
// r[impl rpc.ids]
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Schema)]
pub enum Frame<'a> {
    /// A call: run endpoint `endpoint` (an index into the receiver's
    /// [`Hello::endpoints`]) on `body`, unless its deadline has passed.
    Request(#[serde(borrow)] Request<'a>),
    /// The call `id` (an id of the receiver's own calls) succeeded: `body`
    /// is the endpoint's response.
    Reply {
        /// The caller's id.
        id: u32,
        /// The response, postcard-encoded.
        #[serde(borrow)]
        body: Body<'a>,
    },
    /// The call `id` ran and its handler failed: `body` is the endpoint's
    /// error type.
    Failed {
        /// The caller's id.
        id: u32,
        /// The handler's error, postcard-encoded.
        #[serde(borrow)]
        body: Body<'a>,
    },
    /// The call `id` did not run, and never will.
    Refused {
        /// The caller's id.
        id: u32,
        /// Why.
        why: Refusal,
    },
    /// The call `id` ran, but its response is not sent: it does not fit
    /// the conduit, or the caller cancelled the call while it ran.
    NoReply {
        /// The caller's id.
        id: u32,
    },
    /// The caller gave up on call `id`: skip it if it has not started.
    Cancel {
        /// The caller's id.
        id: u32,
    },
    /// First frame each way.
    Hello(#[serde(borrow)] Hello<'a>),
    /// A clock sample request: `t0` is the sender's clock (ms).
    TimeQuery {
        /// The sender's clock when it sent this.
        t0: u64,
    },
    /// The answer to a [`Frame::TimeQuery`].
    TimeReply {
        /// The query's `t0`.
        t0: u64,
        /// The answerer's clock when the query arrived.
        t1: u64,
        /// The answerer's clock when it sent this.
        t2: u64,
    },
    /// Send me topic `topic` (an index into the receiver's
    /// [`Hello::topics`]), at most `window` samples ahead of my credit.
    Subscribe {
        /// The topic: its index in the receiver's greeting.
        topic: u16,
        /// Samples the sender holds room for.
        window: u16,
    },
    /// A sample of topic `topic` (an index into the sender's
    /// [`Hello::topics`]).
    Sample {
        /// The topic: its index in the sender's greeting.
        topic: u16,
        /// The publisher's sequence number (per topic, across sessions).
        seq: u32,
        /// Sent before, in an earlier session: possibly a duplicate.
        dup: bool,
        /// The sample, postcard-encoded.
        #[serde(borrow)]
        body: Body<'a>,
    },
    /// Every sample of topic `topic` (an index into the receiver's
    /// [`Hello::topics`]) before `next` is consumed.
    Credit {
        /// The topic: its index in the receiver's greeting.
        topic: u16,
        /// The first sample not yet consumed.
        next: u32,
    },
}

/// A call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Schema)]
pub struct Request<'a> {
    /// The caller's id: `generation << slot_bits | slot` (see
    /// [`CallId`](crate::CallId)). Requests and answers travel in opposite
    /// directions, so the two sides' ids never meet.
    pub id: u32,
    /// The endpoint: its index in the receiver's [`Hello::endpoints`].
    pub endpoint: u16,
    /// The deadline in the receiver's clock (ms), as the difference to the
    /// deadline of the previous request in this direction (0 before the
    /// first): requests arrive in order, exactly once, so the sum is the
    /// absolute deadline, and the bytes mean the same when replayed.
    pub deadline: i64,
    /// The request, postcard-encoded.
    #[serde(borrow)]
    pub body: Body<'a>,
}

/// Why a request was refused: each of them guarantees that it did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Schema)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refusal {
    /// Its deadline had passed when the server could start it.
    Expired,
    /// The endpoint runs as many requests as it may, or the server had no
    /// room to hold it.
    Busy,
    /// The server has no such endpoint (or a different version of it).
    Unknown,
    /// The body does not decode as the endpoint's request type.
    Undecodable,
    /// The caller cancelled it before it started. Callers never see it:
    /// they gave up already.
    Cancelled,
}

/// The greeting each side sends first.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Schema)]
pub struct Hello<'a> {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// Requests the sender holds room for: the peer keeps at most this
    /// many unanswered.
    pub max_in_flight: u16,
    /// Hash of the sender's endpoint and topic keys (reported, not
    /// enforced).
    pub fingerprint: u32,
    /// The keys of the endpoints the sender serves, 4 bytes each (little
    /// endian); a request names one by its index here.
    #[serde(borrow)]
    pub endpoints: Body<'a>,
    /// The keys of the topics the sender publishes, 4 bytes each.
    #[serde(borrow)]
    pub topics: Body<'a>,
}

/// The message family of a conduit that carries calls: [`Frame`]s,
/// encoded and decoded by a codec written for them (postcard's bytes,
/// without serde's generic code for twelve variants: 772 B less of the
/// lm3s6965 device's flash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RpcFamily;

impl MsgFamily for RpcFamily {
    type Msg<'a> = Frame<'a>;
    const NAME: &'static str = "Frame";

    fn reborrow<'s, 'l: 's>(msg: &'s Frame<'l>) -> &'s Frame<'s> {
        msg
    }

    fn encoded_len(msg: &Frame<'_>) -> Result<usize, postcard::Error> {
        frame_codec::encoded_len(msg)
    }

    fn encode(msg: &Frame<'_>, buf: &mut [u8]) -> Result<usize, postcard::Error> {
        frame_codec::encode(msg, buf)
    }

    fn decode(bytes: &[u8]) -> Result<Frame<'_>, postcard::Error> {
        frame_codec::decode(bytes)
    }
}

/// Every key of a list of 4-byte little-endian keys (a received
/// [`Hello::endpoints`]); a trailing partial key is ignored.
pub fn keys(list: &[u8]) -> impl Iterator<Item = crate::EndpointKey> + '_ {
    list.chunks_exact(4).filter_map(|k| k.try_into().ok().map(|k| crate::EndpointKey(u32::from_le_bytes(k))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_list_are_little_endian_and_ignore_a_partial_tail() {
        let list = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 9];
        let got: std::vec::Vec<_> = keys(&list).collect();
        assert_eq!(got, [crate::EndpointKey(1), crate::EndpointKey(u32::MAX)]);
    }

    #[test]
    fn a_small_request_costs_a_few_bytes() {
        let body = [2u8, 1];
        let frame = Frame::Request(Request { id: 5, endpoint: 0, deadline: -20, body: Body::Bytes(&body) });
        let wire = postcard::to_allocvec(&frame).unwrap();
        // tag, id, endpoint, deadline (zigzag), length, body
        assert_eq!(wire, [0, 5, 0, 39, 2, 2, 1]);
    }
}

#[cfg(test)]
mod frozen {
    use super::*;
    use vox_types::MsgFamily;

    /// The envelope's schema fingerprint (sent in the link prologue) and
    /// the bytes of the examples in `docs/PROTOCOL.md` §12. A change here
    /// is a wire change: bump [`PROTOCOL_VERSION`] and update the document.
    #[test]
    fn the_envelope_and_the_documented_examples_are_frozen() {
        assert_eq!(std::format!("{}", RpcFamily::FINGERPRINT), "e6d4bdeaf275080b");
        let hello = Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            max_in_flight: 4,
            fingerprint: 0x5b8c_0245,
            endpoints: Body::Bytes(&[0xaa, 0xbb, 0xcc, 0xdd]),
            topics: Body::Bytes(&[]),
        });
        // Each example's bytes, checked to decode back to the same bytes.
        let bytes = |f: &Frame<'_>| {
            let wire = postcard::to_allocvec(f).unwrap();
            let back = postcard::from_bytes::<Frame<'_>>(&wire).unwrap();
            assert_eq!(postcard::to_allocvec(&back).unwrap(), wire, "{f:?} decodes back");
            wire
        };
        assert_eq!(bytes(&hello), [0x06, 0x02, 0x04, 0xc5, 0x84, 0xb0, 0xdc, 0x05, 0x04, 0xaa, 0xbb, 0xcc, 0xdd, 0x00]);
        assert_eq!(bytes(&Frame::Subscribe { topic: 0, window: 8 }), [0x09, 0x00, 0x08]);
        let sample = Frame::Sample { topic: 1, seq: 300, dup: true, body: Body::Bytes(&[0x07]) };
        assert_eq!(bytes(&sample), [0x0a, 0x01, 0xac, 0x02, 0x01, 0x01, 0x07]);
        assert_eq!(bytes(&Frame::Credit { topic: 1, next: 301 }), [0x0b, 0x01, 0xad, 0x02]);
        assert_eq!(bytes(&Frame::TimeQuery { t0: 1000 }), [0x07, 0xe8, 0x07]);
        assert_eq!(bytes(&Frame::TimeReply { t0: 1000, t1: 5, t2: 6 }), [0x08, 0xe8, 0x07, 0x05, 0x06]);
        let request = Frame::Request(Request { id: 130, endpoint: 1, deadline: 1200, body: Body::Bytes(&[21]) });
        assert_eq!(bytes(&request), [0x00, 0x82, 0x01, 0x01, 0xe0, 0x12, 0x01, 0x15]);
        assert_eq!(bytes(&Frame::Reply { id: 130, body: Body::Bytes(&[42]) }), [0x01, 0x82, 0x01, 0x01, 0x2a]);
        assert_eq!(bytes(&Frame::Failed { id: 7, body: Body::Bytes(&[]) }), [0x02, 0x07, 0x00]);
        assert_eq!(bytes(&Frame::Refused { id: 3, why: Refusal::Expired }), [0x03, 0x03, 0x00]);
        assert_eq!(bytes(&Frame::NoReply { id: 3 }), [0x04, 0x03]);
        assert_eq!(bytes(&Frame::Cancel { id: 3 }), [0x05, 0x03]);
    }
}
