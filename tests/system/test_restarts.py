"""Services restarting under hostd: it notices (Degraded while one is gone), gives each what it
needs again when it is back, and says so in its status.  hostd restarting changes nothing that
was converged."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .device import Hostd
from .test_connections import ABSENT_LINK_PROFILE, entries
from .test_dns import dnsmasq_servers, resolves

pytestmark = pytest.mark.system

CHRONY_SOURCES = "/run/chrony/hostd.sources"
# hostd's files, as device paths (directories: every file below); see the README's "Device paths"
# (the sample is in production mode: no /var/volatile/development-features)
MANAGED = [
    "/mnt/boot/config.json",
    "/mnt/state/hostd",
    "/mnt/state/remove_me_to_reset",
    "/mnt/data/remove_me_to_reset",
    "/mnt/state/root-overlay/etc/hostname",
    "/mnt/state/root-overlay/etc/NetworkManager",
    "/mnt/state/root-overlay/etc/udev",
    "/mnt/state/root-overlay/home/root/.ssh",
    CHRONY_SOURCES,
    "/run/NetworkManager/conf.d",
    "/run/systemd/journald.conf.d",
    "/run/dnsmasq.servers",
]
SERVICES = [
    "NetworkManager.service",
    "ModemManager.service",
    "avahi-daemon.service",
    "dnsmasq.service",
    "chrony.service",
    "systemd-journald.service",
]
STAT = (
    "import os, sys\n"
    "for top in sys.argv[1:]:\n"
    "    walk = os.walk(top) if os.path.isdir(top) else [(top, [], [])]\n"
    "    for d, _, fs in walk:\n"
    "        for f in [d] + [os.path.join(d, f) for f in fs]:\n"
    "            s = os.lstat(f)\n"
    "            print(f, s.st_ino, s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns, s.st_ctime_ns)\n"
)


def files_state(hostd: Hostd, paths: list[str]) -> list[str]:
    """inode, mode, owner, size, mtime and ctime of every file and directory under paths (inside)."""
    return sorted(hostd.tb.exec(["python3", "-c", STAT, *paths]).stdout.splitlines())


def reapplied(hostd: Hostd, steps: tuple[str, ...], since: float) -> bool:
    """hostd's status shows these steps run again (finished) after `since` (unix time)."""
    times = {s["name"]: s["finished_at"] for s in hostd.describe()["steps"]}
    return all(times[name] > since for name in steps)


def device_now(hostd: Hostd) -> str:
    """The device's clock, as journalctl --since takes it."""
    return "@" + hostd.tb.exec(["date", "+%s.%N"]).stdout.strip()


def hostd_log_since(hostd: Hostd, since: str) -> str:
    # By time, not by cursor: a cursor taken from the journal's last entry did not always find
    # the entries written after it (seen when the journal had just been reopened).
    return hostd.tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "hostd.service", f"--since={since}"]).stdout


def test_networkmanager_stopped_degraded_then_reapplied(boot: Hostd) -> None:
    """NetworkManager stopped: Degraded lists it (property and `hostctl status`); started again:
    hostd re-runs connections and dns, the boot profile is loaded, Degraded is empty."""
    tb = boot.tb
    (tb.boot_dir / "system-connections" / "systest-absent.nmconnection").write_bytes(ABSENT_LINK_PROFILE)
    boot.wait_describe(lambda d: entries(d).get("systest-absent.nmconnection", {}).get("nm") == "loaded")
    tb.exec(["systemctl", "stop", "NetworkManager.service"])
    try:
        tb.wait_for(lambda: "networkmanager" in boot.prop("Degraded"), 10, "networkmanager degraded")
        status = boot.hostctl("status").stdout
        assert "Degraded: networkmanager" in status, status
        stopped_at = time.time()
    finally:
        tb.exec(["systemctl", "start", "NetworkManager.service"])
    boot.wait_ready()
    tb.wait_for(lambda: reapplied(boot, ("connections", "dns"), stopped_at), 10, "connections and dns re-applied")
    assert entries(boot.describe())["systest-absent.nmconnection"]["nm"] == "loaded"
    tb.wait_for(lambda: boot.host0_connection() == "100 (connected)\ntestbed-host0", 20, "host0 connected again")


def test_networkmanager_restart_noticed(hostd: Hostd) -> None:
    """`systemctl restart NetworkManager`: hostd logs it gone and back, and re-runs its steps."""
    since, before = device_now(hostd), time.time()
    hostd.tb.restart_unit("NetworkManager.service")
    hostd.tb.wait_for(lambda: "networkmanager is back" in hostd_log_since(hostd, since), 10, "back")
    assert "networkmanager: vanished from the bus" in hostd_log_since(hostd, since)
    hostd.wait_ready()
    assert reapplied(hostd, ("connections", "dns"), before)
    hostd.tb.wait_for(lambda: hostd.host0_connection() == "100 (connected)\ntestbed-host0", 20, "host0 connected")


def test_dnsmasq_restart_gets_its_servers_again(hostd: Hostd) -> None:
    """dnsmasq has no upstream of its own: after a restart, resolution works again only because
    hostd pushed dnsServers to the new process."""
    tb = hostd.tb
    conf = tb.exec(["sh", "-c", "cat /etc/dnsmasq.conf /etc/dnsmasq.d/*"]).stdout.splitlines()
    assert "no-resolv" in conf
    assert not [line for line in conf if line.startswith(("server=", "servers-file", "resolv-file"))]
    pid, before = hostd.main_pid("dnsmasq.service"), time.time()
    tb.restart_unit("dnsmasq.service")
    assert hostd.main_pid("dnsmasq.service") != pid
    tb.wait_for(lambda: dnsmasq_servers(hostd) == [tb.peer_ip], 10, "servers pushed to the new dnsmasq")
    tb.wait_for(lambda: resolves(hostd), 10, "probe.test resolves again")
    hostd.wait_ready()
    assert reapplied(hostd, ("dns",), before)


