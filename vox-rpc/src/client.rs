//! `Client`: makes calls through a [`Calls`] table, from any number of
//! tasks, each with a deadline.

use crate::calls::{Answer, CallId, Finished};
use crate::{CallError, Calls, Endpoint, EndpointKey};
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;
use embassy_sync::blocking_mutex::raw::RawMutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vox_types::{Clock, Instant, StorageRef};

/// Makes calls to the peer: cheap to clone (a reference to the table and
/// the clock); on a host with an `Arc`'d table and a `Send` clock it is
/// `Clone + Send + Sync` and outlives sessions (calls pending when a
/// session ends resolve at once; later calls go to the next session).
///
/// Every call has a deadline. A call first waits for a free entry of the
/// table (under its deadline), then for the session to be ready and the
/// peer's window to have room, then for the answer.
// r[impl rpc.call]
pub struct Client<M: RawMutex + 'static, const N: usize, const BUF: usize, const PEER: usize, C> {
    calls: StorageRef<Calls<M, N, BUF, PEER>>,
    clock: C,
}

impl<M: RawMutex + 'static, const N: usize, const BUF: usize, const PEER: usize, C: Clone> Clone
    for Client<M, N, BUF, PEER, C>
{
    fn clone(&self) -> Self {
        Self { calls: self.calls.clone(), clock: self.clock.clone() }
    }
}

