"""The stable frames of PROTOCOL.md sections 5 and 6."""

from __future__ import annotations

import random
import unittest

from vox_embedded import stable_frames as sf
from vox_embedded.stable_frames import Ack, Close, Data, Hello, Reject, RejectReason, Window

from .support import random_bytes, rng, seeds


def u32(r: random.Random) -> int:
    """A u32 favouring the varint length boundaries."""
    return r.choice((0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 2**31, 2**32 - 1, r.getrandbits(r.randrange(1, 33))))


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
        return Data(seq=u32(r), ack=u32(r), window=w, msg=random_bytes(r, r.choice((0, 1, 5, 127, 128, 300))))
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
                    for cut in sorted({0, len(wire) - 1, r.randrange(len(wire))}):
                        with self.assertRaises(sf.TruncatedStableFrame):
                            sf.decode_frame(wire[:cut])
                    with self.assertRaises(sf.MalformedStableFrame) as cm:
                        sf.decode_frame(wire + b"\x00")
                    self.assertNotIsInstance(cm.exception, sf.TruncatedStableFrame)

    def test_unknown_variants_and_reasons(self) -> None:
        for hx in ("05", "7f 00", "80 01", "01 03", "01 80 01"):
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
            sf.encode_frame(Data(seq=0, ack=-1, window=Window(0, 0), msg=b""))
        with self.assertRaises(ValueError):
            sf.encode_frame(object())  # type: ignore[arg-type]

    def test_random_bytes_raise_only_frame_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(1000):
                    data = bytes([r.randrange(7)]) + random_bytes(r, r.randrange(0, 30))
                    try:
                        frame = sf.decode_frame(data)
                    except sf.MalformedStableFrame:
                        continue
                    # Whatever decodes re-encodes to a frame that decodes the same.
                    self.assertEqual(sf.decode_frame(sf.encode_frame(frame)), frame)


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
