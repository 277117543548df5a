"""The Services container: one start() for everything, a degraded report for what is missing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hostd.bus.services import Services

from .fakes.avahi import FakeAvahi
from .fakes.dnsmasq import FakeDnsmasq
from .fakes.networkmanager import FakeNetworkManager
from .fakes.systemd import FakeSystemd
from .support import client_bus, wait_until


async def test_start_attaches_what_runs_and_reports_the_rest(
    bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    for fake in (FakeSystemd(bus_address), FakeNetworkManager(bus_address), FakeAvahi(bus_address)):
        await fake.start()
    async with client_bus(bus_address) as bus:
        services = Services(bus)
        services.chrony.command = "/nonexistent/chronyc"
        assert set(services.degraded()) == {feature.key for feature in services.all}  # nothing started yet
        started = asyncio.get_running_loop().time()
        await services.start()
        elapsed = asyncio.get_running_loop().time() - started
        degraded = services.degraded()
        assert set(degraded) == {"modemmanager", "hostname1", "dnsmasq", "chrony"}
        assert degraded["dnsmasq"] == "not running"
        assert services.systemd.available and services.networkmanager.available and services.avahi.available
        assert elapsed < 1.0
        warnings = [r for r in caplog.records if r.name.startswith("hostd.bus.") and r.levelno >= logging.WARNING]
        assert len(warnings) == 4  # one line per missing service
        await services.close()


async def test_a_service_that_appears_leaves_the_degraded_report(bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        services = Services(bus)
        await services.start()
        assert "dnsmasq" in services.degraded()
        await FakeDnsmasq(bus_address).start()
        await wait_until(lambda: "dnsmasq" not in services.degraded())
        await services.close()


async def test_services_attach_side_by_side(bus_address: str) -> None:
    """A service slow to answer its attach holds no other one's: hostd's start waits for the slowest
    attach, not for their sum."""
    networkmanager = FakeNetworkManager(bus_address)
    for fake in (FakeSystemd(bus_address), networkmanager, FakeAvahi(bus_address)):
        await fake.start()
    networkmanager.hang("GetAll")  # NetworkManager never answers its attach
    async with client_bus(bus_address) as bus:
        services = Services(bus, timeout=60)
        starting = asyncio.ensure_future(services.start())
        # avahi (after NetworkManager in Services.all) is attached while NetworkManager's attach
        # waits: one after the other, it would wait those 60 s first.
        await wait_until(lambda: services.avahi.attached and services.systemd.attached)
        assert networkmanager.calls_to("GetAll") and not services.networkmanager.attached
        assert not starting.done()
        starting.cancel()
        await services.close()
