"""Command line: talk to a vox-embedded peer (the demo device) over a
serial port or TCP.

::

    python3 -m vox_embedded --serial /dev/pts/3 endpoints
    python3 -m vox_embedded --serial /dev/ttyACM0 call demo/read_sensor 3
    python3 -m vox_embedded --serial /dev/ttyACM0 call demo/set_output pin=4 high=true
    python3 -m vox_embedded --serial /dev/ttyACM0 call demo/echo 0x0102ff
    python3 -m vox_embedded --tcp 127.0.0.1:7000 --initiator topics --count 20

The peer's endpoints and topics are named from ``docs/schemas/*.json``
(keys recomputed, matched against the keys the peer's ``Hello`` lists);
call arguments are encoded from the endpoint's request schema (see
:func:`vox_embedded.values.parse_args`), replies decoded from its
response or error schema. This side serves ``demo/host_time`` and
subscribes to every topic the schemas declare. Exit status: 0 for a reply
(or a clean run), 1 for a ``Failed`` call, 2 for a refused or unresolved
call, 3 for a connection or usage error.
"""

from __future__ import annotations

# r[impl py.cli]

import argparse
import asyncio
import json
import sys
import time
from typing import Any, List, Optional, TextIO

from .device import Target, describe_result, open_conduit, start_host
from .errors import VoxError
from .prologue import Role
from .rpc_host import CallStatus, RpcHost
from .stable_io import EndOfStream
from .stable_session import SessionError
from .values import Catalog, Entry, SchemaValueError, decode_all, encode, parse_args

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_ERROR = 3


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        return b.decode("ascii") if b and all(32 <= c < 127 for c in b) else "0x" + b.hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def show(v: Any) -> str:
    """A decoded value as one line of JSON (byte strings as text when
    printable ASCII, else ``0x`` hex)."""
    return json.dumps(_jsonable(v), ensure_ascii=False)


def _type_name(nt: Optional[dict]) -> str:
    return "?" if nt is None else str(nt.get("name"))


class Progress:
    """A progress line, written (and rewritten) only when ``out`` is a
    terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.on = out.isatty()
        self._last = 0.0

    def update(self, text: str, force: bool = False) -> None:
        """Rewrites the line (at most 4 times a second)."""
        if not self.on:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.25:
            self._last = now
            self.out.write("\r\x1b[K" + text)
            self.out.flush()

    def clear(self) -> None:
        """Erases the line."""
        if self.on:
            self.out.write("\r\x1b[K")
            self.out.flush()


def parse_target(ns: argparse.Namespace) -> Target:
    """The target of the parsed arguments."""
    role = Role.INITIATOR if ns.initiator else Role.ACCEPTOR
    if ns.serial:
        return Target(serial=ns.serial, role=role)
    host, _, port = ns.tcp.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--tcp wants HOST:PORT, got {ns.tcp!r}")
    return Target(tcp=(host, int(port)), role=role)


async def connect(ns: argparse.Namespace, catalog: Catalog, subscribe: bool) -> RpcHost:
    """Opens the conduit and waits for the peer's greeting and a clock
    sample."""
    progress = Progress(sys.stdout)
    progress.update("waiting for the peer ...", force=True)
    conduit, _ = await open_conduit(parse_target(ns))
    host = await start_host(conduit, catalog, subscribe=subscribe)
    try:
        await host.wait_ready(ns.timeout)
    finally:
        progress.clear()
    return host


async def cmd_endpoints(ns: argparse.Namespace, catalog: Catalog) -> int:
    """Lists the peer's endpoints and topics by the keys its Hello lists."""
    host = await connect(ns, catalog, subscribe=False)
    try:
        hello = host.core.peer
        assert hello is not None
        print(f"peer: rpc version {hello.version}, max_in_flight {hello.max_in_flight}, fingerprint {hello.fingerprint:08x}")
        print("endpoints:")
        for i, key in enumerate(hello.endpoints):
            e = catalog.by_key.get(key)
            if e is None:
                print(f"  {i:3}  {key:08x}  (not in docs/schemas)")
            else:
                err = "" if _type_name(e.error) == "NoError" else f" ! {_type_name(e.error)}"
                print(f"  {i:3}  {key:08x}  {e.name}: {_type_name(e.request)} => {_type_name(e.response)}{err}")
        print("topics:")
        for i, key in enumerate(hello.topics):
            e = catalog.by_key.get(key)
            print(f"  {i:3}  {key:08x}  " + (f"{e.name}: {_type_name(e.message)}" if e else "(not in docs/schemas)"))
        absent = [e.name for e in catalog.by_key.values() if e.kind == "endpoint" and e.key not in hello.endpoints]
        if absent:
            print("declared in docs/schemas, not served by the peer: " + ", ".join(sorted(absent)))
    finally:
        await host.stop()
    return EXIT_OK


