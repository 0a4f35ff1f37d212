"""The Python stable conduit against the Rust one over loopback TCP.

The Rust peer is `tests/src/bin/interop_peer.rs` (built once with cargo,
release, honouring ``CARGO_TARGET_DIR``; the tests are skipped only when
cargo is missing). Each side sends ``COUNT`` messages and receives the
other's, checking exactly once and in order, through a seeded proxy that
cuts every connection after a random number of bytes: the session resumes
over fresh connections. Then a refusal: another schema fingerprint is
refused on both sides within a round trip.

``VOX_SEED`` seeds the proxy (the failing seed is in the test's message).
"""

from __future__ import annotations

# r[verify py.interop]

import asyncio
import random
import time
import unittest
from pathlib import Path
from typing import Optional

from tests.interop_support import CargoMissing, CuttingProxy, Peer, build_peer, peer_fingerprint, peer_message
from tests.support import FIRST_SEED
from vox_embedded import postcard
from vox_embedded.bare import BareConduit, LinkLost
from vox_embedded.prologue import SchemaMismatch
from vox_embedded.stable_io import EndOfStream, StableConduit
from vox_embedded.stable_session import SessionRefused, StableConfig

COUNT = 10_000
SIZE = 16
#: The proxy cuts each connection after this many bytes (both ways), at random.
CUT_MIN, CUT_MAX = 20_000, 80_000

_PEER: Optional[Path] = None
_SKIP: Optional[str] = None


def setUpModule() -> None:
    global _PEER, _SKIP
    try:
        _PEER = build_peer()
    except CargoMissing as e:
        _SKIP = str(e)


def encode(i: int, size: int = SIZE) -> bytes:
    """Message ``i`` of the raw byte family (postcard: a byte string)."""
    return postcard.encode_byte_slice(peer_message(i, size))


async def exchange(conduit: StableConduit, count: int, size: int) -> None:
    """Sends ``count`` messages while checking the peer's ``count``."""

    async def send() -> None:
        for i in range(count):
            await conduit.send(encode(i, size))

    async def receive() -> None:
        for i in range(count):
            m = await conduit.recv()
            if m != encode(i, size):
                raise AssertionError(f"message {i}: got {m[:8].hex()}..., want {encode(i, size)[:8].hex()}...")
        try:
            extra = await conduit.recv()
        except EndOfStream:
            return
        raise AssertionError(f"a message after the {count}th: {extra[:8].hex()}")

    await asyncio.gather(send(), receive())
    await conduit.close()


