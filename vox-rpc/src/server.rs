//! `Server`: the endpoints this side serves, and the room it holds for
//! requests it cannot answer at once (refusals to send, requests waiting
//! for the conduit).

use crate::dispatch::{Async, Plain, Publish, Req, Subscribe};
use crate::topic::{PublicationState, SubscriptionState};
use crate::{Dispatch, Endpoint, Nil, Refusal};
use core::future::Future;
use core::pin::Pin;
use serde::de::DeserializeOwned;

/// Counters of a [`Server`], over every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServeStats {
    /// Requests whose handler ran (plain or async).
    pub ran: u32,
    /// Plain requests held until the conduit had room to answer.
    pub deferred: u32,
    /// Refused: deadline passed.
    pub expired: u32,
    /// Refused: the endpoint or the server was full.
    pub busy: u32,
    /// Refused: no such endpoint.
    pub unknown: u32,
    /// Refused: the body did not decode.
    pub undecodable: u32,
    /// Requests the caller cancelled (skipped, or their outcome dropped).
    pub cancelled: u32,
}

/// An answer this side still owes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owed {
    Refuse {
        id: u32,
        why: Refusal,
    },
    NoReply {
        id: u32,
    },
    /// A plain request held in the arena until a permit comes.
    Deferred {
        id: u32,
        index: u16,
        deadline: i64,
        start: usize,
        len: usize,
    },
}

/// What a server owes, oldest first: a short list kept in place, newest
/// at the front of the vector and oldest at its end, so that taking the
/// first owed and owing one first (a "no reply", on the runner's path)
/// are a pop and a push; only owing one last moves the others up a place
/// (one copy each: no `memmove`).
pub(crate) struct OwedList<const Q: usize>(heapless::Vec<Owed, Q>);

impl<const Q: usize> OwedList<Q> {
    /// Owes `owed` last; `false` when `Q` are owed already.
    pub(crate) fn push_back(&mut self, owed: Owed) -> bool {
        if self.0.push(owed).is_err() {
            return false;
        }
        let list = &mut *self.0;
        for i in (1..list.len()).rev() {
            if let Some(&before) = list.get(i - 1)
                && let Some(place) = list.get_mut(i)
            {
                *place = before;
            }
        }
        if let Some(last) = list.first_mut() {
            *last = owed;
        }
        true
    }

    /// Owes `owed` first; `false` when `Q` are owed already.
    pub(crate) fn push_front(&mut self, owed: Owed) -> bool {
        self.0.push(owed).is_ok()
    }

    /// Takes the first owed.
    pub(crate) fn pop_front(&mut self) -> Option<Owed> {
        self.0.pop()
    }

    /// Whether `Q` are owed.
    pub(crate) fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// Whether nothing is owed.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is owed, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Owed> {
        self.0.iter().rev()
    }

    /// What is owed, oldest first, to change in place.
    pub(crate) fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Owed> {
        self.0.iter_mut().rev()
    }

    /// Owes nothing.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// The endpoints this side serves (built with [`serve`](Self::serve) and
/// [`serve_async`](Self::serve_async)), and room for `Q` requests it owes
/// an answer, with `ARENA` bytes to hold plain requests until the conduit
/// has room for their answers.
///
/// `Q` is what this side advertises at connect: the peer keeps at most
/// `Q` requests unanswered (exceeding it is a protocol violation that ends
/// the session). A plain request that arrives while the conduit has no
/// room is copied into the arena; with no room there either it is refused
/// `Busy` (it did not run). The receiving side never waits on its own
/// sending half.
///
/// RAM: `Q × 24 + ARENA` bytes, plus each async endpoint's places (see
/// [`Async`]); plain handlers take none.
///
/// ```
/// use vox_rpc::Server;
///
/// vox_rpc::declare! {
///     pub endpoint Double = "double": u32 => u32;
///     pub endpoint Greet = "greet": &'a str => (), &'a str;
/// }
/// let server = Server::new()
///     .serve::<Double, _>(|n| Ok(*n * 2))
///     .serve::<Greet, _>(|name| if name.is_empty() { Err("who?") } else { Ok(()) });
/// # let _ = server;
/// ```
// r[impl rpc.serve]
pub struct Server<D, const Q: usize = 4, const ARENA: usize = 128> {
    pub(crate) dispatch: D,
    pub(crate) owed: OwedList<Q>,
    pub(crate) arena: [u8; ARENA],
    /// The absolute deadline of the last request received (the base of
    /// the next one's delta).
    pub(crate) last_deadline: i64,
    pub(crate) stats: ServeStats,
}

