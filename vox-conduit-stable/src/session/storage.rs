//! `SessionStorage`: a session with buffers it owns (tests, simulations,
//! drivers of your own).

use super::*;

/// A session with buffers it owns: for tests, simulations and drivers of
/// your own. `TXB`/`TXN`: replay bytes and entries; `RXB`/`RXN`: receive
/// bytes and entries.
///
/// Two sessions fed each other's frames by hand, at explicit times, with
/// no link, task or clock:
///
/// ```
/// use vox_conduit_stable::StableConfig;
/// use vox_conduit_stable::session::SessionStorage;
/// use vox_types::{SchemaFingerprint, SessionRole};
///
/// type Store = SessionStorage<512, 4, 512, 4>;
/// const FP: SchemaFingerprint = SchemaFingerprint::of::<[u8]>();
/// let mut device = Store::new(SessionRole::Initiator, StableConfig::DEFAULT, FP);
/// let mut host = Store::new(SessionRole::Acceptor, StableConfig::DEFAULT, FP);
///
/// /// Hands every frame `from` wants to send to `to`; returns how many.
/// fn deliver(from: &mut Store, to: &mut Store, now: u64) -> usize {
///     let (mut frame, mut len, mut sent) = ([0u8; 512], 0, 0);
///     while let Some(written) = from.parts().0.transmit(now, |out| {
///         len = out.len();
///         out.encode(&mut frame[..len])
///     }) {
///         written.unwrap();
///         let (mut session, rx_bytes) = to.parts();
///         session.on_receive(now, &frame[..len], |at, msg| rx_bytes[at..at + msg.len()].copy_from_slice(msg));
///         sent += 1;
///     }
///     sent
/// }
/// let pump = |device: &mut Store, host: &mut Store, now| {
///     while deliver(device, host, now) + deliver(host, device, now) > 0 {}
/// };
///
/// // A new link: prologues and hellos (the acceptor brings a resume key).
/// device.parts().0.attach(0, None);
/// host.parts().0.attach(0, Some([7; 16]));
/// pump(&mut device, &mut host, 1);
///
/// // The device's application sends one message...
/// let (mut session, _) = device.parts();
/// assert_eq!(session.try_reserve(), Ok(true));
/// session.push_message(|buf| { buf[..5].copy_from_slice(b"hello"); Ok(5) })?;
/// session.end_reserve();
/// pump(&mut device, &mut host, 2);
///
/// // ...and the host's takes it from its receive ring, then frees it.
/// let (mut session, rx_bytes) = host.parts();
/// let msg = session.pop_received().unwrap();
/// assert_eq!(&rx_bytes[msg.start..msg.start + msg.len], b"hello");
/// session.release(msg.token);
/// assert_eq!(host.state.stats().messages_delivered, 1);
/// # Ok::<(), vox_conduit_stable::SendError>(())
/// ```
pub struct SessionStorage<const TXB: usize, const TXN: usize, const RXB: usize, const RXN: usize> {
    /// The state.
    pub state: SessionState,
    tx_bytes: [u8; TXB],
    tx_entries: [TxEntry; TXN],
    rx_entries: [RxEntry; RXN],
    rx_bytes: [u8; RXB],
}

impl<const TXB: usize, const TXN: usize, const RXB: usize, const RXN: usize> SessionStorage<TXB, TXN, RXB, RXN> {
    const RINGS_FIT: () = assert!(TXB <= MAX_RING_BYTES && RXB <= MAX_RING_BYTES, "a ring of over 2^30 - 1 bytes");

    /// A fresh session.
    pub const fn new(role: SessionRole, config: StableConfig, fingerprint: SchemaFingerprint) -> Self {
        let () = Self::RINGS_FIT;
        Self {
            state: SessionState::new(role, config, fingerprint, RXB),
            tx_bytes: [0; TXB],
            tx_entries: [TxEntry::EMPTY; TXN],
            rx_entries: [RxEntry::EMPTY; RXN],
            rx_bytes: [0; RXB],
        }
    }

    /// The session, and the receive buffer that `store` writes into and
    /// [`Received`] points into.
    pub fn parts(&mut self) -> (Session<'_>, &mut [u8]) {
        let session = Session {
            state: &mut self.state,
            tx_bytes: &mut self.tx_bytes,
            tx_entries: &mut self.tx_entries,
            rx_entries: &mut self.rx_entries,
        };
        (session, &mut self.rx_bytes)
    }
}
