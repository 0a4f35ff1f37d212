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
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_hal_async::delay::DelayNs;
use rand_core::CryptoRng;
use vox_types::{
    ConduitMode, HandshakeError, Link, LinkError, LinkRx, LinkSource, LinkTx, LinkTxPermit, MsgFamily, Prologue,
    PrologueError, SessionRole, StorageRef, WriteSlot, exchange_prologue,
};

/// Runs a [`StableConduit`](crate::StableConduit): spawn it (embassy,
/// tokio) or join it with the application.
pub struct StableDriver<F, M: RawMutex + 'static, const BYTES: usize, const FRAMES: usize, const RX: usize> {
    storage: StorageRef<StableStorage<M, BYTES, FRAMES, RX>>,
    _family: PhantomData<fn() -> F>,
}

/// How an attachment ended without ending the session.
enum Ended {
    /// The link is gone or unusable: attach a new one.
    LinkLost,
    /// Both directions are closed and acknowledged.
    Finished,
}

/// What the sending loop does next.
enum Work {
    Data,
    Ack,
    Finished,
}

async fn with_timeout<T>(delay: &mut impl DelayNs, ms: u32, fut: impl Future<Output = T>) -> Option<T> {
    match select(fut, delay.delay_ms(ms)).await {
        Either::First(t) => Some(t),
        Either::Second(()) => None,
    }
}

async fn send_frame<T: LinkTx>(tx: &T, frame: &WireFrame<'_>) -> Result<(), LinkError> {
    let permit = tx.reserve().await?;
    write_frame(permit, frame)
}