async def cmd_call(ns: argparse.Namespace, catalog: Catalog) -> int:
    """Calls one endpoint and prints the decoded outcome."""
    entry: Optional[Entry] = catalog.by_name.get(ns.name)
    if entry is None or entry.kind != "endpoint" or entry.request is None:
        known = ", ".join(sorted(e.name for e in catalog.by_key.values() if e.kind == "endpoint"))
        print(f"no endpoint {ns.name!r} in docs/schemas (known: {known})", file=sys.stderr)
        return EXIT_ERROR
    try:
        body = encode(parse_args(ns.args, entry.request), entry.request)
    except SchemaValueError as e:
        print(f"{ns.name}: bad arguments for {_type_name(entry.request)}: {e}", file=sys.stderr)
        return EXIT_ERROR
    host = await connect(ns, catalog, subscribe=False)
    try:
        r = await host.call(entry.key, body, int(ns.deadline * 1000))
    finally:
        await host.stop()
    if r.status is CallStatus.REPLY:
        print(show(describe_result(entry, r)))
        return EXIT_OK
    if r.status is CallStatus.FAILED:
        print(f"failed: {show(describe_result(entry, r))}")
        return EXIT_FAILED
    if r.status is CallStatus.REFUSED:
        assert r.refusal is not None
        print(f"refused: {r.refusal.name.lower()}" + (" (the peer does not list it)" if not r.sent else ""))
        return EXIT_REFUSED
    print(f"{r.status.value}: {r.error}")
    return EXIT_REFUSED


async def cmd_topics(ns: argparse.Namespace, catalog: Catalog) -> int:
    """Prints the peer's samples as they come."""
    host = await connect(ns, catalog, subscribe=True)
    progress = Progress(sys.stdout)
    count = 0
    started = time.monotonic()
    try:
        while ns.count is None or count < ns.count:
            left = None if ns.seconds is None else ns.seconds - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            get = asyncio.ensure_future(host.samples.get())
            ended = asyncio.ensure_future(host.wait_ended())
            done, _ = await asyncio.wait({get, ended}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                ended.cancel()
                if ended in done:
                    err = ended.result()
                    progress.clear()
                    print(f"session ended: {err}", file=sys.stderr)
                    return EXIT_ERROR
                continue
            ended.cancel()
            s = get.result()
            e = catalog.by_key.get(s.topic_key)
            value: Any = "0x" + s.body.hex()
            if e is not None and e.message is not None:
                try:
                    value = decode_all(s.body, e.message)
                except VoxError:
                    pass
            progress.clear()
            name = e.name if e is not None else f"?{s.topic_key:08x}"
            print(f"{name} #{s.seq}{' (dup)' if s.dup else ''} {show(value)}", flush=True)
            count += 1
            lost = sum(t.lost for t in host.core.topics.values())
            progress.update(f"{count} samples, {lost} lost, {time.monotonic() - started:.0f} s")
    finally:
        progress.clear()
        await host.stop()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(prog="python3 -m vox_embedded", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="PATH", help="a serial port or pty (framed links on its byte stream)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="TCP: listen there (acceptor) or dial it (initiator)")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--acceptor", action="store_true", help="stable-conduit acceptor (the default: a device initiates)")
    role.add_argument("--initiator", action="store_true", help="stable-conduit initiator")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the peer (default 10)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("endpoints", help="list the peer's endpoints and topics")
    c = sub.add_parser("call", help="call an endpoint: NAME ARGS... (encoded from its request schema)")
    c.add_argument("name")
    c.add_argument("args", nargs="*")
    c.add_argument("--deadline", type=float, default=5.0, help="the call's deadline, seconds (default 5)")
    t = sub.add_parser("topics", help="print the peer's samples (telemetry, log) as they come")
    t.add_argument("--count", type=int, help="stop after this many samples")
    t.add_argument("--seconds", type=float, help="stop after this long")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit status."""
    ns = build_parser().parse_args(argv)
    catalog = Catalog()
    cmd = {"endpoints": cmd_endpoints, "call": cmd_call, "topics": cmd_topics}[ns.command]
    try:
        return asyncio.run(cmd(ns, catalog))
    except (SessionError, EndOfStream, VoxError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (asyncio.TimeoutError, TimeoutError):
        print(f"error: no peer within {ns.timeout} s", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
