"""The framed link codec (docs/PROTOCOL.md, section 2).

A link over a byte stream carries each payload as one frame::

    frame = COBS(payload || crc) || 00
    crc   = CRC-32/ISO-HDLC(payload), 4 bytes, little-endian

* :func:`encode_frame` turns a payload into its frame.
* :data:`STREAM_START` is the lone ``00`` a sender writes before its first
  frame; :data:`END_OF_STREAM` (``01 00``) ends a sending direction.
* :class:`FrameDecoder` is fed byte chunks of any size and returns, in
  order, :class:`Payload` and :class:`EndOfStream` events and the typed
  errors :class:`CrcMismatch`, :class:`MalformedFrame` and
  :class:`OversizedFrame` (reported as values, not raised).

Receiver rules, as implemented (PROTOCOL_GAPS.md says where the document
leaves a choice):

* The bytes before the first delimiter a decoder sees are its *tentative*
  first frame: delivered if it is a whole payload with a good CRC, dropped
  silently otherwise (it is likely the tail of a frame of a previous link).
  A lone ``00`` first ends the tentative frame with nothing in it.
* A lone ``00`` (an empty frame) is skipped; ``01 00`` is end-of-stream.
* A frame whose payload exceeds the MTU is :class:`OversizedFrame`. More
  non-zero bytes than the longest legal frame (the MTU plus the overhead
  bound ``ceil(mtu / 254) + 6``, less the delimiter) is also
  :class:`OversizedFrame`, reported as soon as the bound is crossed, even
  before the first delimiter; the decoder then discards bytes up to the
  next ``00`` (reporting again for every further bound's worth of garbage)
  and reads the frame after it normally.
* After an error the decoder goes on decoding; the document has the *link*
  die on its first error, which is the caller's decision.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Union

from .errors import VoxError

__all__ = [
    "CRC_LEN",
    "STREAM_START",
    "END_OF_STREAM",
    "crc32",
    "cobs_encode",
    "cobs_decode",
    "encode_frame",
    "max_frame_len",
    "Payload",
    "EndOfStream",
    "FramingError",
    "CrcMismatch",
    "MalformedFrame",
    "OversizedFrame",
    "DecodeEvent",
    "FrameDecoder",
]

#: Length of the CRC trailer.
CRC_LEN = 4
#: Data bytes of a full COBS block (code ``FF``).
_FULL_BLOCK = 254
#: The lone delimiter a sender writes before its first frame on a stream.
STREAM_START = b"\x00"
#: The end-of-stream marker: COBS of zero bytes, then the delimiter.
END_OF_STREAM = b"\x01\x00"


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (the zlib and Ethernet CRC) of ``data``."""
    return zlib.crc32(data) & 0xFFFF_FFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS-encodes ``data`` (no delimiter): the result contains no ``00``.

    Each block is a code byte ``n`` and ``n - 1`` non-zero bytes; a code
    below ``FF`` stands for a ``00`` after its bytes unless the block ends
    the data. A final full block (code ``FF``) is not followed by an empty
    ``01`` block (see PROTOCOL_GAPS.md).
    """
    out = bytearray()
    pos = 0
    block_owed = True  # the data just began, or the last block ended at a 00
    while pos < len(data) or block_owed:
        chunk = data[pos : pos + _FULL_BLOCK]
        zero = chunk.find(0)
        if zero >= 0:
            out.append(zero + 1)
            out += chunk[:zero]
            pos += zero + 1
            block_owed = True
        else:
            out.append(len(chunk) + 1)
            out += chunk
            pos += len(chunk)
            block_owed = False
    return bytes(out)


def cobs_decode(encoded: bytes, limit: int | None = None) -> bytes:
    """Decodes the COBS bytes of one frame (without its delimiter).

    Raises :class:`MalformedFrame` for a ``00`` inside ``encoded`` or a block
    that runs past its end, and :class:`OversizedFrame` as soon as the
    decoded bytes exceed ``limit`` (if given).
    """
    out = bytearray()
    pos = 0
    n = len(encoded)
    while pos < n:
        code = encoded[pos]
        if code == 0:
            raise MalformedFrame(f"00 inside a frame at offset {pos}")
        end = pos + code
        block = encoded[pos + 1 : min(end, n)]
        if 0 in block:
            raise MalformedFrame(f"00 inside a frame after offset {pos}")
        out += block
        if limit is not None and len(out) > limit:
            raise OversizedFrame(f"frame decodes to more than {limit} bytes")
        if end > n:
            raise MalformedFrame(f"COBS block at offset {pos} runs past the delimiter")
        pos = end
        if pos < n and code != 0xFF:
            out.append(0)
            if limit is not None and len(out) > limit:
                raise OversizedFrame(f"frame decodes to more than {limit} bytes")
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """Encodes one payload as a frame: ``COBS(payload || crc) || 00``.

    The CRC is CRC-32/ISO-HDLC of the payload, little-endian. Does not
    include the lone ``00`` a sender writes before its first frame
    (:data:`STREAM_START`).
    """
    payload = bytes(payload)
    return cobs_encode(payload + struct.pack("<I", crc32(payload))) + b"\x00"


def max_frame_len(mtu: int) -> int:
    """Longest frame, delimiter included, carrying at most ``mtu`` payload
    bytes, by the document's overhead bound: ``mtu + ceil(mtu / 254) + 6``."""
    if mtu < 0:
        raise ValueError("negative MTU")
    return mtu + -(-mtu // _FULL_BLOCK) + 6


@dataclass(frozen=True)
class Payload:
    """A whole payload whose CRC matched."""

    data: bytes


@dataclass(frozen=True)
class EndOfStream:
    """The peer's end-of-stream marker (``01 00``): its sending direction is
    closed after every earlier payload."""


class FramingError(VoxError):
    """A frame that is not delivered. The document's link dies on the first
    one; a new link (a new :class:`FrameDecoder`) may attach to the stream."""


class CrcMismatch(FramingError):
    """The frame decoded, but its CRC trailer does not match its payload."""

    def __init__(self, expected: int, found: int) -> None:
        """Records the CRC computed over the payload and the one received."""
        super().__init__(f"CRC mismatch: computed {expected:#010x}, frame carries {found:#010x}")
        self.expected = expected
        self.found = found


class MalformedFrame(FramingError):
    """Bad COBS (a block running past the delimiter), or a frame too short to
    hold the CRC trailer that is not the end-of-stream marker."""


class OversizedFrame(FramingError):
    """A payload larger than the MTU, or more bytes without a delimiter than
    the longest legal frame has (garbage)."""


#: What :meth:`FrameDecoder.feed` reports, in stream order.
DecodeEvent = Union[Payload, EndOfStream, FramingError]


class FrameDecoder:
    """Incremental receiver of a framed byte stream.

    Feed it chunks of any size with :meth:`feed`; it buffers at most one
    frame (bounded by the MTU) and returns what the bytes completed. A new
    decoder is attached to the stream at an unknown position, so its first
    frame is tentative (see the module documentation).
    """

    def __init__(self, mtu: int) -> None:
        """A decoder for payloads of at most ``mtu`` bytes."""
        if mtu < 0:
            raise ValueError("negative MTU")
        self._mtu = mtu
        #: Most non-zero bytes a legal frame has (its length less the delimiter).
        self._run_limit = max_frame_len(mtu) - 1
        self._buf = bytearray()
        self._run = 0  # non-zero bytes since the last delimiter or garbage report
        self._tentative = True
        self._discarding = False

    @property
    def mtu(self) -> int:
        """Largest payload accepted."""
        return self._mtu

    @property
    def run_limit(self) -> int:
        """Most bytes without a delimiter a legal frame has; one more is
        :class:`OversizedFrame`."""
        return self._run_limit

    @property
    def tentative(self) -> bool:
        """Whether no delimiter has been seen yet (the frame in progress is
        the tentative first frame)."""
        return self._tentative

    @property
    def in_frame(self) -> bool:
        """Whether bytes of an unfinished frame (or of garbage being
        discarded) are pending."""
        return self._run > 0 or self._discarding

    def feed(self, data: bytes) -> list[DecodeEvent]:
        """Consumes ``data`` and returns the payloads, end-of-stream markers
        and errors it completed, in order. Never raises for any input."""
        events: list[DecodeEvent] = []
        data = bytes(data)
        pos = 0
        n = len(data)
        while pos < n:
            zero = data.find(0, pos)
            end = n if zero < 0 else zero
            while pos < end:
                room = self._run_limit - self._run
                if end - pos > room:
                    # The byte at pos + room crosses the garbage bound.
                    pos += room + 1
                    events.append(
                        OversizedFrame(
                            f"more than {self._run_limit} bytes without a delimiter "
                            f"(MTU {self._mtu})"
                        )
                    )
                    self._buf.clear()
                    self._run = 0
                    self._tentative = False
                    self._discarding = True
                else:
                    if not self._discarding:
                        self._buf += data[pos:end]
                    self._run += end - pos
                    pos = end
            if zero >= 0:
                pos = zero + 1
                event = self._end_frame()
                if event is not None:
                    events.append(event)
        return events

    def _end_frame(self) -> DecodeEvent | None:
        """A delimiter: finishes the frame in progress, if any."""
        tentative = self._tentative
        discarding = self._discarding
        encoded = bytes(self._buf)
        self._buf.clear()
        self._run = 0
        self._tentative = False
        self._discarding = False
        if discarding or not encoded:
            return None
        event = self._complete(encoded)
        if tentative and not isinstance(event, Payload):
            # Probably the tail of a frame of an earlier link: drop it quietly.
            return None
        return event

    def _complete(self, encoded: bytes) -> DecodeEvent:
        """Decodes and checks the COBS bytes of one whole frame."""
        try:
            decoded = cobs_decode(encoded, limit=self._mtu + CRC_LEN)
        except FramingError as e:
            return e
        if not decoded:
            return EndOfStream()
        if len(decoded) < CRC_LEN:
            return MalformedFrame(f"{len(decoded)} bytes are too short for a CRC")
        payload = decoded[:-CRC_LEN]
        (found,) = struct.unpack("<I", decoded[-CRC_LEN:])
        expected = crc32(payload)
        if found != expected:
            return CrcMismatch(expected, found)
        return Payload(payload)
