"""Running the demo firmware in QEMU for the interop tests, and a pty
relay that corrupts bytes.

:func:`firmware_or_skip` builds ``examples/firmware`` (binary ``device``,
target ``thumbv7m-none-eabi``) and returns the ELF, or raises
``unittest.SkipTest`` naming what is missing. :class:`QemuDevice` runs it
on ``lm3s6965evb`` with its UART on a pty (QEMU prints the path).
:class:`PtyRelay` sits between the device's pty and a fresh
``os.openpty()`` pair, copying bytes both ways and flipping bytes at a
seeded rate; it can be pointed at a new device (a reboot on a new pty).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import tty
import unittest
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "examples" / "firmware"
TARGET = "thumbv7m-none-eabi"
#: The build the Rust QEMU tests make too (tests/qemu-rig: features
#: ``board-lm3s6965`` only, target directory ``target/plain``), so a run
#: after them reuses it.
PLAIN_TARGET_DIR = FIRMWARE_DIR / "target" / "plain"
ELF = PLAIN_TARGET_DIR / TARGET / "release" / "device"
QEMU = "qemu-system-arm"

_built: Optional[Path] = None
_lock = threading.Lock()


def firmware_or_skip() -> Path:
    """The demo device's ELF, built once per run (``cargo build --release
    --bin device`` in examples/firmware, with the Rust QEMU rig's features
    and target directory), or ``VOX_FIRMWARE_ELF`` when set; ``SkipTest``
    when QEMU, cargo or the thumbv7m target is missing."""
    global _built
    with _lock:
        if _built is not None:
            return _built
        if shutil.which(QEMU) is None:
            raise unittest.SkipTest(f"{QEMU} is not installed: the QEMU interop tests need it")
        given = os.environ.get("VOX_FIRMWARE_ELF")
        if given:
            _built = Path(given)
            return _built
        if shutil.which("cargo") is None:
            raise unittest.SkipTest("cargo is not installed: cannot build the demo firmware")
        if shutil.which("rustup") is not None:
            installed = subprocess.run(
                ["rustup", "target", "list", "--installed"], capture_output=True, text=True, check=False
            ).stdout.split()
            if TARGET not in installed:
                raise unittest.SkipTest(f"the Rust target {TARGET} is not installed (rustup target add {TARGET})")
        env = dict(os.environ)
        # The firmware crate keeps its own target directory, and the host
        # build's settings must not leak into it.
        for var in ("CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET"):
            env.pop(var, None)
        r = subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--no-default-features", "--bin", "device"]
            + ["--target", TARGET, "--features", "board-lm3s6965", "--target-dir", str(PLAIN_TARGET_DIR)],
            cwd=FIRMWARE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            raise AssertionError(f"firmware build failed:\n{r.stderr[-4000:]}")
        _built = ELF
        return ELF


class QemuDevice:
    """The demo firmware running in QEMU (``lm3s6965evb``), its UART on a
    pty (:attr:`pty`). Killed by :meth:`stop` (a power cut), and by a
    ``timeout`` wrapper after ``limit_s`` at the latest."""

    def __init__(self, elf: Path, limit_s: int = 120) -> None:
        """Starts QEMU and waits for the pty path it prints."""
        self.proc = subprocess.Popen(
            ["timeout", "--signal=KILL", str(limit_s), QEMU, "-machine", "lm3s6965evb"]
            + ["-display", "none", "-monitor", "none", "-semihosting-config", "enable=on,target=native"]
            + ["-serial", "pty", "-kernel", str(elf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # timeout and QEMU in a process group of their own
        )
        assert self.proc.stdout is not None
        self.output: List[str] = []
        self.pty = ""
        while True:
            line = self.proc.stdout.readline().decode("utf-8", "replace")
            if not line:
                raise AssertionError(f"QEMU exited before printing its pty: {''.join(self.output)}")
            self.output.append(line)
            m = re.search(r"char device redirected to (/dev/pts/\d+)", line)
            if m:
                self.pty = m.group(1)
                break
        # Keep draining QEMU's output (semihosting) so it never blocks.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.output.append(raw.decode("utf-8", "replace"))

    def stop(self) -> None:
        """Kills QEMU now (its process group: ``timeout`` and QEMU)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(5)
        self._drain.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class PtyRelay:
    """Copies bytes between a device's pty and the master of a fresh pty
    pair (the host opens :attr:`path`, the slave), flipping each byte with
    probability ``rate`` (``random.Random(seed)``), both ways. Counts the
    bytes corrupted. :meth:`retarget` points it at another device pty."""

    def __init__(self, device_pty: str, rate: float = 0.0, seed: int = 0) -> None:
        """Opens both ends; call :meth:`start` from the event loop."""
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.rate = rate
        self.seed = seed
        self.rng = random.Random(seed)
        self.corrupted = 0
        self.forwarded = 0
        self._dev: Optional[int] = None
        self._device_pty = device_pty
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def start(self) -> None:
        """Starts copying (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)
        self._loop.add_reader(self.master, self._from_host)
        self._open_device(self._device_pty)

    def _open_device(self, path: str) -> None:
        assert self._loop is not None
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        self._dev = fd
        self._loop.add_reader(fd, self._from_device)

    def _close_device(self) -> None:
        if self._dev is not None and self._loop is not None:
            self._loop.remove_reader(self._dev)
            os.close(self._dev)
            self._dev = None

    def retarget(self, device_pty: str) -> None:
        """Forwards to ``device_pty`` from now on (a rebooted device)."""
        self._close_device()
        self._open_device(device_pty)

    def _mangle(self, data: bytes) -> bytes:
        if self.rate <= 0:
            return data
        out = bytearray(data)
        for i in range(len(out)):
            if self.rng.random() < self.rate:
                out[i] ^= 1 << self.rng.randrange(8)
                self.corrupted += 1
        return bytes(out)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                continue  # a pty buffer is large; a short spin is fine in a test
            except OSError:
                return  # the other end is gone (a device being killed): the bytes are lost
            view = view[n:]

    def _from_host(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return
        if self._dev is not None and data:
            self.forwarded += len(data)
            self._write_all(self._dev, self._mangle(data))

    def _from_device(self) -> None:
        assert self._dev is not None
        try:
            data = os.read(self._dev, 65536)
        except BlockingIOError:
            return
        except OSError:
            self._close_device()  # EIO: QEMU exited
            return
        if data:
            self.forwarded += len(data)
            self._write_all(self.master, self._mangle(data))

    def close(self) -> None:
        """Stops copying and closes every descriptor."""
        self._close_device()
        if self._loop is not None:
            self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self._slave)
