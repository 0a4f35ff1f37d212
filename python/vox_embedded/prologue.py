"""The link prologue (docs/PROTOCOL.md, section 3).

The first payload each way on every link::

    magic        [u8; 4]      56 4f 58 45  ("VOXE")
    version      u16 varint   2
    mode         u8           0 bare, 1 stable
    role         u8           0 initiator, 1 acceptor
    fingerprint  [u8; 8]      the schema fingerprint of the message family

:func:`decode_prologue` reads magic and version first, so a peer of
another version is told so whatever follows, then the rest. Its errors are
either *decode errors* (:class:`PrologueDecodeError`: the payload is not a
prologue) or *refusals* (:class:`PrologueRefusal`: a prologue this side
will not talk to). :func:`check_peer` then compares the peer's prologue
with this side's, in the document's order: mode, fingerprint, role.

A refusal names both values. On a refusal the side still sends its own
prologue (if it has not yet on this link) so the peer finds the same
mismatch, then ends and does not retry; that behaviour belongs to the
caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from . import postcard
from .errors import VoxError

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "FINGERPRINT_LEN",
    "MAX_PROLOGUE_LEN",
    "Mode",
    "Role",
    "Prologue",
    "encode_prologue",
    "decode_prologue",
    "check_peer",
    "PrologueError",
    "PrologueDecodeError",
    "PrologueTruncated",
    "PrologueMalformed",
    "BadMagic",
    "PrologueRefusal",
    "VersionMismatch",
    "UnknownMode",
    "UnknownRole",
    "ModeMismatch",
    "SchemaMismatch",
    "RoleConflict",
]

#: The four bytes that open every prologue.
MAGIC = b"VOXE"
#: The protocol version of docs/PROTOCOL.md.
PROTOCOL_VERSION = 2
#: Length of a schema fingerprint.
FINGERPRINT_LEN = 8
#: Longest encoded prologue (a 3-byte version varint).
MAX_PROLOGUE_LEN = 4 + 3 + 1 + 1 + FINGERPRINT_LEN


class Mode(enum.IntEnum):
    """Which conduit the link carries."""

    BARE = 0
    STABLE = 1


class Role(enum.IntEnum):
    """Which side of the link the sender is."""

    INITIATOR = 0
    ACCEPTOR = 1


@dataclass(frozen=True)
class Prologue:
    """One side's prologue."""

    mode: Mode
    role: Role
    fingerprint: bytes
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """The prologue's bytes (see :func:`encode_prologue`)."""
        return encode_prologue(self)


class PrologueError(VoxError):
    """A peer's prologue this side cannot accept."""


class PrologueDecodeError(PrologueError):
    """The payload is not a prologue at all."""


class PrologueTruncated(PrologueDecodeError):
    """The payload ended before the prologue did."""


class PrologueMalformed(PrologueDecodeError):
    """Bytes after the fingerprint, or an over-long or too large version
    varint."""


class BadMagic(PrologueDecodeError):
    """The payload does not start with ``VOXE``."""

    def __init__(self, found: bytes) -> None:
        """Records the four bytes found instead of the magic."""
        super().__init__(f"bad prologue magic {found.hex(' ')}")
        self.found = found


class PrologueRefusal(PrologueError):
    """A prologue this side refuses to talk to: another version, an unknown
    mode or role, or a mismatch with this side's own prologue."""


class VersionMismatch(PrologueRefusal):
    """The peer speaks another protocol version."""

    def __init__(self, local: int, peer: int) -> None:
        """Records both versions."""
        super().__init__(f"protocol version mismatch: ours {local}, peer's {peer}")
        self.local = local
        self.peer = peer


class UnknownMode(PrologueRefusal):
    """The peer's mode byte is neither bare nor stable."""

    def __init__(self, value: int) -> None:
        """Records the mode byte."""
        super().__init__(f"unknown conduit mode {value}")
        self.value = value


class UnknownRole(PrologueRefusal):
    """The peer's role byte is neither initiator nor acceptor."""

    def __init__(self, value: int) -> None:
        """Records the role byte."""
        super().__init__(f"unknown role {value}")
        self.value = value


