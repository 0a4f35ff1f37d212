"""The test vectors of docs/vectors (format: docs/vectors/README.md),
checked with what the Python package has today: the codecs (every payload
decodes and re-encodes to the same bytes) and the decisions the document
fixes (prologue refusals, the acceptor's answer to each hello, the
initiator's reaction to each rejection, admission, in-order delivery).
The session core's timing and ack choices are the Rust replay's job
(tests/tests/vectors.rs)."""

# r[verify proto.vectors]

from __future__ import annotations

import json
import unittest
from pathlib import Path
from typing import Any, Dict, List, Optional

from vox_embedded import prologue as p
from vox_embedded import rpc_frames as rpc
from vox_embedded import schema
from vox_embedded import stable_frames as sf
from vox_embedded.prologue import Mode, Prologue, Role

VECTORS = Path(__file__).resolve().parent.parent.parent / "docs" / "vectors"

#: The name of each Python refusal in the Rust core's error text.
RUST_REFUSAL = {
    p.VersionMismatch: "UnsupportedVersion",
    p.ModeMismatch: "ModeMismatch",
    p.SchemaMismatch: "SchemaMismatch",
    p.RoleConflict: "RoleConflict",
}

EXPECTED_NAMES = {
    "admission-keys",
    "close-done",
    "new-session",
    "refusal-busy",
    "refusal-mode",
    "refusal-role",
    "refusal-schema",
    "refusal-session-unknown",
    "refusal-table-full",
    "refusal-version",
    "resume-replay",
    "rpc-call",
    "rpc-topic",
}


def load() -> List[Dict[str, Any]]:
    return [json.loads(f.read_text(encoding="utf-8")) for f in sorted(VECTORS.glob("*.json"))]


def is_prologue(payload: bytes) -> bool:
    return payload.startswith(p.MAGIC)


def decode_any_prologue(payload: bytes) -> Prologue:
    """A prologue of any version (the vectors hold one of version 3)."""
    try:
        return p.decode_prologue(payload)
    except p.VersionMismatch as e:
        return p.decode_prologue(payload, supported_version=e.peer)


def local_prologue(side: Dict[str, Any]) -> Prologue:
    role = Role.INITIATOR if side["role"] == "initiator" else Role.ACCEPTOR
    return Prologue(Mode.STABLE, role, bytes.fromhex(side["fingerprint"]))


def refusal(local: Prologue, payload: bytes) -> Optional[p.PrologueRefusal]:
    """The refusal the document makes ``local`` answer ``payload`` with."""
    try:
        p.check_peer(local, decode_any_prologue(payload))
    except p.PrologueRefusal as e:
        return e
    return None


def payloads(v: Dict[str, Any]) -> List[bytes]:
    out = []
    for s in v["steps"]:
        if s["op"] == "receive":
            out.append(bytes.fromhex(s["payload"]))
        out.extend(bytes.fromhex(e) for e in s["expect"]["emit"])
    return out


# ---- the seeded RNG of the vectors (rand_chacha 0.9's ChaCha20Rng) ----

_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def _quarter(s: List[int], a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & _M32
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & _M32
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & _M32
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & _M32
    s[b] = _rotl(s[b] ^ s[c], 7)


def _chacha20_block(key: bytes, counter: int) -> bytes:
    """One ChaCha20 block (20 rounds, 64-bit counter, stream 0)."""
    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    init += [int.from_bytes(key[i : i + 4], "little") for i in range(0, 32, 4)]
    init += [counter & _M32, counter >> 32, 0, 0]
    s = list(init)
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12)
        _quarter(s, 1, 5, 9, 13)
        _quarter(s, 2, 6, 10, 14)
        _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15)
        _quarter(s, 1, 6, 11, 12)
        _quarter(s, 2, 7, 8, 13)
        _quarter(s, 3, 4, 9, 14)
    return b"".join(((s[i] + init[i]) & _M32).to_bytes(4, "little") for i in range(16))


