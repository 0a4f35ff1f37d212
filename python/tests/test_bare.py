"""The Python bare conduit against itself over loopback TCP (section 4):
messages both ways, the graceful end, every prologue refusal typed on both
sides, garbage and silent peers, and a dying link."""

from __future__ import annotations

# r[verify py.package]

import asyncio
import time
import unittest
from typing import Any, Awaitable, Callable

from tests.support import FIRST_SEED, SEED_COUNT, rng
from vox_embedded import framing
from vox_embedded.bare import (
    BareConduit,
    BareListener,
    BareRefused,
    EndOfStream,
    HandshakeTimeout,
    LinkLost,
    PeerClosed,
)
from vox_embedded.prologue import (
    BadMagic,
    Mode,
    ModeMismatch,
    Prologue,
    Role,
    RoleConflict,
    SchemaMismatch,
    VersionMismatch,
    encode_prologue,
)

FP = bytes.fromhex("1122334455667788")


def run(coro_fn: Callable[[], Awaitable[Any]], timeout: float = 10) -> Any:
    """Runs one test coroutine with a time limit."""

    async def main() -> Any:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(main())


async def pair(listener: BareListener, **kw: Any) -> tuple[BareConduit, BareConduit]:
    """An initiator dialing ``listener`` and the conduit it accepted."""
    host, port = listener.address
    init, acc = await asyncio.gather(BareConduit.connect(host, port, FP, **kw), listener.accept())
    return init, acc