class ModeMismatch(PrologueRefusal):
    """The peer asked for the other conduit mode (there is no fallback)."""

    def __init__(self, local: Mode, peer: Mode) -> None:
        """Records both modes."""
        super().__init__(f"conduit mode mismatch: ours {local.name}, peer's {peer.name}")
        self.local = local
        self.peer = peer


class SchemaMismatch(PrologueRefusal):
    """The peer's message family has another schema fingerprint."""

    def __init__(self, local: bytes, peer: bytes) -> None:
        """Records both fingerprints."""
        super().__init__(f"schema fingerprint mismatch: ours {local.hex()}, peer's {peer.hex()}")
        self.local = local
        self.peer = peer


class RoleConflict(PrologueRefusal):
    """Both sides claim the same role."""

    def __init__(self, local: Role, peer: Role) -> None:
        """Records both roles (equal)."""
        super().__init__(f"role conflict: both sides are {local.name} (peer: {peer.name})")
        self.local = local
        self.peer = peer


def encode_prologue(prologue: Prologue) -> bytes:
    """Encodes a prologue: magic, version varint, mode, role, fingerprint.

    Raises ``ValueError`` for a version over ``u16`` or a fingerprint that
    is not 8 bytes.
    """
    fingerprint = bytes(prologue.fingerprint)
    if len(fingerprint) != FINGERPRINT_LEN:
        raise ValueError(f"a fingerprint is {FINGERPRINT_LEN} bytes, got {len(fingerprint)}")
    return (
        MAGIC
        + postcard.encode_u16(prologue.version)
        + postcard.encode_u8(Mode(prologue.mode))
        + postcard.encode_u8(Role(prologue.role))
        + fingerprint
    )


def decode_prologue(payload: bytes, supported_version: int = PROTOCOL_VERSION) -> Prologue:
    """Decodes a peer's prologue.

    In order: fewer than 4 bytes is :class:`PrologueTruncated`; another
    magic is :class:`BadMagic`; then the version (truncated or malformed
    varint, then :class:`VersionMismatch` whatever follows); then the rest:
    too short is :class:`PrologueTruncated`, bytes after the fingerprint
    :class:`PrologueMalformed`, and only then an unknown mode or role
    (:class:`UnknownMode`, :class:`UnknownRole`). Raises nothing but
    :class:`PrologueError` for any input.
    """
    r = postcard.Reader(payload)
    try:
        magic = r.fixed(len(MAGIC))
        if magic != MAGIC:
            raise BadMagic(magic)
        version = r.u16()
        if version != supported_version:
            raise VersionMismatch(supported_version, version)
        mode_byte = r.u8()
        role_byte = r.u8()
        fingerprint = r.fixed(FINGERPRINT_LEN)
        r.finish()
    except postcard.TruncatedInput as e:
        raise PrologueTruncated(str(e)) from None
    except postcard.MalformedInput as e:
        raise PrologueMalformed(str(e)) from None
    try:
        mode = Mode(mode_byte)
    except ValueError:
        raise UnknownMode(mode_byte) from None
    try:
        role = Role(role_byte)
    except ValueError:
        raise UnknownRole(role_byte) from None
    return Prologue(mode=mode, role=role, fingerprint=fingerprint, version=version)


def check_peer(local: Prologue, peer: Prologue) -> None:
    """Checks a decoded peer prologue against this side's own.

    In the document's order: the same mode (:class:`ModeMismatch`), the
    same fingerprint (:class:`SchemaMismatch`), the opposite role
    (:class:`RoleConflict`); a version other than ``local``'s is
    :class:`VersionMismatch` (normally caught by :func:`decode_prologue`
    already). Returns ``None`` when the peer is acceptable.
    """
    if peer.version != local.version:
        raise VersionMismatch(local.version, peer.version)
    if peer.mode != local.mode:
        raise ModeMismatch(Mode(local.mode), Mode(peer.mode))
    if bytes(peer.fingerprint) != bytes(local.fingerprint):
        raise SchemaMismatch(bytes(local.fingerprint), bytes(peer.fingerprint))
    if peer.role == local.role:
        raise RoleConflict(Role(local.role), Role(peer.role))
