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


# services that read or write bound paths
CONSUMERS = ("NetworkManager.service", "systemd-logind.service")


def test_bind_mounts_exist_before_hostd_starts(hostd: Hostd) -> None:
    """systemd's own monotonic timestamps of a boot: every bind mount, the state partition's and
    the data partition's journal, is a static unit (units/mounts) that became active after
    hostd-bind-sources.service and before hostd's process started, and before NetworkManager and
    logind (/var/lib/systemd) left `inactive`; sshd's host key, generated at its first start, is on
    the state partition."""
    tb = hostd.tb

    def mono(unit: str, prop: str) -> int:
        return int(hostd.unit_props(unit, prop)[prop])

    def boot_finished() -> int:
        return int(tb.exec(["systemctl", "show", "-P", "FinishTimestampMonotonic"]).stdout)

    if mono("hostd.service", "ActiveEnterTimestampMonotonic") > boot_finished():  # restarted since boot
        tb.reboot()
        hostd.wait_ready()
    hostd_started = mono("hostd.service", "ExecMainStartTimestampMonotonic")
    consumers_started = [mono(unit, "InactiveExitTimestampMonotonic") for unit in CONSUMERS]
    # sshd's first connection generates the host key (sshd@.service wants sshdgenkeys.service):
    # start what it starts, so this test does not depend on an earlier one having logged in.
    tb.exec(["systemctl", "start", "sshdgenkeys.service"])
    assert (tb.state_dir / "root-overlay/etc/ssh/hostkeys/ssh_host_ed25519_key").is_file()
    for path in STATE_PATHS + DATA_PATHS:
        unit = mount_unit(hostd, path)
        props = hostd.unit_props(unit, "ActiveState", "ActiveEnterTimestampMonotonic", "FragmentPath", "After")
        assert props["ActiveState"] == "active", (unit, props)
        assert props["FragmentPath"] == f"/lib/systemd/system/{unit}", (unit, props)  # shipped, not transient
        assert "hostd-bind-sources.service" in props["After"].split(), (unit, props)
        mounted = int(props["ActiveEnterTimestampMonotonic"])
        assert 0 < mounted < hostd_started and all(mounted < started for started in consumers_started), (unit, props)
