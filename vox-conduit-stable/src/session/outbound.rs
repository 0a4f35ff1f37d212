//! The sending direction: the replay ring (messages kept until the peer
//! acknowledges them), the peer's window, what goes on the wire next
//! ([`Session::transmit`]) and the application's side of sending
//! ([`Session::try_reserve`], [`Session::push_message`]).

use super::*;

/// One message (or the close marker) in the replay ring: 8 bytes. Its
/// stream offset is not kept: the entries are consecutive in the stream,
/// so the session tracks the offsets of the oldest and the next to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxEntry {
    start: u32,
    /// The length, and [`CLOSE_MARKER`] for the close marker.
    len_close: u32,
}

/// The bit of [`TxEntry::len_close`] that marks the close marker (whose
/// length is 0); lengths are below 2^30 (a ring's capacity).
const CLOSE_MARKER: u32 = 1 << 31;

impl TxEntry {
    /// An unused entry, for array initialisers.
    pub const EMPTY: Self = Self { start: 0, len_close: 0 };

    fn message(start: usize, len: usize) -> Self {
        Self { start: start as u32, len_close: len as u32 & !CLOSE_MARKER }
    }

    fn close_marker(start: usize) -> Self {
        Self { start: start as u32, len_close: CLOSE_MARKER }
    }

    pub(super) fn is_close(&self) -> bool {
        self.len_close & CLOSE_MARKER != 0
    }

    /// The length as a stream offset difference.
    fn len32(&self) -> u32 {
        self.len_close & !CLOSE_MARKER
    }
}

impl Span for TxEntry {
    fn start(&self) -> usize {
        self.start as usize
    }
    fn len(&self) -> usize {
        self.len32() as usize
    }
}

/// A frame to send: the prologue's bytes or a stable frame.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    /// The link prologue (raw bytes).
    Prologue(&'a [u8]),
    /// A stable frame (postcard).
    Frame(WireFrame<'a>),
}

impl Outgoing<'_> {
    /// Encoded length.
    pub fn len(&self) -> usize {
        match self {
            Self::Prologue(b) => b.len(),
            Self::Frame(f) => f.encoded_len(),
        }
    }

    /// Whether the encoding is empty (never: kept for the `len` lint).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the encoding into `buf` (exactly [`len`](Self::len) bytes).
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), LinkError> {
        match self {
            Self::Prologue(b) => {
                let max = buf.len();
                buf.get_mut(..b.len()).ok_or(LinkError::TooLarge { len: b.len(), max })?.copy_from_slice(b);
                Ok(())
            }
            Self::Frame(f) => {
                // `ok_or_else`: the length is computed only for the error
                // (it costs as much as the header's encoding).
                let max = buf.len();
                f.encode(buf).map(|_| ()).ok_or_else(|| LinkError::TooLarge { len: f.encoded_len(), max })
            }
        }
    }
}

/// The kind of the next frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Prologue,
    Hello,
    Reject,
    Data,
    Ack,
}

/// The replay ring's bytes: the buffer's, at most [`MAX_RING_BYTES`] (an
/// entry keeps its length in 30 bits; a larger buffer given to a
/// `Session` by hand is used only that far).
fn tx_capacity(tx_bytes: &[u8]) -> usize {
    tx_bytes.len().min(MAX_RING_BYTES)
}

