"""The config watch: config.json and the boot partition's drop-in directories, one stat each per poll."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from hostd.layout import Layout

log = logging.getLogger("hostd.watch")

POLL_SECONDS = 1.0

FileStamp = tuple[int, int, int, int]


def _stat_stamp(path: Path) -> FileStamp | None:
    try:
        st = path.stat(follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ConfigWatch:
    def __init__(self, layout: Layout, on_change: Callable[[], Awaitable[object]], interval: float) -> None:
        self.layout = layout
        self.interval = interval
        self._on_change = on_change
        self._seen: tuple[object, ...] | None = None

    def stamp(self) -> tuple[object, ...]:
        """What changes when config.json or a file in a boot drop-in directory changes.  Every entry
        is stat'ed: a file edited in place changes its own mtime, not its directory's."""
        stamp: list[object] = [_stat_stamp(self.layout.config_json)]
        for directory in (self.layout.boot_connections, self.layout.boot_dispatcher, self.layout.boot_proxy):
            try:
                with os.scandir(directory) as entries:
                    stamp.append(sorted((entry.name, _stat_stamp(Path(entry.path))) for entry in entries))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def mark_seen(self) -> None:
        """hostd itself changed config.json (and acts on it): not a change to react to."""
        self._seen = self.stamp()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            stamp = self.stamp()
            if stamp != self._seen:
                self._seen = stamp
                log.info("config.json or a boot-partition drop-in changed: reconciling")
                await self._on_change()
