"""Time you can trust, on the device: from a verified HTTPS server when NTP has none, untrusted
(and reported) when nothing answers without delaying the boot, from chrony once an NTP server in
the peer answers; the network's DHCP-offered NTP server as a chrony source, and not in exclusive
mode.  Real clients judge: chronyc on the device, io.hostd1's properties read from outside,
systemd's timestamps of the boot.

Order matters: the first tests need chrony unsynchronized (no NTP server in the peer yet); once
chrony has been synchronized this boot, the clock stays trusted (source ntp) until a reboot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import end
from tests.testca import TestCA

from .device import Hostd

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
HTTPS_PORT = 8443
PROBE_BOUND = 60.0  # hostd-time-probe.service's TimeoutStartSec=
TICKS = 60.0  # generous for hostd's reading of chrony: asked at one watchdog tick (15 s), read at the next
DHCP_NTP_HOST = 123  # the address DHCP offers as NTP server (on the link; nobody answers there)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("time-ca"), "hostd test root CA")


@contextlib.contextmanager
def in_peer(hostd: Hostd, argv: list[str]) -> Iterator[subprocess.Popen]:
    """A process in the peer's network namespace for the duration; ended by its PID."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", hostd.tb.netns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        end(process, 10)


@contextlib.contextmanager
def https_server(hostd: Hostd, ca: TestCA) -> Iterator[None]:
    """python's http.server with TLS on the peer, a certificate for its address from the test CA."""
    issued = ca.issue(hostd.tb.peer_ip)
    argv = [sys.executable, str(REPO / "tests/https_date.py"), str(issued.cert), str(issued.key), hostd.tb.peer_ip]
    with in_peer(hostd, [*argv, str(HTTPS_PORT)]) as process:
        hostd.tb.wait_for(lambda: process.poll() is not None or listening(hostd, HTTPS_PORT), 10, "https on the peer")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        yield


