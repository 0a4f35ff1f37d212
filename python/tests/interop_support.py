"""Shared by the TCP interop test and the throughput bench: building and
starting the Rust peer (`tests/src/bin/interop_peer.rs`), and a seeded
asyncio TCP proxy that cuts its connections."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Optional

#: The repository root (python/tests/interop_support.py is two levels down).
ROOT = Path(__file__).resolve().parent.parent.parent


class CargoMissing(RuntimeError):
    """cargo is not installed: the interop tests are skipped."""


def build_peer() -> Path:
    """Builds the Rust peer (release) once and returns its path; honours
    ``CARGO_TARGET_DIR``. Raises :class:`CargoMissing` without cargo, and
    ``RuntimeError`` if the build fails."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise CargoMissing("cargo is not installed: cannot build the Rust interop peer")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    done = subprocess.run(
        [cargo, "build", "--release", "-q", "-p", "vox-tests", "--bin", "interop_peer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cargo build of interop_peer failed:\n{done.stderr[-4000:]}")
    return target / "release" / "interop_peer"


def peer_fingerprint(binary: Path) -> bytes:
    """The Rust peer's schema fingerprint (its first line; without
    arguments it prints it and exits)."""
    done = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30)
    first = done.stdout.splitlines()[0] if done.stdout else ""
    if not first.startswith("fingerprint "):
        raise RuntimeError(f"unexpected first line from the peer: {first!r}")
    return bytes.fromhex(first.split()[1])


def peer_message(i: int, size: int) -> bytes:
    """The Rust peer's message ``i`` (its bytes, before postcard's length
    prefix): ``i`` as 4 little-endian bytes, then filler up to ``size``."""
    head = (i & 0xFFFF_FFFF).to_bytes(4, "little")
    return head + bytes(((i * 31 + k) & 0xFF) for k in range(4, size))


class Peer:
    """A running Rust peer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.fingerprint = b""
        self.address: Optional[tuple[str, int]] = None
        self.lines: list[str] = []

    @classmethod
    async def start(cls, binary: Path, *args: str) -> "Peer":
        """Starts the peer and reads its ``fingerprint`` (and, when it
        listens, ``listening``) line."""
        proc = await asyncio.create_subprocess_exec(
            str(binary), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        p = cls(proc)
        first = await p.line()
        if not first.startswith("fingerprint "):
            raise RuntimeError(f"unexpected first line from the peer: {first!r}")
        p.fingerprint = bytes.fromhex(first.split()[1])
        if "--listen" in args:
            line = await p.line()
            if not line.startswith("listening "):
                raise RuntimeError(f"expected 'listening', got {line!r}")
            host, port = line.split()[1].rsplit(":", 1)
            p.address = (host, int(port))
        return p

    async def line(self) -> str:
        """The next line of the peer's output ('' at its end)."""
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        text = raw.decode().rstrip("\n")
        self.lines.append(text)
        return text

    async def finish(self, timeout: float) -> tuple[int, str, str]:
        """Waits for the peer to exit: (code, its last line, stderr)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            out, err = await self.proc.communicate()
            rest = out.decode().splitlines()
            return -1, (rest[-1] if rest else ""), "timed out\n" + err.decode()
        rest = out.decode().splitlines()
        self.lines += rest
        last = self.lines[-1] if self.lines else ""
        code = self.proc.returncode
        return (code if code is not None else -1), last, err.decode()

    def kill(self) -> None:
        """Kills the peer if it still runs."""
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class CuttingProxy:
    """Forwards each connection to ``backend`` and aborts it (both sides)
    after a seeded random number of bytes (both directions counted),
    uniform in ``[min_bytes, max_bytes]``; ``max_bytes`` 0 never cuts."""

    def __init__(self, backend: tuple[str, int], rng: random.Random, min_bytes: int, max_bytes: int) -> None:
        self.backend = backend
        self.rng = rng
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.cuts = 0
        self.connections = 0
        self.server: Optional[asyncio.base_events.Server] = None
        self.address: tuple[str, int] = ("", 0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "CuttingProxy":
        """Starts listening on 127.0.0.1 (any port: :attr:`address`)."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def stop(self) -> None:
        """Stops listening and aborts every connection."""
        if self.server is not None:
            self.server.close()
        for t in list(self._tasks):
            t.cancel()
        for w in list(self._writers):
            w.transport.abort()

    async def _serve(self, r1: asyncio.StreamReader, w1: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            r2, w2 = await asyncio.open_connection(*self.backend)
        except OSError:
            w1.transport.abort()
            return
        self._writers.update((w1, w2))
        budget = [self.rng.randint(self.min_bytes, self.max_bytes) if self.max_bytes else -1]

        def cut() -> None:
            self.cuts += 1
            w1.transport.abort()
            w2.transport.abort()

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        w.close()
                        return
                    if w.transport.is_closing():
                        return
                    if budget[0] >= 0:
                        if len(data) >= budget[0]:
                            w.write(data[: budget[0]])
                            budget[0] = 0
                            cut()
                            return
                        budget[0] -= len(data)
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                w1.transport.abort()
                w2.transport.abort()

        tasks = [asyncio.ensure_future(pump(r1, w2)), asyncio.ensure_future(pump(r2, w1))]
        for t in tasks:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            w1.transport.abort()
            w2.transport.abort()
        finally:
            self._writers.discard(w1)
            self._writers.discard(w2)
