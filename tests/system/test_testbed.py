"""The testbed device runs the real stack hostd converges: systemd, dbus, NetworkManager,
ModemManager, avahi-daemon, dnsmasq, chrony, journald, hostnamed, timedated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]

# (bus name, object, interface, property) read from the host over the device's bus
BUS_PROPERTIES = [
    ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "Version"),
    (
        "org.freedesktop.NetworkManager",
        "/org/freedesktop/NetworkManager",
        "org.freedesktop.NetworkManager",
        "Version",
    ),
    (
        "org.freedesktop.ModemManager1",
        "/org/freedesktop/ModemManager1",
        "org.freedesktop.ModemManager1",
        "Version",
    ),
    ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.hostname1", "Hostname"),
    ("org.freedesktop.timedate1", "/org/freedesktop/timedate1", "org.freedesktop.timedate1", "Timezone"),
    ("org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "NAutoVTs"),
]
# (bus name, object, interface, method) for services that expose methods only
BUS_METHODS = [
    ("org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server", "GetVersionString"),
    ("uk.org.thekelleys.dnsmasq", "/uk/org/thekelleys/dnsmasq", "uk.org.thekelleys.dnsmasq", "GetVersion"),
]
STACK_UNITS = [
    "systemd-journald.service",
    "dbus.service",
    "NetworkManager.service",
    "ModemManager.service",
    "avahi-daemon.service",
    "dnsmasq.service",
    "chrony.service",
    "systemd-logind.service",
    "systemd-hostnamed.service",
    "systemd-timedated.service",
]

MDNS_QUERY = """
import sys
from zeroconf import AddressResolverIPv4, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
try:
    r = AddressResolverIPv4(sys.argv[2])
    r.request(zc, 3000)
    print(" ".join(r.parsed_addresses()))
finally:
    zc.close()