def listening(hostd: Hostd, port: int) -> bool:
    return bool(hostd.tb.peer_exec(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip())


def https_config(hostd: Hostd, ca: TestCA) -> None:
    """The connectivity URI on the peer and the test CA as balenaRootCA; kept through safe apply
    (the probe trusts balenaRootCA, as every client on balenaOS does)."""
    before = hostd.describe()["generations"]["current"]
    hostd.edit_config(
        os={"network": {"connectivity": {"uri": f"https://{hostd.tb.peer_ip}:{HTTPS_PORT}/connectivity-check"}}},
        balenaRootCA=base64.b64encode(ca.pem.encode()).decode(),
    )
    hostd.wait_describe(
        lambda d: (
            d["generations"]["current"] not in ("", before)
            and d["generations"]["current"] == d["generations"]["good"]
            and d["generations"]["transaction"] == ""
        ),
        timeout=60,
        what="the https connectivity URI kept",
    )


def restart_hostd_afresh(hostd: Hostd) -> None:
    """hostd as after a boot: no earlier probe result to read."""
    hostd.tb.exec(["rm", "-f", "/run/hostd/time-probe.json"])
    hostd.tb.restart_unit("hostd.service")
    hostd.wait_ready()


def chrony_tracking(hostd: Hostd) -> list[str]:
    return hostd.tb.exec(["chronyc", "-n", "-c", "tracking"]).stdout.strip().split(",")


def test_verified_https_time_is_trusted_without_ntp(boot: Hostd, ca: TestCA) -> None:
    """No NTP server answers; the peer's HTTPS server (certificate from balenaRootCA's CA) gives the
    time: trusted, source https, the probe's own journal says it verified it."""
    assert chrony_tracking(boot)[-1] == "Not synchronised"
    with https_server(boot, ca):
        https_config(boot, ca)
        restart_hostd_afresh(boot)
        boot.tb.wait_for(lambda: boot.prop("TimeSource") == "https", TICKS + PROBE_BOUND, "time from https")
        assert boot.prop("TimeTrusted") is True
        last_sync = boot.prop("LastSync")
    assert last_sync > 1_700_000_000_000_000
    journal = boot.tb.exec(["journalctl", "-b", "-u", "hostd-time-probe.service", "--no-pager", "-o", "cat"]).stdout
    assert "time verified" in journal and '"stepped": false' in journal
    time_doc = boot.describe()["time"]
    assert (time_doc["trusted"], time_doc["source"], time_doc["problem"]) == (True, "https", "")
    assert "trusted: yes (source: https)" in boot.hostctl("time").stdout


def test_nothing_reachable_is_untrusted_and_does_not_delay_boot(boot: Hostd, ca: TestCA) -> None:
    """The same configuration (kept while the server ran), then no HTTPS server (and no NTP server):
    after a reboot the time is untrusted, and why is in the journal and in Describe(); hostd was
    ready, and NetworkManager running, before the probe even started; the probe ended within its
    bound."""
    with https_server(boot, ca):
        https_config(boot, ca)
    boot.tb.reboot()
    boot.wait_ready()
    boot.tb.wait_for(
        lambda: "HTTPS time probe failed" in boot.describe()["time"]["problem"], TICKS + PROBE_BOUND, "probe failed"
    )
    assert (boot.prop("TimeTrusted"), boot.prop("TimeSource"), boot.prop("LastSync")) == (False, "rtc", 0)
    journal = boot.tb.exec(["journalctl", "-b", "-u", "hostd.service", "--no-pager", "-o", "cat"]).stdout
    assert "time not trusted: no NTP server has answered, and the HTTPS time probe failed" in journal

    def monotonic(unit: str, prop: str) -> int:
        return int(boot.unit_props(unit, prop)[prop])

    hostd_ready = monotonic("hostd.service", "ActiveEnterTimestampMonotonic")
    nm_running = monotonic("NetworkManager.service", "ActiveEnterTimestampMonotonic")
    probe_start, probe_end = first_probe_run(boot)
    print(f"hostd ready {hostd_ready} µs, NetworkManager {nm_running} µs, probe {probe_start}..{probe_end} µs")
    assert 0 < hostd_ready <= probe_start < probe_end
    assert nm_running < probe_end  # NetworkManager never waited for the probe
    assert probe_end - probe_start <= PROBE_BOUND * 1_000_000
    # TLS ran in the probe's own process: OpenSSL's TLS library is not mapped into hostd
    maps = boot.tb.exec(["cat", f"/proc/{boot.pid()}/maps"]).stdout
    assert "libssl" not in maps and "_ssl." not in maps


def first_probe_run(hostd: Hostd) -> tuple[int, int]:
    """When the boot's first hostd-time-probe.service run started and ended (µs, monotonic), from
    systemd's own journal entries: the unit itself is unloaded once it has run."""
    out = hostd.tb.exec(["journalctl", "-b", "-u", "hostd-time-probe.service", "-o", "json", "--no-pager"]).stdout
    entries = [json.loads(line) for line in out.splitlines()]
    start = next(int(e["__MONOTONIC_TIMESTAMP"]) for e in entries if str(e["MESSAGE"]).startswith("Starting "))
    end = next(
        int(e["__MONOTONIC_TIMESTAMP"])
        for e in entries
        if str(e["MESSAGE"]).startswith(("Finished ", "Failed ")) and int(e["__MONOTONIC_TIMESTAMP"]) > start
    )
    return start, end


@pytest.fixture
def ntp_server(hostd: Hostd, tmp_path: Path) -> Iterator[None]:
    """chronyd in the peer namespace serving its own clock (local stratum 8), no command socket."""
    conf = tmp_path / "chrony.conf"
    conf.write_text(
        f"local stratum 8\nallow all\nbindaddress {hostd.tb.peer_ip}\ncmdport 0\nbindcmdaddress /\n"
        f"pidfile {tmp_path / 'chronyd.pid'}\n"
    )
    with in_peer(hostd, ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)]) as process:
        yield
        assert process.poll() is None, process.stderr.read() if process.stderr else ""