fn write_frame<P: LinkTxPermit>(permit: P, frame: &WireFrame<'_>) -> Result<(), LinkError> {
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
            if let Some(e) = self.with(|s| s.fatal.clone()) {
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
                            Ok(Ended::LinkLost) => {}
                            Ok(Ended::Finished) | Err(_) => break,
                        }
                    }
                };
                let _ = select(serve, delay.clone().delay_ms(linger)).await;
                break Ok(());
            }
            match self.attempt(&mut source, &mut rng, &delay).await {
                Ok(Ended::LinkLost) => {}
                Ok(Ended::Finished) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = &result {
            self.with(|s| s.fail(e.clone()));
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

    // r[impl stable.resume-key]
    // r[impl stable.session-lost]
    async fn attachment<L: Link, R: CryptoRng, D: DelayNs + Clone>(
        &self,
        link: L,
        rng: &mut R,
        delay: &D,
    ) -> Result<Ended, StableError> {
        let (tx, mut rx) = link.split();
        let (role, cfg, rx_next, key) = self.with(|s| (s.role, s.config, s.rx_next, s.key));
        let mut timer = delay.clone();

        let local = Prologue::new(ConduitMode::Stable, role, F::FINGERPRINT);
        match with_timeout(&mut timer, cfg.timeout_ms, exchange_prologue(&tx, &mut rx, &local)).await {
            Some(Ok(_)) => {}
            Some(Err(e)) if permanent(&e) => return Err(StableError::Handshake(e)),
            Some(Err(HandshakeError::Link(e))) => return Ok(self.link_failed(e)),
            Some(Err(_)) => return Ok(Ended::LinkLost),
            None => return Ok(self.timed_out()),
        }

        let peer = match role {
            SessionRole::Initiator => {
                if send_frame(&tx, &WireFrame::Hello(Hello { key, next_expected: rx_next })).await.is_err() {
                    return Ok(Ended::LinkLost);
                }
                let Some(reply) = self.recv_handshake_frame(&mut rx, &mut timer, cfg.timeout_ms).await else {
                    return Ok(Ended::LinkLost);
                };
                match reply {
                    Hello { key: Some(new_key), next_expected } => {
                        self.with(|s| s.key = Some(new_key));
                        next_expected
                    }
                    // An acceptor always issues a key; anything else ends
                    // the attachment.
                    Hello { key: None, .. } => return Ok(Ended::LinkLost),
                }
            }
            SessionRole::Acceptor => {
                let Some(hello) = self.recv_handshake_frame(&mut rx, &mut timer, cfg.timeout_ms).await else {
                    return Ok(Ended::LinkLost);
                };
                let (established, presented, confirmed) =
                    self.with(|s| (s.established, s.presented_key, s.presented_key.is_some() || s.rx_next != 0));
                match (established, hello.key) {
                    (false, None) => {}
                    // Our first hello died with its link before the initiator
                    // read it: it never had a key nor sent a frame, so this
                    // is still the same session.
                    (true, None) if !confirmed => {}
                    // The latest key, or the one before it if the hello that
                    // carried the latest died with its link.
                    (true, Some(k)) if Some(k) == key || Some(k) == presented => {}
                    // The initiator started over: our session is gone.
                    (true, None) => return Err(StableError::SessionLost),
                    // A key we do not know (we restarted, or it is stale).
                    (_, Some(_)) => {
                        let _ = send_frame(&tx, &WireFrame::Reject(RejectReason::SessionUnknown)).await;
                        return Ok(Ended::LinkLost);
                    }
                }
                self.with(|s| s.presented_key = hello.key);
                let mut new_key: ResumeKey = [0; KEY_LEN];
                rng.fill_bytes(&mut new_key);
                self.with(|s| s.key = Some(new_key));
                let mine = Hello { key: Some(new_key), next_expected: rx_next };
                if send_frame(&tx, &WireFrame::Hello(mine)).await.is_err() {
                    return Ok(Ended::LinkLost);
                }
                hello.next_expected
            }
        };
        self.resume_at(peer)?;

        // r[impl stable.replay.order]
        let sending = self.send_loop(&tx, delay.clone());
        let receiving = self.receive_loop(&mut rx, delay.clone());
        match select(sending, receiving).await {
            Either::First(r) | Either::Second(r) => r,
        }
    }

    fn link_failed(&self, e: LinkError) -> Ended {
        if e == LinkError::CrcMismatch {
            self.with(|s| s.stats.crc_errors += 1);
        }
        Ended::LinkLost
    }

    fn timed_out(&self) -> Ended {
        self.with(|s| s.stats.timeouts += 1);
        Ended::LinkLost
    }

    /// The peer's hello, or `None` if the attachment is unusable. A
    /// rejection ends the session.
    async fn recv_handshake_frame<Rx: LinkRx>(
        &self,
        rx: &mut Rx,
        timer: &mut impl DelayNs,
        timeout_ms: u32,
    ) -> Option<Hello> {
        let payload = match with_timeout(timer, timeout_ms, rx.recv()).await {
            Some(Ok(Some(p))) => p,
            Some(Err(e)) => {
                self.link_failed(e);
                return None;
            }
            Some(Ok(None)) => return None,
            None => {
                self.timed_out();
                return None;
            }
        };
        self.with(|s| s.stats.frames_received += 1);
        match postcard::from_bytes::<WireFrame<'_>>(payload.as_bytes()) {
            Ok(WireFrame::Hello(h)) => Some(h),
            Ok(WireFrame::Reject(RejectReason::SessionUnknown)) => {
                self.with(|s| s.fail(StableError::SessionLost));
                None
            }
            _ => None,
        }
    }

    /// The peer expects `next_expected` next: drop what it has, resend the
    /// rest in order before anything new.
    fn resume_at(&self, next_expected: u32) -> Result<(), StableError> {
        self.with(|s| {
            if let Some(e) = &s.fatal {
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

    // r[impl stable.ack]
    // r[impl stable.liveness]
    async fn send_loop<T: LinkTx, D: DelayNs>(&self, tx: &T, mut timer: D) -> Result<Ended, StableError> {
        loop {
            let (idle_ms, ack_ms) = self.with(|s| (s.config.keepalive_ms, s.config.ack_delay_ms));
            let wait_ms = if self.with(|s| s.unacked_rx > 0) { ack_ms } else { idle_ms };
            // Work as soon as there is some; an ack or keepalive when the
            // timer runs out first.
            let work = with_timeout(&mut timer, wait_ms, poll_fn(|cx| self.poll_work(cx))).await.unwrap_or(Work::Ack);
            if let Work::Finished = work {
                return Ok(Ended::Finished);
            }
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
    async fn receive_loop<Rx: LinkRx, D: DelayNs>(&self, rx: &mut Rx, mut timer: D) -> Result<Ended, StableError> {
        loop {
            let timeout = self.with(|s| s.config.timeout_ms);
            let payload = match with_timeout(&mut timer, timeout, rx.recv()).await {
                Some(Ok(Some(p))) => p,
                Some(Ok(None)) => return Ok(Ended::LinkLost),
                Some(Err(e)) => return Ok(self.link_failed(e)),
                None => return Ok(self.timed_out()),
            };
            self.with(|s| s.stats.frames_received += 1);
            let bytes = payload.as_bytes();
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
                        self.with(|s| s.stats.gaps += 1);
                        return Ok(Ended::LinkLost);
                    }
                    continue;
                }
                WireFrame::Data { seq, ack, msg } => {
                    (seq, ack, Some((msg.as_ptr() as usize - bytes.as_ptr() as usize, msg.len())))
                }
                WireFrame::Close { seq, ack } => (seq, ack, None),
                WireFrame::Hello(_) | WireFrame::Reject(_) => return Ok(Ended::LinkLost),
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
