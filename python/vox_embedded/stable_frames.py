"""The stable conduit's frames (docs/PROTOCOL.md, sections 5 and 6).

After the prologue, every payload of a stable link is one frame. A first
byte from ``0x80`` to ``0x87`` is a compact ``Data`` frame; any other is a
postcard enum index:

===========  =========  ================================================
first byte   frame      fields, in order
===========  =========  ================================================
0            Hello      ``key: Option<[u8; 16]>``, ``next_expected: u32``,
                        ``window: Window``
1            Reject     ``reason: RejectReason`` (0 SessionUnknown,
                        1 TableFull, 2 Busy)
3            Ack        ``ack: u32``, ``next: u32``, ``window: Window``,
                        ``done: bool``
4            Close      ``seq: u32``, ``ack: u32``
0x80|flags   Data       ``seq``, ``ack`` (each a low byte or a varint,
                        :class:`Counter`), ``window`` if flag ``0x01``,
                        ``msg``: the rest of the payload
===========  =========  ================================================

Flags of a ``Data`` frame: ``0x01`` a window follows, ``0x02`` ``seq`` is a
varint, ``0x04`` ``ack`` is a varint; ``0x78`` reserved (malformed if set).
Index 2 (version 1's ``Data``) is malformed.

``Window`` is ``msgs: u32``, ``bytes: u32``. :func:`encode_frame` and
:func:`decode_frame` convert between the dataclasses below and payload
bytes. A payload that does not decode as exactly one frame (unknown
variant, truncated, bytes left over) is :class:`MalformedStableFrame`;
truncation is the subclass :class:`TruncatedStableFrame`.

:func:`seq_before` is the wrapping sequence-number order of section 5.
This module holds no state machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

from . import postcard
from .errors import VoxError

__all__ = [
    "KEY_LEN",
    "Window",
    "RejectReason",
    "Hello",
    "Reject",
    "Data",
    "Counter",
    "Ack",
    "Close",
    "StableFrame",
    "FrameKind",
    "encode_frame",
    "decode_frame",
    "seq_before",
    "MalformedStableFrame",
    "TruncatedStableFrame",
]

#: Length of a resume key.
KEY_LEN = 16


class FrameKind(enum.IntEnum):
    """The first byte of each frame (``DATA``: without its flags)."""

    HELLO = 0
    REJECT = 1
    ACK = 3
    CLOSE = 4
    DATA = 0x80


#: Data flag: a window follows the counters.
DATA_WINDOW = 0x01
#: Data flag: ``seq`` is a varint, not its low byte.
DATA_SEQ_FULL = 0x02
#: Data flag: ``ack`` is a varint, not its low byte.
DATA_ACK_FULL = 0x04


class RejectReason(enum.IntEnum):
    """Why an acceptor refused a hello."""

    SESSION_UNKNOWN = 0
    TABLE_FULL = 1
    BUSY = 2


@dataclass(frozen=True)
class Window:
    """A receive window, relative to the frame's ``ack`` (or
    ``next_expected``): messages before ``ack + msgs`` whose bytes end at
    most ``bytes`` after the offset of message ``ack``."""

    msgs: int
    bytes: int


@dataclass(frozen=True)
class Hello:
    """The first frame each way on an attachment."""

    key: Optional[bytes]
    next_expected: int
    window: Window


@dataclass(frozen=True)
class Reject:
    """The acceptor refuses the hello."""

    reason: RejectReason


@dataclass(frozen=True)
class Counter:
    """A ``Data`` frame's ``seq`` or ``ack`` as it travels: ``low`` means
    ``value`` is the number's low byte (0 to 255), else the whole number.
    """

    value: int
    low: bool = False

    @staticmethod
    def compact(value: int, fits: bool) -> "Counter":
        """``value``'s low byte if ``fits`` (the sender checked the span of
        section 6), else the whole number."""
        return Counter(value & 0xFF, True) if fits else Counter(value)

    def resolve_seq(self, expected: int) -> int:
        """The sequence number a ``seq`` field names, for a receiver that
        expects ``expected``: the number with this low byte within
        ``-128..=127`` of it."""
        if not self.low:
            return self.value
        delta = (self.value - expected) & 0xFF
        if delta >= 0x80:
            delta -= 0x100
        return (expected + delta) & 0xFFFF_FFFF

    def resolve_ack(self, sent_high: int) -> int:
        """The ack an ``ack`` field names, for a receiver that sent every
        frame before ``sent_high``: the number with this low byte in
        ``sent_high - 255 ..= sent_high``."""
        if not self.low:
            return self.value
        return (sent_high - ((sent_high - self.value) & 0xFF)) & 0xFFFF_FFFF


@dataclass(frozen=True)
class Data:
    """One message: ``msg`` is its postcard encoding; ``window`` is
    ``None`` when the sender leaves the limits its peer heard as they are."""

    seq: Counter
    ack: Counter
    window: Optional[Window]
    msg: bytes


@dataclass(frozen=True)
class Ack:
    """Ack only (also the window update and the keepalive); ``next`` is the
    sender's next sequence number, ``done`` says the sender has finished."""

    ack: int
    next: int
    window: Window
    done: bool


