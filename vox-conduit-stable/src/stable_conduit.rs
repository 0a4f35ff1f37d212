//! `StableConduit` and its halves: the application's side of the conduit.

use crate::driver::{Acceptor, Initiator, Role, StableDriver};
use crate::reserve::Reserve;
use crate::session::SessionState;
use crate::stable_storage::{Part, StableStore};
use crate::{ConfigError, RecvError, SendError, StableConfig, StableStats};
use core::future::{Future, poll_fn};
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};
use vox_types::{
    Conduit, ConduitRx, ConduitTx, ConduitTxPermit, MaybeSend, MaybeSync, MsgFamily, RecvResult, SelfRef, StorageRef,
};

/// Typed messages of family `F`, exactly once and in order across link
/// failures, on storage `S` (a [`StableStorage`](crate::StableStorage)).
/// Made together with the [`StableDriver`] that must run for it to move.
///
/// A device and a host over in-memory links, on one thread; a
/// `vox_link_embedded::sim::SimClock` that nobody advances is enough,
/// since only timers (acks, keepalives, timeouts) need time:
///
/// ```
/// use embassy_futures::join::join4;
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use std::sync::Arc;
/// use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
/// use vox_link_embedded::sim::{SimClock, memory_link_source};
/// use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};
///
/// #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
/// struct Reading<'a> { sensor: u8, label: &'a str }
/// vox_types::msg_family!(ReadingFamily => Reading<'a>);
///
/// type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;
/// type Readings = StableConduit<ReadingFamily, Storage>;
/// let config = StableConfig::DEFAULT;
/// let (device, device_driver) = Readings::initiator(Arc::new(Storage::new()), config)?;
/// let (host, host_driver) = Readings::acceptor(Arc::new(Storage::new()), config)?;
/// // A dialer and a listener of memory links (each MTU fits a message and its header).
/// let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
/// let rng: rand_chacha::ChaCha8Rng = rand_core::SeedableRng::seed_from_u64(7);
/// let clock = SimClock::new();
///
/// let device_app = async {
///     let (tx, mut rx) = device.split();
///     tx.reserve().await.unwrap().send(Reading { sensor: 3, label: "temp" }).unwrap();
///     drop(tx); // closes this direction after the message
///     assert!(rx.recv().await.unwrap().is_none(), "the host closed too");
/// };
/// let host_app = async {
///     let (tx, mut rx) = host.split();
///     let msg = rx.recv().await.unwrap().unwrap();
///     assert_eq!(msg.get::<ReadingFamily>(), &Reading { sensor: 3, label: "temp" });
///     drop(tx);
///     assert!(rx.recv().await.unwrap().is_none());
/// };
/// let (device_end, host_end, (), ()) = futures::executor::block_on(join4(
///     device_driver.run(dialer, clock.clone()),
///     host_driver.run(listener, rng, clock.clone()),
///     device_app,
///     host_app,
/// ));
/// // Both directions closed and acknowledged: both drivers finish.
/// assert_eq!((device_end, host_end), (Ok(()), Ok(())));
/// # Ok::<(), vox_conduit_stable::ConfigError>(())
/// ```
///
/// # Liveness
///
/// Flow control is by credit: a side sends a message only when its peer's
/// receive ring has room for it, and the link is always read, so acks and
/// window updates are never stuck behind data. An application with a
/// sending task and a receiving task (or that reads everything it is sent)
/// never stalls, whatever the buffer sizes.
///
/// One task that sends `N` messages before reading any reply (pipelined
/// request/response) completes when every request and reply fits in the
/// buffers between the two applications:
///
/// ```text
/// N <= (TX_MSGS_a - 1) + RX_MSGS_b + (TX_MSGS_b - 1) + RX_MSGS_a
/// ```
///
/// messages (`a` the client, `b` the server; each replay ring keeps one
/// entry for the close marker), provided bytes do not bind first: a
/// reservation needs `max_message` contiguous bytes of replay room, and a
/// receive ring grants what it is sure to hold (its free bytes less one
/// largest message where it wraps). Beyond the bound both replay rings
/// fill while each application waits for the other, as TCP does when both
/// socket buffers are full; the conduit then counts a
/// [`self_stalls`](StableStats::self_stalls) (and logs it with defmt).
// r[impl stable.flow.pipeline]
pub struct StableConduit<F, S: StableStore + 'static> {
    tx: StableTx<F, S>,
    rx: StableRx<F, S>,
}

