//! `Dispatch`: the chain of handlers a [`Server`](crate::Server) routes
//! requests to, built one endpoint at a time; plain handlers answer at
//! once, async handlers run in storage of their own (no allocator, no
//! executor: the rpc runner polls them).

use crate::body::Postcard;
use crate::topic::{PublicationState, SubscriptionState};
use crate::{EncodeBody, Endpoint, EndpointKey, Refusal};
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};
use serde::de::DeserializeOwned;

/// A handler's outcome, ready to encode into the answer frame.
pub enum Outcome<'r> {
    /// The response.
    Reply(&'r (dyn EncodeBody + Sync)),
    /// The handler's own error.
    Failed(&'r (dyn EncodeBody + Sync)),
    /// The caller cancelled the request after it started: it ran, and its
    /// outcome is dropped (answered `NoReply`).
    Cancelled,
}

/// What became of a request handed to [`Dispatch::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A plain handler ran and its outcome went to `respond`.
    Answered,
    /// An async handler started; its outcome comes from
    /// [`Dispatch::take_done`].
    Started,
    /// A plain handler needs a way to answer at once (`respond`), and none
    /// was given: hold the request and try again with one.
    NeedsPermit,
    /// Not run.
    Refused(Refusal),
}

/// Routes requests to handlers. Implemented by [`Nil`] (no endpoint),
/// [`Plain`] and [`Async`] (one endpoint each, in front of the rest); you
/// build it with [`Server::serve`](crate::Server::serve) and
/// [`Server::serve_async`](crate::Server::serve_async). Sealed: those
/// chains are its only implementations.
pub trait Dispatch: sealed::Sealed {
    /// Endpoints served.
    const COUNT: usize;
    /// The endpoints served, in order: a list the compiler builds (each
    /// endpoint's entry points at the next one's), so one walk over it
    /// answers [`key`](Self::key) and [`name`](Self::name) whatever the
    /// chain.
    #[doc(hidden)]
    const ENDPOINTS: Option<&'static EndpointEntry> = None;
    /// The key of endpoint `index`.
    fn key(index: usize) -> Option<EndpointKey> {
        nth(Self::ENDPOINTS, index).map(|e| e.key)
    }
    /// The name of endpoint `index`.
    fn name(index: usize) -> Option<&'static str> {
        nth(Self::ENDPOINTS, index).map(|e| e.name)
    }
    /// Hands request `id` (the caller's id) for endpoint `index` to its
    /// handler.
    fn handle(
        self: Pin<&mut Self>,
        index: usize,
        id: u32,
        body: &[u8],
        respond: Option<&mut dyn FnMut(Outcome<'_>)>,
    ) -> Handled;
    /// Polls every running async handler; `true` when one has an outcome.
    fn poll_runs(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool;
    /// Hands one finished outcome (with its request's id) to `respond` and
    /// frees its place; `false` when none is finished.
    fn take_done(self: Pin<&mut Self>, respond: &mut dyn FnMut(u32, Outcome<'_>)) -> bool;
    /// The caller of request `id` gave up: its outcome will be
    /// [`Outcome::Cancelled`]. `false` when no run has that id.
    fn cancel(self: Pin<&mut Self>, id: u32) -> bool;
    /// Drops every run (a session ended: nobody waits for their outcomes).
    fn reset(self: Pin<&mut Self>);
    /// Topics published.
    const PUBS: usize = 0;
    /// Publication `index`.
    fn publication(&self, _index: usize) -> Option<&dyn PublicationState> {
        None
    }
    /// Topics subscribed to.
    const SUBS: usize = 0;
    /// Subscription `index`.
    fn subscription(&self, _index: usize) -> Option<&dyn SubscriptionState> {
        None
    }
}

mod sealed {
    /// Implemented by the chains this module builds only ([`Nil`](super::Nil),
    /// [`Plain`](super::Plain), [`Async`](super::Async),
    /// [`Publish`](super::Publish), [`Subscribe`](super::Subscribe)): their
    /// [`ENDPOINTS`](super::Dispatch::ENDPOINTS) list, the greeting's key
    /// list and the fingerprint agree with `COUNT` by construction.
    pub trait Sealed {}
}

impl sealed::Sealed for Nil {}
impl<E, F, Next> sealed::Sealed for Plain<E, F, Next> {}
impl<E, F, Fut: Future, Next, const K: usize> sealed::Sealed for Async<E, F, Fut, Next, K> {}
impl<P: ?Sized, Next> sealed::Sealed for Publish<'_, P, Next> {}
impl<S: ?Sized, Next> sealed::Sealed for Subscribe<'_, S, Next> {}

/// An endpoint's key and name in a chain's [`Dispatch::ENDPOINTS`].
#[doc(hidden)]
pub struct EndpointEntry {
    pub key: EndpointKey,
    pub name: &'static str,
    pub next: Option<&'static EndpointEntry>,
}

/// Entry `index` of `list` (not generic: one walk for every chain).
fn nth(mut list: Option<&'static EndpointEntry>, index: usize) -> Option<&'static EndpointEntry> {
    for _ in 0..index {
        list = list?.next;
    }
    list
}

/// No endpoint: the end of every chain.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nil;

impl Dispatch for Nil {
    const COUNT: usize = 0;
    fn handle(self: Pin<&mut Self>, _: usize, _: u32, _: &[u8], _: Option<&mut dyn FnMut(Outcome<'_>)>) -> Handled {
        Handled::Refused(Refusal::Unknown)
    }
    fn poll_runs(self: Pin<&mut Self>, _: &mut Context<'_>) -> bool {
        false
    }
    fn take_done(self: Pin<&mut Self>, _: &mut dyn FnMut(u32, Outcome<'_>)) -> bool {
        false
    }
    fn cancel(self: Pin<&mut Self>, _: u32) -> bool {
        false
    }
    fn reset(self: Pin<&mut Self>) {}
}

/// Decodes a whole request body; trailing bytes are an error.
fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// The request a plain handler gets: `E`'s request type, borrowing the
/// received frame for `'a` (dereference it, or take it with
/// [`into_inner`](Self::into_inner)).
///
/// (A wrapper rather than `E::Req<'a>` itself: a closure bound `for<'a>
/// FnMut(E::Req<'a>) -> E::Resp<'a>` cannot be written in Rust, because
/// `'a` would appear only inside projections.)
pub struct Req<'a, E: Endpoint>(E::Req<'a>, PhantomData<&'a ()>);

impl<'a, E: Endpoint> Req<'a, E> {
    /// The request.
    pub fn into_inner(self) -> E::Req<'a> {
        self.0
    }
}

impl<'a, E: Endpoint> core::ops::Deref for Req<'a, E> {
    type Target = E::Req<'a>;
    fn deref(&self) -> &E::Req<'a> {
        &self.0
    }
}

/// Endpoint `E` answered by a plain handler `F`, in front of `Next`.
///
/// The handler gets the request borrowing the received frame and may
/// answer with a response borrowing it back (an echo copies nothing); it
/// runs once the rpc runner holds a way to send the answer, so the answer
/// is encoded straight into the conduit. It never runs concurrently with
/// itself, so it takes no RAM of its own.
pub struct Plain<E, F, Next> {
    handler: F,
    next: Next,
    _endpoint: PhantomData<fn() -> E>,
}

impl<E, F, Next> Plain<E, F, Next> {
    pub(crate) fn new(handler: F, next: Next) -> Self {
        Self { handler, next, _endpoint: PhantomData }
    }

    fn project(self: Pin<&mut Self>) -> (&mut F, Pin<&mut Next>) {
        // SAFETY: `next` is pinned structurally (never moved out while
        // `self` is pinned: no method moves it); `handler` is not pinned
        // (only ever used through `&mut`, never pinned).
        unsafe {
            let this = self.get_unchecked_mut();
            (&mut this.handler, Pin::new_unchecked(&mut this.next))
        }
    }
}

impl<E, F, Next> Dispatch for Plain<E, F, Next>
where
    E: Endpoint,
    F: for<'a> FnMut(Req<'a, E>) -> Result<E::Resp<'a>, E::Err<'a>>,
    Next: Dispatch,
{
    const COUNT: usize = Next::COUNT + 1;
    const ENDPOINTS: Option<&'static EndpointEntry> =
        Some(&EndpointEntry { key: E::KEY, name: E::NAME, next: Next::ENDPOINTS });
    fn handle(
        self: Pin<&mut Self>,
        index: usize,
        id: u32,
        body: &[u8],
        respond: Option<&mut dyn FnMut(Outcome<'_>)>,
    ) -> Handled {
        let (handler, next) = self.project();
        if index != 0 {
            return next.handle(index - 1, id, body, respond);
        }
        let Some(respond) = respond else { return Handled::NeedsPermit };
        let Some(request) = decode::<E::Req<'_>>(body) else { return Handled::Refused(Refusal::Undecodable) };
        let result = handler(Req(request, PhantomData));
        // One call of `respond` for both outcomes.
        let (reply, failed);
        respond(match &result {
            Ok(response) => Outcome::Reply({
                reply = Postcard(response);
                &reply
            }),
            Err(error) => Outcome::Failed({
                failed = Postcard(error);
                &failed
            }),
        });
        Handled::Answered
    }
    fn poll_runs(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        self.project().1.poll_runs(cx)
    }
    fn take_done(self: Pin<&mut Self>, respond: &mut dyn FnMut(u32, Outcome<'_>)) -> bool {
        self.project().1.take_done(respond)
    }
    fn cancel(self: Pin<&mut Self>, id: u32) -> bool {
        self.project().1.cancel(id)
    }
    fn reset(self: Pin<&mut Self>) {
        self.project().1.reset();
    }
    const PUBS: usize = Next::PUBS;
    fn publication(&self, index: usize) -> Option<&dyn PublicationState> {
        self.next.publication(index)
    }
    const SUBS: usize = Next::SUBS;
    fn subscription(&self, index: usize) -> Option<&dyn SubscriptionState> {
        self.next.subscription(index)
    }
}

/// One place of an async endpoint.
enum Run<Fut: Future> {
    Idle,
    Running { id: u32, cancelled: bool, future: Fut },
    Done { id: u32, cancelled: bool, outcome: Fut::Output },
}

/// Endpoint `E` answered by an async handler `F`, at most `K` requests at
/// once, in front of `Next`.
///
/// The request is decoded into an owned value (`E::Req<'static>` must own
/// its data) so the received frame is released before the handler awaits
/// anything. A request beyond `K` is refused `Busy` at once. RAM: `K ×
/// (size of F's future + size of its output + 8)` bytes, in the server.
pub struct Async<E, F, Fut: Future, Next, const K: usize> {
    handler: F,
    runs: [Run<Fut>; K],
    next: Next,
    _endpoint: PhantomData<fn() -> E>,
}

impl<E, F, Fut: Future, Next, const K: usize> Async<E, F, Fut, Next, K> {
    pub(crate) fn new(handler: F, next: Next) -> Self {
        Self { handler, runs: [const { Run::Idle }; K], next, _endpoint: PhantomData }
    }

    #[allow(clippy::type_complexity)]
    fn project(self: Pin<&mut Self>) -> (&mut F, Pin<&mut [Run<Fut>; K]>, Pin<&mut Next>) {
        // SAFETY: `runs` and `next` are pinned structurally: nothing moves
        // them out while `self` is pinned (a run's future is only ever
        // replaced in place, which drops it where it lies); `handler` is
        // never pinned.
        unsafe {
            let this = self.get_unchecked_mut();
            (&mut this.handler, Pin::new_unchecked(&mut this.runs), Pin::new_unchecked(&mut this.next))
        }
    }
}

/// The place `i` of a pinned array of runs, pinned.
fn run_at<Fut: Future, const K: usize>(runs: Pin<&mut [Run<Fut>; K]>, i: usize) -> Option<Pin<&mut Run<Fut>>> {
    // SAFETY: an element of a pinned array is pinned (structural); it is
    // not moved here.
    unsafe { runs.get_unchecked_mut().get_mut(i).map(|r| Pin::new_unchecked(r)) }
}

impl<E, F, Fut, Next, const K: usize> Dispatch for Async<E, F, Fut, Next, K>
where
    E: Endpoint,
    E::Req<'static>: DeserializeOwned,
    F: FnMut(E::Req<'static>) -> Fut,
    Fut: Future<Output = Result<E::Resp<'static>, E::Err<'static>>>,
    Next: Dispatch,
{
    const COUNT: usize = Next::COUNT + 1;
    const ENDPOINTS: Option<&'static EndpointEntry> =
        Some(&EndpointEntry { key: E::KEY, name: E::NAME, next: Next::ENDPOINTS });
    fn handle(
        self: Pin<&mut Self>,
        index: usize,
        id: u32,
        body: &[u8],
        respond: Option<&mut dyn FnMut(Outcome<'_>)>,
    ) -> Handled {
        let (handler, mut runs, next) = self.project();
        if index != 0 {
            return next.handle(index - 1, id, body, respond);
        }
        let Some(idle) = runs.iter().position(|r| matches!(r, Run::Idle)) else {
            return Handled::Refused(Refusal::Busy);
        };
        let Some(request) = decode::<E::Req<'static>>(body) else { return Handled::Refused(Refusal::Undecodable) };
        if let Some(mut place) = run_at(runs.as_mut(), idle) {
            place.set(Run::Running { id, cancelled: false, future: handler(request) });
        }
        Handled::Started
    }
    fn poll_runs(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let (_, mut runs, next) = self.project();
        let mut done = false;
        for i in 0..K {
            let Some(mut place) = run_at(runs.as_mut(), i) else { continue };
            // SAFETY: the future is pinned structurally inside its pinned
            // place; it is polled where it lies and replaced in place.
            let polled = unsafe {
                match place.as_mut().get_unchecked_mut() {
                    Run::Running { id, cancelled, future } => match Pin::new_unchecked(future).poll(cx) {
                        Poll::Ready(outcome) => Some((*id, *cancelled, outcome)),
                        Poll::Pending => None,
                    },
                    Run::Idle => None,
                    Run::Done { .. } => {
                        done = true;
                        None
                    }
                }
            };
            if let Some((id, cancelled, outcome)) = polled {
                place.set(Run::Done { id, cancelled, outcome });
                done = true;
            }
        }
        next.poll_runs(cx) || done
    }
    fn take_done(self: Pin<&mut Self>, respond: &mut dyn FnMut(u32, Outcome<'_>)) -> bool {
        let (_, mut runs, next) = self.project();
        for i in 0..K {
            let Some(mut place) = run_at(runs.as_mut(), i) else { continue };
            let answered = match &*place {
                Run::Done { id, cancelled: true, .. } => {
                    respond(*id, Outcome::Cancelled);
                    true
                }
                Run::Done { id, outcome: Ok(response), .. } => {
                    respond(*id, Outcome::Reply(&Postcard(response)));
                    true
                }
                Run::Done { id, outcome: Err(error), .. } => {
                    respond(*id, Outcome::Failed(&Postcard(error)));
                    true
                }
                Run::Idle | Run::Running { .. } => false,
            };
            if answered {
                place.set(Run::Idle);
                return true;
            }
        }
        next.take_done(respond)
    }
    fn cancel(self: Pin<&mut Self>, target: u32) -> bool {
        let (_, mut runs, next) = self.project();
        for i in 0..K {
            let Some(place) = run_at(runs.as_mut(), i) else { continue };
            // SAFETY: only the `cancelled` flag changes; nothing moves.
            match unsafe { place.get_unchecked_mut() } {
                Run::Running { id, cancelled, .. } | Run::Done { id, cancelled, .. } if *id == target => {
                    *cancelled = true;
                    return true;
                }
                _ => {}
            }
        }
        next.cancel(target)
    }
    fn reset(self: Pin<&mut Self>) {
        let (_, mut runs, next) = self.project();
        for i in 0..K {
            if let Some(mut place) = run_at(runs.as_mut(), i) {
                place.set(Run::Idle);
            }
        }
        next.reset();
    }
    const PUBS: usize = Next::PUBS;
    fn publication(&self, index: usize) -> Option<&dyn PublicationState> {
        self.next.publication(index)
    }
    const SUBS: usize = Next::SUBS;
    fn subscription(&self, index: usize) -> Option<&dyn SubscriptionState> {
        self.next.subscription(index)
    }
}

/// A topic this side publishes (`P`, a [`Publication`](crate::Publication)),
/// in front of `Next`.
pub struct Publish<'p, P: ?Sized, Next> {
    publication: &'p P,
    next: Next,
}

impl<'p, P: ?Sized, Next> Publish<'p, P, Next> {
    pub(crate) fn new(publication: &'p P, next: Next) -> Self {
        Self { publication, next }
    }
    fn next(self: Pin<&mut Self>) -> Pin<&mut Next> {
        // SAFETY: `next` is pinned structurally (never moved out while
        // `self` is pinned); the reference beside it is not pinned.
        unsafe { self.map_unchecked_mut(|s| &mut s.next) }
    }
}

/// A topic of the peer this side subscribes to (`S`, a
/// [`Subscription`](crate::Subscription)), in front of `Next`.
pub struct Subscribe<'s, S: ?Sized, Next> {
    subscription: &'s S,
    next: Next,
}

impl<'s, S: ?Sized, Next> Subscribe<'s, S, Next> {
    pub(crate) fn new(subscription: &'s S, next: Next) -> Self {
        Self { subscription, next }
    }
    fn next(self: Pin<&mut Self>) -> Pin<&mut Next> {
        // SAFETY: as for `Publish`.
        unsafe { self.map_unchecked_mut(|s| &mut s.next) }
    }
}

/// Forwards every endpoint method of `Dispatch` to `next`.
macro_rules! forward_endpoints {
    () => {
        const COUNT: usize = Next::COUNT;
        const ENDPOINTS: Option<&'static EndpointEntry> = Next::ENDPOINTS;
        fn handle(
            self: Pin<&mut Self>,
            index: usize,
            id: u32,
            body: &[u8],
            respond: Option<&mut dyn FnMut(Outcome<'_>)>,
        ) -> Handled {
            self.next().handle(index, id, body, respond)
        }
        fn poll_runs(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
            self.next().poll_runs(cx)
        }
        fn take_done(self: Pin<&mut Self>, respond: &mut dyn FnMut(u32, Outcome<'_>)) -> bool {
            self.next().take_done(respond)
        }
        fn cancel(self: Pin<&mut Self>, id: u32) -> bool {
            self.next().cancel(id)
        }
        fn reset(self: Pin<&mut Self>) {
            self.next().reset()
        }
    };
}

impl<P: PublicationState, Next: Dispatch> Dispatch for Publish<'_, P, Next> {
    forward_endpoints!();
    const PUBS: usize = Next::PUBS + 1;
    fn publication(&self, index: usize) -> Option<&dyn PublicationState> {
        if index == 0 { Some(self.publication) } else { self.next.publication(index - 1) }
    }
    const SUBS: usize = Next::SUBS;
    fn subscription(&self, index: usize) -> Option<&dyn SubscriptionState> {
        self.next.subscription(index)
    }
}

impl<S: SubscriptionState, Next: Dispatch> Dispatch for Subscribe<'_, S, Next> {
    forward_endpoints!();
    const PUBS: usize = Next::PUBS;
    fn publication(&self, index: usize) -> Option<&dyn PublicationState> {
        self.next.publication(index)
    }
    const SUBS: usize = Next::SUBS + 1;
    fn subscription(&self, index: usize) -> Option<&dyn SubscriptionState> {
        if index == 0 { Some(self.subscription) } else { self.next.subscription(index - 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Server;
    use core::cell::Cell;
    use core::task::Waker;
    use std::vec;
    use std::vec::Vec;

    crate::declare! {
        pub endpoint Double = "double": u32 => u32;
        pub endpoint Later = "later": u32 => u32, u8;
    }

    /// A future that is ready on its second poll and reads its own state
    /// there (moved or freed storage would show under Miri).
    struct TwoPolls {
        value: u32,
        polled: bool,
        drops: &'static std::thread::LocalKey<Cell<u32>>,
    }

    impl Future for TwoPolls {
        type Output = Result<u32, u8>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if self.polled {
                Poll::Ready(if self.value == 0 { Err(7) } else { Ok(self.value) })
            } else {
                self.polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    impl Drop for TwoPolls {
        fn drop(&mut self) {
            self.drops.with(|d| d.set(d.get() + 1));
        }
    }

    std::thread_local!(static DROPS: Cell<u32> = const { Cell::new(0) });

    fn outcomes<D: Dispatch>(mut d: Pin<&mut D>) -> Vec<(u32, &'static str, Vec<u8>)> {
        let mut out = Vec::new();
        while d.as_mut().take_done(&mut |id, outcome| {
            let (kind, bytes) = match outcome {
                Outcome::Reply(b) => ("reply", encode(b)),
                Outcome::Failed(b) => ("failed", encode(b)),
                Outcome::Cancelled => ("cancelled", Vec::new()),
            };
            out.push((id, kind, bytes));
        }) {}
        out
    }

    fn encode(body: &(dyn EncodeBody + Sync)) -> Vec<u8> {
        let mut v = Vec::new();
        assert!(body.encode(&mut |piece| {
            v.extend_from_slice(piece);
            true
        }));
        assert_eq!(Some(v.len()), body.encoded_len());
        v
    }

    // r[verify rpc.serve]
    #[test]
    fn async_runs_are_polled_in_place_bounded_and_dropped_on_reset() {
        let server = Server::new().serve::<Double, _>(|n| Ok(*n * 2)).serve_async::<Later, 2, _, _>(|n| TwoPolls {
            value: n,
            polled: false,
            drops: &DROPS,
        });
        let mut server = core::pin::pin!(server);
        let mut d = server.as_mut().parts().dispatch;
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let body = |n: u32| postcard::to_allocvec(&n).unwrap();
        // Index 0 is the last endpoint added (`Later`), 1 is `Double`.
        assert_eq!(d.as_mut().handle(0, 10, &body(5), None), Handled::Started);
        assert_eq!(d.as_mut().handle(0, 11, &body(0), None), Handled::Started);
        assert_eq!(d.as_mut().handle(0, 12, &body(9), None), Handled::Refused(Refusal::Busy), "two places only");
        assert_eq!(d.as_mut().handle(0, 13, &[0xff; 6], None), Handled::Refused(Refusal::Busy));
        assert_eq!(d.as_mut().handle(1, 14, &body(4), None), Handled::NeedsPermit);
        let mut replied = None;
        assert_eq!(
            d.as_mut().handle(1, 14, &body(4), Some(&mut |o| replied = Some(matches!(o, Outcome::Reply(_))))),
            Handled::Answered
        );
        assert_eq!(replied, Some(true));
        assert_eq!(d.as_mut().handle(2, 15, &body(4), None), Handled::Refused(Refusal::Unknown));
        // First poll: both pending; second: both done.
        assert!(!d.as_mut().poll_runs(&mut cx));
        assert!(d.as_mut().cancel(11));
        assert!(!d.as_mut().cancel(99));
        assert!(d.as_mut().poll_runs(&mut cx));
        let done = outcomes(d.as_mut());
        assert_eq!(done, [(10, "reply", vec![5]), (11, "cancelled", vec![])]);
        assert_eq!(DROPS.with(Cell::get), 2, "finished runs are dropped in place");
        // A run in progress is dropped by a reset, in place.
        assert_eq!(d.as_mut().handle(0, 20, &body(0), None), Handled::Started);
        assert!(!d.as_mut().poll_runs(&mut cx));
        d.as_mut().reset();
        assert_eq!(DROPS.with(Cell::get), 3);
        assert!(outcomes(d.as_mut()).is_empty());
        // A handler error is the endpoint's error type.
        assert_eq!(d.as_mut().handle(0, 21, &body(0), None), Handled::Started);
        assert!(!d.as_mut().poll_runs(&mut cx));
        assert!(d.as_mut().poll_runs(&mut cx));
        assert_eq!(outcomes(d.as_mut()), [(21, "failed", vec![7])]);
        assert_eq!(
            Server::<Plain<Double, fn(Req<'_, Double>) -> Result<u32, crate::NoError>, Nil>>::endpoints().count(),
            1
        );
    }
}