def test_ntp_server_in_the_peer_synchronizes_and_is_trusted(hostd: Hostd, ntp_server: None) -> None:
    """chronyd on the device (its source: the sample's ntpServers, the peer) synchronizes; hostd's
    properties follow at its next watchdog tick: trusted, source ntp, the peer as reference."""
    peer = hostd.tb.peer_ip
    hostd.tb.exec(["chronyc", "burst", "4/4"])  # poll now, not at the unreachable source's next poll
    hostd.tb.wait_for(lambda: chrony_tracking(hostd)[-1] == "Normal", 60, "chrony synchronized")
    assert chrony_tracking(hostd)[1] == peer
    hostd.tb.wait_for(lambda: hostd.prop("TimeSource") == "ntp", TICKS, "hostd's TimeSource ntp")
    assert hostd.prop("TimeTrusted") is True
    assert hostd.prop("LastSync") > 1_700_000_000_000_000
    reference, stratum, leap = hostd.prop("TimeTracking")
    assert (reference, stratum, leap) == (peer, 9, "Normal")
    assert "trusted: yes (source: ntp)" in hostd.hostctl("time").stdout


def chrony_sources(hostd: Hostd) -> list[str]:
    out = hostd.tb.exec(["chronyc", "-n", "-c", "sources"]).stdout
    return sorted(line.split(",")[2] for line in out.splitlines() if line.count(",") >= 2)


@pytest.fixture
def dhcp_ntp(boot: Hostd, tmp_path: Path) -> Iterator[str]:
    """dnsmasq on the peer serving DHCP (no DNS) with option 42, and host0 asking for a lease
    beside its static address (NetworkManager's runtime settings, re-applied afterwards)."""
    tb = boot.tb
    net = tb.peer_ip.rsplit(".", 1)[0]
    offered = f"{net}.{DHCP_NTP_HOST}"
    argv = [
        "dnsmasq", "--keep-in-foreground", "--port=0", "--no-resolv", "--no-hosts", "--user=root",
        f"--interface={tb.env['HOSTD_TESTBED_PEER_IF']}", "--bind-interfaces",
        f"--dhcp-range={net}.100,{net}.150,255.255.255.0,1h", f"--dhcp-option-force=42,{offered}",
        f"--dhcp-leasefile={tmp_path / 'leases'}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
    ]  # fmt: skip
    with in_peer(boot, argv):
        tb.exec(["nmcli", "device", "modify", tb.device_if, "ipv4.method", "auto"])
        try:
            yield offered
        finally:
            tb.exec(["nmcli", "device", "reapply", tb.device_if])
            boot.reload()


def set_ntp_mode(hostd: Hostd, mode: str) -> None:
    cfg = hostd.tb.read_config()
    cfg.setdefault("os", {})["ntp"] = {"mode": mode}
    hostd.tb.write_config(cfg)
    hostd.wait_describe(lambda d: d["time"]["mode"] == mode and d["generations"]["transaction"] == "", 60)


def test_dhcp_ntp_server_is_a_source_and_not_in_exclusive_mode(dhcp_ntp: str, boot: Hostd) -> None:
    """The lease's option 42 is a chrony source (append); exclusive drops it, append brings it back;
    the lease ending takes it away."""
    offered, peer, tb = dhcp_ntp, boot.tb.peer_ip, boot.tb
    tb.wait_for(lambda: offered in chrony_sources(boot), 60, "the DHCP-offered server in chrony's sources")
    assert chrony_sources(boot) == sorted([peer, offered])
    # the step's record is kept once its live effect is done: after chronyc's reload, which chronyc shows
    boot.wait_describe(lambda d: d["time"]["networkServers"] == [offered], 30, "the offered server in Describe")
    assert f"network's NTP servers: {offered} (append)" in boot.hostctl("time").stdout
    set_ntp_mode(boot, "exclusive")
    tb.wait_for(lambda: chrony_sources(boot) == [peer], 30, "only ntpServers in exclusive mode")
    assert boot.describe()["time"]["networkServers"] == []
    set_ntp_mode(boot, "append")
    tb.wait_for(lambda: chrony_sources(boot) == sorted([peer, offered]), 30, "the offered server again")
    tb.exec(["nmcli", "device", "reapply", tb.device_if])  # the profile's static method: no lease
    tb.wait_for(lambda: chrony_sources(boot) == [peer], 30, "the offered server gone with the lease")


