"""systemd-journald: restart it (through systemd), flush the runtime journal to disk, read disk usage."""

from __future__ import annotations

import re

from hostd.bus import errors
from hostd.bus.base import DEFAULT_TIMEOUT, CommandFeature
from hostd.bus.systemd import JobResult, SystemdAdapter

JOURNALD_UNIT = "systemd-journald.service"
FLUSH_TIMEOUT = 30.0
"""Flushing copies the whole runtime journal to persistent storage; slow on an SD card."""

_DISK_USAGE = re.compile(r"take up (?P<number>\d+(?:\.\d+)?)(?P<unit>[BKMGTPE]?)\b")
_UNIT_POWERS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_disk_usage(output: str) -> int:
    """Bytes from `journalctl --disk-usage` ("… take up 8.0M in the file system."; IEC units)."""
    found = _DISK_USAGE.search(output)
    if found is None:
        raise ValueError(f"unexpected journalctl --disk-usage output: {output.strip()!r}")
    return round(float(found["number"]) * 1024 ** _UNIT_POWERS[found["unit"]])


class Journald(CommandFeature):
    key = "journald"

    def __init__(
        self, systemd: SystemdAdapter, *, journalctl: str = "journalctl", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(journalctl, timeout=timeout)
        self._systemd = systemd

    async def restart(self) -> JobResult:
        """Restart journald so it reads changed journald.conf drop-ins.

        Its start limit (5 in 10 s) must not turn a few quick logging changes into a dead journal.
        """
        await self._systemd.reset_failed_unit(JOURNALD_UNIT)
        return await self._systemd.restart_unit(JOURNALD_UNIT)

    async def flush(self, *, timeout: float = FLUSH_TIMEOUT) -> None:
        """Move the runtime journal (/run/log/journal) to /var/log/journal, e.g. once that is mounted."""
        await self._run("--flush", timeout=timeout)

    async def disk_usage(self) -> int:
        """Bytes used by active and archived journal files."""
        output = await self._run("--disk-usage")
        try:
            return parse_disk_usage(output)
        except ValueError as err:
            raise errors.RemoteError(str(err)) from err
