"""Calls over a conduit (PROTOCOL.md section 12): a sans-I/O side
(:class:`RpcCore`) and an asyncio wrapper over a
:class:`~vox_embedded.stable_io.StableConduit` (:class:`RpcHost`).

One :class:`RpcCore` is one session of calls: it greets (section 12.2),
takes clock samples and answers the peer's (12.3), sends our calls with
their deadlines in the peer's clock and matches each answer to its call
(12.4), serves the endpoints it declares (and the describe call), and
subscribes to the peer's topics, crediting the samples the application
took (12.5). It publishes no topics.

Sans I/O: every call takes ``now`` (ms on this side's clock, the clock its
``TimeReply``s report); after each call, send :meth:`RpcCore.take_transmit`
on the conduit, in order; call :meth:`RpcCore.handle_timeout` at
:meth:`RpcCore.poll_timeout`. A :class:`RpcViolation` from
:meth:`RpcCore.receive` ends the session (the caller aborts the conduit).
"""

from __future__ import annotations

# r[impl proto.complete]
# r[impl py.interop]

import asyncio
import collections
import enum
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Mapping, Optional, Tuple, Union

from . import rpc_frames as rf
from .errors import VoxError
from .stable_io import EndOfStream, StableConduit
from .stable_session import DirectionClosed, SessionError

__all__ = [
    "CallStatus",
    "CallResult",
    "Handler",
    "RpcCore",
    "RpcHost",
    "RpcViolation",
    "RpcVersionMismatch",
    "ReceivedSample",
    "TopicState",
]

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1

#: Clock samples taken back to back at the start of a session, and the
#: period of later ones (section 12.3).
START_SAMPLES = 8
SAMPLE_PERIOD_MS = 30_000


class RpcViolation(VoxError):
    """The peer broke section 12's rules (a frame before its ``Hello``, a
    second ``Hello``, a bad index, more samples than the window, a message
    that is not a frame): the session ends."""


class RpcVersionMismatch(RpcViolation):
    """The peer's envelope version is not ours (section 12.2): a refusal."""

    def __init__(self, ours: int, theirs: int) -> None:
        super().__init__(f"rpc envelope version {theirs}, ours is {ours}")
        self.ours = ours
        self.theirs = theirs


class CallStatus(enum.Enum):
    """How a call ended (section 12.4)."""

    #: Ran and succeeded: ``body`` is the response.
    REPLY = "reply"
    #: Ran and failed: ``body`` is the handler's error.
    FAILED = "failed"
    #: Did not run and never will: ``refusal`` says why (``Unknown`` also
    #: when the peer does not list the endpoint: the call was not sent).
    REFUSED = "refused"
    #: Ran, but its response was not sent.
    NO_REPLY = "no_reply"
    #: The session ended while the call was unanswered: it may have run
    #: (``error`` is the session's).
    UNRESOLVED = "unresolved"


@dataclass
class CallResult:
    """The typed outcome of one call."""

    id: int
    status: CallStatus
    body: bytes = b""
    refusal: Optional[rf.Refusal] = None
    error: Optional[BaseException] = None
    #: The bound (ms) on how late past its deadline the call may have
    #: started (the clock sample's ε when it was sent).
    epsilon: Optional[int] = None
    #: Sent on the conduit (false for a call refused locally).
    sent: bool = False

    @property
    def ok(self) -> bool:
        """The call ran and succeeded."""
        return self.status is CallStatus.REPLY


#: A served endpoint: takes the request body and ``now``, returns
#: ``(True, response_body)`` or ``(False, error_body)``; raises
#: :class:`VoxError` for a body that does not decode (``Undecodable``).
Handler = Callable[[bytes, int], Tuple[bool, bytes]]


@dataclass(frozen=True)
class ReceivedSample:
    """A sample of a topic we subscribed to (``topic_key`` is its 32-bit
    key)."""

    topic_key: int
    topic: int
    seq: int
    dup: bool
    body: bytes


