"""The prologue of PROTOCOL.md section 3."""

from __future__ import annotations

import unittest

from vox_embedded import prologue as p
from vox_embedded.prologue import Mode, Prologue, Role

from .support import random_bytes, rng, seeds

FP = bytes(range(1, 9))


class Encoding(unittest.TestCase):
    def test_every_mode_and_role_round_trips(self) -> None:
        for mode in Mode:
            for role in Role:
                with self.subTest(mode=mode, role=role):
                    pr = Prologue(mode, role, FP)
                    wire = pr.encode()
                    self.assertEqual(wire[:4], b"VOXE")
                    self.assertEqual(wire, b"VOXE" + bytes([p.PROTOCOL_VERSION, mode, role]) + FP)
                    self.assertEqual(p.decode_prologue(wire), pr)

    def test_encoder_refuses_bad_values(self) -> None:
        with self.assertRaises(ValueError):
            Prologue(Mode.BARE, Role.INITIATOR, b"short").encode()
        with self.assertRaises(ValueError):
            Prologue(Mode.BARE, Role.INITIATOR, FP, version=2**16).encode()

    def test_longest_prologue(self) -> None:
        wire = Prologue(Mode.BARE, Role.INITIATOR, FP, version=0xFFFF).encode()
        self.assertEqual(len(wire), p.MAX_PROLOGUE_LEN)


class Decoding(unittest.TestCase):
    good = Prologue(Mode.BARE, Role.INITIATOR, FP).encode()

    def test_every_truncation_is_truncated(self) -> None:
        for cut in range(len(self.good)):
            with self.subTest(cut=cut), self.assertRaises(p.PrologueTruncated):
                p.decode_prologue(self.good[:cut])

    def test_bad_magic(self) -> None:
        with self.assertRaises(p.BadMagic) as cm:
            p.decode_prologue(b"X" + self.good[1:])
        self.assertEqual(cm.exception.found, b"XOXE")

    def test_another_version_is_told_whatever_follows(self) -> None:
        for version in (0, 1, 3, 0x80, 0xFFFF):
            wire = Prologue(Mode.STABLE, Role.ACCEPTOR, FP, version=version).encode()
            for tail in (b"", b"\x09", wire[-3:] + b"junk"):
                cut = len(wire) - 10
                with self.subTest(version=version, tail=tail):
                    with self.assertRaises(p.VersionMismatch) as cm:
                        p.decode_prologue(wire[:cut] + tail)
                    self.assertEqual((cm.exception.local, cm.exception.peer), (p.PROTOCOL_VERSION, version))
                    self.assertIsInstance(cm.exception, p.PrologueRefusal)

    def test_malformed(self) -> None:
        with self.assertRaises(p.PrologueMalformed):
            p.decode_prologue(self.good + b"\x00")
        for version in (b"\xff\xff\x07", b"\xff\xff\x83", b"\x80\x80\x80\x00"):
            with self.subTest(version=version), self.assertRaises(p.PrologueMalformed):
                p.decode_prologue(b"VOXE" + version + b"\x00\x00" + FP)

    def test_unknown_mode_and_role(self) -> None:
        wire = bytearray(self.good)
        wire[5] = 9
        with self.assertRaises(p.UnknownMode) as cm:
            p.decode_prologue(bytes(wire))
        self.assertEqual(cm.exception.value, 9)
        wire = bytearray(self.good)
        wire[6] = 3
        with self.assertRaises(p.UnknownRole) as cm2:
            p.decode_prologue(bytes(wire))
        self.assertEqual(cm2.exception.value, 3)

    def test_structure_is_checked_before_values(self) -> None:
        wire = bytearray(self.good)
        wire[5] = 9
        with self.assertRaises(p.PrologueTruncated):
            p.decode_prologue(bytes(wire[:-1]))
        with self.assertRaises(p.PrologueMalformed):
            p.decode_prologue(bytes(wire) + b"\x00")

    def test_random_bytes_raise_only_prologue_errors(self) -> None:
        for seed in seeds():
            with self.subTest(seed=seed):
                r = rng(seed)
                accepted = 0
                for i in range(1000):
                    data = random_bytes(r, r.randrange(0, 24))
                    if i % 2 == 0:
                        data = b"VOXE" + data
                    try:
                        p.decode_prologue(data)
                        accepted += 1
                    except p.PrologueError:
                        pass
                self.assertLess(accepted, 20)


class PeerCheck(unittest.TestCase):
    me = Prologue(Mode.STABLE, Role.ACCEPTOR, FP)

    def test_acceptable_peer(self) -> None:
        self.assertIsNone(p.check_peer(self.me, Prologue(Mode.STABLE, Role.INITIATOR, FP)))

    def test_refusals_name_both_values(self) -> None:
        with self.assertRaises(p.ModeMismatch) as m:
            p.check_peer(self.me, Prologue(Mode.BARE, Role.INITIATOR, FP))
        self.assertEqual((m.exception.local, m.exception.peer), (Mode.STABLE, Mode.BARE))
        other = bytes([9] * 8)
        with self.assertRaises(p.SchemaMismatch) as s:
            p.check_peer(self.me, Prologue(Mode.STABLE, Role.INITIATOR, other))
        self.assertEqual((s.exception.local, s.exception.peer), (FP, other))
        self.assertIn("0102030405060708", str(s.exception))
        self.assertIn("0909090909090909", str(s.exception))
        with self.assertRaises(p.RoleConflict) as c:
            p.check_peer(self.me, Prologue(Mode.STABLE, Role.ACCEPTOR, FP))
        self.assertEqual((c.exception.local, c.exception.peer), (Role.ACCEPTOR, Role.ACCEPTOR))
        for e in (m.exception, s.exception, c.exception):
            self.assertIsInstance(e, p.PrologueRefusal)

    def test_order_mode_then_fingerprint_then_role(self) -> None:
        other = bytes(8)
        with self.assertRaises(p.ModeMismatch):
            p.check_peer(self.me, Prologue(Mode.BARE, Role.ACCEPTOR, other))
        with self.assertRaises(p.SchemaMismatch):
            p.check_peer(self.me, Prologue(Mode.STABLE, Role.ACCEPTOR, other))

    def test_version(self) -> None:
        with self.assertRaises(p.VersionMismatch):
            p.check_peer(self.me, Prologue(Mode.STABLE, Role.INITIATOR, FP, version=1))


if __name__ == "__main__":
    unittest.main()
