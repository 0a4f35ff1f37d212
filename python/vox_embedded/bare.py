"""The bare conduit over framed TCP with asyncio (docs/PROTOCOL.md, section 4).

One link, one conduit: the initiator sends its prologue (section 3) at
once; the acceptor reads the initiator's first (as the reference acceptor
does) and answers it with its own. A refused prologue (another version,
mode, schema fingerprint, or the same role) is answered with this side's
own, so the peer finds the same mismatch, and both sides end with a typed
:class:`BareRefused` within one round trip. After the prologues every
payload is one postcard-encoded message of the family, both ways. There
are no acknowledgements and no resume: the conduit dies with its link
(:class:`LinkLost`), and the peer's graceful end (``01 00``, section 2) is
:class:`~vox_embedded.stable_io.EndOfStream` after every earlier message.

::

    conduit = await BareConduit.connect("127.0.0.1", 7000, fingerprint)
    await conduit.send(b"\\x03abc")        # postcard of one message
    reply = await conduit.recv()           # EndOfStream after the peer closed
    await conduit.close()                  # our end-of-stream marker

    listener = await BareConduit.listen("127.0.0.1", 0, fingerprint)
    conduit = await listener.accept()      # the next connection whose prologue is acceptable

Messages are opaque bytes, as with :class:`~vox_embedded.stable_io.StableConduit`.
"""

from __future__ import annotations

# r[impl py.package]

import asyncio
from typing import Optional, Union

from . import framing
from .errors import VoxError
from .prologue import (
    PROTOCOL_VERSION,
    Mode,
    Prologue,
    PrologueDecodeError,
    PrologueError,
    PrologueRefusal,
    Role,
    check_peer,
    decode_prologue,
)
from .stable_io import EndOfStream
from .stable_session import DirectionClosed

__all__ = [
    "BareConduit",
    "BareListener",
    "BareError",
    "BareRefused",
    "LinkLost",
    "PeerClosed",
    "HandshakeTimeout",
    "EndOfStream",
    "DEFAULT_MTU",
    "DEFAULT_HANDSHAKE_TIMEOUT",
]

#: Largest payload (one encoded message) accepted or sent by default.
DEFAULT_MTU = 2048
#: Seconds a handshake may take (the peer's prologue must come within it).
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
#: Received messages buffered before reading from the socket pauses.
_RX_QUEUE = 256
#: Seconds a refusing side keeps the link open after its answer, so the
#: answer is read before the connection closes.
_REFUSAL_LINGER = 1.0


class BareError(VoxError):
    """Why a bare conduit could not be made, or died."""


class BareRefused(BareError):
    """The prologues do not match (section 3), or the peer's first payload
    is not a prologue. ``cause`` is the
    :class:`~vox_embedded.prologue.PrologueError` naming both values
    (:class:`~vox_embedded.prologue.VersionMismatch`,
    :class:`~vox_embedded.prologue.ModeMismatch`,
    :class:`~vox_embedded.prologue.SchemaMismatch`,
    :class:`~vox_embedded.prologue.RoleConflict`, or a decode error).
    Trying again fails the same way."""

    def __init__(self, cause: PrologueError) -> None:
        """Wraps the refusal (or decode error) found."""
        super().__init__(f"bare conduit refused: {cause}")
        self.cause = cause


class LinkLost(BareError):
    """The link died: the connection closed or reset without the peer's
    end-of-stream marker, or a framing error (CRC, malformed, oversized,
    section 2). The conduit is dead; ``reason`` says how; ``framing_error``
    is the framing error, if one killed it."""

    def __init__(self, reason: str, framing_error: Optional[framing.FramingError] = None) -> None:
        """Records how the link died."""
        super().__init__(f"bare conduit's link lost: {reason}")
        self.reason = reason
        self.framing_error = framing_error


class PeerClosed(LinkLost):
    """The link ended before the peer's prologue (the peer is shutting
    down, or its acceptor had no room: section 4)."""


