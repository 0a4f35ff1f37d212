//! `MemoryLinkSource`: hands out fresh in-memory link pairs, each with the
//! next faults of a schedule, to a dialing side and a listening side; the
//! deterministic stand-in for a reconnecting TCP dialer and its listener.

use crate::memory::{MemoryLink, MemoryLinkPair};
use crate::sim::FaultPlan;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use vox_types::{LinkError, LinkSource, MaybeSend, MaybeSync};

struct Shared<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    state: Mutex<M, RefCell<SourceState<M, SLOTS, MTU>>>,
}

struct SourceState<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    /// Faults of the next pairs, (dialer→listener, listener→dialer).
    schedule: VecDeque<(FaultPlan, FaultPlan)>,
    /// Listener ends waiting to be accepted.
    pending: VecDeque<MemoryLink<M, SLOTS, MTU>>,
    /// Storage of the newest pair handed out (a pair's storage goes with
    /// its two ends otherwise).
    newest: Option<Arc<MemoryLinkPair<M, SLOTS, MTU>>>,
    /// Pairs handed out so far.
    made: usize,
    dialer_gone: bool,
    listener: WakerRegistration,
}

/// The dialing side of a [`memory_link_source`].
pub struct MemoryDialer<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    shared: Arc<Shared<M, SLOTS, MTU>>,
}

/// The listening side of a [`memory_link_source`].
pub struct MemoryListener<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    shared: Arc<Shared<M, SLOTS, MTU>>,
}

