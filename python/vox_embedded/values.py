"""Postcard values driven by the owned schemas of ``docs/schemas/*.json``
(PROTOCOL.md section 1 and section 3's JSON form), and the catalog of the
endpoints and topics those files declare (section 12.2, "Keys").

:func:`encode` and :func:`decode` cover the data model the demo's types
use and more: integers (``u8``/``i8`` one byte; wider ones varints,
signed ones zigzag), ``bool``, ``f32``/``f64``, ``char``, strings, byte
strings and other sequences, byte arrays, options, unit, unit/newtype
structs, structs, tuples, tuple structs, maps and enums.

Python values: integers, ``bool``, ``float``, ``str``, ``bytes`` (for a
sequence of ``u8``), ``list`` (another sequence, a tuple), ``None`` (unit;
an absent option), ``dict`` (a struct, by field name; a map), and for an
enum a ``(variant_name, value)`` pair (``value`` ``None`` for a unit
variant).

:func:`parse_args` turns command-line words into such a value for a
schema (see the CLI, ``python3 -m vox_embedded call``).
"""

from __future__ import annotations

# r[impl py.cli]

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import postcard
from .errors import VoxError
from .schema import SCHEMA_DIR, key32, load

__all__ = ["encode", "decode", "decode_all", "parse_args", "Entry", "Catalog", "SchemaValueError", "ValueDecodeError"]

_UNSIGNED = {"U16": 16, "U32": 32, "U64": 64, "U128": 128, "Usize": 64}
_SIGNED = {"I16": 16, "I32": 32, "I64": 64, "I128": 128, "Isize": 64}


class SchemaValueError(ValueError):
    """A Python value (or a command-line word) that does not fit its schema."""


class ValueDecodeError(VoxError):
    """Bytes that are not the postcard encoding of the schema's type."""


def _split(ty: Any) -> Tuple[str, Any]:
    if isinstance(ty, str):
        return ty, None
    if isinstance(ty, dict) and len(ty) == 1:
        ((k, v),) = ty.items()
        return k, v
    raise SchemaValueError(f"not a schema type: {ty!r}")


def _varint(value: int, bits: int) -> bytes:
    if not 0 <= value < (1 << bits):
        raise SchemaValueError(f"{value} does not fit u{bits}")
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(value: int, bits: int) -> int:
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise SchemaValueError(f"{value} does not fit i{bits}")
    return (value << 1) ^ (value >> (bits - 1)) if value < 0 else value << 1


def _is_bytes_seq(inner: Dict[str, Any]) -> bool:
    return _split(inner["ty"])[0] == "U8"


def encode(value: Any, nt: Dict[str, Any]) -> bytes:
    """The postcard encoding of ``value`` as the named type ``nt``; raises
    :class:`SchemaValueError` when it does not fit."""
    out = bytearray()
    _enc(value, nt, out)
    return bytes(out)


