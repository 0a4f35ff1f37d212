"""The frames of calls, vox-rpc (docs/PROTOCOL.md, section 12).

Calls run over a bare or stable conduit whose messages are rpc frames (the
message family ``RpcFamily``, schema fingerprint
:data:`RPC_FAMILY_FINGERPRINT` in the prologue). Each conduit message is
one frame, a postcard enum:

=====  ==========  ==================================================
index  frame       fields, in order
=====  ==========  ==================================================
0      Request     ``id: u32``, ``endpoint: u16``, ``deadline: i64``,
                   ``body: bytes``
1      Reply       ``id: u32``, ``body: bytes``
2      Failed      ``id: u32``, ``body: bytes``
3      Refused     ``id: u32``, ``why: Refusal`` (0 Expired, 1 Busy,
                   2 Unknown, 3 Undecodable, 4 Cancelled)
4      NoReply     ``id: u32``
5      Cancel      ``id: u32``
6      Hello       ``version: u16``, ``max_in_flight: u16``,
                   ``fingerprint: u32``, ``endpoints: bytes``,
                   ``topics: bytes``
7      TimeQuery   ``t0: u64``
8      TimeReply   ``t0: u64``, ``t1: u64``, ``t2: u64``
9      Subscribe   ``topic: u16``, ``window: u16``
10     Sample      ``topic: u16``, ``seq: u32``, ``dup: bool``,
                   ``body: bytes``
11     Credit      ``topic: u16``, ``next: u32``
=====  ==========  ==================================================

``bytes`` is a postcard byte string; ``i64`` is a zigzag varint. The
``endpoints`` and ``topics`` of a ``Hello`` are lists of 32-bit keys, 4
bytes each, little endian; the dataclass holds them as lists of ints.
:func:`encode_frame` and :func:`decode_frame` convert between the
dataclasses below and message bytes. A message that does not decode as
exactly one frame (unknown variant or refusal, a key list whose length is
not a multiple of 4, a bad varint, truncated, bytes left over) is
:class:`MalformedRpcFrame`; truncation is the subclass
:class:`TruncatedRpcFrame`.

:func:`clock_sample` and :func:`error_bound` are the clock-sample
arithmetic of section 12.3, :func:`service_fingerprint` the ``Hello``
fingerprint of section 12.2, :func:`encode_describe_reply` and
:func:`decode_describe_reply` the reply body of the built-in describe call
(endpoint index :data:`DESCRIBE_ENDPOINT`, section 12.4). This module holds
no state machine: the greeting, the window, deadlines and answers belong to
the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Union

from . import postcard
from .errors import VoxError

__all__ = [
    "RPC_FAMILY_FINGERPRINT",
    "ENVELOPE_VERSION",
    "KEY_LEN",
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "DESCRIBE_ENDPOINT",
    "DESCRIBE_KEY",
    "FrameKind",
    "Refusal",
    "Request",
    "Reply",
    "Failed",
    "Refused",
    "NoReply",
    "Cancel",
    "Hello",
    "TimeQuery",
    "TimeReply",
    "Subscribe",
    "Sample",
    "Credit",
    "RpcFrame",
    "EntryKind",
    "DescribeEntry",
    "encode_frame",
    "decode_frame",
    "fnv1a32",
    "service_fingerprint",
    "clock_sample",
    "error_bound",
    "encode_describe_reply",
    "decode_describe_reply",
    "MalformedRpcFrame",
    "TruncatedRpcFrame",
    "MalformedDescribeReply",
    "TruncatedDescribeReply",
]

#: The schema fingerprint of ``RpcFamily`` in the prologue (section 3),
#: whatever the endpoints are.
RPC_FAMILY_FINGERPRINT = bytes.fromhex("e6d4bdeaf275080b")
#: The envelope version a ``Hello`` carries.
ENVELOPE_VERSION = 2
#: Length of an endpoint or topic key in ``Hello``.
KEY_LEN = 4
#: FNV-1a, 32 bits: the offset basis.
FNV_OFFSET_BASIS = 0x811C9DC5
#: FNV-1a, 32 bits: the prime.
FNV_PRIME = 0x01000193
#: The endpoint index of the built-in describe call, which every side
#: answers (it is not in the ``Hello`` endpoint list).
DESCRIBE_ENDPOINT = 0xFFFF
#: The key reserved for the describe call: no endpoint or topic has it.
DESCRIBE_KEY = 0


class FrameKind(enum.IntEnum):
    """The enum index of each frame."""

    REQUEST = 0
    REPLY = 1
    FAILED = 2
    REFUSED = 3
    NO_REPLY = 4
    CANCEL = 5
    HELLO = 6
    TIME_QUERY = 7
    TIME_REPLY = 8
    SUBSCRIBE = 9
    SAMPLE = 10
    CREDIT = 11


class Refusal(enum.IntEnum):
    """Why a request did not run (and never will)."""

    EXPIRED = 0
    BUSY = 1
    UNKNOWN = 2
    UNDECODABLE = 3
    CANCELLED = 4


@dataclass(frozen=True)
class Request:
    """A call: ``endpoint`` is an index in the receiver's ``Hello``
    endpoint list, ``deadline`` the difference (ms, receiver's clock)
    between this request's absolute deadline and the previous request's in
    the same direction, ``body`` the postcard encoding of the request."""

    id: int
    endpoint: int
    deadline: int
    body: bytes


@dataclass(frozen=True)
class Reply:
    """The request ran and succeeded: ``body`` is its response."""

    id: int
    body: bytes


@dataclass(frozen=True)
class Failed:
    """The request ran and failed: ``body`` is the handler's error."""

    id: int
    body: bytes


@dataclass(frozen=True)
class Refused:
    """The request did not run and never will."""

    id: int
    why: Refusal


@dataclass(frozen=True)
class NoReply:
    """The request ran but its response is not sent."""

    id: int


@dataclass(frozen=True)
class Cancel:
    """The caller gave up on its request ``id``."""

    id: int


@dataclass(frozen=True)
class Hello:
    """The first frame each way: the envelope version, the requests the
    sender holds room for, the fingerprint of its endpoint keys (reported,
    never enforced), its endpoint keys (a request names one by its index)
    and its topic keys."""

    version: int
    max_in_flight: int
    fingerprint: int
    endpoints: list[int]
    topics: list[int]


@dataclass(frozen=True)
class TimeQuery:
    """A clock sample's question: ``t0`` is the asker's clock (ms)."""

    t0: int


@dataclass(frozen=True)
class TimeReply:
    """A clock sample's answer: the query's ``t0``, and the answerer's
    clock when the query arrived (``t1``) and when it sent this (``t2``)."""

    t0: int
    t1: int
    t2: int


@dataclass(frozen=True)
class Subscribe:
    """Send me topic ``topic`` (its index in the receiver's greeting), at
    most ``window`` samples beyond my credit (section 12.5)."""

    topic: int
    window: int


@dataclass(frozen=True)
class Sample:
    """A sample of topic ``topic`` (its index in the sender's greeting):
    the publisher's ``seq``, ``dup`` when sent in an earlier session, the
    postcard ``body``."""

    topic: int
    seq: int
    dup: bool
    body: bytes


@dataclass(frozen=True)
class Credit:
    """Every sample of topic ``topic`` (its index in the receiver's
    greeting) before ``next`` is consumed."""

    topic: int
    next: int


#: Any rpc frame.
RpcFrame = Union[Request, Reply, Failed, Refused, NoReply, Cancel, Hello, TimeQuery, TimeReply, Subscribe, Sample, Credit]


class EntryKind(enum.IntEnum):
    """What an entry of a describe reply names."""

    ENDPOINT = 0
    TOPIC = 1


@dataclass(frozen=True)
class DescribeEntry:
    """One entry of a describe reply: an endpoint or topic, its key and its
    name."""

    kind: EntryKind
    key: int
    name: str


class MalformedRpcFrame(VoxError):
    """A message that does not decode as exactly one rpc frame."""


class TruncatedRpcFrame(MalformedRpcFrame):
    """The message ended inside the frame."""


class MalformedDescribeReply(VoxError):
    """A describe reply body that does not decode as exactly one sequence of
    entries."""


class TruncatedDescribeReply(MalformedDescribeReply):
    """The body ended inside the sequence."""


def _encode_keys(keys: Iterable[int], what: str) -> bytes:
    if isinstance(keys, (bytes, bytearray, memoryview, str)):
        raise ValueError(f"{what} is a list of integer keys, not {type(keys).__name__}")
    out = bytearray()
    for key in keys:
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= postcard.U32_MAX:
            raise ValueError(f"{what}: key {key!r} is not a u32")
        out += key.to_bytes(KEY_LEN, "little")
    return postcard.encode_byte_slice(bytes(out))


def encode_frame(frame: RpcFrame) -> bytes:
    """Encodes one rpc frame (postcard bytes).

    Raises ``ValueError`` for a field out of its type's range (``u16``,
    ``u32``, ``u64``, ``i64``), a refusal that is not one of
    :class:`Refusal`, a key that is not a ``u32``, or an object that is not
    a frame.
    """
    u32 = postcard.encode_u32
    u64 = postcard.encode_u64
    if isinstance(frame, Request):
        return (
            u32(FrameKind.REQUEST)
            + u32(frame.id)
            + postcard.encode_u16(frame.endpoint)
            + postcard.encode_i64(frame.deadline)
            + postcard.encode_byte_slice(frame.body)
        )
    if isinstance(frame, Reply):
        return u32(FrameKind.REPLY) + u32(frame.id) + postcard.encode_byte_slice(frame.body)
    if isinstance(frame, Failed):
        return u32(FrameKind.FAILED) + u32(frame.id) + postcard.encode_byte_slice(frame.body)
    if isinstance(frame, Refused):
        return u32(FrameKind.REFUSED) + u32(frame.id) + u32(Refusal(frame.why))
    if isinstance(frame, NoReply):
        return u32(FrameKind.NO_REPLY) + u32(frame.id)
    if isinstance(frame, Cancel):
        return u32(FrameKind.CANCEL) + u32(frame.id)
    if isinstance(frame, Hello):
        return (
            u32(FrameKind.HELLO)
            + postcard.encode_u16(frame.version)
            + postcard.encode_u16(frame.max_in_flight)
            + u32(frame.fingerprint)
            + _encode_keys(frame.endpoints, "endpoints")
            + _encode_keys(frame.topics, "topics")
        )
    if isinstance(frame, TimeQuery):
        return u32(FrameKind.TIME_QUERY) + u64(frame.t0)
    if isinstance(frame, TimeReply):
        return u32(FrameKind.TIME_REPLY) + u64(frame.t0) + u64(frame.t1) + u64(frame.t2)
    u16 = postcard.encode_u16
    if isinstance(frame, Subscribe):
        return u32(FrameKind.SUBSCRIBE) + u16(frame.topic) + u16(frame.window)
    if isinstance(frame, Sample):
        return (
            u32(FrameKind.SAMPLE)
            + u16(frame.topic)
            + u32(frame.seq)
            + postcard.encode_bool(frame.dup)
            + postcard.encode_byte_slice(frame.body)
        )
    if isinstance(frame, Credit):
        return u32(FrameKind.CREDIT) + u16(frame.topic) + u32(frame.next)
    raise ValueError(f"not an rpc frame: {frame!r}")


def _read_keys(r: postcard.Reader, what: str) -> list[int]:
    at = r.position
    data = r.byte_slice()
    if len(data) % KEY_LEN:
        raise MalformedRpcFrame(
            f"{what} at offset {at} is {len(data)} bytes, not a multiple of {KEY_LEN}"
        )
    return [int.from_bytes(data[i : i + KEY_LEN], "little") for i in range(0, len(data), KEY_LEN)]


def _read_frame(r: postcard.Reader) -> RpcFrame:
    index = r.enum_index()
    if index == FrameKind.REQUEST:
        rid = r.u32()
        endpoint = r.u16()
        deadline = r.i64()
        return Request(id=rid, endpoint=endpoint, deadline=deadline, body=r.byte_slice())
    if index == FrameKind.REPLY:
        rid = r.u32()
        return Reply(id=rid, body=r.byte_slice())
    if index == FrameKind.FAILED:
        rid = r.u32()
        return Failed(id=rid, body=r.byte_slice())
    if index == FrameKind.REFUSED:
        rid = r.u32()
        why = r.enum_index()
        try:
            return Refused(id=rid, why=Refusal(why))
        except ValueError:
            raise MalformedRpcFrame(f"unknown refusal {why}") from None
    if index == FrameKind.NO_REPLY:
        return NoReply(id=r.u32())
    if index == FrameKind.CANCEL:
        return Cancel(id=r.u32())
    if index == FrameKind.HELLO:
        version = r.u16()
        max_in_flight = r.u16()
        fingerprint = r.u32()
        endpoints = _read_keys(r, "endpoints")
        return Hello(
            version=version,
            max_in_flight=max_in_flight,
            fingerprint=fingerprint,
            endpoints=endpoints,
            topics=_read_keys(r, "topics"),
        )
    if index == FrameKind.TIME_QUERY:
        return TimeQuery(t0=r.u64())
    if index == FrameKind.TIME_REPLY:
        t0 = r.u64()
        t1 = r.u64()
        return TimeReply(t0=t0, t1=t1, t2=r.u64())
    if index == FrameKind.SUBSCRIBE:
        topic = r.u16()
        return Subscribe(topic=topic, window=r.u16())
    if index == FrameKind.SAMPLE:
        topic = r.u16()
        seq = r.u32()
        dup = r.bool()
        return Sample(topic=topic, seq=seq, dup=dup, body=r.byte_slice())
    if index == FrameKind.CREDIT:
        topic = r.u16()
        return Credit(topic=topic, next=r.u32())
    raise MalformedRpcFrame(f"unknown frame variant {index}")


def decode_frame(payload: bytes) -> RpcFrame:
    """Decodes a whole message as exactly one rpc frame.

    Raises :class:`TruncatedRpcFrame` if the message ends inside the frame
    and :class:`MalformedRpcFrame` for an unknown variant or refusal, a key
    list whose length is not a multiple of 4, a varint longer or larger
    than its type, or bytes left over; nothing else for any input.
    """
    r = postcard.Reader(payload)
    try:
        frame = _read_frame(r)
        r.finish()
    except postcard.TruncatedInput as e:
        raise TruncatedRpcFrame(str(e)) from None
    except postcard.MalformedInput as e:
        raise MalformedRpcFrame(str(e)) from None
    return frame


def fnv1a32(data: bytes) -> int:
    """FNV-1a, 32 bits (offset basis ``0x811c9dc5``, prime ``0x01000193``)."""
    h = FNV_OFFSET_BASIS
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFF_FFFF
    return h


def service_fingerprint(endpoints: Iterable[int]) -> int:
    """The ``Hello`` fingerprint: FNV-1a 32 over the little-endian bytes of
    the endpoint keys, in list order (``0x811c9dc5`` for no endpoints).

    Raises ``ValueError`` for a key that is not a ``u32``.
    """
    data = bytearray()
    for key in endpoints:
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= postcard.U32_MAX:
            raise ValueError(f"endpoint key {key!r} is not a u32")
        data += key.to_bytes(KEY_LEN, "little")
    return fnv1a32(bytes(data))


def _check_u64(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= postcard.U64_MAX:
        raise ValueError(f"{name} = {value!r} is not a u64 clock reading")


def clock_sample(t0: int, t1: int, t2: int, t3: int) -> tuple[int, int] | None:
    """One clock sample (section 12.3), as ``(offset_ms, rtt_ms)``, or
    ``None`` for an impossible one, which a side drops.

    ``t0`` is the asker's clock when it sent ``TimeQuery``, ``t1`` and
    ``t2`` the peer's clock when the query arrived and when it sent
    ``TimeReply``, ``t3`` the asker's clock when the reply arrived:

    * ``rtt = (t3 - t0) - (t2 - t1)``;
    * ``offset = (t1 - t0 + t2 - t3) / 2``, peer minus asker, rounded toward
      minus infinity.

    Impossible: ``t3 < t0``, ``t2 < t1`` or a negative round trip (only a
    wrong or hostile peer gives them). Raises ``ValueError`` for a reading
    that is not a ``u64``.
    """
    for name, value in (("t0", t0), ("t1", t1), ("t2", t2), ("t3", t3)):
        _check_u64(name, value)
    rtt = (t3 - t0) - (t2 - t1)
    if t3 < t0 or t2 < t1 or rtt < 0:
        return None
    offset = (t1 - t0 + t2 - t3) // 2
    return offset, rtt


def error_bound(rtt_ms: int) -> int:
    """A sample's error bound when taken: ``ceil(rtt / 2) + 3`` ms (section
    12.3: half the round trip for the asymmetry of the delays, 3 ms for the
    clocks' whole milliseconds; a side then grows it by 1 ms per 10 s of
    the sample's age)."""
    if not isinstance(rtt_ms, int) or isinstance(rtt_ms, bool):
        raise ValueError(f"expected an integer, got {rtt_ms!r}")
    return -(-rtt_ms // 2) + 3


def encode_describe_reply(entries: Iterable[DescribeEntry]) -> bytes:
    """Encodes the reply body of the describe call: a postcard sequence
    (``u32`` varint count, then the entries) of ``(kind: u8, key: u32,
    name: string)``, ``string`` being a varint length and UTF-8 bytes.

    Raises ``ValueError`` for a kind that is not an :class:`EntryKind`, a
    key that is not a ``u32`` or a name that is not a ``str``. Key 0 (the
    describe call's own) is encoded like any other: refusing it is the
    caller's.
    """
    out = bytearray()
    count = 0
    for entry in entries:
        if not isinstance(entry, DescribeEntry):
            raise ValueError(f"not a describe entry: {entry!r}")
        if not isinstance(entry.name, str):
            raise ValueError(f"a name is a str, got {entry.name!r}")
        out += postcard.encode_u8(EntryKind(entry.kind))
        out += postcard.encode_u32(entry.key)
        out += postcard.encode_byte_slice(entry.name.encode("utf-8"))
        count += 1
    return postcard.encode_u32(count) + bytes(out)


def decode_describe_reply(body: bytes) -> list[DescribeEntry]:
    """Decodes a whole describe reply body.

    Raises :class:`TruncatedDescribeReply` if the body ends inside the
    sequence and :class:`MalformedDescribeReply` for an unknown kind, a
    name that is not UTF-8, a bad varint or bytes left over; nothing else
    for any input.
    """
    r = postcard.Reader(body)
    entries: list[DescribeEntry] = []
    try:
        count = r.u32()
        for _ in range(count):
            at = r.position
            raw_kind = r.u8()
            try:
                kind = EntryKind(raw_kind)
            except ValueError:
                raise MalformedDescribeReply(f"unknown entry kind {raw_kind} at offset {at}") from None
            key = r.u32()
            try:
                name = r.byte_slice().decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedDescribeReply(f"the name of the entry at offset {at} is not UTF-8") from None
            entries.append(DescribeEntry(kind=kind, key=key, name=name))
        r.finish()
    except postcard.TruncatedInput as e:
        raise TruncatedDescribeReply(str(e)) from None
    except postcard.MalformedInput as e:
        raise MalformedDescribeReply(str(e)) from None
    return entries