impl Server<Nil> {
    /// A server with no endpoint yet, room for 4 requests owed and a
    /// 128-byte arena.
    pub const fn new() -> Self {
        Self::with_room()
    }
}

impl Default for Server<Nil> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const Q: usize, const ARENA: usize> Server<Nil, Q, ARENA> {
    /// A server with no endpoint yet, room for `Q` requests owed and an
    /// `ARENA`-byte arena: `Server::<_, 8, 512>::with_room()`.
    pub const fn with_room() -> Self {
        const { assert!(Q >= 1 && Q <= u16::MAX as usize, "a server holds room for 1 to 65,535 requests") };
        Self { dispatch: Nil, owed: OwedList(heapless::Vec::new()), arena: [0; ARENA], last_deadline: 0, stats: ZERO }
    }
}

const ZERO: ServeStats =
    ServeStats { ran: 0, deferred: 0, expired: 0, busy: 0, unknown: 0, undecodable: 0, cancelled: 0 };

impl<D: Dispatch, const Q: usize, const ARENA: usize> Server<D, Q, ARENA> {
    /// Adds endpoint `E`, answered by a plain handler: request in (it may
    /// borrow the received frame), response or the handler's error out.
    pub fn serve<E, F>(self, handler: F) -> Server<Plain<E, F, D>, Q, ARENA>
    where
        E: Endpoint,
        F: for<'a> FnMut(Req<'a, E>) -> Result<E::Resp<'a>, E::Err<'a>>,
    {
        self.with_dispatch(|d| Plain::new(handler, d))
    }

    /// Adds endpoint `E`, answered by an async handler, at most `K`
    /// requests at once (beyond: `Busy` at once). The request is owned
    /// (decoded out of the frame, which is released before the handler
    /// runs).
    pub fn serve_async<E, const K: usize, F, Fut>(self, handler: F) -> Server<Async<E, F, Fut, D, K>, Q, ARENA>
    where
        E: Endpoint,
        E::Req<'static>: DeserializeOwned,
        F: FnMut(E::Req<'static>) -> Fut,
        Fut: Future<Output = Result<E::Resp<'static>, E::Err<'static>>>,
    {
        self.with_dispatch(|d| Async::new(handler, d))
    }

    /// Adds a topic this side publishes: the peer may subscribe to it.
    pub fn publish<'p, P: PublicationState>(self, publication: &'p P) -> Server<Publish<'p, P, D>, Q, ARENA> {
        self.with_dispatch(|d| Publish::new(publication, d))
    }

    /// Adds a topic of the peer this side subscribes to (in every session
    /// whose peer publishes it).
    pub fn subscribe<'s, S: SubscriptionState>(self, subscription: &'s S) -> Server<Subscribe<'s, S, D>, Q, ARENA> {
        self.with_dispatch(|d| Subscribe::new(subscription, d))
    }

    fn with_dispatch<D2>(self, f: impl FnOnce(D) -> D2) -> Server<D2, Q, ARENA> {
        Server {
            dispatch: f(self.dispatch),
            owed: self.owed,
            arena: self.arena,
            last_deadline: self.last_deadline,
            stats: self.stats,
        }
    }

    /// Counters over every session.
    pub fn stats(&self) -> ServeStats {
        self.stats
    }

    /// The names and keys of the endpoints served, in the order the peer
    /// addresses them.
    pub fn endpoints() -> impl Iterator<Item = (&'static str, crate::EndpointKey)> {
        (0..D::COUNT).filter_map(|i| Some((D::name(i)?, D::key(i)?)))
    }

    pub(crate) fn parts(self: Pin<&mut Self>) -> Parts<'_, D, Q, ARENA> {
        // SAFETY: only `dispatch` is pinned structurally (it may hold
        // handler futures); it is never moved out while `self` is pinned.
        // The other fields are plain data, never pinned.
        unsafe {
            let this = self.get_unchecked_mut();
            Parts {
                dispatch: Pin::new_unchecked(&mut this.dispatch),
                owed: &mut this.owed,
                arena: &mut this.arena,
                last_deadline: &mut this.last_deadline,
                stats: &mut this.stats,
            }
        }
    }
}

