"""systemd-hostnamed: the static and transient host name."""

from __future__ import annotations

from hostd.bus import names
from hostd.bus.base import BusAdapter, properties_changed_rule


class Hostname1Adapter(BusAdapter):
    key = "hostname1"
    bus_name = names.HOSTNAME1_NAME
    signal_rules = (properties_changed_rule(path=names.HOSTNAME1_PATH, arg0=names.HOSTNAME1_INTERFACE),)
    # The hostname step decides on the real state (/etc/hostname, the kernel's name) and calls
    # hostnamed only to change it: a start that finds the name set (the boot stage set it) starts no
    # hostnamed.  Its cache fills once it runs.
    exits_when_idle = True

    @property
    def hostname(self) -> str:
        """The kernel's (transient) host name."""
        return self._cached(names.HOSTNAME1_PATH, names.HOSTNAME1_INTERFACE).get("Hostname", "")

    @property
    def static_hostname(self) -> str:
        """The name in /etc/hostname; empty when unset."""
        return self._cached(names.HOSTNAME1_PATH, names.HOSTNAME1_INTERFACE).get("StaticHostname", "")

    async def set_static_hostname(self, name: str, interactive: bool = False) -> None:
        """Write /etc/hostname (hostnamed also sets the kernel name when no transient one is set)."""
        await self._call(names.HOSTNAME1_PATH, names.HOSTNAME1_INTERFACE, "SetStaticHostname", "sb", name, interactive)

    async def set_hostname(self, name: str, interactive: bool = False) -> None:
        """Set the kernel's (transient) host name."""
        await self._call(names.HOSTNAME1_PATH, names.HOSTNAME1_INTERFACE, "SetHostname", "sb", name, interactive)

    async def _on_attached(self) -> None:
        await self._fetch_properties(names.HOSTNAME1_PATH, names.HOSTNAME1_INTERFACE)
