"""A discrete-time simulation of two :class:`StableSession` objects over
in-memory framed links with a seeded fault model, for the tests.

Links carry framed bytes (``framing.encode_frame``, decoded by a fresh
``FrameDecoder`` per link end) with a fixed latency. Faults, drawn per
frame from one ``random.Random``: ``drop`` (the frame vanishes, the link
goes on: the receiver sees a gap), ``corrupt`` (a byte flipped: the
receiver's link dies on the CRC error), ``cut`` (the link dies both ways,
frames in flight are lost). Time is virtual and jumps to the next event.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Optional

from vox_embedded import framing
from vox_embedded.prologue import Role
from vox_embedded.stable_session import StableSession


@dataclass
class Faults:
    """Per-frame fault probabilities."""

    drop: float = 0.0
    corrupt: float = 0.0
    cut: float = 0.0


class MemLink:
    """One link: two directions of timed byte chunks."""

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.queues: list[Deque[tuple[int, bytes]]] = [deque(), deque()]
        # closed[i]: side i's sending direction is closed (the other side
        # sees EOF once the queue drains).
        self.closed = [False, False]
        self.dead = False


@dataclass
class End:
    """A side's view: its session and its current link."""

    session: StableSession
    side: int
    link: Optional[MemLink] = None
    generation: int = -1
    decoder: Optional[framing.FrameDecoder] = None
    sent_frames: list[bytes] = field(default_factory=list)


def message(i: int, size: int) -> bytes:
    """Message ``i``: its number (4 bytes LE) and filler to ``size``."""
    body = (i & 0xFFFF_FFFF).to_bytes(4, "little")
    return body + bytes(((i * 31 + k) & 0xFF) for k in range(4, size))


