"""Helpers for the bus tests: client connections and waiting for asynchronous effects."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus

from tests.processes import end

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{service_dir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@contextmanager
def private_dbus_daemon(directory: Path, service_dir: Path) -> Iterator[str]:
    """Run a session-like dbus-daemon of our own; yields its address, ends it by PID."""
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=directory / "bus.socket", service_dir=service_dir))
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--print-address=1", "--nofork"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        if not address:
            raise RuntimeError("dbus-daemon printed no address")
        yield address
    finally:
        end(daemon, 5)


class RealChronyd:
    """A chronyd of our own: no NTP port, no clock control (-x), its command port on 127.0.0.1:port
    (monitoring, as hostd reads it) and a Unix socket in its directory (chronyc's commands)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.address = ("127.0.0.1", port)
        self.socket = directory / "chronyd.sock"

    def chronyc(self, *args: str) -> str:
        """chronyc's own answer over the Unix socket (every command allowed there)."""
        return subprocess.run(
            [CHRONYC or "chronyc", "-h", str(self.socket), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout


CHRONYC = shutil.which("chronyc")  # the real one, whatever a test puts first on PATH
requires_chronyd = pytest.mark.skipif(
    shutil.which("chronyd") is None or CHRONYC is None, reason="needs chrony (tests/bootstrap)"
)


@contextmanager
def real_chronyd(directory: Path) -> Iterator[RealChronyd]:
    """Run chronyd on a free loopback port until it answers; ends it by PID."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chronyd = RealChronyd(directory, port)
    config = directory / "chrony.conf"
    config.write_text(
        f"port 0\ncmdport {port}\nbindcmdaddress 127.0.0.1\nbindcmdaddress {chronyd.socket}\n"
        f"pidfile {directory / 'chronyd.pid'}\n"
    )
    process = subprocess.Popen(
        ["chronyd", "-d", "-x", "-u", "root", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not chronyd.socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chronyd did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.02)
        yield chronyd
    finally:
        end(process, 5)


@asynccontextmanager
async def client_bus(address: str) -> AsyncIterator[MessageBus]:
    """hostd's side of the bus: one connection, as the daemon would pass in."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        yield bus
    finally:
        bus.disconnect()


async def wait_until(condition: Callable[[], object], timeout: float = 3.0) -> None:
    """Wait for a condition that signals make true; fails the test after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


class Recorder:
    """An async callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    async def __call__(self, *args: object) -> None:
        self.calls.append(args)

    @property
    def count(self) -> int:
        return len(self.calls)


def log_lines(caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.INFO) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger and record.levelno >= level]
