"""The stable frames of PROTOCOL.md sections 5 and 6."""

from __future__ import annotations

import random
import unittest

from vox_embedded import stable_frames as sf
from vox_embedded.stable_frames import Ack, Close, Counter, Data, Hello, Reject, RejectReason, Window

from .support import random_bytes, rng, seeds


def u32(r: random.Random) -> int:
    """A u32 favouring the varint length boundaries."""
    return r.choice((0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 2**31, 2**32 - 1, r.getrandbits(r.randrange(1, 33))))


def counter(r: random.Random) -> Counter:
    """A data frame's seq or ack: a low byte or a whole u32."""
    return Counter(r.randrange(256), low=True) if r.random() < 0.5 else Counter(u32(r))


def header_len(frame: sf.StableFrame, wire: bytes) -> int:
    """Bytes before the message of a data frame (all of any other)."""
    return len(wire) - len(frame.msg) if isinstance(frame, Data) else len(wire)


def random_frame(r: random.Random) -> sf.StableFrame:
    """Any frame, with any field values."""
    w = Window(u32(r), u32(r))
    kind = r.randrange(5)
    if kind == 0:
        key = random_bytes(r, sf.KEY_LEN) if r.random() < 0.5 else None
        return Hello(key=key, next_expected=u32(r), window=w)
    if kind == 1:
        return Reject(r.choice(list(RejectReason)))
    if kind == 2:
        return Data(
            seq=counter(r),
            ack=counter(r),
            window=w if r.random() < 0.5 else None,
            msg=random_bytes(r, r.choice((0, 1, 5, 127, 128, 300))),
        )
    if kind == 3:
        return Ack(ack=u32(r), next=u32(r), window=w, done=r.random() < 0.5)
    return Close(seq=u32(r), ack=u32(r))


class Frames(unittest.TestCase):
    def test_random_frames_round_trip_and_every_prefix_is_truncated(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(200):
                    frame = random_frame(r)
                    wire = sf.encode_frame(frame)
                    self.assertEqual(sf.decode_frame(wire), frame)
                    # A data frame's message fills the payload: a cut inside
                    # it is a shorter message, a cut in the header truncates.
                    header = header_len(frame, wire)
                    for cut in sorted({0, header - 1, r.randrange(header)}):
                        with self.assertRaises(sf.TruncatedStableFrame):
                            sf.decode_frame(wire[:cut])
                    if isinstance(frame, Data):
                        self.assertEqual(sf.decode_frame(wire + b"\x00").msg, frame.msg + b"\x00")
                        continue
                    with self.assertRaises(sf.MalformedStableFrame) as cm:
                        sf.decode_frame(wire + b"\x00")
                    self.assertNotIsInstance(cm.exception, sf.TruncatedStableFrame)

    def test_unknown_variants_and_reasons(self) -> None:
        # 02 was version 1's data frame; 88 sets a reserved data flag.
        for hx in ("05", "7f 00", "02 05 03 08 80 04 00", "88 01 02", "c0 01 02", "01 03", "01 80 01"):
            with self.subTest(hx=hx), self.assertRaises(sf.MalformedStableFrame) as cm:
                sf.decode_frame(bytes.fromhex(hx))
            self.assertNotIsInstance(cm.exception, sf.TruncatedStableFrame)

    def test_bad_tags_and_varints(self) -> None:
        for hx in (
            "00 02 00 00 00",  # option tag 2
            "03 00 00 00 00 02",  # done = 2
            "04 ff ff ff ff 10 00",  # seq over u32
            "04 80 80 80 80 80 00 00",  # six-byte varint
        ):
            with self.subTest(hx=hx), self.assertRaises(sf.MalformedStableFrame) as cm:
                sf.decode_frame(bytes.fromhex(hx))
            self.assertNotIsInstance(cm.exception, sf.TruncatedStableFrame)

    def test_encoder_refuses_bad_values(self) -> None:
        with self.assertRaises(ValueError):
            sf.encode_frame(Hello(key=b"short", next_expected=0, window=Window(0, 0)))
        with self.assertRaises(ValueError):
            sf.encode_frame(Close(seq=2**32, ack=0))
        with self.assertRaises(ValueError):
            sf.encode_frame(Data(seq=Counter(0), ack=Counter(-1), window=Window(0, 0), msg=b""))
        with self.assertRaises(ValueError):
            sf.encode_frame(Data(seq=Counter(256, low=True), ack=Counter(0), window=None, msg=b""))
        with self.assertRaises(ValueError):
            sf.encode_frame(object())  # type: ignore[arg-type]

    def test_random_bytes_raise_only_frame_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(1000):
                    data = bytes([r.choice((r.randrange(7), r.randrange(0x80, 0x100)))]) + random_bytes(r, r.randrange(0, 30))
                    try:
                        frame = sf.decode_frame(data)
                    except sf.MalformedStableFrame:
                        continue
                    # Whatever decodes re-encodes to a frame that decodes the same.
                    self.assertEqual(sf.decode_frame(sf.encode_frame(frame)), frame)


class Counters(unittest.TestCase):
    def test_low_bytes_restore_within_their_span(self) -> None:
        """Section 6: a low-byte seq names the number within -128..=127 of
        the expected one, a low-byte ack the number up to 255 below the
        receiver's sent_high, across the wrap."""
        r = rng(7)
        for base in [0, 1, 127, 128, 255, 256, 2**31, 2**32 - 1] + [r.getrandbits(32) for _ in range(50)]:
            for ahead in range(-128, 128):
                seq = (base + ahead) & 0xFFFF_FFFF
                self.assertEqual(Counter.compact(seq, True).resolve_seq(base), seq)
            for behind in range(256):
                ack = (base - behind) & 0xFFFF_FFFF
                self.assertEqual(Counter.compact(ack, True).resolve_ack(base), ack)
                self.assertEqual(Counter.compact(ack, False).resolve_ack(base), ack)

    def test_the_common_data_header_is_three_bytes(self) -> None:
        frame = Data(seq=Counter(7, low=True), ack=Counter(9, low=True), window=None, msg=bytes(300))
        self.assertEqual(len(sf.encode_frame(frame)) - 300, 3)


class SequenceOrder(unittest.TestCase):
    def test_wrapping_comparison(self) -> None:
        self.assertTrue(sf.seq_before(2**32 - 1, 0))
        self.assertFalse(sf.seq_before(0, 2**32 - 1))
        self.assertFalse(sf.seq_before(5, 5))
        self.assertTrue(sf.seq_before(1, 2))
        self.assertTrue(sf.seq_before(0, 2**31 - 1))
        self.assertFalse(sf.seq_before(0, 2**31))


if __name__ == "__main__":
    unittest.main()
