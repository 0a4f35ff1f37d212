//! `Client`: makes calls through a [`Calls`](crate::Calls) table, from any
//! number of tasks, each with a deadline.

use crate::calls::{Answer, CallId, CallTable, Finished};
use crate::{CallError, Endpoint, EndpointKey};
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::{Context, Poll};
use core::time::Duration;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vox_types::{Clock, Instant, StorageRef};

/// Makes calls to the peer through table `T` (a [`Calls`](crate::Calls)),
/// on clock `C`: cheap to clone (a reference to the table and the clock).
/// On a host, with the table in an `Arc` and a `Send` clock, it is
/// `Clone + Send + Sync`, shared by any number of tasks, and outlives sessions:
/// calls pending when a session ends resolve at once, later calls go to
/// the next session run on the same table, and no id or answer of the old
/// session reaches them.
///
/// Every call has a deadline. A call first waits for a free entry of the
/// table, then for the session to be ready and the peer's window to have
/// room, then for the answer: all of it under the deadline.
///
/// **Cancelling.** Dropping a call's future frees its entry at once. If
/// its request was already sent, a cancel follows (best effort): the
/// server skips the request if it has not started it. Cancelling after
/// the request was sent does **not** undo a call that already started or
/// finished: treat it as "may have run". An answer that arrives after the
/// call was dropped is counted ([`CallStats::late_answers`](crate::CallStats))
/// and never given to another call.
// r[impl rpc.call]
// r[impl rpc.host]
pub struct Client<T: CallTable, C> {
    calls: StorageRef<T>,
    clock: C,
}

impl<T: CallTable, C: Clone> Clone for Client<T, C> {
    fn clone(&self) -> Self {
        Self { calls: self.calls.clone(), clock: self.clock.clone() }
    }
}

impl<T: CallTable, C: Clock> Client<T, C> {
    /// A client of `calls` (a `&'static` table or an `Arc`) on `clock`
    /// (the runner's clock).
    pub fn new(calls: impl Into<StorageRef<T>>, clock: C) -> Self {
        Self { calls: calls.into(), clock }
    }

    /// The table.
    pub fn calls(&self) -> &T {
        &self.calls
    }

    /// The bound ε (ms) on how late after a call's deadline the peer may
    /// still start it, now; `None` until the session's first clock sample.
    pub fn epsilon(&self) -> Option<u64> {
        self.calls.epsilon(self.clock.now())
    }