class BareLoopback(unittest.TestCase):
    """Python initiator against Python acceptor."""

    def test_messages_both_ways_then_end(self) -> None:
        """Seeded message sizes (up to 1 KiB), both ways at once, in order;
        each side's close is the other's EndOfStream."""
        for seed in range(FIRST_SEED, FIRST_SEED + min(SEED_COUNT, 5)):
            with self.subTest(seed=seed):

                async def body() -> None:
                    r = rng(seed)
                    msgs = [bytes(r.getrandbits(8) for _ in range(r.randint(0, 1024))) for _ in range(300)]
                    listener = await BareConduit.listen("127.0.0.1", 0, FP)
                    a, b = await pair(listener)
                    self.assertEqual(a.peer, Prologue(Mode.BARE, Role.ACCEPTOR, FP))
                    self.assertEqual(b.peer, Prologue(Mode.BARE, Role.INITIATOR, FP))

                    async def side(c: BareConduit) -> list[bytes]:
                        async def send() -> None:
                            for m in msgs:
                                await c.send(m)
                            await c.close()

                        async def receive() -> list[bytes]:
                            return [m async for m in c]

                        _, got = await asyncio.gather(send(), receive())
                        return got

                    got_a, got_b = await asyncio.gather(side(a), side(b))
                    self.assertEqual(got_a, msgs, f"seed {seed}")
                    self.assertEqual(got_b, msgs, f"seed {seed}")
                    with self.assertRaises(EndOfStream):
                        await a.recv()
                    listener.close()

                run(body)

    def refusal(self, init_kw: dict[str, Any], acc_kw: dict[str, Any]) -> tuple[BareRefused, BareRefused, float]:
        """Both sides' typed refusals and the initiator's elapsed time."""

        async def body() -> tuple[BareRefused, BareRefused, float]:
            listener = await BareConduit.listen("127.0.0.1", 0, acc_kw.pop("fingerprint", FP), **acc_kw)
            host, port = listener.address
            start = time.monotonic()
            with self.assertRaises(BareRefused) as init:
                await BareConduit.connect(host, port, init_kw.pop("fingerprint", FP), **init_kw)
            elapsed = time.monotonic() - start
            with self.assertRaises(BareRefused) as acc:
                await listener.accept(raise_errors=True)
            listener.close()
            return init.exception, acc.exception, elapsed

        return run(body)  # type: ignore[no-any-return]

    def test_version_refused_both_sides(self) -> None:
        i, a, elapsed = self.refusal({"version": 1}, {})
        self.assertIsInstance(i.cause, VersionMismatch)
        self.assertIsInstance(a.cause, VersionMismatch)
        assert isinstance(i.cause, VersionMismatch) and isinstance(a.cause, VersionMismatch)
        self.assertEqual((i.cause.local, i.cause.peer), (1, 2))
        self.assertEqual((a.cause.local, a.cause.peer), (2, 1))
        self.assertLess(elapsed, 0.5)

    def test_mode_refused_both_sides(self) -> None:
        i, a, _ = self.refusal({"mode": Mode.STABLE}, {})
        assert isinstance(i.cause, ModeMismatch) and isinstance(a.cause, ModeMismatch)
        self.assertEqual((i.cause.local, i.cause.peer), (Mode.STABLE, Mode.BARE))
        self.assertEqual((a.cause.local, a.cause.peer), (Mode.BARE, Mode.STABLE))

    def test_schema_refused_both_sides(self) -> None:
        other = bytes(8)
        i, a, _ = self.refusal({"fingerprint": other}, {})
        assert isinstance(i.cause, SchemaMismatch) and isinstance(a.cause, SchemaMismatch)
        self.assertEqual((i.cause.local, i.cause.peer), (other, FP))
        self.assertEqual((a.cause.local, a.cause.peer), (FP, other))

    def test_role_refused_both_sides(self) -> None:
        i, a, _ = self.refusal({"role": Role.ACCEPTOR}, {})
        assert isinstance(i.cause, RoleConflict) and isinstance(a.cause, RoleConflict)
        self.assertEqual(i.cause.local, Role.ACCEPTOR)
        self.assertEqual(a.cause.local, Role.ACCEPTOR)

    def test_garbage_prologue_is_refused_without_answer(self) -> None:
        async def body() -> None:
            listener = await BareConduit.listen("127.0.0.1", 0, FP)
            reader, writer = await asyncio.open_connection(*listener.address)
            writer.write(framing.STREAM_START + framing.encode_frame(b"HTTP/1.1 200"))
            with self.assertRaises(BareRefused) as caught:
                await listener.accept(raise_errors=True)
            self.assertIsInstance(caught.exception.cause, BadMagic)
            self.assertEqual(await reader.read(), b"", "no answer to garbage")
            writer.close()
            listener.close()

        run(body)

    def test_acceptor_answers_only_after_the_initiators_prologue(self) -> None:
        """The acceptor waits for the initiator's prologue (section 4)."""

        async def body() -> None:
            listener = await BareConduit.listen("127.0.0.1", 0, FP)
            reader, writer = await asyncio.open_connection(*listener.address)
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.2)
            mine = Prologue(Mode.BARE, Role.INITIATOR, FP)
            writer.write(framing.STREAM_START + framing.encode_frame(encode_prologue(mine)))
            answer = await asyncio.wait_for(reader.read(64), 2)
            want = framing.STREAM_START + framing.encode_frame(encode_prologue(Prologue(Mode.BARE, Role.ACCEPTOR, FP)))
            self.assertEqual(answer, want)
            conduit = await listener.accept()
            writer.write(framing.encode_frame(b"\x01\x07"))
            self.assertEqual(await conduit.recv(), b"\x01\x07")
            writer.close()
            with self.assertRaises(LinkLost):
                await conduit.recv()
            listener.close()

        run(body)

    def test_peer_closing_before_its_prologue(self) -> None:
        async def body() -> None:
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            host, port = server.sockets[0].getsockname()[:2]
            with self.assertRaises(PeerClosed):
                await BareConduit.connect(host, port, FP)
            server.close()

        run(body)

    def test_silent_peer_times_out(self) -> None:
        async def body() -> None:
            held: list[asyncio.StreamWriter] = []
            server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
            host, port = server.sockets[0].getsockname()[:2]
            start = time.monotonic()
            with self.assertRaises(HandshakeTimeout):
                await BareConduit.connect(host, port, FP, timeout=0.3)
            self.assertLess(time.monotonic() - start, 1.0)
            for w in held:
                w.close()
            server.close()

        run(body)

    def test_cut_link_ends_both_sides_with_link_lost(self) -> None:
        async def body() -> None:
            listener = await BareConduit.listen("127.0.0.1", 0, FP)
            a, b = await pair(listener)
            await a.send(b"\x01\x01")
            self.assertEqual(await b.recv(), b"\x01\x01")
            a.abort()
            with self.assertRaises(LinkLost):
                await a.recv()
            with self.assertRaises(LinkLost):
                await b.recv()
            with self.assertRaises(LinkLost):
                await b.recv()  # every later call
            with self.assertRaises(LinkLost):
                await b.send(b"\x00")
            listener.close()

        run(body)

    def test_corrupt_frame_kills_the_link(self) -> None:
        async def body() -> None:
            listener = await BareConduit.listen("127.0.0.1", 0, FP)
            reader, writer = await asyncio.open_connection(*listener.address)
            mine = Prologue(Mode.BARE, Role.INITIATOR, FP)
            writer.write(framing.STREAM_START + framing.encode_frame(encode_prologue(mine)))
            conduit = await listener.accept()
            bad = bytearray(framing.encode_frame(b"\x02\x05\x06"))
            bad[2] ^= 0x40
            writer.write(framing.encode_frame(b"\x00") + bytes(bad))
            self.assertEqual(await conduit.recv(), b"\x00")
            with self.assertRaises(LinkLost) as caught:
                await conduit.recv()
            self.assertIsInstance(caught.exception.framing_error, framing.CrcMismatch)
            writer.close()
            listener.close()

        run(body)


if __name__ == "__main__":
    unittest.main()