impl<F: MsgFamily, S: StableStore + 'static> StableConduit<F, S> {
    fn make<R: Role>(
        storage: StorageRef<S>,
        config: StableConfig,
    ) -> Result<(Self, StableDriver<F, S, R>), ConfigError> {
        config.check()?;
        let (max_message, replay_bytes, receive_bytes) =
            (config.max_message, storage.tx_capacity(), storage.rx_capacity());
        if max_message > replay_bytes {
            return Err(ConfigError::MessageLargerThanReplay { max_message, replay_bytes });
        }
        if max_message > receive_bytes {
            return Err(ConfigError::MessageLargerThanReceive { max_message, receive_bytes });
        }
        let (tx_entries, rx_entries) = storage.entries();
        if tx_entries < 2 {
            return Err(ConfigError::TooFewReplayEntries { entries: tx_entries });
        }
        if rx_entries == 0 {
            return Err(ConfigError::NoReceiveEntries);
        }
        // r[impl types.selfref]
        storage.reset(SessionState::new(R::ROLE, config, F::FINGERPRINT, receive_bytes))?;
        let conduit = Self {
            tx: StableTx { storage: storage.clone(), _family: PhantomData },
            rx: StableRx { storage: storage.clone(), stream_done: false, _family: PhantomData },
        };
        Ok((conduit, StableDriver::new(storage)))
    }

    /// The side that dials: a conduit on `storage` (a `&'static` or an
    /// `Arc`; it is reset, so it serves one session at a time: while the
    /// earlier session's conduit halves or driver are alive, or the
    /// application still holds a message it received, this is refused
    /// with [`ConfigError::StorageInUse`]) and its
    /// driver, which needs no random numbers. A configuration that cannot
    /// work with this storage is refused here, before anything is sent.
    pub fn initiator(
        storage: impl Into<StorageRef<S>>,
        config: StableConfig,
    ) -> Result<(Self, StableDriver<F, S, Initiator>), ConfigError> {
        Self::make(storage.into(), config)
    }

    /// The side that listens: a conduit on `storage` and its driver, which
    /// makes resume keys from a CSPRNG. Checked like
    /// [`initiator`](Self::initiator).
    pub fn acceptor(
        storage: impl Into<StorageRef<S>>,
        config: StableConfig,
    ) -> Result<(Self, StableDriver<F, S, Acceptor>), ConfigError> {
        Self::make(storage.into(), config)
    }

    /// Counters of the conduit.
    pub fn stats(&self) -> StableStats {
        self.tx.storage.stats()
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn storage_ref(&self) -> StorageRef<S> {
        self.tx.storage.clone()
    }

    /// A handle that reads the counters, also after the conduit is split.
    pub fn stats_handle(&self) -> StableStatsHandle<S> {
        StableStatsHandle { storage: self.tx.storage.clone() }
    }
}

/// Reads a stable conduit's counters from anywhere.
pub struct StableStatsHandle<S: StableStore + 'static> {
    storage: StorageRef<S>,
}

impl<S: StableStore + 'static> Clone for StableStatsHandle<S> {
    fn clone(&self) -> Self {
        Self { storage: self.storage.clone() }
    }
}

impl<S: StableStore + 'static> StableStatsHandle<S> {
    /// Current counters.
    pub fn get(&self) -> StableStats {
        self.storage.stats()
    }
}

impl<F, S> Conduit for StableConduit<F, S>
where
    F: MsgFamily,
    S: StableStore + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Tx = StableTx<F, S>;
    type Rx = StableRx<F, S>;

    fn split(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }
}

/// Sending half of a [`StableConduit`]; dropping it closes the direction.
///
/// Any number of tasks may wait in [`reserve`](ConduitTx::reserve) at
/// once (share the half by reference): they queue, oldest first, each
/// woken alone when room frees, with no allocation and none polled in
/// vain more than once per message.
pub struct StableTx<F, S: StableStore + 'static> {
    storage: StorageRef<S>,
    _family: PhantomData<fn() -> F>,
}

/// Receiving half of a [`StableConduit`]; dropping it makes the conduit
/// acknowledge and drop what arrives.
pub struct StableRx<F, S: StableStore + 'static> {
    storage: StorageRef<S>,
    /// The stream has ended (after the peer's close or the session's end).
    stream_done: bool,
    _family: PhantomData<fn() -> F>,
}