    /// Calls endpoint `E` with `request`, giving up `timeout` after this
    /// call (the deadline is taken here, not when the future is first polled):
    /// the response, owned.
    ///
    /// For endpoints whose response or error borrows (`&str`, `&[u8]`),
    /// use [`call_with`](Self::call_with).
    pub fn call<E>(
        &self,
        request: E::Req<'_>,
        timeout: Duration,
    ) -> impl Future<Output = Result<E::Resp<'static>, CallError<E::Err<'static>>>>
    where
        E: Endpoint,
        E::Resp<'static>: DeserializeOwned,
        E::Err<'static>: DeserializeOwned,
    {
        // The deadline is taken now, outside the future (it does not keep
        // the timeout), and the future is `call_raw`'s own (one level).
        let deadline = deadline_after(self.clock.now(), timeout);
        self.call_raw(E::KEY, request, deadline, |answer, bytes| match answer {
            Ok(()) => postcard::from_bytes::<E::Resp<'static>>(bytes).map_err(|_| CallError::BadResponse),
            Err(()) => {
                Err(postcard::from_bytes::<E::Err<'static>>(bytes).map_or(CallError::BadResponse, CallError::Handler))
            }
        })
    }

    /// Calls endpoint `E` with `request`, giving up `timeout` after
    /// this call (as [`call`](Self::call)), and
    /// hands the handler's outcome (borrowing the received bytes) to `f`;
    /// returns what `f` returns.
    pub fn call_with<E, R>(
        &self,
        request: E::Req<'_>,
        timeout: Duration,
        f: impl FnOnce(Result<E::Resp<'_>, E::Err<'_>>) -> R,
    ) -> impl Future<Output = Result<R, CallError>>
    where
        E: Endpoint,
    {
        // The deadline is taken now, outside the future (it does not keep
        // the timeout), and the future is `call_raw`'s own (one level).
        let deadline = deadline_after(self.clock.now(), timeout);
        self.call_raw(E::KEY, request, deadline, |answer, bytes| match answer {
            Ok(()) => postcard::from_bytes::<E::Resp<'_>>(bytes).map(|r| f(Ok(r))).map_err(|_| CallError::BadResponse),
            Err(()) => postcard::from_bytes::<E::Err<'_>>(bytes).map(|e| f(Err(e))).map_err(|_| CallError::BadResponse),
        })
    }

    /// Asks the peer for the list of its endpoints and topics, with their
    /// names and keys (for tooling: the built-in describe call); `f` gets
    /// each entry, borrowing the answer.
    ///
    /// ```no_run
    /// # async fn f(client: vox_rpc::Client<vox_rpc::Calls<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 4, 256>, vox_link_embedded::host::TokioClock>) {
    /// client.describe(core::time::Duration::from_secs(1), &mut |entry| {
    ///     println!("{:?} {} {}", entry.kind, entry.key, entry.name);
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn describe(
        &self,
        timeout: Duration,
        f: &mut dyn FnMut(crate::Described<'_>),
    ) -> impl Future<Output = Result<(), CallError>> {
        // The deadline is taken now, outside the future (it does not keep
        // the timeout), and the future is `call_raw`'s own (one level).
        let deadline = deadline_after(self.clock.now(), timeout);
        self.call_raw(crate::describe::DESCRIBE_KEY, (), deadline, |answer, bytes| match answer {
            Ok(()) if crate::describe::each(bytes, f) => Ok(()),
            _ => Err(CallError::BadResponse),
        })
    }

    fn call_raw<Q: Serialize + Sync, R, H>(
        &self,
        key: EndpointKey,
        request: Q,
        deadline: Instant,
        decode: impl FnOnce(Result<(), ()>, &[u8]) -> Result<R, CallError<H>>,
    ) -> impl Future<Output = Result<R, CallError<H>>> {
        async move {
            let mut encode = |buf: &mut [u8]| postcard::to_slice(&request, buf).ok().map(|b| b.len());
            // The wait, in this future (not one of its own: one state
            // machine); its steps in `exchange`, one copy for every call.
            let id = {
                let calls = &*self.calls;
                let mut call = CallGuard { calls, ticket: None, id: None };
                let mut timer = pin!(self.clock.sleep_until(deadline));
                let answered = poll_fn(|cx| exchange(&mut call, timer.as_mut(), key, deadline, &mut encode, cx)).await;
                match (call.id.take(), answered) {
                    (Some(id), _) => id,
                    (None, Exchange::TooLarge) => return Err(CallError::TooLarge),
                    (None, Exchange::Full) => return Err(CallError::Busy),
                    (None, _) => return Err(CallError::Timeout { committed: false }),
                }
            };
            self.calls.finish(id, |finished, bytes| match finished {
                Finished::Answer(Answer::Reply, _) => decode(Ok(()), bytes),
                Finished::Answer(Answer::Failed, _) => decode(Err(()), bytes),
                Finished::Answer(Answer::Refused(why), _) => Err(CallError::refused(why)),
                Finished::Answer(Answer::Unknown, _) => Err(CallError::Unknown),
                Finished::Answer(Answer::TooLarge, _) => Err(CallError::TooLarge),
                Finished::Answer(Answer::TooBig, _) => Err(CallError::BadResponse),
                Finished::Answer(Answer::Lost { kind, committed }, _) => Err(CallError::lost(kind, committed)),
                Finished::Pending { committed } | Finished::Gone(committed) => Err(CallError::Timeout { committed }),
            })
        }
    }
}

/// One poll of a call's wait, the part that does not depend on its types
/// (one copy in a firmware however many endpoints it calls): an entry,
/// the request encoded into it by `encode`, then the answer, all under
/// `timer` (the deadline). The entry holds the answer for `finish`.
fn exchange<T: CallTable, F: Future<Output = ()>>(
    call: &mut CallGuard<'_, T>,
    mut timer: Pin<&mut F>,
    key: EndpointKey,
    deadline: Instant,
    encode: &mut (dyn FnMut(&mut [u8]) -> Option<usize> + Send),
    cx: &mut Context<'_>,
) -> Poll<Exchange> {
    let calls = call.calls;
    if call.id.is_none() {
        // 1. An entry, then the request encoded into it.
        let id = match calls.poll_claim(&mut call.ticket, cx) {
            Poll::Ready(Ok(id)) => id,
            // `WAIT` callers wait already.
            Poll::Ready(Err(())) => return Poll::Ready(Exchange::Full),
            Poll::Pending => return timer.as_mut().poll(cx).map(|()| Exchange::TimedOut),
        };
        if !calls.queue(id, key, deadline, encode) {
            return Poll::Ready(Exchange::TooLarge);
        }
        call.id = Some(id);
    }
    // 2. The answer, or the deadline.
    match call.id {
        Some(id) if calls.poll_answer(id, cx).is_pending() => timer.as_mut().poll(cx).map(|()| Exchange::TimedOut),
        _ => Poll::Ready(Exchange::Answered),
    }
}

/// How the wait of a call ended.
enum Exchange {
    Answered,
    TimedOut,
    TooLarge,
    /// No entry, and `WAIT` callers wait already.
    Full,
}

/// `timeout` from `now`, in whole milliseconds rounded up (without the
/// 128-bit arithmetic of `Duration::as_millis`).
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    let millis =
        timeout.as_secs().saturating_mul(1000).saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)));
    now.add_millis(millis)
}

/// A call waiting for an entry (`ticket`) or holding one (`id`): when
/// dropped, it leaves the queue, or frees its entry at once (a committed
/// request gets a best-effort cancel).
struct CallGuard<'c, T: CallTable> {
    calls: &'c T,
    ticket: Option<u32>,
    id: Option<CallId>,
}

impl<T: CallTable> Drop for CallGuard<'_, T> {
    fn drop(&mut self) {
        if self.ticket.is_some() || self.id.is_some() {
            self.calls.give_up(self.ticket.take(), self.id.take());
        }
    }
}
