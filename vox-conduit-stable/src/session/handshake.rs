//! The handshake of every attachment: prologues, hellos, resume keys
//! (issued by the acceptor, presented by the initiator), refusals, and
//! the resume that replays what the peer has not acknowledged.

use super::*;

impl Session<'_> {
    pub(super) fn local_prologue(&self) -> Prologue {
        Prologue::new(ConduitMode::Stable, self.state.role, self.state.fingerprint)
    }

    pub(super) fn on_prologue(&mut self, role: SessionRole, now: Instant, bytes: &[u8]) {
        let local = self.local_prologue();
        match Prologue::decode(bytes).and_then(|p| local.check_peer(&p)) {
            Err(e) if e.is_refusal() => {
                // Refused for good. Answer with our prologue first, so that
                // the peer finds the same mismatch (within one round trip)
                // instead of waiting for ours; then the session ends.
                // r[impl stable.refusal]
                let s = &mut *self.state;
                if s.ending.ended().is_none() {
                    s.ending = Ending::Refusing(SessionError::Refused(HandshakeError::Prologue(e)));
                }
                s.send_prologue = true;
                s.wakes |= Wakes::TRANSMIT;
            }
            Err(_) => self.state.detach_with(Detach::Malformed(FrameError::Malformed)),
            Ok(()) => {
                let s = &mut *self.state;
                let mut h = match s.phase {
                    Phase::Handshake(h) => h,
                    // The peer started a new attachment on this byte stream
                    // (its previous link died on its side): handshake again
                    // on this link.
                    _ => {
                        s.send_prologue = true;
                        Handshake { started: now, prologue_at: now, peer_prologue: false }
                    }
                };
                match role {
                    // Repeats answer our earlier prologues: one hello each
                    // time we (re)started.
                    SessionRole::Initiator if !h.peer_prologue => s.send_hello = true,
                    SessionRole::Initiator => {}
                    SessionRole::Acceptor => s.send_prologue = true,
                }
                h.peer_prologue = true;
                s.phase = Phase::Handshake(h);
                s.wakes |= Wakes::TRANSMIT;
            }
        }
    }

    pub(super) fn on_frame(
        &mut self,
        role: SessionRole,
        now: Instant,
        frame: WireFrame<'_>,
        store: impl FnOnce(usize, &[u8]),
    ) {
        match self.state.phase {
            Phase::Handshake(h) => match frame {
                WireFrame::Hello(hello) if h.peer_prologue => match role {
                    SessionRole::Initiator => self.initiator_hello(now, hello),
                    SessionRole::Acceptor => self.acceptor_hello(now, hello),
                },
                WireFrame::Reject(reason) if h.peer_prologue && role == SessionRole::Initiator => match reason {
                    RejectReason::Busy => self.state.on_busy(now),
                    RejectReason::SessionUnknown => self.state.end(SessionError::SessionLost),
                    other => self.state.end(SessionError::Rejected(other)),
                },
                // A frame of an earlier link still on the line.
                _ => {}
            },
            Phase::Attached => self.on_data_phase_frame(now, frame, store),
            Phase::Detached => {}
        }
    }

    /// Initiator: the acceptor's hello carries our next resume key.
    pub(super) fn initiator_hello(&mut self, now: Instant, hello: Hello) {
        let Some(key) = hello.key else { return };
        self.state.keys.current = Some(key);
        self.resume(now, hello);
    }

    /// Acceptor: checks the initiator's resume key; issues a new one.
    // r[impl stable.session-lost]
    pub(super) fn acceptor_hello(&mut self, now: Instant, hello: Hello) {
        let s = &mut *self.state;
        let keys = s.keys;
        let confirmed = keys.confirmed || keys.presented.is_some() || s.rx.next != 0;
        let accepted = match (keys.established, hello.key) {
            (false, None) => true,
            // Our first hello died with its link before the initiator read
            // it: it never had a key nor sent a frame: the same session.
            (true, None) if !confirmed => true,
            // The latest key, or the one before it if the hello that
            // carried the latest died with its link.
            (true, Some(k)) if Some(k) == keys.current || Some(k) == keys.presented => true,
            // The initiator started over: our session is gone.
            (true, None) => {
                s.end(SessionError::SessionLost);
                return;
            }
            // A key we do not know (we restarted, or it is stale).
            (_, Some(_)) => false,
        };
        if !accepted {
            s.reject(RejectReason::SessionUnknown);
            return;
        }
        // A new key only when the hello proves the initiator holds our
        // latest one (or it has none yet). Any other accepted hello may be
        // a stale one (a byte stream outlives its links: it was sent before
        // our hello carrying `current` arrived, and read by a later link of
        // ours), so the initiator may hold `current` already: re-issue it,
        // so that the keys we accept stay the ones it can hold. (A handshake
        // restarted on the same link has no fresh key: it re-issues too.)
        let proven = !keys.established || (hello.key.is_some() && hello.key == keys.current);
        let issue = if proven { keys.fresh.or(keys.current) } else { keys.current };
        let Some(issue) = issue else { return };
        s.keys.presented = hello.key;
        s.keys.current = Some(issue);
        if proven {
            s.keys.fresh = None;
        }
        s.send_hello = true;
        self.resume(now, hello);
    }

    /// The handshake is done: the peer expects `hello.next_expected` next.
    /// Drop what it has, resend the rest in order before anything new.
    // r[impl stable.replay.order]
    pub(super) fn resume(&mut self, now: Instant, hello: Hello) {
        let s = &mut *self.state;
        let (oldest, sent) = (s.tx.base_seq, s.tx.sent_high);
        let next = hello.next_expected;
        if seq_before(next, oldest) || seq_before(sent, next) {
            s.stats.violations += 1;
            let v = Violation::ResumeOutOfRange { next_expected: next, oldest, sent };
            s.end(SessionError::Violation(v));
            return;
        }
        if s.keys.established {
            s.stats.reattachments += 1;
        }
        s.keys.established = true;
        s.busy = BusyRetry::NONE;
        s.wakes |= Wakes::WRITER;
        s.phase = Phase::Attached;
        s.tx.next_to_send = oldest;
        s.tx.send_off = s.tx.base_off;
        s.rx.ack_now = true;
        // Whichever of our hellos the peer answered (an earlier one, or
        // one read late from the byte stream), our next `Data` frame
        // carries the window: none on this attachment has yet.
        s.rx.carried_seq = s.rx.next;
        s.rx.carried_off = s.rx.off;
        s.last_rx = now;
        s.wakes |= Wakes::TRANSMIT;
        let _replaying = sent.wrapping_sub(next);
        state_info!(
            "stable: attached (reattachments {}), peer expects seq {}, replaying {} frames",
            s.stats.reattachments,
            next,
            _replaying
        );
        self.on_ack(FrameKind::Hello, next, Some(hello.window));
    }
}
