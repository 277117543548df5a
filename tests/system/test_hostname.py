"""The hostname: from config.json (else uuid[:7]), applied by hostnamed, announced by avahi as
<name>.local and answered over mDNS on the device's link; runtime changes follow without reboot."""

from __future__ import annotations

import pytest

from .device import Hostd

pytestmark = pytest.mark.system


def names_seen(hostd: Hostd) -> dict[str, str]:
    """The hostname as the kernel, hostnamed, /etc/hostname and hostd's API report it."""
    tb = hostd.tb
    doc = hostd.describe()
    return {
        "kernel": tb.hostname(),
        "hostnamed": tb.exec(["hostnamectl", "hostname", "--static"]).stdout.strip(),
        "etc": tb.exec(["cat", "/etc/hostname"]).stdout.strip(),
        "api": doc["hostname"],
        "api-static": doc["staticHostname"],
        "mdns": doc["mdns"].get("hostname", ""),
    }


def wait_named(hostd: Hostd, name: str, mdns_timeout: float = 10) -> None:
    want = dict.fromkeys(("kernel", "hostnamed", "etc", "api", "api-static", "mdns"), name)
    hostd.tb.wait_for(lambda: names_seen(hostd) == want, 10, f"hostname {name} everywhere")
    hostd.tb.wait_for(
        lambda: hostd.mdns(name, 1000) == [hostd.tb.device_ip], mdns_timeout, f"{name}.local from the peer"
    )


def test_hostname_from_config_answers_mdns(hostd: Hostd) -> None:
    """The configured hostname is the device's name everywhere, and <name>.local answers from the peer."""
    name = hostd.tb.read_config()["hostname"]
    assert names_seen(hostd) == dict.fromkeys(("kernel", "hostnamed", "etc", "api", "api-static", "mdns"), name)
    assert hostd.mdns(name) == [hostd.tb.device_ip]
    assert hostd.hostctl("hostname").stdout.strip() == name


def test_hostname_from_uuid_when_unset(boot: Hostd) -> None:
    """Without `hostname`, the device is named after the first 7 characters of its uuid."""
    cfg = boot.edit_config(hostname=None)
    wait_named(boot, cfg["uuid"][:7])


def test_hostname_follows_config_edit_without_reboot(boot: Hostd) -> None:
    """Editing config.json in the boot partition renames the running device and its .local name;
    the old name stops answering."""
    old, leader = boot.tb.read_config()["hostname"], boot.tb.leader
    boot.edit_config(hostname="Edited-Name")  # folded to lowercase
    wait_named(boot, "edited-name")
    assert boot.mdns(old, timeout_ms=1500) == []
    assert boot.tb.leader == leader  # no reboot


def test_hostctl_hostname_sets_and_persists(boot: Hostd) -> None:
    """`hostctl hostname NEW` inside the device writes config.json and applies it at once."""
    r = boot.hostctl("hostname", "cli-name")
    assert r.returncode == 0, r.stderr
    assert boot.tb.read_config()["hostname"] == "cli-name"
    wait_named(boot, "cli-name")
    bad = boot.hostctl("hostname", "not_valid!")
    assert bad.returncode != 0 and "not a valid hostname" in bad.stderr
    assert boot.tb.read_config()["hostname"] == "cli-name"


def test_quick_successive_renames_answer_mdns(boot: Hostd) -> None:
    """Two renames in quick succession (the second while avahi still probes the first) leave the
    device answering mDNS for the last name."""
    for name in ("quick-one", "quick-two"):
        assert boot.hostctl("hostname", name).returncode == 0
    boot.tb.wait_for(boot.avahi_running, 10, "avahi-daemon done probing")
    wait_named(boot, "quick-two", mdns_timeout=3)