def chacha20_rng_bytes(seed: int, n: int) -> bytes:
    """The first ``n`` bytes of ``ChaCha20Rng::seed_from_u64(seed)``: the
    32-byte key from PCG32 (rand_core's ``seed_from_u64``), then the
    ChaCha20 key stream from block 0."""
    key = b""
    state = seed
    for _ in range(8):
        state = (state * 6364136223846793005 + 11634580027462260723) & _M64
        x = (((state >> 18) ^ state) >> 27) & _M32
        rot = state >> 59
        key += (((x >> rot) | (x << ((32 - rot) & 31))) & _M32).to_bytes(4, "little")
    out = b""
    counter = 0
    while len(out) < n:
        out += _chacha20_block(key, counter)
        counter += 1
    return out[:n]


class Files(unittest.TestCase):
    vectors = load()

    def test_every_scenario_is_there_with_its_fields(self) -> None:
        self.assertEqual({v["name"] for v in self.vectors}, EXPECTED_NAMES)
        for v in self.vectors:
            with self.subTest(vector=v["name"]):
                self.assertEqual(v["format"], 1)
                for field in ("description", "config", "buffers", "rng", "message_codec", "sides", "steps"):
                    self.assertIn(field, v)
                times = [s["t"] for s in v["steps"]]
                self.assertEqual(times, sorted(times), "times never go back")
                for s in v["steps"]:
                    self.assertIn(s["side"], v["sides"])
                    self.assertIn("emit", s["expect"])

    def test_resume_keys_are_the_seeded_rngs(self) -> None:
        for v in self.vectors:
            keys = [s["key"] for s in v["steps"] if s["op"] == "attach" and s["key"] is not None]
            stream = chacha20_rng_bytes(v["rng"]["seed"], 16 * len(keys))
            with self.subTest(vector=v["name"]):
                self.assertEqual(keys, [stream[16 * i : 16 * i + 16].hex() for i in range(len(keys))])


class Codecs(unittest.TestCase):
    vectors = load()

    def test_every_payload_decodes_and_reencodes(self) -> None:
        for v in self.vectors:
            for payload in payloads(v):
                with self.subTest(vector=v["name"], payload=payload.hex()):
                    if is_prologue(payload):
                        try:
                            pr = decode_any_prologue(payload)
                        except p.PrologueTruncated:
                            # The admission vector's garbage prologue.
                            self.assertEqual(v["name"], "admission-keys")
                            continue
                        self.assertEqual(pr.encode(), payload)
                    else:
                        self.assertEqual(sf.encode_frame(sf.decode_frame(payload)), payload)

    def test_rpc_messages_decode_and_reencode(self) -> None:
        count = 0
        for v in self.vectors:
            if v["message_codec"] != "rpc":
                continue
            msgs: List[bytes] = []
            for s in v["steps"]:
                if s["op"] == "send":
                    msgs.append(bytes.fromhex(s["message"]))
                msgs.extend(bytes.fromhex(m) for m in s["expect"].get("messages", []))
            for payload in payloads(v):
                if not is_prologue(payload):
                    frame = sf.decode_frame(payload)
                    if isinstance(frame, sf.Data):
                        msgs.append(frame.msg)
            for m in msgs:
                with self.subTest(vector=v["name"], msg=m.hex()):
                    self.assertEqual(rpc.encode_frame(rpc.decode_frame(m)), m)
                    count += 1
        self.assertGreater(count, 20)

    def test_rpc_greetings_list_exported_keys_with_their_fingerprint(self) -> None:
        exported = {
            int(e["key"], 16)
            for f in schema.load()
            if f["kind"] == "service"
            for e in f["endpoints"] + f["topics"]
        }
        hellos = 0
        for v in self.vectors:
            if v["message_codec"] != "rpc":
                continue
            for s in v["steps"]:
                if s["op"] != "send":
                    continue
                frame = rpc.decode_frame(bytes.fromhex(s["message"]))
                if isinstance(frame, rpc.Hello):
                    with self.subTest(vector=v["name"], t=s["t"]):
                        self.assertEqual(frame.fingerprint, rpc.service_fingerprint(frame.endpoints))
                        self.assertLessEqual(set(frame.endpoints) | set(frame.topics), exported)
                        hellos += 1
        self.assertEqual(hellos, 4)

    def test_rpc_vectors_carry_the_rpc_family_fingerprint(self) -> None:
        for v in self.vectors:
            if v["message_codec"] == "rpc":
                for side in v["sides"].values():
                    self.assertEqual(bytes.fromhex(side["fingerprint"]), rpc.RPC_FAMILY_FINGERPRINT)


