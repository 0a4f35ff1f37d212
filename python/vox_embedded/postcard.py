"""Encoding primitives of the wire protocol (docs/PROTOCOL.md, section 1).

Structured data is postcard 1.x. The document defines these encodings
(``u64`` and ``i64`` in section 12.1, for the rpc frames):

========================  ==============================================
type                      encoding
========================  ==============================================
``u8``                    one byte
``u16``, ``u32``          unsigned LEB128 varint, least significant group
                          first; at most 3 bytes for ``u16`` (the third at
                          most ``0x03``), 5 for ``u32`` (the fifth at most
                          ``0x0F``); longer or larger encodings are malformed
``u64``                   the same, at most 10 bytes (the tenth at most
                          ``0x01``)
``i64``                   zigzag (``(n << 1) ^ (n >> 63)``), then as ``u64``
``bool``                  ``00`` or ``01``; anything else is malformed
``Option<T>``             ``00``, or ``01`` followed by ``T``
``[u8; N]``               the ``N`` bytes
``&[u8]``                 varint length, then the bytes
struct, tuple             the fields in order
enum                      the variant index as a varint, then its fields
========================  ==============================================

The document gives no length limit for the ``u64`` varint; the one here is
postcard's (see PROTOCOL_GAPS.md). ``i16`` and ``i32`` are not used by the
protocol and are not provided.

Decoding goes through :class:`Reader`, which raises only
:class:`TruncatedInput` (the bytes ended inside a value) or
:class:`MalformedInput` (bytes that no encoder writes), both
:class:`PostcardError`. Encoding functions return ``bytes`` and raise
``ValueError`` for values that do not fit their type.
"""

from __future__ import annotations

from .errors import VoxError

__all__ = [
    "PostcardError",
    "TruncatedInput",
    "MalformedInput",
    "U16_MAX",
    "U32_MAX",
    "U64_MAX",
    "I64_MIN",
    "I64_MAX",
    "encode_u8",
    "encode_varint",
    "encode_u16",
    "encode_u32",
    "encode_u64",
    "encode_i64",
    "zigzag_encode",
    "zigzag_decode",
    "encode_bool",
    "encode_byte_slice",
    "varint_len",
    "Reader",
]

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

#: The unsigned varint widths the protocol uses.
_VARINT_BITS = (16, 32, 64)


class PostcardError(VoxError):
    """Bytes that do not decode as the expected postcard value."""


class TruncatedInput(PostcardError):
    """The input ended inside a value."""


class MalformedInput(PostcardError):
    """Bytes no encoder writes: an over-long or too large varint, a bool or
    option tag other than ``00``/``01``, or bytes left after the value."""


