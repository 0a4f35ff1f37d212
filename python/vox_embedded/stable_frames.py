"""The stable conduit's frames (docs/PROTOCOL.md, sections 5 and 6).

After the prologue, every payload of a stable link is one frame, a postcard
enum:

=====  =========  ===================================================
index  frame      fields, in order
=====  =========  ===================================================
0      Hello      ``key: Option<[u8; 16]>``, ``next_expected: u32``,
                  ``window: Window``
1      Reject     ``reason: RejectReason`` (0 SessionUnknown,
                  1 TableFull, 2 Busy)
2      Data       ``seq: u32``, ``ack: u32``, ``window: Window``,
                  ``msg: &[u8]``
3      Ack        ``ack: u32``, ``next: u32``, ``window: Window``,
                  ``done: bool``
4      Close      ``seq: u32``, ``ack: u32``
=====  =========  ===================================================

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
    """The enum index of each frame."""

    HELLO = 0
    REJECT = 1
    DATA = 2
    ACK = 3
    CLOSE = 4


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
class Data:
    """One message: ``msg`` is its postcard encoding."""

    seq: int
    ack: int
    window: Window
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
        return (
            u32(FrameKind.DATA)
            + u32(frame.seq)
            + u32(frame.ack)
            + _window(frame.window)
            + postcard.encode_byte_slice(frame.msg)
        )
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
    index = r.enum_index()
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
    if index == FrameKind.DATA:
        seq = r.u32()
        ack = r.u32()
        window = _read_window(r)
        return Data(seq=seq, ack=ack, window=window, msg=r.byte_slice())
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
