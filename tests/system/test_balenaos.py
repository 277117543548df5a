"""hostd on a device configured like balenaOS (tests/testbed/balenaos.py): a read-only root,
balenaOS's dnsmasq command line, chrony.conf and NetworkManager.conf.  Each test is proven by the
service's own view (dnsmasq answering, NetworkManager's properties, the mount table), not by
hostd's report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .device import Hostd
from .test_dns import dnsmasq_servers

pytestmark = pytest.mark.system

RESET_FLAG = "remove_me_to_reset"


def test_root_is_read_only_but_bound_paths_and_tmpfs(hostd: Hostd) -> None:
    """A stray write to the root fails as on a device; the bind mounts, /run, /tmp and
    /var/volatile take writes."""
    tb = hostd.tb
    stray = tb.exec(["touch", "/etc/hostd-stray"], check=False)
    assert stray.returncode != 0 and "Read-only file system" in stray.stderr
    for directory in ("/var/volatile", "/run", "/tmp", "/etc/NetworkManager/conf.d"):
        probe = f"{directory}/.hostd-test-write"
        tb.exec(["sh", "-c", f"touch {probe} && rm {probe}"])
    assert [s for s in hostd.describe()["steps"] if s["status"] == "failed"] == []


def test_the_package_made_the_bus_policys_admin_group(hostd: Hostd) -> None:
    """The image build (dpkg in the device's root) made hostd-admin: dbus-daemon knows the group
    its policy for io.hostd1 names, and does not warn about it."""
    tb = hostd.tb
    assert tb.exec(["getent", "group", "hostd-admin"]).stdout.startswith("hostd-admin:")
    journal = tb.exec(["journalctl", "-b", "-u", "dbus.service", "-o", "cat"]).stdout
    assert "hostd-admin" not in journal


def test_services_run_balenaos_configuration(hostd: Hostd) -> None:
    """dnsmasq runs balenaOS's command line and chrony reads balenaOS's chrony.conf (no confdir):
    what the other tests prove hostd against."""
    tb = hostd.tb
    pid = hostd.main_pid("dnsmasq.service")
    argv = tb.exec(["cat", f"/proc/{pid}/cmdline"]).stdout.split("\0")
    assert "--servers-file=/run/dnsmasq.servers" in argv and "127.0.0.2,10.114.102.1" in argv
    chrony_conf = tb.exec(["cat", "/etc/chrony/chrony.conf"]).stdout
    assert "sourcedir /run/chrony" in chrony_conf and "confdir" not in chrony_conf


@pytest.fixture
def hostd_stopped(boot: Hostd) -> Iterator[Hostd]:
    yield boot
    boot.tb.exec(["systemctl", "start", "hostd.service"], timeout=60)
    boot.wait_ready()


def test_dns_survives_hostd_absence(hostd_stopped: Hostd) -> None:
    """hostd stopped, then dnsmasq restarted: dnsmasq reads the last applied upstreams from
    --servers-file, and a name the peer's resolver knows still resolves through 127.0.0.2."""
    hostd, tb = hostd_stopped, hostd_stopped.tb
    tb.exec(["systemctl", "stop", "hostd.service"], timeout=60)
    tb.restart_unit("dnsmasq.service")
    tb.wait_for(lambda: dnsmasq_servers(hostd) == [tb.peer_ip], 10, "dnsmasq's servers from its servers file")
    answer = hostd.probe(timeout=2)
    assert answer.ok and answer.addrs == (tb.probe_addr,), answer


def test_dns_survives_a_boot_without_hostd(boot: Hostd) -> None:
    """hostd masked, device rebooted: tmpfiles copies the upstreams hostd last saved on the state
    partition to /run/dnsmasq.servers, and the device still resolves through 127.0.0.2, so it can
    reach whoever repairs it."""
    tb = boot.tb
    mask = tb.root_dir / "etc/systemd/system/hostd.service"  # written from outside: the root is read-only
    mask.symlink_to("/dev/null")
    try:
        # not tb.reboot(): without hostd's bind mounts logind cannot start, so the device never
        # has all the bus names the testbed waits for
        leader = tb.leader
        subprocess.run(["systemctl", "-M", tb.machine, "reboot"], check=False, capture_output=True)
        tb.wait_for(lambda: tb.leader != leader and tb.unit_state("dnsmasq.service") == "active", 60, "rebooted")
        assert tb.unit_state("hostd.service") != "active"
        tb.wait_for(lambda: dnsmasq_servers(boot) == [tb.peer_ip], 10, "dnsmasq's servers from the saved copy")
        tb.wait_for(lambda: boot.probe().addrs == (tb.probe_addr,), 20, "probe.test through 127.0.0.2, host0 up")
    finally:
        mask.unlink()
        tb.reboot()
        boot.wait_ready()


def nm_profiles(tb) -> list[str]:
    return tb.exec(["nmcli", "-g", "NAME", "connection", "show"]).stdout.split()


def test_reset_flag_is_read_at_boot_only(boot: Hostd) -> None:
    """Removing remove_me_to_reset asks for a reset at the next boot: a running device keeps its
    state (a profile made with nmcli stays in NetworkManager); the reboot wipes it, as balenaOS."""
    tb = boot.tb
    tb.exec(["nmcli", "connection", "add", "type", "dummy", "ifname", "rst0", "con-name", "reset-probe",
             "connection.autoconnect", "no"])  # fmt: skip
    try:
        assert "reset-probe" in nm_profiles(tb)
        (tb.state_dir / RESET_FLAG).unlink()
        boot.edit_config(testNonce=1)  # any edit of config.json: a reconcile runs the state step
        boot.reload()
        assert "reset-probe" in nm_profiles(tb)
        state = boot.step("state")
        assert state["status"] != "failed", state
        assert any(e["name"] == f"/mnt/state/{RESET_FLAG}" and e["status"] == "missing" for e in state["report"])

        tb.reboot()
        boot.wait_ready()
        assert "reset-probe" not in nm_profiles(tb)
        assert (tb.state_dir / RESET_FLAG).exists()
    finally:
        tb.exec(["nmcli", "connection", "delete", "reset-probe"], check=False)


@pytest.fixture
def peer_http(hostd: Hostd, tmp_path: Path) -> Iterator[str]:
    """An HTTP server in the peer namespace answering /check with NetworkManager's expected body."""
    (tmp_path / "check").write_text("NetworkManager is online")
    tb = hostd.tb
    port = 8080
    server = subprocess.Popen(
        ["ip", "netns", "exec", tb.netns, sys.executable, "-m", "http.server", "--bind", tb.peer_ip, str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uri = f"http://{tb.peer_ip}:{port}/check"
        tb.wait_for(lambda: tb.exec(["python3", "-c", PROBE_HTTP, uri], check=False).returncode == 0, 10, uri)
        yield uri
    finally:
        server.terminate()
        server.wait(10)


PROBE_HTTP = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"


def nm_property(hostd: Hostd, name: str) -> object:
    out = hostd.tb.busctl(
        "get-property", "--json=short", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
        "org.freedesktop.NetworkManager", name,
    ).stdout  # fmt: skip
    return json.loads(out)["data"]


def test_network_settings_reach_networkmanager_live(boot: Hostd, peer_http: str) -> None:
    """os.network.connectivity.* are in NetworkManager's own properties at once (it is asked to
    reload its configuration), not at its next restart; removing them takes them out again."""
    nm_pid = boot.main_pid("NetworkManager.service")
    assert nm_property(boot, "ConnectivityCheckUri") == ""
    boot.edit_config(os={"network": {"connectivity": {"uri": peer_http, "interval": 60}}})
    boot.tb.wait_for(lambda: nm_property(boot, "ConnectivityCheckUri") == peer_http, 10, "NetworkManager's URI")
    assert nm_property(boot, "ConnectivityCheckEnabled") is True
    boot.edit_config(os=None)
    boot.tb.wait_for(lambda: nm_property(boot, "ConnectivityCheckUri") == "", 10, "no connectivity URI")
    assert boot.main_pid("NetworkManager.service") == nm_pid


def test_udev_rules_reach_udev_for_present_devices(boot: Hostd) -> None:
    """os.udevRules: the rule lands in /etc/udev/rules.d (bound from the state partition) and
    udev's own rules engine applies it to host0, a device already present (`udevadm test`).  The
    container has no systemd-udevd to reload and trigger (its ConditionPathIsReadWrite=/sys fails:
    nspawn mounts /sys read-only, and the kernel's uevents do not reach a container), so hostd
    says the rules wait for it instead of claiming them in effect.  The VM device, with a udevd of
    its own, shows the rules acting on its disks (tests/vm/test_udev_vm.py)."""
    tb = boot.tb
    rule = 'SUBSYSTEM=="net", KERNEL=="host0", ENV{HOSTD_TEST}="applied"'
    boot.edit_config(os={"udevRules": {"99-hostd-test": rule}})
    boot.reload()
    assert tb.exec(["cat", "/etc/udev/rules.d/99-hostd-test.rules"]).stdout == rule + "\n"
    replay = tb.exec(["udevadm", "test", "--action=add", "/sys/class/net/host0"])  # as hostd replays
    assert "HOSTD_TEST=applied" in replay.stdout + replay.stderr
    assert "systemd-udevd is not running: the rules take effect when it starts" in boot.step("udev")["problems"]