class Sim:
    """Two sessions, ``a`` (index 0, usually the initiator) and ``b``."""

    def __init__(
        self,
        a: StableSession,
        b: StableSession,
        rng: random.Random,
        faults: Faults = Faults(),
        latency: int = 1,
        mtu: int = 2048,
        record: bool = False,
    ) -> None:
        self.ends = [End(a, 0), End(b, 1)]
        self.rng = rng
        self.faults = faults
        self.latency = latency
        self.mtu = mtu
        self.now = 0
        self.links = 0
        self.pending_accept: Deque[tuple[int, MemLink]] = deque()
        self.record = record
        self.cuts = 0

    # ---------------------------------------------------------------- links

    def _dial(self) -> None:
        a = self.ends[0]
        self.links += 1
        link = MemLink(self.links)
        self._use(a, link)
        a.session.attach(self.now)
        self.pending_accept.append((self.now + self.latency, link))

    def _use(self, end: End, link: MemLink) -> None:
        if end.link is not None and end.link is not link:
            self._close(end)
        end.link = link
        end.decoder = framing.FrameDecoder(self.mtu)
        end.generation = end.session.link_generation + 1

    def _close(self, end: End) -> None:
        link = end.link
        if link is not None:
            link.closed[end.side] = True
        end.link = None
        end.decoder = None

    def _cut(self, link: MemLink) -> None:
        self.cuts += 1
        link.dead = True
        link.queues[0].clear()
        link.queues[1].clear()
        link.closed = [True, True]

    def _flush(self, end: End) -> None:
        s = end.session
        out = s.take_transmit()
        link = end.link
        if link is not None and not link.closed[end.side]:
            for payload in out:
                if self.record:
                    end.sent_frames.append(payload)
                wire = framing.encode_frame(payload)
                r = self.rng.random()
                f = self.faults
                if r < f.drop:
                    continue
                r -= f.drop
                if r < f.corrupt:
                    pos = self.rng.randrange(len(wire) - 1)
                    b = wire[pos] ^ (1 << self.rng.randrange(8))
                    wire = wire[:pos] + bytes([b if b else 1]) + wire[pos + 1 :]
                else:
                    r -= f.corrupt
                    if r < f.cut:
                        self._cut(link)
                        break
                link.queues[end.side].append((self.now + self.latency, wire))
        if link is not None and (not s.has_link or s.link_generation != end.generation):
            self._close(end)

    def _deliver(self, end: End) -> None:
        link = end.link
        if link is None:
            return
        q = link.queues[1 - end.side]
        s = end.session
        while q and q[0][0] <= self.now and end.link is link:
            _, data = q.popleft()
            assert end.decoder is not None
            for ev in end.decoder.feed(data):
                if isinstance(ev, framing.Payload):
                    s.receive(ev.data, self.now)
                    self._flush(end)
                    if end.link is not link:
                        return
                else:
                    s.link_lost(self.now)
                    self._close(end)
                    return
        if end.link is link and not q and link.closed[1 - end.side]:
            s.link_lost(self.now)
            self._close(end)

    # ---------------------------------------------------------------- loop

    def step(self, app: Callable[["Sim"], None]) -> None:
        """One instant: timers, deliveries, links, the applications."""
        for end in self.ends:
            s = end.session
            t = s.poll_timeout()
            if t is not None and t <= self.now:
                s.handle_timeout(self.now)
            self._flush(end)
        for end in self.ends:
            self._deliver(end)
        a, b = self.ends
        while self.pending_accept and self.pending_accept[0][0] <= self.now:
            _, link = self.pending_accept.popleft()
            if link.closed[0] or b.session.ended:
                link.closed[1] = True
                continue
            self._use(b, link)
            b.session.attach(self.now)
            self._flush(b)
        if a.session.want_link(self.now) and a.link is None:
            self._dial()
            self._flush(a)
        app(self)
        for end in self.ends:
            self._flush(end)

    def next_time(self) -> int:
        """The next instant anything happens."""
        times = []
        for end in self.ends:
            t = end.session.poll_timeout()
            if t is not None:
                times.append(t)
            if end.link is not None:
                q = end.link.queues[1 - end.side]
                if q:
                    times.append(q[0][0])
                elif end.link.closed[1 - end.side]:
                    times.append(self.now)
        if self.pending_accept:
            times.append(self.pending_accept[0][0])
        a = self.ends[0].session
        if not a.ended and a.link_state.value == "none" and self.ends[0].link is None:
            times.append(a.retry_at)
        later = [t for t in times if t > self.now]
        return min(later) if later else self.now + 1

    def run(self, app: Callable[["Sim"], bool], limit_ms: int = 600_000) -> None:
        """Steps (calling ``app`` at each instant) until ``app`` returns
        ``True``; raises ``TimeoutError`` past ``limit_ms`` of virtual time."""
        done = [False]

        def wrapped(sim: "Sim") -> None:
            done[0] = bool(app(sim))

        while self.now <= limit_ms:
            self.step(wrapped)
            if done[0]:
                return
            self.now = self.next_time()
        raise TimeoutError(f"simulation did not finish by {limit_ms} ms")


class Exchange:
    """Both applications send ``count`` messages of ``size`` bytes and
    receive the peer's, checking exactly once and in order; then close."""

    def __init__(
        self,
        count: int,
        size: "int | Callable[[int], int]",
        read_gate: Optional[Callable[[int, int], bool]] = None,
    ) -> None:
        self.count = count
        self.size: Callable[[int], int] = size if callable(size) else (lambda _i, n=size: n)
        self.sent = [0, 0]
        self.received = [0, 0]
        self.closed = [False, False]
        self.eof = [False, False]
        self.read_gate = read_gate

    def __call__(self, sim: Sim) -> bool:
        for i, end in enumerate(sim.ends):
            s = end.session
            if s.error is not None:
                raise s.error
            while self.sent[i] < self.count and s.send(message(self.sent[i], self.size(self.sent[i])), sim.now):
                self.sent[i] += 1
            if self.sent[i] == self.count and not self.closed[i]:
                s.close(sim.now)
                self.closed[i] = True
            while self.read_gate is None or self.read_gate(i, sim.now):
                m = s.recv(sim.now)
                if m is None:
                    break
                want = message(self.received[i], self.size(self.received[i]))
                if m != want:
                    raise AssertionError(
                        f"side {i}: message {self.received[i]} wrong: got {m[:8].hex()}..., want {want[:8].hex()}..."
                    )
                self.received[i] += 1
            if s.recv_eof and s.peer_closed and not self.eof[i]:
                if self.received[i] != self.count:
                    raise AssertionError(f"side {i}: end of stream after {self.received[i]} of {self.count}")
                self.eof[i] = True
        return all(end.session.ended for end in sim.ends)


