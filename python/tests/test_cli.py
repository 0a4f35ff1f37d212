"""The command line (``python3 -m vox_embedded``) against the demo
firmware in QEMU: ``endpoints``, ``call`` (a reply, a handler's error, an
endpoint the device does not serve), ``topics``; and the schema-driven
argument encoding it uses, without QEMU."""

from __future__ import annotations

# r[verify py.cli]

import asyncio
import os
import subprocess
import sys
import unittest
from pathlib import Path
from typing import List

from vox_embedded import rpc_frames as rf
from vox_embedded.device import UART_CONFIG
from vox_embedded.rpc_host import RpcHost
from vox_embedded.stable_io import StableConduit
from vox_embedded.values import Catalog, SchemaValueError, decode_all, encode, parse_args

from tests.qemu_support import QemuDevice, firmware_or_skip

PYTHON_DIR = Path(__file__).resolve().parents[1]
CATALOG = Catalog()


def run_cli(args: List[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Runs ``python3 -m vox_embedded ARGS`` (stdout a pipe: no progress line)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "vox_embedded", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


class Arguments(unittest.TestCase):
    """Command-line words encoded from the endpoints' request schemas."""

    def test_demo_requests(self) -> None:
        so = CATALOG.by_name["demo/set_output"].request
        self.assertEqual(encode(parse_args(["4", "true"], so), so), b"\x04\x01")
        self.assertEqual(encode(parse_args(["high=false", "pin=0x1f"], so), so), b"\x1f\x00")
        rs = CATALOG.by_name["demo/read_sensor"].request
        self.assertEqual(encode(parse_args(["3"], rs), rs), b"\x03")
        ec = CATALOG.by_name["demo/echo"].request
        self.assertEqual(encode(parse_args(["0x0102"], ec), ec), b"\x02\x01\x02")
        self.assertEqual(encode(parse_args(["hi"], ec), ec), b"\x02hi")
        ht = CATALOG.by_name["demo/host_time"]
        self.assertEqual(encode(parse_args([], ht.request), ht.request), b"")
        self.assertEqual(decode_all(b"\xe8\x07", ht.response), 1000)
        self.assertEqual(decode_all(b"\x87\x04", CATALOG.by_name["demo/read_sensor"].response), -260)

    def test_bad_arguments(self) -> None:
        so = CATALOG.by_name["demo/set_output"].request
        for words in (["4"], ["4", "maybe"], ["256", "true"], ["4", "true", "extra"], ["x", "true"]):
            with self.subTest(words=words), self.assertRaises(SchemaValueError):
                encode(parse_args(words, so), so)

    def test_option_struct_enum(self) -> None:
        nt = {
            "name": "T",
            "ty": {
                "Struct": [
                    {"name": "a", "ty": {"name": "Option<i64>", "ty": {"Option": {"name": "i64", "ty": "I64"}}}},
                    {"name": "b", "ty": {"name": "E", "ty": {"Enum": [
                        {"name": "X", "ty": "UnitVariant"},
                        {"name": "Y", "ty": {"NewtypeVariant": {"name": "u16", "ty": "U16"}}},
                    ]}}},
                ]
            },
        }
        v = {"a": -2, "b": ("Y", 300)}
        data = encode(v, nt)
        self.assertEqual(data, b"\x01\x03\x01\xac\x02")
        self.assertEqual(decode_all(data, nt), v)
        self.assertEqual(decode_all(encode({"a": None, "b": ("X", None)}, nt), nt), {"a": None, "b": ("X", None)})


class CliOverTcp(unittest.IsolatedAsyncioTestCase):
    """The CLI as a TCP initiator against a Python acceptor serving
    ``demo/read_sensor`` (no QEMU needed)."""

    async def test_call_and_endpoints(self) -> None:
        rs = CATALOG.by_name["demo/read_sensor"]

        def read_sensor(body: bytes, now: int) -> tuple[bool, bytes]:
            return True, encode(decode_all(body, rs.request) * 100 - 40, rs.response)

        for args, expected in (
            (["call", "demo/read_sensor", "5"], "460"),
            (["endpoints"], "demo/read_sensor: u8 => i32"),
        ):
            conduit = await StableConduit.listen("127.0.0.1", 0, rf.RPC_FAMILY_FINGERPRINT, UART_CONFIG)
            host = await RpcHost.start(conduit, {rs.key: read_sensor}, names={rs.key: rs.name})
            self.addAsyncCleanup(host.stop)
            assert conduit.address is not None
            env = dict(os.environ)
            env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vox_embedded", "--tcp", f"127.0.0.1:{conduit.address[1]}", "--initiator", *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            self.assertEqual(proc.returncode, 0, err.decode())
            self.assertIn(expected, out.decode())


class CliAgainstQemu(unittest.TestCase):
    """The CLI as a Python acceptor on the QEMU device's pty (one device,
    one new session per command: the device's resume key is refused as
    unknown and it starts a new session)."""

    dev: QemuDevice

    @classmethod
    def setUpClass(cls) -> None:
        cls.dev = QemuDevice(firmware_or_skip())

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dev.stop()

    def test_endpoints(self) -> None:
        r = run_cli(["--serial", self.dev.pty, "endpoints"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        for line in (
            "demo/read_sensor: u8 => i32",
            "demo/set_output: Pin => () ! str",
            "demo/echo: [T] => [T]",
            "demo/telemetry: Sample",
            "demo/log: str",
            "not served by the peer: demo/host_time",
        ):
            self.assertIn(line, out)
        self.assertIn(f"{CATALOG.by_name['demo/read_sensor'].key:08x}", out)
        self.assertNotIn("\r", out)  # no progress line on a pipe

    def test_call(self) -> None:
        r = run_cli(["--serial", self.dev.pty, "call", "demo/read_sensor", "3"])
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "260"), r.stderr)
        r = run_cli(["--serial", self.dev.pty, "call", "demo/set_output", "pin=40", "high=true"])
        self.assertEqual((r.returncode, r.stdout.strip()), (1, 'failed: "no such pin"'), r.stderr)
        r = run_cli(["--serial", self.dev.pty, "call", "demo/echo", "0x00ff"])
        self.assertEqual((r.returncode, r.stdout.strip()), (0, '"0x00ff"'), r.stderr)
        r = run_cli(["--serial", self.dev.pty, "call", "demo/host_time"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("refused: unknown", r.stdout)

    def test_topics(self) -> None:
        r = run_cli(["--serial", self.dev.pty, "topics", "--count", "6"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 6, r.stdout)
        self.assertTrue(any(line.startswith("demo/telemetry #") and '"label": "vbat"' in line for line in lines), r.stdout)


if __name__ == "__main__":
    unittest.main()
