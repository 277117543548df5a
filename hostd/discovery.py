"""Discoverability: whether the device announces itself over mDNS (the supervisor's HOST_DISCOVERABILITY).

Off stops avahi-daemon (its socket and service) through systemd, as the balena supervisor does:
avahi cannot withdraw the host's own address records while it runs, so stopping it is what takes
``<name>.local`` and every published service off the network.  On starts it again, and the
hostname step announces the name and ``_ssh._tcp`` when it attaches.  The setting persists on the
state partition and holds at boot.  avahi-daemon stopped by someone else (the supervisor) reads as
"not discoverable" too, not as a degraded service; a failed avahi-daemon is degraded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hostd import fsutil
from hostd.bus.avahi import AVAHI_SERVICE_UNIT as AVAHI_SERVICE
from hostd.bus.systemd import ActiveState

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.layout import Layout

AVAHI_SOCKET = "avahi-daemon.socket"
OFF, ON = b"off\n", b"on\n"


class Discovery:
    def __init__(self, layout: Layout, services: Services) -> None:
        self.path = os.path.join(layout.hostd_state, "discoverable")
        self.services = services
        self.enabled = fsutil.read_bytes(self.path) != OFF  # discoverable unless set off
        self.follow()

    @property
    def stopped_elsewhere(self) -> bool:
        return self.services.systemd.followed_unit_state(AVAHI_SERVICE) is ActiveState.INACTIVE

    @property
    def discoverable(self) -> bool:
        return self.enabled and not self.stopped_elsewhere

    def why_not(self) -> str:
        if not self.enabled:
            return "set off (SetDiscoverable)"
        if self.stopped_elsewhere:
            return f"{AVAHI_SERVICE} was stopped"
        return ""

    def follow(self) -> None:
        """avahi-daemon down on purpose is no problem of the hostname step's."""
        self.services.avahi.silenced = not self.discoverable

    async def set(self, enabled: bool) -> None:
        content = ON if enabled else OFF
        if fsutil.read_bytes(self.path) != content:
            fsutil.atomic_write(self.path, content, 0o644)
        self.enabled = enabled
        await self.apply()

    async def apply(self) -> None:
        """Start or stop avahi-daemon as the setting says (the socket first when stopping: it would
        start the service again)."""
        systemd = self.services.systemd
        self.follow()
        if self.enabled:
            for unit in (AVAHI_SOCKET, AVAHI_SERVICE):
                await systemd.start_unit(unit)
        else:
            for unit in (AVAHI_SOCKET, AVAHI_SERVICE):
                await systemd.stop_unit(unit)
        self.follow()
