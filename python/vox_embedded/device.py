"""A host for the demo device (``examples/firmware``, ``vox-demo-protocol``)
and for any peer whose endpoints are declared in ``docs/schemas``:
opening the transport (a serial port or pty, or TCP), the stable conduit
in either role with the demo UART's settings, and an
:class:`~vox_embedded.rpc_host.RpcHost` that serves the host's clock
endpoint (``demo/host_time``) and subscribes to the peer's topics.
"""

from __future__ import annotations

# r[impl py.interop]
# r[impl py.cli]

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from . import rpc_frames as rf
from .prologue import Role
from .rpc_host import CallResult, CallStatus, RpcHost
from .stable_io import SerialStream, StableConduit
from .stable_session import StableConfig
from .values import Catalog, Entry, decode_all, encode

__all__ = ["UART_CONFIG", "UART_MTU", "Target", "open_conduit", "start_host", "call_named", "describe_result"]

#: The demo UART's stable-conduit settings (``UART_CONFIG`` in
#: ``examples/protocol/src/lib.rs``); the same on both ends.
UART_CONFIG = StableConfig(
    max_message=200,
    ack_every=8,
    ack_delay_ms=10,
    keepalive_ms=200,
    timeout_ms=800,
    retry_delay_ms=20,
    linger_ms=2000,
    connect_timeout_ms=10_000,
)

#: Largest frame payload on the demo's serial line.
UART_MTU = 256

#: Window of each topic subscription (samples beyond our credit).
DEFAULT_WINDOW = 8


@dataclass
class Target:
    """Where the peer is: a serial device path, or ``host:port``."""

    serial: Optional[str] = None
    tcp: Optional[Tuple[str, int]] = None
    role: Role = Role.ACCEPTOR


async def open_conduit(
    target: Target, config: StableConfig = UART_CONFIG, stream: Optional[SerialStream] = None
) -> Tuple[StableConduit, Optional[SerialStream]]:
    """A stable conduit of ``RpcFamily`` to ``target`` (a new session);
    for a serial target, on ``stream`` when given (a stream outlives its
    sessions), else on the port opened now. Returns the conduit and the
    stream."""
    if target.serial is not None:
        if stream is None:
            stream = await SerialStream.open(target.serial)
        c = await StableConduit.over_stream(stream, target.role, rf.RPC_FAMILY_FINGERPRINT, config, mtu=UART_MTU)
        return c, stream
    if target.tcp is None:
        raise ValueError("no target: give a serial path or host:port")
    host, port = target.tcp
    if target.role is Role.ACCEPTOR:
        return await StableConduit.listen(host, port, rf.RPC_FAMILY_FINGERPRINT, config), None
    return await StableConduit.connect(host, port, rf.RPC_FAMILY_FINGERPRINT, config), None


async def start_host(
    conduit: StableConduit,
    catalog: Catalog,
    subscribe: bool = True,
    window: int = DEFAULT_WINDOW,
) -> RpcHost:
    """An :class:`RpcHost` over ``conduit`` serving ``demo/host_time`` (our
    clock, ms since the conduit started) and, with ``subscribe``,
    subscribing to every topic the catalog knows (those the peer lists)."""
    ht = catalog.by_name.get("demo/host_time")
    served: Dict[int, Any] = {}
    names: Dict[int, str] = {}
    if ht is not None and ht.response is not None:
        resp = ht.response

        def host_time(body: bytes, now: int) -> Tuple[bool, bytes]:
            """``demo/host_time``: ``() => u64``."""
            return True, encode(now, resp)

        served[ht.key] = host_time
        names[ht.key] = ht.name
    topics: Mapping[int, int] = (
        {e.key: window for e in catalog.by_key.values() if e.kind == "topic"} if subscribe else {}
    )
    return await RpcHost.start(conduit, served, topics, names=names)


async def call_named(host: RpcHost, entry: Entry, value: Any, timeout_ms: int = 5000) -> Tuple[CallResult, Any]:
    """Calls the endpoint ``entry`` with ``value`` (encoded from its
    request schema); returns the outcome and the decoded response (or the
    decoded error for ``Failed``, ``None`` otherwise)."""
    assert entry.request is not None
    r = await host.call(entry.key, encode(value, entry.request), timeout_ms)
    return r, describe_result(entry, r)


def describe_result(entry: Entry, r: CallResult) -> Any:
    """The decoded body of ``r``: the response of a ``Reply``, the error of
    a ``Failed``; ``None`` otherwise."""
    if r.status is CallStatus.REPLY and entry.response is not None:
        return decode_all(r.body, entry.response)
    if r.status is CallStatus.FAILED and entry.error is not None:
        return decode_all(r.body, entry.error)
    return None