def test_avahi_restart_announces_again(hostd: Hostd) -> None:
    """avahi-daemon restarted: hostd gives it the hostname again and <name>.local answers."""
    name, before = hostd.describe()["hostname"], time.time()
    hostd.tb.restart_unit("avahi-daemon.service")
    hostd.wait_ready()
    hostd.tb.wait_for(lambda: reapplied(hostd, ("hostname",), before), 10, "hostname step re-run")
    hostd.settle_mdns()
    assert hostd.describe()["mdns"]["hostname"] == name


def converged(hostd: Hostd) -> dict[str, Any]:
    return {
        "files": files_state(hostd, MANAGED),
        "services": {u: hostd.unit_props(u, "MainPID", "InvocationID") for u in SERVICES},
        "mounts": hostd.tb.exec(["findmnt", "-rn", "-o", "TARGET,FSROOT"]).stdout,
        "hostname": hostd.tb.hostname(),
        "dnsmasq": dnsmasq_servers(hostd),
        "connections": hostd.nm_profiles(),
    }


def restart_hostd(hostd: Hostd) -> int:
    old = hostd.pid()
    # Zero systemd's start-rate counter (5 starts in 10 s): these tests restart hostd quickly one
    # after the other, and the next test file's restarts must not hit the limit either.
    hostd.tb.exec(["systemctl", "reset-failed", "hostd.service"])
    hostd.tb.restart_unit("hostd.service")
    hostd.wait_ready()
    assert hostd.pid() != old
    return hostd.pid()


def test_hostd_restart_changes_nothing(hostd: Hostd) -> None:
    """After a restart every step finds the device converged: no file is rewritten (same inode,
    mtime, ctime), no service restarted, no mount made again, and every step says "ok"."""
    hostd.settle_mdns()
    before = converged(hostd)
    pid = restart_hostd(hostd)
    assert converged(hostd) == before
    steps = {s["name"]: (s["status"], s["changes"], s["problems"]) for s in hostd.describe()["steps"]}
    assert all(v == ("ok", [], []) for v in steps.values()), steps
    io = dict(line.split(": ") for line in hostd.tb.exec(["cat", f"/proc/{pid}/io"]).stdout.splitlines())
    assert io["write_bytes"] == "0", io


def test_hostd_restart_leaves_chrony_sources_alone(hostd: Hostd) -> None:
    """chrony's sources live in its sourcedir /run/chrony, which Debian's unit hands, files
    included, to chrony's user at every start: after a chrony restart, a hostd restart neither
    rewrites the file (nor takes its owner back) nor reloads chrony."""
    hostd.tb.restart_unit("chrony.service")
    before = files_state(hostd, [CHRONY_SOURCES])
    restart_hostd(hostd)
    ntp = hostd.step("ntp")
    assert (files_state(hostd, [CHRONY_SOURCES]), ntp["status"]) == (before, "ok"), ntp


def test_hostd_restart_on_a_converged_device_starts_no_hostnamed(hostd: Hostd) -> None:
    """hostnamed (bus-activated, gone when idle) is not started by a hostd start that finds the name
    set: hostd calls it only to change the name.  The name is still hostd's, everywhere."""
    tb = hostd.tb
    tb.exec(["systemctl", "stop", "systemd-hostnamed.service"])
    restart_hostd(hostd)
    assert tb.unit_state("systemd-hostnamed.service") == "inactive"
    name = hostd.describe()["hostname"]
    assert (tb.hostname(), tb.exec(["cat", "/etc/hostname"]).stdout.strip()) == (name, name)
    assert hostd.prop("Degraded") == [] and hostd.step("hostname")["status"] == "ok"


def test_hostd_start_starts_no_timedated_and_time_synchronized_is_its_answer(hostd: Hostd) -> None:
    """timedated (bus-activated, gone when idle) is not started by a hostd start, and its idle exit
    does not wake hostd (the bus daemon holds no match rule of hostd's naming it): TimeSynchronized
    is read from the kernel as timedated reads it, and is timedated's own answer, asked afterwards."""
    tb = hostd.tb
    tb.exec(["systemctl", "stop", "systemd-timedated.service"])
    restart_hostd(hostd)
    assert tb.unit_state("systemd-timedated.service") == "inactive"
    owner = hostd.busctl_json("call", DBUS, DBUS_PATH, DBUS, "GetNameOwner", "s", "io.hostd1")[0]
    [rules] = hostd.busctl_json("call", DBUS, DBUS_PATH, f"{DBUS}.Debug.Stats", "GetAllMatchRules")
    assert rules[owner] and not [rule for rule in rules[owner] if "timedate1" in rule], rules[owner]
    ours = hostd.prop("TimeSynchronized")
    theirs = tb.exec(["timedatectl", "show", "--property=NTPSynchronized", "--value"]).stdout.strip()
    assert ours is (theirs == "yes"), (ours, theirs)


DBUS, DBUS_PATH = "org.freedesktop.DBus", "/org/freedesktop/DBus"
