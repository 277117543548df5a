"""hostd on the testbed device, as system tests see it: its API read from outside the device
(the testbed's host-side bus address), `hostctl` inside, and probes of what it converged
(DNS through the device's dnsmasq, mDNS from the peer namespace, NetworkManager's profiles,
units' PIDs and timestamps)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from harness import Testbed

BUS_NAME, OBJECT_PATH, INTERFACE = "io.hostd1", "/io/hostd1", "io.hostd1.Manager"

# One A query over UDP, stdlib only (the device has no dig): prints {"rcode", "addrs"} or {"timeout"}.
DNS_QUERY = r"""
import json, random, socket, struct, sys
name, server, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
qid = random.randrange(65536)
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(timeout)
sock.sendto(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question, (server, 53))
end = __import__("time").monotonic() + timeout
while True:
    try:
        data = sock.recv(4096)
    except (TimeoutError, socket.timeout):
        print(json.dumps({"timeout": True}))
        sys.exit(0)
    if struct.unpack(">H", data[:2])[0] == qid:
        break
count, i, addrs = struct.unpack(">H", data[6:8])[0], 12 + len(question), []
for _ in range(count):
    if data[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while data[i]:
            i += data[i] + 1
        i += 1
    rtype, _cls, _ttl, length = struct.unpack(">HHIH", data[i : i + 10])
    i += 10
    if rtype == 1:
        addrs.append(socket.inet_ntoa(data[i : i + length]))
    i += length
print(json.dumps({"rcode": data[3] & 0xF, "addrs": addrs}))
"""

# mDNS A lookup with python-zeroconf (run in the peer namespace): prints the IPv4 addresses.
MDNS_QUERY = r"""
import sys
from zeroconf import AddressResolverIPv4, IPVersion, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
try:
    resolver = AddressResolverIPv4(sys.argv[2])
    resolver.request(zc, int(sys.argv[3]))
    print(" ".join(resolver.parsed_addresses(IPVersion.V4Only)))
finally:
    zc.close()
"""


@dataclass(frozen=True)
class DnsAnswer:
    timeout: bool
    rcode: int | None = None
    addrs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.timeout and self.rcode == 0 and bool(self.addrs)


class Hostd:
    """hostd on a running testbed device."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb

    # -- the API, from outside the device ---------------------------------------------------------
    def busctl_json(self, *args: str, check: bool = True) -> Any:
        r = self.tb.busctl("--json=short", *args, check=check)
        return json.loads(r.stdout)["data"] if r.returncode == 0 else None

    def describe(self) -> dict[str, Any]:
        return json.loads(self.busctl_json("call", BUS_NAME, OBJECT_PATH, INTERFACE, "Describe")[0])

    def prop(self, name: str) -> Any:
        return self.busctl_json("get-property", BUS_NAME, OBJECT_PATH, INTERFACE, name)

    def call(self, method: str, signature: str = "", *args: str) -> None:
        self.tb.busctl("call", BUS_NAME, OBJECT_PATH, INTERFACE, method, *([signature, *args] if signature else []))

    def reload(self) -> None:
        """Reload(): returns once hostd has re-read config.json and applied what changed."""
        self.call("Reload")

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.describe()["steps"] if s["name"] == name)

    # -- inside the device ------------------------------------------------------------------------
    def hostctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.tb.exec(["hostctl", *args], check=False)

    def pid(self) -> int:
        return self.main_pid("hostd.service")

    def main_pid(self, unit: str) -> int:
        return int(self.unit_props(unit, "MainPID")["MainPID"])

    def unit_props(self, unit: str, *props: str) -> dict[str, str]:
        out = self.tb.exec(["systemctl", "show", *(f"--property={p}" for p in props), "--", unit]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def ready(self) -> bool:
        """hostd runs, owns io.hostd1, and every service it follows is attached (Degraded empty)."""
        if self.tb.unit_state("hostd.service") != "active":
            return False
        degraded = self.prop("Degraded") if "io.hostd1" in self.tb.bus_names() else None
        return degraded == []

    def wait_ready(self, timeout: float = 30) -> None:
        try:
            self.tb.wait_for(self.ready, timeout, "hostd ready with nothing degraded", interval=0.1)
        except TimeoutError as e:
            detail = self.hostctl("status").stdout or self.tb.journal("hostd.service")
            raise TimeoutError(f"{e}\n{detail}") from None

    # -- config.json ------------------------------------------------------------------------------
    def edit_config(self, **changes: Any) -> dict[str, Any]:
        """Set keys of config.json (None removes one), written as a user editing the boot partition."""
        cfg = self.tb.read_config()
        for key, value in changes.items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        self.tb.write_config(cfg)
        return cfg

    def wait_describe(self, predicate: Any, timeout: float = 10, what: str = "") -> dict[str, Any]:
        """Poll Describe until predicate(document) is true (hostd follows config.json by itself)."""

        def check() -> dict[str, Any] | None:
            doc = self.describe()
            return doc if predicate(doc) else None

        return self.tb.wait_for(check, timeout, what)

    # -- probes -----------------------------------------------------------------------------------
    def dns(self, name: str, server: str = "127.0.0.2", timeout: float = 1.0) -> DnsAnswer:
        """An A query to server:53 from inside the device (dnsmasq listens on 127.0.0.2 and the
        resin-dns bridge only, as on balenaOS)."""
        r = self.tb.exec(["python3", "-c", DNS_QUERY, name, server, str(timeout)], timeout=timeout + 30)
        doc = json.loads(r.stdout)
        return DnsAnswer(doc.get("timeout", False), doc.get("rcode"), tuple(doc.get("addrs", ())))

    def peer_connects(self, port: int, timeout: float = 2.0) -> bool:
        """Does the device accept a TCP connection on port from the peer namespace?"""
        connect = f"import socket; socket.create_connection(({self.tb.device_ip!r}, {port}), {timeout}).close()"
        return self.tb.peer_exec([sys.executable, "-c", connect], check=False).returncode == 0

    def probe(self, timeout: float = 1.0) -> DnsAnswer:
        """A fresh name under probe.test (never cached) through the device's dnsmasq."""
        return self.dns(f"q{time.monotonic_ns()}.{self.tb.probe_name}", timeout=timeout)

    def mdns(self, name: str, timeout_ms: int = 3000) -> list[str]:
        """IPv4 addresses that answer `name` over mDNS, asked from the peer namespace."""
        r = self.tb.peer_exec(
            [sys.executable, "-c", MDNS_QUERY, self.tb.peer_ip, f"{name}.local.", str(timeout_ms)], check=False
        )
        return r.stdout.split()

    def avahi_running(self) -> bool:
        """avahi-daemon's server state is RUNNING: the current name is established (not probing)."""
        state = self.busctl_json(
            "call", "org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server", "GetState", check=False
        )
        return state == [2]

    def settle_mdns(self, timeout: float = 10) -> None:
        """Wait until avahi announces the current hostname and the peer gets an answer for it.

        A rename while avahi-daemon still probes the previous one leaves the device's link without
        an address record (see test_hostname.py); tests that rename wait for this first."""
        name = self.describe()["hostname"]
        self.tb.wait_for(
            lambda: self.avahi_running() and self.mdns(name, 1000) == [self.tb.device_ip],
            timeout,
            f"{name}.local answered from the peer",
        )

    def nm_profiles(self) -> dict[str, str]:
        """NetworkManager's loaded profiles: file name -> connection id (asked inside the device)."""
        out = self.tb.exec(["nmcli", "-t", "-f", "NAME,FILENAME", "connection", "show"]).stdout
        profiles = {}
        for line in out.splitlines():
            name, _, filename = line.replace("\\:", "\0").partition(":")
            profiles[filename.replace("\0", ":")] = name.replace("\0", ":")
        return profiles

    def host0_connection(self) -> str:
        return self.tb.exec(
            ["nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", self.tb.device_if]
        ).stdout.strip()
