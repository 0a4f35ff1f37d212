"""The stable conduit's session state machine, sans I/O (docs/PROTOCOL.md,
sections 5 to 10).

A :class:`StableSession` is one side of one session: an initiator (it
dials) or an acceptor serving one session across reconnects. It does no
I/O and reads no clock: every method takes the time ``now`` in
milliseconds (any monotonic origin), and the caller moves bytes.

The caller's loop (see :mod:`vox_embedded.stable_io` for an asyncio one):

* when :meth:`StableSession.want_link` says so (an initiator) or a
  connection arrives (an acceptor), it calls :meth:`StableSession.attach`;
* every payload read from the current link goes to
  :meth:`StableSession.receive`; a link that fails or ends is reported with
  :meth:`StableSession.link_lost`;
* after every call it writes :meth:`StableSession.take_transmit`'s payloads
  on the current link, in order, and closes the link when
  :attr:`StableSession.link_generation` changed or
  :attr:`StableSession.has_link` is false (the session dropped it: a gap,
  a timeout, a violation, ``Busy``);
* it calls :meth:`StableSession.handle_timeout` at
  :meth:`StableSession.poll_timeout`.

The application side: :meth:`StableSession.send` (``False`` while the
replay buffer is full), :meth:`StableSession.recv`,
:meth:`StableSession.close`; :attr:`StableSession.error` is set when the
session ended with an error, :attr:`StableSession.ended` once it left.
"""

from __future__ import annotations

# r[impl py.package]

import enum
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Optional

from .errors import VoxError
from .prologue import (
    MAGIC,
    Mode,
    Prologue,
    PrologueError,
    PrologueRefusal,
    Role,
    check_peer,
    decode_prologue,
)
from .stable_frames import (
    KEY_LEN,
    Ack,
    Close,
    Counter,
    Data,
    Hello,
    MalformedStableFrame,
    Reject,
    RejectReason,
    Window,
    decode_frame,
    encode_frame,
)

__all__ = [
    "StableConfig",
    "StableStats",
    "StableSession",
    "SessionError",
    "SessionRefused",
    "SessionLost",
    "SessionRejected",
    "SessionViolation",
    "ConfigError",
    "DirectionClosed",
    "MessageTooLarge",
    "LinkState",
]

_U32 = 0xFFFF_FFFF
_HALF = 0x8000_0000


def _before(a: int, b: int) -> bool:
    """Wrapping ``a`` before ``b`` (section 5)."""
    return 0 < ((b - a) & _U32) < _HALF


def _signed(d: int) -> int:
    """A wrapping difference as a signed 32-bit number."""
    d &= _U32
    return d - (1 << 32) if d >= _HALF else d


# --------------------------------------------------------------------------
# Configuration, statistics, errors


class ConfigError(ValueError):
    """A configuration that cannot work (refused before anything is sent)."""


@dataclass(frozen=True)
class StableConfig:
    """Tunables of one side, in milliseconds (section 9's table; the
    defaults are its ``DEFAULT`` column) and buffer sizes (this
    implementation's: the replay buffer and the receive buffer, whose free
    room is the window granted to the peer)."""

    #: Largest encoded message this side sends (and the least room the
    #: receive buffer must keep for a window to count as open).
    max_message: int = 200
    #: Send an ``Ack`` after this many received frames without sending.
    ack_every: int = 8
    #: ...or this long after the first of them.
    ack_delay_ms: int = 20
    #: Keepalive after this long without sending; an initiator in a
    #: handshake repeats its prologue this often.
    keepalive_ms: int = 250
    #: An attachment with nothing received for this long is dead; also the
    #: handshake's limit and the longest ``Busy`` backoff.
    timeout_ms: int = 1000
    #: First backoff after ``Busy`` (and wait after a failed dial).
    retry_delay_ms: int = 50
    #: After finishing, keep serving reattachments this long.
    linger_ms: int = 3000
    #: An initiator gives up on a busy acceptor this long after its first
    #: ``Busy``.
    connect_timeout_ms: int = 10_000
    #: Frames the replay buffer holds (one more is kept for the ``Close``).
    replay_msgs: int = 64
    #: Message bytes the replay buffer holds.
    replay_bytes: int = 16384
    #: Messages the receive buffer holds.
    recv_msgs: int = 64
    #: Message bytes the receive buffer holds.
    recv_bytes: int = 16384

    def check(self) -> None:
        """Raises :class:`ConfigError` for the rules of section 9 and for
        buffers that cannot hold one largest message."""
        if not self.keepalive_ms < self.timeout_ms:
            raise ConfigError("keepalive_ms must be below timeout_ms")
        if not self.ack_delay_ms < self.timeout_ms:
            raise ConfigError("ack_delay_ms must be below timeout_ms")
        if not self.linger_ms >= self.timeout_ms:
            raise ConfigError("linger_ms must be at least timeout_ms")
        if not self.connect_timeout_ms >= self.timeout_ms:
            raise ConfigError("connect_timeout_ms must be at least timeout_ms")
        if self.ack_every < 1 or self.keepalive_ms < 1 or self.retry_delay_ms < 0:
            raise ConfigError("ack_every and keepalive_ms must be positive")
        if self.max_message < 1:
            raise ConfigError("max_message must be positive")
        if self.replay_bytes < self.max_message or self.recv_bytes < self.max_message:
            raise ConfigError("the replay and receive buffers must hold one largest message")
        if self.replay_msgs < 1 or self.recv_msgs < 1:
            raise ConfigError("the replay and receive buffers need room for one message")


