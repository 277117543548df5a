"""The system proxy on the real device: curl's traffic really goes through tinyproxy in the peer.

The peer namespace runs tinyproxy (HTTP CONNECT, Debian's) on the link and an HTTP server that
answers with the address the connection came from.  Two IPv4 targets are on the peer: one the
peer drops when it comes straight from the device (reachable only through the proxy), one it
lets through (for ``no_proxy``); and an IPv6 one reachable straight, so that IPv6 leaking past
the proxy would show.  The device gets routes to them (the testbed has no default route), and
IPv6 ULA addresses on the link.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

PROXY_PORT = 8888
TARGET_PORT = 8080
ONLY_THROUGH_PROXY = "198.51.100.10"
EXEMPTABLE = "198.51.100.20"
TARGET6 = "2001:db8:99::10"
DROP_DIRECT = ("ip", "daddr", ONLY_THROUGH_PROXY, "drop")
COUNT_IPV6 = ("counter", "name", "ipv6_to_target")
TARGET_SERVER = f"""
import http.server, socket
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].removeprefix("::ffff:").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class DualStack(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
DualStack(("::", {TARGET_PORT}), Answer).serve_forever()
"""


class Peer:
    """The far end of the device's link, with the proxy and the targets."""

    def __init__(self, hostd: Hostd) -> None:
        self.tb = hostd.tb
        self.subnet = self.tb.peer_ip.split(".")[2]
        # compressed as servers print them (instance 0's "fd00:213:0::2" is "fd00:213::2")
        self.peer6 = str(ipaddress.IPv6Address(f"fd00:213:{self.subnet}::1"))
        self.device6 = str(ipaddress.IPv6Address(f"fd00:213:{self.subnet}::2"))
        self.workdir = Path(tempfile.mkdtemp(prefix="hostd-proxy-peer"))
        self.processes: list[subprocess.Popen] = []

    def conf(self, no_proxy: str = "") -> dict[str, str]:
        """The boot partition's files for a proxy at the peer."""
        redsocks = (
            "base { log_debug = off; log_info = on; log = stderr; daemon = off; redirector = iptables; }\n"
            f"redsocks {{\n  type = http-connect;\n  ip = {self.tb.peer_ip};\n  port = {PROXY_PORT};\n"
            "  local_ip = 127.0.0.1;\n  local_port = 12345;\n}\n"
        )
        return {"redsocks.conf": redsocks, "no_proxy": no_proxy}

    def start(self) -> None:
        tb = self.tb
        self.log = self.workdir / "tinyproxy.log"
        (self.workdir / "tinyproxy.conf").write_text(
            f"User nobody\nGroup nogroup\nPort {PROXY_PORT}\nListen {tb.peer_ip}\nTimeout 30\n"
            f'LogFile "{self.log}"\nLogLevel Connect\nMaxClients 20\nAllow {tb.device_ip}\n'
        )
        os.chmod(self.workdir, 0o777)  # tinyproxy writes its log as nobody
        self.processes.append(self._peer_process(["tinyproxy", "-d", "-c", str(self.workdir / "tinyproxy.conf")]))
        self.processes.append(self._peer_process(["python3", "-c", TARGET_SERVER]))
        for command in (
            ["ip", "-6", "addr", "add", f"{self.peer6}/64", "dev", "tb-peer0", "nodad"],
            ["ip", "addr", "add", f"{ONLY_THROUGH_PROXY}/32", "dev", "lo"],
            ["ip", "addr", "add", f"{EXEMPTABLE}/32", "dev", "lo"],
            ["ip", "-6", "addr", "add", f"{TARGET6}/128", "dev", "lo"],
            ["nft", "add", "table", "inet", "peer_target"],
            ["nft", "add", "chain", "inet", "peer_target", "input", "{ type filter hook input priority 0; }"],
            ["nft", "add", "rule", "inet", "peer_target", "input", *("iifname", "tb-peer0"), *DROP_DIRECT],
            ["nft", "add", "counter", "inet", "peer_target", "ipv6_to_target"],
            ["nft", "add", "rule", "inet", "peer_target", "input", *("ip6", "daddr", TARGET6), *COUNT_IPV6],
        ):
            tb.peer_exec(command)
        self.device_side()
        tb.wait_for(self.direct_from_peer, 10, "the peer's target server")

    def device_side(self) -> None:
        """The device's routes and ULA address (again after a reboot)."""
        tb = self.tb
        for command in (
            ["ip", "-6", "addr", "replace", f"{self.device6}/64", "dev", tb.device_if, "nodad"],
            ["ip", "route", "replace", "198.51.100.0/24", "via", tb.peer_ip, "dev", tb.device_if],
            ["ip", "-6", "route", "replace", "2001:db8:99::/64", "via", self.peer6, "dev", tb.device_if],
        ):
            tb.exec(command)

    def _peer_process(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.tb.netns, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def direct_from_peer(self) -> bool:
        answer = self.tb.peer_exec(["curl", "-sS", "--max-time", "2", f"http://{EXEMPTABLE}:{TARGET_PORT}/"], False)
        return answer.returncode == 0

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(10)
        tb = self.tb
        for command in (
            ["nft", "delete", "table", "inet", "peer_target"],
            ["ip", "-6", "addr", "del", f"{TARGET6}/128", "dev", "lo"],
            ["ip", "addr", "del", f"{EXEMPTABLE}/32", "dev", "lo"],
            ["ip", "addr", "del", f"{ONLY_THROUGH_PROXY}/32", "dev", "lo"],
            ["ip", "-6", "addr", "del", f"{self.peer6}/64", "dev", "tb-peer0"],
        ):
            tb.peer_exec(command, check=False)
        for command in (
            ["ip", "route", "del", "198.51.100.0/24"],
            ["ip", "-6", "route", "del", "2001:db8:99::/64"],
            ["ip", "-6", "addr", "del", f"{self.device6}/64", "dev", tb.device_if],
        ):
            tb.exec(command, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def ipv6_packets_to_target(self) -> int:
        """Packets that reached the IPv6 target's address on the peer."""
        listed = self.tb.peer_exec(["nft", "list", "counter", "inet", "peer_target", "ipv6_to_target"]).stdout
        return int(listed.split("packets ")[1].split()[0])

    def proxied_connections(self) -> int:
        """CONNECT requests tinyproxy has served so far."""
        return self.log.read_text().count("Established connection") if self.log.exists() else 0


def curl(hostd: Hostd, url: str) -> subprocess.CompletedProcess:
    """A real client on the device: who the target saw, or curl's error."""
    return hostd.tb.exec(["curl", "-sS", "--max-time", "5", url], check=False)


@pytest.fixture(scope="module")
def peer(hostd: Hostd) -> Iterator[Peer]:
    peer = Peer(hostd)
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def proxy_dir(boot: Hostd) -> Iterator[Path]:
    """The boot partition's system-proxy/, removed and the proxy gone after the test."""
    directory = boot.tb.boot_dir / "system-proxy"
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
    boot.reload()
    boot.tb.wait_for(lambda: not table_listed(boot), 30, "the proxy's table gone")


def write_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)


def step_message(state: dict) -> str:
    return next(step["message"] for step in state["steps"] if step["name"] == "proxy")


def table_listed(hostd: Hostd) -> bool:
    return "hostd_proxy" in hostd.tb.exec(["nft", "list", "tables"]).stdout


def wait_in_force(hostd: Hostd, server: str) -> dict:
    hostd.reload()
    state = hostd.wait_describe(
        lambda d: d["proxy"].get("server") == server and not d["generations"]["transaction"],
        90,
        f"proxy {server} in force and kept",
    )
    hostd.tb.wait_for(lambda: redsocks_listening(hostd), 10, "redsocks listening")
    return state


def redsocks_listening(hostd: Hostd) -> bool:
    """redsocks' unit is active as soon as it is started (it tells systemd nothing): wait for its socket."""
    return "redsocks" in hostd.tb.exec(["ss", "-Hltnp", "sport = :12345"]).stdout


def test_tcp_goes_through_the_peers_proxy_ipv6_never_leaks(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    url, url6 = f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/", f"http://[{TARGET6}]:{TARGET_PORT}/"
    assert curl(hostd, url).returncode != 0  # the peer drops it straight from the device
    assert curl(hostd, url6).stdout == peer.device6  # IPv6 straight: the path a leak would take

    write_files(proxy_dir, peer.conf())
    state = wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    assert state["proxy"]["state"] == "on" and "refused" in state["proxy"]["ipv6"]
    assert state["proxy"]["udp"].startswith("direct")
    before = peer.proxied_connections()
    answer = curl(hostd, url)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == ONLY_THROUGH_PROXY  # tinyproxy's own connection, on the peer
    assert peer.proxied_connections() == before + 1
    sent6 = peer.ipv6_packets_to_target()
    refused = curl(hostd, url6)
    assert refused.returncode == 7 and "couldn't connect" in refused.stderr.lower(), refused.stderr
    assert peer.ipv6_packets_to_target() == sent6  # reset on the device: not one packet left it
    assert peer.proxied_connections() == before + 1
    status = hostd.hostctl("status")
    assert f"Proxy: http-connect {tb.peer_ip}:{PROXY_PORT}" in status.stdout


@pytest.fixture
def container(hostd: Hostd) -> Iterator[str]:
    """A container's network as the engine makes it: a namespace on the device behind the balena0 bridge."""
    tb = hostd.tb
    setup = (
        "ip netns add hostd-ctr && ip link add balena0 type bridge && ip addr add 10.114.101.1/24 dev balena0"
        " && ip link set balena0 up && ip link add vethctr type veth peer name eth0 netns hostd-ctr"
        " && ip link set vethctr master balena0 up && ip -n hostd-ctr addr add 10.114.101.2/24 dev eth0"
        " && ip -n hostd-ctr link set eth0 up && ip -n hostd-ctr route add default via 10.114.101.1"
    )
    tb.exec(["sh", "-c", setup])
    try:
        yield "hostd-ctr"
    finally:
        tb.exec(["sh", "-c", "ip netns del hostd-ctr; ip link del balena0"], check=False)


def test_a_containers_tcp_goes_through_the_proxy(hostd: Hostd, peer: Peer, proxy_dir: Path, container: str) -> None:
    tb = hostd.tb
    url = f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/"
    in_container = ["ip", "netns", "exec", container, "curl", "-sS", "--max-time", "5", url]
    assert tb.exec(in_container, check=False).returncode != 0  # no forwarding on the device: no way out
    write_files(proxy_dir, peer.conf())
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    before = peer.proxied_connections()
    answer = tb.exec(in_container, check=False)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == ONLY_THROUGH_PROXY and peer.proxied_connections() == before + 1


def test_set_proxy_from_the_supervisor_is_written_and_applied(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    conf = peer.conf()["redsocks.conf"]
    hostd.call("SetProxy", "sas", conf, "1", EXEMPTABLE)
    assert (proxy_dir / "redsocks.conf").read_text() == conf
    assert (proxy_dir / "no_proxy").read_text() == f"{EXEMPTABLE}\n"
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    assert curl(hostd, f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/").stdout == ONLY_THROUGH_PROXY
    assert curl(hostd, f"http://{EXEMPTABLE}:{TARGET_PORT}/").stdout == tb.device_ip
    hostd.call("SetProxy", "sas", "", "0")
    hostd.wait_describe(lambda d: d["proxy"] == {"state": "off"}, 90, "proxy off")
    assert not (proxy_dir / "redsocks.conf").exists()
    tb.wait_for(lambda: not table_listed(hostd), 30, "the table removed")


def test_no_proxy_is_honoured_and_removal_takes_the_rules_away(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    url = f"http://{EXEMPTABLE}:{TARGET_PORT}/"
    write_files(proxy_dir, peer.conf())
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    assert curl(hostd, url).stdout == EXEMPTABLE  # through the proxy

    write_files(proxy_dir, peer.conf(f"{EXEMPTABLE}\nnot-an-address\n"))
    state = hostd.wait_describe(lambda d: d["proxy"].get("noProxy") == f"{EXEMPTABLE}/32", 90, "no_proxy applied")
    assert "line 2: 'not-an-address' is not an IP address or subnet" in state["proxy"]["rejected"]
    hostd.wait_describe(lambda d: not d["generations"]["transaction"], 90, "kept")
    assert curl(hostd, url).stdout == tb.device_ip  # straight from the device
    assert curl(hostd, f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/").stdout == ONLY_THROUGH_PROXY

    shutil.rmtree(proxy_dir)
    hostd.reload()
    hostd.wait_describe(lambda d: d["proxy"] == {"state": "off"}, 90, "proxy off")
    tb.wait_for(lambda: not table_listed(hostd), 30, "the table removed")
    assert tb.systemctl("is-active", "hostd-redsocks.service").stdout.strip() == "inactive"
    assert curl(hostd, f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/").returncode != 0


def test_a_bad_redsocks_conf_keeps_the_rules_in_force(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    write_files(proxy_dir, peer.conf())
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    rules = tb.exec(["nft", "list", "table", "inet", "hostd_proxy"]).stdout
    write_files(proxy_dir, {"redsocks.conf": "redsocks {\n  type = gopher;\n}\n"})
    hostd.reload()
    state = hostd.wait_describe(lambda d: "line 2" in step_message(d), 30, "the file rejected")
    assert "type 'gopher'" in step_message(state)
    assert state["proxy"]["server"] == f"http-connect {tb.peer_ip}:{PROXY_PORT}"
    assert tb.exec(["nft", "list", "table", "inet", "hostd_proxy"]).stdout == rules
    assert curl(hostd, f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/").stdout == ONLY_THROUGH_PROXY


def test_redsocks_down_is_degraded_and_its_return_reapplies(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    write_files(proxy_dir, peer.conf())
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    tb.exec(["nft", "delete", "table", "inet", "hostd_proxy"])  # lost meanwhile: its return puts it back
    tb.systemctl("stop", "hostd-redsocks.service")
    hostd.wait_describe(lambda d: "redsocks" in d["degraded"], 10, "redsocks degraded")
    tb.systemctl("start", "hostd-redsocks.service")
    hostd.wait_describe(lambda d: "redsocks" not in d["degraded"], 10, "redsocks back")
    tb.wait_for(lambda: table_listed(hostd), 10, "the table re-applied")
    # hostd-redsocks is Type=simple (redsocks has no readiness protocol): "active" comes a moment
    # before redsocks listens, so the first connection may be refused.
    url = f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/"
    tb.wait_for(lambda: curl(hostd, url).stdout == ONLY_THROUGH_PROXY, 10, "the target reached through redsocks")


def test_no_rule_left_after_a_reboot_without_the_files(hostd: Hostd, peer: Peer, proxy_dir: Path) -> None:
    tb = hostd.tb
    write_files(proxy_dir, peer.conf())
    wait_in_force(hostd, f"http-connect {tb.peer_ip}:{PROXY_PORT}")
    tb.systemctl("stop", "hostd.service")
    shutil.rmtree(proxy_dir)
    tb.reboot()
    hostd.wait_ready(60)
    peer.device_side()
    assert not table_listed(hostd)
    assert tb.systemctl("is-active", "hostd-redsocks.service").stdout.strip() == "inactive"
    assert tb.exec(["ls", "/run/hostd/proxy"]).stdout == ""
    assert hostd.describe()["proxy"] == {"state": "off"}
    assert curl(hostd, f"http://{ONLY_THROUGH_PROXY}:{TARGET_PORT}/").returncode != 0