def _check_range(value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{value} does not fit in u{bits}")


def encode_u8(value: int) -> bytes:
    """Encodes a ``u8``: the byte itself."""
    _check_range(value, 8)
    return bytes((value,))


def encode_varint(value: int, bits: int) -> bytes:
    """Encodes an unsigned integer of ``bits`` bits (16, 32 or 64) as a varint.

    Seven bits per byte, least significant group first, the high bit set on
    every byte but the last; the shortest encoding (the one every encoder
    writes).
    """
    if bits not in _VARINT_BITS:
        raise ValueError(f"the protocol has no u{bits} varint")
    _check_range(value, bits)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_u16(value: int) -> bytes:
    """Encodes a ``u16`` varint (1 to 3 bytes)."""
    return encode_varint(value, 16)


def encode_u32(value: int) -> bytes:
    """Encodes a ``u32`` varint (1 to 5 bytes)."""
    return encode_varint(value, 32)


def encode_u64(value: int) -> bytes:
    """Encodes a ``u64`` varint (1 to 10 bytes)."""
    return encode_varint(value, 64)


def zigzag_encode(value: int) -> int:
    """Maps an ``i64`` to the ``u64`` postcard writes for it:
    ``(n << 1) ^ (n >> 63)`` (0, -1, 1, -2, ... become 0, 1, 2, 3, ...).

    Raises ``ValueError`` for a value outside ``i64``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if not I64_MIN <= value <= I64_MAX:
        raise ValueError(f"{value} does not fit in i64")
    return (value << 1) ^ (value >> 63)


def zigzag_decode(value: int) -> int:
    """The inverse of :func:`zigzag_encode`, for any ``u64``."""
    _check_range(value, 64)
    return (value >> 1) ^ -(value & 1)


def encode_i64(value: int) -> bytes:
    """Encodes an ``i64``: zigzag, then a ``u64`` varint (1 to 10 bytes)."""
    return encode_u64(zigzag_encode(value))


def varint_len(value: int) -> int:
    """Length in bytes of the shortest varint encoding of ``value``."""
    n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


def encode_bool(value: bool) -> bytes:
    """Encodes a ``bool``: ``00`` or ``01``."""
    return b"\x01" if value else b"\x00"


def encode_byte_slice(data: bytes) -> bytes:
    """Encodes ``&[u8]``: the length as a ``u32`` varint, then the bytes.

    The document does not give the length varint a width; a ``u32`` is what
    the Rust peer reads (see PROTOCOL_GAPS.md), so longer slices are refused.
    """
    if len(data) > U32_MAX:
        raise ValueError("a byte string longer than u32::MAX cannot be encoded")
    return encode_u32(len(data)) + bytes(data)


class Reader:
    """Reads postcard values, in order, from one payload.

    Every method either returns a value (and moves past it) or raises a
    :class:`PostcardError`; :meth:`finish` checks nothing is left over.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        """Starts reading at the first byte of ``data``."""
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        """Offset of the next byte to read."""
        return self._pos

    def u8(self) -> int:
        """Reads one byte."""
        if self._pos >= len(self._data):
            raise TruncatedInput(f"input ended at offset {self._pos}, expected a byte")
        b = self._data[self._pos]
        self._pos += 1
        return b

    def varint(self, bits: int) -> int:
        """Reads a varint of a ``bits``-bit unsigned type (16, 32 or 64).

        An encoding longer than the type allows, or whose last possible byte
        holds bits beyond the type, is :class:`MalformedInput`; running out of
        bytes inside it is :class:`TruncatedInput`. Non-minimal encodings
        within the length limit (``81 00`` for 1) are accepted, as the Rust
        peer does (see PROTOCOL_GAPS.md).
        """
        if bits not in _VARINT_BITS:
            raise ValueError(f"the protocol has no u{bits} varint")
        max_len = (bits + 6) // 7
        last_max = (1 << (bits - 7 * (max_len - 1))) - 1
        start = self._pos
        value = 0
        for i in range(max_len):
            b = self.u8()
            if i == max_len - 1 and b > last_max:
                raise MalformedInput(
                    f"varint at offset {start} is longer or larger than u{bits}"
                )
            value |= (b & 0x7F) << (7 * i)
            if b & 0x80 == 0:
                return value
        # Unreachable: the last byte either ends the varint or is refused.
        raise MalformedInput(f"varint at offset {start} is longer than u{bits}")

    def u16(self) -> int:
        """Reads a ``u16`` varint."""
        return self.varint(16)

    def u32(self) -> int:
        """Reads a ``u32`` varint."""
        return self.varint(32)

    def u64(self) -> int:
        """Reads a ``u64`` varint."""
        return self.varint(64)

    def i64(self) -> int:
        """Reads an ``i64``: a ``u64`` varint, then zigzag decoded."""
        return zigzag_decode(self.varint(64))

    def bool(self) -> bool:
        """Reads a ``bool``: ``00`` or ``01``, anything else is malformed."""
        at = self._pos
        b = self.u8()
        if b > 1:
            raise MalformedInput(f"byte {b:#04x} at offset {at} is not a bool or option tag")
        return b == 1

    def option_tag(self) -> bool:
        """Reads an ``Option`` tag: ``True`` if a value follows."""
        return self.bool()

    def fixed(self, n: int) -> bytes:
        """Reads a ``[u8; n]``: exactly ``n`` bytes, no length."""
        if n < 0:
            raise ValueError("negative length")
        if self.remaining < n:
            raise TruncatedInput(
                f"input ended at offset {len(self._data)}, expected {n} bytes from {self._pos}"
            )
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def rest(self) -> bytes:
        """Reads every byte left (a value that fills the rest of the
        payload, with no length before it)."""
        return self.fixed(self.remaining)

    def byte_slice(self) -> bytes:
        """Reads a ``&[u8]``: a ``u32`` varint length, then that many bytes."""
        return self.fixed(self.u32())

    def enum_index(self) -> int:
        """Reads an enum's variant index (a ``u32`` varint)."""
        return self.u32()

    def finish(self) -> None:
        """Checks every byte was read; bytes left over are malformed."""
        if self._pos != len(self._data):
            raise MalformedInput(f"{self.remaining} bytes left after the value")
