//! `BareConduit`: connects a link with the prologue and splits into halves.

use crate::{BareRx, BareTx, ConnectError};
use core::marker::PhantomData;
use embassy_futures::select::{Either, select};
use vox_types::{Clock, Conduit, ConduitMode, Link, MsgFamily, Prologue, SessionRole, exchange_prologue};

/// Typed messages of family `F` over link `L`; dies with the link.
///
/// # Liveness
///
/// An application with a sending task and a receiving task never stalls.
/// One task that sends `N` requests before reading any reply, against a
/// server that answers each request before reading the next, completes
/// only while every request and reply fits in the links between them:
///
/// ```text
/// N <= SLOTS(client -> server) + SLOTS(server -> client)
/// ```
///
/// link slots (the request the server holds while it waits to send
/// counts among the first; `tests/tests/bare_stall_bound.rs` sits on it:
/// `2 x SLOTS` complete, one more stalls). Over a framed link on a byte
/// stream the runners' buffers and, over TCP, the operating system's
/// socket buffers hold more, in bytes rather than messages: over TCP the
/// bound is the slots plus what both sockets' buffers hold. Beyond the
/// bound both sides wait on each other for ever: read replies in another
/// task (or interleave sends and receives) when you pipeline. The link
/// makes it visible: `FramedStats::stalled_reserves` (and
/// `MemoryLinkPair::stalled_reserves`) counts the `reserve` calls that
/// began waiting while the same end's receive slots were all unread.
// r[impl bare.stall-bound]
pub struct BareConduit<L: Link, F: MsgFamily> {
    tx: BareTx<L::Tx, F>,
    rx: BareRx<L::Rx, F>,
    peer: Prologue,
}

impl<L: Link, F: MsgFamily> BareConduit<L, F> {
    /// Exchanges prologues on a fresh link (mode bare, `role`, `F`'s schema
    /// fingerprint) and returns the conduit.
    ///
    /// Refused on both sides, with a typed error, when the peer wants
    /// another mode, has another schema fingerprint (both are named in the
    /// error), claims the same role, or sends garbage. Waits for the peer's
    /// prologue until the link ends; see
    /// [`connect_within`](Self::connect_within) for a time limit.
    ///
    /// Two ends of an in-memory link, connected and exchanging a message:
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_conduit_bare::BareConduit;
    /// use vox_link_embedded::MemoryLinkPair;
    /// use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};
    /// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
    /// # struct Ping(u32);
    /// # vox_types::msg_family!(PingFamily => Ping);
    ///
    /// let (host_end, device_end) = MemoryLinkPair::<CriticalSectionRawMutex, 2, 64>::new_shared();
    /// futures::executor::block_on(async {
    ///     let (host, device) = futures::join!(
    ///         BareConduit::<_, PingFamily>::connect(host_end, SessionRole::Acceptor),
    ///         BareConduit::<_, PingFamily>::connect(device_end, SessionRole::Initiator),
    ///     );
    ///     let (host_tx, _host_rx) = host?.split();
    ///     let (_device_tx, mut device_rx) = device?.split();
    ///     host_tx.reserve().await?.send(Ping(7))?;
    ///     let got = device_rx.recv().await?.expect("a message");
    ///     assert_eq!(got.get::<PingFamily>().0, 7);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // r[impl prologue.mode]
    // r[impl prologue.schema]
    pub async fn connect(link: L, role: SessionRole) -> Result<Self, ConnectError> {
        let (tx, mut rx) = link.split();
        let local = Prologue::new(ConduitMode::Bare, role, F::FINGERPRINT);
        let peer = exchange_prologue(&tx, &mut rx, &local).await?;
        Ok(Self { tx: BareTx::new(tx), rx: BareRx::new(rx), peer })
    }

    /// [`connect`](Self::connect), failing with
    /// [`ConnectError::TimedOut`] after `timeout_ms` milliseconds of
    /// `clock`.
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_conduit_bare::{BareConduit, ConnectError};
    /// use vox_link_embedded::MemoryLinkPair;
    /// use vox_link_embedded::sim::SimClock;
    /// use vox_types::SessionRole;
    /// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
    /// # struct Ping(u32);
    /// # vox_types::msg_family!(PingFamily => Ping);
    ///
    /// // A peer that never speaks: the handshake gives up at its deadline.
    /// let (link, _silent) = MemoryLinkPair::<CriticalSectionRawMutex, 2, 64>::new_shared();
    /// let clock = SimClock::new();
    /// let connecting = BareConduit::<_, PingFamily>::connect_within(link, SessionRole::Initiator, clock.clone(), 500);
    /// let mut connecting = core::pin::pin!(connecting);
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// assert!(connecting.as_mut().poll(&mut cx).is_pending());
    /// clock.advance_to_next(); // 500 ms later, without waiting
    /// let refused = connecting.as_mut().poll(&mut cx);
    /// assert!(matches!(refused, core::task::Poll::Ready(Err(ConnectError::TimedOut))));
    /// # use core::future::Future;
    /// ```
    pub async fn connect_within(
        link: L,
        role: SessionRole,
        clock: impl Clock,
        timeout_ms: u32,
    ) -> Result<Self, ConnectError> {
        let deadline = clock.now() + core::time::Duration::from_millis(u64::from(timeout_ms));
        match select(Self::connect(link, role), clock.sleep_until(deadline)).await {
            Either::First(result) => result,
            Either::Second(()) => Err(ConnectError::TimedOut),
        }
    }

    /// A conduit on halves whose prologues were exchanged already (the
    /// acceptor's, which needs `alloc`).
    #[cfg(feature = "alloc")]
    pub(crate) fn from_parts(tx: BareTx<L::Tx, F>, rx: BareRx<L::Rx, F>, peer: Prologue) -> Self {
        Self { tx, rx, peer }
    }

    /// The peer's prologue.
    pub fn peer(&self) -> &Prologue {
        &self.peer
    }
}

impl<L: Link, F: MsgFamily> Conduit for BareConduit<L, F>
where
    BareTx<L::Tx, F>: vox_types::ConduitTx<Msg = F>,
    BareRx<L::Rx, F>: vox_types::ConduitRx<Msg = F>,
{
    type Msg = F;
    type Tx = BareTx<L::Tx, F>;
    type Rx = BareRx<L::Rx, F>;

    // r[impl conduit.split]
    fn split(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }
}

/// Marker so the halves name `F` without owning one.
pub(crate) type Family<F> = PhantomData<fn() -> F>;