# r[verify py.interop]
class InteropTcp(unittest.TestCase):
    """Python against Rust through a connection-cutting proxy."""

    def setUp(self) -> None:
        if _SKIP is not None:
            self.skipTest(_SKIP)
        assert _PEER is not None
        self.peer_bin = _PEER
        self.config = StableConfig(max_message=SIZE + 16)

    def through_proxy(self, python_role: str, count: int, size: int, cuts: tuple[int, int], seed: int) -> None:
        """``count`` messages of ``size`` bytes each way, the Python side in
        ``python_role``, through a proxy cutting every connection after a
        seeded random number of bytes in ``cuts``."""

        async def run() -> None:
            rng = random.Random(seed)
            config = StableConfig(max_message=size + 16)
            args = ("--count", str(count), "--size", str(size))
            if python_role == "acceptor":
                conduit = await StableConduit.listen("127.0.0.1", 0, peer_fingerprint(self.peer_bin), config)
                assert conduit.address is not None
                proxy = await CuttingProxy(conduit.address, rng, *cuts).start()
                host, port = proxy.address
                peer = await Peer.start(self.peer_bin, "--role", "initiator", "--connect", f"{host}:{port}", *args)
            else:
                peer = await Peer.start(self.peer_bin, "--role", "acceptor", "--listen", "127.0.0.1:0", *args)
                assert peer.address is not None
                proxy = await CuttingProxy(peer.address, rng, *cuts).start()
                conduit = await StableConduit.connect(*proxy.address, peer.fingerprint, config)
            start = time.monotonic()
            try:
                await asyncio.wait_for(exchange(conduit, count, size), 40)
                code, last, err = await peer.finish(10)
            finally:
                peer.kill()
                await proxy.stop()
            elapsed = time.monotonic() - start
            self.assertEqual(code, 0, f"seed {seed}: rust peer failed: {last} {err}")
            self.assertTrue(last.startswith(f"ok sent {count} received {count}"), f"seed {seed}: {last}")
            self.assertGreater(proxy.cuts, 0, f"seed {seed}: the proxy never cut: the test proves nothing")
            s = conduit.stats
            print(
                f"\n[python {python_role}] seed {seed}: {count} x {size} B each way in {elapsed:.2f} s; "
                f"proxy cuts {proxy.cuts}, connections {proxy.connections}; python reattachments "
                f"{s.reattachments} replays {s.replays} gaps {s.gaps} duplicates {s.duplicates}; rust: {last}"
            )

        asyncio.run(run())

    def test_python_acceptor_rust_initiator(self) -> None:
        self.through_proxy("acceptor", COUNT, SIZE, (CUT_MIN, CUT_MAX), FIRST_SEED)

    def test_python_initiator_rust_acceptor(self) -> None:
        self.through_proxy("initiator", COUNT, SIZE, (CUT_MIN, CUT_MAX), FIRST_SEED + 1)

    def test_kib_messages_and_frequent_cuts(self) -> None:
        """1 KiB messages (frames longer than a COBS block), cut every 5 to
        40 KB, both roles."""
        self.through_proxy("acceptor", 2000, 1024, (5_000, 40_000), FIRST_SEED + 2)
        self.through_proxy("initiator", 2000, 1024, (5_000, 40_000), FIRST_SEED + 3)

    def test_schema_refusal_both_ways(self) -> None:
        """Another fingerprint: both sides end with a typed schema refusal
        within a round trip (well under a second on loopback)."""

        async def python_initiator() -> None:
            peer = await Peer.start(self.peer_bin, "--role", "acceptor", "--listen", "127.0.0.1:0", "--count", "1")
            assert peer.address is not None
            wrong = bytes(b ^ 0xFF for b in peer.fingerprint)
            start = time.monotonic()
            conduit = await StableConduit.connect(*peer.address, wrong, self.config)
            try:
                with self.assertRaises(SessionRefused) as caught:
                    await asyncio.wait_for(conduit.recv(), 5)
                elapsed = time.monotonic() - start
                code, last, err = await peer.finish(5)
            finally:
                peer.kill()
            cause = caught.exception.cause
            self.assertIsInstance(cause, SchemaMismatch)
            assert isinstance(cause, SchemaMismatch)
            self.assertEqual((cause.local, cause.peer), (wrong, peer.fingerprint))
            self.assertLess(elapsed, 1.0)
            self.assertNotEqual(code, 0)
            self.assertIn("refused", last + err)
            print(f"\n[refusal, python initiator] python: {caught.exception} ({elapsed * 1000:.0f} ms); rust: {last}")

        async def python_acceptor() -> None:
            wrong = bytes(b ^ 0x55 for b in peer_fingerprint(self.peer_bin))
            conduit = await StableConduit.listen("127.0.0.1", 0, wrong, self.config)
            assert conduit.address is not None
            host, port = conduit.address
            start = time.monotonic()
            peer = await Peer.start(self.peer_bin, "--role", "initiator", "--connect", f"{host}:{port}", "--count", "1")
            try:
                with self.assertRaises(SessionRefused) as caught:
                    await asyncio.wait_for(conduit.recv(), 5)
                code, last, err = await peer.finish(5)
                elapsed = time.monotonic() - start
            finally:
                peer.kill()
            self.assertIsInstance(caught.exception.cause, SchemaMismatch)
            self.assertLess(elapsed, 1.5)
            self.assertNotEqual(code, 0)
            self.assertIn("refused", last + err)
            print(f"\n[refusal, python acceptor] python: {caught.exception}; rust: {last} ({elapsed * 1000:.0f} ms)")

        asyncio.run(python_initiator())
        asyncio.run(python_acceptor())


async def bare_exchange(conduit: BareConduit, count: int, size: int) -> None:
    """Sends ``count`` messages then closes, while checking the peer's
    ``count`` and its end."""

    async def send() -> None:
        for i in range(count):
            await conduit.send(encode(i, size))
        await conduit.close()

    async def receive() -> None:
        i = 0
        async for m in conduit:
            if m != encode(i, size):
                raise AssertionError(f"message {i}: got {m[:8].hex()}..., want {encode(i, size)[:8].hex()}...")
            i += 1
        if i != count:
            raise AssertionError(f"{i} messages, want {count}")

    await asyncio.gather(send(), receive())


