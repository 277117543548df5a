"""systemd-timedated: whether the clock is synchronized, NTP on/off, time zone.

timedated does not signal NTPSynchronized changes (it reads the kernel's state when asked), so
call refresh() before reporting it; NTP and Timezone are kept current from PropertiesChanged.
"""

from __future__ import annotations

from hostd.bus import names
from hostd.bus.base import BusAdapter, properties_changed_rule


class Timedate1Adapter(BusAdapter):
    key = "timedate1"
    bus_name = names.TIMEDATE1_NAME
    signal_rules = (properties_changed_rule(path=names.TIMEDATE1_PATH, arg0=names.TIMEDATE1_INTERFACE),)
    exits_when_idle = True

    @property
    def ntp_synchronized(self) -> bool:
        return bool(self._properties.get("NTPSynchronized", False))

    @property
    def ntp(self) -> bool:
        """An NTP service is enabled."""
        return bool(self._properties.get("NTP", False))

    @property
    def timezone(self) -> str:
        return self._properties.get("Timezone", "")

    @property
    def _properties(self) -> dict[str, object]:
        return self._cached(names.TIMEDATE1_PATH, names.TIMEDATE1_INTERFACE)

    async def _on_attached(self) -> None:
        await self._fetch_properties(names.TIMEDATE1_PATH, names.TIMEDATE1_INTERFACE)