/// Room for one message in the replay ring; dropping it sends nothing.
pub struct StablePermit<'a, F, S: StableStore + 'static> {
    tx: &'a StableTx<F, S>,
}

impl<F: MsgFamily, S: StableStore + 'static> StableTx<F, S> {
    /// Counters of the conduit.
    pub fn stats(&self) -> StableStats {
        self.storage.stats()
    }
}

impl<F, S> ConduitTx for StableTx<F, S>
where
    F: MsgFamily,
    S: StableStore + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Permit<'a>
        = StablePermit<'a, F, S>
    where
        Self: 'a;
    type Error = SendError;

    /// Waits for room for one message of the configured maximum size in the
    /// replay ring: the backpressure point. The ring drains as the peer
    /// acknowledges, which it does as soon as a message is in its receive
    /// ring, so this waits only for the peer's application to read
    /// (see [`StableConduit`]'s liveness section), never for our own.
    /// Cancel-safe.
    // r[impl core.burst]
    fn reserve(&self) -> impl Future<Output = Result<Self::Permit<'_>, SendError>> + MaybeSend + '_ {
        // A future of its own, not an `async fn`: an `async fn`'s state
        // would keep `self` twice beside the wait, in every task that
        // awaits `reserve`.
        ReservePermit { tx: self, reserve: Reserve::new(&*self.storage) }
    }

    /// Queues the end-of-stream marker after every message sent so far;
    /// the peer's `recv` returns `Ok(None)` after them.
    async fn close(self) -> Result<(), SendError> {
        drop(self);
        Ok(())
    }
}

/// `reserve`'s future: the wait, then the permit.
struct ReservePermit<'a, F, S: StableStore + 'static> {
    tx: &'a StableTx<F, S>,
    reserve: Reserve<'a, S>,
}

impl<'a, F, S: StableStore + 'static> Future for ReservePermit<'a, F, S> {
    type Output = Result<StablePermit<'a, F, S>, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `reserve` is pinned structurally: it is never moved out
        // of `self` (no `Drop` or `Unpin` impl here moves it).
        let this = unsafe { self.get_unchecked_mut() };
        let tx = this.tx;
        // Hosts: the reservation the last send took early, if any.
        #[cfg(feature = "std")]
        if this.reserve.claim_early() {
            return Poll::Ready(Ok(StablePermit { tx }));
        }
        // SAFETY: as above.
        let reserve = unsafe { Pin::new_unchecked(&mut this.reserve) };
        reserve.poll(cx).map(|reserved| reserved.map(|()| StablePermit { tx }))
    }
}

impl<F: MsgFamily, S: StableStore + 'static> ConduitTxPermit for StablePermit<'_, F, S> {
    type Msg = F;
    type Error = SendError;

    /// Encodes the message straight into the replay ring and queues it.
    fn send(self, item: F::Msg<'_>) -> Result<(), SendError> {
        let encode = |buf: &mut [u8]| {
            let max = buf.len();
            F::encode(&item, buf).map_err(|error| match error {
                postcard::Error::SerializeBufferFull => SendError::TooLarge { max },
                error => SendError::Encode { family: F::NAME, error },
            })
        };
        // The reservation ends here, under the same lock as the push.
        let pushed = self.tx.storage.lock(|l| {
            // Neither pushing nor ending a reservation brings a deadline
            // forward (the transmitter is woken instead).
            l.timer_unchanged();
            #[cfg(feature = "std")]
            l.data_path_only();
            let pushed = l.session.push_message(encode);
            // Hosts: with nobody waiting behind it, the reservation is
            // kept for the next message (see `early_permit`).
            #[cfg(feature = "std")]
            if pushed.is_ok() && !l.wakers.writers.has_waiters() && l.session.reserve_again() {
                self.tx.storage.early_permit().offer();
                return pushed;
            }
            l.session.end_reserve();
            pushed
        });
        // Ended already: the permit's `Drop` (an abandoned reservation,
        // which also runs if `encode` panics) has nothing left to do.
        core::mem::forget(self);
        pushed
    }
}

impl<F, S: StableStore + 'static> Drop for StablePermit<'_, F, S> {
    fn drop(&mut self) {
        self.tx.storage.lock(|l| l.session.end_reserve());
    }
}