class StreamSim:
    """Two sessions over one pair of persistent byte streams (a serial
    line): links come and go on top of them. A side whose link dies (a
    corrupted frame) attaches a new link to the same streams at once; the
    other side keeps its link until it notices (a prologue, a gap, a
    timeout). Bytes that arrive while a side has no link wait for its next
    one, so a new link starts with stale bytes of the previous one (its
    first, tentative frame and whole stale frames). Faults: ``drop`` (a
    frame vanishes) and ``corrupt`` (a bit flips); ``cut`` is unused."""

    def __init__(
        self,
        a: StableSession,
        b: StableSession,
        rng: random.Random,
        faults: Faults = Faults(),
        latency: int = 1,
        mtu: int = 2048,
    ) -> None:
        self.sessions = [a, b]
        self.rng = rng
        self.faults = faults
        self.latency = latency
        self.mtu = mtu
        self.now = 0
        # streams[i]: bytes written by side i, in flight to the other side.
        self.streams: list[Deque[tuple[int, bytes]]] = [deque(), deque()]
        self.decoders: list[Optional[framing.FrameDecoder]] = [None, None]
        self.generations = [-1, -1]

    @property
    def ends(self) -> list[End]:
        """The sessions as :class:`End` objects (for :class:`Exchange`)."""
        return [End(s, i) for i, s in enumerate(self.sessions)]

    def _write(self, side: int, data: bytes) -> None:
        self.streams[side].append((self.now + self.latency, data))

    def _flush(self, side: int) -> None:
        s = self.sessions[side]
        for payload in s.take_transmit():
            wire = framing.encode_frame(payload)
            r = self.rng.random()
            if r < self.faults.drop:
                continue
            if r < self.faults.drop + self.faults.corrupt:
                pos = self.rng.randrange(len(wire))
                wire = wire[:pos] + bytes([wire[pos] ^ (1 << self.rng.randrange(8))]) + wire[pos + 1 :]
            self._write(side, wire)
        if self.decoders[side] is not None and (not s.has_link or s.link_generation != self.generations[side]):
            self.decoders[side] = None

    def _attach(self, side: int) -> None:
        s = self.sessions[side]
        if s.ended or s.has_link or not s.want_link(self.now) and s.role is Role.INITIATOR:
            return
        s.attach(self.now)
        self.decoders[side] = framing.FrameDecoder(self.mtu)
        self.generations[side] = s.link_generation
        self._write(side, framing.STREAM_START)
        self._flush(side)

    def _deliver(self, side: int) -> None:
        q = self.streams[1 - side]
        s = self.sessions[side]
        while q and q[0][0] <= self.now:
            dec = self.decoders[side]
            if dec is None:
                return  # bytes wait for the next link
            _, data = q.popleft()
            for ev in dec.feed(data):
                if self.decoders[side] is not dec:
                    break  # the rest of the chunk is lost with the link
                if isinstance(ev, framing.Payload):
                    s.receive(ev.data, self.now)
                    self._flush(side)
                elif isinstance(ev, framing.FramingError):
                    s.link_lost(self.now)
                    self.decoders[side] = None
                    break

    def run(self, app: Callable[[Sim], bool], limit_ms: int = 600_000) -> None:
        """Like :meth:`Sim.run`."""
        while self.now <= limit_ms:
            for side, s in enumerate(self.sessions):
                t = s.poll_timeout()
                if t is not None and t <= self.now:
                    s.handle_timeout(self.now)
                self._flush(side)
                self._attach(side)
            for side in (0, 1):
                self._deliver(side)
            if app(self):  # type: ignore[arg-type]
                return
            for side in (0, 1):
                self._flush(side)
            times = [t for t in (s.poll_timeout() for s in self.sessions) if t is not None]
            times += [q[0][0] for q in self.streams if q]
            times += [s.retry_at for s in self.sessions if not s.has_link and not s.ended]
            later = [t for t in times if t > self.now]
            self.now = min(later) if later else self.now + 1
        raise TimeoutError(f"simulation did not finish by {limit_ms} ms")