def _enc(value: Any, nt: Dict[str, Any], out: bytearray) -> None:
    kind, part = _split(nt["ty"])
    if kind == "Bool":
        if not isinstance(value, bool):
            raise SchemaValueError(f"expected a bool, got {value!r}")
        out.append(1 if value else 0)
    elif kind in ("U8", "I8"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaValueError(f"expected an integer, got {value!r}")
        lo, hi = (0, 255) if kind == "U8" else (-128, 127)
        if not lo <= value <= hi:
            raise SchemaValueError(f"{value} does not fit {kind.lower()}")
        out.append(value & 0xFF)
    elif kind in _UNSIGNED or kind in _SIGNED:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaValueError(f"expected an integer, got {value!r}")
        if kind in _UNSIGNED:
            out += _varint(value, _UNSIGNED[kind])
        else:
            bits = _SIGNED[kind]
            out += _varint(_zigzag(value, bits), bits)
    elif kind in ("F32", "F64"):
        out += struct.pack("<f" if kind == "F32" else "<d", float(value))
    elif kind == "Char":
        if not isinstance(value, str) or len(value) != 1:
            raise SchemaValueError(f"expected one character, got {value!r}")
        data = value.encode("utf-8")
        out += _varint(len(data), 32) + data
    elif kind == "String":
        if not isinstance(value, str):
            raise SchemaValueError(f"expected a string, got {value!r}")
        data = value.encode("utf-8")
        out += _varint(len(data), 32) + data
    elif kind == "ByteArray":
        data = bytes(value)
        out += _varint(len(data), 32) + data
    elif kind in ("Unit", "UnitStruct"):
        if value is not None:
            raise SchemaValueError(f"expected nothing (unit), got {value!r}")
    elif kind == "Option":
        if value is None:
            out.append(0)
        else:
            out.append(1)
            _enc(value, part, out)
    elif kind == "NewtypeStruct":
        _enc(value, part, out)
    elif kind == "Seq":
        if _is_bytes_seq(part) and isinstance(value, (bytes, bytearray)):
            out += _varint(len(value), 32) + bytes(value)
        else:
            items = list(value)
            out += _varint(len(items), 32)
            for item in items:
                _enc(item, part, out)
    elif kind in ("Tuple", "TupleStruct"):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(items) != len(part):
            raise SchemaValueError(f"expected {len(part)} elements, got {len(items)}")
        for item, elem in zip(items, part):
            _enc(item, elem, out)
    elif kind == "Map":
        if not isinstance(value, dict):
            raise SchemaValueError(f"expected a map, got {value!r}")
        out += _varint(len(value), 32)
        for k, v in value.items():
            _enc(k, part["key"], out)
            _enc(v, part["val"], out)
    elif kind == "Struct":
        if not isinstance(value, dict):
            raise SchemaValueError(f"expected a struct (dict), got {value!r}")
        names = [f["name"] for f in part]
        extra = set(value) - set(names)
        if extra:
            raise SchemaValueError(f"unknown fields {sorted(extra)} (fields: {names})")
        for f in part:
            if f["name"] not in value:
                raise SchemaValueError(f"missing field {f['name']!r}")
            _enc(value[f["name"]], f["ty"], out)
    elif kind == "Enum":
        if not (isinstance(value, tuple) and len(value) == 2):
            raise SchemaValueError(f"expected (variant, value), got {value!r}")
        name, inner = value
        for index, variant in enumerate(part):
            if variant["name"] == name:
                out += _varint(index, 32)
                vkind, vpart = _split(variant["ty"])
                if vkind == "NewtypeVariant":
                    _enc(inner, vpart, out)
                elif vkind == "TupleVariant":
                    _enc(inner, {"name": name, "ty": {"Tuple": vpart}}, out)
                elif vkind == "StructVariant":
                    _enc(inner, {"name": name, "ty": {"Struct": vpart}}, out)
                return
        raise SchemaValueError(f"no variant {name!r}")
    else:
        raise SchemaValueError(f"type {kind} is not supported")


def decode_all(data: bytes, nt: Dict[str, Any]) -> Any:
    """Decodes ``data`` as exactly one value of ``nt``."""
    r = postcard.Reader(data)
    try:
        v = _dec(r, nt)
        r.finish()
    except postcard.PostcardError as e:
        raise ValueDecodeError(f"{nt.get('name')}: {e}") from e
    return v


def decode(r: postcard.Reader, nt: Dict[str, Any]) -> Any:
    """Decodes one value of ``nt`` from ``r``."""
    try:
        return _dec(r, nt)
    except postcard.PostcardError as e:
        raise ValueDecodeError(f"{nt.get('name')}: {e}") from e


def _unzig(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


def _dec(r: postcard.Reader, nt: Dict[str, Any]) -> Any:
    kind, part = _split(nt["ty"])
    if kind == "Bool":
        return r.bool()
    if kind == "U8":
        return r.u8()
    if kind == "I8":
        b = r.u8()
        return b - 256 if b >= 128 else b
    if kind in ("U16", "U32", "U64"):
        return r.varint(_UNSIGNED[kind])
    if kind == "Usize":
        return r.varint(64)
    if kind in ("I16", "I32", "I64"):
        return _unzig(r.varint(_SIGNED[kind]))
    if kind == "Isize":
        return _unzig(r.varint(64))
    if kind in ("F32", "F64"):
        n = 4 if kind == "F32" else 8
        return struct.unpack("<f" if n == 4 else "<d", r.fixed(n))[0]
    if kind in ("String", "Char"):
        data = r.byte_slice()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueDecodeError(f"{nt.get('name')}: not UTF-8") from e
    if kind == "ByteArray":
        return r.byte_slice()
    if kind in ("Unit", "UnitStruct"):
        return None
    if kind == "Option":
        return _dec(r, part) if r.option_tag() else None
    if kind == "NewtypeStruct":
        return _dec(r, part)
    if kind == "Seq":
        if _is_bytes_seq(part):
            return r.byte_slice()
        return [_dec(r, part) for _ in range(r.varint(32))]
    if kind in ("Tuple", "TupleStruct"):
        return [_dec(r, elem) for elem in part]
    if kind == "Map":
        return {_freeze(_dec(r, part["key"])): _dec(r, part["val"]) for _ in range(r.varint(32))}
    if kind == "Struct":
        return {f["name"]: _dec(r, f["ty"]) for f in part}
    if kind == "Enum":
        index = r.varint(32)
        if index >= len(part):
            raise ValueDecodeError(f"{nt.get('name')}: no variant {index}")
        variant = part[index]
        vkind, vpart = _split(variant["ty"])
        if vkind == "UnitVariant":
            return (variant["name"], None)
        if vkind == "NewtypeVariant":
            return (variant["name"], _dec(r, vpart))
        if vkind == "TupleVariant":
            return (variant["name"], [_dec(r, e) for e in vpart])
        return (variant["name"], {f["name"]: _dec(r, f["ty"]) for f in vpart})
    raise ValueDecodeError(f"type {kind} is not supported")


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


# ------------------------------------------------------------------ command-line words


def _parse_scalar(word: str, nt: Dict[str, Any]) -> Any:
    kind, part = _split(nt["ty"])
    if kind == "Bool":
        low = word.lower()
        if low in ("true", "1", "yes", "on", "high"):
            return True
        if low in ("false", "0", "no", "off", "low"):
            return False
        raise SchemaValueError(f"{word!r} is not a bool")
    if kind in ("U8", "I8") or kind in _UNSIGNED or kind in _SIGNED:
        try:
            return int(word, 0)
        except ValueError:
            raise SchemaValueError(f"{word!r} is not an integer") from None
    if kind in ("F32", "F64"):
        try:
            return float(word)
        except ValueError:
            raise SchemaValueError(f"{word!r} is not a number") from None
    if kind in ("String", "Char"):
        return word
    if kind == "ByteArray" or (kind == "Seq" and _is_bytes_seq(part)):
        if word.startswith("0x"):
            try:
                return bytes.fromhex(word[2:])
            except ValueError:
                raise SchemaValueError(f"{word!r} is not hex bytes") from None
        return word.encode("utf-8")
    raise SchemaValueError(f"type {kind} takes more than one word")


def parse_args(words: Sequence[str], nt: Dict[str, Any]) -> Any:
    """A value of ``nt`` from command-line words: scalars one word each
    (integers in any base Python reads, ``true``/``false``, byte strings as
    text or ``0x`` hex), a struct or tuple one word per field in order
    (``name=value`` words may name a struct's fields), an option ``none``
    or its value, unit no word at all. Raises :class:`SchemaValueError`
    when the words do not fit or some are left over."""
    rest = list(words)
    v = _take(rest, nt)
    if rest:
        raise SchemaValueError(f"unused arguments: {rest}")
    return v


def _take(words: List[str], nt: Dict[str, Any]) -> Any:
    kind, part = _split(nt["ty"])
    if kind in ("Unit", "UnitStruct"):
        return None
    if kind == "NewtypeStruct":
        return _take(words, part)
    if kind == "Option":
        if words and words[0].lower() == "none":
            words.pop(0)
            return None
        if not words:
            return None
        return _take(words, part)
    if kind == "Struct":
        named = {}
        for w in list(words):
            if "=" in w and w.split("=", 1)[0] in [f["name"] for f in part]:
                named[w.split("=", 1)[0]] = w.split("=", 1)[1]
                words.remove(w)
        value = {}
        for f in part:
            if f["name"] in named:
                value[f["name"]] = _parse_scalar(named[f["name"]], f["ty"])
            else:
                value[f["name"]] = _take(words, f["ty"])
        return value
    if kind in ("Tuple", "TupleStruct"):
        return [_take(words, e) for e in part]
    if kind == "Seq" and not _is_bytes_seq(part):
        items = []
        while words:
            items.append(_take(words, part))
        return items
    if not words:
        raise SchemaValueError(f"missing a value of type {nt.get('name')}")
    return _parse_scalar(words.pop(0), nt)


# ------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class Entry:
    """One endpoint or topic of the exported schemas: its name, 32-bit key
    (recomputed from the schema) and types (``request``, ``response``,
    ``error`` for an endpoint; ``message`` for a topic)."""

    kind: str
    name: str
    key: int
    request: Optional[Dict[str, Any]] = None
    response: Optional[Dict[str, Any]] = None
    error: Optional[Dict[str, Any]] = None
    message: Optional[Dict[str, Any]] = None


class Catalog:
    """Every endpoint and topic of ``docs/schemas`` (service files), by
    name and by 32-bit key; the keys are recomputed (section 12.2)."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        """Loads the service files of ``directory``."""
        self.by_key: Dict[int, Entry] = {}
        self.by_name: Dict[str, Entry] = {}
        for doc in load(directory):
            if doc.get("kind") != "service":
                continue
            for ep in doc.get("endpoints", []):
                req, resp, err = _split(ep["schema"]["ty"])[1]
                e = Entry("endpoint", ep["name"], key32(ep["name"], ep["schema"]), req, resp, err)
                self._add(e)
            for tp in doc.get("topics", []):
                self._add(Entry("topic", tp["name"], key32(tp["name"], tp["schema"]), message=tp["schema"]))

    def _add(self, e: Entry) -> None:
        self.by_key[e.key] = e
        self.by_name[e.name] = e

    def name(self, key: int) -> str:
        """The name of ``key``, or its hex form when no schema declares it."""
        e = self.by_key.get(key)
        return e.name if e is not None else f"?{key:08x}"
