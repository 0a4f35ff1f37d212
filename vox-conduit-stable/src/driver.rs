//! `StableDriver`: the future that runs a stable conduit: attaches links,
//! handshakes, sends and replays frames, receives, acks, keeps alive.

use crate::StableError;
use crate::replay_ring::Entry;
use crate::stable_conduit::StableStorage;
use crate::state::Shared;
use crate::wire::{Hello, KEY_LEN, RejectReason, ResumeKey, WireFrame, seq_before};
use core::future::{Future, poll_fn};
use core::marker::PhantomData;
use core::task::Poll;
use embassy_futures::select::{Either, Either3, select, select3};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_hal_async::delay::DelayNs;
use rand_core::CryptoRng;
use vox_types::{
    ConduitMode, HandshakeError, Link, LinkError, LinkRx, LinkSource, LinkTx, LinkTxPermit, MsgFamily, PROLOGUE_MAGIC,
    PROLOGUE_MAX_LEN, Prologue, PrologueError, SessionRole, StorageRef, WriteSlot,
};

/// Runs a [`StableConduit`](crate::StableConduit): spawn it (embassy,
/// tokio) or join it with the application.
pub struct StableDriver<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    storage: StorageRef<StableStorage<M, BYTES, FRAMES, RX>>,
    _family: PhantomData<fn() -> F>,
}

/// The "random" source of [`StableDriver::run_initiator`]. An initiator
/// never draws from it (only `answer_hello`, on the acceptor side, makes
/// keys, and a driver's role is fixed when it is made), so it has no state
/// and costs no code.
struct NoKeys;

impl rand_core::RngCore for NoKeys {
    fn next_u32(&mut self) -> u32 {
        0
    }

    fn next_u64(&mut self) -> u64 {
        0
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(0);
    }
}

// Sound only because it is never drawn from: see `NoKeys`.
impl CryptoRng for NoKeys {}

/// How an attachment ended without ending the session.
enum Ended {
    /// The link is gone or unusable: attach a new one.
    LinkLost,
    /// Both directions are closed and acknowledged.
    Finished,
    /// The peer's prologue arrived mid-session: it started a new
    /// attachment on this byte stream; handshake again on this link.
    PeerRestarted,
}

/// What the sending loop does next.
enum Work {
    Data,
    Ack,
    Finished,
    /// The session ended (expired by the acceptor, lost): stop.
    Fatal(StableError),
}

async fn with_timeout<T>(delay: &mut impl DelayNs, ms: u32, fut: impl Future<Output = T>) -> Option<T> {
    match select(fut, delay.delay_ms(ms)).await {
        Either::First(t) => Some(t),
        Either::Second(()) => None,
    }
}

async fn send_raw<T: LinkTx>(tx: &T, bytes: &[u8]) -> Result<(), LinkError> {
    let mut slot = tx.reserve().await?.alloc(bytes.len())?;
    slot.as_mut_slice().copy_from_slice(bytes);
    slot.commit();
    Ok(())
}

async fn send_frame<T: LinkTx>(tx: &T, frame: &WireFrame<'_>) -> Result<(), LinkError> {
    let permit = tx.reserve().await?;
    write_frame(permit, frame)
}

/// Encodes `frame` into the permit's slot, exactly sized, and commits it.
pub(crate) fn write_frame<P: LinkTxPermit>(permit: P, frame: &WireFrame<'_>) -> Result<(), LinkError> {
    let len = postcard::experimental::serialized_size(frame).map_err(|_| LinkError::Malformed)?;
    let mut slot = permit.alloc(len)?;
    postcard::to_slice(frame, slot.as_mut_slice()).map_err(|_| LinkError::Malformed)?;
    slot.commit();
    Ok(())
}

/// Refusals that no new link will change.
fn permanent(e: &HandshakeError) -> bool {
    matches!(
        e,
        HandshakeError::Prologue(
            PrologueError::SchemaMismatch { .. }
                | PrologueError::ModeMismatch { .. }
                | PrologueError::UnsupportedVersion { .. }
                | PrologueError::RoleConflict { .. }
        )
    )
}

