//! What a [`SessionState`] says about itself, and the transitions that
//! end an attachment or the session.

use super::*;

impl SessionState {
    /// A session that has not attached yet. `rx_capacity` is the size of
    /// the receive buffer the caller keeps.
    ///
    /// Built as [`zeroed`](Self::zeroed) plus the few fields that are not
    /// zero: the compiler clears the whole state in one go instead of
    /// piecing it together from zeroed temporaries.
    pub const fn new(
        role: SessionRole,
        config: StableConfig,
        fingerprint: SchemaFingerprint,
        rx_capacity: usize,
    ) -> Self {
        let mut s = Self::ZEROED;
        s.role = role;
        s.config = config;
        s.fingerprint = fingerprint;
        // An entry keeps its length in 30 bits: a larger buffer is used
        // only that far.
        s.rx.capacity = if rx_capacity > MAX_RING_BYTES { MAX_RING_BYTES } else { rx_capacity };
        s
    }

    /// All zero bytes: the placeholder a `static` storage holds until a
    /// conduit is made on it (so it lands in `.bss`, not in flash).
    pub const fn zeroed() -> Self {
        Self::ZEROED
    }

    /// What [`zeroed`](Self::zeroed) gives.
    const ZEROED: Self = Self {
        config: StableConfig::ZEROED,
        role: SessionRole::Initiator,
        fingerprint: SchemaFingerprint([0; 8]),
        phase: Phase::Detached,
        keys: Keys { current: None, presented: None, fresh: None, established: false, confirmed: false },
        tx: Outbound {
            ring: RingIndex::new(),
            base_seq: 0,
            next_seq: 0,
            next_off: 0,
            base_off: 0,
            next_to_send: 0,
            send_off: 0,
            sent_high: 0,
            limit_seq: 0,
            limit_off: 0,
            writer_active: false,
            closed: false,
            window_blocked: false,
            writer_waiting: false,
            stalled_since: Since::NONE,
        },
        rx: Inbound {
            ring: RingIndex::new(),
            capacity: 0,
            delivered: 0,
            next: 0,
            off: 0,
            granted_seq: 0,
            granted_off: 0,
            advertised_seq: 0,
            advertised_off: 0,
            carried_seq: 0,
            carried_off: 0,
            unacked: 0,
            first_unacked_at: 0,
            ack_now: false,
            peer_closed: false,
            receiver_gone: false,
            #[cfg(feature = "std")]
            granted_now: false,
        },
        send_prologue: false,
        send_hello: false,
        send_reject: false,
        last_rx: 0,
        last_tx: 0,
        peer_done: false,
        done_sent: false,
        finished_at: Since::NONE,
        complete: false,
        ending: Ending::None,
        reject_reason: RejectReason::SessionUnknown,
        detach: ZeroOption::None,
        busy: BusyRetry::NONE,
        wakes: 0,
        stats: StableStats::ZERO,
    };

    /// The role given at creation.
    pub fn role(&self) -> SessionRole {
        self.role
    }

