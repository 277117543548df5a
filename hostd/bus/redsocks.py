"""redsocks, run by systemd as ``hostd-redsocks.service`` while a proxy is configured; followed by its unit."""

from __future__ import annotations

from hostd.bus.base import Feature

REDSOCKS_UNIT = "hostd-redsocks.service"


class Redsocks(Feature):
    """Degraded only while a proxy is configured (``wanted``) and its unit does not run."""

    key = "redsocks"

    def __init__(self) -> None:
        super().__init__()
        self.wanted = False

    async def start(self) -> None:
        """Nothing to attach: the unit's state arrives from systemd, and matters once a proxy is wanted."""
        self._recover()

    def want(self, wanted: bool) -> None:
        """A proxy is configured (or no longer: redsocks not running is then no loss)."""
        self.wanted = wanted
        if not wanted:
            self._recover()

    def follow_unit(self, unit: str, state: str) -> None:
        if self.wanted:
            super().follow_unit(unit, state)
        else:
            self._recover()
