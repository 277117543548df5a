"""ntpServers become chrony sources, live (chronyc reload sources, no chronyd restart)."""

from __future__ import annotations

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

EXTRA = "192.0.2.123"  # TEST-NET-1: a source chrony lists, never reaches


def chrony_sources(hostd: Hostd) -> list[str]:
    """Addresses of chronyd's sources (`chronyc -n -c sources`, inside the device)."""
    out = hostd.tb.exec(["chronyc", "-n", "-c", "sources"]).stdout
    return sorted(line.split(",")[2] for line in out.splitlines() if line.count(",") >= 2)


def test_ntp_servers_are_chrony_sources(hostd: Hostd) -> None:
    """The sample's ntpServers (the peer) is a chrony source, and hostd reports it."""
    peer = hostd.tb.peer_ip
    assert chrony_sources(hostd) == [peer]
    assert hostd.prop("NtpServers") == [peer]
    assert hostd.hostctl("time").stdout.splitlines()[0] == f"NTP servers: {peer}"


def test_ntp_servers_follow_config_live(boot: Hostd) -> None:
    """Adding and removing ntpServers in config.json changes chrony's sources without restarting it."""
    peer, chronyd = boot.tb.peer_ip, boot.main_pid("chrony.service")
    boot.edit_config(ntpServers=[peer, EXTRA])
    boot.tb.wait_for(lambda: chrony_sources(boot) == sorted([peer, EXTRA]), 10, "both servers in chrony")
    assert boot.describe()["time"]["ntpServers"] == [peer, EXTRA]
    boot.edit_config(ntpServers=None)
    boot.tb.wait_for(lambda: chrony_sources(boot) == [], 10, "no sources in chrony")
    assert boot.main_pid("chrony.service") == chronyd
    step = boot.step("ntp")
    assert step["problems"] == [] and step["status"] == "changed", step


def test_ntp_change_while_chrony_is_stopped(boot: Hostd) -> None:
    """With chronyd stopped (as at boot: hostd runs before it), an ntpServers change is written
    without a failure in the step, and chronyd uses it when it starts."""
    tb = boot.tb
    tb.exec(["systemctl", "stop", "chrony.service"])
    try:
        boot.edit_config(ntpServers=[EXTRA])
        boot.wait_describe(lambda d: d["time"]["ntpServers"] == [EXTRA], what="ntpServers applied")
        step = boot.step("ntp")
    finally:
        tb.exec(["systemctl", "start", "chrony.service"])
    tb.wait_for(lambda: chrony_sources(boot) == [EXTRA], 10, "the new server once chronyd runs")
    assert step["problems"] == [], step
    # Degraded while stopped (RELIABILITY.md); back once hostd has seen the unit active again
    tb.wait_for(lambda: "chrony" not in boot.prop("Degraded"), 2, "chrony no longer degraded")


def test_chrony_stop_start_keeps_ntp_servers(hostd: Hostd) -> None:
    """After chronyd is stopped and started again, the configured servers are its sources again."""
    hostd.tb.exec(["systemctl", "stop", "chrony.service"])
    hostd.tb.exec(["systemctl", "start", "chrony.service"])
    try:
        hostd.tb.wait_for(lambda: chrony_sources(hostd) == [hostd.tb.peer_ip], 5, "configured server in chrony")
    finally:  # until fixed: a full reconcile writes the sources again
        hostd.tb.restart_unit("hostd.service")
        hostd.wait_ready()
        hostd.tb.wait_for(lambda: chrony_sources(hostd) == [hostd.tb.peer_ip], 10, "sources restored")
