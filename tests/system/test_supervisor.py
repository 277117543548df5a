"""What the balena supervisor does, done on the device exactly as it does it, and what it sees.

A hostname change: config.json edited power-safely, then balena-hostname.service (or
resin-hostname.service) restarted through systemd's D-Bus API with mode "fail"; the job must
succeed with the name already applied (kernel, hostnamed, <name>.local from the peer).
Discoverability: off withdraws <name>.local and _ssh._tcp from the network, on brings them back;
avahi-daemon stopped the supervisor's way is "not discoverable", not degraded."""

from __future__ import annotations

import json
import os
import sys

import pytest

from .device import Hostd
from .test_hostname import wait_named

pytestmark = pytest.mark.system

# python-zeroconf in the peer namespace: the device's _ssh._tcp instance, or nothing.
SSH_SERVICE_QUERY = r"""
import sys
from zeroconf import Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
try:
    info = zc.get_service_info("_ssh._tcp.local.", sys.argv[2] + "._ssh._tcp.local.", int(sys.argv[3]))
    print(info.port if info else "")
finally:
    zc.close()
"""


def write_config_power_safe(hostd: Hostd, **changes: str) -> None:
    """As the supervisor writes config.json: a temporary file, fsync, rename, fsync the directory."""
    path = hostd.tb.config_path
    document = hostd.tb.read_config() | changes
    tmp = path.with_name(".config.json.supervisor")
    with open(tmp, "w") as file:
        file.write(json.dumps(document))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def restart_unit_as_supervisor(hostd: Hostd, unit: str) -> str:
    """RestartUnit(unit, "fail") on systemd's D-Bus API inside the device; once its job is done, what
    systemd logged for the run (an inactive oneshot is unloaded, its properties start afresh)."""
    since = hostd.tb.exec(["date", "+%s.%N"]).stdout.strip()
    systemd = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
    job = hostd.tb.exec(["busctl", "call", *systemd, "RestartUnit", "ss", unit, "fail"]).stdout.split()[1].strip('"')

    def job_gone() -> bool:
        state = ["busctl", "get-property", "org.freedesktop.systemd1", job, "org.freedesktop.systemd1.Job", "State"]
        return hostd.tb.exec(state, check=False).returncode != 0

    hostd.tb.wait_for(job_gone, 60, f"the {unit} job done")
    return hostd.tb.exec(["journalctl", "-o", "cat", "-u", unit, f"--since=@{since}", "--no-pager"]).stdout


def ssh_service_port(hostd: Hostd, name: str, timeout_ms: int = 3000) -> str:
    r = hostd.tb.peer_exec(
        [sys.executable, "-c", SSH_SERVICE_QUERY, hostd.tb.peer_ip, name, str(timeout_ms)], check=False
    )
    return r.stdout.strip()


@pytest.mark.parametrize("unit", ["balena-hostname.service", "resin-hostname.service"])
def test_supervisor_hostname_restart_applies_the_name(boot: Hostd, unit: str) -> None:
    """The job succeeds with the new name already the kernel's and hostnamed's; the peer resolves it."""
    name = "super-" + unit.split("-")[0]
    write_config_power_safe(boot, hostname=name)
    log = restart_unit_as_supervisor(boot, unit)
    assert "Finished" in log and "Failed" not in log, log
    assert boot.tb.hostname() == name
    assert boot.tb.exec(["hostnamectl", "hostname", "--static"]).stdout.strip() == name
    wait_named(boot, name)


def test_supervisor_hostname_restart_while_hostd_is_stopped(boot: Hostd) -> None:
    """hostd not running: the unit starts it, and succeeds once the name is applied."""
    boot.tb.exec(["systemctl", "stop", "hostd.service"])
    write_config_power_safe(boot, hostname="super-stopped")
    log = restart_unit_as_supervisor(boot, "balena-hostname.service")
    assert "Finished" in log and "Failed" not in log, log
    assert boot.tb.unit_state("hostd.service") == "active"
    assert boot.tb.hostname() == "super-stopped"
    wait_named(boot, "super-stopped")


def test_discoverable_off_withdraws_name_and_ssh_and_on_announces_again(boot: Hostd) -> None:
    name = boot.describe()["hostname"]
    boot.settle_mdns()
    assert ssh_service_port(boot, name) == "22222"
    try:
        boot.call("SetDiscoverable", "b", "false")
        assert boot.prop("Discoverable") is False
        assert boot.mdns(name, 1500) == []
        assert ssh_service_port(boot, name, 1500) == ""
        assert boot.prop("Degraded") == []  # off on purpose, not a fault
        assert boot.hostctl("discoverable").stdout.strip().startswith("off")
    finally:
        boot.call("SetDiscoverable", "b", "true")
    assert boot.prop("Discoverable") is True
    boot.wait_ready()
    boot.settle_mdns(15)
    boot.tb.wait_for(lambda: ssh_service_port(boot, name, 1500) == "22222", 15, "_ssh._tcp announced again")


def test_avahi_stopped_the_supervisors_way_is_not_degraded(boot: Hostd) -> None:
    """HOST_DISCOVERABILITY=false today: the supervisor stops avahi-daemon's service and socket."""
    try:
        boot.tb.exec(["systemctl", "stop", "avahi-daemon.socket", "avahi-daemon.service"])
        boot.tb.wait_for(lambda: boot.prop("Discoverable") is False, 10, "Discoverable false")
        assert boot.prop("Degraded") == []
        assert boot.describe()["discovery"]["why"] == "avahi-daemon.service was stopped"
    finally:
        boot.tb.exec(["systemctl", "start", "avahi-daemon.socket", "avahi-daemon.service"])
    boot.wait_ready()
    assert boot.prop("Discoverable") is True
    boot.settle_mdns(15)