impl<M: RawMutex + 'static, const N: usize, const BUF: usize, const PEER: usize, C: Clock> Client<M, N, BUF, PEER, C> {
    /// A client of `calls` on `clock` (the same clock as the runner's).
    pub fn new(calls: impl Into<StorageRef<Calls<M, N, BUF, PEER>>>, clock: C) -> Self {
        Self { calls: calls.into(), clock }
    }

    /// The table.
    pub fn calls(&self) -> &Calls<M, N, BUF, PEER> {
        &self.calls
    }

    /// The bound ε (ms) on how late after a call's deadline the peer may
    /// still start it, now; `None` until the session's first clock sample.
    pub fn epsilon(&self) -> Option<u64> {
        self.calls.epsilon(self.clock.now())
    }

    /// Calls endpoint `E` with `request`, giving up `timeout` from now:
    /// the response, owned.
    ///
    /// For endpoints whose response or error borrows (`&str`, `&[u8]`),
    /// use [`call_with`](Self::call_with).
    pub async fn call<E>(
        &self,
        request: E::Req<'_>,
        timeout: Duration,
    ) -> Result<E::Resp<'static>, CallError<E::Err<'static>>>
    where
        E: Endpoint,
        E::Resp<'static>: DeserializeOwned,
        E::Err<'static>: DeserializeOwned,
    {
        let deadline = deadline_after(self.clock.now(), timeout);
        self.call_raw(E::KEY, &request, deadline, |answer, bytes| match answer {
            Ok(()) => postcard::from_bytes::<E::Resp<'static>>(bytes).map_err(|_| CallError::BadResponse),
            Err(()) => {
                Err(postcard::from_bytes::<E::Err<'static>>(bytes).map_or(CallError::BadResponse, CallError::Handler))
            }
        })
        .await
    }

    /// Calls endpoint `E` with `request`, giving up `timeout` from now, and
    /// hands the handler's outcome (borrowing the received bytes) to `f`;
    /// returns what `f` returns.
    pub async fn call_with<E, R>(
        &self,
        request: E::Req<'_>,
        timeout: Duration,
        f: impl FnOnce(Result<E::Resp<'_>, E::Err<'_>>) -> R,
    ) -> Result<R, CallError>
    where
        E: Endpoint,
    {
        let deadline = deadline_after(self.clock.now(), timeout);
        self.call_raw(E::KEY, &request, deadline, |answer, bytes| match answer {
            Ok(()) => postcard::from_bytes::<E::Resp<'_>>(bytes).map(|r| f(Ok(r))).map_err(|_| CallError::BadResponse),
            Err(()) => postcard::from_bytes::<E::Err<'_>>(bytes).map(|e| f(Err(e))).map_err(|_| CallError::BadResponse),
        })
        .await
    }

    async fn call_raw<T: Serialize + ?Sized, R, H>(
        &self,
        key: EndpointKey,
        request: &T,
        deadline: Instant,
        decode: impl FnOnce(Result<(), ()>, &[u8]) -> Result<R, CallError<H>>,
    ) -> Result<R, CallError<H>> {
        let mut bytes = [0u8; BUF];
        let mut encode = |buf: &mut [u8]| postcard::to_slice(request, buf).ok().map(|b| b.len());
        let (answer, len) = match self.exchange(key, deadline, &mut encode, &mut bytes).await {
            Ok(answered) => answered,
            Err(e) => return Err(e.map_handler(|n| match n {})),
        };
        let bytes = bytes.get(..len).unwrap_or(&[]);
        match answer {
            Answer::Reply => decode(Ok(()), bytes),
            Answer::Failed => decode(Err(()), bytes),
            Answer::Refused(why) => Err(CallError::refused(why)),
            Answer::Unknown => Err(CallError::Unknown),
            Answer::TooLarge => Err(CallError::TooLarge),
            Answer::TooBig => Err(CallError::BadResponse),
            Answer::Lost { kind, committed } => Err(CallError::lost(kind, committed)),
        }
    }

    /// The part of a call that does not depend on its types (one copy in
    /// a firmware however many endpoints it calls): an entry, the request
    /// encoded into it by `encode`, the answer copied into `out`; all of it
    /// under one timer.
    async fn exchange(
        &self,
        key: EndpointKey,
        deadline: Instant,
        encode: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        out: &mut [u8; BUF],
    ) -> Result<(Answer, usize), CallError> {
        let calls = &*self.calls;
        let mut call = CallGuard { calls, ticket: None, id: None };
        let mut timer = pin!(self.clock.sleep_until(deadline));
        let answered = poll_fn(|cx| {
            if call.id.is_none() {
                // 1. An entry, then the request encoded into it.
                let Poll::Ready(id) = calls.poll_claim(&mut call.ticket, cx) else {
                    return timer.as_mut().poll(cx).map(|()| false);
                };
                if !calls.queue(id, key, deadline, encode) {
                    return Poll::Ready(true);
                }
                call.id = Some(id);
            }
            // 2. The answer, or the deadline.
            match call.id {
                Some(id) if calls.poll_answer(id, cx).is_pending() => timer.as_mut().poll(cx).map(|()| true),
                _ => Poll::Ready(true),
            }
        })
        .await;
        let Some(id) = call.id.take() else {
            return Err(if answered { CallError::TooLarge } else { CallError::Timeout { committed: false } });
        };
        match calls.finish(id, out) {
            Finished::Answer(answer, len) => Ok((answer, len)),
            Finished::Pending { committed } | Finished::Gone(committed) => Err(CallError::Timeout { committed }),
        }
    }
}

/// `timeout` from `now`, in whole milliseconds rounded up (without the
/// 128-bit arithmetic of `Duration::as_millis`).
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    let millis = timeout.as_secs().saturating_mul(1000) + u64::from(timeout.subsec_nanos().div_ceil(1_000_000));
    now.add_millis(millis)
}

/// A call waiting for an entry (`ticket`) or holding one (`id`): when
/// dropped, it leaves the queue, or frees its entry at once (a committed
/// request gets a best-effort cancel).
struct CallGuard<'c, M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> {
    calls: &'c Calls<M, N, BUF, PEER>,
    ticket: Option<u32>,
    id: Option<CallId>,
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> Drop for CallGuard<'_, M, N, BUF, PEER> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.calls.stop_waiting(ticket);
        }
        if let Some(id) = self.id.take() {
            self.calls.abandon(id);
        }
    }
}
