"""Service events: what the adapters report, turned into the steps to run again.

A service that (re)appears gets what it needs again: the steps naming its event in their
TRIGGERS run again.  Any other change of a service's state (gone, a modem, an mDNS name
collision) is only published.  chronyd and journald have no bus name to watch: their systemd
units are followed instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hostd import steps
from hostd.bus.avahi import AVAHI_SERVICE_UNIT
from hostd.bus.chrony import CHRONY_UNITS
from hostd.bus.redsocks import REDSOCKS_UNIT
from hostd.bus.systemd import ActiveState
from hostd.steps.base import Event

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.layout import Layout

log = logging.getLogger("hostd.events")

HOSTD_UNIT = "hostd.service"

# The steps to run again; () = nothing to run, the state changed: publish it.
OnEvent = Callable[[tuple[str, ...]], Awaitable[None]]


def follow(
    services: Services, layout: Layout, on_event: OnEvent, on_discovery_changed: Callable[[], Awaitable[None]]
) -> None:
    """Subscribe to the adapters' events; each ends in ``on_event`` (avahi-daemon.service started or
    stopped: in ``on_discovery_changed``)."""

    def rerun(event: Event) -> Callable[..., Awaitable[None]]:
        return lambda *_: on_event(steps.triggered_by(event))

    def publish(*_: object) -> Awaitable[None]:
        return on_event(())

    nm = services.networkmanager
    nm.on_attach(rerun(Event.NETWORKMANAGER_ATTACHED))
    nm.on_dns_servers_changed(rerun(Event.NETWORK_DNS_CHANGED))
    nm.on_ntp_servers_changed(rerun(Event.NETWORK_NTP_CHANGED))
    services.dnsmasq.on_attach(rerun(Event.DNSMASQ_ATTACHED))
    services.avahi.on_attach(rerun(Event.AVAHI_ATTACHED))
    services.systemd.on_attach(rerun(Event.SYSTEMD_ATTACHED))
    services.avahi.on_collision_changed(publish)
    services.modemmanager.on_modems_changed(publish)
    for feature in (nm, services.dnsmasq, services.avahi, services.modemmanager, services.systemd):
        feature.on_detach(publish)

    async def unit_state_changed(unit: str, state: ActiveState) -> None:
        """Down, chronyd, journald or redsocks shows in Degraded; back, it gets what it needs again."""
        if unit == AVAHI_SERVICE_UNIT:
            await on_discovery_changed()  # avahi itself is followed by its bus name
            return
        if unit in CHRONY_UNITS:
            feature, event = services.chrony, Event.CHRONYD_RETURNED
        elif unit == REDSOCKS_UNIT:
            feature, event = services.redsocks, Event.REDSOCKS_RETURNED
        else:
            feature, event = services.journald, Event.JOURNALD_RETURNED
        was_available = feature.available
        feature.follow_unit(unit, state.value)
        returned = feature.available and not was_available
        if returned and event == Event.JOURNALD_RETURNED and layout.is_live:
            _reconnect_log_stream()
        await on_event(steps.triggered_by(event) if returned else ())

    services.systemd.on_unit_state_changed(unit_state_changed)


def _reconnect_log_stream() -> None:
    """journald was stopped and runs again: the stream it held for hostd's stderr is gone."""
    from hostd import logsetup

    if not logsetup.stderr_is_journal():
        return  # a terminal, a file: not ours to replace
    try:
        logsetup.reconnect_journal_stream(HOSTD_UNIT)
        log.info("journald is back: logging to a new stream")
    except OSError as exc:
        log.warning("journald is back, but a new log stream could not be opened: %s", exc)
