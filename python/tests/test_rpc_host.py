"""The sans-I/O rpc side (``RpcCore``, PROTOCOL.md section 12) against
itself over an in-memory, in-order message pipe, with each side on its
own clock, and against hand-made frames for the rules a well-behaved
peer never breaks."""

from __future__ import annotations

# r[verify proto.complete]

import random
import unittest
from typing import List, Tuple

from vox_embedded import postcard
from vox_embedded import rpc_frames as rf
from vox_embedded.rpc_host import CallStatus, RpcCore, RpcVersionMismatch, RpcViolation, START_SAMPLES

from tests.support import seeds

K_DOUBLE = 0x11111111
K_FAIL = 0x22222222
K_TOPIC = 0x33333333


def double(body: bytes, now: int) -> Tuple[bool, bytes]:
    """u32 => u32, twice the argument."""
    r = postcard.Reader(body)
    v = r.u32()
    r.finish()
    return True, postcard.encode_u32(v * 2)


def fail(body: bytes, now: int) -> Tuple[bool, bytes]:
    """Always fails with the error byte 7."""
    return False, b"\x07"


class Pair:
    """Two cores, ``a`` and ``b`` (whose clock is ``a``'s plus ``skew``;
    both start at 0 or later), exchanging messages in order, each delivered
    ``delay`` ms later. ``t`` is ``a``'s clock."""

    def __init__(self, skew: int = 0, delay: int = 1, qa: int = 8, qb: int = 8) -> None:
        self.t = max(0, -skew)
        self.skew = skew
        self.delay = delay
        self.a = RpcCore({}, qa, now=self.t)
        self.b = RpcCore({K_DOUBLE: double, K_FAIL: fail}, qb, names={K_DOUBLE: "double", K_FAIL: "fail"})
        self.to_a: List[Tuple[int, bytes]] = []
        self.to_b: List[Tuple[int, bytes]] = []
        self.max_in_flight_a = 0

    def step(self) -> None:
        """One millisecond: transmit, deliver what is due."""
        for m in self.a.take_transmit(self.t):
            self.to_b.append((self.t + self.delay, m))
        for m in self.b.take_transmit(self.t + self.skew):
            self.to_a.append((self.t + self.delay, m))
        self.max_in_flight_a = max(self.max_in_flight_a, self.a.in_flight)
        self.t += 1
        while self.to_b and self.to_b[0][0] <= self.t:
            self.b.receive(self.to_b.pop(0)[1], self.t + self.skew)
        while self.to_a and self.to_a[0][0] <= self.t:
            self.a.receive(self.to_a.pop(0)[1], self.t)

    def run(self, ms: int) -> None:
        """Steps ``ms`` times."""
        for _ in range(ms):
            self.step()


