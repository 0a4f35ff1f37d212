"""The Python rpc host (stable-conduit acceptor over a serial byte stream)
against the real demo firmware in QEMU (``examples/firmware``, binary
``device``, board ``lm3s6965evb``): the device is the initiator over its
UART (framed links, section 2), serves the demo endpoints, calls the
host's clock once per session and publishes telemetry and log topics.

* the demo mix of calls (``demo/read_sensor``, ``demo/set_output``,
  ``demo/echo``) straight over QEMU's pty, telemetry in order, log lines;
* the same through a pty relay that flips bytes at a seeded rate: every
  call answered exactly once, CRC errors counted, the session resumed on
  new links;
* a device reboot (QEMU killed and started again behind the relay): the
  session ends with ``SessionLost``, a new one works.

Skipped (with the reason) without ``qemu-system-arm``, cargo or the
``thumbv7m-none-eabi`` target. ``VOX_SEED`` sets the relay's seed
(default 20240601); a failure names it.
"""

from __future__ import annotations

# r[verify py.interop]
# r[verify proto.complete]

import asyncio
import os
import time
import unittest
from typing import Any, List, Optional, Tuple

from vox_embedded import rpc_frames as rf
from vox_embedded.device import UART_CONFIG, Target, open_conduit, start_host
from vox_embedded.rpc_host import CallStatus, ReceivedSample, RpcHost
from vox_embedded.stable_io import SerialStream, StableConduit
from vox_embedded.stable_session import SessionLost
from vox_embedded.values import Catalog, decode_all, encode

from tests.qemu_support import PtyRelay, QemuDevice, firmware_or_skip

CATALOG = Catalog()
SET_OUTPUT = CATALOG.by_name["demo/set_output"]
READ_SENSOR = CATALOG.by_name["demo/read_sensor"]
ECHO = CATALOG.by_name["demo/echo"]
TELEMETRY = CATALOG.by_name["demo/telemetry"]
LOG = CATALOG.by_name["demo/log"]
SEED = int(os.environ.get("VOX_SEED", "20240601"))
PAYLOAD = bytes(range(1, 65))


def sensor_value(sensor: int) -> int:
    """``vox_demo_protocol::sensor_value``."""
    return sensor * 100 - 40


def demo_call(i: int) -> Tuple[Any, Any, Any]:
    """Call ``i`` of the demo mix (as ``call_for`` in
    examples/host/src/device_host.rs): the endpoint, the request value, and the
    expected ``(status, decoded body)``."""
    if i % 3 == 0:
        pin = i % 40
        if pin < 32:
            return SET_OUTPUT, {"pin": pin, "high": i % 2 == 0}, (CallStatus.REPLY, None)
        return SET_OUTPUT, {"pin": pin, "high": i % 2 == 0}, (CallStatus.FAILED, "no such pin")
    if i % 3 == 1:
        return READ_SENSOR, i % 8, (CallStatus.REPLY, sensor_value(i % 8))
    data = PAYLOAD[: max(1, i % (len(PAYLOAD) + 1))]
    return ECHO, data, (CallStatus.REPLY, data)


async def run_mix(host: RpcHost, count: int, timeout_ms: int = 20_000) -> List[str]:
    """Makes ``count`` calls of the demo mix at once (the core keeps the
    device's window); returns a description of every wrong outcome."""

    async def one(i: int) -> Optional[str]:
        entry, value, (status, expected) = demo_call(i)
        r = await host.call(entry.key, encode(value, entry.request), timeout_ms)
        body: Any = None
        if r.status is CallStatus.REPLY:
            body = decode_all(r.body, entry.response)
        elif r.status is CallStatus.FAILED:
            body = decode_all(r.body, entry.error)
        if (r.status, body) != (status, expected):
            return f"call {i} {entry.name}({value!r}): {r.status.value} {body!r} {r.refusal} {r.error}, expected {status.value} {expected!r}"
        return None

    results = await asyncio.gather(*[one(i) for i in range(count)])
    return [r for r in results if r is not None]


def drain(host: RpcHost) -> List[ReceivedSample]:
    """The samples queued so far."""
    out = []
    while not host.samples.empty():
        out.append(host.samples.get_nowait())
    return out


def check_telemetry(tc: unittest.TestCase, samples: List[ReceivedSample]) -> int:
    """Telemetry samples are in order of the device's ``seq``, each once
    (a ``dup`` may repeat an earlier one), and decode; returns how many."""
    tel = [s for s in samples if s.topic_key == TELEMETRY.key]
    expected: Optional[int] = None
    for s in tel:
        value = decode_all(s.body, TELEMETRY.message)
        tc.assertEqual(value["label"], "vbat")
        if expected is not None:
            tc.assertEqual(s.seq, expected, f"telemetry out of order (seed {SEED})")
        expected = (s.seq + 1) & 0xFFFFFFFF
    return len(tel)


def log_lines(samples: List[ReceivedSample]) -> List[str]:
    """The log lines among ``samples``."""
    return [decode_all(s.body, LOG.message) for s in samples if s.topic_key == LOG.key]