/// A dialer and a listener of fresh in-memory links. The n-th pair gets the
/// n-th entry of `schedule`, and no faults once it runs out.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use vox_link_embedded::sim::{FaultPlan, memory_link_source};
/// use vox_types::{Link, LinkError, LinkRx, LinkSource, LinkTx, LinkTxPermit, WriteSlot};
///
/// async fn send(tx: &impl LinkTx, byte: u8) -> Result<(), LinkError> {
///     let mut slot = tx.reserve().await?.alloc(1)?;
///     slot.as_mut_slice()[0] = byte;
///     slot.commit();
///     Ok(())
/// }
///
/// # futures::executor::block_on(async {
/// // The first link dies at the dialer's first payload; the next is clean.
/// let schedule = [(FaultPlan::kill_after(0), FaultPlan::NONE)];
/// let (mut dialer, mut listener) = memory_link_source::<CriticalSectionRawMutex, 4, 64>(schedule);
/// // Both sides are link sources, as a stable conduit's drivers want.
/// let (tx, _rx) = dialer.next_link().await?.split();
/// let (_tx, mut rx) = listener.next_link().await?.split();
/// send(&tx, 1).await?;
/// assert_eq!(rx.recv().await, Err(LinkError::Reset));
///
/// let (tx, _rx) = dialer.next_link().await?.split();
/// let (_tx, mut rx) = listener.next_link().await?.split();
/// send(&tx, 2).await?;
/// assert_eq!(rx.recv().await?.unwrap().as_bytes(), [2]);
/// assert_eq!(dialer.links_made(), 2);
/// drop(dialer);
/// assert_eq!(listener.accept().await.err(), Some(LinkError::Closed), "no dialer, no more links");
/// # Ok::<(), LinkError>(())
/// # }).unwrap();
/// ```
// r[impl memlink.faults]
pub fn memory_link_source<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
    schedule: impl IntoIterator<Item = (FaultPlan, FaultPlan)>,
) -> (MemoryDialer<M, SLOTS, MTU>, MemoryListener<M, SLOTS, MTU>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(RefCell::new(SourceState {
            schedule: schedule.into_iter().collect(),
            pending: VecDeque::new(),
            newest: None,
            made: 0,
            dialer_gone: false,
            listener: WakerRegistration::new(),
        })),
    });
    (MemoryDialer { shared: shared.clone() }, MemoryListener { shared })
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> MemoryDialer<M, SLOTS, MTU> {
    /// A fresh link whose other end goes to the listener. Never waits.
    pub fn connect(&mut self) -> MemoryLink<M, SLOTS, MTU> {
        self.shared.state.lock(|s| {
            let mut s = s.borrow_mut();
            let (there, back) = s.schedule.pop_front().unwrap_or((FaultPlan::NONE, FaultPlan::NONE));
            let ((mine, theirs), pair) = MemoryLinkPair::new_shared_with_faults(there, back);
            s.pending.push_back(theirs);
            s.newest = Some(pair);
            s.made += 1;
            s.listener.wake();
            mine
        })
    }

    /// Number of links handed out so far.
    pub fn links_made(&self) -> usize {
        self.shared.state.lock(|s| s.borrow().made)
    }

    /// Kills the newest link (both directions), as a cable pull would.
    pub fn kill_current(&self) {
        if let Some(pair) = self.shared.state.lock(|s| s.borrow().newest.clone()) {
            pair.kill();
        }
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for MemoryDialer<M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.shared.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.dialer_gone = true;
            s.listener.wake();
        });
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> MemoryListener<M, SLOTS, MTU> {
    /// The next link a dialer made; [`LinkError::Closed`] once the dialer is
    /// gone and every link was accepted.
    pub async fn accept(&mut self) -> Result<MemoryLink<M, SLOTS, MTU>, LinkError> {
        poll_fn(|cx| {
            self.shared.state.lock(|s| {
                let mut s = s.borrow_mut();
                if let Some(link) = s.pending.pop_front() {
                    Poll::Ready(Ok(link))
                } else if s.dialer_gone {
                    Poll::Ready(Err(LinkError::Closed))
                } else {
                    s.listener.register(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }
}

impl<M: RawMutex + MaybeSend + MaybeSync + 'static, const SLOTS: usize, const MTU: usize> LinkSource
    for MemoryDialer<M, SLOTS, MTU>
{
    type Link = MemoryLink<M, SLOTS, MTU>;

    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        Ok(self.connect())
    }
}

impl<M: RawMutex + MaybeSend + MaybeSync + 'static, const SLOTS: usize, const MTU: usize> LinkSource
    for MemoryListener<M, SLOTS, MTU>
{
    type Link = MemoryLink<M, SLOTS, MTU>;

    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        self.accept().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use futures::executor::block_on;
    use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

    fn send<T: LinkTx>(tx: &T, b: u8) -> Result<(), LinkError> {
        let mut slot = block_on(tx.reserve())?.alloc(1)?;
        slot.as_mut_slice()[0] = b;
        slot.commit();
        Ok(())
    }

    // r[verify memlink.faults]
    #[test]
    fn source_hands_out_fresh_pairs_with_scheduled_faults() {
        let (mut dialer, mut listener) =
            memory_link_source::<CriticalSectionRawMutex, 4, 16>([(FaultPlan::kill_after(1), FaultPlan::NONE)]);
        let (tx1, _rx1) = dialer.connect().split();
        let (_ltx1, mut lrx1) = block_on(listener.accept()).unwrap().split();
        send(&tx1, 1).unwrap();
        send(&tx1, 2).unwrap(); // committed into a dying link: lost
        assert_eq!(send(&tx1, 3), Err(LinkError::Reset), "first link died after one payload");
        assert_eq!(block_on(lrx1.recv()).unwrap().unwrap().as_bytes(), &[1]);
        assert_eq!(block_on(lrx1.recv()), Err(LinkError::Reset));

        let (tx2, _rx2) = dialer.connect().split();
        let (_ltx2, mut lrx2) = block_on(listener.accept()).unwrap().split();
        send(&tx2, 3).unwrap();
        send(&tx2, 4).unwrap();
        assert_eq!(block_on(lrx2.recv()).unwrap().unwrap().as_bytes(), &[3]);
        dialer.kill_current();
        assert_eq!(block_on(lrx2.recv()).unwrap().unwrap().as_bytes(), &[4]);
        assert_eq!(block_on(lrx2.recv()), Err(LinkError::Reset));
        assert_eq!(dialer.links_made(), 2);
        drop(dialer);
        assert!(matches!(block_on(listener.accept()), Err(LinkError::Closed)));
    }
}