class HandshakeTimeout(LinkLost):
    """No prologue from the peer within the handshake timeout."""


_Item = Union[bytes, BaseException]


class BareConduit:
    """A bare conduit on one framed TCP connection (see the module
    documentation). Make one with :meth:`connect`, :meth:`listen` then
    :meth:`BareListener.accept`, or :meth:`over_streams`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        local: Prologue,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        """Prefer the class methods, which run the handshake."""
        self._reader = reader
        self._writer = writer
        self.local = local
        #: The peer's prologue, once the handshake completed.
        self.peer: Optional[Prologue] = None
        self.mtu = mtu
        self._decoder = framing.FrameDecoder(mtu)
        self._pending: list[framing.DecodeEvent] = []
        self._rx: asyncio.Queue[_Item] = asyncio.Queue(_RX_QUEUE)
        self._error: Optional[BareError] = None
        self._rx_task: Optional[asyncio.Task[None]] = None
        self._tx_closed = False
        self._rx_done = False
        self._closed = False
        #: Messages sent and received.
        self.sent = 0
        self.received = 0

    # ---------------------------------------------------------------- construction

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        fingerprint: bytes,
        *,
        mtu: int = DEFAULT_MTU,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        role: Role = Role.INITIATOR,
        version: int = PROTOCOL_VERSION,
        mode: Mode = Mode.BARE,
    ) -> "BareConduit":
        """Dials ``host:port`` and runs the initiator's handshake. Raises
        :class:`BareRefused`, :class:`PeerClosed`, :class:`HandshakeTimeout`
        or :class:`LinkLost` (the connection failed). ``role``, ``version``
        and ``mode`` change what this side presents (for refusal tests)."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeout(f"no connection to {host}:{port} within {timeout} s") from None
        except OSError as e:
            raise LinkLost(f"cannot connect to {host}:{port}: {e}") from None
        local = Prologue(mode=mode, role=role, fingerprint=bytes(fingerprint), version=version)
        c = cls(reader, writer, local, mtu)
        await c._handshake(timeout, answer_first=False)
        return c

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        fingerprint: bytes,
        *,
        mtu: int = DEFAULT_MTU,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        role: Role = Role.ACCEPTOR,
        version: int = PROTOCOL_VERSION,
        mode: Mode = Mode.BARE,
    ) -> "BareListener":
        """A listener on ``host:port`` (port 0: any, see
        :attr:`BareListener.address`) whose :meth:`BareListener.accept`
        returns one conduit per connection."""
        local = Prologue(mode=mode, role=role, fingerprint=bytes(fingerprint), version=version)
        listener = BareListener(local, mtu, timeout)
        await listener._start(host, port)
        return listener

    @classmethod
    async def over_streams(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        local: Prologue,
        *,
        mtu: int = DEFAULT_MTU,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> "BareConduit":
        """Runs the handshake of ``local``'s role on a fresh byte stream
        (an initiator sends first; an acceptor answers the peer's prologue)
        and returns the conduit."""
        c = cls(reader, writer, local, mtu)
        await c._handshake(timeout, answer_first=local.role == Role.ACCEPTOR)
        return c

    # ---------------------------------------------------------------- handshake

    def _write_prologue(self) -> None:
        self._writer.write(framing.STREAM_START + framing.encode_frame(self.local.encode()))

    async def _first_payload(self) -> bytes:
        """The peer's first payload (strict framing: a TCP connection
        starts at a frame boundary)."""
        while True:
            while self._pending:
                ev = self._pending.pop(0)
                if isinstance(ev, framing.Payload):
                    return ev.data
                if isinstance(ev, framing.EndOfStream):
                    raise PeerClosed("the peer ended its direction before its prologue")
                raise LinkLost(f"framing error before the prologue: {ev}", ev)
            try:
                data = await self._reader.read(65536)
            except OSError as e:
                raise LinkLost(f"the connection failed before the peer's prologue: {e}") from None
            if not data:
                raise PeerClosed("the connection closed before the peer's prologue")
            self._pending.extend(self._decoder.feed(data))

    async def _handshake(self, timeout: float, answer_first: bool) -> None:
        """Exchanges prologues. An initiator (``answer_first`` false) sends
        first; an acceptor reads the initiator's prologue first and answers
        it (also when it refuses it). Raises the typed errors and closes
        the link on failure."""
        if not answer_first:
            self._write_prologue()
        try:
            first = await asyncio.wait_for(self._first_payload(), timeout)
        except asyncio.TimeoutError:
            self._abort_link()
            raise HandshakeTimeout(f"no prologue from the peer within {timeout} s") from None
        except LinkLost:
            self._abort_link()
            raise
        try:
            peer = decode_prologue(first, self.local.version)
            check_peer(self.local, peer)
        except PrologueRefusal as e:
            # Section 3: answer with ours so the peer finds the same
            # mismatch, then end (without retrying).
            if answer_first:
                self._write_prologue()
            self._linger_then_close()
            raise BareRefused(e) from None
        except PrologueDecodeError as e:
            # Not a prologue at all: drop the link without an answer.
            self._abort_link()
            raise BareRefused(e) from None
        if answer_first:
            self._write_prologue()
        self.peer = peer
        self._rx_task = asyncio.ensure_future(self._read_loop())

    def _linger_then_close(self) -> None:
        """After a refusal: ends our direction, and closes the connection
        once the peer closed it or after a short linger (so our answer is
        read, not reset)."""
        w = self._writer
        try:
            w.write(framing.END_OF_STREAM)
        except (OSError, RuntimeError):
            pass

        async def linger() -> None:
            try:
                await asyncio.wait_for(self._reader.read(), _REFUSAL_LINGER)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                w.close()

        self._closed = True
        asyncio.ensure_future(linger())

    def _abort_link(self) -> None:
        self._closed = True
        transport = self._writer.transport
        if transport is not None:
            transport.abort()

    # ---------------------------------------------------------------- receiving

    async def _read_loop(self) -> None:
        """Reads frames into the receive queue until the link ends; a link
        failure is queued as :class:`LinkLost`, the peer's end as
        :class:`EndOfStream`."""
        end: BaseException
        try:
            while True:
                while self._pending:
                    ev = self._pending.pop(0)
                    if isinstance(ev, framing.Payload):
                        await self._rx.put(ev.data)
                    elif isinstance(ev, framing.EndOfStream):
                        end = EndOfStream("the peer closed its direction")
                        raise _Stop(end)
                    else:
                        raise _Stop(LinkLost(f"framing error: {ev}", ev))
                try:
                    data = await self._reader.read(65536)
                except OSError as e:
                    raise _Stop(LinkLost(f"the connection failed: {e}")) from None
                if not data:
                    raise _Stop(LinkLost("the connection closed without the peer's end-of-stream marker"))
                self._pending.extend(self._decoder.feed(data))
        except _Stop as stop:
            end = stop.error
        if isinstance(end, LinkLost):
            self._fail(end)
        else:
            self._rx_done = True
            if self._tx_closed:
                self._close_transport()
        await self._rx.put(end)

    def _fail(self, error: LinkLost) -> None:
        if self._error is None:
            self._error = error
        self._abort_link()

    async def recv(self) -> bytes:
        """The next message (its postcard bytes), in order. Raises
        :class:`EndOfStream` after the peer closed its direction, or
        :class:`LinkLost` once the link died (now and on every later
        call)."""
        if self._rx_task is None:
            raise BareError("the conduit has no completed handshake")
        if self._rx.empty() and self._rx_task.done() and self._error is not None:
            raise self._error
        item = await self._rx.get()
        if isinstance(item, bytes):
            self.received += 1
            return item
        # Leave the end in the queue for every later call.
        self._rx.put_nowait(item)
        raise item

    def __aiter__(self) -> "BareConduit":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except EndOfStream:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------- sending

    async def send(self, msg: bytes) -> None:
        """Sends one encoded message (waits while the socket's buffer is
        full). Raises :class:`LinkLost` once the link died, ``ValueError``
        for a message over the MTU, and
        :class:`~vox_embedded.stable_session.DirectionClosed` after
        :meth:`close`."""
        if self._error is not None:
            raise self._error
        if self._tx_closed or self._closed:
            raise DirectionClosed("the bare conduit's sending direction is closed")
        if len(msg) > self.mtu:
            raise ValueError(f"a {len(msg)}-byte message does not fit the {self.mtu}-byte MTU")
        w = self._writer
        if w.transport.is_closing():
            self._fail(LinkLost("the connection is closed"))
            assert self._error is not None
            raise self._error
        w.write(framing.encode_frame(bytes(msg)))
        try:
            await w.drain()
        except (OSError, RuntimeError) as e:
            self._fail(LinkLost(f"the connection failed: {e}"))
            assert self._error is not None
            raise self._error from None
        self.sent += 1

    async def close(self) -> None:
        """Ends this side's direction (the end-of-stream marker after every
        message sent); the peer's messages can still be received until its
        own end. The connection closes once both directions ended. Raises
        :class:`LinkLost` if the link died."""
        if self._error is not None:
            raise self._error
        if self._tx_closed or self._closed:
            return
        self._tx_closed = True
        w = self._writer
        try:
            w.write(framing.END_OF_STREAM)
            await w.drain()
        except (OSError, RuntimeError) as e:
            self._fail(LinkLost(f"the connection failed: {e}"))
            assert self._error is not None
            raise self._error from None
        if self._rx_done:
            self._close_transport()

    def abort(self) -> None:
        """Drops the link at once (the peer sees it die)."""
        if self._error is None:
            self._error = LinkLost("aborted by this side")
        self._abort_link()
        if self._rx_task is not None and not self._rx_task.done():
            self._rx_task.cancel()
            try:
                self._rx.put_nowait(self._error)
            except asyncio.QueueFull:
                pass  # recv drains the queue, then finds the task done

    @property
    def error(self) -> Optional[BareError]:
        """Why the link died, if it did."""
        return self._error

    def _close_transport(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()

    async def __aenter__(self) -> "BareConduit":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.abort()


class _Stop(Exception):
    """Ends the read loop with an error or the peer's end."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class BareListener:
    """A TCP listener making one :class:`BareConduit` per connection (the
    acceptor of section 4: it reads the initiator's prologue before
    answering). Handshakes run concurrently; failed ones are kept in
    :attr:`refusals` (their typed errors) and do not stop the listener."""

    def __init__(self, local: Prologue, mtu: int, timeout: float) -> None:
        """Prefer :meth:`BareConduit.listen`."""
        self.local = local
        self.mtu = mtu
        self.timeout = timeout
        self.address: tuple[str, int] = ("", 0)
        self._server: Optional[asyncio.base_events.Server] = None
        self._accepted: asyncio.Queue[Union[BareConduit, BareError]] = asyncio.Queue()
        #: Typed errors of the handshakes that failed, in order.
        self.refusals: list[BareError] = []

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connection, host, port)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            c = await BareConduit.over_streams(reader, writer, self.local, mtu=self.mtu, timeout=self.timeout)
        except BareError as e:
            self.refusals.append(e)
            await self._accepted.put(e)
            return
        await self._accepted.put(c)

    async def accept(self, raise_errors: bool = False) -> BareConduit:
        """The next conduit whose handshake completed. With
        ``raise_errors``, a failed handshake raises its typed error
        (:class:`BareRefused`, :class:`PeerClosed`, ...) instead of being
        skipped."""
        while True:
            item = await self._accepted.get()
            if isinstance(item, BareConduit):
                return item
            if raise_errors:
                raise item

    def close(self) -> None:
        """Stops listening (conduits already made live on)."""
        if self._server is not None:
            self._server.close()

    async def __aenter__(self) -> "BareListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
