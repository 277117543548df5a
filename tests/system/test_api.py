"""io.hostd1 read from outside the device (the testbed's host-side bus address) agrees with
`hostctl` inside it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .device import Hostd

pytestmark = pytest.mark.system


def same_view(hostd: Hostd) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(inside, outside) when `hostctl status --json` and Describe agree; None if they differ
    (a reconcile may land between the two reads: asked again)."""
    r = hostd.hostctl("status", "--json")
    assert r.returncode == 0, r.stderr
    inside, outside = json.loads(r.stdout), hostd.describe()
    return (inside, outside) if inside == outside else None


def test_status_json_inside_equals_describe_outside(hostd: Hostd) -> None:
    """`hostctl status --json` inside the device is the Describe() document read from outside."""
    inside, outside = hostd.tb.wait_for(lambda: same_view(hostd), 10, "the same document twice")
    assert outside["hostname"] == hostd.tb.hostname()
    assert outside["config"] == {"source": "config.json", "error": "", "heldBack": [], "path": "/mnt/boot/config.json"}
    assert [s["name"] for s in outside["steps"]] == [s["name"] for s in inside["steps"]] != []


def test_properties_agree_with_describe(hostd: Hostd) -> None:
    """Each io.hostd1 property, read from outside, says what Describe says."""
    doc = hostd.describe()
    props = {name: hostd.prop(name) for name in ("Hostname", "StaticHostname", "DnsServers", "DnsMode")}
    props |= {name: hostd.prop(name) for name in ("NtpServers", "PersistentLogging", "ConfigSource", "ConfigError")}
    props["HeldBack"] = hostd.prop("HeldBack")
    assert props == {
        "Hostname": doc["hostname"],
        "StaticHostname": doc["staticHostname"],
        "DnsServers": doc["dns"]["servers"],
        "DnsMode": doc["dns"]["mode"],
        "NtpServers": doc["time"]["ntpServers"],
        "PersistentLogging": doc["logging"]["persistent"],
        "ConfigSource": doc["config"]["source"],
        "ConfigError": doc["config"]["error"],
        "HeldBack": [list(entry.values()) for entry in doc["config"]["heldBack"]],
    }
    assert hostd.prop("Degraded") == sorted(doc["degraded"]) == []
    assert hostd.prop("Modems") == doc["modems"] == []
    assert hostd.prop("Connections") == [
        [c["name"], c["status"], c.get("nm") or c.get("reason", "")] for c in doc["connections"]
    ]
    assert [s[:2] for s in hostd.prop("Steps")] == [[s["name"], s["status"]] for s in doc["steps"]]


def test_booted_device_reports_no_problem(hostd: Hostd) -> None:
    """After boot nothing is degraded, no step failed or reports a problem, config.json is in use."""
    doc = hostd.describe()
    assert doc["degraded"] == {}
    assert [
        (s["name"], s["status"], s["problems"]) for s in doc["steps"] if s["problems"] or s["status"] == "failed"
    ] == []
    assert doc["config"]["source"] == "config.json"


def test_hostctl_status_human(hostd: Hostd) -> None:
    """`hostctl status` inside prints the state as a table and exits 0 on a healthy device."""
    r = hostd.hostctl("status")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = hostd.describe()
    assert f"Hostname: {doc['hostname']}" in r.stdout
    assert "Config: /mnt/boot/config.json (valid)" in r.stdout
    assert "Degraded: none" in r.stdout
    for step in doc["steps"]:
        assert any(line.split()[:1] == [step["name"]] for line in r.stdout.splitlines()), step["name"]


def test_hostctl_reload(hostd: Hostd) -> None:
    """`hostctl reload` re-applies config.json and prints the status."""
    r = hostd.hostctl("reload")
    assert r.returncode == 0, r.stderr
    assert "Config: /mnt/boot/config.json (valid)" in r.stdout
