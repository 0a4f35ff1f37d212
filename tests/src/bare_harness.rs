//! [`ConduitHarness`] for `BareConduit`
//! over any link pair maker.

use crate::conduit_kit::{ConduitHarness, KitFamily, RawPeer};
use crate::link_kit;
use vox_conduit_bare::BareConduit;
use vox_types::{ConduitMode, Link, MsgFamily, Prologue, SessionRole, exchange_prologue};

/// `BareConduit<L, KitFamily>` over pairs from `make`.
pub struct BareHarness<L, P> {
    /// Makes a connected link pair.
    pub make: P,
    /// The link's capacity bound (payloads in flight).
    pub capacity: usize,
    /// The link's maximum payload.
    pub mtu: usize,
    /// Marker.
    pub _link: std::marker::PhantomData<fn() -> L>,
}

impl<L, P: FnMut() -> (L, L)> BareHarness<L, P> {
    /// A harness over `make`'s pairs.
    pub fn new(make: P, capacity: usize, mtu: usize) -> Self {
        Self { make, capacity, mtu, _link: std::marker::PhantomData }
    }
}

/// The raw side of a bare conduit: a link that did its own prologue.
pub struct RawLink<L: Link> {
    tx: L::Tx,
    _rx: L::Rx,
}

impl<L: Link> RawPeer for RawLink<L> {
    async fn send_raw(&mut self, encoded: &[u8]) {
        link_kit::send(&self.tx, encoded).await.expect("raw send");
    }
}

impl<L: Link, P: FnMut() -> (L, L)> ConduitHarness for BareHarness<L, P> {
    type Conduit = BareConduit<L, KitFamily>;
    type Raw = RawLink<L>;

    async fn pair(&mut self) -> (Self::Conduit, Self::Conduit) {
        let (a, b) = (self.make)();
        let (a, b) = futures::join!(
            BareConduit::connect(a, SessionRole::Initiator),
            BareConduit::connect(b, SessionRole::Acceptor)
        );
        (a.expect("connect A"), b.expect("connect B"))
    }

    async fn pair_with_raw_peer(&mut self) -> (Self::Conduit, Self::Raw) {
        let (a, b) = (self.make)();
        let (tx, mut rx) = b.split();
        let local = Prologue::new(ConduitMode::Bare, SessionRole::Acceptor, KitFamily::FINGERPRINT);
        let (conduit, raw) =
            futures::join!(BareConduit::connect(a, SessionRole::Initiator), exchange_prologue(&tx, &mut rx, &local));
        raw.expect("raw prologue");
        (conduit.expect("connect"), RawLink { tx, _rx: rx })
    }

    fn capacity_bound(&self) -> usize {
        self.capacity
    }

    fn max_message_len(&self) -> usize {
        self.mtu
    }
}
