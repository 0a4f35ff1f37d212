"""The stable conduit over TCP with asyncio, and a blocking wrapper.

:class:`StableConduit` runs a :class:`~vox_embedded.stable_session.StableSession`
over framed TCP connections (docs/PROTOCOL.md section 2: each connection is
one link, starting with a lone ``00``). An initiator
(:meth:`StableConduit.connect`) dials, and dials again whenever its link
dies, until the session ends; an acceptor (:meth:`StableConduit.listen`)
listens and serves one session across reconnects (a new connection replaces
the current link).

Messages are opaque bytes: the postcard encoding of one message of the
family whose 8-byte schema fingerprint the conduit was made with.

::

    conduit = await StableConduit.connect("127.0.0.1", 7000, fingerprint)
    await conduit.send(b"\\x03abc")      # waits while the replay buffer is full
    reply = await conduit.recv()         # EndOfStream after the peer closed
    await conduit.close()                # close our direction, wait for the end

:class:`BlockingConduit` offers the same calls from ordinary threads (it
runs the event loop in a thread of its own).
"""

from __future__ import annotations

# r[impl py.package]

import asyncio
import errno
import os
import termios
import threading
import tty
from typing import Any, Awaitable, Optional, TypeVar

from . import framing
from .prologue import Role
from .stable_session import (
    DEFAULT_CONFIG,
    DirectionClosed,
    SessionError,
    StableConfig,
    StableSession,
    StableStats,
)

__all__ = ["StableConduit", "BlockingConduit", "EndOfStream", "SerialStream", "FramingStats"]

_T = TypeVar("_T")

#: Framing MTU: the largest payload accepted (a message and its header).
_HEADER = 16


class EndOfStream(EOFError):
    """The peer closed its direction and every message was received."""


class FramingStats:
    """Framed-link counters over every link of a byte stream (as the Rust
    ``FramedStats``): links attached, payloads received, and each kind of
    framing error that killed a link."""

    def __init__(self) -> None:
        """All counters at 0."""
        self.links = 0
        self.payloads = 0
        self.crc_errors = 0
        self.malformed = 0
        self.oversized = 0
        self.end_of_stream = 0

    def count(self, ev: object) -> None:
        """Counts one decoder event."""
        if isinstance(ev, framing.Payload):
            self.payloads += 1
        elif isinstance(ev, framing.CrcMismatch):
            self.crc_errors += 1
        elif isinstance(ev, framing.OversizedFrame):
            self.oversized += 1
        elif isinstance(ev, framing.MalformedFrame):
            self.malformed += 1
        elif isinstance(ev, framing.EndOfStream):
            self.end_of_stream += 1

    def __repr__(self) -> str:
        return (
            f"FramingStats(links={self.links}, payloads={self.payloads}, crc_errors={self.crc_errors}, "
            f"malformed={self.malformed}, oversized={self.oversized}, end_of_stream={self.end_of_stream})"
        )


# r[impl py.interop]
class SerialStream:
    """One byte stream (a serial port, a pseudo-terminal) that framed links
    attach to one after another (section 2: after a link dies, a fresh link
    attaches to the same stream, its first frame tentative), like the Rust
    ``FramedPort``. Standard library only: ``os.open``, ``termios`` raw
    mode, the event loop's ``add_reader``.

    The stream outlives sessions: after a session ends (for example with
    ``SessionLost`` when the device restarted), make a new conduit on the
    same stream with :meth:`StableConduit.over_stream`.
    """

    def __init__(self, fd: int, close_fd: bool = True) -> None:
        """Wraps the open, non-blocking descriptor ``fd`` (use :meth:`open`
        for a path); call from the event loop's thread."""
        self.fd = fd
        self._close_fd = close_fd
        self._loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader(limit=1 << 20, loop=self._loop)
        self._out = bytearray()
        self._writing = False
        self.closed = False
        self.stats = FramingStats()
        self._loop.add_reader(fd, self._on_readable)

    @classmethod
    async def open(cls, path: str, baud: Optional[int] = None) -> "SerialStream":
        """Opens the tty or pty at ``path`` in raw mode (no echo, no line
        discipline), non-blocking; ``baud`` sets the speed of a real
        port."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            if os.isatty(fd):
                tty.setraw(fd, termios.TCSANOW)
                if baud is not None:
                    attrs = termios.tcgetattr(fd)
                    speed = getattr(termios, f"B{baud}")
                    attrs[4] = attrs[5] = speed
                    termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (OSError, termios.error, AttributeError):
            os.close(fd)
            raise
        return cls(fd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            # EIO: the other end of a pty is gone (QEMU exited); keep the
            # stream and wait for nothing more.
            if e.errno == errno.EIO:
                self._loop.remove_reader(self.fd)
                self.reader.feed_eof()
                return
            raise
        if not data:
            self._loop.remove_reader(self.fd)
            self.reader.feed_eof()
            return
        self.reader.feed_data(data)

    def write(self, data: bytes) -> None:
        """Writes ``data`` (buffered while the descriptor is full)."""
        if self.closed:
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                n = os.write(self.fd, self._out)
            except BlockingIOError:
                break
            except OSError:
                self._out.clear()  # nobody is at the other end: the bytes are lost, as on a wire
                break
            del self._out[:n]
        if self._out and not self._writing:
            self._writing = True
            self._loop.add_writer(self.fd, self._on_writable)
        elif not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self.fd)

    def _on_writable(self) -> None:
        self._flush()

    def close(self) -> None:
        """Stops reading and writing; closes the descriptor if it owns it."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.fd)
        if self._writing:
            self._loop.remove_writer(self.fd)
        if self._close_fd:
            os.close(self.fd)
        self.reader.feed_eof()