PEER6_NET = "fd00:213::"  # a ULA prefix on the link, for DHCPv6 only
DHCP6_NTP, DHCP6_SNTP = f"{PEER6_NET}7b", f"{PEER6_NET}7c"  # offered as NTP (option 56), SNTP (31); nobody answers


def dhcp6_options(hostd: Hostd) -> dict[str, str]:
    """NetworkManager's DHCP6Config Options, as its own bus API publishes them (read from outside)."""
    reply = hostd.tb.busctl(
        "--json=short", "call", "org.freedesktop.NetworkManager", "/org/freedesktop",
        "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
    )  # fmt: skip
    options: dict[str, str] = {}
    for interfaces in json.loads(reply.stdout)["data"][0].values():
        config = interfaces.get("org.freedesktop.NetworkManager.DHCP6Config", {})
        options.update({key: value["data"] for key, value in config.get("Options", {}).get("data", {}).items()})
    return options


@pytest.fixture
def dhcp6_ntp(boot: Hostd, tmp_path: Path) -> Iterator[None]:
    """dnsmasq on the peer serving stateful DHCPv6 (no DNS, no router advertisements) with options 56
    and 31, and host0 asking for a DHCPv6 lease beside its static IPv4 address (NetworkManager's
    runtime settings, re-applied afterwards)."""
    tb = boot.tb
    peer_if = tb.env["HOSTD_TESTBED_PEER_IF"]
    tb.peer_exec(["ip", "-6", "addr", "add", f"{PEER6_NET}1/64", "dev", peer_if, "nodad"])
    argv = [
        "dnsmasq", "--keep-in-foreground", "--port=0", "--no-resolv", "--no-hosts", "--user=root",
        f"--interface={peer_if}", "--bind-interfaces", f"--dhcp-range={PEER6_NET}100,{PEER6_NET}150,64,1h",
        f"--dhcp-option=option6:ntp-server,[{DHCP6_NTP}]", f"--dhcp-option=option6:sntp-server,[{DHCP6_SNTP}]",
        f"--dhcp-leasefile={tmp_path / 'leases6'}", f"--pid-file={tmp_path / 'dnsmasq6.pid'}",
    ]  # fmt: skip
    try:
        with in_peer(boot, argv):
            tb.exec(["nmcli", "device", "modify", tb.device_if, "ipv6.method", "dhcp"])
            try:
                yield
            finally:
                tb.exec(["nmcli", "device", "reapply", tb.device_if])
                boot.reload()
    finally:
        tb.peer_exec(["ip", "-6", "addr", "del", f"{PEER6_NET}1/64", "dev", peer_if], check=False)


def test_dhcpv6_ntp_server_is_a_source(dhcp6_ntp: None, boot: Hostd) -> None:
    """NetworkManager's internal DHCPv6 client publishes option 56's server as dhcp6_ntp_servers (and
    no name of its own for option 31, offered beside it); that server is a chrony source (append),
    and goes with the lease."""
    peer, tb = boot.tb.peer_ip, boot.tb
    tb.wait_for(lambda: DHCP6_NTP in chrony_sources(boot), 60, "the DHCPv6-offered server in chrony's sources")
    options = dhcp6_options(boot)
    assert options["dhcp6_ntp_servers"] == DHCP6_NTP
    assert not [key for key in options if "sntp" in key]
    assert chrony_sources(boot) == sorted([peer, DHCP6_NTP])
    boot.wait_describe(lambda d: d["time"]["networkServers"] == [DHCP6_NTP], 30, "the offered server in Describe")
    tb.exec(["nmcli", "device", "reapply", tb.device_if])  # the profile's link-local method: no lease
    tb.wait_for(lambda: chrony_sources(boot) == [peer], 30, "the offered server gone with the lease")
