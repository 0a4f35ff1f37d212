"""The framed link codec of PROTOCOL.md section 2."""

from __future__ import annotations

import random
import unittest

from vox_embedded import framing
from vox_embedded.framing import (
    CrcMismatch,
    EndOfStream,
    FrameDecoder,
    FramingError,
    MalformedFrame,
    OversizedFrame,
    Payload,
)

from .support import chunked, random_bytes, rng, seeds


def feed_all(decoder: FrameDecoder, r: random.Random, stream: bytes) -> list[framing.DecodeEvent]:
    """Feeds ``stream`` in random chunks and collects the events."""
    events: list[framing.DecodeEvent] = []
    for chunk in chunked(r, stream):
        events += decoder.feed(chunk)
    return events


def nonzero(r: random.Random, n: int) -> bytes:
    """``n`` random bytes without ``00`` (the longest COBS encodings)."""
    return bytes(r.randrange(1, 256) for _ in range(n))


def random_payload(r: random.Random, mtu: int) -> bytes:
    """A payload of at most ``mtu`` bytes, often of an edge length."""
    n = min(mtu, r.choice((0, 1, mtu, r.randrange(mtu + 1), r.randrange(mtu + 1))))
    return random_bytes(r, n, zero_bias=r.choice((0.0, 0.05, 0.5, 1.0)))


