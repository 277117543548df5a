"""What the balena supervisor does, done on the device exactly as it does it, and what it sees.

A hostname change: config.json edited power-safely, then balena-hostname.service (or
resin-hostname.service) restarted through systemd's D-Bus API with mode "fail"; the job must
succeed with the name already applied (kernel, hostnamed, <name>.local from the peer).
Discoverability: off withdraws <name>.local and _ssh._tcp from the network, on brings them back;
avahi-daemon stopped the supervisor's way is "not discoverable", not degraded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .device import Hostd
from .test_hostname import wait_named
from .test_safe_apply import (
    CUTOFF,
    NM_DIR,
    ROLLBACK_SLACK,
    cutoff_profile,
    generations,
    make_good_baseline,
    other_subnet,
    peer_reaches_device,
    wait_kept,
    wait_rolled_back,
)

pytestmark = pytest.mark.system

MONITORS: list[tuple[subprocess.Popen[bytes], Path]] = []

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

    started = time.monotonic()
    hostd.tb.wait_for(job_gone, 60, f"the {unit} job done")
    print(f"\n[supervisor] {unit}: RestartUnit job done after {time.monotonic() - started:.2f} s")
    return hostd.tb.exec(["journalctl", "-o", "cat", "-u", unit, f"--since=@{since}", "--no-pager"]).stdout


def follow_signals(hostd: Hostd, member: str) -> Path:
    """busctl monitor on the device's bus for io.hostd1's ``member`` signals, as JSON lines into a file;
    stopped at the end of the test."""
    out = Path(tempfile.mkstemp(prefix=f"hostd-{member}-")[1])
    match = f"type='signal',sender='io.hostd1',interface='io.hostd1.Manager',member='{member}'"
    command = ["busctl", f"--address={hostd.tb.bus_address}", "--json=short", "monitor", f"--match={match}"]
    with open(out, "w") as sink:
        monitor = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL)
    MONITORS.append((monitor, out))
    time.sleep(0.5)  # subscribed before the change under test
    return out


def signal_bodies(out: Path) -> list[list[object]]:
    return [json.loads(line)["payload"]["data"] for line in out.read_text().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _stop_monitors() -> Iterator[None]:
    yield
    while MONITORS:
        monitor, out = MONITORS.pop()
        monitor.terminate()
        monitor.wait(timeout=5)
        out.unlink()


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


def test_set_config_over_the_bus_applies_through_safe_apply_and_keeps_other_bytes(boot: Hostd) -> None:
    """SetConfig from a client on the device's bus (busctl): config.json gains the key in place, the
    risky key is probed, then kept; the API shows it."""
    make_good_baseline(boot)
    good = generations(boot)["good"]
    before = boot.tb.config_path.read_text()
    boot.call("SetConfig", "a{sv}", "1", "ntpServers", "as", "1", "time.example")
    old = json.dumps(json.loads(before)["ntpServers"])  # the testbed's: a string, on one line
    assert boot.tb.config_path.read_text() == before.replace(f'"ntpServers": {old}', '"ntpServers": ["time.example"]')
    wait_kept(boot, good)
    assert boot.prop("NtpServers") == ["time.example"]
    refused = boot.tb.busctl(
        "call", "io.hostd1", "/io/hostd1", "io.hostd1.Manager", "SetConfig", "a{sv}", "1", "country", "s", "XYZ",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "country" in refused.stderr and "XYZ" in refused.stderr


def test_profile_added_with_hostctl_that_cuts_the_device_off_is_rolled_back_file_included(boot: Hostd) -> None:
    """`hostctl connection add` writes the profile to the boot partition and hostd puts it on trial: it
    takes the uplink over on another subnet, the probe fails, and the good generation comes back with
    the boot partition's file removed again; `hostctl connection list` never shows a secret."""
    tb = boot.tb
    make_good_baseline(boot)
    good = generations(boot)["good"]
    started = time.monotonic()
    monitor = follow_signals(boot, "RolledBack")
    tb.exec(
        ["sh", "-c", "cat > /run/cutoff.nmconnection"],
        input=cutoff_profile(tb.device_if, other_subnet(tb.device_ip)).decode(),
    )
    added = boot.hostctl("connection", "add", CUTOFF, "/run/cutoff.nmconnection")
    assert added.returncode == 0, added.stderr
    assert CUTOFF in boot.hostctl("connection", "list").stdout
    doc, _ = wait_rolled_back(boot, good, started)
    # the supervisor's way to learn it: the RolledBack signal, with the probe's evidence
    rollback = doc["generations"]["lastRollback"]
    signalled = tb.wait_for(lambda: signal_bodies(monitor), 5, "RolledBack on the bus")
    assert signalled[0] == [rollback["generation"], rollback["reason"], rollback["evidence"]]
    assert f"{tb.probe_name} does not resolve" in signalled[0][2]
    tb.wait_for(lambda: not (tb.boot_dir / "system-connections" / CUTOFF).exists(), 10, "the boot file removed")
    tb.wait_for(lambda: peer_reaches_device(boot), ROLLBACK_SLACK, "the peer reaches the device again")
    assert f"{NM_DIR}/{CUTOFF}" not in boot.nm_profiles()
    boot.wait_describe(lambda d: d["generations"]["notApplied"] == "", what="the boot partition runs again")
