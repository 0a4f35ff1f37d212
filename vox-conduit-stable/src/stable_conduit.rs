//! `StableConduit` and its halves: the application's side of the conduit.

use crate::driver::StableDriver;
use crate::state::Shared;
use crate::{StableConfig, StableError, StableStats};
use core::cell::RefCell;
use core::future::poll_fn;
use core::marker::PhantomData;
use core::task::Poll;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use vox_types::{
    Conduit, ConduitRx, ConduitTx, ConduitTxPermit, MaybeSend, MaybeSync, MsgFamily, RecvResult, SelfRef, SessionRole,
    StorageRef,
};

/// Storage of one stable conduit: a replay buffer of `BYTES` bytes and
/// `FRAMES` frames (one is kept for the close marker), and room for `RX`
/// received messages. Put it in a `static` or use
/// [`StableConduit::new_shared`].
// r[impl stable.replay]
pub struct StableStorage<M: RawMutex, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    shared: Mutex<M, RefCell<Shared<BYTES, FRAMES, RX>>>,
}

impl<M: RawMutex, const BYTES: usize, const FRAMES: usize, const RX: usize> StableStorage<M, BYTES, FRAMES, RX> {
    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        Self { shared: Mutex::new(RefCell::new(Shared::new())) }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Shared<BYTES, FRAMES, RX>) -> R) -> R {
        self.shared.lock(|s| f(&mut s.borrow_mut()))
    }

    /// Counters of the conduit.
    pub fn stats(&self) -> StableStats {
        self.with(|s| s.stats)
    }
}

impl<M: RawMutex, const BYTES: usize, const FRAMES: usize, const RX: usize> Default
    for StableStorage<M, BYTES, FRAMES, RX>
{
    fn default() -> Self {
        Self::new()
    }
}

type Storage<M, const BYTES: usize, const FRAMES: usize, const RX: usize> =
    StorageRef<StableStorage<M, BYTES, FRAMES, RX>>;

/// Typed messages of family `F`, exactly once and in order across link
/// failures. Made together with the [`StableDriver`] that must run for it
/// to move.
pub struct StableConduit<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    tx: StableTx<F, M, BYTES, FRAMES, RX>,
    rx: StableRx<F, M, BYTES, FRAMES, RX>,
}

impl<F: MsgFamily, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize>
    StableConduit<F, M, BYTES, FRAMES, RX>
{
    fn make(
        storage: Storage<M, BYTES, FRAMES, RX>,
        role: SessionRole,
        config: StableConfig,
    ) -> (Self, StableDriver<F, M, BYTES, FRAMES, RX>) {
        let config = StableConfig { max_message: config.max_message.min(BYTES), ..config };
        storage.with(|s| {
            *s = Shared::new();
            s.config = config;
            s.rx_alive = true;
            s.role = role;
        });
        let conduit = Self {
            tx: StableTx { storage: storage.clone(), _family: PhantomData },
            rx: StableRx { storage: storage.clone(), _family: PhantomData },
        };
        (conduit, StableDriver::new(storage))
    }

    /// A conduit on static storage, and its driver. The storage is reset:
    /// use it for one session at a time.
    pub fn new_static(
        storage: &'static StableStorage<M, BYTES, FRAMES, RX>,
        role: SessionRole,
        config: StableConfig,
    ) -> (Self, StableDriver<F, M, BYTES, FRAMES, RX>) {
        Self::make(StorageRef::Static(storage), role, config)
    }

    /// A conduit on fresh heap storage, and its driver.
    #[cfg(feature = "alloc")]
    pub fn new_shared(role: SessionRole, config: StableConfig) -> (Self, StableDriver<F, M, BYTES, FRAMES, RX>) {
        Self::make(StorageRef::Shared(alloc::sync::Arc::new(StableStorage::new())), role, config)
    }

    /// Counters of the conduit.
    pub fn stats(&self) -> StableStats {
        self.tx.storage.stats()
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn storage_ref(&self) -> StorageRef<StableStorage<M, BYTES, FRAMES, RX>> {
        self.tx.storage.clone()
    }

    /// A handle that reads the counters, also after the conduit is split.
    pub fn stats_handle(&self) -> StableStatsHandle<M, BYTES, FRAMES, RX> {
        StableStatsHandle { storage: self.tx.storage.clone() }
    }
}

/// Reads a stable conduit's counters from anywhere.
pub struct StableStatsHandle<M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    storage: Storage<M, BYTES, FRAMES, RX>,
}

impl<M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> Clone
    for StableStatsHandle<M, BYTES, FRAMES, RX>
{
    fn clone(&self) -> Self {
        Self { storage: self.storage.clone() }
    }
}

impl<M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize>
    StableStatsHandle<M, BYTES, FRAMES, RX>
{
    /// Current counters.
    pub fn get(&self) -> StableStats {
        self.storage.stats()
    }

    /// Debug view of the sequence state: (next_seq, next_to_send, rx_next,
    /// replay frames, finished).
    #[doc(hidden)]
    pub fn seq_state(&self) -> (u32, u32, u32, usize, bool, bool, bool) {
        self.storage.with(|s| {
            (s.next_seq, s.next_to_send, s.rx_next, s.ring.frames(), s.finished(), s.tx_closed, s.peer_closed)
        })
    }
}

impl<F, M, const BYTES: usize, const FRAMES: usize, const RX: usize> Conduit for StableConduit<F, M, BYTES, FRAMES, RX>
where
    F: MsgFamily,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Tx = StableTx<F, M, BYTES, FRAMES, RX>;
    type Rx = StableRx<F, M, BYTES, FRAMES, RX>;

    fn split(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }
}

