"""A bad value in config.json at runtime holds back its own key: the other keys apply, HeldBack and
ConfigError name it (`hostctl status` exit 1 "INVALID"), the device stays reachable, and fixing
the file clears it.  An unreadable config.json changes nothing at all."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

# files hostd writes from config.json (device paths; the sample is in production mode, so
# /var/volatile/development-features does not exist)
WRITTEN = [
    "/etc/hostname",
    "/run/dnsmasq.servers",
    "/run/chrony/hostd.sources",
    "/mnt/state/hostd/good-generation",
]


def snapshot(hostd: Hostd) -> dict[str, Any]:
    """What the device runs: names, upstreams, service processes, and hostd's files (inode, mtime)."""
    tb = hostd.tb
    stats = tb.exec(["stat", "-c", "%n %i %Y.%y", *WRITTEN]).stdout
    doc = hostd.describe()
    return {
        "hostname": tb.hostname(),
        "api": (doc["hostname"], doc["dns"], doc["time"]["ntpServers"], doc["logging"]["persistent"]),
        "files": stats,
        "pids": [hostd.main_pid(u) for u in ("NetworkManager.service", "dnsmasq.service", "chrony.service")],
    }


def reachable(hostd: Hostd) -> None:
    """The device resolves a name through its dnsmasq (forwarded to the peer's resolver), the peer
    reaches the device's sshd, and NetworkManager still has host0 connected."""
    tb = hostd.tb
    answer = hostd.dns(f"peer.{tb.probe_name}", timeout=2)
    assert answer.ok and answer.addrs == (tb.probe_addr,), answer
    assert hostd.peer_connects(22222)
    assert hostd.host0_connection() == "100 (connected)\ntestbed-host0"


def write_raw(hostd: Hostd, content: bytes) -> None:
    tmp = hostd.tb.config_path.with_name(".config.json.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, hostd.tb.config_path)


def assert_invalid(hostd: Hostd, before: dict[str, Any], content: bytes, error: str) -> None:
    doc = hostd.wait_describe(lambda d: d["config"]["error"] != "", what="ConfigError set")
    assert error in doc["config"]["error"] and doc["config"]["source"] == "last-known-good", doc["config"]
    assert hostd.prop("ConfigError") == doc["config"]["error"]
    status = hostd.hostctl("status")
    assert status.returncode == 1 and "INVALID" in status.stdout, status.stdout
    assert snapshot(hostd) == before
    assert hostd.tb.config_path.read_bytes() == content  # left exactly as it is
    reachable(hostd)


def test_a_bad_value_is_held_back_and_the_rest_applies(boot: Hostd) -> None:
    """A file with a new hostname as balenaOS took it ("my_device") and a bad dnsServers: the name
    applies (as my-device), dnsServers keeps what dnsmasq runs, and the error names the key."""
    tb = boot.tb
    servers_before = tb.exec(["stat", "-c", "%i %Y", "/run/dnsmasq.servers"]).stdout
    dns_before = boot.describe()["dns"]
    original = tb.config_path.read_bytes()
    content = (json.dumps(dict(tb.read_config(), hostname="my_device", dnsServers="not-an-ip")) + "\n").encode()
    write_raw(boot, content)
    doc = boot.wait_describe(lambda d: d["staticHostname"] == "my-device" and d["config"]["heldBack"], what="held back")
    assert doc["config"]["heldBack"] == [
        {
            "pointer": "/dnsServers",
            "message": "'not-an-ip' is not an IPv4 or IPv6 address",
            "fallback": "last-known-good",
        }
    ]
    assert doc["config"]["source"] == "config.json" and "/dnsServers" in doc["config"]["error"]
    assert boot.prop("HeldBack") == [["/dnsServers", "'not-an-ip' is not an IPv4 or IPv6 address", "last-known-good"]]
    tb.wait_for(lambda: tb.hostname() == "my-device", 10, "the kernel's hostname")
    assert doc["dns"] == dns_before
    assert tb.exec(["stat", "-c", "%i %Y", "/run/dnsmasq.servers"]).stdout == servers_before
    status = boot.hostctl("status")
    assert status.returncode == 1 and "INVALID" in status.stdout, status.stdout
    assert tb.config_path.read_bytes() == content  # left exactly as it is
    reachable(boot)
    # Fixed, the name kept: the boot fixture puts the name back and lets mDNS settle.
    write_raw(boot, (json.dumps(dict(json.loads(original), hostname="my_device")) + "\n").encode())
    doc = boot.wait_describe(lambda d: d["config"]["error"] == "", what="ConfigError cleared")
    assert doc["config"]["heldBack"] == [] and boot.prop("HeldBack") == []


def test_unparseable_file_changes_nothing(boot: Hostd) -> None:
    """A truncated config.json (not JSON at all) is reported and changes nothing; fixing it clears it."""
    before = snapshot(boot)
    original = boot.tb.config_path.read_bytes()
    write_raw(boot, original[:40])
    assert_invalid(boot, before, original[:40], "not valid JSON")
    write_raw(boot, original)
    assert_fixed(boot, before)


def assert_fixed(hostd: Hostd, before: dict[str, Any]) -> None:
    doc = hostd.wait_describe(lambda d: d["config"]["error"] == "", what="ConfigError cleared")
    assert doc["config"]["source"] == "config.json" and hostd.prop("ConfigError") == ""
    assert hostd.hostctl("status").returncode == 0
    assert snapshot(hostd)["api"] == before["api"]