impl<F: MsgFamily, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize>
    StableDriver<F, M, BYTES, FRAMES, RX>
{
    pub(crate) fn new(storage: StorageRef<StableStorage<M, BYTES, FRAMES, RX>>) -> Self {
        Self { storage, _family: PhantomData }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared<BYTES, FRAMES, RX>) -> R) -> R {
        self.storage.with(f)
    }

    /// [`run`](Self::run) for an initiator, which needs no random numbers:
    /// only the acceptor makes resume keys. Saves a firmware the code of a
    /// CSPRNG (about 3.5 KB of flash for ChaCha8 on a Cortex-M3).
    ///
    /// Fails with [`StableError::AcceptorNeedsRng`] at once on an
    /// acceptor's driver.
    pub async fn run_initiator<S, D>(self, source: S, delay: D) -> Result<(), StableError>
    where
        S: LinkSource,
        D: DelayNs + Clone,
    {
        if self.with(|s| s.role) != SessionRole::Initiator {
            return Err(StableError::AcceptorNeedsRng);
        }
        self.run(source, NoKeys, delay).await
    }

    /// Runs the session: takes links from `source` one after another until
    /// both directions are closed and acknowledged (`Ok`), or the session
    /// ends ([`StableError::SessionLost`], a permanent refusal, an exhausted
    /// source). `rng` makes resume keys; `delay` times acks, keepalives and
    /// the silence timeout.
    pub async fn run<S, R, D>(self, mut source: S, mut rng: R, delay: D) -> Result<(), StableError>
    where
        S: LinkSource,
        R: CryptoRng,
        D: DelayNs + Clone,
    {
        let result = loop {
            if let Some(e) = self.with(|s| s.fatal.get().cloned()) {
                break Err(e);
            }
            if self.with(|s| s.finished()) {
                // We have everything; the peer may still need an attachment
                // to learn that its last frames arrived. Serve it for at
                // most `linger_ms`, then leave.
                let linger = self.with(|s| s.config.linger_ms);
                let serve = async {
                    while !self.with(|s| s.peer_done) {
                        match self.attempt(&mut source, &mut rng, &delay).await {
                            Ok(Ended::LinkLost | Ended::PeerRestarted) => {}
                            Ok(Ended::Finished) | Err(_) => break,
                        }
                    }
                };
                let _ = select(serve, delay.clone().delay_ms(linger)).await;
                break Ok(());
            }
            match self.attempt(&mut source, &mut rng, &delay).await {
                Ok(Ended::LinkLost | Ended::PeerRestarted) => {}
                Ok(Ended::Finished) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        match &result {
            Ok(()) => state_info!("stable: session finished"),
            Err(e) => {
                state_warn!("stable: session ended: {}", e);
                self.with(|s| s.fail(e.clone()));
            }
        }
        result
    }

    /// One attachment: a link from `source`, then the session on it.
    async fn attempt<S: LinkSource, R: CryptoRng, D: DelayNs + Clone>(
        &self,
        source: &mut S,
        rng: &mut R,
        delay: &D,
    ) -> Result<Ended, StableError> {
        match source.next_link().await {
            Ok(link) => self.attachment(link, rng, delay).await,
            Err(LinkError::Closed) => Err(StableError::SourceClosed),
            Err(_) => {
                let retry = self.with(|s| s.config.retry_delay_ms);
                delay.clone().delay_ms(retry).await;
                Ok(Ended::LinkLost)
            }
        }
    }

    /// One attachment on `link`: handshake, then data until the link is
    /// lost or the session finished. An initiator that restarts its
    /// handshake mid-session (its prologue arrives) is answered on the same
    /// link.
    async fn attachment<L: Link, R: CryptoRng, D: DelayNs + Clone>(
        &self,
        link: L,
        rng: &mut R,
        delay: &D,
    ) -> Result<Ended, StableError> {
        let (tx, mut rx) = link.split();
        let mut peer_restarted = false;
        loop {
            let Some(next_expected) = self.handshake(&tx, &mut rx, rng, delay.clone(), peer_restarted).await? else {
                return Ok(Ended::LinkLost);
            };
            self.resume_at(next_expected)?;
            let (_replaying, _attachments) =
                self.with(|s| (s.next_seq.wrapping_sub(next_expected), s.stats.reattachments));
            state_info!(
                "stable: attached (reattachments {}), peer expects seq {}, replaying {} frames",
                _attachments,
                next_expected,
                _replaying
            );
            // r[impl stable.replay.order]
            let sending = self.send_loop(&tx);
            let receiving = self.receive_loop(&mut rx);
            let ticking = self.ticker(delay.clone());
            match select3(sending, receiving, ticking).await {
                Either3::First(r) | Either3::Second(r) | Either3::Third(r) => match r? {
                    Ended::PeerRestarted => {
                        state_info!("stable: peer restarted its handshake on this link");
                        peer_restarted = true;
                    }
                    Ended::LinkLost => {
                        state_warn!("stable: link lost");
                        return Ok(Ended::LinkLost);
                    }
                    Ended::Finished => return Ok(Ended::Finished),
                },
            }
        }
    }

    /// The handshake on a link, initiator-driven so that two ends that
    /// reattach at different times on one byte stream still meet:
    ///
    /// - both send their prologue first;
    /// - initiator: once the acceptor's prologue came, its hello; waits for
    ///   the acceptor's hello (or a rejection), repeating its prologue every
    ///   keepalive interval;
    /// - acceptor: answers every prologue with its own, then answers the
    ///   hello.
    ///
    /// Stale frames of an earlier link are ignored. `Ok(None)`: this link
    /// is unusable, attach another. `answer_now`: the initiator's prologue
    /// already arrived (mid-session).
    // r[impl stable.handshake]
    // r[impl stable.resume-key]
    // r[impl stable.session-lost]
    async fn handshake<T: LinkTx, Rx: LinkRx, R: CryptoRng, D: DelayNs>(
        &self,
        tx: &T,
        rx: &mut Rx,
        rng: &mut R,
        mut timer: D,
        answer_now: bool,
    ) -> Result<Option<u32>, StableError> {
        let (role, cfg) = self.with(|s| (s.role, s.config));
        let local = Prologue::new(ConduitMode::Stable, role, F::FINGERPRINT);
        let mut buf = [0u8; PROLOGUE_MAX_LEN];
        let plen = local.encode(&mut buf).map_err(|e| StableError::Handshake(HandshakeError::Prologue(e)))?;
        let prologue = buf.get(..plen).unwrap_or(&[]);
        let initiator = role == SessionRole::Initiator;
        // Both send a prologue first on every attachment: the acceptor's
        // tells an initiator still in a data phase that it reattached. A
        // link that cannot take it in time is no use.
        if !matches!(with_timeout(&mut timer, cfg.timeout_ms, send_raw(tx, prologue)).await, Some(Ok(()))) {
            return Ok(None);
        }
        let mut peer_prologue = answer_now;
        // The initiator repeats its prologue every keepalive interval (a
        // frame may have died with the peer's previous link); everyone gives
        // up on this link after the silence timeout.
        let tick = if initiator { cfg.keepalive_ms.clamp(1, cfg.timeout_ms.max(1)) } else { cfg.timeout_ms };
        let mut waited = 0u32;
        loop {
            let payload = match with_timeout(&mut timer, tick, rx.recv()).await {
                Some(Ok(Some(p))) => p,
                Some(Ok(None)) => return Ok(None),
                Some(Err(e)) => {
                    self.link_failed(e);
                    return Ok(None);
                }
                None => {
                    waited = waited.saturating_add(tick);
                    if waited >= cfg.timeout_ms {
                        state_warn!("stable: no handshake within the timeout");
                        self.timed_out();
                        return Ok(None);
                    }
                    // Start over on this link: a fresh prologue; its answer
                    // triggers a fresh hello.
                    peer_prologue = false;
                    if let Some(Err(_)) = with_timeout(&mut timer, tick, send_raw(tx, prologue)).await {
                        return Ok(None);
                    }
                    continue;
                }
            };
            self.with(|s| s.stats.frames_received += 1);
            let bytes = payload.as_bytes();
            if bytes.starts_with(&PROLOGUE_MAGIC) {
                let peer = Prologue::decode(bytes).and_then(|p| local.check_peer(&p));
                match peer {
                    Err(e) if permanent(&HandshakeError::Prologue(e)) => {
                        return Err(StableError::Handshake(HandshakeError::Prologue(e)));
                    }
                    Err(_) => return Ok(None),
                    Ok(()) if initiator => {
                        // The first answer lets us say hello; repeats are
                        // answers to earlier prologues.
                        if !peer_prologue {
                            peer_prologue = true;
                            let (key, rx_next) = self.with(|s| (s.key, s.rx_next));
                            let hello = WireFrame::Hello(Hello { key, next_expected: rx_next });
                            let sent = with_timeout(&mut timer, cfg.timeout_ms, send_frame(tx, &hello)).await;
                            if !matches!(sent, Some(Ok(()))) {
                                return Ok(None);
                            }
                        }
                    }
                    Ok(()) => {
                        peer_prologue = true;
                        let sent = with_timeout(&mut timer, cfg.timeout_ms, send_raw(tx, prologue)).await;
                        if !matches!(sent, Some(Ok(()))) {
                            return Ok(None);
                        }
                    }
                }
                continue;
            }
            match postcard::from_bytes::<WireFrame<'_>>(bytes) {
                Ok(WireFrame::Hello(hello)) if peer_prologue => {
                    return if initiator {
                        Ok(self.hello_reply(hello))
                    } else {
                        self.answer_hello(tx, hello, rng, &mut timer, cfg.timeout_ms).await
                    };
                }
                Ok(WireFrame::Reject(RejectReason::SessionUnknown)) if initiator && peer_prologue => {
                    return Err(StableError::SessionLost);
                }
                // A frame of an earlier link still on the line.
                _ => {}
            }
        }
    }

    /// Initiator: the acceptor's hello carries our next resume key.
    fn hello_reply(&self, hello: Hello) -> Option<u32> {
        let key = hello.key?;
        self.with(|s| s.key = Some(key));
        Some(hello.next_expected)
    }

    /// Acceptor: checks the initiator's resume key, issues a new one.
    async fn answer_hello<T: LinkTx, R: CryptoRng>(
        &self,
        tx: &T,
        hello: Hello,
        rng: &mut R,
        timer: &mut impl DelayNs,
        timeout_ms: u32,
    ) -> Result<Option<u32>, StableError> {
        let (established, key, presented, confirmed) =
            self.with(|s| (s.established, s.key, s.presented_key, s.presented_key.is_some() || s.rx_next != 0));
        match (established, hello.key) {
            (false, None) => {}
            // Our first hello died with its link before the initiator read
            // it: it never had a key nor sent a frame, so this is still the
            // same session.
            (true, None) if !confirmed => {}
            // The latest key, or the one before it if the hello that carried
            // the latest died with its link.
            (true, Some(k)) if Some(k) == key || Some(k) == presented => {}
            // The initiator started over: our session is gone.
            (true, None) => return Err(StableError::SessionLost),
            // A key we do not know (we restarted, or it is stale).
            (_, Some(_)) => {
                let reject = WireFrame::Reject(RejectReason::SessionUnknown);
                let _ = with_timeout(timer, timeout_ms, send_frame(tx, &reject)).await;
                return Ok(None);
            }
        }
        let mut new_key: ResumeKey = [0; KEY_LEN];
        rng.fill_bytes(&mut new_key);
        let rx_next = self.with(|s| {
            s.presented_key = hello.key;
            s.key = Some(new_key);
            s.rx_next
        });
        let mine = WireFrame::Hello(Hello { key: Some(new_key), next_expected: rx_next });
        if !matches!(with_timeout(timer, timeout_ms, send_frame(tx, &mine)).await, Some(Ok(()))) {
            return Ok(None);
        }
        Ok(Some(hello.next_expected))
    }

    fn link_failed(&self, e: LinkError) -> Ended {
        state_warn!("stable: link failed: {}", e);
        if e == LinkError::CrcMismatch {
            self.with(|s| s.stats.crc_errors += 1);
        }
        Ended::LinkLost
    }

    fn timed_out(&self) -> Ended {
        self.with(|s| s.stats.timeouts += 1);
        Ended::LinkLost
    }

    /// The peer expects `next_expected` next: drop what it has, resend the
    /// rest in order before anything new.
    fn resume_at(&self, next_expected: u32) -> Result<(), StableError> {
        self.with(|s| {
            if let Some(e) = s.fatal.get() {
                return Err(e.clone());
            }
            let lowest = s.ring.first_seq().unwrap_or(s.next_seq);
            let valid = !seq_before(next_expected, lowest) && !seq_before(s.next_seq, next_expected);
            if !valid {
                return Err(StableError::Protocol);
            }
            s.ring.ack(next_expected);
            s.ring_changed();
            s.next_to_send = next_expected;
            if s.established {
                s.stats.reattachments += 1;
            }
            s.established = true;
            s.ack_now = true;
            s.writer.wake();
            Ok(())
        })
    }

    /// An ack from the peer: everything before `ack` arrived.
    fn on_ack(s: &mut Shared<BYTES, FRAMES, RX>, ack: u32) -> Result<(), StableError> {
        if seq_before(s.next_to_send, ack) {
            return Err(StableError::Protocol);
        }
        s.ring.ack(ack);
        s.ring_changed();
        s.writer.wake();
        Ok(())
    }

    fn poll_work(&self, cx: &mut core::task::Context<'_>) -> Poll<Work> {
        self.with(|s| {
            if let Some(e) = s.fatal.get() {
                return Poll::Ready(Work::Fatal(e.clone()));
            }
            if s.finished() {
                if !s.done_sent {
                    return Poll::Ready(Work::Ack);
                }
                if s.peer_done {
                    return Poll::Ready(Work::Finished);
                }
            }
            if s.ring.get(s.next_to_send).is_some() {
                return Poll::Ready(Work::Data);
            }
            if s.ack_now || s.unacked_rx >= s.config.ack_every {
                return Poll::Ready(Work::Ack);
            }
            s.driver_tx.register(cx.waker());
            Poll::Pending
        })
    }

    /// One timer for the whole attachment (no timer per frame): every tick
    /// it asks for a delayed ack or a keepalive when nothing went out, and
    /// declares the attachment dead after `timeout_ms` without a frame in.
    // r[impl stable.ack]
    // r[impl stable.liveness]
    async fn ticker<D: DelayNs>(&self, mut timer: D) -> Result<Ended, StableError> {
        let cfg = self.with(|s| s.config);
        let tick = cfg.ack_delay_ms.min(cfg.keepalive_ms).max(1);
        let (mut rx_seen, mut tx_seen) = self.with(|s| (s.rx_activity, s.tx_activity));
        let (mut quiet_in, mut quiet_out) = (0u32, 0u32);
        loop {
            timer.delay_ms(tick).await;
            let dead = self.with(|s| {
                if s.rx_activity == rx_seen {
                    quiet_in = quiet_in.saturating_add(tick);
                } else {
                    (rx_seen, quiet_in) = (s.rx_activity, 0);
                }
                if s.tx_activity == tx_seen {
                    quiet_out = quiet_out.saturating_add(tick);
                } else {
                    (tx_seen, quiet_out) = (s.tx_activity, 0);
                }
                let ack_due = s.unacked_rx > 0 && quiet_out >= cfg.ack_delay_ms;
                if ack_due || quiet_out >= cfg.keepalive_ms {
                    s.ack_now = true;
                    s.driver_tx.wake();
                }
                quiet_in >= cfg.timeout_ms
            });
            if dead {
                state_warn!("stable: link silent for the timeout");
                return Ok(self.timed_out());
            }
        }
    }

    async fn send_loop<T: LinkTx>(&self, tx: &T) -> Result<Ended, StableError> {
        loop {
            let work = match poll_fn(|cx| self.poll_work(cx)).await {
                Work::Finished => return Ok(Ended::Finished),
                Work::Fatal(e) => return Err(e),
                work => work,
            };
            let Ok(permit) = tx.reserve().await else { return Ok(Ended::LinkLost) };
            let written = self.with(|s| {
                let ack = s.rx_next;
                let result = match work {
                    Work::Data => {
                        let seq = s.next_to_send;
                        let Some((entry, bytes)) = s.ring.get(seq) else { return Ok(()) };
                        let Entry { close, .. } = entry;
                        let frame = if close {
                            WireFrame::Close { seq, ack }
                        } else {
                            WireFrame::Data { seq, ack, msg: bytes }
                        };
                        write_frame(permit, &frame).map(|()| {
                            s.next_to_send = seq.wrapping_add(1);
                            if seq_before(seq, s.sent_high) {
                                s.stats.replays += 1;
                            } else {
                                s.sent_high = seq.wrapping_add(1);
                            }
                        })
                    }
                    _ => {
                        let done = s.finished();
                        let frame = WireFrame::Ack { ack, next: s.next_to_send, done };
                        write_frame(permit, &frame).map(|()| {
                            s.stats.acks_sent += 1;
                            s.done_sent |= done;
                        })
                    }
                };
                if result.is_ok() {
                    s.unacked_rx = 0;
                    s.ack_now = false;
                    s.stats.frames_sent += 1;
                    s.tx_activity = s.tx_activity.wrapping_add(1);
                }
                result
            });
            match written {
                Ok(()) => {}
                Err(LinkError::TooLarge { len, max }) => {
                    return Err(StableError::MessageTooLarge { len, max });
                }
                Err(_) => return Ok(Ended::LinkLost),
            }
        }
    }

    // r[impl stable.seq]
    // r[impl stable.gap]
    async fn receive_loop<Rx: LinkRx>(&self, rx: &mut Rx) -> Result<Ended, StableError> {
        loop {
            let payload = match rx.recv().await {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(Ended::LinkLost),
                Err(e) => return Ok(self.link_failed(e)),
            };
            self.with(|s| {
                s.stats.frames_received += 1;
                s.rx_activity = s.rx_activity.wrapping_add(1);
            });
            let bytes = payload.as_bytes();
            if bytes.starts_with(&PROLOGUE_MAGIC) {
                // The peer started a new attachment on this byte stream:
                // handshake again, on this link.
                return Ok(Ended::PeerRestarted);
            }
            let (frame, rest) = match postcard::take_from_bytes::<WireFrame<'_>>(bytes) {
                Ok(parsed) => parsed,
                Err(_) => return Ok(Ended::LinkLost),
            };
            if !rest.is_empty() {
                return Ok(Ended::LinkLost);
            }
            let (seq, ack, msg_at) = match frame {
                WireFrame::Ack { ack, next, done } => {
                    let missing = self.with(|s| -> Result<bool, StableError> {
                        Self::on_ack(s, ack)?;
                        if done {
                            s.peer_done = true;
                            s.driver_tx.wake();
                        }
                        Ok(seq_before(s.rx_next, next))
                    })?;
                    if missing {
                        // Frames sent before this ack never arrived.
                        state_warn!("stable: frames lost before an ack");
                        self.with(|s| s.stats.gaps += 1);
                        return Ok(Ended::LinkLost);
                    }
                    continue;
                }
                WireFrame::Data { seq, ack, msg } => {
                    (seq, ack, Some((msg.as_ptr() as usize - bytes.as_ptr() as usize, msg.len())))
                }
                WireFrame::Close { seq, ack } => (seq, ack, None),
                // Late handshake frames of this or an earlier link.
                WireFrame::Hello(_) | WireFrame::Reject(_) => continue,
            };
            let expected = self.with(|s| -> Result<u32, StableError> {
                Self::on_ack(s, ack)?;
                Ok(s.rx_next)
            })?;
            if seq_before(seq, expected) {
                // Already have it (a replay after a lost ack): drop, re-ack.
                self.with(|s| {
                    s.stats.duplicates += 1;
                    s.ack_now = true;
                    s.driver_tx.wake();
                });
                continue;
            }
            if seq != expected {
                state_warn!("stable: gap: frame {} arrived, {} expected", seq, expected);
                self.with(|s| s.stats.gaps += 1);
                return Ok(Ended::LinkLost);
            }
            match msg_at {
                Some((start, len)) => {
                    let Some(msg) = payload.narrow(start, len) else { return Ok(Ended::LinkLost) };
                    // Backpressure: wait for room in the receive queue.
                    poll_fn(|cx| {
                        self.with(|s| {
                            if !s.rx_alive || !s.rx_queue.is_full() {
                                Poll::Ready(())
                            } else {
                                s.driver_rx.register(cx.waker());
                                Poll::Pending
                            }
                        })
                    })
                    .await;
                    self.with(|s| {
                        if s.rx_alive {
                            // Room was checked above; nothing else pushes.
                            let _ = s.rx_queue.push_back(msg);
                        }
                        s.rx_next = seq.wrapping_add(1);
                        s.unacked_rx += 1;
                        s.stats.messages_delivered += 1;
                        s.reader.wake();
                        if s.unacked_rx >= s.config.ack_every {
                            s.driver_tx.wake();
                        }
                    });
                }
                None => self.with(|s| {
                    s.rx_next = seq.wrapping_add(1);
                    s.peer_closed = true;
                    s.unacked_rx += 1;
                    s.ack_now = true;
                    s.reader.wake();
                    s.driver_tx.wake();
                }),
            }
        }
    }
}
