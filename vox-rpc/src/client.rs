//! `Client`: makes calls through a [`Calls`] table, from any number of
//! tasks, each with a deadline.

use crate::calls::{Answer, CallId, Finished};
use crate::{CallError, Calls, Endpoint, EndpointKey};
use core::future::poll_fn;
use core::time::Duration;
use embassy_futures::select::{Either, select};
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
        let deadline = self.clock.now() + timeout;
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
        let deadline = self.clock.now() + timeout;
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
        // 1. An entry.
        let mut waiting = Waiting { calls: &self.calls, ticket: None };
        let claimed =
            select(poll_fn(|cx| self.calls.poll_claim(&mut waiting.ticket, cx)), self.clock.sleep_until(deadline));
        let id = match claimed.await {
            Either::First(id) => id,
            Either::Second(()) => return Err(CallError::Timeout { committed: false }),
        };
        drop(waiting);
        let mut call = InFlight { calls: &self.calls, id: Some(id) };
        // 2. The request, encoded into the entry.
        if !self.calls.queue(id, key, deadline, |buf| postcard::to_slice(request, buf).ok().map(|b| b.len())) {
            call.id = None;
            return Err(CallError::TooLarge);
        }
        // 3. The answer, or the deadline.
        let _ = select(poll_fn(|cx| self.calls.poll_answer(id, cx)), self.clock.sleep_until(deadline)).await;
        call.id = None;
        let mut bytes = [0u8; BUF];
        match self.calls.finish(id, &mut bytes) {
            Finished::Answer(answer, len) => {
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
            Finished::Pending { committed } => Err(CallError::Timeout { committed }),
            Finished::Gone => Err(CallError::Timeout { committed: true }),
        }
    }
}

/// A caller waiting for a free entry; leaves the queue when dropped.
struct Waiting<'c, M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> {
    calls: &'c Calls<M, N, BUF, PEER>,
    ticket: Option<u32>,
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> Drop for Waiting<'_, M, N, BUF, PEER> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.calls.stop_waiting(ticket);
        }
    }
}

/// A call holding an entry; a dropped call frees it at once.
struct InFlight<'c, M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> {
    calls: &'c Calls<M, N, BUF, PEER>,
    id: Option<CallId>,
}

impl<M: RawMutex, const N: usize, const BUF: usize, const PEER: usize> Drop for InFlight<'_, M, N, BUF, PEER> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.calls.abandon(id);
        }
    }
}
