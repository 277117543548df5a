"""Helpers for the bus tests: client connections and waiting for asynchronous effects."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from dbus_fast.aio import MessageBus

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
        daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


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