class _LinkWriter:
    """The write side of one framed link on a :class:`SerialStream`:
    closing it ends the link, not the stream (the asyncio ``StreamWriter``
    calls the conduit uses)."""

    def __init__(self, stream: SerialStream) -> None:
        self._stream = stream
        self._closed = False
        self.transport = self

    def is_closing(self) -> bool:
        """The link was closed (or the stream)."""
        return self._closed or self._stream.closed

    def write(self, data: bytes) -> None:
        """Writes on the stream while the link is open."""
        if not self.is_closing():
            self._stream.write(data)

    def close(self) -> None:
        """Ends the link."""
        self._closed = True


class _LinkReader:
    """The read side of one framed link on a :class:`SerialStream`."""

    def __init__(self, stream: SerialStream) -> None:
        self._stream = stream

    async def read(self, n: int) -> bytes:
        """Reads what the stream has (``b""`` at its end)."""
        return await self._stream.reader.read(n)


class StableConduit:
    """A stable conduit over TCP (see the module documentation). Make one
    with :meth:`connect` or :meth:`listen`."""

    def __init__(
        self,
        role: Role,
        fingerprint: bytes,
        config: StableConfig = DEFAULT_CONFIG,
    ) -> None:
        """Prefer :meth:`connect` and :meth:`listen`, which also start the
        conduit."""
        self._loop = asyncio.get_running_loop()
        self._base = self._loop.time()
        self.session = StableSession(role, fingerprint, config, now=0)
        self._mtu = config.max_message + _HEADER
        self._writer: Optional[asyncio.StreamWriter] = None
        self._writer_gen = -1
        self._reader_task: Optional[asyncio.Task[None]] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[int] = None
        self._event = asyncio.Event()
        self._done = asyncio.Event()
        self._server: Optional[asyncio.base_events.Server] = None
        self._driver: Optional[asyncio.Task[None]] = None
        self._dial_addr: Optional[tuple[str, int]] = None
        self.address: Optional[tuple[str, int]] = None
        self._stream: Optional[SerialStream] = None
        #: Framing counters (the stream's, for a conduit over a stream).
        self.framing = FramingStats()

    # ---------------------------------------------------------------- construction

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        fingerprint: bytes,
        config: StableConfig = DEFAULT_CONFIG,
    ) -> "StableConduit":
        """An initiator dialing ``host:port``; returns at once (the
        handshake runs in the background; sends wait for it)."""
        c = cls(Role.INITIATOR, fingerprint, config)
        c._dial_addr = (host, port)
        c._driver = asyncio.ensure_future(c._drive_initiator())
        return c

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        fingerprint: bytes,
        config: StableConfig = DEFAULT_CONFIG,
    ) -> "StableConduit":
        """An acceptor for one session, listening on ``host:port`` (port 0:
        any; see :attr:`address`)."""
        c = cls(Role.ACCEPTOR, fingerprint, config)
        c._server = await asyncio.start_server(c._on_connection, host, port)
        sock = c._server.sockets[0].getsockname()
        c.address = (sock[0], sock[1])
        return c

    @classmethod
    async def over_stream(
        cls,
        stream: SerialStream,
        role: Role,
        fingerprint: bytes,
        config: StableConfig = DEFAULT_CONFIG,
        mtu: Optional[int] = None,
    ) -> "StableConduit":
        """A conduit (one session, either role) whose links are framed
        links on ``stream``, one after another: a link that dies (a framing
        error, a handshake timeout) is followed at once by a fresh one on
        the same stream. ``mtu`` is the framing MTU (default
        ``max_message + 16``; the demo UART's is 256)."""
        c = cls(role, fingerprint, config)
        c._stream = stream
        c.framing = stream.stats
        if mtu is not None:
            c._mtu = mtu
        c._driver = asyncio.ensure_future(c._drive_stream())
        return c

    # ---------------------------------------------------------------- application

    @property
    def stats(self) -> StableStats:
        """The session's counters."""
        return self.session.stats

    @property
    def error(self) -> Optional[SessionError]:
        """Why the session ended, if it ended with an error."""
        return self.session.error

    def _now(self) -> int:
        return int((self._loop.time() - self._base) * 1000)

    async def _wait(self) -> None:
        ev = self._event
        await ev.wait()

    async def send(self, msg: bytes) -> None:
        """Sends one encoded message, waiting while the replay buffer is
        full, and before the first handshake completed, until it did. Raises
        the session's error after it ended with one (a refused first
        handshake included),
        :class:`~vox_embedded.stable_session.DirectionClosed` after
        :meth:`close`."""
        s = self.session
        while not s.send(msg, self._now()):
            await self._wait()
        self._after()
        # Nothing sent before the first handshake counts as sent (section
        # 7): a refused first handshake fails these sends.
        while not s.established:
            if s.error is not None:
                raise s.error
            if s.ended:
                raise DirectionClosed("the session ended before its first handshake")
            await self._wait()

    async def recv(self) -> bytes:
        """The next message, exactly once and in order. Raises
        :class:`EndOfStream` after the peer closed (or the session ended
        normally), or the session's error."""
        s = self.session
        while True:
            m = s.recv(self._now())
            if m is not None:
                self._after()
                return m
            if s.error is not None:
                raise s.error
            if s.recv_eof:
                raise EndOfStream("the peer closed its direction")
            await self._wait()

    def __aiter__(self) -> "StableConduit":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except EndOfStream:
            raise StopAsyncIteration from None

    async def close(self, wait: bool = True) -> None:
        """Closes this side's direction (after every message sent); with
        ``wait``, waits until the session ended (both sides finished, or
        ``linger_ms`` passed) and raises its error if it had one."""
        self.session.close(self._now())
        self._after()
        if wait:
            await self.wait_closed()

    async def wait_closed(self) -> None:
        """Waits until the session ended; raises its error if any."""
        await self._done.wait()
        if self.session.error is not None:
            raise self.session.error

    async def abort(self) -> None:
        """Ends the session at once."""
        self.session.abort()
        self._after()

    # ---------------------------------------------------------------- driving

    def _after(self) -> None:
        """After every session call: write its frames, close a link it
        dropped, re-arm the timer, wake waiters."""
        s = self.session
        out = s.take_transmit()
        w = self._writer
        if w is not None:
            if out and not w.transport.is_closing():
                try:
                    w.write(b"".join([framing.encode_frame(p) for p in out]))
                except (OSError, RuntimeError):
                    pass
            if s.ended or not s.has_link or s.link_generation != self._writer_gen:
                self._close_link(graceful=s.ended and s.error is None)
        if s.ended:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._finish()
        else:
            t = s.poll_timeout()
            if t != self._timer_at:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._timer_at = t
                if t is not None:
                    self._timer = self._loop.call_at(self._base + t / 1000.0, self._on_timer)
        ev = self._event
        self._event = asyncio.Event()
        ev.set()

    def _on_timer(self) -> None:
        at = self._timer_at
        self._timer = None
        self._timer_at = None
        now = self._now()
        if at is not None and now < at:
            now = at
        self.session.handle_timeout(now)
        self._after()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        if self._server is not None:
            self._server.close()

    def _close_link(self, graceful: bool = False) -> None:
        w = self._writer
        self._writer = None
        task = self._reader_task
        self._reader_task = None
        if w is not None:
            try:
                if graceful:
                    w.write(framing.END_OF_STREAM)
                w.close()
            except (OSError, RuntimeError):
                pass
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _start_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> asyncio.Task[None]:
        if self._writer is not None:
            self._close_link()
        s = self.session
        s.attach(self._now())
        self.framing.links += 1
        self._writer = writer
        self._writer_gen = s.link_generation
        writer.write(framing.STREAM_START)
        self._after()
        task = asyncio.ensure_future(self._read_link(reader, s.link_generation))
        self._reader_task = task
        return task

    async def _read_link(self, reader: asyncio.StreamReader, gen: int) -> None:
        s = self.session
        decoder = framing.FrameDecoder(self._mtu)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                now = self._now()
                stop = False
                for ev in decoder.feed(data):
                    self.framing.count(ev)
                    if s.link_generation != gen or not s.has_link:
                        stop = True
                        break
                    if isinstance(ev, framing.Payload):
                        s.receive(ev.data, now)
                    else:
                        stop = True  # end of stream, or a framing error: the link is dead
                        break
                self._after()
                if stop or s.link_generation != gen or not s.has_link:
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if s.link_generation == gen and s.has_link:
                s.link_lost(self._now())
            if self._writer_gen == gen and self._writer is not None:
                self._close_link()
            self._after()

    async def _drive_stream(self) -> None:
        """Attaches framed links on the stream one after another until the
        session ends (or the stream does)."""
        s = self.session
        stream = self._stream
        assert stream is not None
        while not s.ended and not stream.closed and not stream.reader.at_eof():
            now = self._now()
            if s.role == Role.INITIATOR and not s.want_link(now):
                await asyncio.sleep(max(s.retry_at - now, 1) / 1000.0)
                continue
            task = self._start_link(_LinkReader(stream), _LinkWriter(stream))  # type: ignore[arg-type]
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        if not s.ended and (stream.closed or stream.reader.at_eof()):
            s.abort()
        self._after()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Acceptor: a new connection becomes the session's link (the
        initiator dials only when its previous link died)."""
        if self.session.ended:
            writer.close()
            return
        task = self._start_link(reader, writer)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def _drive_initiator(self) -> None:
        s = self.session
        assert self._dial_addr is not None
        host, port = self._dial_addr
        cfg = s.config
        while not s.ended:
            now = self._now()
            if not s.want_link(now):
                if s.has_link:
                    await self._wait()
                else:
                    await asyncio.sleep(max(s.retry_at - now, 1) / 1000.0)
                continue
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=cfg.timeout_ms / 1000.0
                )
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(max(cfg.retry_delay_ms, 1) / 1000.0)
                continue
            if s.ended:
                writer.close()
                break
            task = self._start_link(reader, writer)
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        self._after()


class BlockingConduit:
    """A :class:`StableConduit` for blocking code: an event loop runs in a
    daemon thread; every call waits for its result (``timeout`` in seconds,
    ``None``: forever).

    ::

        c = BlockingConduit.connect("127.0.0.1", 7000, fingerprint)
        c.send(b"\\x03abc")
        print(c.recv())
        c.close()
    """

    def __init__(self) -> None:
        """Prefer :meth:`connect` and :meth:`listen`."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vox-stable", daemon=True)
        self._thread.start()
        self._conduit: Optional[StableConduit] = None

    def _call(self, coro: Awaitable[_T], timeout: Optional[float] = None) -> _T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    @classmethod
    def connect(
        cls, host: str, port: int, fingerprint: bytes, config: StableConfig = DEFAULT_CONFIG
    ) -> "BlockingConduit":
        """An initiator dialing ``host:port``."""
        b = cls()
        b._conduit = b._call(StableConduit.connect(host, port, fingerprint, config))
        return b

    @classmethod
    def listen(
        cls, host: str, port: int, fingerprint: bytes, config: StableConfig = DEFAULT_CONFIG
    ) -> "BlockingConduit":
        """An acceptor for one session on ``host:port``."""
        b = cls()
        b._conduit = b._call(StableConduit.listen(host, port, fingerprint, config))
        return b

    @property
    def conduit(self) -> StableConduit:
        """The asyncio conduit (use it only from the loop's thread)."""
        assert self._conduit is not None
        return self._conduit

    @property
    def address(self) -> Optional[tuple[str, int]]:
        """An acceptor's bound address."""
        return self.conduit.address

    @property
    def stats(self) -> StableStats:
        """The session's counters (a snapshot)."""
        return self._call(self._stats())

    async def _stats(self) -> StableStats:
        import dataclasses

        return dataclasses.replace(self.conduit.stats)

    def send(self, msg: bytes, timeout: Optional[float] = None) -> None:
        """See :meth:`StableConduit.send`."""
        self._call(self.conduit.send(msg), timeout)

    def recv(self, timeout: Optional[float] = None) -> bytes:
        """See :meth:`StableConduit.recv`."""
        return self._call(self.conduit.recv(), timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """See :meth:`StableConduit.close`; then stops the loop's thread."""
        try:
            self._call(self.conduit.close(), timeout)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stops the event loop thread (the session is abandoned)."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> "BlockingConduit":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
