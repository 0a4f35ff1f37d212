"""Helpers shared by the tests: seeded randomness and the document's hex
examples."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Iterator

#: docs/PROTOCOL.md, found from this file (python/tests/support.py).
PROTOCOL_MD = Path(__file__).resolve().parent.parent.parent / "docs" / "PROTOCOL.md"

#: Property tests run this many seeds each; ``VOX_SEEDS`` overrides it.
SEED_COUNT = int(os.environ.get("VOX_SEEDS", "20"))
#: First seed; ``VOX_SEED`` overrides it (to replay a reported failure, set
#: ``VOX_SEED`` to the seed printed and ``VOX_SEEDS=1``).
FIRST_SEED = int(os.environ.get("VOX_SEED", "20240601"))


def seeds() -> Iterator[int]:
    """The seeds a property test runs; each failure names its seed (the
    tests wrap each seed in ``subTest(seed=...)``)."""
    return iter(range(FIRST_SEED, FIRST_SEED + SEED_COUNT))


def rng(seed: int) -> random.Random:
    """A deterministic random source for one seed."""
    return random.Random(seed)


def random_bytes(r: random.Random, n: int, zero_bias: float = 0.0) -> bytes:
    """``n`` random bytes; with ``zero_bias`` > 0 about that share are ``00``
    (zeros are what COBS cares about)."""
    return bytes(0 if r.random() < zero_bias else r.randrange(256) for _ in range(n))


def chunked(r: random.Random, data: bytes, max_chunk: int = 40) -> Iterator[bytes]:
    """``data`` cut at random places, empty chunks included."""
    pos = 0
    while pos < len(data):
        n = r.randrange(0, max_chunk + 1)
        yield data[pos : pos + n]
        pos += n


_FENCE = re.compile(r"^```hex(?:[ \t]+(?P<name>\S.*?))?\s*$")


def document_hex_blocks(text: str | None = None) -> list[tuple[str, bytes]]:
    """Every ```` ```hex NAME ```` block of docs/PROTOCOL.md, in order, as
    (name, bytes). Text after ``#`` on a line is a comment. Raises
    ``ValueError`` for a block without a name, an unterminated block or a
    token that is not one hex byte."""
    if text is None:
        text = PROTOCOL_MD.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks: list[tuple[str, bytes]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        i += 1
        if m is None:
            continue
        name = m.group("name")
        if not name:
            raise ValueError(f"line {i}: a hex block without a name")
        out = bytearray()
        while True:
            if i >= len(lines):
                raise ValueError(f"hex block {name!r} is not terminated")
            line = lines[i]
            i += 1
            if line.startswith("```"):
                break
            for tok in line.split("#", 1)[0].split():
                if not re.fullmatch(r"[0-9a-fA-F]{2}", tok):
                    raise ValueError(f"hex block {name!r}: bad token {tok!r}")
                out.append(int(tok, 16))
        blocks.append((name.strip(), bytes(out)))
    return blocks


def hexs(data: bytes) -> str:
    """Bytes as spaced lowercase hex, as the document writes them."""
    return data.hex(" ")
