"""dns: dnsmasq's upstreams in its servers file, and given to the running dnsmasq; what it was given is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostd.steps import dns
from hostd.steps.base import Facts

from ..conftest import UUID
from .fakes import FakeDnsmasq, services

NETWORK = Facts(network_dns_servers=("192.168.1.1",))


def test_modes_and_network_servers(device) -> None:
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1"})
    device.run_step(dns, NETWORK)
    assert Path(device.layout.dnsmasq_servers).read_text() == "server=192.168.1.1\nserver=1.1.1.1\n"
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1", "os": {"dns": {"mode": "exclusive"}}})
    device.run_step(dns, NETWORK)
    assert Path(device.layout.dnsmasq_servers).read_text() == "server=1.1.1.1\n"
    device.write_config({"uuid": UUID, "dnsServers": "null"})
    device.run_step(dns)
    assert Path(device.layout.dnsmasq_servers).read_text() == ""


def test_the_servers_written_are_the_servers_given_and_recorded(device) -> None:
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1"})
    result = device.run_step(dns, NETWORK)
    assert result.record == dns.Given(("192.168.1.1", "1.1.1.1"))
    dnsmasq = FakeDnsmasq()
    outcome = asyncio.run(dns.apply_live(services(dnsmasq=dnsmasq), device.context(NETWORK), result))
    assert dnsmasq.given == [["192.168.1.1", "1.1.1.1"]] and not outcome.problems
    asyncio.run(dns.apply_live(services(dnsmasq=dnsmasq), device.context(NETWORK), result))
    assert len(dnsmasq.given) == 1  # it has them already: not asked again


def test_dnsmasq_not_running(device) -> None:
    device.write_config({"uuid": UUID})
    result = device.run_step(dns)
    outcome = asyncio.run(dns.apply_live(services(dnsmasq=FakeDnsmasq(attached=False)), device.context(), result))
    assert outcome.problems == ["dnsmasq is not running: its servers are set when it starts"]
