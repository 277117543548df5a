"""The API's view shows what the services were given and reported, recorded when it happened."""

from __future__ import annotations

from types import SimpleNamespace

from hostd import config as cfg
from hostd.reconciler import Applied, Reconciler
from hostd.steps import dns
from hostd.steps import logging as logging_step
from hostd.timesync import TimeState
from hostd.view import View

from .conftest import UUID


def make_view(device) -> tuple[View, Reconciler, SimpleNamespace]:
    services = SimpleNamespace(
        networkmanager=SimpleNamespace(attached=True, dns_servers=["192.168.1.1"]),
        hostname1=SimpleNamespace(available=False),
        modemmanager=SimpleNamespace(modems={}),
        avahi=SimpleNamespace(available=False),
        degraded=lambda: {"avahi": "not running"},
    )
    reconciler = Reconciler(
        device.layout,
        services,  # type: ignore[arg-type]
        probe_resolver=("127.0.0.2", 53),
        publish=lambda: None,
        reconciled=lambda results, outcome: None,
    )
    discovery = SimpleNamespace(discoverable=True, enabled=True, why_not=lambda: "")
    time = SimpleNamespace(state=TimeState(False, "rtc", 0, ("", 0, ""), 0.0, "no NTP server has answered yet"))
    return View(reconciler, services, discovery, time), reconciler, services  # type: ignore[arg-type]


def test_dns_servers_are_what_dnsmasq_was_given_not_computed_again(device) -> None:
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1"})
    view, reconciler, services = make_view(device)
    reconciler.applied = Applied(cfg.load(device.layout).config, device.layout, None)
    assert view.properties()["DnsServers"] == []  # nothing given yet
    reconciler.records[dns.NAME] = dns.Given(("10.0.0.1", "1.1.1.1"))
    services.networkmanager.dns_servers = ["172.16.0.1"]  # the network's servers changed since
    props = view.properties()
    assert props["DnsServers"] == ["10.0.0.1", "1.1.1.1"] and view.describe()["dns"]["servers"] == props["DnsServers"]


def test_records_of_the_live_effects(device) -> None:
    device.write_config({"uuid": UUID})
    view, reconciler, _ = make_view(device)
    reconciler.records[logging_step.NAME] = logging_step.JournalUsage(4096)
    view.time.state = TimeState(True, "ntp", 1_700_000_000_000_000, ("PHC0", 1, "Normal"), 0.5, "")
    document = view.describe()
    assert document["logging"]["journalUsage"] == 4096
    assert document["time"]["tracking"] == {"reference": "PHC0", "stratum": 1, "leapStatus": "Normal", "offset": 0.5}
    assert (document["time"]["trusted"], document["time"]["source"]) == (True, "ntp")
    assert view.properties()["TimeTracking"] == ("PHC0", 1, "Normal")
    assert document["generations"]["lastRollback"] is None and document["degraded"] == {"avahi": "not running"}
    assert view.status_line() == "0 steps applied; degraded: avahi"


def test_avahi_stopped_on_purpose_is_not_degraded(device) -> None:
    """Not discoverable (set off, or avahi-daemon stopped by the supervisor): avahi down is expected."""
    device.write_config({"uuid": UUID})
    view, _, services = make_view(device)
    services.avahi.key = "avahi"
    assert view.properties()["Degraded"] == ["avahi"]
    view.discovery.discoverable = False
    assert view.properties()["Degraded"] == []
    assert view.properties()["Discoverable"] is False