class Decisions(unittest.TestCase):
    vectors = load()

    def test_every_side_sends_its_own_prologue(self) -> None:
        for v in self.vectors:
            for s in v["steps"]:
                local = local_prologue(v["sides"][s["side"]])
                for e in s["expect"]["emit"]:
                    payload = bytes.fromhex(e)
                    if is_prologue(payload):
                        self.assertEqual(payload, local.encode(), v["name"])

    def test_prologue_refusals_are_the_documents(self) -> None:
        seen = set()
        for v in self.vectors:
            for s in v["steps"]:
                if s["op"] != "receive" or not is_prologue(bytes.fromhex(s["payload"])):
                    continue
                side = v["sides"][s["side"]]
                payload = bytes.fromhex(s["payload"])
                local = local_prologue(side)
                exp = s["expect"]
                with self.subTest(vector=v["name"], t=s["t"], side=s["side"]):
                    try:
                        why = refusal(local, payload)
                    except p.PrologueDecodeError:
                        # Garbage: dropped without an answer.
                        self.assertTrue(exp["step"].startswith("Garbage"))
                        self.assertEqual(exp["emit"], [])
                        continue
                    if side["core"] == "admission":
                        if why is None:
                            self.assertEqual(exp["step"], "Presented")
                        else:
                            self.assertIn(RUST_REFUSAL[type(why)], exp["step"])
                        # Answered with its own prologue either way.
                        self.assertEqual(exp["emit"], [local.encode().hex()])
                        continue
                    if why is None:
                        self.assertIsNone(exp["ended"])
                        continue
                    seen.add(type(why))
                    # The refusing side ends, naming the same mismatch;
                    # its prologue went out (now or earlier on this link).
                    self.assertIsNotNone(exp["ended"])
                    self.assertIn(RUST_REFUSAL[type(why)], exp["ended"])
        self.assertEqual(seen, set(RUST_REFUSAL))

    def test_the_acceptors_answer_to_each_hello(self) -> None:
        for v in self.vectors:
            attach_key: Dict[str, Optional[str]] = {}
            issued: Dict[str, List[bytes]] = {}
            for s in v["steps"]:
                side = v["sides"][s["side"]]
                if side["core"] != "session" or side["role"] != "acceptor":
                    continue
                if s["op"] == "attach":
                    attach_key[s["side"]] = s["key"]
                    continue
                if s["op"] != "receive" or is_prologue(bytes.fromhex(s["payload"])):
                    continue
                frame = sf.decode_frame(bytes.fromhex(s["payload"]))
                if not isinstance(frame, sf.Hello):
                    continue
                mine = issued.setdefault(s["side"], [])
                out = [sf.decode_frame(bytes.fromhex(e)) for e in s["expect"]["emit"]]
                with self.subTest(vector=v["name"], t=s["t"]):
                    if frame.key is not None and frame.key not in mine:
                        self.assertEqual(out, [sf.Reject(sf.RejectReason.SESSION_UNKNOWN)])
                        continue
                    hellos = [f for f in out if isinstance(f, sf.Hello)]
                    self.assertEqual(len(hellos), 1)
                    proven = not mine or frame.key == mine[-1]
                    want = bytes.fromhex(attach_key[s["side"]]) if proven else mine[-1]
                    self.assertEqual(hellos[0].key, want)
                    mine.append(hellos[0].key)

    def test_the_initiator_presents_the_latest_key_and_obeys_rejections(self) -> None:
        checked = 0
        for v in self.vectors:
            latest: Optional[bytes] = None
            cfg = v["config"]
            for s in v["steps"]:
                side = v["sides"][s["side"]]
                if side["core"] != "session" or side["role"] != "initiator":
                    continue
                for e in s["expect"]["emit"]:
                    f = sf.decode_frame(bytes.fromhex(e)) if not is_prologue(bytes.fromhex(e)) else None
                    if isinstance(f, sf.Hello):
                        self.assertEqual(f.key, latest, v["name"])
                        checked += 1
                if s["op"] != "receive" or is_prologue(bytes.fromhex(s["payload"])):
                    continue
                frame = sf.decode_frame(bytes.fromhex(s["payload"]))
                exp = s["expect"]
                if isinstance(frame, sf.Hello) and frame.key is not None:
                    latest = frame.key
                elif isinstance(frame, sf.Reject):
                    with self.subTest(vector=v["name"], reason=frame.reason):
                        if frame.reason == sf.RejectReason.SESSION_UNKNOWN:
                            self.assertEqual(exp["ended"], "SessionLost")
                        elif frame.reason == sf.RejectReason.TABLE_FULL:
                            self.assertEqual(exp["ended"], "Rejected(TableFull)")
                        else:
                            # Transient: back off retry_delay_ms, not ended.
                            self.assertIsNone(exp["ended"])
                            self.assertEqual(exp["detach"], "Busy")
                            self.assertEqual(exp["deadline"], s["t"] + cfg["retry_delay_ms"])
                        checked += 1
        self.assertGreater(checked, 10)

    def test_admission_decisions(self) -> None:
        count = 0
        for v in self.vectors:
            for s in v["steps"]:
                side = v["sides"][s["side"]]
                if side["core"] != "admission" or s["expect"]["step"] != "Hello":
                    continue
                hello = sf.decode_frame(bytes.fromhex(s["payload"]))
                assert isinstance(hello, sf.Hello)
                t = side["table"]
                known = [bytes.fromhex(k) for k in t["known_keys"]]
                if hello.key is not None:
                    want, reason = ("Resume", None) if hello.key in known else ("Unknown", 0)
                elif t["queued"] >= t["queue"]:
                    want, reason = "Reject(Busy)", sf.RejectReason.BUSY
                elif t["table_len"] >= t["sessions"]:
                    want, reason = "Reject(TableFull)", sf.RejectReason.TABLE_FULL
                else:
                    want, reason = "Admit", None
                with self.subTest(vector=v["name"], t=s["t"]):
                    self.assertEqual(s["expect"]["decision"], want)
                    emitted = [sf.decode_frame(bytes.fromhex(e)) for e in s["expect"]["emit"]]
                    self.assertEqual(emitted, [] if reason is None else [sf.Reject(sf.RejectReason(reason))])
                count += 1
        self.assertEqual(count, 5)

    def test_messages_arrive_in_order_exactly_once(self) -> None:
        for v in self.vectors:
            sessions = [n for n, d in v["sides"].items() if d["core"] == "session"]
            if len(sessions) != 2 or v["name"].startswith("refusal"):
                continue
            sent: Dict[str, List[str]] = {n: [] for n in sessions}
            read: Dict[str, List[str]] = {n: [] for n in sessions}
            for s in v["steps"]:
                if s["op"] == "send":
                    sent[s["side"]].append(s["message"])
                elif s["op"] == "read":
                    read[s["side"]].extend(s["expect"]["messages"])
            a, b = sessions
            with self.subTest(vector=v["name"]):
                self.assertEqual(read[a], sent[b])
                self.assertEqual(read[b], sent[a])


if __name__ == "__main__":
    unittest.main()
