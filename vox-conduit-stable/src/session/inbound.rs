//! The receiving direction: data frames and acks from the peer, the
//! receive ring (messages lent to the application until released) and
//! the window granted to the peer.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub(super) enum RxState {
    /// Waiting for the application.
    #[default]
    Queued = 0,
    /// The application holds it.
    Lent,
    /// The application is done with it; freed once older ones are.
    Released,
}

/// One received message in the receive ring: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxEntry {
    start: u32,
    /// The length in the low 30 bits (a ring's capacity is below 2^30),
    /// the [`RxState`] in the top two.
    len_state: u32,
}

/// Where [`RxEntry::len_state`] keeps the state.
const STATE_SHIFT: u32 = 30;
const LEN_MASK: u32 = (1 << STATE_SHIFT) - 1;

impl RxEntry {
    /// An unused entry, for array initialisers.
    pub const EMPTY: Self = Self { start: 0, len_state: 0 };

    fn queued(start: usize, len: usize) -> Self {
        Self { start: start as u32, len_state: len as u32 & LEN_MASK }
    }

    fn state(&self) -> RxState {
        match self.len_state >> STATE_SHIFT {
            0 => RxState::Queued,
            1 => RxState::Lent,
            _ => RxState::Released,
        }
    }

    /// The application holds this message (its bytes are lent).
    pub(crate) fn is_lent(&self) -> bool {
        self.state() == RxState::Lent
    }

    fn set_state(&mut self, state: RxState) {
        self.len_state = (self.len_state & LEN_MASK) | ((state as u32) << STATE_SHIFT);
    }
}

impl Span for RxEntry {
    fn start(&self) -> usize {
        self.start as usize
    }
    fn len(&self) -> usize {
        (self.len_state & LEN_MASK) as usize
    }
}

/// A received message handed to the application: where its bytes are in
/// the receive buffer, and the token that frees them
/// ([`Session::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Give it back to [`Session::release`].
    pub token: usize,
    /// Offset of the message in the receive buffer.
    pub start: usize,
    /// Length of the message.
    pub len: usize,
}