/// Sending half of a [`StableConduit`]; dropping it closes the direction.
pub struct StableTx<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    storage: Storage<M, BYTES, FRAMES, RX>,
    _family: PhantomData<fn() -> F>,
}

/// Receiving half of a [`StableConduit`].
pub struct StableRx<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    storage: Storage<M, BYTES, FRAMES, RX>,
    _family: PhantomData<fn() -> F>,
}

/// Room for one message in the replay buffer; dropping it sends nothing.
pub struct StablePermit<'a, F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    tx: &'a StableTx<F, M, BYTES, FRAMES, RX>,
}

impl<F: MsgFamily, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize>
    StableTx<F, M, BYTES, FRAMES, RX>
{
    /// Counters of the conduit.
    pub fn stats(&self) -> StableStats {
        self.storage.stats()
    }
}

impl<F, M, const BYTES: usize, const FRAMES: usize, const RX: usize> ConduitTx for StableTx<F, M, BYTES, FRAMES, RX>
where
    F: MsgFamily,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Permit<'a>
        = StablePermit<'a, F, M, BYTES, FRAMES, RX>
    where
        Self: 'a;
    type Error = StableError;

    /// Waits for room for one message of the configured maximum size in the
    /// replay buffer: the backpressure point. Cancel-safe.
    async fn reserve(&self) -> Result<Self::Permit<'_>, StableError> {
        poll_fn(|cx| {
            self.storage.with(|s| {
                if let Some(e) = s.fatal.get() {
                    return Poll::Ready(Err(e.clone()));
                }
                if s.tx_closed {
                    return Poll::Ready(Err(StableError::Closed));
                }
                if !s.writer_active && s.ring.has_room(s.config.max_message, 1) {
                    s.writer_active = true;
                    return Poll::Ready(Ok(()));
                }
                s.writer.register(cx.waker());
                Poll::Pending
            })
        })
        .await?;
        Ok(StablePermit { tx: self })
    }

    /// Queues the end-of-stream marker after every message sent so far;
    /// the peer's `recv` returns `Ok(None)` after them.
    async fn close(self) -> Result<(), StableError> {
        drop(self);
        Ok(())
    }
}

impl<F: MsgFamily, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> ConduitTxPermit
    for StablePermit<'_, F, M, BYTES, FRAMES, RX>
{
    type Msg = F;
    type Error = StableError;

    /// Encodes the message straight into the replay buffer and queues it.
    fn send(self, item: F::Msg<'_>) -> Result<(), StableError> {
        let encode_error = |error| StableError::Encode { family: F::NAME, error };
        let len = postcard::experimental::serialized_size(&item).map_err(encode_error)?;
        self.tx.storage.with(|s| {
            let max = s.config.max_message;
            if len > max {
                return Err(StableError::MessageTooLarge { len, max });
            }
            let seq = s.next_seq;
            let encode = |buf: &mut [u8]| postcard::to_slice(&item, buf).map(|_| ()).map_err(encode_error);
            if !s.ring.push(seq, len, encode)? {
                // `reserve` guaranteed room; a full ring here is a bug, not
                // a peer's doing, so report it rather than lose the message.
                return Err(StableError::Protocol);
            }
            s.next_seq = seq.wrapping_add(1);
            s.ring_changed();
            s.driver_tx.wake();
            Ok(())
        })
    }
}

impl<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> Drop
    for StablePermit<'_, F, M, BYTES, FRAMES, RX>
{
    fn drop(&mut self) {
        self.tx.storage.with(|s| {
            s.writer_active = false;
            s.writer.wake();
        });
    }
}

impl<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> Drop
    for StableTx<F, M, BYTES, FRAMES, RX>
{
    fn drop(&mut self) {
        self.storage.with(|s| {
            if !s.tx_closed {
                s.tx_closed = true;
                let seq = s.next_seq;
                // `reserve` always keeps a frame entry free for this marker.
                if s.ring.push_close(seq) {
                    s.next_seq = seq.wrapping_add(1);
                }
                s.ring_changed();
                s.driver_tx.wake();
                s.writer.wake();
            }
        });
    }
}

impl<F, M, const BYTES: usize, const FRAMES: usize, const RX: usize> ConduitRx for StableRx<F, M, BYTES, FRAMES, RX>
where
    F: MsgFamily,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Msg = F;
    type Error = StableError;

    /// The next message, exactly once and in order; `Ok(None)` after the
    /// peer closed; [`StableError::SessionLost`] if the session ended.
    // r[impl stable.exactly-once]
    async fn recv(&mut self) -> RecvResult<F, StableError> {
        let backing = poll_fn(|cx| {
            self.storage.with(|s| {
                if let Some(b) = s.rx_queue.pop_front() {
                    s.driver_rx.wake();
                    return Poll::Ready(Ok(Some(b)));
                }
                if s.peer_closed {
                    return Poll::Ready(Ok(None));
                }
                if let Some(e) = s.fatal.get() {
                    return Poll::Ready(Err(e.clone()));
                }
                s.reader.register(cx.waker());
                Poll::Pending
            })
        })
        .await?;
        let Some(backing) = backing else { return Ok(None) };
        SelfRef::try_new::<F, _>(backing, decode_exact::<F>).map(Some)
    }
}

impl<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> Drop
    for StableRx<F, M, BYTES, FRAMES, RX>
{
    fn drop(&mut self) {
        self.storage.with(|s| {
            s.rx_alive = false;
            s.rx_queue.clear();
            s.driver_rx.wake();
            s.driver_tx.wake();
        });
    }
}

/// Decodes a whole message into a [`StableError::Decode`] naming the family.
fn decode_exact<F: MsgFamily>(bytes: &[u8]) -> Result<F::Msg<'_>, StableError> {
    vox_types::decode_message::<F>(bytes).map_err(|error| StableError::Decode { family: F::NAME, error })
}