/// The fields of a pinned [`Server`], for the runner.
pub(crate) struct Parts<'s, D, const Q: usize, const ARENA: usize> {
    pub dispatch: Pin<&'s mut D>,
    pub owed: &'s mut OwedList<Q>,
    pub arena: &'s mut [u8; ARENA],
    pub last_deadline: &'s mut i64,
    pub stats: &'s mut ServeStats,
}

impl<D: Dispatch, const Q: usize, const ARENA: usize> Parts<'_, D, Q, ARENA> {
    /// Owes a refusal; `false` when there is no room (the peer exceeded
    /// the window it was given).
    pub fn refuse(&mut self, id: u32, why: Refusal) -> bool {
        let counter = match why {
            Refusal::Expired => &mut self.stats.expired,
            Refusal::Busy => &mut self.stats.busy,
            Refusal::Unknown => &mut self.stats.unknown,
            Refusal::Undecodable => &mut self.stats.undecodable,
            Refusal::Cancelled => &mut self.stats.cancelled,
        };
        *counter = counter.wrapping_add(1);
        self.owed.push_back(Owed::Refuse { id, why })
    }

    /// Holds a plain request in the arena until a permit comes, or refuses
    /// it `Busy` when the arena is full; `false` when there is no room to
    /// owe anything (a violation).
    pub fn defer(&mut self, id: u32, index: u16, deadline: i64, body: &[u8]) -> bool {
        if self.owed.is_full() {
            return false;
        }
        let Some(start) = self.place(body.len()) else {
            return self.refuse(id, Refusal::Busy);
        };
        if let Some(place) = self.arena.get_mut(start..start + body.len()) {
            place.copy_from_slice(body);
        }
        self.stats.deferred = self.stats.deferred.wrapping_add(1);
        self.owed.push_back(Owed::Deferred { id, index, deadline, start, len: body.len() })
    }

    /// Where `len` bytes go in the arena, a ring: held requests leave it in
    /// the order they came (first in, first out), so the live bytes run
    /// from the oldest held request's start to the newest's end, wrapping
    /// at the arena's end; `None` when they do not fit.
    fn place(&self, len: usize) -> Option<usize> {
        if len == 0 {
            return Some(0);
        }
        let mut held = self.owed.iter().filter_map(|o| match *o {
            Owed::Deferred { start, len, .. } if len > 0 => Some((start, len)),
            _ => None,
        });
        let Some((head, head_len)) = held.next() else { return (len <= ARENA).then_some(0) };
        let (last, last_len) = held.next_back().unwrap_or((head, head_len));
        let tail = last + last_len;
        if last >= head {
            // [head, tail) is used: after it, or else before head.
            if ARENA - tail >= len {
                Some(tail)
            } else if head >= len {
                Some(0)
            } else {
                None
            }
        } else {
            // Wrapped: [head, ARENA) and [0, tail) are used.
            (head - tail >= len).then_some(tail)
        }
    }

    /// The peer cancelled request `id`: a held one is skipped, a running
    /// one's outcome dropped.
    pub fn cancel(&mut self, id: u32) {
        let held = self.owed.iter_mut().find(|o| matches!(o, Owed::Deferred { id: d, .. } if *d == id));
        if let Some(owed) = held {
            *owed = Owed::Refuse { id, why: Refusal::Cancelled };
            self.stats.cancelled = self.stats.cancelled.wrapping_add(1);
        } else if self.dispatch.as_mut().cancel(id) {
            self.stats.cancelled = self.stats.cancelled.wrapping_add(1);
        }
    }

    /// Forgets everything owed (a new session).
    pub fn reset(&mut self) {
        self.owed.clear();
        *self.last_deadline = 0;
        self.dispatch.as_mut().reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts<D: Dispatch, const Q: usize, const A: usize>(parts: &Parts<'_, D, Q, A>) -> std::vec::Vec<(u32, usize)> {
        parts
            .owed
            .iter()
            .map(|o| match *o {
                Owed::Deferred { id, start, .. } => (id, start),
                Owed::Refuse { id, .. } | Owed::NoReply { id } => (id, usize::MAX),
            })
            .collect()
    }

    #[test]
    fn held_requests_use_the_arena_as_a_ring_and_busy_only_when_it_is_full() {
        let mut server = core::pin::pin!(Server::<Nil, 4, 16>::with_room());
        let mut p = server.as_mut().parts();
        assert!(p.defer(1, 0, 0, &[1; 6]));
        assert!(p.defer(2, 0, 0, &[2; 6]));
        // 4 bytes left at the end: a 6-byte request does not fit anywhere.
        assert!(p.defer(3, 0, 0, &[3; 6]));
        assert_eq!(starts(&p), [(1, 0), (2, 6), (3, usize::MAX)], "refused Busy, owed as a refusal");
        assert_eq!(p.stats.busy, 1);
        // The first is answered: its 6 bytes at the start come free, and
        // the next request wraps there.
        p.owed.pop_front();
        assert!(p.defer(4, 0, 0, &[4; 5]));
        assert_eq!(starts(&p), [(2, 6), (3, usize::MAX), (4, 0)]);
        assert_eq!(p.arena.get(..5), Some(&[4u8; 5][..]));
        // Wrapped: between the newest's end (5) and the oldest's start (6)
        // one byte is free; a second one does not fit.
        p.owed.pop_front();
        p.owed.pop_front();
        assert!(p.defer(5, 0, 0, &[5; 1]));
        assert_eq!(starts(&p), [(4, 0), (5, 5)]);
        assert!(p.defer(6, 0, 0, &[]), "an empty body needs no room");
        assert!(p.defer(7, 0, 0, &[7; 10]));
        assert_eq!(starts(&p), [(4, 0), (5, 5), (6, 0), (7, 6)]);
        // Room for four owed answers: a fifth request is a violation.
        assert!(!p.defer(8, 0, 0, &[8]));
        assert!(!p.refuse(8, Refusal::Busy));
        // A cancel skips a held request; a reset forgets everything.
        p.cancel(5);
        assert_eq!(starts(&p), [(4, 0), (5, usize::MAX), (6, 0), (7, 6)]);
        p.reset();
        assert!(p.owed.is_empty());
    }

    #[test]
    fn owed_answers_leave_in_order_and_a_no_reply_goes_first() {
        let ids = |list: &OwedList<3>| {
            list.iter().map(|o| if let Owed::Refuse { id, .. } = *o { id } else { 0 }).collect::<std::vec::Vec<_>>()
        };
        let refuse = |id| Owed::Refuse { id, why: Refusal::Busy };
        let mut list = OwedList::<3>(heapless::Vec::new());
        assert!(list.pop_front().is_none());
        assert!(list.push_back(refuse(1)) && list.push_back(refuse(2)));
        assert!(list.push_front(refuse(0)));
        assert_eq!(ids(&list), [0, 1, 2]);
        assert!(list.is_full());
        assert!(!list.push_front(refuse(9)) && !list.push_back(refuse(9)));
        assert!(matches!(list.pop_front(), Some(Owed::Refuse { id: 0, .. })));
        assert_eq!(ids(&list), [1, 2]);
        assert!(list.push_front(refuse(5)));
        assert_eq!(ids(&list), [5, 1, 2]);
        assert!(matches!(list.pop_front(), Some(Owed::Refuse { id: 5, .. })));
        assert!(matches!(list.pop_front(), Some(Owed::Refuse { id: 1, .. })));
        assert!(matches!(list.pop_front(), Some(Owed::Refuse { id: 2, .. })));
        assert!(list.pop_front().is_none() && list.is_empty());
    }
}
