"""dnsmasq adapter against its fake."""

from __future__ import annotations

import pytest

from hostd.bus import errors
from hostd.bus.dnsmasq import DnsmasqAdapter

from .fakes.dnsmasq import FakeDnsmasq
from .support import client_bus, wait_until


async def test_servers_version_and_cache(bus_address: str) -> None:
    fake = FakeDnsmasq(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        dnsmasq = DnsmasqAdapter(bus)
        await dnsmasq.start()
        assert dnsmasq.servers is None
        await dnsmasq.set_servers(["192.168.1.1", "2001:db8::53", "10.0.0.53#5353"])
        assert fake.dnsmasq.servers == [["192.168.1.1"], ["2001:db8::53"], ["10.0.0.53#5353"]]
        assert dnsmasq.servers == ["192.168.1.1", "2001:db8::53", "10.0.0.53#5353"]
        await dnsmasq.set_servers([])
        assert fake.dnsmasq.servers == []
        assert await dnsmasq.get_version() == "2.90"
        await dnsmasq.clear_cache()
        assert fake.calls_to("ClearCache") == [[]]


async def test_servers_set_while_dnsmasq_is_down_are_pushed_when_it_appears(bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        dnsmasq = DnsmasqAdapter(bus)
        await dnsmasq.start()
        with pytest.raises(errors.ServiceUnavailable):
            await dnsmasq.set_servers(["1.1.1.1"])
        fake = FakeDnsmasq(bus_address)
        await fake.start()
        await wait_until(lambda: fake.dnsmasq.servers == [["1.1.1.1"]])