#: Section 9's ``DEFAULT`` timing values.
DEFAULT_CONFIG = StableConfig()


@dataclass
class StableStats:
    """Counters of one session (named as the Rust ``StableStats``)."""

    frames_sent: int = 0
    frames_received: int = 0
    messages_delivered: int = 0
    replays: int = 0
    reattachments: int = 0
    gaps: int = 0
    duplicates: int = 0
    timeouts: int = 0
    acks_sent: int = 0
    violations: int = 0
    window_waits: int = 0
    window_updates: int = 0
    beyond_window: int = 0
    busy_retries: int = 0
    links: int = 0
    malformed: int = 0


class SessionError(VoxError):
    """Why a session ended (never a transient link loss)."""


class SessionRefused(SessionError):
    """The peer's prologue was refused, or refused ours (section 3): another
    version, mode or schema, or the same role. ``cause`` is the
    :class:`~vox_embedded.prologue.PrologueRefusal` naming both values."""

    def __init__(self, cause: PrologueRefusal) -> None:
        """Wraps the refusal found."""
        super().__init__(f"stable conduit refused: {cause}")
        self.cause = cause


class SessionLost(SessionError):
    """The peer no longer knows this session (``Reject(SessionUnknown)``,
    or, on an acceptor, the initiator started a new session)."""


class SessionRejected(SessionError):
    """The acceptor refused a new session: ``TableFull``, or ``Busy`` for
    longer than ``connect_timeout_ms``."""

    def __init__(self, reason: RejectReason) -> None:
        """Records the reason."""
        super().__init__(f"the acceptor refused a new session: {reason.name}")
        self.reason = reason


class SessionViolation(SessionError):
    """The peer broke the protocol in a way no new link repairs (a resume
    outside the replay range, section 9)."""


class DirectionClosed(Exception):
    """The application sends after closing its direction, or after the
    session ended."""


class MessageTooLarge(ValueError):
    """A message larger than ``max_message``."""


class LinkState(enum.Enum):
    """Where the current link is."""

    NONE = "none"
    HANDSHAKE = "handshake"
    ATTACHED = "attached"


@dataclass
class _Entry:
    """A frame of the replay buffer: a message, or the ``Close`` (``msg``
    is ``None``)."""

    seq: int
    off: int
    msg: Optional[bytes]


@dataclass
class _Handshake:
    started: int
    prologue_at: int
    peer_prologue: bool = False
    hello_sent: bool = False


# --------------------------------------------------------------------------
# The session


