"""Every refusal across languages, typed on both sides within a round trip
(docs/PROTOCOL.md sections 3, 4 and 7), against the Rust peer
`tests/src/bin/interop_peer.rs` over loopback TCP:

- another protocol version (a version-1 prologue), both ways, bare and
  stable (Python crafts the stable version-1 prologue itself: the Rust
  stable conduit cannot present one);
- mode mismatch: bare against stable in all four pairings;
- schema mismatch on the bare conduit both ways (the stable one is in
  ``test_interop_tcp.py``);
- the same role on both sides: bare both ways, stable with a Python
  session presenting the acceptor's role to a Rust acceptor;
- ``Reject(SessionUnknown)``: a Python initiator resuming with a key a
  fresh Rust acceptor does not know ends with ``SessionLost``; a Rust
  initiator resuming against a restarted Python acceptor ends with its
  ``SessionLost``;
- ``Reject(TableFull)`` and ``Reject(Busy)`` from a Rust ``StableAcceptor``
  with a one-session table (``--mode table``): a Python initiator ends
  with ``SessionRejected(TABLE_FULL)`` at once, and with
  ``SessionRejected(BUSY)`` after retrying for ``connect_timeout_ms``.

The Rust side's typed error is read from its last line (``error connect:
Refused(...)`` for the bare conduit, ``error session: ... (Refused(...))``
for the stable one).
"""

from __future__ import annotations

# r[verify py.interop]

import asyncio
import random
import time
import unittest
from pathlib import Path
from typing import Optional

from tests.interop_support import CargoMissing, CuttingProxy, Peer, build_peer, peer_fingerprint, peer_message
from tests.support import FIRST_SEED
from vox_embedded import framing, postcard
from vox_embedded.bare import BareConduit, BareRefused
from vox_embedded.prologue import (
    Mode,
    ModeMismatch,
    Prologue,
    PrologueRefusal,
    Role,
    RoleConflict,
    SchemaMismatch,
    VersionMismatch,
    check_peer,
    decode_prologue,
)
from vox_embedded.stable_io import StableConduit
from vox_embedded.stable_frames import RejectReason
from vox_embedded.stable_session import SessionLost, SessionRefused, SessionRejected, StableConfig, StableSession

_PEER: Optional[Path] = None
_SKIP: Optional[str] = None

#: A round trip on loopback, with room for a slow machine.
ROUND_TRIP = 1.0


def setUpModule() -> None:
    global _PEER, _SKIP
    try:
        _PEER = build_peer()
    except CargoMissing as e:
        _SKIP = str(e)