impl Session<'_> {
    /// The peer has everything before `ack` and can take `window` more.
    /// `false` if the frame broke the protocol (the attachment ends).
    /// Inlined on hosts (feature `std`): every frame received carries an
    /// ack; one copy on small targets.
    // r[impl stable.flow.window]
    #[cfg_attr(feature = "std", inline(always))]
    pub(super) fn on_ack(&mut self, frame: FrameKind, ack: u32, window: Option<Window>) -> bool {
        let s = &mut *self.state;
        if seq_before(s.tx.sent_high, ack) {
            s.stats.violations += 1;
            s.detach_with(Detach::Violation(Violation::AckAhead { frame, ack, sent: s.tx.sent_high }));
            return false;
        }
        if seq_before(ack, s.tx.base_seq) {
            // Older than an ack already seen: nothing new, window included.
            return true;
        }
        let mut freed = false;
        while seq_before(s.tx.base_seq, ack) {
            let Some(e) = s.tx.ring.pop_front(self.tx_entries) else { break };
            s.tx.base_seq = s.tx.base_seq.wrapping_add(1);
            s.tx.base_off = s.tx.base_off.wrapping_add(e.len32());
            freed = true;
        }
        if s.tx.ring.is_empty() {
            s.tx.base_off = s.tx.next_off;
        }
        if seq_before(s.tx.next_to_send, ack) {
            // Everything before `ack` is gone: the next to send is the
            // oldest kept.
            s.tx.next_to_send = ack;
            s.tx.send_off = s.tx.base_off;
        }
        if let Some(w) = window {
            let (limit_seq, limit_off) = (ack.wrapping_add(w.msgs), s.tx.base_off.wrapping_add(w.bytes));
            if seq_before(s.tx.limit_seq, limit_seq) || seq_before(s.tx.limit_off, limit_off) {
                s.tx.limit_seq = seq_max(s.tx.limit_seq, limit_seq);
                s.tx.limit_off = seq_max(s.tx.limit_off, limit_off);
                s.wakes |= Wakes::TRANSMIT;
            }
        }
        if freed {
            self.replay_changed();
            self.state.wakes |= Wakes::WRITER;
        }
        true
    }

    /// The next frame to send, and whether data waits for the peer's
    /// window. Inlined on hosts (feature `std`), with `poll_outgoing`:
    /// asked about once per frame sent.
    #[cfg_attr(feature = "std", inline)]
    pub(super) fn next_outgoing(&self) -> (Option<Kind>, bool) {
        let s = &*self.state;
        match s.phase {
            Phase::Detached => return (None, false),
            _ if s.send_prologue => return (Some(Kind::Prologue), false),
            _ if s.ending.is_refusing() => return (None, false),
            _ if s.send_hello => return (Some(Kind::Hello), false),
            _ if s.send_reject => return (Some(Kind::Reject), false),
            Phase::Handshake(_) => return (None, false),
            Phase::Attached => {}
        }
        if self.state.finished() && !s.done_sent {
            return (Some(Kind::Ack), false);
        }
        let i = s.tx.next_to_send.wrapping_sub(s.tx.base_seq) as usize;
        let mut blocked = false;
        if let Some(&e) = s.tx.ring.get(self.tx_entries, i) {
            let seq = s.tx.next_to_send;
            let off = s.tx.send_off;
            let fits = seq_before(seq, s.tx.limit_seq)
                && !seq_before(s.tx.limit_off, off)
                && s.tx.limit_off.wrapping_sub(off) >= e.len32();
            if e.is_close() || fits {
                return (Some(Kind::Data), false);
            }
            blocked = true;
        }
        ((s.rx.ack_now || s.rx.unacked >= s.config.ack_every).then_some(Kind::Ack), blocked)
    }

    /// The next frame to send; counts a wait for the peer's window (once
    /// per wait) when data is ready but may not go.
    #[cfg_attr(feature = "std", inline)]
    pub(crate) fn poll_outgoing(&mut self) -> Option<Kind> {
        let (kind, blocked) = self.next_outgoing();
        let tx = &mut self.state.tx;
        if blocked && !tx.window_blocked {
            self.state.stats.window_waits += 1;
        }
        self.state.tx.window_blocked = blocked;
        kind
    }

    /// Whether [`transmit`](Self::transmit) has a frame to send now.
    pub fn wants_transmit(&mut self) -> bool {
        self.poll_outgoing().is_some()
    }

    /// The next frame to send, if any, handed to `write` (which encodes it
    /// into the link and commits). Once `write` succeeds the session counts
    /// the frame as sent. `None`: nothing to send now.
    // r[impl stable.ack]
    pub fn transmit<E>(
        &mut self,
        now: Instant,
        write: impl FnOnce(&Outgoing<'_>) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let kind = self.poll_outgoing()?;
        self.transmit_kind(now, kind, write)
    }

    /// [`transmit`](Self::transmit) of a frame of `kind`, which
    /// [`poll_outgoing`](Self::poll_outgoing) just returned under the same
    /// lock (a driver sending a burst asks once per frame).
    pub(crate) fn transmit_kind<E>(
        &mut self,
        now: Instant,
        kind: Kind,
        write: impl FnOnce(&Outgoing<'_>) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let ack = self.state.rx.next;
        let mut buf = [0u8; PROLOGUE_MAX_LEN];
        // Data: the entry sent and whether the frame carries the window;
        // Ack: whether it says we are done.
        let (mut entry, mut flag) = (TxEntry::EMPTY, false);
        let out = match kind {
            Kind::Prologue => {
                let n = self.local_prologue().encode(&mut buf).unwrap_or(0);
                Outgoing::Prologue(buf.get(..n).unwrap_or(&[]))
            }
            Kind::Hello => {
                let window = self.grant_window();
                let key = self.state.keys.current;
                Outgoing::Frame(WireFrame::Hello(Hello { key, next_expected: ack, window }))
            }
            Kind::Reject => Outgoing::Frame(WireFrame::Reject(self.state.reject_reason)),
            Kind::Data => {
                let window = self.granted_window();
                let carry_window = self.window_due();
                let s = &*self.state;
                let seq = s.tx.next_to_send;
                let i = seq.wrapping_sub(s.tx.base_seq) as usize;
                let e = *s.tx.ring.get(self.tx_entries, i)?;
                (entry, flag) = (e, carry_window);
                Outgoing::Frame(if e.is_close() {
                    WireFrame::Close { seq, ack }
                } else {
                    let msg = self.tx_bytes.get(e.start()..e.end()).unwrap_or(&[]);
                    // r[impl core.wire-bytes]
                    // The receiver restores `seq` from the number it
                    // expects, which lies between our oldest unacked frame
                    // and one past the highest sent (links keep order);
                    // and `ack` from its own `sent_high`, at most one past
                    // the largest limit we ever granted.
                    let outstanding = seq_max(s.tx.sent_high, seq.wrapping_add(1)).wrapping_sub(s.tx.base_seq);
                    WireFrame::Data {
                        seq: WireSeq::compact(seq, outstanding <= SEQ_LOW_SPAN),
                        ack: WireSeq::compact(ack, s.rx.granted_seq.wrapping_sub(ack) < ACK_LOW_SPAN),
                        window: carry_window.then_some(window),
                        msg,
                    }
                })
            }
            Kind::Ack => {
                let window = self.grant_window();
                flag = self.state.finished();
                let next = self.state.tx.next_to_send;
                Outgoing::Frame(WireFrame::Ack { ack, next, window, done: flag })
            }
        };
        let result = write(&out);
        if result.is_ok() {
            let s = &mut *self.state;
            match kind {
                Kind::Prologue => {
                    s.send_prologue = false;
                    if let Phase::Handshake(h) = &mut s.phase {
                        h.prologue_at = now;
                    }
                    if s.ending.refusal_ends() {
                        s.ended_now();
                    }
                }
                Kind::Hello => {
                    s.send_hello = false;
                    self.sent_window(false);
                }
                Kind::Reject => {
                    s.send_reject = false;
                    s.detach_with(Detach::Refused);
                }
                Kind::Data => {
                    let seq = s.tx.next_to_send;
                    s.tx.next_to_send = seq.wrapping_add(1);
                    s.tx.send_off = s.tx.send_off.wrapping_add(entry.len32());
                    if seq_before(seq, s.tx.sent_high) {
                        s.stats.replays += 1;
                    } else {
                        s.tx.sent_high = seq.wrapping_add(1);
                    }
                    if !entry.is_close() && flag {
                        self.sent_window(true);
                    }
                }
                Kind::Ack => {
                    s.stats.acks_sent += 1;
                    s.done_sent |= flag;
                    self.sent_window(false);
                }
            }
        }
        if result.is_ok() {
            let s = &mut *self.state;
            s.stats.frames_sent += 1;
            s.last_tx = now;
            if matches!(kind, Kind::Data | Kind::Ack) {
                s.rx.unacked = 0;
                s.rx.ack_now = false;
            }
            self.check_complete();
        }
        Some(result)
    }

    /// The window just granted (and every ack before it) went out, on a
    /// frame whose loss the peer detects as a gap (`Data`), or not
    /// (`Hello`, `Ack`).
    pub(super) fn sent_window(&mut self, loss_detected: bool) {
        let rx = &mut self.state.rx;
        rx.advertised_seq = rx.granted_seq;
        rx.advertised_off = rx.granted_off;
        if loss_detected {
            rx.carried_seq = rx.granted_seq;
            rx.carried_off = rx.granted_off;
        }
    }

    pub(super) fn check_complete(&mut self) {
        let s = &mut *self.state;
        if !s.complete && s.finished() && s.done_sent && s.peer_done {
            s.complete = true;
            s.detach_with(Detach::Finished);
        }
    }

    /// Reserves room for one message of up to `max_message` bytes in the
    /// replay ring (and keeps an entry for the close marker). `Ok(false)`:
    /// no room now; wait for [`Wakes::WRITER`].
    // r[impl stable.replay]
    pub fn try_reserve(&mut self) -> Result<bool, SendError> {
        let s = &*self.state;
        if let Some(e) = s.ending.ended() {
            return Err(SendError::Session(*e));
        }
        if s.tx.closed {
            return Err(SendError::Closed);
        }
        let room = self.replay_room();
        let s = &mut *self.state;
        if s.tx.writer_active || !room {
            s.tx.writer_waiting = true;
            return Ok(false);
        }
        s.tx.writer_active = true;
        s.tx.writer_waiting = false;
        s.tx.stalled_since = Since::NONE;
        Ok(true)
    }

    /// Room for one more message in the replay ring (and the entry kept
    /// for the close marker). Nothing is reported sent before the first
    /// handshake: a refused one then fails `reserve` instead of
    /// swallowing messages.
    pub(super) fn replay_room(&self) -> bool {
        let s = &*self.state;
        s.keys.established
            && s.tx.ring.len() + 2 <= self.tx_entries.len()
            && s.tx.ring.free_region(self.tx_entries, tx_capacity(self.tx_bytes), s.config.max_message).is_some()
    }

    /// Whether a waiting `reserve` would end now ([`try_reserve`](Self::try_reserve)
    /// returns other than `Ok(false)`): a writer is woken only then, so
    /// none polls in vain.
    pub fn writer_may_proceed(&self) -> bool {
        let s = &*self.state;
        s.ending.ended().is_some() || s.tx.closed || (!s.tx.writer_active && self.replay_room())
    }

    /// Hosts: the reservation just used by a push is kept for the same
    /// half's next message if [`try_reserve`](Self::try_reserve) would
    /// grant it now; `false` (and the reservation still held) otherwise.
    #[cfg(feature = "std")]
    pub(crate) fn reserve_again(&mut self) -> bool {
        if self.writer_may_not_reserve() || !self.replay_room() {
            return false;
        }
        let tx = &mut self.state.tx;
        tx.writer_waiting = false;
        tx.stalled_since = Since::NONE;
        true
    }

    /// Hosts: a `reserve` would end with an error now (the session ended,
    /// or the half closed).
    #[cfg(feature = "std")]
    pub(crate) fn writer_may_not_reserve(&self) -> bool {
        self.state.ending.ended().is_some() || self.state.tx.closed
    }

    /// Writers wait for room (queued behind the one that reserves): the
    /// self-stall count watches them.
    pub fn note_writer_waiting(&mut self) {
        self.state.tx.writer_waiting = true;
    }

    /// The reservation ends (its message was pushed or abandoned).
    pub fn end_reserve(&mut self) {
        self.state.tx.writer_active = false;
        self.state.wakes |= Wakes::WRITER;
    }

    /// Stores the next message after a successful
    /// [`try_reserve`](Self::try_reserve): `encode` writes it into a
    /// region of `max_message` bytes and returns its length (one encoding
    /// pass). Nothing changes when `encode` fails.
    pub fn push_message(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, SendError>,
    ) -> Result<(), SendError> {
        let s = &mut *self.state;
        if let Some(e) = s.ending.ended() {
            return Err(SendError::Session(*e));
        }
        let max = s.config.max_message;
        let Some((start, wraps)) = s.tx.ring.free_region(self.tx_entries, tx_capacity(self.tx_bytes), max) else {
            return Err(SendError::TooLarge { max });
        };
        let region = self.tx_bytes.get_mut(start..start + max).ok_or(SendError::TooLarge { max })?;
        let len = encode(region)?.min(max);
        s.tx.ring.push(self.tx_entries, TxEntry::message(start, len), wraps);
        s.tx.next_seq = s.tx.next_seq.wrapping_add(1);
        s.tx.next_off = s.tx.next_off.wrapping_add(len as u32);
        s.wakes |= Wakes::TRANSMIT;
        self.replay_changed();
        Ok(())
    }

    /// The application closed (or dropped) its sending half: the close
    /// marker follows every message pushed so far.
    pub fn close_tx(&mut self) {
        let s = &mut *self.state;
        if s.tx.closed {
            return;
        }
        s.tx.closed = true;
        // `try_reserve` always keeps an entry free for this marker.
        if let Some((start, wraps)) = s.tx.ring.free_region(self.tx_entries, tx_capacity(self.tx_bytes), 0)
            && s.tx.ring.push(self.tx_entries, TxEntry::close_marker(start), wraps)
        {
            s.tx.next_seq = s.tx.next_seq.wrapping_add(1);
        }
        s.wakes |= Wakes::TRANSMIT | Wakes::WRITER;
        self.replay_changed();
    }

    pub(super) fn replay_changed(&mut self) {
        let s = &mut *self.state;
        let frames = s.tx.ring.len() as u32;
        // Stream offsets: the stored messages are exactly those between.
        let bytes = s.tx.next_off.wrapping_sub(s.tx.base_off);
        let st = &mut s.stats;
        st.replay_frames = frames;
        st.replay_bytes = bytes;
        st.replay_frames_high = st.replay_frames_high.max(frames);
        st.replay_bytes_high = st.replay_bytes_high.max(bytes);
    }
}
