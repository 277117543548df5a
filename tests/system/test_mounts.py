"""Persistent bind mounts: every balenaOS path is bound from the state (or data) partition, and
all of them are in place before NetworkManager starts (it reads its profiles and state from them)."""

from __future__ import annotations

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

# hostd.steps.state's list, spelled out: the test must fail if a path goes missing there
STATE_PATHS = [
    "/etc/hostname",
    "/etc/ssh/hostkeys",
    "/etc/openvpn",
    "/etc/NetworkManager/conf.d",
    "/etc/NetworkManager/system-connections",
    "/etc/NetworkManager/dispatcher.d",
    "/etc/udev/rules.d",
    "/etc/ssl/certs",
    "/home/root/.ssh",
    "/home/root/.rnd",
    "/var/lib/bluetooth",
    "/var/lib/NetworkManager",
    "/etc/docker",
    "/home/root/.docker",
    "/var/lib/systemd",
    "/var/lib/chrony",
]
DATA_PATHS = ["/var/log/journal"]


def mount_unit(hostd: Hostd, path: str) -> str:
    return hostd.tb.exec(["systemd-escape", "--path", "--suffix=mount", path]).stdout.strip()


def test_bind_mounts_from_partitions(hostd: Hostd) -> None:
    """findmnt: each path is a bind mount of <partition>/root-overlay/<path>, and the state step
    reports no problem (every target exists, as on balenaOS)."""
    tb = hostd.tb
    for partition, paths in ((tb.state_dir, STATE_PATHS), (tb.data_dir, DATA_PATHS)):
        for path in paths:
            fsroot = tb.exec(["findmnt", "-n", "-o", "FSROOT", "--mountpoint", path]).stdout.strip()
            assert fsroot == str(partition / "root-overlay" / path.lstrip("/")), (path, fsroot)
    step = hostd.step("state")
    assert step["problems"] == [] and step["status"] in ("ok", "changed"), step


def test_bind_mounts_before_networkmanager_starts(hostd: Hostd) -> None:
    """Every bind mount unit became active before hostd reported ready, and hostd before
    NetworkManager.service left `inactive` at boot (systemd's own monotonic timestamps)."""
    tb = hostd.tb

    def mono(unit: str, prop: str) -> int:
        return int(hostd.unit_props(unit, prop)[prop])

    def boot_finished() -> int:
        return int(tb.exec(["systemctl", "show", "-P", "FinishTimestampMonotonic"]).stdout)

    def boot_order() -> tuple[int, int]:
        return (
            mono("hostd.service", "ActiveEnterTimestampMonotonic"),
            mono("NetworkManager.service", "InactiveExitTimestampMonotonic"),
        )

    if max(boot_order()) > boot_finished():  # restarted since boot (an earlier test): look at a fresh boot
        tb.reboot()
        hostd.wait_ready()
    hostd_ready, nm_started = boot_order()
    assert 0 < hostd_ready < nm_started < boot_finished()
    for path in STATE_PATHS + DATA_PATHS:
        unit = mount_unit(hostd, path)
        props = hostd.unit_props(unit, "ActiveState", "ActiveEnterTimestampMonotonic", "Description")
        assert props["ActiveState"] == "active" and props["Description"].startswith("hostd"), (unit, props)
        assert 0 < int(props["ActiveEnterTimestampMonotonic"]) < hostd_ready, (unit, props, hostd_ready)