impl<F, S: StableStore + 'static> Drop for StableTx<F, S> {
    fn drop(&mut self) {
        self.storage.part_gone(Part::Tx);
    }
}

impl<F, S> ConduitRx for StableRx<F, S>
where
    F: MsgFamily,
    S: StableStore + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Error = RecvError;

    /// The next message, exactly once and in order; `Ok(None)` after the
    /// peer closed; [`SessionError::SessionLost`](crate::SessionError::SessionLost)
    /// if the session ended. The message borrows its slot of the receive
    /// ring until it is dropped; messages that arrive meanwhile wait in
    /// the rest of the ring, and the link goes on being read. Cancel-safe.
    // r[impl stable.exactly-once]
    // r[impl stable.flow.no-stall]
    fn recv(&mut self) -> impl Future<Output = RecvResult<F, RecvError>> + MaybeSend + '_ {
        poll_fn(move |cx| self.poll_recv(cx))
    }
}

impl<F: MsgFamily, S: StableStore + MaybeSync + 'static> StableRx<F, S> {
    /// The poll form of [`recv`](ConduitRx::recv), for a hand-written
    /// future or a [`Stream`](futures_core::Stream): `Ready` with the next
    /// message, `Ok(None)` after the peer closed, or the session's end;
    /// `Pending` (with `cx`'s waker registered) while nothing is there.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<RecvResult<F, RecvError>> {
        let received = self.storage.lock(|l| {
            // Taking a message brings no deadline forward.
            l.timer_unchanged();
            #[cfg(feature = "std")]
            l.data_path_only();
            if let Some(r) = l.session.pop_received() {
                return Poll::Ready(Ok(Some(r)));
            }
            if l.session.peer_closed() {
                return Poll::Ready(Ok(None));
            }
            if let Some(e) = l.session.state.ended() {
                return Poll::Ready(Err(RecvError::Session(*e)));
            }
            l.wakers.reader.register(cx.waker());
            Poll::Pending
        });
        let r = match received {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(None)),
            Poll::Ready(Ok(Some(r))) => r,
        };
        let ptr = self.storage.received_ptr(r.start);
        // SAFETY: the receive ring lent `r.len` bytes at `r.start` under
        // `r.token` and writes none of them until `release_slot(r.token)`
        // (the backing's drop); `StableStorage` is `Sync` when shared
        // across threads.
        let backing = unsafe { self.storage.lend(ptr, r.len, r.token) };
        Poll::Ready(SelfRef::<F>::try_new(backing, decode_exact::<F>).map(Some))
    }
}

/// The received messages as a stream: `Some(Ok(msg))` per message, in
/// order; `Some(Err(_))` for a message that does not decode (the stream
/// goes on); the session's end is one `Some(Err(_))`, then the stream
/// ends (`None`), as it does after the peer closed.
///
/// ```
/// # async fn demo<F: vox_types::MsgFamily, S: vox_conduit_stable::StableStore + Sync>(rx: vox_conduit_stable::StableRx<F, S>) {
/// use futures::StreamExt;
/// let mut rx = rx;
/// while let Some(msg) = rx.next().await {
///     let Ok(msg) = msg else { break };
///     let _value = msg.get::<F>();
/// }
/// # }
/// ```
// r[impl host.stream]
impl<F: MsgFamily, S: StableStore + MaybeSync + 'static> futures_core::Stream for StableRx<F, S> {
    type Item = Result<SelfRef<F>, RecvError>;

    fn poll_next(self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stream_done {
            return Poll::Ready(None);
        }
        let item = core::task::ready!(this.poll_recv(cx));
        this.stream_done = matches!(item, Ok(None) | Err(RecvError::Session(_)));
        Poll::Ready(item.transpose())
    }
}

impl<F, S: StableStore + 'static> Drop for StableRx<F, S> {
    fn drop(&mut self) {
        self.storage.part_gone(Part::Rx);
    }
}

/// Decodes a whole message into a [`RecvError::Decode`] naming the family.
fn decode_exact<F: MsgFamily>(bytes: &[u8]) -> Result<F::Msg<'_>, RecvError> {
    vox_types::decode_message::<F>(bytes).map_err(|error| RecvError::Decode { family: F::NAME, error })
}
