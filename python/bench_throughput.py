"""Throughput of the Python stable conduit against the Rust peer over
loopback TCP (no faults), and Rust against Rust for comparison.

Each run sends N messages each way at once (both sides send and receive
concurrently); the figure is messages (and message bytes) per second in
one direction, timed from the first send to the last message received on
the Python side (on the Rust initiator's side for Rust against Rust).

    CARGO_TARGET_DIR=/tmp/target python3 python/bench_throughput.py [ROUNDS]

Builds `interop_peer` (release) first; needs cargo.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.interop_support import Peer, build_peer, peer_fingerprint, peer_message  # noqa: E402
from vox_embedded import postcard  # noqa: E402
from vox_embedded.stable_io import EndOfStream, StableConduit  # noqa: E402
from vox_embedded.stable_session import StableConfig  # noqa: E402

#: (payload size, messages each way)
CASES = [(16, 30_000), (1024, 10_000)]


async def python_vs_rust(binary: Path, python_role: str, size: int, count: int) -> float:
    """Seconds for ``count`` messages each way, Python in ``python_role``."""
    config = StableConfig(max_message=size + 16)
    msgs = [postcard.encode_byte_slice(peer_message(i, size)) for i in range(count)]
    if python_role == "initiator":
        peer = await Peer.start(
            binary, "--role", "acceptor", "--listen", "127.0.0.1:0", "--count", str(count), "--size", str(size)
        )
        assert peer.address is not None
        conduit = await StableConduit.connect(*peer.address, peer.fingerprint, config)
    else:
        conduit = await StableConduit.listen("127.0.0.1", 0, peer_fingerprint(binary), config)
        assert conduit.address is not None
        host, port = conduit.address
        peer = await Peer.start(
            binary, "--role", "initiator", "--connect", f"{host}:{port}", "--count", str(count), "--size", str(size)
        )
    start = 0.0

    async def send() -> None:
        nonlocal start
        start = time.perf_counter()
        for m in msgs:
            await conduit.send(m)

    async def receive() -> float:
        for i in range(count):
            if await conduit.recv() != msgs[i]:
                raise AssertionError(f"message {i} wrong")
        return time.perf_counter()

    _, end = await asyncio.gather(send(), receive())
    try:
        await conduit.recv()
    except EndOfStream:
        pass
    await conduit.close()
    code, last, err = await peer.finish(20)
    if code != 0:
        raise RuntimeError(f"rust peer failed: {last} {err}")
    return end - start


async def rust_vs_rust(binary: Path, size: int, count: int) -> float:
    """Seconds the Rust initiator reports for ``count`` each way."""
    acc = await Peer.start(
        binary, "--role", "acceptor", "--listen", "127.0.0.1:0", "--count", str(count), "--size", str(size)
    )
    assert acc.address is not None
    host, port = acc.address
    ini = await Peer.start(
        binary, "--role", "initiator", "--connect", f"{host}:{port}", "--count", str(count), "--size", str(size)
    )
    code, last, err = await ini.finish(60)
    await acc.finish(20)
    if code != 0:
        raise RuntimeError(f"rust initiator failed: {last} {err}")
    return float(last.split("seconds")[1])


def main() -> None:
    """Runs every case ``ROUNDS`` times (default 3) and prints the best."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    binary = build_peer()
    print(f"stable conduit over loopback TCP, N messages each way at once, best of {rounds}")
    print("| pair | payload | N each way | msg/s (one way) | MB/s (one way) |")
    print("|------|--------:|-----------:|----------------:|---------------:|")
    for size, count in CASES:
        for name, run in (
            ("python initiator / rust acceptor", lambda: python_vs_rust(binary, "initiator", size, count)),
            ("python acceptor / rust initiator", lambda: python_vs_rust(binary, "acceptor", size, count)),
            ("rust / rust", lambda: rust_vs_rust(binary, size, count)),
        ):
            best = min(asyncio.run(run()) for _ in range(rounds))
            rate = count / best
            print(f"| {name} | {size} B | {count} | {rate:,.0f} | {rate * size / 1e6:.2f} |")


if __name__ == "__main__":
    main()
