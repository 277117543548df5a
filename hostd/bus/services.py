"""All adapters on one bus connection: `services = Services(bus); await services.start()`."""

from __future__ import annotations

import asyncio

from dbus_fast.aio import MessageBus

from hostd.bus.avahi import AVAHI_SERVICE_UNIT, AvahiAdapter
from hostd.bus.base import DEFAULT_TIMEOUT, Feature
from hostd.bus.chrony import CHRONY_UNITS, Chrony
from hostd.bus.dnsmasq import DnsmasqAdapter
from hostd.bus.hostname1 import Hostname1Adapter
from hostd.bus.journald import JOURNALD_UNIT, Journald
from hostd.bus.modemmanager import ModemManagerAdapter
from hostd.bus.networkmanager import NetworkManagerAdapter
from hostd.bus.nftables import Nftables
from hostd.bus.redsocks import REDSOCKS_UNIT, Redsocks
from hostd.bus.systemd import SystemdAdapter
from hostd.prepare import NETWORK_INPUTS_UNIT


class Services:
    """Constructing is free; start() attaches every adapter concurrently and never raises for a
    missing service: each one that is missing turns its own feature off and shows in degraded()."""

    def __init__(self, bus: MessageBus, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.systemd = SystemdAdapter(
            bus,
            timeout=timeout,
            followed_units=(*CHRONY_UNITS, JOURNALD_UNIT, REDSOCKS_UNIT, AVAHI_SERVICE_UNIT),
            awaited_units=(NETWORK_INPUTS_UNIT,),
        )
        self.networkmanager = NetworkManagerAdapter(bus, timeout=timeout)
        self.modemmanager = ModemManagerAdapter(bus, timeout=timeout)
        self.hostname1 = Hostname1Adapter(bus, timeout=timeout)
        self.avahi = AvahiAdapter(bus, timeout=timeout)
        self.dnsmasq = DnsmasqAdapter(bus, timeout=timeout)
        self.chrony = Chrony(timeout=timeout)
        self.journald = Journald(self.systemd, timeout=timeout)
        self.nftables = Nftables(timeout=timeout)
        self.redsocks = Redsocks()

    @property
    def all(self) -> tuple[Feature, ...]:
        return (
            self.systemd,
            self.networkmanager,
            self.modemmanager,
            self.hostname1,
            self.avahi,
            self.dnsmasq,
            self.chrony,
            self.journald,
            self.nftables,
            self.redsocks,
        )

    async def start(self) -> None:
        await asyncio.gather(*(feature.start() for feature in self.all))

    async def close(self) -> None:
        await asyncio.gather(*(feature.close() for feature in self.all))

    def degraded(self) -> dict[str, str]:
        """Features that are off now, by key, with the reason."""
        return {feature.key: feature.degraded_reason for feature in self.all if feature.degraded_reason is not None}