class StableSession:
    """One side of one stable session, sans I/O (see the module docs)."""

    def __init__(
        self,
        role: Role,
        fingerprint: bytes,
        config: StableConfig = DEFAULT_CONFIG,
        now: int = 0,
        key_source: Callable[[int], bytes] = secrets.token_bytes,
        admit: Optional[Callable[[], Optional[RejectReason]]] = None,
    ) -> None:
        """A session for ``role`` with the family's 8-byte schema
        ``fingerprint``. ``key_source(16)`` makes resume keys (an
        acceptor's; a CSPRNG by default). ``admit`` (acceptor) is asked
        before a new session is accepted and may answer ``TableFull`` or
        ``Busy`` instead."""
        config.check()
        if len(fingerprint) != 8:
            raise ValueError("a schema fingerprint is 8 bytes")
        self.role = Role(role)
        self.config = config
        self.fingerprint = bytes(fingerprint)
        self._prologue = Prologue(mode=Mode.STABLE, role=self.role, fingerprint=self.fingerprint).encode()
        self._key_source = key_source
        self._admit = admit
        self.stats = StableStats()
        self.error: Optional[SessionError] = None
        self.ended = False
        # Link.
        self.link_state = LinkState.NONE
        self.link_generation = 0
        self._hs: Optional[_Handshake] = None
        self._out: list[bytes] = []
        self._retry_at = now
        self._last_rx = now
        self._last_tx = now
        # Keys.
        self._established = False
        self._key: Optional[bytes] = None  # initiator: latest issued to us; acceptor: issued last
        self._presented: Optional[bytes] = None  # acceptor: presented last time
        self._confirmed = False
        self._issued_on_link = False
        # Busy backoff (initiator).
        self._busy_retries = 0
        self._busy_give_up_at: Optional[int] = None
        # Transmit side.
        self._replay: Deque[_Entry] = deque()
        self._replay_bytes = 0
        self._tx_base = 0  # oldest unacknowledged sequence number
        self._tx_next = 0  # next sequence number to assign
        self._tx_off = 0  # offset of the next message
        self._send_idx = 0  # index in _replay of the next frame to put on the link
        self._sent_high = 0  # one past the highest frame ever sent
        self._peer_seq_limit: Optional[int] = None
        self._peer_off_limit = 0
        self._closing = False  # the application closed its direction
        self._close_seq: Optional[int] = None
        self._waiting_window = False
        # Receive side.
        self._rx_next = 0  # e
        self._rx_off = 0  # off(e)
        self._rx_queue: Deque[bytes] = deque()
        self._rx_queued_bytes = 0
        self._acked_sent = 0  # the last ack this side sent
        self._unacked = 0  # frames received since this side last sent an ack
        self._ack_due: Optional[int] = None
        self._ack_now = False
        self._announced_seq = 0
        self._announced_off = 0
        self._carried_seq = 0
        self._carried_off = 0
        self._data_window_due = True
        self._peer_closed = False
        # Done.
        self._finished_at: Optional[int] = None
        self._peer_done = False

    # ---------------------------------------------------------------- status

    @property
    def has_link(self) -> bool:
        """Whether the session holds a link (handshake or attached)."""
        return self.link_state is not LinkState.NONE

    @property
    def attached(self) -> bool:
        """Whether a handshake completed on the current link."""
        return self.link_state is LinkState.ATTACHED

    @property
    def established(self) -> bool:
        """Whether a handshake ever completed."""
        return self._established

    @property
    def resume_key(self) -> Optional[bytes]:
        """The latest resume key (initiator: issued to it; acceptor: issued
        last)."""
        return self._key

    @property
    def finished(self) -> bool:
        """Both directions closed and acknowledged (``done`` sent)."""
        return self._finished_at is not None

    @property
    def peer_closed(self) -> bool:
        """The peer's ``Close`` arrived (after every message)."""
        return self._peer_closed

    @property
    def recv_eof(self) -> bool:
        """Nothing more will be received: the peer closed and every message
        was taken, or the session ended."""
        return not self._rx_queue and (self._peer_closed or self.ended)

    @property
    def unacked(self) -> int:
        """Frames in the replay buffer (sent or not, not acknowledged)."""
        return len(self._replay)

    def want_link(self, now: int) -> bool:
        """Initiator: whether to dial now (no link, the session goes on and
        any backoff passed). An acceptor takes every connection offered."""
        return not self.ended and self.link_state is LinkState.NONE and now >= self._retry_at

    @property
    def retry_at(self) -> int:
        """The time before which an initiator should not dial."""
        return self._retry_at

    # ---------------------------------------------------------------- application

    def can_send(self, size: int) -> bool:
        """Whether :meth:`send` of ``size`` bytes would be taken now."""
        return (
            len(self._replay) < self.config.replay_msgs
            and self._replay_bytes + size <= self.config.replay_bytes
        )

    def send(self, msg: bytes, now: int) -> bool:
        """Queues one encoded message; ``False`` while the replay buffer has
        no room (wait and try again). Raises :class:`MessageTooLarge`,
        :class:`DirectionClosed` after :meth:`close`, or the session's
        error after it ended."""
        if self.error is not None:
            raise self.error
        if self._closing or self.ended:
            raise DirectionClosed("this direction is closed")
        if len(msg) > self.config.max_message:
            raise MessageTooLarge(f"message of {len(msg)} bytes, max_message {self.config.max_message}")
        if not self.can_send(len(msg)):
            return False
        msg = bytes(msg)
        self._replay.append(_Entry(self._tx_next, self._tx_off, msg))
        self._replay_bytes += len(msg)
        self._tx_next = (self._tx_next + 1) & _U32
        self._tx_off = (self._tx_off + len(msg)) & _U32
        self._pump(now)
        return True

    def recv(self, now: int) -> Optional[bytes]:
        """The next message, exactly once and in order, or ``None`` (see
        :attr:`recv_eof`)."""
        if not self._rx_queue:
            return None
        msg = self._rx_queue.popleft()
        self._rx_queued_bytes -= len(msg)
        if self.link_state is LinkState.ATTACHED and self._window_open() and self._announced_closed():
            self.stats.window_updates += 1
            self._send_ack(now)
        self._check_finished(now)
        return msg

    def close(self, now: int) -> None:
        """Closes this side's direction: a ``Close`` after every message
        queued. Idempotent."""
        if self._closing or self.ended:
            return
        self._closing = True
        self._close_seq = self._tx_next
        self._replay.append(_Entry(self._tx_next, self._tx_off, None))
        self._tx_next = (self._tx_next + 1) & _U32
        self._pump(now)

    def abort(self, error: Optional[SessionError] = None) -> None:
        """Ends the session at once (drops the link)."""
        self._end(error)

    # ---------------------------------------------------------------- link events

    def attach(self, now: int) -> None:
        """A new link is up (the previous one, if any, is abandoned):
        start the handshake with this side's prologue."""
        if self.ended:
            return
        self._drop_link()
        self.link_generation += 1
        self.stats.links += 1
        self.link_state = LinkState.HANDSHAKE
        self._hs = _Handshake(started=now, prologue_at=now)
        self._issued_on_link = False
        self._last_rx = now
        self._emit(self._prologue, now)

    def link_lost(self, now: int) -> None:
        """The current link failed or ended (EOF, framing error)."""
        if self.link_state is LinkState.NONE:
            return
        self._drop_link()
        self._retry_at = max(self._retry_at, now)

    def take_transmit(self) -> list[bytes]:
        """The payloads to write on the current link, in order."""
        out = self._out
        self._out = []
        return out

    def receive(self, payload: bytes, now: int) -> None:
        """One payload read from the current link."""
        if self.ended or self.link_state is LinkState.NONE:
            return
        self._last_rx = now
        self.stats.frames_received += 1
        if payload[:4] == MAGIC:
            self._on_prologue(payload, now)
            return
        try:
            frame = decode_frame(payload)
        except MalformedStableFrame:
            self.stats.malformed += 1
            if self.link_state is LinkState.ATTACHED:
                self.stats.violations += 1
                self._drop_link()
            return  # during the handshake: a stale frame, ignored
        if self.link_state is LinkState.HANDSHAKE:
            self._handshake_frame(frame, now)
        else:
            if isinstance(frame, Ack):
                self._keepalive_coalesce(now)
            self._data_phase_frame(frame, now)
        if self.link_state is LinkState.ATTACHED:
            self._pump(now)
            self._flush_ack(now)

    # ---------------------------------------------------------------- time

    def poll_timeout(self) -> Optional[int]:
        """The next time :meth:`handle_timeout` has something to do
        (``None``: nothing until an event)."""
        if self.ended:
            return None
        times: list[int] = []
        if self._finished_at is not None:
            times.append(self._finished_at + self.config.linger_ms)
        if self.link_state is LinkState.HANDSHAKE:
            hs = self._hs
            assert hs is not None
            times.append(hs.started + self.config.timeout_ms)
            if self.role is Role.INITIATOR:
                times.append(hs.prologue_at + self.config.keepalive_ms)
        elif self.link_state is LinkState.ATTACHED:
            times.append(self._last_rx + self.config.timeout_ms)
            times.append(self._last_tx + self.config.keepalive_ms)
            if self._ack_due is not None:
                times.append(self._ack_due)
        elif self.role is Role.INITIATOR:
            times.append(self._retry_at)
        return min(times) if times else None

    def handle_timeout(self, now: int) -> None:
        """Runs every timer due at ``now``."""
        if self.ended:
            return
        cfg = self.config
        if self._finished_at is not None and now >= self._finished_at + cfg.linger_ms:
            self._leave()
            return
        if self.link_state is LinkState.HANDSHAKE:
            hs = self._hs
            assert hs is not None
            if now >= hs.started + cfg.timeout_ms:
                self.stats.timeouts += 1
                self._drop_link()
                return
            if self.role is Role.INITIATOR and now >= hs.prologue_at + cfg.keepalive_ms:
                # No hello in time: a frame may have died; start over.
                hs.prologue_at = now
                hs.peer_prologue = False
                self._emit(self._prologue, now)
        elif self.link_state is LinkState.ATTACHED:
            if now >= self._last_rx + cfg.timeout_ms:
                self.stats.timeouts += 1
                self._drop_link()
                return
            if self._ack_due is not None and now >= self._ack_due:
                self._send_ack(now)
            if now >= self._last_tx + cfg.keepalive_ms:
                self._send_ack(now)

    # ---------------------------------------------------------------- internals: output

    def _emit(self, payload: bytes, now: int) -> None:
        self._out.append(payload)
        self._last_tx = now
        self.stats.frames_sent += 1

    def _window(self) -> Window:
        return Window(
            msgs=self.config.recv_msgs - len(self._rx_queue),
            bytes=self.config.recv_bytes - self._rx_queued_bytes,
        )

    def _window_open(self) -> bool:
        w = self._window()
        return w.msgs > 0 and w.bytes >= self.config.max_message

    def _announced(self, w: Window) -> None:
        """Records the limits a frame carrying window ``w`` announced."""
        seq_limit = (self._rx_next + w.msgs) & _U32
        off_limit = (self._rx_off + w.bytes) & _U32
        if _before(self._announced_seq, seq_limit):
            self._announced_seq = seq_limit
        if _before(self._announced_off, off_limit):
            self._announced_off = off_limit

    def _announced_closed(self) -> bool:
        """Whether the limits announced so far leave the peer no message
        or less than one largest message of room."""
        credit_msgs = _signed(self._announced_seq - self._rx_next)
        credit_bytes = _signed(self._announced_off - self._rx_off)
        return credit_msgs <= 0 or credit_bytes < self.config.max_message

    def _acked_now(self) -> None:
        self._acked_sent = self._rx_next
        self._unacked = 0
        self._ack_due = None
        self._ack_now = False

    def _send_ack(self, now: int) -> None:
        w = self._window()
        self._emit(
            encode_frame(Ack(ack=self._rx_next, next=self._next_on_link(), window=w, done=self.finished)),
            now,
        )
        self.stats.acks_sent += 1
        self._announced(w)
        self._acked_now()

    def _next_on_link(self) -> int:
        """The next sequence number this side sends on this link (an
        ``Ack``'s ``next``): every frame before it was sent."""
        if self._send_idx < len(self._replay):
            return self._replay[self._send_idx].seq
        return self._tx_next

    def _flush_ack(self, now: int) -> None:
        if self._ack_now or self._unacked >= self.config.ack_every:
            self._send_ack(now)

    def _keepalive_coalesce(self, now: int) -> None:
        ka = self.config.keepalive_ms
        if self._last_tx + ka - now <= ka // 4:
            self._ack_now = True

    def _data_window(self) -> Optional[Window]:
        """The window a ``Data`` frame carries now, or ``None`` (section 8)."""
        w = self._window()
        seq_limit = (self._rx_next + w.msgs) & _U32
        off_limit = (self._rx_off + w.bytes) & _U32
        if not self._data_window_due:
            moved = _before(self._carried_seq, seq_limit) or _before(self._carried_off, off_limit)
            if not moved:
                return None
            credit_msgs = _signed(self._carried_seq - self._rx_next)
            credit_bytes = _signed(self._carried_off - self._rx_off)
            if not (
                credit_msgs * 2 <= w.msgs
                or credit_bytes * 2 <= w.bytes
                or credit_bytes < self.config.max_message
            ):
                return None
        self._data_window_due = False
        self._carried_seq = seq_limit
        self._carried_off = off_limit
        return w

    def _pump(self, now: int) -> None:
        """Puts frames of the replay buffer on the link, in order, within
        the peer's window."""
        if self.link_state is not LinkState.ATTACHED:
            return
        replay = self._replay
        while self._send_idx < len(replay):
            entry = replay[self._send_idx]
            if entry.msg is not None:
                limit = self._peer_seq_limit
                if limit is None or not _before(entry.seq, limit):
                    self._note_window_wait()
                    break
                end = (entry.off + len(entry.msg)) & _U32
                if _before(self._peer_off_limit, end):
                    self._note_window_wait()
                    break
            self._waiting_window = False
            seq = entry.seq
            if _before(seq, self._sent_high):
                self.stats.replays += 1
            top = self._sent_high if _before(seq, self._sent_high) else (seq + 1) & _U32
            seq_fits = ((top - self._tx_base) & _U32) <= 128
            if entry.msg is None:
                payload = encode_frame(Close(seq=seq, ack=self._rx_next))
            else:
                granted = (self._rx_next + self._window().msgs) & _U32
                ack_fits = ((granted - self._rx_next) & _U32) < 255
                window = self._data_window()
                payload = encode_frame(
                    Data(
                        seq=Counter.compact(seq, seq_fits),
                        ack=Counter.compact(self._rx_next, ack_fits),
                        window=window,
                        msg=entry.msg,
                    )
                )
                if window is not None:
                    self._announced(window)
            self._emit(payload, now)
            self._acked_now()
            self._send_idx += 1
            self._sent_high = top

    def _note_window_wait(self) -> None:
        if not self._waiting_window:
            self.stats.window_waits += 1
            self._waiting_window = True

    # ---------------------------------------------------------------- internals: links, end

    def _drop_link(self) -> None:
        """Ends the current attachment (the caller closes the link)."""
        if self.link_state is LinkState.NONE:
            return
        self.link_state = LinkState.NONE
        self._hs = None
        self._out = []
        self._ack_due = None
        self._ack_now = False

    def _end(self, error: Optional[SessionError]) -> None:
        if self.ended:
            return
        if error is not None and self.error is None:
            self.error = error
        self.ended = True
        self.link_state = LinkState.NONE
        self._hs = None

    def _leave(self) -> None:
        """The session is over and nothing is owed: the link ends after the
        frames queued now."""
        self.ended = True
        self.link_state = LinkState.NONE
        self._hs = None

    def _refuse(self, cause: PrologueRefusal, now: int, sent_ours: bool) -> None:
        if not sent_ours:
            self._emit(self._prologue, now)
        out = self._out
        self._end(SessionRefused(cause))
        self._out = out  # the caller writes our prologue, then closes

    # ---------------------------------------------------------------- internals: handshake

    def _on_prologue(self, payload: bytes, now: int) -> None:
        try:
            peer = decode_prologue(payload)
            check_peer(Prologue(mode=Mode.STABLE, role=self.role, fingerprint=self.fingerprint), peer)
        except PrologueRefusal as e:
            # Ours went out when the link started (attach).
            self._refuse(e, now, sent_ours=True)
            return
        except PrologueError:
            if self.link_state is LinkState.ATTACHED:
                self.stats.violations += 1
                self._drop_link()
            return
        if self.link_state is LinkState.ATTACHED:
            # The peer started a new attachment on this byte stream.
            self.link_state = LinkState.HANDSHAKE
            self._hs = _Handshake(started=now, prologue_at=now)
            self._issued_on_link = False
            self._emit(self._prologue, now)
            if self.role is Role.ACCEPTOR:
                self._hs.peer_prologue = True
                return
        hs = self._hs
        assert hs is not None
        if self.role is Role.INITIATOR:
            if not hs.peer_prologue:
                hs.peer_prologue = True
                hs.hello_sent = True
                self._emit(
                    encode_frame(Hello(key=self._key, next_expected=self._rx_next, window=self._window())),
                    now,
                )
                self._announced(self._window())
        else:
            hs.peer_prologue = True
            self._emit(self._prologue, now)

    def _handshake_frame(self, frame: object, now: int) -> None:
        hs = self._hs
        assert hs is not None
        if not hs.peer_prologue:
            return
        if self.role is Role.INITIATOR:
            if isinstance(frame, Hello):
                if frame.key is None:
                    return
                self._key = bytes(frame.key)
                self._resume(frame, now)
            elif isinstance(frame, Reject):
                if frame.reason is RejectReason.BUSY:
                    self._on_busy(now)
                elif frame.reason is RejectReason.SESSION_UNKNOWN:
                    self._end(SessionLost("the acceptor does not know this session (Reject(SessionUnknown))"))
                else:
                    self._end(SessionRejected(frame.reason))
        elif isinstance(frame, Hello):
            self._acceptor_hello(frame, now)

    def _on_busy(self, now: int) -> None:
        if self._busy_give_up_at is None:
            self._busy_give_up_at = now + self.config.connect_timeout_ms
        if now >= self._busy_give_up_at:
            self._end(SessionRejected(RejectReason.BUSY))
            return
        first = max(self.config.retry_delay_ms, 1)
        backoff = min(first << min(self._busy_retries, 16), max(self.config.timeout_ms, first))
        self._busy_retries += 1
        self.stats.busy_retries += 1
        self._retry_at = now + backoff
        self._drop_link()

    def _acceptor_hello(self, hello: Hello, now: int) -> None:
        key = None if hello.key is None else bytes(hello.key)
        confirmed = self._confirmed or self._presented is not None or self._rx_next != 0
        if not self._established:
            if key is not None:
                self._reject(RejectReason.SESSION_UNKNOWN, now)
                return
            if self._admit is not None:
                reason = self._admit()
                if reason is not None:
                    self._reject(RejectReason(reason), now)
                    return
        elif key is None:
            if confirmed:
                # The initiator started over: this session is gone.
                self._end(SessionLost("the initiator started a new session (a hello without a key)"))
                return
        elif key != self._key and key != self._presented:
            self._reject(RejectReason.SESSION_UNKNOWN, now)
            return
        proven = not self._established or (key is not None and key == self._key)
        if proven and not self._issued_on_link:
            issue = self._key_source(KEY_LEN)
            if len(issue) != KEY_LEN:
                raise ValueError("key_source must return 16 bytes")
            self._issued_on_link = True
        else:
            issue = self._key
        assert issue is not None
        self._presented = key
        self._key = bytes(issue)
        w = self._window()
        self._emit(encode_frame(Hello(key=self._key, next_expected=self._rx_next, window=w)), now)
        self._announced(w)
        self._resume(hello, now)

    def _reject(self, reason: RejectReason, now: int) -> None:
        self._emit(encode_frame(Reject(reason=reason)), now)
        out = self._out
        self._drop_link()
        self._out = out  # written, then the link closes

    def _resume(self, hello: Hello, now: int) -> None:
        """The handshake completed: the peer expects ``next_expected``."""
        n = hello.next_expected
        if _before(n, self._tx_base) or _before(self._sent_high, n):
            self.stats.violations += 1
            self._end(
                SessionViolation(
                    f"resume out of range: the peer expects {n}, oldest unacknowledged "
                    f"{self._tx_base}, one past the highest sent {self._sent_high}"
                )
            )
            return
        if self._established:
            self.stats.reattachments += 1
        self._established = True
        self._busy_retries = 0
        self._busy_give_up_at = None
        self.link_state = LinkState.ATTACHED
        self._hs = None
        self._send_idx = 0
        self._data_window_due = True
        self._last_rx = now
        self._ack_now = True
        self._apply_ack(n, hello.window)
        self._pump(now)
        self._flush_ack(now)

    # ---------------------------------------------------------------- internals: data phase

    def _off_of(self, seq: int) -> int:
        """``off(seq)`` for ``seq`` from the oldest unacknowledged frame to
        the next to assign."""
        idx = (seq - self._tx_base) & _U32
        if idx < len(self._replay):
            return self._replay[idx].off
        return self._tx_off

    def _apply_ack(self, a: int, window: Optional[Window]) -> bool:
        """Processes a cumulative ack; ``False`` for a violation (an ack of
        frames never sent: the attachment ends)."""
        if _before(self._sent_high, a):
            self.stats.violations += 1
            self._drop_link()
            return False
        if _before(a, self._tx_base):
            return True  # stale: ignore it and its window
        replay = self._replay
        while replay and _before(replay[0].seq, a):
            entry = replay.popleft()
            if entry.msg is not None:
                self._replay_bytes -= len(entry.msg)
            if self._send_idx > 0:
                self._send_idx -= 1
        self._tx_base = a
        if window is not None:
            seq_limit = (a + window.msgs) & _U32
            off_limit = (self._off_of(a) + window.bytes) & _U32
            if self._peer_seq_limit is None:
                self._peer_seq_limit = seq_limit
                self._peer_off_limit = off_limit
            else:
                if _before(self._peer_seq_limit, seq_limit):
                    self._peer_seq_limit = seq_limit
                if _before(self._peer_off_limit, off_limit):
                    self._peer_off_limit = off_limit
        return True

    def _confirm(self) -> None:
        self._confirmed = True

    def _data_phase_frame(self, frame: object, now: int) -> None:
        if isinstance(frame, Data):
            self._confirm()
            ack = frame.ack.resolve_ack(self._sent_high)
            if not self._apply_ack(ack, frame.window):
                return
            seq = frame.seq.resolve_seq(self._rx_next)
            self._on_seq(seq, frame.msg, now)
        elif isinstance(frame, Close):
            self._confirm()
            if not self._apply_ack(frame.ack, None):
                return
            self._on_seq(frame.seq, None, now)
        elif isinstance(frame, Ack):
            self._confirm()
            if not self._apply_ack(frame.ack, frame.window):
                return
            if _before(self._rx_next, frame.next):
                self.stats.gaps += 1
                self._drop_link()
                return
            if frame.done:
                self._peer_done = True
            self._check_finished(now)
        # Hello and Reject in the data phase: stale, ignored.

    def _on_seq(self, seq: int, msg: Optional[bytes], now: int) -> None:
        e = self._rx_next
        if seq != e:
            if _before(seq, e):
                self.stats.duplicates += 1
                self._ack_now = True
            else:
                self.stats.gaps += 1
                self._drop_link()
            return
        if msg is None:
            if not self._peer_closed:
                self._peer_closed = True
            self._rx_next = (e + 1) & _U32
            self._ack_now = True
            self._check_finished(now)
            return
        if len(self._rx_queue) >= self.config.recv_msgs or self._rx_queued_bytes + len(msg) > self.config.recv_bytes:
            self.stats.beyond_window += 1
            return  # no room: dropped unacknowledged
        self._rx_queue.append(msg)
        self._rx_queued_bytes += len(msg)
        self.stats.messages_delivered += 1
        self._rx_next = (e + 1) & _U32
        self._rx_off = (self._rx_off + len(msg)) & _U32
        self._unacked += 1
        if self._ack_due is None:
            self._ack_due = now + self.config.ack_delay_ms
        # This message may have used the last of the credit announced while
        # room freed earlier (no update owed then) is still free: the
        # update goes at once, not when the ack delay ends (§8).
        if not self._ack_now and self._window_open() and self._announced_closed():
            self.stats.window_updates += 1
            self._ack_now = True

    def _check_finished(self, now: int) -> None:
        if self.ended:
            return
        if self._finished_at is None:
            close_acked = self._close_seq is not None and not self._replay
            if close_acked and self._peer_closed:
                self._finished_at = now
                if self.link_state is LinkState.ATTACHED:
                    self._send_ack(now)  # done: true
        if self._finished_at is not None and self._peer_done:
            self._leave()
