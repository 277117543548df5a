"""journald: restart through the systemd fake, flush through a fake journalctl, disk usage from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostd.bus import errors
from hostd.bus.journald import Journald, journal_disk_usage
from hostd.bus.systemd import JobResult, SystemdAdapter

from .fakes.systemd import FakeSystemd
from .support import client_bus


def test_disk_usage_counts_this_machines_journal_files_blocks(tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    volatile, persistent = tmp_path / "run", tmp_path / "var"
    ours = [volatile / machine_id.read_text().strip(), persistent / machine_id.read_text().strip()]
    for directory in ours:
        directory.mkdir(parents=True)
    (ours[0] / "system.journal").write_bytes(b"x" * 10000)
    (ours[1] / "system@0001-0002.journal").write_bytes(b"x" * 70000)
    (ours[1] / "user-1000@0003.journal~").write_bytes(b"x" * 5000)
    (ours[1] / "notes.txt").write_bytes(b"x" * 90000)  # not a journal file
    other = persistent / "fedcba9876543210fedcba9876543210"  # another machine's (a container's) journal
    other.mkdir()
    (other / "system.journal").write_bytes(b"x" * 90000)
    counted = [ours[0] / "system.journal", ours[1] / "system@0001-0002.journal", ours[1] / "user-1000@0003.journal~"]
    expected = sum(path.stat().st_blocks * 512 for path in counted)  # allocated, as journalctl counts
    assert journal_disk_usage((str(volatile), str(persistent), str(tmp_path / "none")), str(machine_id)) == expected
    with pytest.raises(errors.ServiceUnavailable):
        journal_disk_usage((str(volatile),), str(tmp_path / "no-machine-id"))


def fake_journalctl(tmp_path: Path, body: str) -> str:
    script = tmp_path / "journalctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/args\n{body}\n')
    script.chmod(0o755)
    return str(script)


async def test_restart_and_flush(bus_address: str, tmp_path: Path) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    journalctl = fake_journalctl(tmp_path, "exit 0")
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
    assert (tmp_path / "args").read_text().splitlines() == ["--flush"]


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
        await journald.flush()