# r[verify py.interop]
class InteropBareTcp(unittest.TestCase):
    """The Python bare conduit against the Rust one (section 4) over
    loopback TCP: no cuts in the exchange (a bare conduit dies with its
    link), then a cut that ends both sides with a typed link error."""

    def setUp(self) -> None:
        if _SKIP is not None:
            self.skipTest(_SKIP)
        assert _PEER is not None
        self.peer_bin = _PEER

    def exchange(self, python_role: str, count: int, size: int) -> None:
        """``count`` messages each way, Python in ``python_role``."""

        async def run() -> None:
            args = ("--mode", "bare", "--count", str(count), "--size", str(size))
            start = time.monotonic()
            if python_role == "acceptor":
                listener = await BareConduit.listen("127.0.0.1", 0, peer_fingerprint(self.peer_bin))
                host, port = listener.address
                peer = await Peer.start(self.peer_bin, "--role", "initiator", "--connect", f"{host}:{port}", *args)
                conduit = await asyncio.wait_for(listener.accept(raise_errors=True), 5)
                listener.close()
            else:
                peer = await Peer.start(self.peer_bin, "--role", "acceptor", "--listen", "127.0.0.1:0", *args)
                assert peer.address is not None
                conduit = await BareConduit.connect(*peer.address, peer.fingerprint)
            try:
                await asyncio.wait_for(bare_exchange(conduit, count, size), 30)
                code, last, err = await peer.finish(10)
            finally:
                peer.kill()
            elapsed = time.monotonic() - start
            self.assertEqual(code, 0, f"rust peer failed: {last} {err}")
            self.assertEqual(last.split()[:5], ["ok", "sent", str(count), "received", str(count)], last)
            self.assertEqual((conduit.sent, conduit.received), (count, count))
            print(f"\n[bare, python {python_role}] {count} x {size} B each way in {elapsed:.2f} s; rust: {last}")

        asyncio.run(run())

    def test_bare_python_initiator_rust_acceptor(self) -> None:
        self.exchange("initiator", COUNT, SIZE)

    def test_bare_python_acceptor_rust_initiator(self) -> None:
        self.exchange("acceptor", COUNT, SIZE)

    def test_bare_kib_messages(self) -> None:
        self.exchange("initiator", 1000, 1024)

    def test_bare_cut_ends_both_sides_typed(self) -> None:
        """A proxy cuts the connection mid-exchange: Python's conduit raises
        ``LinkLost``, the Rust peer reports its link error; neither
        resumes."""

        async def run(python_role: str, seed: int) -> None:
            rng = random.Random(seed)
            args = ("--mode", "bare", "--count", "100000", "--size", str(SIZE))
            if python_role == "acceptor":
                listener = await BareConduit.listen("127.0.0.1", 0, peer_fingerprint(self.peer_bin))
                proxy = await CuttingProxy(listener.address, rng, 5_000, 20_000).start()
                host, port = proxy.address
                peer = await Peer.start(self.peer_bin, "--role", "initiator", "--connect", f"{host}:{port}", *args)
                conduit = await asyncio.wait_for(listener.accept(raise_errors=True), 5)
                listener.close()
            else:
                peer = await Peer.start(self.peer_bin, "--role", "acceptor", "--listen", "127.0.0.1:0", *args)
                assert peer.address is not None
                proxy = await CuttingProxy(peer.address, rng, 5_000, 20_000).start()
                conduit = await BareConduit.connect(*proxy.address, peer.fingerprint)
            start = time.monotonic()
            try:
                with self.assertRaises(LinkLost, msg=f"seed {seed}") as caught:
                    await asyncio.wait_for(bare_exchange(conduit, 100_000, SIZE), 10)
                code, last, err = await peer.finish(5)
            finally:
                peer.kill()
                await proxy.stop()
            elapsed = time.monotonic() - start
            self.assertEqual(proxy.cuts, 1, f"seed {seed}")
            self.assertEqual(proxy.connections, 1, f"seed {seed}: a bare conduit never dials again")
            self.assertEqual(code, 1, f"seed {seed}: {last} {err}")
            self.assertIn("Link(", last, f"seed {seed}: the Rust side names a link error")
            self.assertLess(elapsed, 3.0)
            print(f"\n[bare cut, python {python_role}] seed {seed}: python: {caught.exception}; rust: {last}")

        asyncio.run(run("initiator", FIRST_SEED + 10))
        asyncio.run(run("acceptor", FIRST_SEED + 11))


if __name__ == "__main__":
    unittest.main()