@dataclass(frozen=True)
class Close:
    """The end of the sender's direction, as frame ``seq``."""

    seq: int
    ack: int


#: Any stable frame.
StableFrame = Union[Hello, Reject, Data, Ack, Close]


class MalformedStableFrame(VoxError):
    """A payload that does not decode as exactly one stable frame."""


class TruncatedStableFrame(MalformedStableFrame):
    """The payload ended inside the frame."""


def _window(w: Window) -> bytes:
    return postcard.encode_u32(w.msgs) + postcard.encode_u32(w.bytes)


def _counter(c: Counter) -> bytes:
    if c.low:
        if not 0 <= c.value <= 0xFF:
            raise ValueError(f"a low-byte counter is 0 to 255, got {c.value}")
        return bytes([c.value])
    return postcard.encode_u32(c.value)


def encode_frame(frame: StableFrame) -> bytes:
    """Encodes one stable frame (postcard bytes).

    Raises ``ValueError`` for a field out of its type's range, a key that is
    not 16 bytes, or an object that is not a frame.
    """
    u32 = postcard.encode_u32
    if isinstance(frame, Hello):
        if frame.key is None:
            key = b"\x00"
        else:
            if len(frame.key) != KEY_LEN:
                raise ValueError(f"a resume key is {KEY_LEN} bytes, got {len(frame.key)}")
            key = b"\x01" + bytes(frame.key)
        return u32(FrameKind.HELLO) + key + u32(frame.next_expected) + _window(frame.window)
    if isinstance(frame, Reject):
        return u32(FrameKind.REJECT) + u32(RejectReason(frame.reason))
    if isinstance(frame, Data):
        flags = FrameKind.DATA
        flags |= DATA_WINDOW if frame.window is not None else 0
        flags |= 0 if frame.seq.low else DATA_SEQ_FULL
        flags |= 0 if frame.ack.low else DATA_ACK_FULL
        window = _window(frame.window) if frame.window is not None else b""
        return bytes([flags]) + _counter(frame.seq) + _counter(frame.ack) + window + bytes(frame.msg)
    if isinstance(frame, Ack):
        return (
            u32(FrameKind.ACK)
            + u32(frame.ack)
            + u32(frame.next)
            + _window(frame.window)
            + postcard.encode_bool(frame.done)
        )
    if isinstance(frame, Close):
        return u32(FrameKind.CLOSE) + u32(frame.seq) + u32(frame.ack)
    raise ValueError(f"not a stable frame: {frame!r}")


def _read_window(r: postcard.Reader) -> Window:
    msgs = r.u32()
    return Window(msgs=msgs, bytes=r.u32())


def _read_frame(r: postcard.Reader) -> StableFrame:
    first = r.fixed(1)[0]
    if first & FrameKind.DATA:
        if first & ~(FrameKind.DATA | DATA_WINDOW | DATA_SEQ_FULL | DATA_ACK_FULL):
            raise MalformedStableFrame(f"reserved data flags set: {first:#04x}")
        seq = Counter(r.u32()) if first & DATA_SEQ_FULL else Counter(r.fixed(1)[0], True)
        ack = Counter(r.u32()) if first & DATA_ACK_FULL else Counter(r.fixed(1)[0], True)
        window = _read_window(r) if first & DATA_WINDOW else None
        return Data(seq=seq, ack=ack, window=window, msg=r.rest())
    index = first
    if index == FrameKind.HELLO:
        key = r.fixed(KEY_LEN) if r.option_tag() else None
        next_expected = r.u32()
        return Hello(key=key, next_expected=next_expected, window=_read_window(r))
    if index == FrameKind.REJECT:
        reason = r.enum_index()
        try:
            return Reject(reason=RejectReason(reason))
        except ValueError:
            raise MalformedStableFrame(f"unknown reject reason {reason}") from None
    if index == FrameKind.ACK:
        ack = r.u32()
        nxt = r.u32()
        window = _read_window(r)
        return Ack(ack=ack, next=nxt, window=window, done=r.bool())
    if index == FrameKind.CLOSE:
        seq = r.u32()
        return Close(seq=seq, ack=r.u32())
    raise MalformedStableFrame(f"unknown frame variant {index}")


def decode_frame(payload: bytes) -> StableFrame:
    """Decodes a whole payload as exactly one stable frame.

    Raises :class:`TruncatedStableFrame` if the payload ends inside the
    frame and :class:`MalformedStableFrame` for an unknown variant or
    reject reason, a bad varint, bool or option tag, or bytes left over;
    nothing else for any input.
    """
    r = postcard.Reader(payload)
    try:
        frame = _read_frame(r)
        r.finish()
    except postcard.TruncatedInput as e:
        raise TruncatedStableFrame(str(e)) from None
    except postcard.MalformedInput as e:
        raise MalformedStableFrame(str(e)) from None
    return frame


def seq_before(a: int, b: int) -> bool:
    """Whether sequence number ``a`` is before ``b`` in wrapping order:
    ``(b - a) mod 2**32`` is in ``[1, 2**31)``."""
    d = (b - a) & 0xFFFF_FFFF
    return 0 < d < (1 << 31)