    /// The configuration given at creation.
    pub fn config(&self) -> &StableConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> StableStats {
        self.stats
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&SessionError> {
        self.ending.ended()
    }

    /// Both directions closed and acknowledged, and the peer knows (or the
    /// linger time ran out): nothing more to do.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Initiator: no link should be attached before this (the backoff
    /// after the acceptor answered `Busy`); `None` when a link may come
    /// at once.
    pub fn attach_not_before(&self) -> Option<Instant> {
        (self.busy.not_before != 0).then_some(self.busy.not_before)
    }

    /// Initiator: the acceptor answered our new session with `Busy` (its
    /// queue of sessions waiting for `accept` is full). Transient: the
    /// attachment ends and the next link comes after a backoff, from
    /// `retry_delay_ms` doubling up to `timeout_ms`, until
    /// `connect_timeout_ms` after the first `Busy`; then the session ends
    /// with `Rejected(Busy)`.
    // r[impl core.burst]
    pub(super) fn on_busy(&mut self, now: Instant) {
        if self.busy.give_up_at == 0 {
            // Times are milliseconds since the clock's epoch: no sum
            // overflows (as in `next_deadline`).
            self.busy.give_up_at = now.wrapping_add(u64::from(self.config.connect_timeout_ms)).max(1);
        }
        if now >= self.busy.give_up_at {
            self.end(SessionError::Rejected(RejectReason::Busy));
            return;
        }
        let first = u64::from(self.config.retry_delay_ms.max(1));
        let backoff = (first << self.busy.retries.min(16)).min(u64::from(self.config.timeout_ms).max(first));
        self.busy.retries = self.busy.retries.saturating_add(1);
        self.busy.not_before = now.wrapping_add(backoff);
        self.stats.busy_retries = self.stats.busy_retries.saturating_add(1);
        state_info!("stable: the acceptor is busy; trying again in {} ms", backoff);
        self.detach_with(Detach::Busy);
    }

    /// Acceptor: whether `key` resumes this session.
    pub fn knows_key(&self, key: &ResumeKey) -> bool {
        self.ending.ended().is_none()
            && (self.keys.current.as_ref() == Some(key) || self.keys.presented.as_ref() == Some(key))
    }

    /// Acceptor: refuse the initiator's hello on the current attachment
    /// with `reason` (a `Reject` frame), e.g. when a table is full.
    pub fn reject(&mut self, reason: RejectReason) {
        self.reject_reason = reason;
        self.send_reject = true;
        self.wakes |= Wakes::TRANSMIT;
    }

    /// Milliseconds since the last frame arrived (or the last attachment
    /// began), on the caller's clock.
    pub fn silent_for(&self, now: Instant) -> u64 {
        now.saturating_sub(self.last_rx)
    }

    /// The driver's clock starts at `now`: the session has been silent
    /// since then, not since the clock's epoch.
    pub(crate) fn start_clock(&mut self, now: Instant) {
        self.last_rx = now;
        self.last_tx = now;
    }

    /// Whether a link is attached (handshake or data phase).
    pub fn has_link(&self) -> bool {
        !matches!(self.phase, Phase::Detached)
    }

    /// Drops an outstanding wake of the transmitter: a driver that runs
    /// its transmitter right after, in the same task, saves itself a poll.
    pub(crate) fn skip_transmit_wake(&mut self) {
        self.wakes &= !Wakes::TRANSMIT;
    }

    /// The outstanding wakes, cleared.
    pub fn take_wakes(&mut self) -> Wakes {
        Wakes(core::mem::take(&mut self.wakes))
    }

    /// Whether the current attachment ended ([`take_detach`](Self::take_detach)
    /// says why).
    pub(crate) fn has_detach(&self) -> bool {
        !self.detach.is_none()
    }

    /// Why the current attachment ended, once (the driver drops the link).
    pub fn take_detach(&mut self) -> Option<Detach> {
        self.detach.take()
    }

    /// Ends the session with `error` (the first error wins); everyone
    /// waiting wakes to it.
    pub fn end(&mut self, error: SessionError) {
        // A refusal waiting for our prologue gives way too: the session
        // ends now.
        if self.ending.ended().is_none() {
            self.ending = Ending::Ended(error);
        }
        self.ended_now();
    }

    /// What follows the end: the attachment is over and everyone waiting
    /// wakes to it.
    pub(super) fn ended_now(&mut self) {
        self.detach_with(Detach::Ended);
        self.wakes |= Wakes::WRITER | Wakes::READER | Wakes::TRANSMIT;
    }

    pub(super) fn detach_with(&mut self, why: Detach) {
        if !matches!(self.phase, Phase::Detached) || self.detach.is_none() {
            self.detach = ZeroOption::Some(why);
        }
        self.phase = Phase::Detached;
        self.send_prologue = false;
        self.send_hello = false;
        self.send_reject = false;
        self.wakes |= Wakes::DETACH;
    }

    /// The link source will give no more links. A session that has
    /// everything completes (its peer left first); any other ends with
    /// [`SessionError::SourceClosed`].
    pub fn source_closed(&mut self) {
        if self.finished() {
            self.complete = true;
            self.wakes |= Wakes::DETACH;
        } else {
            self.end(SessionError::SourceClosed);
        }
    }

    /// Both directions are done: our close is acked, the peer's close (or
    /// our receiver's absence) is settled and acked.
    pub(super) fn finished(&self) -> bool {
        self.tx.closed
            && self.tx.ring.is_empty()
            && (self.rx.peer_closed || self.rx.receiver_gone)
            && self.rx.unacked == 0
    }
}
