"""dnsServers and os.dns.mode reach the running dnsmasq live (over D-Bus, no restart): a name
the peer's resolver knows answers through 127.0.0.2 while an answering server is in the list,
and stops answering when only a silent one is.  dnsmasq runs balenaOS's command line: its
upstreams come from /run/dnsmasq.servers (re-read on SIGHUP) and over D-Bus, both hostd's; a
server left from an earlier list would show among GetServerMetrics' addresses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

SILENT_HOST = 250  # on the link, but nobody there: queries to it go unanswered


def silent(hostd: Hostd) -> str:
    return f"{hostd.tb.peer_ip.rsplit('.', 1)[0]}.{SILENT_HOST}"


def dnsmasq_servers(hostd: Hostd) -> list[str]:
    """The upstreams the running dnsmasq uses, asked from outside (GetServerMetrics).  Each
    server hostd gives is there twice, from the servers file and from D-Bus: once here."""
    name, path = "uk.org.thekelleys.dnsmasq", "/uk/org/thekelleys/dnsmasq"
    [metrics] = hostd.busctl_json("call", name, path, name, "GetServerMetrics")
    return list(dict.fromkeys(m["address"] for m in metrics))


def apply_dns(hostd: Hostd, servers: str, mode: str | None, expect: list[str]) -> None:
    """Edit config.json and wait until hostd and dnsmasq both use `expect`."""
    hostd.edit_config(dnsServers=servers, os={"dns": {"mode": mode}} if mode else None)
    hostd.wait_describe(lambda d: d["dns"]["servers"] == expect, what=f"hostd's servers {expect}")
    hostd.tb.wait_for(lambda: dnsmasq_servers(hostd) == expect, 10, f"dnsmasq's servers {expect}")


def resolves(hostd: Hostd) -> bool:
    answer = hostd.probe()
    return answer.ok and answer.addrs == (hostd.tb.probe_addr,)


@pytest.fixture
def network_dns(boot: Hostd) -> Iterator[Hostd]:
    """The link's own DNS server (what DHCP would give), set on host0 at runtime through
    NetworkManager; the profile's settings are re-applied afterwards."""
    tb = boot.tb
    tb.exec(["nmcli", "device", "modify", tb.device_if, "ipv4.dns", tb.peer_ip])
    try:
        yield boot
    finally:
        tb.exec(["nmcli", "device", "reapply", tb.device_if])
        boot.reload()


def test_configured_server_answers(hostd: Hostd) -> None:
    """The sample's dnsServers (the peer) is dnsmasq's upstream: probe.test resolves through 127.0.0.2."""
    assert hostd.describe()["dns"] == {"mode": "append", "servers": [hostd.tb.peer_ip]}
    assert dnsmasq_servers(hostd) == [hostd.tb.peer_ip]
    assert hostd.tb.exec(["cat", "/etc/resolv.conf"]).stdout.split() == ["nameserver", "127.0.0.2"]
    hostd.tb.wait_for(lambda: resolves(hostd), 10, "probe.test through the device's dnsmasq")


def test_append_keeps_the_network_servers(network_dns: Hostd) -> None:
    """append: the configured servers come after the network's; a silent configured server does
    not stop resolution through the network's server."""
    hostd, peer = network_dns, network_dns.tb.peer_ip
    dead = silent(hostd)
    apply_dns(hostd, dead, None, [peer, dead])
    assert hostd.describe()["dns"]["mode"] == "append"
    assert hostd.hostctl("dns").stdout.split() == ["mode:", "append", "server:", peer, "server:", dead]
    hostd.tb.wait_for(lambda: resolves(hostd), 10, "probe.test via the network's server")


def test_exclusive_uses_only_the_configured_servers(network_dns: Hostd) -> None:
    """exclusive: only dnsServers, the network's server is dropped; with a silent server alone
    nothing resolves, with the peer it does again, live each time."""
    hostd, peer = network_dns, network_dns.tb.peer_ip
    dead = silent(hostd)
    apply_dns(hostd, dead, "exclusive", [dead])
    assert not hostd.probe().ok
    assert not hostd.probe().ok
    apply_dns(hostd, peer, "exclusive", [peer])
    hostd.tb.wait_for(lambda: resolves(hostd), 10, "probe.test via the configured server")
    apply_dns(hostd, dead, "exclusive", [dead])
    assert not hostd.probe().ok
    apply_dns(hostd, dead, "append", [peer, dead])  # back: the network's server again
    hostd.tb.wait_for(lambda: resolves(hostd), 10, "probe.test via the network's server")