impl Session<'_> {
    pub(super) fn on_data_phase_frame(&mut self, now: Instant, frame: WireFrame<'_>, store: impl FnOnce(usize, &[u8])) {
        if !matches!(frame, WireFrame::Hello(_) | WireFrame::Reject(_)) {
            self.state.keys.confirmed = true;
        }
        // A message or the close marker: acked, then delivered (one call
        // of each for both).
        let (kind, seq, ack, window, msg) = match frame {
            WireFrame::Ack { ack, next, window, done } => {
                if !self.on_ack(FrameKind::Ack, ack, Some(window)) {
                    return;
                }
                self.coalesce_keepalive(now);
                let s = &mut *self.state;
                if done && !s.peer_done {
                    s.peer_done = true;
                    s.wakes |= Wakes::TRANSMIT;
                }
                if seq_before(s.rx.next, next) {
                    // Frames sent before this ack never arrived.
                    s.stats.gaps += 1;
                    s.detach_with(Detach::FramesLost { expected: s.rx.next, next });
                }
                return;
            }
            WireFrame::Data { seq, ack, window, msg } => (
                FrameKind::Data,
                seq.resolve_seq(self.state.rx.next),
                ack.resolve_ack(self.state.tx.sent_high),
                window,
                Some(msg),
            ),
            WireFrame::Close { seq, ack } => (FrameKind::Close, seq, ack, None, None),
            // Late handshake frames of this or an earlier link.
            WireFrame::Hello(_) | WireFrame::Reject(_) => return,
        };
        if self.on_ack(kind, ack, window) {
            self.deliver(now, seq, msg, store);
        }
    }

    // r[impl stable.seq]
    // r[impl stable.gap]
    pub(super) fn deliver(&mut self, now: Instant, seq: u32, msg: Option<&[u8]>, store: impl FnOnce(usize, &[u8])) {
        let s = &mut *self.state;
        if seq_before(seq, s.rx.next) {
            // Already have it (a replay after a lost ack): drop, re-ack.
            s.stats.duplicates += 1;
            s.rx.ack_now = true;
            s.wakes |= Wakes::TRANSMIT;
            return;
        }
        if seq != s.rx.next {
            s.stats.gaps += 1;
            s.detach_with(Detach::Gap { expected: s.rx.next, got: seq });
            return;
        }
        match msg {
            Some(msg) => {
                if !s.rx.receiver_gone {
                    let Some((start, wraps)) = s.rx.ring.free_region(self.rx_entries, s.rx.capacity, msg.len()) else {
                        // Beyond the window we granted: dropped unacked
                        // (its ack field was processed). The next frame is
                        // a gap, and the replay brings this one again.
                        s.stats.beyond_window += 1;
                        return;
                    };
                    store(start, msg);
                    let entry = RxEntry::queued(start, msg.len());
                    s.rx.ring.push(self.rx_entries, entry, wraps);
                    s.wakes |= Wakes::READER;
                }
                s.rx.off = s.rx.off.wrapping_add(msg.len() as u32);
                s.stats.messages_delivered += 1;
            }
            None => {
                s.rx.peer_closed = true;
                s.rx.ack_now = true;
                s.wakes |= Wakes::READER;
            }
        }
        s.rx.next = seq.wrapping_add(1);
        #[cfg(feature = "std")]
        {
            s.rx.granted_now = false;
        }
        if s.rx.unacked == 0 {
            s.rx.first_unacked_at = now;
        }
        s.rx.unacked += 1;
        if s.rx.ack_now || s.rx.unacked >= s.config.ack_every {
            s.wakes |= Wakes::TRANSMIT;
        }
        // This message may have used the last of the credit the peer heard
        // while the ring still has room (its releases came before it).
        self.update_closed_window();
    }

    /// The receive window from `rx.next`, granted now (never less than
    /// before).
    pub(super) fn grant_window(&mut self) -> Window {
        let s = &mut *self.state;
        let (msgs, bytes) = if !s.rx.receiver_gone {
            let free = self.rx_entries.len().saturating_sub(s.rx.ring.len());
            let bytes = s.rx.ring.guaranteed_bytes(self.rx_entries, s.rx.capacity, s.config.max_message);
            (free, bytes)
        } else {
            // Messages are dropped on arrival: any amount fits.
            (self.rx_entries.len(), s.rx.capacity)
        };
        let limit_seq = s.rx.next.wrapping_add(msgs as u32);
        let limit_off = s.rx.off.wrapping_add(bytes as u32);
        s.rx.granted_seq = seq_max(s.rx.granted_seq, limit_seq);
        // Never below `next`/`off`: the new limits are at or past them.
        s.rx.granted_off = seq_max(s.rx.granted_off, limit_off);
        #[cfg(feature = "std")]
        {
            s.rx.granted_now = true;
        }
        Window { msgs: s.rx.granted_seq.wrapping_sub(s.rx.next), bytes: s.rx.granted_off.wrapping_sub(s.rx.off) }
    }

    /// [`grant_window`](Self::grant_window)'s answer; on hosts (feature
    /// `std`) without computing it again when nothing it depends on
    /// changed since it last ran (the receive ring, `next`, `off`, the
    /// receiver's presence): a sender's receive ring is idle while it
    /// sends, and every `Data` frame asks.
    #[cfg_attr(feature = "std", inline)]
    pub(super) fn granted_window(&mut self) -> Window {
        #[cfg(feature = "std")]
        if self.state.rx.granted_now {
            let rx = &self.state.rx;
            let window =
                Window { msgs: rx.granted_seq.wrapping_sub(rx.next), bytes: rx.granted_off.wrapping_sub(rx.off) };
            // The cache is only as good as the places that clear it: tests
            // compare it with a grant computed again.
            #[cfg(debug_assertions)]
            {
                let (seq, off) = (rx.granted_seq, rx.granted_off);
                let fresh = self.grant_window();
                debug_assert!((self.state.rx.granted_seq, self.state.rx.granted_off) == (seq, off) && fresh == window);
            }
            return window;
        }
        self.grant_window()
    }

    /// Whether the window the peer last heard is too small for one more
    /// message of the largest size.
    pub(super) fn advertised_closed(&self) -> bool {
        let rx = &self.state.rx;
        self.closed(rx.advertised_seq, rx.advertised_off)
    }

    /// Whether limits up to `limit_seq` and `limit_off` leave the peer
    /// less than one message of the largest size.
    fn closed(&self, limit_seq: u32, limit_off: u32) -> bool {
        let rx = &self.state.rx;
        !seq_before(rx.next, limit_seq)
            || (limit_off.wrapping_sub(rx.off) as usize) < self.state.config.max_message
            || seq_before(limit_off, rx.off)
    }

    /// Whether a `Data` frame must carry the window just granted: the
    /// grant moved past the limits the last `Data` frame of this
    /// attachment carried, and the credit those leave the peer has fallen
    /// below one largest message (required, PROTOCOL.md §8) or to half the
    /// grant (TCP's receiver-side silly-window avoidance). A frame without it leaves the peer's
    /// limits as they were, which is always safe. `Hello` and `Ack` frames
    /// always carry the window but do not count here: the peer does not
    /// notice losing one, while a lost `Data` frame is a gap, repaired by
    /// a reattachment.
    pub(super) fn window_due(&self) -> bool {
        let rx = &self.state.rx;
        if (rx.granted_seq, rx.granted_off) == (rx.carried_seq, rx.carried_off) {
            return false;
        }
        let credit = |limit: u32, at: u32| if seq_before(limit, at) { 0 } else { limit.wrapping_sub(at) };
        let (heard_msgs, heard_bytes) = (credit(rx.carried_seq, rx.next), credit(rx.carried_off, rx.off));
        let (grant_msgs, grant_bytes) = (credit(rx.granted_seq, rx.next), credit(rx.granted_off, rx.off));
        self.closed(rx.carried_seq, rx.carried_off) || heard_msgs <= grant_msgs / 2 || heard_bytes <= grant_bytes / 2
    }

    /// The next received message for the application, if any.
    pub fn pop_received(&mut self) -> Option<Received> {
        let s = &mut *self.state;
        let token = s.rx.ring.position(s.rx.delivered, self.rx_entries.len())?;
        let entry = self.rx_entries.get_mut(token)?;
        entry.set_state(RxState::Lent);
        s.rx.delivered += 1;
        Some(Received { token, start: entry.start(), len: entry.len() })
    }

    /// The peer closed its direction and every message before it was
    /// popped.
    pub fn peer_closed(&self) -> bool {
        let rx = &self.state.rx;
        rx.peer_closed && rx.delivered == rx.ring.len()
    }

    /// The application is done with a received message: its room returns
    /// to the window, and a window update goes out at once if the window
    /// had closed. Inlined on hosts (feature `std`) into the storage's
    /// `release_slot`, with `free_released`: once per message received.
    // r[impl stable.flow.update]
    #[cfg_attr(feature = "std", inline)]
    pub fn release(&mut self, token: usize) {
        if let Some(e) = self.rx_entries.get_mut(token) {
            e.set_state(RxState::Released);
        }
        self.free_released();
    }

    /// Frees the released messages at the front of the receive ring, and
    /// owes a window update if the window the peer heard had closed.
    #[cfg_attr(feature = "std", inline(always))]
    pub(super) fn free_released(&mut self) {
        let s = &mut *self.state;
        while s.rx.ring.front(self.rx_entries).is_some_and(|e| e.state() == RxState::Released) {
            s.rx.ring.pop_front(self.rx_entries);
            s.rx.delivered = s.rx.delivered.saturating_sub(1);
        }
        // Hosts: the ring changed (or the receiver went), the grant may grow.
        #[cfg(feature = "std")]
        {
            s.rx.granted_now = false;
        }
        self.update_closed_window();
    }

    /// Owes a window update now if the window the peer last heard has
    /// closed and the receive ring can grant more: the peer may be waiting
    /// for nothing else. Called where the ring or the heard window moves
    /// (a release; a delivery that used the last of the credit while the
    /// ring still has room), so no update waits for the ack timer.
    #[cfg_attr(feature = "std", inline(always))]
    fn update_closed_window(&mut self) {
        let s = &mut *self.state;
        let attached = matches!(s.phase, Phase::Attached);
        if attached && !s.rx.ack_now && self.advertised_closed() {
            let before = (self.state.rx.granted_seq, self.state.rx.granted_off);
            self.grant_window();
            let s = &mut *self.state;
            if (s.rx.granted_seq, s.rx.granted_off) != before {
                s.rx.ack_now = true;
                s.stats.window_updates += 1;
                s.wakes |= Wakes::TRANSMIT;
            }
        }
    }

    /// Whether releasing a message now would owe no window update (see
    /// [`free_released`](Self::free_released)): not attached, an ack owed
    /// already (it carries the window granted when it goes out), or the
    /// window the peer last heard still open. Hosts (feature `std`) let a
    /// release wait for the storage's next lock while this holds.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn release_may_wait(&self) -> bool {
        let s = &*self.state;
        !matches!(s.phase, Phase::Attached) || s.rx.ack_now || !self.advertised_closed()
    }

    /// The application dropped its receiver: messages are acked and
    /// dropped from now on; the ones not yet taken are freed.
    pub fn drop_receiver(&mut self) {
        let s = &mut *self.state;
        s.rx.receiver_gone = true;
        for i in s.rx.delivered..s.rx.ring.len() {
            if let Some(e) = s.rx.ring.position(i, self.rx_entries.len()).and_then(|p| self.rx_entries.get_mut(p)) {
                e.set_state(RxState::Released);
            }
        }
        s.rx.delivered = s.rx.ring.len();
        s.rx.ack_now = true;
        s.wakes |= Wakes::TRANSMIT;
        self.free_released();
    }
}
