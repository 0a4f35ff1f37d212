"""Schema fingerprints and endpoint keys (PROTOCOL.md section 3,
"fingerprint", and section 12.2, "Keys"), recomputed from the schemas the
Rust side exports to ``docs/schemas/*.json``.

A schema there is postcard-schema's owned form serialized by serde: a
*named type* is ``{"name": ..., "ty": ...}``; ``ty`` is a string for a
type without parts (``"U8"``, ``"String"``, ``"Unit"`` ...) or a
one-entry object for one with parts (``{"Struct": [...]}``,
``{"Option": <named type>}`` ...). The key of a path and a schema is
FNV-1a 64 over the path's UTF-8 bytes, then over the schema as
:func:`hash_named_type` walks it; its 8 bytes are the digest in
little-endian order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

#: FNV-1a 64 offset basis and prime.
FNV64_BASIS = 0xCBF29CE484222325
FNV64_PRIME = 0x00000100000001B3
_MASK64 = (1 << 64) - 1

#: The path every message family's fingerprint is computed under.
FAMILY_PATH = "vox.msg"

#: The tag byte hashed for each data-model type.
TYPE_TAGS: Dict[str, int] = {
    "Bool": 0x11,
    "I8": 0xC5,
    "U8": 0x3D,
    "I16": 0x1D,
    "I32": 0x0D,
    "I64": 0x0B,
    "I128": 0x02,
    "U16": 0x83,
    "U32": 0xD3,
    "U64": 0x13,
    "U128": 0x8B,
    "Usize": 0x6B,
    "Isize": 0xAD,
    "F32": 0xEF,
    "F64": 0x71,
    "Char": 0xC1,
    "String": 0x25,
    "ByteArray": 0x65,
    "Option": 0x6D,
    "Unit": 0x47,
    "UnitStruct": 0xBF,
    "NewtypeStruct": 0x9D,
    "Seq": 0x03,
    "Tuple": 0xA7,
    "TupleStruct": 0x05,
    "Map": 0x4F,
    "Struct": 0x7F,
    "Enum": 0xE9,
    "Schema": 0xB3,
}

#: The tag byte hashed for each kind of enum variant.
VARIANT_TAGS: Dict[str, int] = {
    "UnitVariant": 0xB5,
    "NewtypeVariant": 0xDF,
    "TupleVariant": 0xC7,
    "StructVariant": 0x67,
}

#: docs/schemas, found from this file (python/vox_embedded/schema.py).
SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "docs" / "schemas"


class SchemaError(ValueError):
    """A schema that is not postcard-schema's owned form."""


def fnv1a64_update(state: int, data: bytes) -> int:
    """FNV-1a 64 over ``data``, from ``state``."""
    for b in data:
        state = ((state ^ b) * FNV64_PRIME) & _MASK64
    return state


def _split(ty: Any) -> "tuple[str, Any]":
    if isinstance(ty, str):
        return ty, None
    if isinstance(ty, dict) and len(ty) == 1:
        ((kind, inner),) = ty.items()
        return kind, inner
    raise SchemaError(f"not a data-model type: {ty!r}")


def hash_named_type(state: int, nt: Dict[str, Any]) -> int:
    """Hashes a named type: its ``ty`` only (the type's name is not
    hashed, so ``&[u8]`` and ``Vec<u8>`` agree)."""
    kind, inner = _split(nt["ty"])
    tag = TYPE_TAGS.get(kind)
    if tag is None:
        raise SchemaError(f"unknown data-model type {kind!r}")
    state = fnv1a64_update(state, bytes([tag]))
    if kind in ("Option", "NewtypeStruct", "Seq"):
        return hash_named_type(state, inner)
    if kind in ("Tuple", "TupleStruct"):
        for part in inner:
            state = hash_named_type(state, part)
        return state
    if kind == "Map":
        state = hash_named_type(state, inner["key"])
        return hash_named_type(state, inner["val"])
    if kind == "Struct":
        for field in inner:
            state = fnv1a64_update(state, field["name"].encode("utf-8"))
            state = hash_named_type(state, field["ty"])
        return state
    if kind == "Enum":
        for variant in inner:
            state = _hash_variant(state, variant)
        return state
    if inner is not None:
        raise SchemaError(f"{kind} has no parts")
    return state


def _hash_variant(state: int, variant: Dict[str, Any]) -> int:
    state = fnv1a64_update(state, variant["name"].encode("utf-8"))
    kind, inner = _split(variant["ty"])
    tag = VARIANT_TAGS.get(kind)
    if tag is None:
        raise SchemaError(f"unknown variant kind {kind!r}")
    state = fnv1a64_update(state, bytes([tag]))
    if kind == "NewtypeVariant":
        return hash_named_type(state, inner)
    if kind == "TupleVariant":
        for part in inner:
            state = hash_named_type(state, part)
        return state
    if kind == "StructVariant":
        for field in inner:
            state = fnv1a64_update(state, field["name"].encode("utf-8"))
            state = hash_named_type(state, field["ty"])
        return state
    return state


def key64(path: str, schema: Dict[str, Any]) -> bytes:
    """The 8-byte key of ``path`` and ``schema``: the FNV-1a 64 digest,
    little endian (a family's prologue fingerprint when ``path`` is
    ``"vox.msg"``)."""
    state = fnv1a64_update(FNV64_BASIS, path.encode("utf-8"))
    return hash_named_type(state, schema).to_bytes(8, "little")


def fingerprint(schema: Dict[str, Any]) -> bytes:
    """A message family's schema fingerprint (the prologue's 8 bytes)."""
    return key64(FAMILY_PATH, schema)


def key32(name: str, schema: Dict[str, Any]) -> int:
    """An endpoint's or topic's 32-bit key (section 12.2): the first four
    bytes of :func:`key64`, little endian. An endpoint's ``schema`` is the
    tuple ``(Req, Resp, Err)``; a topic's, its message."""
    return int.from_bytes(key64(name, schema)[:4], "little")


def load(directory: Path = SCHEMA_DIR) -> List[Dict[str, Any]]:
    """Every exported schema file, in name order."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]
