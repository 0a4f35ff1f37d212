"""The stable session state machine (vox_embedded.stable_session).

Two Python sessions over in-memory framed links (tests/stable_sim.py) with
a seeded fault model (dropped frames, corrupted bytes, cut links; links
keep order): exactly once and in order over thousands of messages, resume,
every refusal typed on both sides, the next-deadline behaviour, the window
and the compact counters. Property tests run ``VOX_SEEDS`` seeds from
``VOX_SEED`` and name the failing seed in their ``subTest``.
"""

from __future__ import annotations

# r[verify py.package]

import random
import unittest
from typing import Optional

from vox_embedded.prologue import Mode, Prologue, Role, RoleConflict, SchemaMismatch, VersionMismatch, ModeMismatch
from vox_embedded.stable_frames import (
    Ack,
    Counter,
    Data,
    Hello,
    Reject,
    RejectReason,
    Window,
    decode_frame,
    encode_frame,
)
from vox_embedded.stable_session import (
    ConfigError,
    DirectionClosed,
    LinkState,
    MessageTooLarge,
    SessionLost,
    SessionRefused,
    SessionRejected,
    SessionViolation,
    StableConfig,
    StableSession,
)

from .stable_sim import Exchange, Faults, Sim, StreamSim
from .support import rng, seeds

FP = bytes.fromhex("1122334455667788")
OTHER_FP = bytes.fromhex("8877665544332211")


def pair(
    seed: int = 1,
    config: StableConfig = StableConfig(),
    acceptor_config: Optional[StableConfig] = None,
    fp_b: bytes = FP,
    **kw: object,
) -> tuple[StableSession, StableSession, random.Random]:
    """An initiator and an acceptor with seeded keys."""
    r = rng(seed)
    a = StableSession(Role.INITIATOR, FP, config, key_source=r.randbytes)
    b = StableSession(Role.ACCEPTOR, fp_b, acceptor_config or config, key_source=r.randbytes, **kw)  # type: ignore[arg-type]
    return a, b, r


def shuttle(a: StableSession, b: StableSession, now: int, rounds: int = 20) -> list[tuple[str, object]]:
    """Moves payloads between two attached-by-hand sessions until quiet;
    returns the frames seen, as (direction, decoded)."""
    seen: list[tuple[str, object]] = []
    for _ in range(rounds):
        moved = False
        for src, dst, name in ((a, b, "a>b"), (b, a, "b>a")):
            for p in src.take_transmit():
                moved = True
                seen.append((name, p if p[:4] == b"VOXE" else decode_frame(p)))
                dst.receive(p, now)
        if not moved:
            break
    return seen


def attached(seed: int = 1, config: StableConfig = StableConfig(), **kw: object) -> tuple[StableSession, StableSession]:
    """A pair attached by hand at time 0."""
    a, b, _ = pair(seed, config, **kw)
    a.attach(0)
    b.attach(0)
    shuttle(a, b, 0)
    assert a.attached and b.attached
    return a, b


def exchange(
    seed: int,
    count: int,
    faults: Faults,
    size: object = 16,
    config: StableConfig = StableConfig(),
    acceptor_config: Optional[StableConfig] = None,
    latency: int = 1,
    record: bool = False,
) -> tuple[Sim, Exchange]:
    """Runs a whole exchange (both sides send ``count``, close, leave)."""
    a, b, r = pair(seed, config, acceptor_config)
    sim = Sim(a, b, r, faults, latency=latency, record=record)
    ex = Exchange(count, size)  # type: ignore[arg-type]
    sim.run(ex)
    return sim, ex


