"""The encoding primitives of PROTOCOL.md section 1."""

from __future__ import annotations

import unittest

from vox_embedded import postcard
from vox_embedded.errors import VoxError
from vox_embedded.postcard import MalformedInput, Reader, TruncatedInput

from .support import random_bytes, rng, seeds


class Varints(unittest.TestCase):
    def test_known_encodings(self) -> None:
        cases = {
            0: "00",
            1: "01",
            0x7F: "7f",
            0x80: "80 01",
            200: "c8 01",
            300: "ac 02",
            512: "80 04",
            0x3FFF: "ff 7f",
            0x4000: "80 80 01",
            0xFFFF: "ff ff 03",
        }
        for value, hx in cases.items():
            with self.subTest(value=value):
                self.assertEqual(postcard.encode_u16(value).hex(" "), hx)
                self.assertEqual(postcard.encode_u32(value).hex(" "), hx)
                self.assertEqual(Reader(bytes.fromhex(hx)).u16(), value)
                self.assertEqual(postcard.varint_len(value), len(bytes.fromhex(hx)))
        self.assertEqual(postcard.encode_u32(2**32 - 1).hex(" "), "ff ff ff ff 0f")
        self.assertEqual(Reader(bytes.fromhex("ff ff ff ff 0f")).u32(), 2**32 - 1)

    def test_limits_of_the_widths(self) -> None:
        # u16: at most 3 bytes, the third at most 03.
        for hx in ("ff ff 04", "80 80 80 00", "ff ff 83"):
            with self.subTest(hx=hx), self.assertRaises(MalformedInput):
                Reader(bytes.fromhex(hx)).u16()
        # u32: at most 5 bytes, the fifth at most 0f.
        for hx in ("ff ff ff ff 10", "80 80 80 80 80 00", "ff ff ff ff 8f"):
            with self.subTest(hx=hx), self.assertRaises(MalformedInput):
                Reader(bytes.fromhex(hx)).u32()
        self.assertEqual(Reader(bytes.fromhex("80 80 80 80 00")).u32(), 0)

    def test_non_minimal_encodings_are_read(self) -> None:
        # The document is silent; the Rust peer reads them (PROTOCOL_GAPS.md).
        self.assertEqual(Reader(bytes.fromhex("81 00")).u16(), 1)
        self.assertEqual(Reader(bytes.fromhex("80 80 00")).u32(), 0)

    def test_truncation(self) -> None:
        for hx in ("", "80", "ff ff", "80 80 80 80"):
            with self.subTest(hx=hx), self.assertRaises(TruncatedInput):
                Reader(bytes.fromhex(hx)).u32()

    def test_encoders_refuse_out_of_range_values(self) -> None:
        for bad in (-1, 2**16):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                postcard.encode_u16(bad)
        for bad in (-1, 2**32):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                postcard.encode_u32(bad)
        with self.assertRaises(ValueError):
            postcard.encode_u8(256)
        for bad in (-1, 2**64):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                postcard.encode_u64(bad)
        for bad in (-(2**63) - 1, 2**63):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                postcard.encode_i64(bad)
        for bad_type in (True, 1.0, "1"):
            with self.subTest(bad_type=bad_type), self.assertRaises(ValueError):
                postcard.encode_i64(bad_type)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            postcard.encode_varint(1, 8)
        with self.assertRaises(ValueError):
            Reader(b"\x00").varint(128)

    def test_random_values_round_trip(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(500):
                    bits = r.choice((16, 32, 64))
                    v = r.getrandbits(r.randrange(1, bits + 1))
                    enc = postcard.encode_varint(v, bits)
                    rd = Reader(enc + b"\x99")
                    self.assertEqual(rd.varint(bits), v)
                    self.assertEqual(rd.remaining, 1)


class SixtyFourBits(unittest.TestCase):
    """``u64`` and zigzag ``i64``, used by the rpc frames (section 12.1)."""

    def test_known_u64_encodings(self) -> None:
        cases = {
            0: "00",
            0x7F: "7f",
            2**32 - 1: "ff ff ff ff 0f",
            2**32: "80 80 80 80 10",
            2**56: "80 80 80 80 80 80 80 80 01",
            2**63: "80 80 80 80 80 80 80 80 80 01",
            2**64 - 1: "ff ff ff ff ff ff ff ff ff 01",
        }
        for value, hx in cases.items():
            with self.subTest(value=value):
                self.assertEqual(postcard.encode_u64(value).hex(" "), hx)
                self.assertEqual(Reader(bytes.fromhex(hx)).u64(), value)
                self.assertEqual(postcard.varint_len(value), len(bytes.fromhex(hx)))

    def test_known_i64_encodings(self) -> None:
        cases = {
            0: "00",
            -1: "01",
            1: "02",
            -2: "03",
            63: "7e",
            -64: "7f",
            64: "80 01",
            1200: "e0 12",
            -1200: "df 12",
            2**63 - 1: "fe ff ff ff ff ff ff ff ff 01",
            -(2**63): "ff ff ff ff ff ff ff ff ff 01",
        }
        for value, hx in cases.items():
            with self.subTest(value=value):
                self.assertEqual(postcard.encode_i64(value).hex(" "), hx)
                self.assertEqual(Reader(bytes.fromhex(hx)).i64(), value)

    def test_zigzag_is_the_documented_formula(self) -> None:
        for n in (0, 1, -1, 2, -2, 1200, -1200, 2**62, -(2**62), 2**63 - 1, -(2**63)):
            with self.subTest(n=n):
                # (n << 1) ^ (n >> 63) on 64-bit two's complement.
                expected = ((n << 1) ^ (n >> 63)) & postcard.U64_MAX
                self.assertEqual(postcard.zigzag_encode(n), expected)
                self.assertEqual(postcard.zigzag_decode(expected), n)
        with self.assertRaises(ValueError):
            postcard.zigzag_decode(2**64)
        with self.assertRaises(ValueError):
            postcard.zigzag_decode(-1)

    def test_limits_of_the_width(self) -> None:
        # u64: at most 10 bytes, the tenth at most 01.
        for hx in (
            "ff ff ff ff ff ff ff ff ff 02",
            "80 80 80 80 80 80 80 80 80 80 00",
            "ff ff ff ff ff ff ff ff ff 81",
        ):
            with self.subTest(hx=hx):
                with self.assertRaises(MalformedInput):
                    Reader(bytes.fromhex(hx)).u64()
                with self.assertRaises(MalformedInput):
                    Reader(bytes.fromhex(hx)).i64()
        self.assertEqual(Reader(bytes.fromhex("80 80 80 80 80 80 80 80 80 00")).u64(), 0)
        for hx in ("", "80", "ff ff ff ff ff ff ff ff ff"):
            with self.subTest(hx=hx):
                with self.assertRaises(TruncatedInput):
                    Reader(bytes.fromhex(hx)).u64()
                with self.assertRaises(TruncatedInput):
                    Reader(bytes.fromhex(hx)).i64()

    def test_random_values_round_trip(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(500):
                    n = r.getrandbits(r.randrange(1, 65))
                    s = n - (1 << 63) if r.random() < 0.5 else n >> 1
                    if r.random() < 0.5:
                        s = -s - 1
                    rd = Reader(postcard.encode_u64(n) + postcard.encode_i64(s) + b"\x99")
                    self.assertEqual(rd.u64(), n)
                    self.assertEqual(rd.i64(), s)
                    self.assertEqual(rd.remaining, 1)


class OtherPrimitives(unittest.TestCase):
    def test_bool_and_option_tags(self) -> None:
        self.assertEqual(postcard.encode_bool(True), b"\x01")
        self.assertEqual(postcard.encode_bool(False), b"\x00")
        self.assertIs(Reader(b"\x01").bool(), True)
        self.assertIs(Reader(b"\x00").option_tag(), False)
        for b in (2, 0x80, 0xFF):
            with self.subTest(b=b), self.assertRaises(MalformedInput):
                Reader(bytes([b])).bool()
        with self.assertRaises(TruncatedInput):
            Reader(b"").bool()

    def test_fixed_arrays_and_byte_strings(self) -> None:
        r = Reader(b"\x03abcxyz")
        self.assertEqual(r.byte_slice(), b"abc")
        self.assertEqual(r.fixed(3), b"xyz")
        r.finish()
        self.assertEqual(postcard.encode_byte_slice(b"abc"), b"\x03abc")
        self.assertEqual(postcard.encode_byte_slice(b""), b"\x00")
        with self.assertRaises(TruncatedInput):
            Reader(b"\x04abc").byte_slice()
        with self.assertRaises(TruncatedInput):
            Reader(b"ab").fixed(3)
        with self.assertRaises(TruncatedInput):
            Reader(b"\xff\xff\xff\xff\x0f").byte_slice()

    def test_leftover_bytes_are_malformed(self) -> None:
        r = Reader(b"\x01\x02")
        r.u8()
        with self.assertRaises(MalformedInput):
            r.finish()

    def test_random_bytes_raise_only_postcard_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                for _ in range(300):
                    data = random_bytes(r, r.randrange(0, 12))
                    rd = Reader(data)
                    try:
                        for _ in range(8):
                            op = r.randrange(8)
                            if op == 0:
                                rd.u8()
                            elif op == 1:
                                rd.u16()
                            elif op == 2:
                                rd.u32()
                            elif op == 3:
                                rd.bool()
                            elif op == 4:
                                rd.byte_slice()
                            elif op == 5:
                                rd.u64()
                            elif op == 6:
                                rd.i64()
                            else:
                                rd.fixed(r.randrange(0, 5))
                        rd.finish()
                    except postcard.PostcardError as e:
                        self.assertIsInstance(e, VoxError)


if __name__ == "__main__":
    unittest.main()
