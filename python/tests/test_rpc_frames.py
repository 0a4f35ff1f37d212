"""The rpc frames, clock samples and fingerprint of PROTOCOL.md section 12."""

from __future__ import annotations

import math
import random
import unittest
from fractions import Fraction

from vox_embedded import prologue
from vox_embedded import rpc_frames as rf
from vox_embedded.rpc_frames import (
    Cancel,
    DescribeEntry,
    EntryKind,
    Failed,
    FrameKind,
    Hello,
    NoReply,
    Refusal,
    Refused,
    Reply,
    Request,
    TimeQuery,
    TimeReply,
)

from .support import random_bytes, rng, seeds


def u16(r: random.Random) -> int:
    """A u16 favouring the varint length boundaries."""
    return r.choice((0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 2**16 - 1, r.getrandbits(r.randrange(1, 17))))


def u32(r: random.Random) -> int:
    """A u32 favouring the varint length boundaries."""
    return r.choice((0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 2**31, 2**32 - 1, r.getrandbits(r.randrange(1, 33))))


def u64(r: random.Random) -> int:
    """A u64 favouring the varint length boundaries."""
    return r.choice((0, 1, 0x7F, 0x80, 2**32, 2**56, 2**63, 2**64 - 1, r.getrandbits(r.randrange(1, 65))))


def i64(r: random.Random) -> int:
    """An i64 favouring the zigzag and varint boundaries."""
    return r.choice(
        (0, 1, -1, 63, -64, 64, 1200, -1200, 2**63 - 1, -(2**63), r.getrandbits(r.randrange(1, 64)) * r.choice((1, -1)))
    )


def body(r: random.Random) -> bytes:
    return random_bytes(r, r.choice((0, 1, 5, 127, 128, 300)))


def keys(r: random.Random) -> list[int]:
    return [u32(r) for _ in range(r.choice((0, 1, 2, 31, 32, 40)))]


def frame_of_kind(r: random.Random, kind: FrameKind) -> rf.RpcFrame:
    """A frame of ``kind``, with any field values."""
    if kind == FrameKind.REQUEST:
        return Request(id=u32(r), endpoint=u16(r), deadline=i64(r), body=body(r))
    if kind == FrameKind.REPLY:
        return Reply(id=u32(r), body=body(r))
    if kind == FrameKind.FAILED:
        return Failed(id=u32(r), body=body(r))
    if kind == FrameKind.REFUSED:
        return Refused(id=u32(r), why=r.choice(list(Refusal)))
    if kind == FrameKind.NO_REPLY:
        return NoReply(id=u32(r))
    if kind == FrameKind.CANCEL:
        return Cancel(id=u32(r))
    if kind == FrameKind.HELLO:
        return Hello(version=u16(r), max_in_flight=u16(r), fingerprint=u32(r), endpoints=keys(r), topics=keys(r))
    if kind == FrameKind.TIME_QUERY:
        return TimeQuery(t0=u64(r))
    if kind == FrameKind.SUBSCRIBE:
        return rf.Subscribe(topic=u16(r), window=u16(r))
    if kind == FrameKind.SAMPLE:
        return rf.Sample(topic=u16(r), seq=u32(r), dup=r.random() < 0.5, body=body(r))
    if kind == FrameKind.CREDIT:
        return rf.Credit(topic=u16(r), next=u32(r))
    return TimeReply(t0=u64(r), t1=u64(r), t2=u64(r))


def assert_malformed_not_truncated(case: unittest.TestCase, hx: str) -> None:
    with case.subTest(hx=hx), case.assertRaises(rf.MalformedRpcFrame) as cm:
        rf.decode_frame(bytes.fromhex(hx))
    case.assertNotIsInstance(cm.exception, rf.TruncatedRpcFrame, hx)


