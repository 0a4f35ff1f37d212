//! `StableAcceptor`: accepts stable sessions from a link source (a TCP
//! listener) and routes each new link to its session by resume key, in a
//! table of at most `N` resumable sessions that expires the oldest.

use crate::primed_link::PrimedLink;
use crate::session::Outgoing;
use crate::stable_storage::StableStore;
use crate::wire::{Hello, RejectReason, WireFrame};
use crate::{Acceptor, SessionError, SharedLinkChannel, StableConduit, StableConfig, StableDriver};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_hal_async::delay::DelayNs;
use heapless::{Deque, Vec};
use vox_types::{
    ConduitMode, Link, LinkError, LinkRx, LinkSource, LinkTx, LinkTxPermit, MaybeSend, MaybeSync, MsgFamily,
    PROLOGUE_MAGIC, PROLOGUE_MAX_LEN, Prologue, SessionRole, StorageRef, WriteSlot,
};

/// What [`StableAcceptor::accept`] yields: a new session's conduit, its
/// driver, and the link source to run the driver on.
pub type AcceptedSession<F, St, M, L> = (StableConduit<F, St>, StableDriver<F, St, Acceptor>, SessionLinks<M, L>);

/// A link of an accepted session (its hello already read by the acceptor).
pub type AcceptedLink<L> = PrimedLink<<L as Link>::Tx, <L as Link>::Rx>;
/// Where an accepted session's driver takes its links from.
pub type SessionLinks<M, L> = SharedLinkChannel<M, AcceptedLink<L>>;

struct Session<St: StableStore + 'static, M: RawMutex + 'static, L: Link> {
    storage: StorageRef<St>,
    links: SessionLinks<M, L>,
    /// Accept order: the smallest is the oldest.
    born: u64,
}

/// Accepts stable sessions: a new session for a hello without a key,
/// routing to its session for a known key, a rejection for an unknown one.
/// Each session gets fresh storage of type `St` (a
/// [`StableStorage`](crate::StableStorage)) on the heap.
// r[impl stable.acceptor]
pub struct StableAcceptor<S, F, St, M, D, const N: usize>
where
    S: LinkSource,
    St: StableStore + 'static,
    M: RawMutex + 'static,
{
    source: S,
    delay: D,
    config: StableConfig,
    sessions: Vec<Session<St, M, S::Link>, N>,
    accepted: u64,
    _family: core::marker::PhantomData<fn() -> F>,
}

impl<S, F, St, M, D, const N: usize> StableAcceptor<S, F, St, M, D, N>
where
    S: LinkSource,
    S::Link: MaybeSend,
    F: MsgFamily,
    St: StableStore + Default + 'static,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
    D: DelayNs,
{
    /// Accepts from `source`; `delay` bounds how long a new link may take
    /// to say hello (`config.timeout_ms`).
    pub fn new(source: S, delay: D, config: StableConfig) -> Self {
        Self { source, delay, config, sessions: Vec::new(), accepted: 0, _family: core::marker::PhantomData }
    }

    /// Sessions in the table.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The next new session: its conduit, its driver, and the link source
    /// to run the driver on (`driver.run(links, rng, delay)`). Links that
    /// resume a known session are handed to it on the way.
    pub async fn accept(&mut self) -> Result<AcceptedSession<F, St, M, S::Link>, SessionError> {
        loop {
            let link = match self.source.next_link().await {
                Ok(link) => link,
                Err(LinkError::Closed) => return Err(SessionError::SourceClosed),
                Err(_) => continue,
            };
            let Some((link, hello)) = self.read_hello(link).await else { continue };
            match hello.key {
                None => return self.new_session(link),
                Some(key) => {
                    let known = self.sessions.iter_mut().find(|s| s.storage.lock(|l| l.session.state.knows_key(&key)));
                    match known {
                        Some(session) => {
                            // The newest link replaces one not yet taken.
                            let _ = session.links.try_receive();
                            let _ = session.links.try_offer(link);
                        }
                        None => {
                            // Tell the initiator, unless its link is stuck:
                            // the accept loop must not wait on one link.
                            let (tx, _rx) = link.split();
                            let reject = Outgoing::Frame(WireFrame::Reject(RejectReason::SessionUnknown));
                            let reserved = select(tx.reserve(), self.delay.delay_ms(self.config.timeout_ms)).await;
                            if let Either::First(Ok(permit)) = reserved {
                                let _ = crate::driver::write_out(permit, &reject);
                            }
                        }
                    }
                }
            }
        }
    }
    /// Reads the initiator's prologue and hello (skipping stale frames),
    /// and returns the link primed with both.
    async fn read_hello(&mut self, link: S::Link) -> Option<(AcceptedLink<S::Link>, Hello)> {
        let (tx, mut rx) = link.split();
        let local = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, F::FINGERPRINT);
        let read = async {
            let mut pending = Deque::<_, 2>::new();
            loop {
                let payload = rx.recv().await.ok()??;
                if payload.as_bytes().starts_with(&PROLOGUE_MAGIC) {
                    let peer = Prologue::decode(payload.as_bytes());
                    // Answer every prologue that decodes, refused or not:
                    // a good one lets the initiator go on to its hello
                    // (the session's driver answers again; repeats are
                    // taken for what they are); a refused one lets the
                    // initiator find the same mismatch at once.
                    // r[impl stable.refusal]
                    let mut buf = [0u8; PROLOGUE_MAX_LEN];
                    let n = local.encode(&mut buf).ok()?;
                    if peer.is_ok() {
                        let mut slot = tx.reserve().await.ok()?.alloc(n).ok()?;
                        slot.as_mut_slice().copy_from_slice(buf.get(..n)?);
                        slot.commit();
                    }
                    local.check_peer(&peer.ok()?).ok()?;
                    pending.clear();
                    pending.push_back(payload).ok()?;
                    continue;
                }
                if pending.is_empty() {
                    continue;
                }
                if let Ok(WireFrame::Hello(hello)) = WireFrame::decode(payload.as_bytes()) {
                    pending.push_back(payload).ok()?;
                    return Some((pending, hello));
                }
            }
        };
        let (pending, hello) = match select(read, self.delay.delay_ms(self.config.timeout_ms)).await {
            Either::First(found) => found?,
            Either::Second(()) => return None,
        };
        Some((PrimedLink::new(tx, rx, pending), hello))
    }

    fn new_session(&mut self, link: AcceptedLink<S::Link>) -> Result<AcceptedSession<F, St, M, S::Link>, SessionError> {
        // Forget sessions that ended; expire the oldest if still full.
        self.sessions.retain(|s| s.storage.lock(|l| l.session.state.ended().is_none()));
        let oldest = self.sessions.iter().enumerate().min_by_key(|(_, s)| s.born).map(|(i, _)| i);
        if let (true, Some(oldest)) = (self.sessions.is_full(), oldest) {
            let expired = self.sessions.swap_remove(oldest);
            expired.storage.lock(|l| l.session.state.end(SessionError::SessionLost));
        }
        let storage = StorageRef::Shared(alloc::sync::Arc::new(St::default()));
        let (conduit, driver) = StableConduit::acceptor(storage, self.config).map_err(SessionError::Config)?;
        let links: SessionLinks<M, S::Link> = SharedLinkChannel::new();
        let _ = links.try_offer(link);
        self.accepted += 1;
        let session = Session { storage: conduit.storage_ref(), links: links.clone(), born: self.accepted };
        // Room was made above.
        let _ = self.sessions.push(session);
        Ok((conduit, driver, links))
    }
}
