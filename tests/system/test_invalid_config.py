"""An invalid config.json at runtime changes nothing: hostd keeps running what it runs, reports
ConfigError (property, `hostctl status` exit 1 "INVALID"), the device stays reachable, and
fixing the file clears the error."""

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
    "/mnt/state/hostd/config.json",
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


def test_invalid_values_change_nothing(boot: Hostd) -> None:
    """A file with a new hostname but a bad dnsServers: nothing of it is applied (not even the
    valid hostname), the error names the key, and fixing the file clears it."""
    before = snapshot(boot)
    original = boot.tb.config_path.read_bytes()
    content = (
        json.dumps(dict(boot.tb.read_config(), hostname="must-not-apply", dnsServers="not-an-ip")) + "\n"
    ).encode()
    write_raw(boot, content)
    assert_invalid(boot, before, content, "/dnsServers")
    write_raw(boot, original)
    assert_fixed(boot, before)


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