@dataclass
class TopicState:
    """Our subscription to one of the peer's topics."""

    key: int
    index: int
    window: int
    #: Samples received this session and not yet credited.
    uncredited: int = 0
    #: ``seq`` + 1 of the latest sample taken (None before the first).
    next_credit: Optional[int] = None
    credited: Optional[int] = None
    received: int = 0
    duplicates: int = 0
    #: Gaps in ``seq`` (samples a lossy publisher dropped).
    lost: int = 0
    last_seq: Optional[int] = None


@dataclass
class _Pending:
    id: int
    endpoint: int
    body: bytes
    deadline_local: int
    sent: bool = False
    epsilon: Optional[int] = None


@dataclass
class RpcStats:
    """Counters of one :class:`RpcCore`."""

    calls_sent: int = 0
    answers: int = 0
    late_answers: int = 0
    requests_served: int = 0
    refused_sent: int = 0
    time_queries_answered: int = 0
    samples_taken: int = 0
    samples_dropped: int = 0
    samples_received: int = 0
    credits_sent: int = 0


class RpcCore:
    """One session of calls, sans I/O (see the module documentation).

    ``served`` maps the 32-bit keys of the endpoints this side declares
    (in ``Hello`` order) to their handlers; ``names`` (key to name) fills
    the describe call's reply."""

    def __init__(
        self,
        served: Mapping[int, Handler] | None = None,
        max_in_flight: int = 8,
        names: Mapping[int, str] | None = None,
        now: int = 0,
        max_message: int = 200,
    ) -> None:
        """A side that has not yet greeted (its ``Hello`` is the first
        frame :meth:`take_transmit` returns)."""
        self.served: Dict[int, Handler] = dict(served or {})
        self.endpoints: List[int] = list(self.served)
        self.max_in_flight = max_in_flight
        self.max_message = max_message
        self.names = dict(names or {})
        self.stats = RpcStats()
        self.peer: Optional[rf.Hello] = None
        self._hello_sent = False
        self._control: Deque[rf.RpcFrame] = collections.deque()  # answers, Subscribe, Credit, Cancel
        self._time_reply: Optional[rf.TimeReply] = None  # only the latest waits
        self._time_query_due = False
        self._query_out: Optional[int] = None  # t0 of the query in flight
        self._samples_taken = 0
        self._next_sample_at: Optional[int] = None
        self._sample: Optional[Tuple[int, int, int]] = None  # (offset, bound, taken_at)
        self._waiting: Deque[_Pending] = collections.deque()
        self._in_flight: Dict[int, _Pending] = {}
        self._next_id = 1
        self._prev_deadline_out = 0  # the peer's clock, last request sent
        self._deadline_in = 0  # our clock, sum of the peer's deadline differences
        self.results: Dict[int, CallResult] = {}
        self.topics: Dict[int, TopicState] = {}  # by the peer's topic index
        self._wanted: Dict[int, int] = {}  # topic key -> window, before the peer's Hello
        self.samples: Deque[ReceivedSample] = collections.deque()
        self.ended: Optional[BaseException] = None
        self.on_result: Optional[Callable[[CallResult], None]] = None

    # ------------------------------------------------------------- state

    @property
    def ready(self) -> bool:
        """The peer greeted and a clock sample exists (calls can go)."""
        return self.peer is not None and self._sample is not None

    def epsilon(self, now: int) -> Optional[int]:
        """The current sample's error bound (grown by its age), ms."""
        if self._sample is None:
            return None
        _, bound, taken = self._sample
        return bound + max(0, now - taken) // 10_000

    def peer_clock(self, now: int) -> Optional[int]:
        """Our ``now`` in the peer's clock (by the best sample)."""
        if self._sample is None:
            return None
        return now + self._sample[0]

    # ------------------------------------------------------------- application

    def call(self, endpoint_key: int, body: bytes, timeout_ms: int, now: int) -> int:
        """Queues a call of the peer's endpoint ``endpoint_key`` (32-bit
        key) with deadline ``now + timeout_ms`` (our clock); returns its
        id. A key the peer does not list is refused at once
        (``Unknown``, not sent); the result then is in :attr:`results`.
        Raises ``ValueError`` for a body whose request cannot fit one
        conduit message (``max_message``, counting a 10-byte deadline)."""
        worst = len(rf.encode_frame(rf.Request(_MASK32, 0xFFFF, 0, bytes(body)))) + 9
        if worst > self.max_message:
            raise ValueError(f"a request of {worst} bytes does not fit max_message {self.max_message}")
        cid = self._next_id
        self._next_id = (self._next_id + 1) & _MASK32 or 1
        if endpoint_key == rf.DESCRIBE_KEY:
            index = rf.DESCRIBE_ENDPOINT
        elif self.peer is None or endpoint_key not in self.peer.endpoints:
            self._resolve(CallResult(cid, CallStatus.REFUSED, refusal=rf.Refusal.UNKNOWN))
            return cid
        else:
            index = self.peer.endpoints.index(endpoint_key)
        self._waiting.append(_Pending(cid, index, bytes(body), now + timeout_ms))
        return cid

    def describe(self, timeout_ms: int, now: int) -> int:
        """Queues the built-in describe call (endpoint index ``0xffff``)."""
        return self.call(rf.DESCRIBE_KEY, b"", timeout_ms, now)

    def cancel(self, cid: int) -> None:
        """Gives up on call ``cid``: a call not yet sent is resolved
        ``Refused { Cancelled }``; a sent one gets a ``Cancel`` (its answer
        still comes and counts down the window, as a late answer)."""
        for p in list(self._waiting):
            if p.id == cid:
                self._waiting.remove(p)
                self._resolve(CallResult(cid, CallStatus.REFUSED, refusal=rf.Refusal.CANCELLED))
                return
        if cid in self._in_flight:
            self._control.append(rf.Cancel(cid))

    def subscribe(self, topic_key: int, window: int) -> None:
        """Subscribes to the peer's topic ``topic_key`` with ``window``
        samples (sent once the peer's ``Hello`` lists the topic)."""
        self._wanted[topic_key] = window
        if self.peer is not None:
            self._subscribe_listed()

    def take_samples(self) -> List[ReceivedSample]:
        """Every sample received, in order; they count as consumed and are
        credited."""
        out = list(self.samples)
        self.samples.clear()
        for s in out:
            t = self.topics.get(s.topic)
            if t is None:
                continue
            t.next_credit = (s.seq + 1) & _MASK32
            t.uncredited = max(0, t.uncredited - 1)
        for t in self.topics.values():
            if t.next_credit is not None and t.next_credit != t.credited:
                t.credited = t.next_credit
                self._control.append(rf.Credit(t.index, t.next_credit))
                self.stats.credits_sent += 1
        self.stats.samples_taken += len(out)
        return out

    def session_ended(self, error: Optional[BaseException]) -> None:
        """The conduit ended: every call not answered is unresolved (sent
        ones may have run; waiting ones never will, but are reported the
        same way, with the session's error)."""
        if self.ended is not None:
            return
        self.ended = error if error is not None else EndOfStream("the session ended")
        pending = list(self._in_flight.values()) + list(self._waiting)
        self._in_flight.clear()
        self._waiting.clear()
        for p in pending:
            self._resolve(CallResult(p.id, CallStatus.UNRESOLVED, error=self.ended, epsilon=p.epsilon, sent=p.sent))

    # ------------------------------------------------------------- wire

    def _subscribe_listed(self) -> None:
        assert self.peer is not None
        for key, window in list(self._wanted.items()):
            if key in self.peer.topics:
                index = self.peer.topics.index(key)
                if index not in self.topics:
                    self.topics[index] = TopicState(key, index, window)
                    self._control.append(rf.Subscribe(index, window))
                del self._wanted[key]

    def receive(self, msg: bytes, now: int) -> None:
        """Handles one conduit message. Raises :class:`RpcViolation` (the
        session must end)."""
        try:
            frame = rf.decode_frame(msg)
        except rf.MalformedRpcFrame as e:
            raise RpcViolation(f"not an rpc frame: {e}") from e
        if isinstance(frame, rf.Hello):
            if self.peer is not None:
                raise RpcViolation("a second Hello")
            if frame.version != rf.ENVELOPE_VERSION:
                raise RpcVersionMismatch(rf.ENVELOPE_VERSION, frame.version)
            self.peer = frame
            self._time_query_due = True
            self._subscribe_listed()
            return
        if self.peer is None:
            raise RpcViolation(f"{type(frame).__name__} before the peer's Hello")
        if isinstance(frame, rf.Request):
            self._serve(frame, now)
        elif isinstance(frame, (rf.Reply, rf.Failed, rf.Refused, rf.NoReply)):
            self._answer(frame, now)
        elif isinstance(frame, rf.Cancel):
            pass  # requests are answered as they arrive: nothing waits to be skipped
        elif isinstance(frame, rf.TimeQuery):
            self._time_reply = rf.TimeReply(frame.t0, now, now)  # t2 set when sent
            self.stats.time_queries_answered += 1
        elif isinstance(frame, rf.TimeReply):
            self._take_sample(frame, now)
        elif isinstance(frame, rf.Sample):
            self._sample_in(frame)
        elif isinstance(frame, rf.Subscribe):
            if frame.topic >= 0:
                raise RpcViolation(f"Subscribe to topic {frame.topic}: we publish none")
        elif isinstance(frame, rf.Credit):
            raise RpcViolation(f"Credit for topic {frame.topic}: we publish none")

    def _serve(self, req: rf.Request, now: int) -> None:
        self._deadline_in = (self._deadline_in + req.deadline) & _MASK64
        deadline = self._deadline_in - (1 << 64) if self._deadline_in >> 63 else self._deadline_in
        self.stats.requests_served += 1
        if req.endpoint == rf.DESCRIBE_ENDPOINT:
            entries = [rf.DescribeEntry(rf.EntryKind.ENDPOINT, k, self.names.get(k, f"{k:08x}")) for k in self.endpoints]
            self._control.append(rf.Reply(req.id, rf.encode_describe_reply(entries)))
            return
        if req.endpoint >= len(self.endpoints):
            self._refuse(req.id, rf.Refusal.UNKNOWN)
            return
        if now > deadline:
            self._refuse(req.id, rf.Refusal.EXPIRED)
            return
        handler = self.served[self.endpoints[req.endpoint]]
        try:
            ok, body = handler(req.body, now)
        except VoxError:
            self._refuse(req.id, rf.Refusal.UNDECODABLE)
            return
        self._control.append(rf.Reply(req.id, body) if ok else rf.Failed(req.id, body))

    def _refuse(self, rid: int, why: rf.Refusal) -> None:
        self.stats.refused_sent += 1
        self._control.append(rf.Refused(rid, why))

    def _answer(self, frame: Union[rf.Reply, rf.Failed, rf.Refused, rf.NoReply], now: int) -> None:
        p = self._in_flight.pop(frame.id, None)
        if p is None:
            self.stats.late_answers += 1
            return
        self.stats.answers += 1
        if isinstance(frame, rf.Reply):
            r = CallResult(p.id, CallStatus.REPLY, body=frame.body)
        elif isinstance(frame, rf.Failed):
            r = CallResult(p.id, CallStatus.FAILED, body=frame.body)
        elif isinstance(frame, rf.Refused):
            r = CallResult(p.id, CallStatus.REFUSED, refusal=frame.why)
        else:
            r = CallResult(p.id, CallStatus.NO_REPLY)
        r.epsilon = p.epsilon
        r.sent = True
        self._resolve(r)

    def _resolve(self, r: CallResult) -> None:
        self.results[r.id] = r
        if self.on_result is not None:
            self.on_result(r)

    def _take_sample(self, frame: rf.TimeReply, now: int) -> None:
        if self._query_out is None or frame.t0 != self._query_out:
            return  # not the query in flight: an old one
        self._query_out = None
        self._samples_taken += 1
        s = rf.clock_sample(frame.t0, frame.t1, frame.t2, now)
        if s is not None:
            offset, rtt = s
            bound = rf.error_bound(rtt)
            cur = self.epsilon(now)
            if cur is None or bound <= cur:
                self._sample = (offset, bound, now)
        if self._samples_taken < START_SAMPLES:
            self._time_query_due = True
        else:
            self._next_sample_at = now + SAMPLE_PERIOD_MS

    def _sample_in(self, frame: rf.Sample) -> None:
        t = self.topics.get(frame.topic)
        if t is None:
            raise RpcViolation(f"Sample of topic {frame.topic}, not subscribed")
        t.uncredited += 1
        if t.uncredited > t.window:
            raise RpcViolation(f"topic {frame.topic}: {t.uncredited} samples beyond a window of {t.window}")
        t.received += 1
        self.stats.samples_received += 1
        if t.last_seq is not None:
            ahead = (frame.seq - t.last_seq) & _MASK32
            if ahead == 0 or ahead >= 1 << 31:
                if frame.dup:
                    t.duplicates += 1
                    # consumed at once: credit it with the next take
                    t.uncredited -= 1
                    if t.next_credit is None:
                        t.next_credit = (frame.seq + 1) & _MASK32
                    return
            elif ahead > 1:
                t.lost += ahead - 1
        t.last_seq = frame.seq
        self.samples.append(ReceivedSample(t.key, frame.topic, frame.seq, frame.dup, frame.body))

    def take_transmit(self, now: int) -> List[bytes]:
        """The messages to send now, most urgent first (section 12.6)."""
        out: List[rf.RpcFrame] = []
        if not self._hello_sent:
            self._hello_sent = True
            out.append(
                rf.Hello(rf.ENVELOPE_VERSION, self.max_in_flight, rf.service_fingerprint(self.endpoints), self.endpoints, [])
            )
        if self.ended is not None:
            return [rf.encode_frame(f) for f in out]
        if self._time_reply is not None:
            q = self._time_reply
            out.append(rf.TimeReply(q.t0, q.t1, max(now, q.t1)))
            self._time_reply = None
        if self.peer is not None and self._query_out is None and (
            self._time_query_due or (self._next_sample_at is not None and now >= self._next_sample_at)
        ):
            self._time_query_due = False
            self._next_sample_at = None
            self._query_out = now
            out.append(rf.TimeQuery(now))
        while self._control:
            out.append(self._control.popleft())
        if self.ready:
            assert self.peer is not None and self._sample is not None
            while self._waiting and len(self._in_flight) < self.peer.max_in_flight:
                p = self._waiting.popleft()
                absolute = p.deadline_local + self._sample[0]
                delta = absolute - self._prev_deadline_out
                self._prev_deadline_out = absolute
                p.sent = True
                p.epsilon = self.epsilon(now)
                self._in_flight[p.id] = p
                self.stats.calls_sent += 1
                out.append(rf.Request(p.id, p.endpoint, delta, p.body))
        return [rf.encode_frame(f) for f in out]

    def poll_timeout(self) -> Optional[int]:
        """When :meth:`handle_timeout` wants calling (the next clock sample)."""
        if self._query_out is None and self._next_sample_at is not None:
            return self._next_sample_at
        return None

    def handle_timeout(self, now: int) -> None:
        """Time passed: a clock sample may be due (see :meth:`take_transmit`)."""

    @property
    def in_flight(self) -> int:
        """Our requests sent and not answered."""
        return len(self._in_flight)