class Greeting(unittest.TestCase):
    def test_hello_samples_and_calls(self) -> None:
        for seed in seeds():
            rng = random.Random(seed)
            with self.subTest(seed=seed):
                p = Pair(skew=rng.randrange(-10**6, 10**6) if rng.random() < 0.5 else rng.randrange(10**9), delay=rng.randrange(1, 6))
                p.run(5)
                self.assertIsNotNone(p.a.peer)
                self.assertEqual(p.a.peer.endpoints, [K_DOUBLE, K_FAIL])
                self.assertEqual(p.a.peer.fingerprint, rf.service_fingerprint([K_DOUBLE, K_FAIL]))
                ids = [p.a.call(K_DOUBLE, postcard.encode_u32(i), 1000, p.t) for i in range(20)]
                failing = p.a.call(K_FAIL, b"", 1000, p.t)
                p.run(200)
                self.assertTrue(p.a.ready)
                # The sample's offset is the skew, within its bound.
                eps = p.a.epsilon(p.t)
                assert eps is not None
                self.assertLessEqual(abs(p.a.peer_clock(p.t) - p.t - p.skew), eps)
                for i, cid in enumerate(ids):
                    r = p.a.results[cid]
                    self.assertIs(r.status, CallStatus.REPLY)
                    self.assertEqual(postcard.Reader(r.body).u32(), 2 * i)
                self.assertIs(p.a.results[failing].status, CallStatus.FAILED)
                self.assertEqual(p.a.results[failing].body, b"\x07")
                self.assertEqual(p.b.stats.time_queries_answered, START_SAMPLES)

    def test_unlisted_endpoint_is_refused_without_sending(self) -> None:
        p = Pair()
        p.run(50)
        cid = p.a.call(0x44444444, b"", 1000, p.t)
        r = p.a.results[cid]
        self.assertEqual((r.status, r.refusal, r.sent), (CallStatus.REFUSED, rf.Refusal.UNKNOWN, False))

    def test_window_is_the_peers_max_in_flight(self) -> None:
        p = Pair(qb=2, delay=5)
        p.run(100)
        ids = [p.a.call(K_DOUBLE, postcard.encode_u32(i), 5000, p.t) for i in range(30)]
        p.run(500)
        self.assertEqual(p.max_in_flight_a, 2)
        self.assertTrue(all(p.a.results[i].ok for i in ids))

    def test_expired_deadline_is_refused(self) -> None:
        p = Pair(skew=12345, delay=20)
        p.run(400)
        cid = p.a.call(K_DOUBLE, postcard.encode_u32(1), 5, p.t)  # 5 ms, the trip takes 20
        ok = p.a.call(K_DOUBLE, postcard.encode_u32(1), 100, p.t)
        p.run(100)
        self.assertEqual((p.a.results[cid].status, p.a.results[cid].refusal), (CallStatus.REFUSED, rf.Refusal.EXPIRED))
        self.assertIs(p.a.results[ok].status, CallStatus.REPLY)

    def test_describe(self) -> None:
        p = Pair()
        p.run(50)
        cid = p.a.describe(1000, p.t)
        p.run(20)
        entries = rf.decode_describe_reply(p.a.results[cid].body)
        self.assertEqual([(e.key, e.name) for e in entries], [(K_DOUBLE, "double"), (K_FAIL, "fail")])

    def test_session_end_leaves_calls_unresolved(self) -> None:
        p = Pair(delay=50)
        p.run(500)
        cid = p.a.call(K_DOUBLE, postcard.encode_u32(1), 1000, p.t)
        p.run(10)
        err = RuntimeError("conduit gone")
        p.a.session_ended(err)
        r = p.a.results[cid]
        self.assertEqual((r.status, r.error, r.sent), (CallStatus.UNRESOLVED, err, True))


def hello(version: int = rf.ENVELOPE_VERSION, topics: List[int] | None = None) -> bytes:
    """A peer's greeting."""
    return rf.encode_frame(rf.Hello(version, 4, 0, [], topics or []))


class Violations(unittest.TestCase):
    def test_frame_before_hello(self) -> None:
        with self.assertRaises(RpcViolation):
            RpcCore().receive(rf.encode_frame(rf.TimeQuery(5)), 0)

    def test_second_hello(self) -> None:
        c = RpcCore()
        c.receive(hello(), 0)
        with self.assertRaises(RpcViolation):
            c.receive(hello(), 0)

    def test_version(self) -> None:
        with self.assertRaises(RpcVersionMismatch) as cm:
            RpcCore().receive(hello(version=1), 0)
        self.assertEqual((cm.exception.ours, cm.exception.theirs), (2, 1))

    def test_not_a_frame(self) -> None:
        c = RpcCore()
        for bad in (b"", b"\x0c", b"\x07\x01\x00"):
            with self.subTest(bad=bad), self.assertRaises(RpcViolation):
                c.receive(bad, 0)


class Topics(unittest.TestCase):
    def test_subscribe_credit_and_window(self) -> None:
        c = RpcCore()
        c.subscribe(K_TOPIC, 3)
        c.take_transmit(0)
        c.receive(hello(topics=[0x55555555, K_TOPIC]), 0)
        out = [rf.decode_frame(m) for m in c.take_transmit(1)]
        self.assertIn(rf.Subscribe(1, 3), out)
        for seq in (40, 41, 43):  # 42 dropped by a lossy publisher
            c.receive(rf.encode_frame(rf.Sample(1, seq, False, b"\x01")), 2)
        taken = c.take_samples()
        self.assertEqual([s.seq for s in taken], [40, 41, 43])
        self.assertEqual(c.topics[1].lost, 1)
        out = [rf.decode_frame(m) for m in c.take_transmit(3)]
        self.assertIn(rf.Credit(1, 44), out)
        for seq in (44, 45, 46):
            c.receive(rf.encode_frame(rf.Sample(1, seq, False, b"")), 4)
        with self.assertRaises(RpcViolation):
            c.receive(rf.encode_frame(rf.Sample(1, 47, False, b"")), 5)

    def test_unsubscribed_sample(self) -> None:
        c = RpcCore()
        c.receive(hello(topics=[K_TOPIC]), 0)
        with self.assertRaises(RpcViolation):
            c.receive(rf.encode_frame(rf.Sample(0, 0, False, b"")), 0)


if __name__ == "__main__":
    unittest.main()
