//! Calls over stable sessions, one after another (feature `stable`): the
//! loop every device and host writes around [`run`](crate::run), in the
//! library: a new session after each one ends, on the same storage, link
//! source, table of calls and server, until a new session cannot help.

use crate::{Calls, Dispatch, RpcFamily, RunError, Server};
use core::fmt;
use core::pin::Pin;
use embassy_futures::join::join;
use embassy_sync::blocking_mutex::raw::RawMutex;
use rand_core::CryptoRng;
use vox_conduit_stable::{SessionError, StableConduit, StableConfig, StableStore};
use vox_types::{Clock, LinkSource, MaybeSend, MaybeSync, StorageRef};

/// Why sessions stopped: a new one would end the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionsEnded {
    /// The conduit: the peer refused us (another schema, mode, version or
    /// role), the configuration cannot work with the storage, or the link
    /// source is exhausted.
    Session(SessionError),
    /// The calls: the peer speaks another rpc envelope version, broke the
    /// protocol, or this side's greeting does not fit the conduit.
    Calls(RunError),
}

impl fmt::Display for SessionsEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::Calls(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for SessionsEnded {}

/// After a session: why no new one can help, or `None` once it is time
/// for the next (a moment after a failed one: a busy acceptor, a lost
/// session).
async fn after_session<C: Clock>(
    session: Result<(), SessionError>,
    calls: Result<(), RunError>,
    config: &StableConfig,
    clock: &C,
) -> Option<SessionsEnded> {
    let failed = session.is_err();
    if let Some(e) = final_end(session, calls) {
        return Some(e);
    }
    if failed {
        clock.sleep_until(clock.now().add_millis(u64::from(config.retry_delay_ms))).await;
    }
    None
}

/// Whether a session's end leaves nothing for a new one to do.
fn final_end(session: Result<(), SessionError>, calls: Result<(), RunError>) -> Option<SessionsEnded> {
    match (session, calls) {
        (Err(e @ (SessionError::Refused(_) | SessionError::Config(_) | SessionError::SourceClosed)), _) => {
            Some(SessionsEnded::Session(e))
        }
        (_, Err(e)) if e.is_final() => Some(SessionsEnded::Calls(e)),
        _ => None,
    }
}

/// The dialing side (a device): stable sessions on `storage` (reset for
/// each), links from `links`, one after another, each carrying calls from
/// `calls` and to `server` (see [`run`](crate::run)), waiting
/// `config.retry_delay_ms` after a session that failed (a busy acceptor
/// refused it, the peer restarted); returns why a new
/// session cannot help (a refusal, a configuration the storage cannot
/// serve, an exhausted link source, another rpc envelope version, a peer
/// that broke the protocol).
///
/// ```no_run
/// # use core::pin::pin;
/// # use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
/// # use vox_conduit_stable::{StableConfig, StableStorage};
/// # use vox_link_embedded::{FramedLink, SharedLinkChannel};
/// # use vox_link_embedded::host::TokioClock;
/// # use vox_rpc::{Calls, Server};
/// vox_rpc::declare! { pub endpoint Double = "double": u32 => u32; }
///
/// static STORAGE: StableStorage<M, 1024, 16, 512, 8> = StableStorage::new();
/// static CALLS: Calls<M, 1, 24> = Calls::new();
///
/// # async fn device(links: SharedLinkChannel<M, FramedLink<M, 2, 256>>) {
/// let server = pin!(Server::new().serve::<Double, _>(|n| Ok(*n * 2)));
/// let why = vox_rpc::initiator_sessions(&STORAGE, StableConfig::DEFAULT, links, &CALLS, server, TokioClock).await;
/// # }
/// ```
pub async fn initiator_sessions<
    S,
    L,
    M,
    const N: usize,
    const BUF: usize,
    const PEER: usize,
    const WAIT: usize,
    D,
    const Q: usize,
    const A: usize,
    C,
>(
    storage: impl Into<StorageRef<S>>,
    config: StableConfig,
    mut links: L,
    calls: &Calls<M, N, BUF, PEER, WAIT>,
    mut server: Pin<&mut Server<D, Q, A>>,
    clock: C,
) -> SessionsEnded
where
    S: StableStore + MaybeSend + MaybeSync + 'static,
    L: LinkSource,
    M: RawMutex,
    D: Dispatch,
    C: Clock + Clone,
{
    let storage = storage.into();
    loop {
        let (conduit, driver) = match StableConduit::<RpcFamily, S>::initiator(storage.clone(), config) {
            Ok(made) => made,
            Err(e) => return SessionsEnded::Session(SessionError::Config(e)),
        };
        let running = crate::run(conduit, calls, server.as_mut(), clock.clone());
        let (session, calls) = join(driver.run(&mut links, clock.clone()), running).await;
        if let Some(e) = after_session(session, calls, &config, &clock).await {
            return e;
        }
    }
}

/// The listening side (a host talking to one device): like
/// [`initiator_sessions`], and `rng` makes the random number generator
/// that makes each session's resume keys (a CSPRNG, e.g.
/// `ChaCha20Rng::from_os_rng`).
pub async fn acceptor_sessions<
    S,
    L,
    R,
    M,
    const N: usize,
    const BUF: usize,
    const PEER: usize,
    const WAIT: usize,
    D,
    const Q: usize,
    const A: usize,
    C,
>(
    storage: impl Into<StorageRef<S>>,
    config: StableConfig,
    mut links: L,
    mut rng: impl FnMut() -> R,
    calls: &Calls<M, N, BUF, PEER, WAIT>,
    mut server: Pin<&mut Server<D, Q, A>>,
    clock: C,
) -> SessionsEnded
where
    S: StableStore + MaybeSend + MaybeSync + 'static,
    L: LinkSource,
    R: CryptoRng,
    M: RawMutex,
    D: Dispatch,
    C: Clock + Clone,
{
    let storage = storage.into();
    loop {
        let (conduit, driver) = match StableConduit::<RpcFamily, S>::acceptor(storage.clone(), config) {
            Ok(made) => made,
            Err(e) => return SessionsEnded::Session(SessionError::Config(e)),
        };
        let running = crate::run(conduit, calls, server.as_mut(), clock.clone());
        let (session, calls) = join(driver.run(&mut links, rng(), clock.clone()), running).await;
        if let Some(e) = after_session(session, calls, &config, &clock).await {
            return e;
        }
    }
}
