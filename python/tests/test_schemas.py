"""Fingerprints and keys recomputed from docs/schemas (PROTOCOL.md
sections 3 and 12.2) against the values the Rust export wrote."""

# r[verify proto.schemas]

from __future__ import annotations

import copy
import unittest

from vox_embedded import schema as s


class Exported(unittest.TestCase):
    files = s.load()

    def test_every_family_and_service_is_exported(self) -> None:
        names = sorted(f["name"] for f in self.files)
        self.assertEqual(names, ["DemoFamily", "RpcFamily", "vox-demo-protocol", "vox-rpc built-ins"])

    def test_family_fingerprints(self) -> None:
        for f in self.files:
            if f["kind"] != "family":
                continue
            with self.subTest(family=f["name"]):
                self.assertEqual(f["path"], s.FAMILY_PATH)
                self.assertEqual(s.fingerprint(f["schema"]).hex(), f["fingerprint"])

    def test_endpoint_and_topic_keys(self) -> None:
        count = 0
        for f in self.files:
            if f["kind"] != "service":
                continue
            for entry in f["endpoints"] + f["topics"]:
                with self.subTest(name=entry["name"]):
                    self.assertEqual(s.key64(entry["name"], entry["schema"]).hex(), entry["key64"])
                    self.assertEqual(f"{s.key32(entry['name'], entry['schema']):08x}", entry["key"])
                    count += 1
        self.assertEqual(count, 7)

    def test_document_constants(self) -> None:
        rpc = next(f for f in self.files if f["name"] == "RpcFamily")
        # PROTOCOL.md section 12: the rpc family's fingerprint.
        self.assertEqual(s.fingerprint(rpc["schema"]).hex(), "e6d4bdeaf275080b")
        builtin = next(f for f in self.files if f["name"] == "vox-rpc built-ins")
        defmt = builtin["topics"][0]
        # Section 12.5: the defmt topic's key.
        self.assertEqual(s.key32("vox/defmt", defmt["schema"]), 0x4EBDE3AF)


class Hashing(unittest.TestCase):
    def test_fnv1a64_reference_values(self) -> None:
        self.assertEqual(s.fnv1a64_update(s.FNV64_BASIS, b""), 0xCBF29CE484222325)
        self.assertEqual(s.fnv1a64_update(s.FNV64_BASIS, b"a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(s.fnv1a64_update(s.FNV64_BASIS, b"foobar"), 0x85944171F73967E8)

    def test_the_documents_examples(self) -> None:
        # PROTOCOL.md section 3.
        self.assertEqual(s.fingerprint({"name": "u32", "ty": "U32"}).hex(), "b69efff17bf333fc")
        read_sensor = {
            "name": "(A, B, C,)",
            "ty": {"Tuple": [{"name": "u8", "ty": "U8"}, {"name": "i32", "ty": "I32"}, {"name": "NoError", "ty": {"Enum": []}}]},
        }
        self.assertEqual(s.key64("demo/read_sensor", read_sensor).hex(), "ec3aee1fa4e04cc8")
        self.assertEqual(s.key32("demo/read_sensor", read_sensor), 0x1FEE3AEC)

    def test_type_names_are_not_hashed_but_field_names_are(self) -> None:
        u8 = {"name": "u8", "ty": "U8"}
        renamed = {"name": "byte", "ty": "U8"}
        self.assertEqual(s.key64("p", u8), s.key64("p", renamed))
        st = {"name": "S", "ty": {"Struct": [{"name": "a", "ty": u8}]}}
        other = copy.deepcopy(st)
        other["ty"]["Struct"][0]["name"] = "b"
        self.assertNotEqual(s.key64("p", st), s.key64("p", other))
        self.assertNotEqual(s.key64("p", u8), s.key64("q", u8))

    def test_unknown_types_are_refused(self) -> None:
        with self.assertRaises(s.SchemaError):
            s.key64("p", {"name": "x", "ty": "U256"})
        with self.assertRaises(s.SchemaError):
            s.key64("p", {"name": "x", "ty": {"Enum": [{"name": "A", "ty": "Weird"}]}})


if __name__ == "__main__":
    unittest.main()
