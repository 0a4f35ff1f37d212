"""The asyncio and blocking stable conduits over loopback TCP, Python
against Python (no cargo needed): through the seeded cutting proxy, and
the blocking wrapper's calls."""

from __future__ import annotations

# r[verify py.package]

import asyncio
import random
import threading
import unittest

from vox_embedded.prologue import SchemaMismatch
from vox_embedded.stable_io import BlockingConduit, EndOfStream, StableConduit
from vox_embedded.stable_session import DirectionClosed, SessionRefused

from .interop_support import CuttingProxy
from .stable_sim import message
from .support import FIRST_SEED

FP = bytes.fromhex("0102030405060708")


class AsyncioConduit(unittest.TestCase):
    """Both roles of :class:`StableConduit` in one event loop."""

    def test_exactly_once_through_cuts(self) -> None:
        count = 4000

        async def run() -> tuple[int, int]:
            acc = await StableConduit.listen("127.0.0.1", 0, FP)
            assert acc.address is not None
            proxy = await CuttingProxy(acc.address, random.Random(FIRST_SEED), 5_000, 30_000).start()
            ini = await StableConduit.connect(*proxy.address, FP)

            async def side(c: StableConduit) -> None:
                async def send() -> None:
                    for i in range(count):
                        await c.send(message(i, 4 + i % 50))

                async def receive() -> None:
                    for i in range(count):
                        self.assertEqual(await c.recv(), message(i, 4 + i % 50), f"seed {FIRST_SEED}: message {i}")

                await asyncio.gather(send(), receive())
                await c.close(wait=False)
                self.assertEqual([m async for m in c], [], "nothing after the last message")
                await c.wait_closed()

            try:
                await asyncio.wait_for(asyncio.gather(side(ini), side(acc)), 30)
            finally:
                await proxy.stop()
            with self.assertRaises(DirectionClosed):
                await ini.send(b"late")
            return proxy.cuts, ini.stats.reattachments

        cuts, reattachments = asyncio.run(run())
        self.assertGreater(cuts, 0)
        self.assertGreater(reattachments, 0)

    def test_refusal_reaches_both_sides(self) -> None:
        async def run() -> None:
            acc = await StableConduit.listen("127.0.0.1", 0, FP)
            assert acc.address is not None
            ini = await StableConduit.connect(*acc.address, bytes(8))
            # A send before the first handshake is not reported as sent.
            with self.assertRaises(SessionRefused):
                await asyncio.wait_for(ini.send(b"\x01x"), 5)
            for c in (ini, acc):
                with self.assertRaises(SessionRefused) as caught:
                    await asyncio.wait_for(c.recv(), 5)
                self.assertIsInstance(caught.exception.cause, SchemaMismatch)

        asyncio.run(run())


class Blocking(unittest.TestCase):
    """:class:`BlockingConduit` from plain threads."""

    def test_echo(self) -> None:
        server = BlockingConduit.listen("127.0.0.1", 0, FP)
        assert server.address is not None

        def echo() -> None:
            while True:
                try:
                    m = server.recv(timeout=10)
                except EndOfStream:
                    break
                server.send(m, timeout=10)
            server.close(timeout=10)

        t = threading.Thread(target=echo)
        t.start()
        client = BlockingConduit.connect(*server.address, FP)
        for i in range(200):
            client.send(message(i, 12), timeout=10)
            self.assertEqual(client.recv(timeout=10), message(i, 12))
        client.conduit  # the asyncio conduit is reachable
        stats = client.stats
        self.assertEqual(stats.messages_delivered, 200)
        client.close(timeout=10)
        t.join(10)
        self.assertFalse(t.is_alive())


if __name__ == "__main__":
    unittest.main()