class QemuInterop(unittest.IsolatedAsyncioTestCase):
    """The Python host against the firmware in QEMU."""

    elf: Any = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.elf = firmware_or_skip()

    def start_device(self) -> QemuDevice:
        dev = QemuDevice(self.elf)
        self.addCleanup(dev.stop)
        return dev

    async def session(self, stream: SerialStream) -> Tuple[StableConduit, RpcHost]:
        conduit, _ = await open_conduit(Target(serial="unused"), UART_CONFIG, stream=stream)
        host = await start_host(conduit, CATALOG)
        self.addAsyncCleanup(host.stop)
        await host.wait_ready(10)
        return conduit, host

    async def open_stream(self, path: str) -> SerialStream:
        stream = await SerialStream.open(path)
        self.addCleanup(stream.close)
        return stream

    async def wait_samples(self, host: RpcHost, telemetry: int, timeout: float = 5.0) -> List[ReceivedSample]:
        """Collects samples until ``telemetry`` telemetry samples came."""
        got: List[ReceivedSample] = []
        deadline = time.monotonic() + timeout
        while sum(1 for s in got if s.topic_key == TELEMETRY.key) < telemetry:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                got.append(await asyncio.wait_for(host.samples.get(), left))
            except asyncio.TimeoutError:
                break
        return got + drain(host)

    async def test_demo_mix_over_pty(self) -> None:
        """(a) 210 calls straight over QEMU's pty, telemetry and a log line."""
        dev = self.start_device()
        stream = await self.open_stream(dev.pty)
        conduit, host = await self.session(stream)
        hello = host.core.peer
        assert hello is not None
        self.assertEqual(sorted(hello.endpoints), sorted([SET_OUTPUT.key, READ_SENSOR.key, ECHO.key]))
        self.assertEqual(sorted(hello.topics), sorted([TELEMETRY.key, LOG.key]))
        self.assertEqual(hello.fingerprint, rf.service_fingerprint(hello.endpoints))
        t = time.monotonic()
        wrong = await run_mix(host, 210)
        elapsed = time.monotonic() - t
        self.assertEqual(wrong, [])
        self.assertEqual(host.core.stats.answers, 210)
        self.assertEqual(host.core.stats.late_answers, 0)
        # The device called our clock once, and described itself.
        self.assertEqual(host.core.stats.requests_served, 1)
        names = [e.name for e in await host.describe()]
        self.assertEqual(sorted(names), ["demo/echo", "demo/read_sensor", "demo/set_output"])
        samples = await self.wait_samples(host, 20)
        self.assertGreaterEqual(check_telemetry(self, samples), 20)
        self.assertTrue(log_lines(samples), "no log line")
        self.assertEqual(conduit.framing.crc_errors, 0)
        print(f"\n  qemu pty: 210 calls in {elapsed:.2f} s, {host.core.stats}, {conduit.framing}")

    async def test_demo_mix_through_corrupting_relay(self) -> None:
        """(b) The same through a relay flipping about one byte in 300."""
        dev = self.start_device()
        relay = PtyRelay(dev.pty, rate=1 / 300, seed=SEED)
        relay.start()
        self.addCleanup(relay.close)
        stream = await self.open_stream(relay.path)
        conduit, host = await self.session(stream)
        wrong = await run_mix(host, 210, timeout_ms=30_000)
        self.assertEqual(wrong, [], f"seed {SEED}")
        st = host.core.stats
        self.assertEqual((st.calls_sent, st.answers, st.late_answers), (210, 210, 0), f"seed {SEED}")
        samples = await self.wait_samples(host, 10)
        check_telemetry(self, samples)
        self.assertGreater(relay.corrupted, 0, f"seed {SEED}")
        f = conduit.framing
        self.assertGreater(f.crc_errors + f.malformed + f.oversized, 0, f"no framing error seen (seed {SEED})")
        self.assertGreater(conduit.stats.reattachments, 0, f"no resume (seed {SEED})")
        self.assertIsNone(conduit.error)
        print(f"\n  relay seed {SEED}: {relay.corrupted} bytes flipped, {f}, {conduit.stats}")

    async def test_device_reboot(self) -> None:
        """(c) QEMU killed and started again behind the relay: the session
        ends with SessionLost, a new session on the same stream works."""
        dev = self.start_device()
        relay = PtyRelay(dev.pty)
        relay.start()
        self.addCleanup(relay.close)
        stream = await self.open_stream(relay.path)
        conduit, host = await self.session(stream)
        self.assertEqual(await run_mix(host, 30), [])
        first = await self.wait_samples(host, 3)
        self.assertGreaterEqual(check_telemetry(self, first), 3)
        dev.stop()
        dev2 = self.start_device()
        relay.retarget(dev2.pty)
        ended = await asyncio.wait_for(host.wait_ended(), 15)
        self.assertIsInstance(ended, SessionLost)
        self.assertIsInstance(conduit.error, SessionLost)
        # A call made now is unresolved at once, typed.
        late = await host.call(READ_SENSOR.key, encode(1, READ_SENSOR.request))
        self.assertIs(late.status, CallStatus.UNRESOLVED)
        conduit2, host2 = await self.session(stream)
        self.assertEqual(await run_mix(host2, 60), [])
        second = await self.wait_samples(host2, 3)
        self.assertGreaterEqual(check_telemetry(self, second), 3)
        tel = [s for s in second if s.topic_key == TELEMETRY.key]
        # The device restarted: its topic sequence starts again, nothing of
        # the old session comes back as a duplicate.
        first_tel = [s for s in first if s.topic_key == TELEMETRY.key]
        print(f"\n  reboot: first session telemetry {first_tel[0].seq}..{first_tel[-1].seq}, second from {tel[0].seq}")
        self.assertLess(tel[0].seq, first_tel[-1].seq)
        self.assertFalse(any(s.dup for s in second))
        self.assertIn("booted", log_lines(second))
        self.assertEqual(host2.core.stats.requests_served, 1)


if __name__ == "__main__":
    unittest.main()
