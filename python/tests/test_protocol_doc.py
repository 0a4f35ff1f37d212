"""Conformance: every ```` ```hex NAME ```` block of docs/PROTOCOL.md is the
encoding of the example value named NAME below, byte for byte, and decodes
back to it. The blocks are parsed out of the document, so a change to the
document (a new block, changed bytes) fails here until the examples follow.
The names and values are those the Rust side checks in
tests/tests/protocol_doc.rs; those of the rpc examples (section 12) are the
ones the document's prose gives."""

from __future__ import annotations

import unittest
import zlib
from dataclasses import dataclass
from typing import Union, get_args

from vox_embedded import framing, prologue, rpc_frames, stable_frames
from vox_embedded.prologue import Mode, Prologue, Role
from vox_embedded.rpc_frames import Refusal
from vox_embedded.stable_frames import Ack, Close, Counter, Data, Hello, Reject, RejectReason, Window

from .support import PROTOCOL_MD, document_hex_blocks, hexs

FP = bytes.fromhex("1122334455667788")
KEY = bytes(range(0xA0, 0xB0))
MSG = bytes([1, 2, 3])


@dataclass(frozen=True)
class Framed:
    """A link frame (COBS + CRC + delimiter) carrying these payload bytes."""

    payload: bytes


Example = Union[Prologue, stable_frames.StableFrame, rpc_frames.RpcFrame, Framed]

#: The rpc frame classes, to tell those examples from the stable frames.
RPC_FRAME_TYPES = get_args(rpc_frames.RpcFrame)

EXAMPLES: dict[str, Example] = {
    "prologue-initiator": Prologue(Mode.STABLE, Role.INITIATOR, FP),
    "prologue-acceptor": Prologue(Mode.STABLE, Role.ACCEPTOR, FP),
    "prologue-bare": Prologue(Mode.BARE, Role.INITIATOR, FP),
    "hello-new": Hello(key=None, next_expected=0, window=Window(8, 512)),
    "hello-acceptor": Hello(key=KEY, next_expected=0, window=Window(16, 1024)),
    "hello-resume": Hello(key=KEY, next_expected=300, window=Window(8, 512)),
    "reject-unknown": Reject(RejectReason.SESSION_UNKNOWN),
    "reject-full": Reject(RejectReason.TABLE_FULL),
    "reject-busy": Reject(RejectReason.BUSY),
    "data-common": Data(seq=Counter(5, low=True), ack=Counter(3, low=True), window=None, msg=MSG),
    "data": Data(seq=Counter(5, low=True), ack=Counter(3, low=True), window=Window(8, 512), msg=MSG),
    "data-wrapping": Data(seq=Counter(2**32 - 1), ack=Counter(128), window=Window(0, 0), msg=b""),
    "ack": Ack(ack=6, next=9, window=Window(4, 200), done=False),
    "ack-done": Ack(ack=7, next=11, window=Window(16, 1024), done=True),
    "close": Close(seq=10, ack=6),
    "framed-data": Framed(bytes.fromhex("80 05 03 01 02 03")),
    "framed-empty": Framed(b""),
    # Section 12: endpoint 1, body the u32 21, id 130, deadline 1,200 ms
    # after the previous request's; its reply 42.
    "rpc-request": rpc_frames.Request(id=130, endpoint=1, deadline=1200, body=b"\x15"),
    "rpc-reply": rpc_frames.Reply(id=130, body=b"\x2a"),
    # Version 1, Q = 4, one endpoint 0xddccbbaa and its fingerprint
    # 0x5b8c0245, no topics.
    "rpc-hello": rpc_frames.Hello(
        version=1, max_in_flight=4, fingerprint=0x5B8C0245, endpoints=[0xDDCCBBAA], topics=[]
    ),
    "rpc-refused-expired": rpc_frames.Refused(id=3, why=Refusal.EXPIRED),
    # Section 12.5: topic 1, seq 300, a possible duplicate, body 07.
    "rpc-sample": rpc_frames.Sample(topic=1, seq=300, dup=True, body=b"\x07"),
}