# r[verify py.package]
class ExactlyOnce(unittest.TestCase):
    """Messages arrive exactly once and in order, whatever the links do."""

    def test_clean_links(self) -> None:
        sim, ex = exchange(1, 3000, Faults())
        a, b = (e.session for e in sim.ends)
        self.assertEqual(ex.received, [3000, 3000])
        for s in (a, b):
            self.assertIsNone(s.error)
            self.assertTrue(s.ended and s.finished)
            self.assertEqual((s.stats.reattachments, s.stats.replays, s.stats.gaps), (0, 0, 0))
            self.assertEqual(s.stats.beyond_window, 0)
        # Both left on the peer's done, well before linger_ms.
        self.assertLess(sim.now, 1000)

    def test_seeded_faults(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                faults = Faults(drop=r.uniform(0, 0.004), corrupt=r.uniform(0, 0.004), cut=r.uniform(0, 0.004))
                sim, ex = exchange(
                    seed, 2500, faults, size=lambda i: 4 + (i * 37) % 120, latency=r.randint(1, 5)
                )
                a, b = (e.session for e in sim.ends)
                self.assertEqual(ex.received, [2500, 2500], f"seed {seed}")
                self.assertIsNone(a.error, f"seed {seed}")
                self.assertIsNone(b.error, f"seed {seed}")
                self.assertGreaterEqual(b.stats.reattachments, a.stats.reattachments, f"seed {seed}")
                self.assertEqual(a.stats.beyond_window + b.stats.beyond_window, 0, f"seed {seed}")

    def test_seeded_faults_on_one_byte_stream(self) -> None:
        """A serial line: links come and go on the same byte streams, so a
        new link starts with stale bytes and frames of the previous one
        (section 7: ignored during the handshake; a prologue after it
        starts a new handshake on the link)."""
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                a, b, _ = pair(seed)
                sim = StreamSim(a, b, r, Faults(drop=r.uniform(0, 0.01), corrupt=r.uniform(0, 0.01)), latency=r.randint(1, 5))
                ex = Exchange(1500, lambda i: 4 + (i * 13) % 90)
                sim.run(ex)  # type: ignore[arg-type]
                self.assertEqual(ex.received, [1500, 1500], f"seed {seed}")
                self.assertIsNone(a.error, f"seed {seed}")
                self.assertIsNone(b.error, f"seed {seed}")

    def test_heavy_faults_resume_many_times(self) -> None:
        sim, ex = exchange(7, 5000, Faults(drop=0.01, corrupt=0.01, cut=0.01), size=24)
        a, b = (e.session for e in sim.ends)
        self.assertEqual(ex.received, [5000, 5000])
        self.assertGreater(a.stats.reattachments, 50)
        self.assertGreater(a.stats.replays + b.stats.replays, 0)
        self.assertGreater(a.stats.gaps + b.stats.gaps, 0)

    def test_sequence_numbers_and_offsets_wrap(self) -> None:
        a, b, r = pair(3)
        start = 0xFFFF_FFFF - 300
        off = 0xFFFF_FFFF - 2000
        for s, peer in ((a, b), (b, a)):
            s._tx_base = s._tx_next = s._sent_high = start  # noqa: SLF001 (test set-up)
            s._tx_off = off  # noqa: SLF001
            peer._rx_next = start  # noqa: SLF001
            peer._rx_off = off  # noqa: SLF001
            peer._announced_seq = start  # noqa: SLF001
            peer._announced_off = off  # noqa: SLF001
        sim = Sim(a, b, r, Faults(cut=0.003))
        ex = Exchange(1000, 24)
        sim.run(ex)
        self.assertEqual(ex.received, [1000, 1000])
        self.assertEqual(a._tx_next, (start + 1001) & 0xFFFF_FFFF)  # noqa: SLF001


class CompactCounters(unittest.TestCase):
    """Section 6: the low-byte forms where they restore exactly."""

    def data_frames(self, sim: Sim, side: int) -> list[Data]:
        return [f for f in map(decode_frame, (p for p in sim.ends[side].sent_frames if p[:4] != b"VOXE")) if isinstance(f, Data)]

    def test_common_case_is_three_bytes(self) -> None:
        sim, _ = exchange(2, 500, Faults(), record=True)
        frames = self.data_frames(sim, 0)
        self.assertEqual(len(frames), 500)
        self.assertTrue(all(f.seq.low and f.ack.low for f in frames))
        self.assertIsNotNone(frames[0].window, "the first Data after the handshake carries the window")
        self.assertLess(sum(f.window is not None for f in frames), len(frames) // 4)

    def test_varints_beyond_the_spans(self) -> None:
        # 300 frames in flight (latency 50 ms, a 300-message window, no
        # early acks): seq beyond 128 unacked and a grant of 255 or more
        # need varints.
        big = StableConfig(replay_msgs=300, recv_msgs=300, ack_every=1000, ack_delay_ms=200)
        sim, ex = exchange(4, 900, Faults(), config=big, latency=50, record=True)
        self.assertEqual(ex.received, [900, 900])
        frames = self.data_frames(sim, 0)
        self.assertTrue(any(not f.seq.low for f in frames), "some seq as a varint")
        self.assertTrue(any(f.seq.low for f in frames))
        self.assertTrue(all(not f.ack.low for f in frames), "a grant of 300 never allows a one-byte ack")

    def test_the_receiver_restores_low_bytes(self) -> None:
        self.assertEqual(Counter(0x05, True).resolve_seq(0x1_00FE), 0x1_0105)
        self.assertEqual(Counter(0xFE, True).resolve_ack(0x1_0002), 0xFFFE)
        self.assertEqual(Counter(0x02, True).resolve_ack(0x1_0002), 0x1_0002)


# r[verify py.package]
class Refusals(unittest.TestCase):
    """Every refusal is typed on both sides."""

    def run_until_ended(self, sim: Sim, limit: int = 60_000) -> None:
        sim.run(lambda s: any(e.session.ended for e in s.ends) and all(
            e.session.ended or e.session.error is None for e in s.ends), limit_ms=limit)

    def test_schema_mismatch_both_sides_within_a_round_trip(self) -> None:
        a, b, r = pair(5, fp_b=OTHER_FP)
        sim = Sim(a, b, r, latency=3)
        sim.run(lambda s: a.ended and b.ended, limit_ms=100)
        for s, local, peer in ((a, FP, OTHER_FP), (b, OTHER_FP, FP)):
            self.assertIsInstance(s.error, SessionRefused)
            assert isinstance(s.error, SessionRefused)
            self.assertIsInstance(s.error.cause, SchemaMismatch)
            self.assertEqual((s.error.cause.local, s.error.cause.peer), (local, peer))
        self.assertLessEqual(sim.now, 2 * 3)
        with self.assertRaises(SessionRefused):
            a.send(b"x", sim.now)

    def test_role_conflict(self) -> None:
        r = rng(6)
        a = StableSession(Role.INITIATOR, FP, key_source=r.randbytes)
        b = StableSession(Role.INITIATOR, FP, key_source=r.randbytes)
        sim = Sim(a, b, r)
        sim.run(lambda s: a.ended and b.ended, limit_ms=100)
        for s in (a, b):
            self.assertIsInstance(s.error, SessionRefused)
            assert isinstance(s.error, SessionRefused)
            self.assertIsInstance(s.error.cause, RoleConflict)

    def test_version_and_mode_refused_after_answering(self) -> None:
        for peer, cause in (
            (Prologue(Mode.STABLE, Role.INITIATOR, FP, version=1), VersionMismatch),
            (Prologue(Mode.BARE, Role.INITIATOR, FP), ModeMismatch),
        ):
            with self.subTest(cause=cause.__name__):
                b = StableSession(Role.ACCEPTOR, FP)
                b.attach(0)
                ours = b.take_transmit()
                self.assertEqual(ours, [Prologue(Mode.STABLE, Role.ACCEPTOR, FP).encode()])
                b.receive(peer.encode(), 1)
                self.assertTrue(b.ended)
                self.assertIsInstance(b.error, SessionRefused)
                assert isinstance(b.error, SessionRefused)
                self.assertIsInstance(b.error.cause, cause)

    def test_version_and_mode_refused_by_the_initiator(self) -> None:
        for peer, cause in (
            (Prologue(Mode.STABLE, Role.ACCEPTOR, FP, version=3), VersionMismatch),
            (Prologue(Mode.BARE, Role.ACCEPTOR, FP), ModeMismatch),
        ):
            with self.subTest(cause=cause.__name__):
                a = StableSession(Role.INITIATOR, FP)
                a.attach(0)
                self.assertEqual(a.take_transmit(), [Prologue(Mode.STABLE, Role.INITIATOR, FP).encode()])
                a.receive(peer.encode(), 1)
                self.assertEqual(a.take_transmit(), [], "no hello after a refused prologue")
                self.assertIsInstance(a.error, SessionRefused)
                assert isinstance(a.error, SessionRefused)
                self.assertIsInstance(a.error.cause, cause)
                self.assertFalse(a.want_link(10_000), "no retry after a refusal")

    def test_session_unknown_after_the_acceptor_restarted(self) -> None:
        a, b, r = pair(8)
        sim = Sim(a, b, r)
        ex = Exchange(10**9, 16)
        sim.run(lambda s: bool(ex(s)) or min(ex.received) >= 200)
        key = a.resume_key
        self.assertIsNotNone(key)
        # The acceptor restarts: a new session with no memory of the key.
        fresh = StableSession(Role.ACCEPTOR, FP, key_source=r.randbytes)
        sim.ends[1].session = fresh
        sim._cut(sim.ends[0].link)  # noqa: SLF001
        sim.run(lambda s: a.ended, limit_ms=sim.now + 5000)
        self.assertIsInstance(a.error, SessionLost)
        self.assertFalse(fresh.ended, "a stranger's key only loses the stranger's link")

    def test_keyless_hello_after_confirmation_loses_the_acceptor_session(self) -> None:
        a, b, r = pair(9)
        sim = Sim(a, b, r)
        ex = Exchange(10**9, 16)
        sim.run(lambda s: bool(ex(s)) or min(ex.received) >= 50)
        restarted = StableSession(Role.INITIATOR, FP)
        sim.ends[0].session = restarted
        sim._cut(sim.ends[0].link)  # noqa: SLF001
        sim.ends[0].link = None
        sim.run(lambda s: b.ended, limit_ms=sim.now + 5000)
        self.assertIsInstance(b.error, SessionLost)

    def test_table_full(self) -> None:
        a, b, r = pair(10, admit=lambda: RejectReason.TABLE_FULL)
        sim = Sim(a, b, r)
        sim.run(lambda s: a.ended, limit_ms=1000)
        self.assertIsInstance(a.error, SessionRejected)
        assert isinstance(a.error, SessionRejected)
        self.assertIs(a.error.reason, RejectReason.TABLE_FULL)
        self.assertFalse(b.established)

    def test_busy_backs_off_then_connects(self) -> None:
        answers = [RejectReason.BUSY] * 3
        a, b, r = pair(11, admit=lambda: answers.pop() if answers else None)
        sim = Sim(a, b, r)
        dials: list[int] = []
        ex = Exchange(10, 8)

        def app(s: Sim) -> bool:
            if a.link_state is LinkState.HANDSHAKE and (not dials or dials[-1] != a.link_generation):
                dials.append(a.link_generation)
            return ex(s)

        sim.run(app)
        self.assertEqual(ex.received, [10, 10])
        self.assertEqual(a.stats.busy_retries, 3)
        self.assertEqual(a.stats.links, 4)
        # Backoffs 50 + 100 + 200 ms before the fourth dial.
        self.assertGreaterEqual(sim.now, 350)

    def test_busy_for_too_long_is_rejected(self) -> None:
        a, b, r = pair(12, admit=lambda: RejectReason.BUSY)
        sim = Sim(a, b, r)
        sim.run(lambda s: a.ended, limit_ms=30_000)
        self.assertIsInstance(a.error, SessionRejected)
        assert isinstance(a.error, SessionRejected)
        self.assertIs(a.error.reason, RejectReason.BUSY)
        self.assertGreaterEqual(sim.now, 10_000)
        self.assertLess(sim.now, 12_000)

    def test_resume_out_of_range_ends_the_session(self) -> None:
        a, b = attached(13)
        a.send(b"\x01x", 1)
        shuttle(a, b, 1)
        a.link_lost(2)
        b.link_lost(2)
        b.attach(3)
        b.take_transmit()
        b.receive(Prologue(Mode.STABLE, Role.INITIATOR, FP).encode(), 3)
        b.take_transmit()
        b.receive(encode_frame(Hello(key=b.resume_key, next_expected=1000, window=Window(8, 512))), 4)
        self.assertIsInstance(b.error, SessionViolation)

    def test_unknown_key_is_rejected_and_the_session_goes_on(self) -> None:
        a, b = attached(14)
        b.link_lost(1)
        b.attach(2)
        b.take_transmit()
        b.receive(Prologue(Mode.STABLE, Role.INITIATOR, FP).encode(), 2)
        b.take_transmit()
        b.receive(encode_frame(Hello(key=bytes(16), next_expected=0, window=Window(8, 512))), 3)
        self.assertEqual([decode_frame(p) for p in b.take_transmit()], [Reject(RejectReason.SESSION_UNKNOWN)])
        self.assertFalse(b.has_link)
        self.assertIsNone(b.error)


class ResumeKeys(unittest.TestCase):
    """Section 7's acceptor rules."""

    def hello_on_new_link(self, b: StableSession, key: Optional[bytes], now: int) -> Hello:
        b.attach(now)
        b.take_transmit()
        b.receive(Prologue(Mode.STABLE, Role.INITIATOR, FP).encode(), now)
        b.take_transmit()
        b.receive(encode_frame(Hello(key=key, next_expected=0, window=Window(8, 512))), now)
        frames = [decode_frame(p) for p in b.take_transmit()]
        hello = frames[0]
        assert isinstance(hello, Hello), frames
        return hello

    def test_fresh_key_per_proven_hello_and_reissue_on_stale(self) -> None:
        b = StableSession(Role.ACCEPTOR, FP)
        k1 = self.hello_on_new_link(b, None, 0).key
        # Nothing confirmed yet: a keyless hello is the same session; the key is re-issued.
        self.assertEqual(self.hello_on_new_link(b, None, 1).key, k1)
        k2 = self.hello_on_new_link(b, k1, 2).key
        self.assertNotEqual(k2, k1)
        self.assertEqual(len(k2 or b""), 16)
        # The previous key (a stale hello): re-issue the latest, keep both.
        self.assertEqual(self.hello_on_new_link(b, k1, 3).key, k2)
        self.assertEqual(self.hello_on_new_link(b, k1, 4).key, k2)
        k3 = self.hello_on_new_link(b, k2, 5).key
        self.assertNotIn(k3, (k1, k2))
        # k1 is now forgotten.
        b.attach(6)
        b.take_transmit()
        b.receive(Prologue(Mode.STABLE, Role.INITIATOR, FP).encode(), 6)
        b.take_transmit()
        b.receive(encode_frame(Hello(key=k1, next_expected=0, window=Window(8, 512))), 6)
        self.assertEqual([decode_frame(p) for p in b.take_transmit()], [Reject(RejectReason.SESSION_UNKNOWN)])

    def test_initiator_presents_the_latest_key(self) -> None:
        sim, _ = exchange(15, 300, Faults(cut=0.02))
        a, b = (e.session for e in sim.ends)
        self.assertGreater(a.stats.reattachments, 0)
        self.assertEqual(a.resume_key, b.resume_key)


class DataPhase(unittest.TestCase):
    """Duplicates, gaps, violations, the window."""

    def test_duplicate_is_dropped_and_acked_at_once(self) -> None:
        a, b = attached(20)
        a.send(b"\x02hi", 1)
        frame = a.take_transmit()[0]
        b.receive(frame, 1)
        b.take_transmit()
        self.assertEqual(b.recv(1), b"\x02hi")
        b.take_transmit()
        b.receive(frame, 2)
        out = [decode_frame(p) for p in b.take_transmit()]
        self.assertEqual(b.stats.duplicates, 1)
        self.assertEqual(len(out), 1)
        self.assertIsInstance(out[0], Ack)
        self.assertIsNone(b.recv(2))

    def test_gap_ends_the_attachment(self) -> None:
        a, b = attached(21)
        a.send(b"\x01a", 1)
        a.send(b"\x01b", 1)
        first, second = a.take_transmit()
        b.receive(second, 1)
        self.assertEqual(b.stats.gaps, 1)
        self.assertFalse(b.has_link)

    def test_ack_next_beyond_expected_is_a_gap(self) -> None:
        a, b = attached(22)
        b.receive(encode_frame(Ack(ack=0, next=3, window=Window(8, 512), done=False)), 1)
        self.assertEqual(b.stats.gaps, 1)
        self.assertFalse(b.has_link)

    def test_ack_of_frames_never_sent_is_a_violation(self) -> None:
        a, b = attached(23)
        b.receive(encode_frame(Ack(ack=5, next=0, window=Window(8, 512), done=False)), 1)
        self.assertEqual(b.stats.violations, 1)
        self.assertFalse(b.has_link)
        self.assertIsNone(b.error)

    def test_malformed_frame_ends_the_attachment_but_not_in_a_handshake(self) -> None:
        a, b = attached(24)
        b.receive(b"\x02\x00\x00", 1)
        self.assertFalse(b.has_link)
        c = StableSession(Role.ACCEPTOR, FP)
        c.attach(0)
        c.receive(b"\x02\x00\x00", 0)
        self.assertTrue(c.has_link)

    def test_the_window_holds_the_sender_back(self) -> None:
        small = StableConfig(recv_msgs=4, recv_bytes=400, max_message=100)
        reading = [False]
        a, b, r = pair(25, config=StableConfig(max_message=100), acceptor_config=small)
        sim = Sim(a, b, r)
        ex = Exchange(100, 20, read_gate=lambda side, now: side == 0 or reading[0])
        sim.run(lambda s: (ex(s) and False) or s.now > 2000, limit_ms=5000)
        self.assertEqual(ex.received[1], 0)
        self.assertEqual(len(b._rx_queue), 4)  # noqa: SLF001: exactly the grant
        self.assertGreater(a.stats.window_waits, 0)
        self.assertEqual(b.stats.beyond_window, 0)
        reading[0] = True
        sim.run(ex, limit_ms=60_000)
        self.assertEqual(ex.received, [100, 100])
        self.assertGreater(b.stats.window_updates, 0)

    def test_a_message_that_uses_the_last_credit_with_room_left_updates_the_window_at_once(self) -> None:
        a, b = attached(27, StableConfig(recv_msgs=3, max_message=10, ack_every=4))
        # b announced 3 messages. a sends two, b reads both while a may
        # still send one: no update is owed yet.
        for i in range(2):
            self.assertTrue(a.send(bytes([i]) * 5, 1))
        shuttle(a, b, 1)
        self.assertIsNotNone(b.recv(1))
        self.assertIsNotNone(b.recv(1))
        self.assertEqual(b.stats.window_updates, 0)
        # The third uses the last of that credit while b's queue has room:
        # the update goes at once (same time), not when the ack delay ends.
        self.assertTrue(a.send(bytes([2]) * 5, 1))
        seen = shuttle(a, b, 1)
        self.assertEqual(b.stats.window_updates, 1)
        self.assertTrue(any(d == "b>a" and isinstance(f, Ack) for d, f in seen))
        self.assertTrue(a.send(bytes([3]) * 5, 1), "a may send again")

    def test_send_rules(self) -> None:
        a, b = attached(26, StableConfig(max_message=10, replay_msgs=2, replay_bytes=20))
        with self.assertRaises(MessageTooLarge):
            a.send(bytes(11), 0)
        self.assertTrue(a.send(bytes(10), 0))
        self.assertTrue(a.send(bytes(10), 0))
        self.assertFalse(a.send(bytes(1), 0), "the replay buffer is full")
        a.close(0)
        with self.assertRaises(DirectionClosed):
            a.send(b"", 0)

    def test_config_rules(self) -> None:
        for bad in (
            StableConfig(keepalive_ms=1000),
            StableConfig(ack_delay_ms=1000),
            StableConfig(linger_ms=999),
            StableConfig(connect_timeout_ms=999),
            StableConfig(max_message=300, recv_bytes=200),
        ):
            with self.assertRaises(ConfigError):
                StableSession(Role.INITIATOR, FP, bad)


class Deadlines(unittest.TestCase):
    """poll_timeout and what handle_timeout does at it."""

    def test_initiator_repeats_its_prologue_every_keepalive(self) -> None:
        a = StableSession(Role.INITIATOR, FP)
        a.attach(100)
        self.assertEqual(len(a.take_transmit()), 1)
        self.assertEqual(a.poll_timeout(), 350)
        a.handle_timeout(349)
        self.assertEqual(a.take_transmit(), [])
        a.handle_timeout(350)
        self.assertEqual(a.take_transmit(), [Prologue(Mode.STABLE, Role.INITIATOR, FP).encode()])
        self.assertEqual(a.poll_timeout(), 600)
        # The handshake's limit: timeout_ms after the link started.
        for t in (600, 850):
            a.handle_timeout(t)
        self.assertEqual(a.poll_timeout(), 1100)
        a.handle_timeout(1100)
        self.assertFalse(a.has_link)
        self.assertEqual(a.stats.timeouts, 1)

    def test_acceptor_handshake_timeout(self) -> None:
        b = StableSession(Role.ACCEPTOR, FP)
        b.attach(0)
        self.assertEqual(b.poll_timeout(), 1000)
        b.handle_timeout(1000)
        self.assertFalse(b.has_link)

    def test_attached_keepalive_ack_delay_and_silence(self) -> None:
        a, b = attached(30)
        self.assertEqual(a.poll_timeout(), 250)
        a.handle_timeout(250)
        out = [decode_frame(p) for p in a.take_transmit()]
        self.assertEqual(len(out), 1)
        self.assertIsInstance(out[0], Ack)
        self.assertEqual(a.poll_timeout(), 500)
        # A message arrives at 300: its ack is due at 320.
        b.send(b"\x01z", 300)
        a.receive(b.take_transmit()[0], 300)
        self.assertEqual(a.take_transmit(), [])
        self.assertEqual(a.poll_timeout(), 320)
        a.handle_timeout(320)
        ack = decode_frame(a.take_transmit()[0])
        self.assertIsInstance(ack, Ack)
        assert isinstance(ack, Ack)
        self.assertEqual(ack.ack, 1)
        # Silence: keepalives at 570, 820, then dead at 1300.
        self.assertEqual(a.poll_timeout(), 570)
        for t in (570, 820, 1070):
            a.handle_timeout(t)
        self.assertEqual(a.poll_timeout(), 1300)
        a.handle_timeout(1300)
        self.assertFalse(a.has_link)
        self.assertEqual(a.stats.timeouts, 1)

    def test_keepalive_coalescing(self) -> None:
        a, b = attached(31)
        # a's keepalive is due at 250; a frame arriving at 200 (within a
        # quarter period) makes it send at once.
        b._send_ack(200)  # noqa: SLF001: an ack from b at 200
        frame = b.take_transmit()[0]
        a.receive(frame, 200)
        out = [decode_frame(p) for p in a.take_transmit()]
        self.assertEqual(len(out), 1)
        self.assertIsInstance(out[0], Ack)
        self.assertEqual(a.poll_timeout(), 450)
        # Earlier than that, no coalescing.
        b._send_ack(300)  # noqa: SLF001
        a.receive(b.take_transmit()[0], 300)
        self.assertEqual(a.take_transmit(), [])

    def test_initiator_redial_time_after_busy(self) -> None:
        a = StableSession(Role.INITIATOR, FP)
        a.attach(0)
        a.take_transmit()
        a.receive(Prologue(Mode.STABLE, Role.ACCEPTOR, FP).encode(), 1)
        a.take_transmit()
        a.receive(encode_frame(Reject(RejectReason.BUSY)), 2)
        self.assertFalse(a.has_link)
        self.assertFalse(a.want_link(51))
        self.assertTrue(a.want_link(52))
        self.assertEqual(a.poll_timeout(), 52)

    def test_linger_after_finishing_without_the_peers_done(self) -> None:
        a, b = attached(32)
        a.close(10)
        b.close(10)
        seen = shuttle(a, b, 10)
        # Drop every frame after the closes: make a finish without b's done.
        a2, b2 = attached(33)
        a2.close(10)
        b2.receive(a2.take_transmit()[0], 10)  # b2 gets a2's close
        b2.close(10)
        for p in b2.take_transmit():
            a2.receive(p, 11)  # close + ack of a2's close
        self.assertTrue(a2.finished)
        self.assertFalse(a2.ended)
        self.assertEqual(a2.poll_timeout(), 11 + 250)
        deadline = 11 + 3000
        t = 11
        while not a2.ended and t <= deadline:
            a2.take_transmit()
            t = a2.poll_timeout() or deadline
            a2.handle_timeout(t)
            a2._last_rx = t  # noqa: SLF001: keep the link alive
        self.assertTrue(a2.ended)
        self.assertIsNone(a2.error)
        self.assertEqual(t, deadline)
        self.assertTrue(any(isinstance(f, Ack) and f.done for _, f in seen))
        self.assertTrue(a.ended and b.ended)


if __name__ == "__main__":
    unittest.main()
