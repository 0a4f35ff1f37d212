//! Time in the session core: what falls due when ([`Session::next_deadline`])
//! and what happens when it does ([`Session::on_tick`]): delayed acks,
//! keepalives, handshake repeats, the silence timeout, the linger time and
//! the self-stall count. A driver sleeps until the next deadline (or I/O),
//! never on a fixed tick.

use super::{Detach, Instant, Phase, Session, Since, Wakes, elapsed};
use vox_types::SessionRole;

impl Session<'_> {
    /// Time passed: delayed acks, keepalives, handshake repeats, the
    /// silence timeout and the linger time are checked against `now`.
    // r[impl stable.liveness]
    pub fn on_tick(&mut self, now: Instant) {
        let role = self.state.role;
        self.on_tick_as(role, now);
    }

    /// [`on_tick`](Self::on_tick) with the role known at compile time
    /// (see [`on_receive_as`](Self::on_receive_as)).
    pub(crate) fn on_tick_as(&mut self, role: SessionRole, now: Instant) {
        let s = &mut *self.state;
        let cfg = s.config;
        match s.phase {
            // The backoff after a busy acceptor is over: the next link.
            Phase::Detached => {
                if s.busy.not_before != 0 && now >= s.busy.not_before {
                    s.busy.not_before = 0;
                    s.wakes |= Wakes::DETACH;
                }
            }
            Phase::Handshake(h) => {
                if elapsed(now, h.started) >= u64::from(cfg.timeout_ms) {
                    s.stats.timeouts += 1;
                    s.detach_with(Detach::HandshakeTimeout);
                } else if role == SessionRole::Initiator
                    && elapsed(now, h.prologue_at) >= u64::from(cfg.keepalive_ms.clamp(1, cfg.timeout_ms.max(1)))
                {
                    // Start over on this link: a fresh prologue, whose
                    // answer triggers a fresh hello (a frame may have died
                    // with the peer's previous link).
                    if let Phase::Handshake(h) = &mut s.phase {
                        h.peer_prologue = false;
                    }
                    s.send_prologue = true;
                    s.wakes |= Wakes::TRANSMIT;
                }
            }
            Phase::Attached => {
                if elapsed(now, s.last_rx) >= u64::from(cfg.timeout_ms) {
                    s.stats.timeouts += 1;
                    s.detach_with(Detach::Timeout);
                } else {
                    let ack_due =
                        s.rx.unacked > 0 && elapsed(now, s.rx.first_unacked_at) >= u64::from(cfg.ack_delay_ms);
                    if ack_due || elapsed(now, s.last_tx) >= u64::from(cfg.keepalive_ms) {
                        s.rx.ack_now = true;
                        s.wakes |= Wakes::TRANSMIT;
                    }
                }
            }
        }
        self.check_self_stall(now);
        let s = &mut *self.state;
        if s.finished() {
            let since = s.finished_at.get_or_insert(now);
            if !s.complete && elapsed(now, since) >= u64::from(cfg.linger_ms) {
                // The peer may never confirm (its last ack died with a
                // link and it left): we have everything; leave.
                s.complete = true;
                s.detach_with(Detach::Finished);
            }
        }
    }

    /// When [`on_tick`](Self::on_tick) next has something to do:
    /// [`Instant::MAX`] when nothing is due (no link, or everything
    /// waits for an event), a time already past when something is due
    /// now. A driver sleeps until then or until I/O, whichever is first,
    /// and asks again after every event: an idle attached session so
    /// wakes once per keepalive (and once per peer keepalive, for its
    /// frame).
    // r[impl core.deadline]
    pub fn next_deadline(&self) -> Instant {
        let role = self.state.role;
        self.next_deadline_as(role)
    }

    /// [`next_deadline`](Self::next_deadline) with the role known at
    /// compile time.
    pub(crate) fn next_deadline_as(&self, role: SessionRole) -> Instant {
        let s = &*self.state;
        let cfg = s.config;
        // Times are milliseconds since the clock's epoch: no sum overflows.
        let after = |since: Instant, ms: u32| since.wrapping_add(u64::from(ms));
        let mut due = match s.phase {
            Phase::Detached if s.busy.not_before != 0 => s.busy.not_before,
            Phase::Detached => Instant::MAX,
            Phase::Handshake(h) => {
                let mut due = after(h.started, cfg.timeout_ms);
                // A prologue waiting to go is not repeated.
                if role == SessionRole::Initiator && !s.send_prologue {
                    // `keepalive_ms < timeout_ms` (checked): the clamp in
                    // `on_tick` is this.
                    due = due.min(after(h.prologue_at, cfg.keepalive_ms.max(1)));
                }
                due
            }
            Phase::Attached => {
                let mut due = after(s.last_rx, cfg.timeout_ms);
                // An ack already owed waits for the link, not for time.
                if !s.rx.ack_now {
                    due = due.min(after(s.last_tx, cfg.keepalive_ms));
                    if s.rx.unacked > 0 {
                        due = due.min(after(s.rx.first_unacked_at, cfg.ack_delay_ms));
                    }
                }
                due
            }
        };
        // The self-stall count: its start is taken on a tick (due now),
        // then it is due `timeout_ms` later, once.
        let unread = s.rx.delivered < s.rx.ring.len();
        if s.tx.writer_waiting && unread && self.advertised_closed() {
            match s.tx.stalled_since {
                Since::DONE => {}
                since => due = since.get().map_or(0, |since| due.min(after(since, cfg.timeout_ms))),
            }
        }
        if s.finished() && !s.complete {
            due = s.finished_at.get().map_or(0, |since| due.min(after(since, cfg.linger_ms)));
        }
        due
    }

    /// An `Ack` arrived while attached (a `Data` frame is answered by the
    /// application's reply or a delayed ack instead): if our keepalive is
    /// due within a quarter of `keepalive_ms`, it goes out now, in the
    /// wake-up the frame caused, instead of waking us again shortly. Two
    /// idle sides so fall into step: one side's keepalive, the other's
    /// answer, one wake-up a keepalive period for the answering side.
    /// Keepalives only come earlier, never later (the peer's timeout is
    /// unaffected), and each resets `last_tx`, so a side sends at most one
    /// per three quarters of `keepalive_ms` this way (`keepalive_ms` is at
    /// least 1: checked).
    // r[impl core.deadline]
    pub(super) fn coalesce_keepalive(&mut self, now: Instant) {
        let s = &mut *self.state;
        let keepalive = u64::from(s.config.keepalive_ms);
        // Due within a quarter of it: at least three quarters have passed.
        if elapsed(now, s.last_tx) >= keepalive - keepalive / 4 {
            s.rx.ack_now = true;
            s.wakes |= Wakes::TRANSMIT;
        }
    }

    /// The application waits in `reserve` while messages it was sent sit
    /// unread and our window is shut: if its peer does the same, neither
    /// will ever move (one task that sends more requests than the bound in
    /// [`StableConduit`](crate::StableConduit)'s docs before reading).
    /// Counted once per stall in [`StableStats::self_stalls`] after
    /// `timeout_ms`, and logged with defmt.
    fn check_self_stall(&mut self, now: Instant) {
        let closed = self.advertised_closed();
        let s = &mut *self.state;
        let unread = s.rx.delivered < s.rx.ring.len();
        if !(s.tx.writer_waiting && unread && closed) {
            s.tx.stalled_since = Since::NONE;
            return;
        }
        if s.tx.stalled_since == Since::DONE {
            return;
        }
        let since = s.tx.stalled_since.get_or_insert(now);
        if elapsed(now, since) >= u64::from(s.config.timeout_ms) {
            s.stats.self_stalls += 1;
            s.tx.stalled_since = Since::DONE;
            state_warn!("stable: reserve waits while received messages sit unread: read them in another task");
        }
    }
}
