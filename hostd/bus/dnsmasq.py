"""dnsmasq over D-Bus: upstream servers changed live, without a restart.

Servers set here come on top of those from dnsmasq's command line, config and resolv file. They are
remembered and pushed again whenever dnsmasq (re)connects to the bus, as its D-Bus documentation
asks of whoever controls its servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbus_fast.aio import MessageBus

from hostd.bus import names
from hostd.bus.base import DEFAULT_TIMEOUT, BusAdapter


class DnsmasqAdapter(BusAdapter):
    key = "dnsmasq"
    bus_name = names.DNSMASQ_NAME

    def __init__(self, bus: MessageBus, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(bus, timeout=timeout)
        self._servers: list[str] | None = None

    @property
    def servers(self) -> list[str] | None:
        """The upstream servers last set through this adapter, or None if never set."""
        return None if self._servers is None else list(self._servers)

    async def set_servers(self, servers: Sequence[str]) -> None:
        """Replace the servers set over D-Bus; "ip" or "ip#port", most preferred first.

        Remembered even when dnsmasq is down (then ServiceUnavailable is raised) and pushed when it appears.
        """
        self._servers = list(servers)
        await self._push_servers()

    async def get_version(self) -> str:
        (version,) = await self._dnsmasq("GetVersion")
        return version

    async def clear_cache(self) -> None:
        await self._dnsmasq("ClearCache")

    async def _push_servers(self) -> None:
        if self._servers is not None:
            # One inner array per server: an array is servers first, then the domains they serve.
            await self._dnsmasq("SetServersEx", "aas", [[server] for server in self._servers])

    async def _dnsmasq(self, method: str, signature: str = "", *body: Any) -> list[Any]:
        return await self._call(names.DNSMASQ_PATH, names.DNSMASQ_INTERFACE, method, signature, *body)

    async def _on_attached(self) -> None:
        await self._push_servers()