def encode(example: Example) -> bytes:
    """The example's bytes, by this package's encoders."""
    if isinstance(example, Prologue):
        return prologue.encode_prologue(example)
    if isinstance(example, Framed):
        return framing.encode_frame(example.payload)
    if isinstance(example, RPC_FRAME_TYPES):
        return rpc_frames.encode_frame(example)
    return stable_frames.encode_frame(example)


def decode_framed(wire: bytes, leading_delimiter: bool) -> list[framing.DecodeEvent]:
    """What a fresh receiver makes of the frame, fed a byte at a time."""
    decoder = framing.FrameDecoder(mtu=64)
    stream = (framing.STREAM_START if leading_delimiter else b"") + wire
    events: list[framing.DecodeEvent] = []
    for b in stream:
        events += decoder.feed(bytes([b]))
    return events


class ProtocolDocumentExamples(unittest.TestCase):
    """The document's hex examples against the codecs."""

    def test_the_document_has_exactly_the_known_examples(self) -> None:
        blocks = document_hex_blocks()
        names = [n for n, _ in blocks]
        self.assertEqual(len(names), len(set(names)), f"duplicate block names in {PROTOCOL_MD}")
        for name in names:
            self.assertIn(name, EXAMPLES, f"the document's {name} block has no example here")
        for name in EXAMPLES:
            self.assertIn(name, names, f"{PROTOCOL_MD} has no ```hex {name} block")

    def test_every_hex_example_round_trips(self) -> None:
        blocks = dict(document_hex_blocks())
        for name, example in EXAMPLES.items():
            with self.subTest(example=name):
                self.assertIn(name, blocks)
                wire = blocks[name]
                self.assertEqual(hexs(wire), hexs(encode(example)), "the document's bytes are the encoder's")
                if isinstance(example, Prologue):
                    self.assertEqual(prologue.decode_prologue(wire), example)
                elif isinstance(example, Framed):
                    for lead in (True, False):
                        self.assertEqual(
                            decode_framed(wire, leading_delimiter=lead),
                            [framing.Payload(example.payload)],
                            f"leading delimiter: {lead}",
                        )
                elif isinstance(example, RPC_FRAME_TYPES):
                    decoded_rpc = rpc_frames.decode_frame(wire)
                    self.assertEqual(decoded_rpc, example)
                    self.assertEqual(rpc_frames.encode_frame(decoded_rpc), wire)
                else:
                    decoded = stable_frames.decode_frame(wire)
                    self.assertEqual(decoded, example)
                    self.assertEqual(stable_frames.encode_frame(decoded), wire)

    def test_framed_data_carries_the_data_example(self) -> None:
        """Section 2 says the framed-data payload is the data-common frame of section 6."""
        blocks = dict(document_hex_blocks())
        self.assertEqual(
            framing.encode_frame(blocks["data-common"]), blocks["framed-data"]
        )

    def test_the_documented_crc_check_value(self) -> None:
        """CRC-32/ISO-HDLC of ``123456789`` is ``0xCBF43926``, and the
        empty payload's CRC is ``00 00 00 00``."""
        self.assertEqual(framing.crc32(b"123456789"), 0xCBF43926)
        self.assertEqual(framing.crc32(b"123456789"), zlib.crc32(b"123456789"))
        self.assertEqual(framing.crc32(b""), 0)

    def test_the_end_of_stream_marker(self) -> None:
        """``01 00`` is COBS of zero bytes and reads as end-of-stream."""
        self.assertEqual(framing.cobs_encode(b"") + b"\x00", framing.END_OF_STREAM)
        decoder = framing.FrameDecoder(mtu=16)
        events = decoder.feed(framing.STREAM_START + framing.END_OF_STREAM)
        self.assertEqual(events, [framing.EndOfStream()])

    def test_the_parser_refuses_what_it_cannot_read(self) -> None:
        with self.assertRaises(ValueError):
            document_hex_blocks("```hex\n00\n```\n")
        with self.assertRaises(ValueError):
            document_hex_blocks("```hex x\n0g\n```\n")
        with self.assertRaises(ValueError):
            document_hex_blocks("```hex x\n00\n")
        self.assertEqual(
            document_hex_blocks("text\n```hex a\n01 02 # comment 03\n 04\n```\n```text\n05\n```\n"),
            [("a", b"\x01\x02\x04")],
        )


if __name__ == "__main__":
    unittest.main()