class Cobs(unittest.TestCase):
    def test_known_encodings(self) -> None:
        cases = {
            "": "01",
            "00": "01 01",
            "00 00": "01 01 01",
            "11 22 00 33": "03 11 22 02 33",
            "11 22 33 44": "05 11 22 33 44",
            "11 00 00 00": "02 11 01 01 01",
        }
        for raw, enc in cases.items():
            with self.subTest(raw=raw):
                self.assertEqual(framing.cobs_encode(bytes.fromhex(raw)).hex(" "), enc)
                self.assertEqual(framing.cobs_decode(bytes.fromhex(enc)).hex(" "), raw)

    def test_full_blocks(self) -> None:
        data = bytes(range(1, 255))  # 254 non-zero bytes
        self.assertEqual(framing.cobs_encode(data), b"\xff" + data)
        self.assertEqual(framing.cobs_encode(data + b"\x00"), b"\xff" + data + b"\x01\x01")
        self.assertEqual(framing.cobs_encode(data + b"\x07"), b"\xff" + data + b"\x02\x07")
        # A trailing empty block after a full one decodes the same.
        self.assertEqual(framing.cobs_decode(b"\xff" + data + b"\x01"), data)

    def test_malformed(self) -> None:
        for enc in ("02", "05 11 22", "ff 01", "03 11 00"):
            with self.subTest(enc=enc), self.assertRaises(MalformedFrame):
                framing.cobs_decode(bytes.fromhex(enc))

    def test_random_round_trip(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(100):
                    data = random_bytes(r, r.randrange(0, 800), zero_bias=r.choice((0.0, 0.01, 0.3, 1.0)))
                    enc = framing.cobs_encode(data)
                    self.assertNotIn(0, enc)
                    self.assertEqual(framing.cobs_decode(enc), data)


class Encoding(unittest.TestCase):
    def test_overhead_is_within_the_documented_bound(self) -> None:
        r = rng(7)
        for n in list(range(0, 1100)) + [4096, 65535]:
            with self.subTest(n=n):
                for payload in (nonzero(r, n), bytes(n)):
                    frame = framing.encode_frame(payload)
                    self.assertLessEqual(len(frame) - n, -(-n // 254) + 6)
                    self.assertLessEqual(len(frame), framing.max_frame_len(n))
                    self.assertEqual(frame[-1], 0)
                    self.assertNotIn(0, frame[:-1])

    def test_the_crc_is_little_endian(self) -> None:
        frame = framing.encode_frame(b"123456789")
        decoded = framing.cobs_decode(frame[:-1])
        self.assertEqual(decoded, b"123456789" + bytes.fromhex("26 39 f4 cb"))


class Decoding(unittest.TestCase):
    def test_round_trips_under_arbitrary_chunking(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = r.choice((0, 1, 5, 250, 251, 254, 300, 508, 1000))
                payloads = [random_payload(r, mtu) for _ in range(r.randrange(1, 40))]
                stream = bytearray(framing.STREAM_START)
                for p in payloads:
                    stream += framing.encode_frame(p)
                    if r.random() < 0.2:
                        stream += b"\x00" * r.randrange(1, 4)  # lone 00s are skipped
                stream += framing.END_OF_STREAM
                decoder = FrameDecoder(mtu)
                events = feed_all(decoder, r, bytes(stream))
                self.assertEqual(events, [Payload(p) for p in payloads] + [EndOfStream()])
                self.assertFalse(decoder.in_frame)

    def test_the_mtu_is_enforced(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = r.randrange(0, 700)
                decoder = FrameDecoder(mtu)
                self.assertEqual(decoder.feed(framing.STREAM_START), [])
                for make in (nonzero, lambda r, n: bytes(n), lambda r, n: random_bytes(r, n, 0.1)):
                    fits = make(r, mtu)
                    self.assertEqual(decoder.feed(framing.encode_frame(fits)), [Payload(fits)])
                    too_big = make(r, mtu + 1)
                    events = feed_all(decoder, r, framing.encode_frame(too_big))
                    self.assertEqual(len(events), 1, events)
                    self.assertIsInstance(events[0], OversizedFrame)
                    # The decoder is in step again at the next frame.
                    self.assertEqual(decoder.feed(framing.encode_frame(fits)), [Payload(fits)])

    def test_garbage_bound(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = r.randrange(0, 1200)
                decoder = FrameDecoder(mtu)
                limit = decoder.run_limit
                # The longest legal frame, less its delimiter: the document's
                # bound (payload plus ceil(mtu / 254) + 6, delimiter included).
                self.assertEqual(limit, mtu + -(-mtu // 254) + 5)
                longest = framing.encode_frame(nonzero(r, mtu))
                self.assertLessEqual(len(longest) - 1, limit)
                lead = r.random() < 0.5  # before the first delimiter too
                if lead:
                    self.assertEqual(decoder.feed(framing.STREAM_START), [])
                garbage = nonzero(r, 3 * (limit + 1) + r.randrange(limit + 1))
                seen = 0
                fed = 0
                for chunk in chunked(r, garbage, max_chunk=limit + 10):
                    events = decoder.feed(chunk)
                    self.assertTrue(all(isinstance(e, OversizedFrame) for e in events), events)
                    seen += len(events)
                    fed += len(chunk)
                    # One report per bound's worth of garbage, at the byte that crosses it.
                    self.assertEqual(seen, fed // (limit + 1))
                self.assertEqual(seen, len(garbage) // (limit + 1))
                self.assertLessEqual(len(decoder._buf), limit)
                # The garbage ends at a delimiter; the next frame is read.
                payload = random_bytes(r, r.randrange(mtu + 1))
                self.assertEqual(decoder.feed(b"\x00" + framing.encode_frame(payload)), [Payload(payload)])

    def test_the_error_comes_at_the_byte_that_crosses_the_bound(self) -> None:
        decoder = FrameDecoder(10)
        limit = decoder.run_limit
        self.assertEqual(decoder.feed(b"\x00" + b"\x05" * limit), [])
        events = decoder.feed(b"\x05")
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], OversizedFrame)
        self.assertEqual(decoder.feed(b"\x05" * limit), [])
        self.assertEqual(len(decoder.feed(b"\x05")), 1)

    def test_corrupted_frames_are_never_delivered(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = r.choice((8, 64, 300))
                payloads = [random_payload(r, mtu) for _ in range(r.randrange(2, 12))]
                frames = [framing.encode_frame(p) for p in payloads]
                bad = r.randrange(len(frames))
                frame = bytearray(frames[bad])
                at = r.randrange(len(frame) - 1)  # not the delimiter
                if r.random() < 0.5:
                    frame[at] ^= 1 << r.randrange(8)
                else:
                    frame[at] ^= r.randrange(1, 256)
                frames[bad] = bytes(frame)
                decoder = FrameDecoder(mtu)
                events = feed_all(decoder, r, framing.STREAM_START + b"".join(frames))
                delivered = [e.data for e in events if isinstance(e, Payload)]
                self.assertEqual(delivered, payloads[:bad] + payloads[bad + 1 :])
                errors = [e for e in events if isinstance(e, FramingError)]
                self.assertGreaterEqual(len(errors), 1, events)

    def test_crc_mismatch_is_typed(self) -> None:
        frame = bytearray(framing.encode_frame(b"\x01\x02\x03"))
        frame[2] ^= 0x40
        events = FrameDecoder(8).feed(b"\x00" + bytes(frame))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], CrcMismatch)

    def test_malformed_frames(self) -> None:
        for wire in ("05 11 00", "02 11 00", "01 01 00", "04 11 22 33 00", "ff 11 00"):
            with self.subTest(wire=wire):
                events = FrameDecoder(300).feed(b"\x00" + bytes.fromhex(wire))
                self.assertEqual(len(events), 1, events)
                self.assertIsInstance(events[0], MalformedFrame)


class Attaching(unittest.TestCase):
    """A fresh decoder attached to a stream at an unknown position."""

    def test_a_whole_first_frame_without_a_leading_delimiter_is_delivered(self) -> None:
        decoder = FrameDecoder(16)
        self.assertTrue(decoder.tentative)
        self.assertEqual(decoder.feed(framing.encode_frame(b"hi")), [Payload(b"hi")])
        self.assertFalse(decoder.tentative)

    def test_a_bad_tentative_frame_is_dropped_silently(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = 64
                earlier = framing.encode_frame(random_bytes(r, r.randrange(1, mtu + 1), 0.1))
                tail = earlier[r.randrange(1, len(earlier)) :]  # ends with its delimiter
                payloads = [random_payload(r, mtu) for _ in range(3)]
                stream = tail + b"".join(framing.encode_frame(p) for p in payloads)
                events = feed_all(FrameDecoder(mtu), r, stream)
                self.assertEqual(events[-3:], [Payload(p) for p in payloads])
                # The tail is either dropped or, by chance whole and good, delivered.
                self.assertTrue(all(isinstance(e, Payload) for e in events), events)

    def test_only_the_first_frame_is_tentative(self) -> None:
        bad = bytearray(framing.encode_frame(b"abc"))
        bad[1] ^= 1
        # Without a leading delimiter: the first (bad) frame is dropped quietly.
        self.assertEqual(FrameDecoder(8).feed(bytes(bad) + framing.encode_frame(b"x")), [Payload(b"x")])
        # After the sender's leading 00 it is an error.
        events = FrameDecoder(8).feed(b"\x00" + bytes(bad))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], CrcMismatch)

    def test_tentative_close_marker_and_oversize_are_dropped(self) -> None:
        self.assertEqual(FrameDecoder(8).feed(framing.END_OF_STREAM), [])
        big = framing.encode_frame(bytes(9))
        self.assertEqual(FrameDecoder(8).feed(big + framing.encode_frame(b"ok")), [Payload(b"ok")])

    def test_garbage_before_the_first_delimiter_is_bounded_too(self) -> None:
        decoder = FrameDecoder(4)
        events = decoder.feed(b"\x07" * (decoder.run_limit + 1))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], OversizedFrame)
        # Discarding up to the next 00; the frame after it is not tentative.
        bad = bytearray(framing.encode_frame(b"abc"))
        bad[1] ^= 1
        events = decoder.feed(b"\x07\x07\x00" + bytes(bad))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], CrcMismatch)


class RandomInput(unittest.TestCase):
    def test_random_bytes_yield_only_events_and_package_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                mtu = r.choice((0, 1, 4, 16, 255, 600))
                decoder = FrameDecoder(mtu)
                stream = random_bytes(r, r.randrange(0, 5000), zero_bias=r.choice((0.0, 0.002, 0.05, 0.3)))
                if r.random() < 0.5:
                    # Some real frames in the noise.
                    parts = [stream[i : i + 200] for i in range(0, len(stream), 200)]
                    stream = b"".join(p + framing.encode_frame(random_payload(r, mtu)) for p in parts)
                for chunk in chunked(r, stream, max_chunk=300):
                    for e in decoder.feed(chunk):
                        self.assertIsInstance(e, (Payload, EndOfStream, FramingError))
                        if isinstance(e, Payload):
                            self.assertLessEqual(len(e.data), mtu)
                    self.assertLessEqual(len(decoder._buf), decoder.run_limit)

    def test_cobs_decode_raises_only_framing_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(300):
                    data = random_bytes(r, r.randrange(0, 40), zero_bias=0.1)
                    try:
                        framing.cobs_decode(data, limit=r.choice((None, 4, 20)))
                    except FramingError:
                        pass


if __name__ == "__main__":
    unittest.main()
