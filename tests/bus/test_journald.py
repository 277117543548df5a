"""journald: restart through the systemd fake, flush and disk usage through a fake journalctl."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostd.bus import errors
from hostd.bus.journald import Journald, parse_disk_usage
from hostd.bus.systemd import JobResult, SystemdAdapter

from .fakes.systemd import FakeSystemd
from .support import client_bus


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Archived and active journals take up 0B in the file system.", 0),
        ("Archived and active journals take up 512B in the file system.", 512),
        ("Archived and active journals take up 8.0M in the file system.", 8 * 1024**2),
        ("Archived and active journals take up 1.5G in the file system.", 1536 * 1024**2),
        ("Journals take up 24K on disk.", 24 * 1024),
    ],
)
def test_disk_usage_is_parsed(output: str, expected: int) -> None:
    assert parse_disk_usage(output) == expected


def fake_journalctl(tmp_path: Path, body: str) -> str:
    script = tmp_path / "journalctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/args\n{body}\n')
    script.chmod(0o755)
    return str(script)


async def test_restart_flush_and_disk_usage(bus_address: str, tmp_path: Path) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    journalctl = fake_journalctl(
        tmp_path,
        '[ "$1" = "--disk-usage" ] && echo "Archived and active journals take up 16.0M in the file system."\nexit 0',
    )
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        journald = Journald(systemd, journalctl=journalctl)
        await journald.start()
        assert await journald.restart() is JobResult.DONE
        assert fake.calls_to("RestartUnit") == [["systemd-journald.service", "replace"]]
        # the start limit is reset first, so quick logging changes cannot leave journald dead
        assert fake.calls_to("ResetFailedUnit") == [["systemd-journald.service"]]
        await journald.flush()
        assert await journald.disk_usage() == 16 * 1024**2
    assert (tmp_path / "args").read_text().splitlines() == ["--flush", "--disk-usage"]


async def test_flush_failure_and_timeout(bus_address: str, tmp_path: Path) -> None:
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        failing = Journald(systemd, journalctl=fake_journalctl(tmp_path, "echo 'Failed to flush' >&2; exit 1"))
        await failing.start()
        with pytest.raises(errors.CommandFailed):
            await failing.flush()
        hanging = Journald(systemd, journalctl=fake_journalctl(tmp_path, "exec sleep 10"))
        await hanging.start()
        with pytest.raises(errors.Timeout):
            await hanging.flush(timeout=0.2)
        assert not hanging.available
        with pytest.raises(errors.ServiceUnavailable):
            await failing.restart()  # systemd is not on this bus


async def test_missing_journalctl_degrades() -> None:
    journald = Journald(systemd=None, journalctl="/nonexistent/journalctl")  # type: ignore[arg-type]
    await journald.start()
    assert not journald.available
    with pytest.raises(errors.ServiceUnavailable):
        await journald.disk_usage()
