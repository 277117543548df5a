"""systemd-journald: restart it (through systemd), flush the runtime journal to disk (journalctl),
its disk usage (from its files)."""

from __future__ import annotations

import contextlib
import os

from hostd.bus import errors
from hostd.bus.base import DEFAULT_TIMEOUT, CommandFeature
from hostd.bus.systemd import JobResult, SystemdAdapter

JOURNALD_UNIT = "systemd-journald.service"
FLUSH_TIMEOUT = 30.0
"""Flushing copies the whole runtime journal to persistent storage; slow on an SD card."""

JOURNAL_DIRECTORIES = ("/run/log/journal", "/var/log/journal")
"""Where journald keeps each machine's journal files, in a directory named after its machine id."""
MACHINE_ID = "/etc/machine-id"


def journal_disk_usage(directories: tuple[str, ...] = JOURNAL_DIRECTORIES, machine_id_file: str = MACHINE_ID) -> int:
    """Bytes this machine's active and archived journal files take up, counted as `journalctl
    --disk-usage` counts them (the blocks each file has allocated), without starting journalctl:
    hostd reads it at every start."""
    try:
        with open(machine_id_file) as f:
            machine_id = f.read().strip()
    except OSError as err:
        raise errors.ServiceUnavailable(f"no machine id: {err}") from err
    total = 0
    for directory in directories:
        try:
            entries = list(os.scandir(os.path.join(directory, machine_id)))
        except OSError:
            continue  # no journal there (volatile or persistent storage only)
        for entry in entries:
            if entry.name.endswith((".journal", ".journal~")):
                with contextlib.suppress(OSError):  # rotated away meanwhile
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


class Journald(CommandFeature):
    key = "journald"

    def __init__(
        self,
        systemd: SystemdAdapter,
        *,
        journalctl: str = "journalctl",
        timeout: float = DEFAULT_TIMEOUT,
        journal_directories: tuple[str, ...] = JOURNAL_DIRECTORIES,
        machine_id_file: str = MACHINE_ID,
    ) -> None:
        super().__init__(journalctl, timeout=timeout)
        self._systemd = systemd
        self._journal_directories = journal_directories
        self._machine_id_file = machine_id_file

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
        """Bytes used by active and archived journal files (a few stat calls, no journalctl process)."""
        return journal_disk_usage(self._journal_directories, self._machine_id_file)