async def first_payload(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    """The first payload of a framed TCP stream."""
    decoder = framing.FrameDecoder(2048)

    async def read() -> bytes:
        while True:
            data = await reader.read(4096)
            if not data:
                raise EOFError("the connection closed before a payload")
            for ev in decoder.feed(data):
                if isinstance(ev, framing.Payload):
                    return ev.data
                raise AssertionError(f"unexpected framing event {ev}")

    return await asyncio.wait_for(read(), timeout)


def framed(payload: bytes) -> bytes:
    """A payload as the first frame of a link."""
    return framing.STREAM_START + framing.encode_frame(payload)


def typed(local: Prologue, answer: bytes) -> PrologueRefusal:
    """What a side presenting ``local`` finds in the peer's ``answer``."""
    try:
        check_peer(local, decode_prologue(answer, local.version))
    except PrologueRefusal as e:
        return e
    raise AssertionError(f"{answer.hex()} is acceptable to {local}")


# r[verify py.interop]
class InteropRefusals(unittest.TestCase):
    """Refusals between Python and Rust, both directions where they apply."""

    def setUp(self) -> None:
        if _SKIP is not None:
            self.skipTest(_SKIP)
        assert _PEER is not None
        self.peer_bin = _PEER
        self.fp = peer_fingerprint(self.peer_bin)
        self.config = StableConfig(max_message=64)

    # ------------------------------------------------------------ helpers

    async def rust_acceptor(self, mode: str, *extra: str) -> Peer:
        """A Rust peer listening in ``mode``."""
        peer = await Peer.start(
            self.peer_bin, "--mode", mode, "--role", "acceptor", "--listen", "127.0.0.1:0", "--count", "1", *extra
        )
        assert peer.address is not None
        return peer

    async def rust_initiator(self, mode: str, address: tuple[str, int], *extra: str) -> Peer:
        """A Rust peer dialing ``address`` in ``mode``."""
        host, port = address
        return await Peer.start(
            self.peer_bin, "--mode", mode, "--role", "initiator", "--connect", f"{host}:{port}", "--count", "1", *extra
        )

    async def rust_refused(self, peer: Peer, *want: str) -> str:
        """Waits for the Rust peer's typed refusal; checks it names every
        string in ``want``."""
        try:
            code, last, err = await peer.finish(5)
        finally:
            peer.kill()
        self.assertEqual(code, 1, f"{last} {err}")
        for w in want:
            self.assertIn(w, last)
        return last

    async def python_bare_initiator_refused(self, peer: Peer, **kw: object) -> tuple[BareRefused, float]:
        """A Python bare initiator against ``peer``: its typed refusal and
        how long it took."""
        assert peer.address is not None
        fp = kw.pop("fingerprint", self.fp)
        start = time.monotonic()
        with self.assertRaises(BareRefused) as caught:
            await BareConduit.connect(*peer.address, fp, **kw)  # type: ignore[arg-type]
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, ROUND_TRIP)
        return caught.exception, elapsed

    async def python_bare_acceptor_refused(self, *rust_args: str, mode: str = "bare") -> tuple[BareRefused, str]:
        """A Rust initiator (``rust_args``) against a Python bare acceptor:
        the Python side's typed refusal and the Rust side's last line."""
        listener = await BareConduit.listen("127.0.0.1", 0, self.fp)
        peer = await self.rust_initiator(mode, listener.address, *rust_args)
        start = time.monotonic()
        try:
            with self.assertRaises(BareRefused) as caught:
                await asyncio.wait_for(listener.accept(raise_errors=True), 5)
            self.assertLess(time.monotonic() - start, ROUND_TRIP)
            code, last, err = await peer.finish(5)
        finally:
            peer.kill()
            listener.close()
        self.assertEqual(code, 1, f"{last} {err}")
        return caught.exception, last

    def report(self, what: str, python: object, rust: str) -> None:
        """One line per refusal in the test output."""
        print(f"\n[{what}] python: {python!r}; rust: {rust}")

    # ------------------------------------------------------------ version

    def test_version_bare_python_v1_to_rust(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("bare")
            e, _ = await self.python_bare_initiator_refused(peer, version=1)
            assert isinstance(e.cause, VersionMismatch)
            self.assertEqual((e.cause.local, e.cause.peer), (1, 2))
            last = await self.rust_refused(peer, "Refused(UnsupportedVersion { found: 1, supported: 2 })")
            self.report("version, bare, python v1 -> rust", e.cause, last)

        asyncio.run(run())

    def test_version_bare_rust_v1_to_python(self) -> None:
        async def run() -> None:
            e, last = await self.python_bare_acceptor_refused("--present-version", "1")
            assert isinstance(e.cause, VersionMismatch)
            self.assertEqual((e.cause.local, e.cause.peer), (2, 1))
            # The Rust side presenting version 1 read our version-2 answer,
            # then the link ended: we refused.
            self.assertIn("version: 2", last)
            self.report("version, bare, rust v1 -> python", e.cause, last)

        asyncio.run(run())

    def test_version_stable_python_v1_to_rust_acceptor(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("stable")
            assert peer.address is not None
            local = Prologue(Mode.STABLE, Role.INITIATOR, self.fp, version=1)
            reader, writer = await asyncio.open_connection(*peer.address)
            writer.write(framed(local.encode()))
            cause = typed(local, await first_payload(reader))
            writer.close()
            assert isinstance(cause, VersionMismatch)
            self.assertEqual((cause.local, cause.peer), (1, 2))
            last = await self.rust_refused(peer, "UnsupportedVersion { found: 1, supported: 2 }")
            self.report("version, stable, python v1 -> rust acceptor", cause, last)

        asyncio.run(run())

    def test_version_stable_rust_initiator_to_python_v1(self) -> None:
        async def run() -> None:
            got: asyncio.Future[PrologueRefusal] = asyncio.get_running_loop().create_future()
            local = Prologue(Mode.STABLE, Role.ACCEPTOR, self.fp, version=1)
            served = asyncio.Event()

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(framed(local.encode()))
                try:
                    cause = typed(local, await first_payload(reader))
                except (EOFError, asyncio.TimeoutError, AssertionError) as e:
                    if not got.done():
                        got.set_exception(e)
                    return
                if not got.done():
                    got.set_result(cause)
                try:
                    await asyncio.wait_for(reader.read(), 2)  # until the Rust side closes
                except (OSError, asyncio.TimeoutError):
                    pass
                writer.close()
                served.set()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            peer = await self.rust_initiator("stable", server.sockets[0].getsockname()[:2])
            try:
                cause = await asyncio.wait_for(got, 5)
            finally:
                server.close()
            assert isinstance(cause, VersionMismatch)
            self.assertEqual((cause.local, cause.peer), (1, 2))
            last = await self.rust_refused(peer, "UnsupportedVersion { found: 1, supported: 2 }")
            await asyncio.wait_for(served.wait(), 3)
            self.report("version, stable, rust initiator -> python v1", cause, last)

        asyncio.run(run())

    # ------------------------------------------------------------ mode

    def test_mode_python_bare_to_rust_stable(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("stable")
            e, _ = await self.python_bare_initiator_refused(peer)
            assert isinstance(e.cause, ModeMismatch)
            self.assertEqual((e.cause.local, e.cause.peer), (Mode.BARE, Mode.STABLE))
            last = await self.rust_refused(peer, "ModeMismatch { local: Stable, peer: Bare }")
            self.report("mode, python bare -> rust stable", e.cause, last)

        asyncio.run(run())

    def test_mode_rust_stable_to_python_bare(self) -> None:
        async def run() -> None:
            e, last = await self.python_bare_acceptor_refused(mode="stable")
            assert isinstance(e.cause, ModeMismatch)
            self.assertEqual((e.cause.local, e.cause.peer), (Mode.BARE, Mode.STABLE))
            self.assertIn("ModeMismatch { local: Stable, peer: Bare }", last)
            self.report("mode, rust stable -> python bare", e.cause, last)

        asyncio.run(run())

    def test_mode_python_stable_to_rust_bare(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("bare")
            assert peer.address is not None
            start = time.monotonic()
            conduit = await StableConduit.connect(*peer.address, self.fp, self.config)
            with self.assertRaises(SessionRefused) as caught:
                await asyncio.wait_for(conduit.recv(), 5)
            self.assertLess(time.monotonic() - start, ROUND_TRIP)
            cause = caught.exception.cause
            assert isinstance(cause, ModeMismatch)
            self.assertEqual((cause.local, cause.peer), (Mode.STABLE, Mode.BARE))
            last = await self.rust_refused(peer, "Refused(ModeMismatch { local: Bare, peer: Stable })")
            self.report("mode, python stable -> rust bare", cause, last)

        asyncio.run(run())

    def test_mode_rust_bare_to_python_stable(self) -> None:
        async def run() -> None:
            conduit = await StableConduit.listen("127.0.0.1", 0, self.fp, self.config)
            assert conduit.address is not None
            start = time.monotonic()
            peer = await self.rust_initiator("bare", conduit.address)
            with self.assertRaises(SessionRefused) as caught:
                await asyncio.wait_for(conduit.recv(), 5)
            self.assertLess(time.monotonic() - start, ROUND_TRIP)
            cause = caught.exception.cause
            assert isinstance(cause, ModeMismatch)
            self.assertEqual((cause.local, cause.peer), (Mode.STABLE, Mode.BARE))
            last = await self.rust_refused(peer, "Refused(ModeMismatch { local: Bare, peer: Stable })")
            self.report("mode, rust bare -> python stable", cause, last)

        asyncio.run(run())

    # ------------------------------------------------------------ schema

    def test_schema_bare_python_to_rust(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("bare")
            wrong = bytes(b ^ 0xA5 for b in self.fp)
            e, _ = await self.python_bare_initiator_refused(peer, fingerprint=wrong)
            assert isinstance(e.cause, SchemaMismatch)
            self.assertEqual((e.cause.local, e.cause.peer), (wrong, self.fp))
            last = await self.rust_refused(peer, "Refused(SchemaMismatch", wrong.hex(), self.fp.hex())
            self.report("schema, bare, python -> rust", e.cause, last)

        asyncio.run(run())

    def test_schema_bare_rust_to_python(self) -> None:
        async def run() -> None:
            e, last = await self.python_bare_acceptor_refused("--wrong-schema")
            assert isinstance(e.cause, SchemaMismatch)
            self.assertEqual(e.cause.local, self.fp)
            self.assertIn(f"Refused(SchemaMismatch {{ local: SchemaFingerprint({e.cause.peer.hex()})", last)
            self.report("schema, bare, rust -> python", e.cause, last)

        asyncio.run(run())

    # ------------------------------------------------------------ role

    def test_role_bare_python_to_rust(self) -> None:
        async def run() -> None:
            peer = await self.rust_acceptor("bare")
            e, _ = await self.python_bare_initiator_refused(peer, role=Role.ACCEPTOR)
            assert isinstance(e.cause, RoleConflict)
            self.assertEqual(e.cause.local, Role.ACCEPTOR)
            last = await self.rust_refused(peer, "Refused(RoleConflict { role: Acceptor })")
            self.report("role, bare, python dials as acceptor -> rust", e.cause, last)

        asyncio.run(run())

    def test_role_bare_rust_to_python(self) -> None:
        async def run() -> None:
            e, last = await self.python_bare_acceptor_refused("--present-role", "acceptor")
            assert isinstance(e.cause, RoleConflict)
            self.assertEqual(e.cause.local, Role.ACCEPTOR)
            self.assertIn("Refused(RoleConflict { role: Acceptor })", last)
            self.report("role, bare, rust dials as acceptor -> python", e.cause, last)

        asyncio.run(run())

    def test_role_stable_python_session_as_acceptor_to_rust_acceptor(self) -> None:
        """A Python ``StableSession`` in the acceptor's role on a dialed
        connection to a Rust stable acceptor: both refuse the role."""

        async def run() -> None:
            peer = await self.rust_acceptor("stable")
            assert peer.address is not None
            session = StableSession(Role.ACCEPTOR, self.fp, self.config, now=0)
            reader, writer = await asyncio.open_connection(*peer.address)
            start = time.monotonic()
            session.attach(0)
            writer.write(framing.STREAM_START + b"".join(framing.encode_frame(p) for p in session.take_transmit()))
            session.receive(await first_payload(reader), int((time.monotonic() - start) * 1000))
            writer.write(b"".join(framing.encode_frame(p) for p in session.take_transmit()))
            self.assertLess(time.monotonic() - start, ROUND_TRIP)
            error = session.error
            assert isinstance(error, SessionRefused), error
            self.assertIsInstance(error.cause, RoleConflict)
            last = await self.rust_refused(peer, "RoleConflict { role: Acceptor }")
            writer.close()
            self.report("role, stable, python session as acceptor -> rust acceptor", error.cause, last)

        asyncio.run(run())

    # ------------------------------------------------------------ SessionUnknown

    def test_session_unknown_python_initiator_fresh_rust_acceptor(self) -> None:
        """A Python initiator resumes with the key of a Rust acceptor that
        was replaced by a fresh one: ``Reject(SessionUnknown)``, Python's
        session ends with ``SessionLost`` within a round trip of the new
        link."""

        async def run() -> None:
            many = ("--count", "1000000")
            old = await self.rust_acceptor("stable", *many)
            assert old.address is not None
            proxy = await CuttingProxy(old.address, random.Random(FIRST_SEED), 0, 0).start()
            conduit = await StableConduit.connect(*proxy.address, self.fp, self.config)
            new: Optional[Peer] = None
            try:
                await conduit.send(postcard.encode_byte_slice(peer_message(0, 16)))
                self.assertEqual(await asyncio.wait_for(conduit.recv(), 5), postcard.encode_byte_slice(peer_message(0, 16)))
                self.assertIsNotNone(conduit.session.resume_key)
                # The fresh acceptor is a StableAcceptor (``--mode table``),
                # whose stats show the unknown key on the Rust side.
                new = await Peer.start(
                    self.peer_bin, "--mode", "table", "--role", "acceptor", "--listen", "127.0.0.1:0", "--accept", "1"
                )
                assert new.address is not None
                proxy.backend = new.address
                old.kill()  # the link dies; the initiator dials the proxy again: the fresh acceptor
                start = time.monotonic()
                with self.assertRaises(SessionLost):
                    while True:
                        await asyncio.wait_for(conduit.recv(), 5)
                elapsed = time.monotonic() - start
                line = await self.wait_stats(new, "unknown_keys: 1,")
            finally:
                old.kill()
                if new is not None:
                    new.kill()
                await proxy.stop()
            self.assertGreaterEqual(proxy.connections, 2)
            # The link's death is noticed at once (the connection closes),
            # then a dial and one round trip.
            self.assertLess(elapsed, 2.0)
            self.report("SessionUnknown, python initiator -> fresh rust acceptor", conduit.error, f"{line} ({elapsed * 1000:.0f} ms)")

        asyncio.run(run())

    def test_session_unknown_rust_initiator_restarted_python_acceptor(self) -> None:
        """A Rust initiator resumes against a Python acceptor that
        restarted (a new ``StableConduit`` behind the same address): the new
        one answers ``Reject(SessionUnknown)``, the Rust session ends with
        ``SessionLost``."""

        async def run() -> None:
            old = await StableConduit.listen("127.0.0.1", 0, self.fp, self.config)
            assert old.address is not None
            proxy = await CuttingProxy(old.address, random.Random(FIRST_SEED), 0, 0).start()
            peer = await self.rust_initiator("stable", proxy.address, "--count", "1000000")
            new: Optional[StableConduit] = None
            try:
                self.assertEqual(await asyncio.wait_for(old.recv(), 5), postcard.encode_byte_slice(peer_message(0, 16)))
                await old.send(postcard.encode_byte_slice(peer_message(0, 16)))
                new = await StableConduit.listen("127.0.0.1", 0, self.fp, self.config)
                assert new.address is not None
                proxy.backend = new.address
                start = time.monotonic()
                await old.abort()
                last = await self.rust_refused(peer, "SessionLost")
                elapsed = time.monotonic() - start
            finally:
                peer.kill()
                await proxy.stop()
                if new is not None:
                    await new.abort()
            self.assertGreaterEqual(proxy.connections, 2)
            self.assertLess(elapsed, 2.0)
            assert new is not None
            self.assertFalse(new.session.established, "the restarted acceptor took no session")
            self.report("SessionUnknown, rust initiator -> restarted python acceptor", "Reject(SessionUnknown) sent", last)

        asyncio.run(run())


    # ------------------------------------------------------------ TableFull, Busy

    async def wait_stats(self, peer: Peer, want: str, timeout: float = 5) -> str:
        """The table peer's first ``stats`` line containing ``want``."""

        async def read() -> str:
            while True:
                line = await peer.line()
                if not line:
                    raise AssertionError(f"the table peer ended before {want!r}: {peer.lines[-3:]}")
                if line.startswith("stats ") and want in line:
                    return line

        return await asyncio.wait_for(read(), timeout)

    def test_table_full_from_rust_stable_acceptor(self) -> None:
        """One session in the table, live and accepted: a second initiator
        gets ``Reject(TableFull)`` and ends with ``SessionRejected``."""

        async def run() -> None:
            peer = await Peer.start(
                self.peer_bin, "--mode", "table", "--role", "acceptor", "--listen", "127.0.0.1:0",
                "--sessions", "1", "--queue", "1", "--accept", "1",
            )
            assert peer.address is not None
            first = await StableConduit.connect(*peer.address, self.fp, self.config)
            second: Optional[StableConduit] = None
            try:
                msg = postcard.encode_byte_slice(b"live")
                await asyncio.wait_for(first.send(msg), 5)
                self.assertEqual(await asyncio.wait_for(first.recv(), 5), msg, "the first session is echoed")
                start = time.monotonic()
                second = await StableConduit.connect(*peer.address, self.fp, self.config)
                with self.assertRaises(SessionRejected) as caught:
                    await asyncio.wait_for(second.recv(), 5)
                elapsed = time.monotonic() - start
                line = await self.wait_stats(peer, "table_full: 1")
            finally:
                peer.kill()
                await first.abort()
                if second is not None:
                    await second.abort()
            self.assertEqual(caught.exception.reason, RejectReason.TABLE_FULL)
            self.assertLess(elapsed, ROUND_TRIP)
            self.report("TableFull, python initiator -> rust StableAcceptor", caught.exception, line)

        asyncio.run(run())

    def test_busy_from_rust_stable_acceptor(self) -> None:
        """A table of 2, a queue of 1, an application that accepts nothing:
        the first initiator waits in the queue, the second gets
        ``Reject(Busy)``, dials again with backoff and ends with
        ``SessionRejected(BUSY)`` after ``connect_timeout_ms``."""

        async def run() -> None:
            peer = await Peer.start(
                self.peer_bin, "--mode", "table", "--role", "acceptor", "--listen", "127.0.0.1:0",
                "--sessions", "2", "--queue", "1", "--accept", "0",
            )
            assert peer.address is not None
            first = await StableConduit.connect(*peer.address, self.fp, self.config)
            second: Optional[StableConduit] = None
            config = StableConfig(max_message=64, timeout_ms=500, keepalive_ms=100, linger_ms=500, connect_timeout_ms=800)
            try:
                await self.wait_stats(peer, "accepted: 1")
                start = time.monotonic()
                second = await StableConduit.connect(*peer.address, self.fp, config)
                with self.assertRaises(SessionRejected) as caught:
                    await asyncio.wait_for(second.recv(), 5)
                elapsed = time.monotonic() - start
                line = await self.wait_stats(peer, "busy: 1,")
            finally:
                peer.kill()
                await first.abort()
                if second is not None:
                    await second.abort()
            self.assertEqual(caught.exception.reason, RejectReason.BUSY)
            self.assertGreater(second.stats.busy_retries, 0)
            self.assertGreaterEqual(elapsed, 0.8)
            self.assertLess(elapsed, 2.5)
            self.report(
                "Busy, python initiator -> rust StableAcceptor",
                caught.exception,
                f"{line} (python retried {second.stats.busy_retries} times in {elapsed:.2f} s)",
            )

        asyncio.run(run())


if __name__ == "__main__":
    unittest.main()