class RpcHost:
    """A :class:`RpcCore` over a :class:`StableConduit` (one session),
    on asyncio. Start it with :meth:`start`; ``await host.call(...)``;
    samples arrive on :attr:`samples` (an ``asyncio.Queue`` of
    :class:`ReceivedSample`, credited as they are queued: the queue is the
    consumer); :meth:`wait_ended` returns why the session ended."""

    def __init__(self, conduit: StableConduit, core: RpcCore) -> None:
        """Prefer :meth:`start`."""
        self.conduit = conduit
        self.core = core
        self._loop = asyncio.get_running_loop()
        self._base = conduit._base
        self._futures: Dict[int, "asyncio.Future[CallResult]"] = {}
        self._kick = asyncio.Event()
        self._ready = asyncio.Event()
        self._ended: "asyncio.Future[Optional[BaseException]]" = self._loop.create_future()
        self.samples: "asyncio.Queue[ReceivedSample]" = asyncio.Queue()
        self._tasks: List["asyncio.Task[None]"] = []
        core.on_result = self._on_result

    @classmethod
    async def start(
        cls,
        conduit: StableConduit,
        served: Mapping[int, Handler] | None = None,
        subscribe: Mapping[int, int] | None = None,
        max_in_flight: int = 8,
        names: Mapping[int, str] | None = None,
    ) -> "RpcHost":
        """Greets over ``conduit`` and runs the session: ``served`` our
        endpoints (key to handler), ``subscribe`` the peer's topics we
        want (key to window)."""
        core = RpcCore(served, max_in_flight, names, max_message=conduit.session.config.max_message)
        for key, window in (subscribe or {}).items():
            core.subscribe(key, window)
        h = cls(conduit, core)
        h._tasks = [asyncio.ensure_future(h._recv_loop()), asyncio.ensure_future(h._send_loop())]
        return h

    def now(self) -> int:
        """This side's clock: ms since the conduit started."""
        return int((self._loop.time() - self._base) * 1000)

    def _on_result(self, r: CallResult) -> None:
        fut = self._futures.pop(r.id, None)
        if fut is not None and not fut.done():
            fut.set_result(r)

    async def wait_ready(self, timeout: Optional[float] = None) -> rf.Hello:
        """Waits for the peer's ``Hello`` and the first clock sample;
        returns the peer's ``Hello``. Raises the session's error if it
        ended first."""

        async def ready() -> None:
            while not self.core.ready:
                if self._ended.done():
                    err = self._ended.result()
                    raise err if err is not None else EndOfStream("the session ended")
                await self._wait_kick()

        await asyncio.wait_for(ready(), timeout)
        assert self.core.peer is not None
        return self.core.peer

    async def _wait_kick(self) -> None:
        ev = self._kick
        await ev.wait()

    def _wake(self) -> None:
        ev = self._kick
        self._kick = asyncio.Event()
        ev.set()

    async def call(self, endpoint_key: int, body: bytes, timeout_ms: int = 5000) -> CallResult:
        """Calls the peer's endpoint ``endpoint_key`` and waits for its
        typed outcome."""
        if self._ended.done():
            return CallResult(0, CallStatus.UNRESOLVED, error=self._ended.result())
        fut: "asyncio.Future[CallResult]" = self._loop.create_future()
        cid = self.core.call(endpoint_key, body, timeout_ms, self.now())
        if cid in self.core.results:
            return self.core.results.pop(cid)
        self._futures[cid] = fut
        self._wake()
        r = await fut
        self.core.results.pop(cid, None)
        return r

    async def describe(self, timeout_ms: int = 5000) -> List[rf.DescribeEntry]:
        """The peer's describe call (endpoint ``0xffff``)."""
        r = await self.call(rf.DESCRIBE_KEY, b"", timeout_ms)
        if not r.ok:
            raise RpcViolation(f"describe call: {r.status.value} {r.refusal}")
        return rf.decode_describe_reply(r.body)

    async def _recv_loop(self) -> None:
        err: Optional[BaseException] = None
        try:
            while True:
                msg = await self.conduit.recv()
                self.core.receive(msg, self.now())
                for s in self.core.take_samples():
                    self.samples.put_nowait(s)
                self._wake()
        except (SessionError, EndOfStream) as e:
            err = e
        except RpcViolation as e:
            err = e
            await self.conduit.abort()
        self.core.session_ended(err)
        if not self._ended.done():
            self._ended.set_result(err)
        self._wake()

    async def _send_loop(self) -> None:
        try:
            while not self._ended.done():
                now = self.now()
                msgs = self.core.take_transmit(now)
                for m in msgs:
                    await self.conduit.send(m)
                if msgs:
                    continue
                t = self.core.poll_timeout()
                wait = None if t is None else max(0.0, (t - now) / 1000.0)
                try:
                    await asyncio.wait_for(self._wait_kick(), wait)
                except asyncio.TimeoutError:
                    pass
        except (SessionError, EndOfStream, DirectionClosed):
            pass  # the receive loop reports the end

    async def wait_ended(self) -> Optional[BaseException]:
        """Waits until the session ended; returns its error (``None`` for
        a clean end)."""
        return await asyncio.shield(self._ended)

    async def stop(self) -> None:
        """Ends the session at once and stops the loops."""
        await self.conduit.abort()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, SessionError, EndOfStream, DirectionClosed):
                pass
        if not self._ended.done():
            self.core.session_ended(None)
            self._ended.set_result(None)