class Frames(unittest.TestCase):
    def test_known_encodings(self) -> None:
        cases: list[tuple[rf.RpcFrame, str]] = [
            (Request(id=0, endpoint=0, deadline=0, body=b""), "00 00 00 00 00"),
            (Request(id=1, endpoint=128, deadline=-1, body=b"\x01\x02"), "00 01 80 01 01 02 01 02"),
            (Request(id=2, endpoint=2**16 - 1, deadline=-1200, body=b""), "00 02 ff ff 03 df 12 00"),
            (Reply(id=2**32 - 1, body=b""), "01 ff ff ff ff 0f 00"),
            (Failed(id=7, body=b"\x00\x00"), "02 07 02 00 00"),
            (Refused(id=0, why=Refusal.BUSY), "03 00 01"),
            (Refused(id=0, why=Refusal.UNKNOWN), "03 00 02"),
            (Refused(id=0, why=Refusal.UNDECODABLE), "03 00 03"),
            (Refused(id=300, why=Refusal.CANCELLED), "03 ac 02 04"),
            (NoReply(id=5), "04 05"),
            (Cancel(id=2**32 - 1), "05 ff ff ff ff 0f"),
            (
                Hello(version=1, max_in_flight=300, fingerprint=0, endpoints=[1, 0x04030201], topics=[0xFFFFFFFF]),
                "06 01 ac 02 00 08 01 00 00 00 01 02 03 04 04 ff ff ff ff",
            ),
            (Hello(version=1, max_in_flight=0, fingerprint=2**32 - 1, endpoints=[], topics=[]), "06 01 00 ff ff ff ff 0f 00 00"),
            (TimeQuery(t0=0), "07 00"),
            (TimeQuery(t0=2**64 - 1), "07 ff ff ff ff ff ff ff ff ff 01"),
            (TimeReply(t0=1, t1=2**32, t2=3), "08 01 80 80 80 80 10 03"),
        ]
        for frame, hx in cases:
            with self.subTest(frame=frame):
                self.assertEqual(rf.encode_frame(frame).hex(" "), hx)
                self.assertEqual(rf.decode_frame(bytes.fromhex(hx)), frame)

    def test_every_kind_round_trips_and_every_prefix_is_truncated(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(20):
                    for kind in FrameKind:
                        frame = frame_of_kind(r, kind)
                        wire = rf.encode_frame(frame)
                        self.assertEqual(wire[0], kind)
                        decoded = rf.decode_frame(wire)
                        self.assertEqual(decoded, frame)
                        self.assertIs(type(decoded), type(frame))
                        cuts = {0, len(wire) - 1, r.randrange(len(wire))}
                        if len(wire) < 40:
                            cuts = set(range(len(wire)))
                        for cut in sorted(cuts):
                            with self.assertRaises(rf.TruncatedRpcFrame):
                                rf.decode_frame(wire[:cut])
                        for extra in (b"\x00", b"\x80"):
                            with self.assertRaises(rf.MalformedRpcFrame) as cm:
                                rf.decode_frame(wire + extra)
                            self.assertNotIsInstance(cm.exception, rf.TruncatedRpcFrame)

    def test_decoded_fields_have_their_types(self) -> None:
        frame = rf.decode_frame(bytes.fromhex("03 03 00"))
        assert isinstance(frame, Refused)
        self.assertIs(type(frame.why), Refusal)
        hello = rf.decode_frame(bytes.fromhex("06 01 04 84 86 88 08 04 aa bb cc dd 00"))
        assert isinstance(hello, Hello)
        self.assertEqual(hello.endpoints, [0xDDCCBBAA])
        self.assertEqual(hello.topics, [])
        request = rf.decode_frame(bytes.fromhex("00 82 01 01 e0 12 01 15"))
        assert isinstance(request, Request)
        self.assertIs(type(request.body), bytes)

    def test_unknown_variants_and_refusals(self) -> None:
        for hx in ("0c", "7f", "80 01", "ff ff ff ff 0f", "03 00 05", "03 00 80 01", "03 00 ff ff ff ff 0f"):
            assert_malformed_not_truncated(self, hx)

    def test_key_lists_must_be_whole_keys(self) -> None:
        for hx in (
            "06 01 04 00 01 aa 00",  # endpoints: 1 byte
            "06 01 04 00 03 aa bb cc 00",  # endpoints: 3 bytes
            "06 01 04 00 00 05 01 02 03 04 05",  # topics: 5 bytes
            "06 01 04 00 03 aa bb cc",  # endpoints: 3 bytes, then the end
        ):
            assert_malformed_not_truncated(self, hx)

    def test_values_out_of_range_are_malformed(self) -> None:
        for hx in (
            "00 80 80 80 80 10 00 00 00",  # id over u32
            "00 00 ff ff 04 00 00",  # endpoint over u16
            "00 00 80 80 80 00 00 00",  # endpoint: four-byte varint
            "00 00 00 ff ff ff ff ff ff ff ff ff 02 00",  # deadline over 64 bits
            "00 00 00 80 80 80 80 80 80 80 80 80 80 00 00",  # deadline: eleven-byte varint
            "06 ff ff 04 00 00 00 00",  # version over u16
            "06 01 80 80 04 00 00 00",  # max_in_flight over u16
            "06 01 04 ff ff ff ff 10 00 00",  # fingerprint over u32
            "07 ff ff ff ff ff ff ff ff ff 02",  # t0 over u64
            "08 00 00 80 80 80 80 80 80 80 80 80 80 00",  # t2: eleven-byte varint
            "04 ff ff ff ff 1f",  # id over u32
        ):
            assert_malformed_not_truncated(self, hx)

    def test_non_minimal_varints_are_read(self) -> None:
        # As every other decoder of the package (PROTOCOL_GAPS.md, G7).
        self.assertEqual(rf.decode_frame(bytes.fromhex("84 80 00 05")), NoReply(5))
        self.assertEqual(rf.decode_frame(bytes.fromhex("07 80 80 80 80 80 80 80 80 80 00")), TimeQuery(0))

    def test_truncated_inside_a_body_or_key_list(self) -> None:
        for hx in ("00 82 01 01 e0 12 02 15", "01 00 05 01 02", "06 01 04 00 08 aa bb cc dd", "00 00 00 ff"):
            with self.subTest(hx=hx), self.assertRaises(rf.TruncatedRpcFrame):
                rf.decode_frame(bytes.fromhex(hx))

    def test_encoder_refuses_bad_values(self) -> None:
        bad: list[object] = [
            Request(id=2**32, endpoint=0, deadline=0, body=b""),
            Request(id=-1, endpoint=0, deadline=0, body=b""),
            Request(id=0, endpoint=2**16, deadline=0, body=b""),
            Request(id=0, endpoint=0, deadline=2**63, body=b""),
            Request(id=0, endpoint=0, deadline=-(2**63) - 1, body=b""),
            Request(id=0, endpoint=0, deadline=1.5, body=b""),  # type: ignore[arg-type]
            Reply(id=True, body=b""),
            Failed(id=2**32, body=b""),
            Refused(id=0, why=5),  # type: ignore[arg-type]
            NoReply(id=-1),
            Cancel(id=2**32),
            Hello(version=2**16, max_in_flight=0, fingerprint=0, endpoints=[], topics=[]),
            Hello(version=1, max_in_flight=-1, fingerprint=0, endpoints=[], topics=[]),
            Hello(version=1, max_in_flight=0, fingerprint=2**32, endpoints=[], topics=[]),
            Hello(version=1, max_in_flight=0, fingerprint=0, endpoints=[2**32], topics=[]),
            Hello(version=1, max_in_flight=0, fingerprint=0, endpoints=[], topics=[-1]),
            Hello(version=1, max_in_flight=0, fingerprint=0, endpoints=[True], topics=[]),
            Hello(version=1, max_in_flight=0, fingerprint=0, endpoints=b"\xaa\xbb\xcc\xdd", topics=[]),  # type: ignore[arg-type]
            TimeQuery(t0=2**64),
            TimeQuery(t0=-1),
            TimeReply(t0=0, t1=2**64, t2=0),
            object(),
            Request,
        ]
        for value in bad:
            with self.subTest(value=value), self.assertRaises(ValueError):
                rf.encode_frame(value)  # type: ignore[arg-type]

    def test_encoder_takes_the_range_limits(self) -> None:
        for frame in (
            Request(id=2**32 - 1, endpoint=2**16 - 1, deadline=2**63 - 1, body=b""),
            Request(id=0, endpoint=0, deadline=-(2**63), body=b""),
            Refused(id=0, why=4),  # type: ignore[arg-type]
            TimeReply(t0=2**64 - 1, t1=2**64 - 1, t2=2**64 - 1),
            Hello(version=2**16 - 1, max_in_flight=2**16 - 1, fingerprint=2**32 - 1, endpoints=(0, 2**32 - 1), topics=[]),  # type: ignore[arg-type]
        ):
            with self.subTest(frame=frame):
                decoded = rf.decode_frame(rf.encode_frame(frame))
                self.assertEqual(rf.encode_frame(decoded), rf.encode_frame(frame))

    def test_random_bytes_raise_only_frame_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(1000):
                    data = bytes([r.randrange(10)]) + random_bytes(r, r.randrange(0, 30), zero_bias=0.3)
                    try:
                        frame = rf.decode_frame(data)
                    except rf.MalformedRpcFrame:
                        continue
                    # Whatever decodes re-encodes to a frame that decodes the same.
                    self.assertEqual(rf.decode_frame(rf.encode_frame(frame)), frame)

    def test_the_greeting_size_formula(self) -> None:
        """Section 12.2: a greeting is at most ``4 × endpoints + 4 × topics
        + 15`` bytes; 46 endpoints fit a 200-byte message. The formula holds
        whenever version and Q take one byte each (PROTOCOL_GAPS.md)."""
        for n_endpoints in (0, 1, 31, 32, 46, 47, 200, 4095, 4096):
            for n_topics in (0, 1, 31, 32, 40):
                with self.subTest(endpoints=n_endpoints, topics=n_topics):
                    hello = Hello(
                        version=1,
                        max_in_flight=127,
                        fingerprint=2**32 - 1,
                        endpoints=[2**32 - 1] * n_endpoints,
                        topics=[2**32 - 1] * n_topics,
                    )
                    self.assertLessEqual(len(rf.encode_frame(hello)), 4 * n_endpoints + 4 * n_topics + 15)
        big = Hello(version=1, max_in_flight=2**16 - 1, fingerprint=2**32 - 1, endpoints=[1] * 46, topics=[])
        self.assertLessEqual(len(rf.encode_frame(big)), 200)
        # Beyond it: large version and Q with two lists of 32 or more keys.
        over = Hello(version=2**16 - 1, max_in_flight=2**16 - 1, fingerprint=2**32 - 1, endpoints=[1] * 32, topics=[1] * 32)
        self.assertEqual(len(rf.encode_frame(over)), 4 * 64 + 15 + 1)

    def test_the_describe_endpoint_index(self) -> None:
        request = Request(id=1, endpoint=rf.DESCRIBE_ENDPOINT, deadline=0, body=b"")
        self.assertEqual(rf.encode_frame(request).hex(" "), "00 01 ff ff 03 00 00")
        self.assertEqual(rf.decode_frame(rf.encode_frame(request)), request)

    def test_the_family_fingerprint_fits_the_prologue(self) -> None:
        self.assertEqual(len(rf.RPC_FAMILY_FINGERPRINT), prologue.FINGERPRINT_LEN)
        self.assertEqual(rf.RPC_FAMILY_FINGERPRINT.hex(), "e6d4bdeaf275080b")
        self.assertEqual(rf.ENVELOPE_VERSION, 2)


class ClockSamples(unittest.TestCase):
    def test_a_peer_ahead(self) -> None:
        # Sent at 100, arrived at the peer's 1100, answered at 1105, back at 120.
        self.assertEqual(rf.clock_sample(100, 1100, 1105, 120), (992, 15))

    def test_a_peer_behind_rounds_toward_minus_infinity(self) -> None:
        # (1000 - 5000 + 1002 - 5011) / 2 = -4004.5: -4005, not -4004.
        self.assertEqual(rf.clock_sample(5000, 1000, 1002, 5011), (-4005, 9))
        self.assertEqual(rf.clock_sample(5000, 1000, 1002, 5010), (-4004, 8))
        self.assertEqual(rf.clock_sample(10, 9, 9, 11), (-2, 1))  # -1.5

    def test_same_clocks_and_no_delay(self) -> None:
        self.assertEqual(rf.clock_sample(7, 7, 7, 7), (0, 0))
        self.assertEqual(rf.clock_sample(0, 2**64 - 1, 2**64 - 1, 0), (2**64 - 1, 0))

    def test_impossible_readings_are_dropped(self) -> None:
        # The peer claims it held the query longer than the round trip took.
        self.assertIsNone(rf.clock_sample(0, 10, 30, 5))
        self.assertIsNone(rf.clock_sample(10, 5, 6, 9), "t3 < t0")
        self.assertIsNone(rf.clock_sample(0, 6, 5, 9), "t2 < t1")

    def test_error_bound(self) -> None:
        # ceil(rtt / 2) + 3.
        for rtt, bound in ((0, 3), (1, 4), (2, 4), (9, 8), (10, 8), (15, 11), (-3, 2)):
            with self.subTest(rtt=rtt):
                self.assertEqual(rf.error_bound(rtt), bound)
        with self.assertRaises(ValueError):
            rf.error_bound(1.5)  # type: ignore[arg-type]

    def test_readings_must_be_u64(self) -> None:
        for args in ((-1, 0, 0, 0), (0, 2**64, 0, 0), (0, 0, True, 0), (0, 0, 0, 1.0)):
            with self.subTest(args=args), self.assertRaises(ValueError):
                rf.clock_sample(*args)  # type: ignore[arg-type]

    def test_the_true_offset_is_within_the_bound(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(300):
                    offset = r.randrange(-(10**9), 10**9)
                    there, hold, back = r.randrange(0, 500), r.randrange(0, 50), r.randrange(0, 500)
                    t0 = r.randrange(10**9, 2 * 10**9)
                    t1 = t0 + there + offset
                    t2 = t1 + hold
                    t3 = t2 - offset + back
                    sample = rf.clock_sample(t0, t1, t2, t3)
                    assert sample is not None
                    got_offset, rtt = sample
                    self.assertEqual(rtt, there + back)
                    self.assertEqual(got_offset, math.floor(Fraction(t1 - t0 + t2 - t3, 2)))
                    self.assertLess(abs(got_offset - offset), rf.error_bound(rtt))


class DescribeReplies(unittest.TestCase):
    def test_known_encodings(self) -> None:
        cases: list[tuple[list[DescribeEntry], str]] = [
            ([], "00"),
            ([DescribeEntry(EntryKind.ENDPOINT, 0xDDCCBBAA, "add")], "01 00 aa f7 b2 ee 0d 03 61 64 64"),
            (
                [DescribeEntry(EntryKind.ENDPOINT, 1, ""), DescribeEntry(EntryKind.TOPIC, 300, "é")],
                "02 00 01 00 01 ac 02 02 c3 a9",
            ),
        ]
        for entries, hx in cases:
            with self.subTest(entries=entries):
                self.assertEqual(rf.encode_describe_reply(entries).hex(" "), hx)
                self.assertEqual(rf.decode_describe_reply(bytes.fromhex(hx)), entries)

    def test_random_replies_round_trip_and_every_prefix_is_truncated(self) -> None:
        names = ("", "a", "calls::add", "ünïcødé", "x" * 130)
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(50):
                    entries = [
                        DescribeEntry(r.choice(list(EntryKind)), u32(r), r.choice(names))
                        for _ in range(r.choice((0, 1, 2, 5, 130)))
                    ]
                    body = rf.encode_describe_reply(iter(entries))
                    self.assertEqual(rf.decode_describe_reply(body), entries)
                    for cut in sorted({0, len(body) - 1, r.randrange(len(body))}):
                        with self.assertRaises(rf.TruncatedDescribeReply):
                            rf.decode_describe_reply(body[:cut])
                    with self.assertRaises(rf.MalformedDescribeReply) as cm:
                        rf.decode_describe_reply(body + b"\x00")
                    self.assertNotIsInstance(cm.exception, rf.TruncatedDescribeReply)

    def test_malformed_replies(self) -> None:
        for hx in (
            "01 02 01 00",  # kind 2
            "01 02",  # kind 2, then the end: the kind is checked first
            "01 00 01 02 ff fe",  # name not UTF-8
            "01 00 ff ff ff ff 10 00",  # key over u32
            "00 00",  # bytes left over
        ):
            with self.subTest(hx=hx), self.assertRaises(rf.MalformedDescribeReply) as cm:
                rf.decode_describe_reply(bytes.fromhex(hx))
            self.assertNotIsInstance(cm.exception, rf.TruncatedDescribeReply)

    def test_a_huge_count_is_truncated_not_slow(self) -> None:
        with self.assertRaises(rf.TruncatedDescribeReply):
            rf.decode_describe_reply(bytes.fromhex("ff ff ff ff 0f 00 01 00"))

    def test_random_bytes_raise_only_describe_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(500):
                    data = bytes([r.randrange(4)]) + random_bytes(r, r.randrange(0, 20), zero_bias=0.3)
                    try:
                        entries = rf.decode_describe_reply(data)
                    except rf.MalformedDescribeReply:
                        continue
                    self.assertEqual(rf.decode_describe_reply(rf.encode_describe_reply(entries)), entries)

    def test_encoder_refuses_bad_values(self) -> None:
        for bad in (
            [DescribeEntry(2, 1, "a")],  # type: ignore[arg-type]
            [DescribeEntry(EntryKind.TOPIC, 2**32, "a")],
            [DescribeEntry(EntryKind.TOPIC, -1, "a")],
            [DescribeEntry(EntryKind.TOPIC, 1, b"a")],  # type: ignore[arg-type]
            [("endpoint", 1, "a")],
        ):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                rf.encode_describe_reply(bad)  # type: ignore[arg-type]

    def test_the_reserved_key_is_carried(self) -> None:
        # Key 0 is reserved for the describe call; the codec does not police
        # it (PROTOCOL_GAPS.md).
        entries = [DescribeEntry(EntryKind.ENDPOINT, rf.DESCRIBE_KEY, "describe")]
        self.assertEqual(rf.decode_describe_reply(rf.encode_describe_reply(entries)), entries)


class Fingerprint(unittest.TestCase):
    def test_fnv1a32_vectors(self) -> None:
        self.assertEqual(rf.fnv1a32(b""), 0x811C9DC5)
        self.assertEqual(rf.fnv1a32(b"a"), 0xE40C292C)
        self.assertEqual(rf.fnv1a32(b"foobar"), 0xBF9CF968)

    def test_over_the_little_endian_keys_in_order(self) -> None:
        self.assertEqual(rf.service_fingerprint([]), rf.FNV_OFFSET_BASIS)
        self.assertEqual(rf.service_fingerprint([0xDDCCBBAA]), rf.fnv1a32(bytes.fromhex("aa bb cc dd")))
        self.assertEqual(rf.service_fingerprint([0xDDCCBBAA]), 0x5B8C0245)
        foob, ar = int.from_bytes(b"foob", "little"), int.from_bytes(b"ar\x00\x00", "little")
        self.assertEqual(rf.service_fingerprint([foob]), rf.fnv1a32(b"foob"))
        self.assertEqual(rf.service_fingerprint([foob, ar]), rf.fnv1a32(b"foobar\x00\x00"))
        self.assertNotEqual(rf.service_fingerprint([1, 2]), rf.service_fingerprint([2, 1]))
        self.assertEqual(rf.service_fingerprint(iter([1, 2])), rf.fnv1a32(bytes.fromhex("01000000 02000000")))

    def test_the_hello_example_carries_its_own_fingerprint(self) -> None:
        """The document's rpc-hello: the key 0xddccbbaa and its FNV-1a
        fingerprint (G17, fixed in the document)."""
        hello = rf.decode_frame(bytes.fromhex("06 01 04 c5 84 b0 dc 05 04 aa bb cc dd 00"))
        assert isinstance(hello, Hello)
        self.assertEqual(hello.fingerprint, rf.service_fingerprint(hello.endpoints))

    def test_keys_must_be_u32(self) -> None:
        for bad in ([2**32], [-1], [True], ["a"]):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                rf.service_fingerprint(bad)  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()


class TopicFrames(unittest.TestCase):
    """Frames 9 to 11 (section 12.5)."""

    def test_known_encodings_and_round_trips(self) -> None:
        cases = [
            (rf.Subscribe(topic=0, window=8), "09 00 08"),
            (rf.Sample(topic=1, seq=300, dup=True, body=b"\x07"), "0a 01 ac 02 01 01 07"),
            (rf.Sample(topic=0, seq=0, dup=False, body=b""), "0a 00 00 00 00"),
            (rf.Credit(topic=1, next=301), "0b 01 ad 02"),
        ]
        for frame, wire in cases:
            with self.subTest(frame=frame):
                self.assertEqual(rf.encode_frame(frame).hex(" "), wire)
                self.assertEqual(rf.decode_frame(bytes.fromhex(wire)), frame)

    def test_malformed_topic_frames_are_typed_errors(self) -> None:
        for wire in ("0a 00 00 02 00", "09 00", "0b 01", "0c"):
            with self.subTest(wire=wire), self.assertRaises(rf.MalformedRpcFrame):
                rf.decode_frame(bytes.fromhex(wire))