"""


def repo_unit_names() -> set[str]:
    d = REPO / "units"
    return {p.name for p in d.iterdir() if p.is_file()} if d.is_dir() else set()


def test_system_running(testbed):
    state = testbed.exec(["systemctl", "is-system-running"], check=False).stdout.strip()
    failed = testbed.exec(["systemctl", "list-units", "--failed", "--plain", "--no-legend"]).stdout
    failed_units = {line.split()[0] for line in failed.splitlines() if line.strip()}
    # hostd's own units are checked by test_hostd_unit_active; the base stack must have no failures
    assert not (failed_units - repo_unit_names()), f"failed units: {failed_units} (state {state})"
    assert state in ("running", "degraded")


@pytest.mark.parametrize(("name", "path", "iface", "prop"), BUS_PROPERTIES, ids=[b[0] for b in BUS_PROPERTIES])
def test_bus_service_property(testbed, name, path, iface, prop):
    r = testbed.busctl("get-property", name, path, iface, prop)
    assert r.stdout.split(maxsplit=1)[0] in ("s", "u"), r.stdout


@pytest.mark.parametrize(("name", "path", "iface", "method"), BUS_METHODS, ids=[b[0] for b in BUS_METHODS])
def test_bus_service_method(testbed, name, path, iface, method):
    r = testbed.busctl("call", name, path, iface, method)
    assert r.stdout.startswith("s "), r.stdout


@pytest.mark.parametrize("unit", STACK_UNITS)
def test_stack_unit_active_over_bus(testbed, unit):
    """Every service of the stack (journald and chronyd have no bus name) is active, asked via systemd1."""
    testbed.busctl(
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartUnit",
        "ss",
        unit,
        "replace",
    )  # bus-activated ones
    obj = (
        testbed.busctl(
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "GetUnit",
            "s",
            unit,
        )
        .stdout.split()[1]
        .strip('"')
    )

    def active():
        return (
            testbed.busctl(
                "get-property",
                "org.freedesktop.systemd1",
                obj,
                "org.freedesktop.systemd1.Unit",
                "ActiveState",
            ).stdout.strip()
            == 's "active"'
        )

    testbed.wait_for(active, 10, f"{unit} active")


def test_journal_and_chrony_work(testbed):
    testbed.exec(["logger", "-t", "testbed-probe", "hello-from-the-test"])
    testbed.wait_for(
        lambda: "hello-from-the-test" in testbed.exec(["journalctl", "--no-pager", "-t", "testbed-probe"]).stdout,
        10,
        "journal entry",
    )
    r = testbed.exec(["chronyc", "-n", "tracking"])
    assert "Reference ID" in r.stdout


def test_boot_partition_is_mounted(testbed):
    cfg = json.loads(testbed.exec(["cat", "/mnt/boot/config.json"]).stdout)
    assert cfg == testbed.read_config()
    assert cfg["uuid"] and cfg["hostname"]
    for d in ("/mnt/boot", "/mnt/state", "/mnt/data"):
        testbed.exec(["mountpoint", "-q", d])
    probe = testbed.boot_dir / ".testbed-probe"
    probe.write_text("from the host\n")
    try:
        assert testbed.exec(["cat", "/mnt/boot/.testbed-probe"]).stdout == "from the host\n"
    finally:
        probe.unlink()


def test_network_stays_inside_the_testbed(testbed):
    """The device's only link is the veth to the peer namespace (beside balenaOS's resin-dns bridge,
    which has no port); neither side has a default route."""
    links = testbed.exec(["ip", "-o", "link", "show"]).stdout
    assert {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()} == {
        "lo",
        testbed.device_if,
        "resin-dns",
    }
    routes = testbed.exec(["ip", "-4", "route", "show"]).stdout
    assert "default" not in routes and f"{testbed.device_ip.rsplit('.', 1)[0]}.0/24" in routes
    addrs = testbed.exec(["nmcli", "-g", "IP4.ADDRESS", "device", "show", testbed.device_if]).stdout
    assert f"{testbed.device_ip}/24" in addrs
    peer_routes = testbed.peer_exec(["ip", "-4", "route", "show"]).stdout
    assert "default" not in peer_routes


def test_mdns_from_peer_resolves_device_hostname(testbed):
    def resolved():
        name = testbed.hostname()  # hostd may rename the device meanwhile: ask each time
        r = testbed.peer_exec([sys.executable, "-c", MDNS_QUERY, testbed.peer_ip, f"{name}.local."], check=False)
        return r.stdout.split() == [testbed.device_ip] and name

    assert testbed.wait_for(resolved, 20, "mDNS answer for the device's hostname")


def test_peer_resolver_through_device_dnsmasq(testbed):
    testbed.busctl(
        "call",
        "uk.org.thekelleys.dnsmasq",
        "/uk/org/thekelleys/dnsmasq",
        "uk.org.thekelleys.dnsmasq",
        "SetServersEx",
        "aas",
        "1",
        "1",
        testbed.peer_ip,
    )

    def resolved():  # /etc/resolv.conf -> 127.0.0.2 (dnsmasq) -> peer resolver
        r = testbed.exec(["getent", "ahostsv4", testbed.probe_name], check=False)
        return r.returncode == 0 and r.stdout.split()[0] == testbed.probe_addr

    testbed.wait_for(resolved, 10, f"{testbed.probe_name} via the device's dnsmasq")
    assert testbed.exec(["cat", "/etc/resolv.conf"]).stdout.split() == ["nameserver", "127.0.0.2"]


def test_hostd_unit_active(testbed):
    """hostd runs as the real unit, started by /usr/bin/hostd from the installed package."""
    if testbed.unit_state("hostd.service") in ("inactive", "unknown"):  # not enabled, or bus-activated
        testbed.systemctl("start", "--no-block", "hostd.service")
    try:
        testbed.wait_for(lambda: testbed.unit_state("hostd.service") == "active", 20, "hostd.service active")
    except TimeoutError:
        pytest.fail(f"hostd.service is {testbed.unit_state('hostd.service')}:\n{testbed.journal('hostd.service')}")
    exec_start = testbed.exec(["systemctl", "show", "-P", "ExecStart", "hostd.service"]).stdout
    assert exec_start.startswith("{ path=/usr/bin/hostd ;"), exec_start


BYTECODE_CHECK = """
import importlib.util, pathlib, sys
modules = sorted(pathlib.Path("/usr/lib/hostd/python").glob("*/**/*.py"))
missing = [str(m) for m in modules if not pathlib.Path(importlib.util.cache_from_source(str(m))).is_file()]
print(len(modules), *missing)
"""


def test_the_package_is_byte_compiled_at_install(testbed):
    """Every module of hostd and its vendored dependencies has its bytecode (postinst's py3compile),
    and the launchers write none: a device neither compiles at its first boot nor writes its root."""
    count, *missing = testbed.exec(["python3", "-c", BYTECODE_CHECK]).stdout.split()
    assert int(count) > 30 and missing == []
    for launcher in ("/usr/bin/hostd", "/usr/bin/hostctl"):
        assert "sys.dont_write_bytecode = True" in testbed.exec(["cat", launcher]).stdout


def test_reboot_keeps_state_data_and_journal(testbed):
    """Last in this file: the device reboots (the overlay and /mnt/{boot,state,data} survive)."""
    (testbed.state_dir / "reboot-probe").write_text("state\n")
    (testbed.data_dir / "reboot-probe").write_text("data\n")
    # through the host's view of the device's root: hostd may bind another directory over
    # /var/log/journal inside (persistentLogging); the overlay's own directory must survive
    (testbed.root_dir / "var/log/journal/reboot-probe").write_text("journal\n")
    invocation = testbed.exec(["systemctl", "show", "-P", "InvocationID", "systemd-journald.service"]).stdout
    leader = testbed.leader
    testbed.reboot()
    assert testbed.leader != leader
    assert testbed.exec(["systemctl", "show", "-P", "InvocationID", "systemd-journald.service"]).stdout != invocation
    assert testbed.exec(["cat", "/mnt/state/reboot-probe"]).stdout == "state\n"
    assert testbed.exec(["cat", "/mnt/data/reboot-probe"]).stdout == "data\n"
    assert (testbed.root_dir / "var/log/journal/reboot-probe").read_text() == "journal\n"
    testbed.exec(["test", "-d", "/var/log/journal"])
    assert set(testbed.bus_names()) >= {"org.freedesktop.systemd1", "org.freedesktop.NetworkManager"}
