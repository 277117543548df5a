"""Safe apply on the real device: a change that cuts the device off is rolled back within its
deadline and not tried again (not even after a reboot), a good one is kept, and `hostctl apply
--try` rolls back unless `hostctl confirm` follows.

Each test first makes a last-known-good generation with `os.safeApply` (probe name: the name the
peer's resolver answers, through the device's dnsmasq; a short timeout), so that the change under
test is probed.  Every config carries a fresh `systestNonce` (a key hostd does not own): rejected
generations are remembered by content, so a re-run on a kept device (HOSTD_TESTBED_KEEP=1) never
meets a generation rejected by an earlier run.  Figures are printed (pytest -s).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.testca import TestCA

from .device import Hostd
from .test_time import HTTPS_PORT, https_server

pytestmark = pytest.mark.system

PROBE_TIMEOUT = 10  # os.safeApply.timeout, seconds
# The probe's last attempt may start just before the deadline and wait 2 x 2 s for dnsmasq (A and
# AAAA); the restore itself takes well under a second.
ROLLBACK_SLACK = 6
NM_DIR = "/etc/NetworkManager/system-connections"
CUTOFF = "systest-cutoff.nmconnection"
UNBOUND = "systest-unbound.nmconnection"


def sibling(address: str, last: int) -> str:
    """The address with its last octet replaced (on the testbed's link, derived from the harness)."""
    return f"{address.rsplit('.', 1)[0]}.{last}"


def other_subnet(address: str) -> str:
    """The address moved to a /24 that is no testbed instance's (third octet + 128, instances are 0..99)."""
    a, b, c, d = address.split(".")
    return f"{a}.{b}.{(int(c) + 128) % 256}.{d}"


def cutoff_profile(interface: str, address: str) -> bytes:
    """A profile that takes the uplink over (same interface, higher autoconnect-priority than the
    testbed's own profile) with an address on another subnet: the device is cut off its peer."""
    return (
        "[connection]\nid=systest-cutoff\nuuid=6c1d2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5\ntype=ethernet\n"
        f"interface-name={interface}\nautoconnect=true\nautoconnect-priority=100\n\n[ethernet]\n\n"
        f"[ipv4]\nmethod=manual\naddress1={address}/24\nnever-default=true\n\n[ipv6]\nmethod=ignore\n"
    ).encode()


def unbound_profile(address: str) -> bytes:
    """A profile with no interface-name (like balenaOS's Wi-Fi profiles): NetworkManager may run it on
    any ethernet device."""
    return (
        "[connection]\nid=systest-unbound\nuuid=2b7f0c1e-5d4a-4e3b-9c2d-1f0e9d8c7b6a\ntype=ethernet\n"
        f"autoconnect=true\n\n[ethernet]\n\n[ipv4]\nmethod=manual\naddress1={address}/24\nnever-default=true\n\n"
        "[ipv6]\nmethod=link-local\n"
    ).encode()


def generations(hostd: Hostd) -> dict[str, Any]:
    return hostd.describe()["generations"]


def with_safe_apply(hostd: Hostd, cfg: dict[str, Any]) -> dict[str, Any]:
    """cfg with a short safe-apply probe through the peer's resolver, and a fresh nonce."""
    cfg = json.loads(json.dumps(cfg))
    cfg.setdefault("os", {})["safeApply"] = {"timeout": PROBE_TIMEOUT, "probeName": hostd.tb.probe_name}
    cfg["systestNonce"] = uuid.uuid4().hex
    return cfg


def make_good_baseline(hostd: Hostd) -> dict[str, Any]:
    """Write config.json with the safe-apply settings (not a network key: applied and kept at once)
    and wait until it is the last-known-good generation; returns that config."""
    before = generations(hostd)["current"]
    cfg = with_safe_apply(hostd, hostd.tb.read_config())
    hostd.tb.write_config(cfg)
    hostd.wait_describe(
        lambda d: (
            d["generations"]["current"] not in ("", before)
            and d["generations"]["current"] == d["generations"]["good"]
            and d["generations"]["transaction"] == ""
        ),
        what="the safe-apply baseline kept",
    )
    return cfg


def wait_rolled_back(hostd: Hostd, good: str, since: float) -> tuple[dict[str, Any], float]:
    """Wait for the rollback to `good`; returns the Describe document and the seconds since `since`."""
    doc = hostd.wait_describe(
        lambda d: (
            d["generations"]["transaction"] == ""
            and d["generations"]["current"] == good
            and (d["generations"]["lastRollback"] or {}).get("generation") not in (None, good)
        ),
        timeout=PROBE_TIMEOUT + ROLLBACK_SLACK + 5,
        what=f"rolled back to {good}",
    )
    return doc, time.monotonic() - since


def peer_reaches_device(hostd: Hostd) -> bool:
    """The peer reaches the device's sshd, and the device resolves the probe name through its
    dnsmasq from the peer's resolver: reachable both ways."""
    tb = hostd.tb
    answer = hostd.dns(f"q{time.monotonic_ns()}.{tb.probe_name}")
    return answer.ok and answer.addrs == (tb.probe_addr,) and hostd.peer_connects(22222)


def host0_profile(hostd: Hostd) -> str:
    """The connection NetworkManager runs on the uplink ("" while none)."""
    out = hostd.tb.exec(["nmcli", "-g", "GENERAL.CONNECTION", "device", "show", hostd.tb.device_if], check=False)
    return out.stdout.strip()


def dnsmasq_upstreams(hostd: Hostd) -> list[str]:
    name, path = "uk.org.thekelleys.dnsmasq", "/uk/org/thekelleys/dnsmasq"
    [metrics] = hostd.busctl_json("call", name, path, name, "GetServerMetrics")
    return [m["address"] for m in metrics]


NM = ("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager")


def nm_checkpoints(hostd: Hostd) -> list[str]:
    """NetworkManager's own Checkpoints property."""
    return hostd.busctl_json("get-property", *NM, "Checkpoints")


def journal_since(hostd: Hostd, since: int) -> str:
    return hostd.tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "hostd", f"--since=@{since}"]).stdout


def rejected_ids(hostd: Hostd) -> set[str]:
    path = hostd.tb.state_dir / "hostd" / "rejected-generations.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


def test_profile_that_cuts_the_uplink_is_rolled_back_and_not_retried_after_reboot(boot: Hostd) -> None:
    """A boot-partition profile that takes host0 over with an address on another subnet: NetworkManager
    runs it (hostd activates a changed profile it would pick at boot), the probe fails, and within the
    deadline the good generation is back: the imported profile removed, NetworkManager on the testbed's
    own profile again, the device answering the peer.  After a reboot the rejected profile is still in
    the boot partition and still not imported; NotApplied says so."""
    tb = boot.tb
    make_good_baseline(boot)
    good = generations(boot)["good"]
    assert host0_profile(boot) == "testbed-host0" and peer_reaches_device(boot)
    wrong = other_subnet(tb.device_ip)

    started = time.monotonic()
    (tb.boot_dir / "system-connections" / CUTOFF).write_bytes(cutoff_profile(tb.device_if, wrong))
    doc = boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing the profile")
    candidate = doc["generations"]["current"]
    assert candidate != good
    # the device is really cut off while the probe runs
    tb.wait_for(lambda: host0_profile(boot) == "systest-cutoff", 5, "NetworkManager runs the new profile")
    assert f"inet {wrong}/24" in tb.exec(["ip", "-4", "addr", "show", tb.device_if]).stdout
    assert not peer_reaches_device(boot)
    assert len(nm_checkpoints(boot)) == 1  # NetworkManager holds the state before the change
    cut_off_at = time.monotonic() - started

    doc, rolled_back_after = wait_rolled_back(boot, good, started)
    tb.wait_for(lambda: peer_reaches_device(boot), ROLLBACK_SLACK, "the peer reaches the device again")
    answers_after = time.monotonic() - started
    print(
        f"\n[safe-apply profile] cut off after {cut_off_at:.1f} s, rolled back after {rolled_back_after:.1f} s, "
        f"answering the peer after {answers_after:.1f} s (timeout {PROBE_TIMEOUT} s)"
    )
    assert rolled_back_after <= PROBE_TIMEOUT + ROLLBACK_SLACK
    assert answers_after <= PROBE_TIMEOUT + ROLLBACK_SLACK
    gens = doc["generations"]
    assert gens["good"] == good and gens["lastRollback"]["generation"] == candidate
    assert "probe failed" in gens["lastRollback"]["reason"]
    assert f"{tb.probe_name} does not resolve" in gens["lastRollback"]["evidence"]
    assert "rolled back" in gens["notApplied"] and candidate in gens["notApplied"]
    assert "NetworkManager checkpoint rolled back (host0 restored" in gens["lastRollback"]["evidence"]
    assert nm_checkpoints(boot) == []
    assert host0_profile(boot) == "testbed-host0"
    assert f"{NM_DIR}/{CUTOFF}" not in boot.nm_profiles()
    assert (tb.boot_dir / "system-connections" / CUTOFF).exists()  # the user's files are left alone
    status = boot.hostctl("status")
    assert status.returncode == 1 and "NOT APPLIED" in status.stdout, status.stdout

    tb.reboot()
    boot.wait_ready()
    gens = generations(boot)
    assert (gens["current"], gens["good"], gens["transaction"]) == (good, good, ""), gens
    assert "is not applied" in gens["notApplied"] and candidate in gens["notApplied"], gens
    assert f"{NM_DIR}/{CUTOFF}" not in boot.nm_profiles()
    tb.wait_for(lambda: host0_profile(boot) == "testbed-host0", 10, "host0 on the testbed's profile")
    tb.wait_for(lambda: peer_reaches_device(boot), 10, "the peer reaches the device after the reboot")
    assert candidate in rejected_ids(boot) and good not in rejected_ids(boot)


def wait_kept(hostd: Hostd, previous_good: str) -> dict[str, Any]:
    return hostd.wait_describe(
        lambda d: (
            d["generations"]["current"] not in (previous_good, "")
            and d["generations"]["current"] == d["generations"]["good"]
            and d["generations"]["transaction"] == ""
        ),
        # A change applied while the uplink looked down (a loaded machine) is not blamed: it is
        # retried after one window, so keeping it can take up to three.
        timeout=3 * PROBE_TIMEOUT + ROLLBACK_SLACK,
        what="the change kept",
    )


def test_edited_running_profile_without_interface_name_is_used_then_rolled_back(boot: Hostd) -> None:
    """A profile with no interface-name runs on the uplink and is edited in the boot partition to an
    address on another subnet: hostd activates the edit where the profile runs (NetworkManager alone
    would keep the old settings until the next boot, and the probe would pass on them), the device is
    cut off, the probe fails, and the rollback runs the old settings there again."""
    tb = boot.tb
    conns = tb.boot_dir / "system-connections"
    try:
        make_good_baseline(boot)
        good = generations(boot)["good"]
        (conns / UNBOUND).write_bytes(unbound_profile(tb.device_ip))
        good = wait_kept(boot, good)["generations"]["good"]
        assert host0_profile(boot) == "testbed-host0"  # new, unbound: NetworkManager keeps what it runs
        tb.exec(["nmcli", "connection", "up", "systest-unbound", "ifname", tb.device_if])
        tb.wait_for(lambda: peer_reaches_device(boot), 10, "the peer reaches the device on the unbound profile")

        wrong = other_subnet(tb.device_ip)
        started = time.monotonic()
        (conns / UNBOUND).write_bytes(unbound_profile(wrong))
        boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing the edit")
        tb.wait_for(
            lambda: f"inet {wrong}/24" in tb.exec(["ip", "-4", "addr", "show", tb.device_if]).stdout,
            5,
            "the edit in use on the uplink",
        )
        assert host0_profile(boot) == "systest-unbound"
        _, rolled_back_after = wait_rolled_back(boot, good, started)
        tb.wait_for(lambda: peer_reaches_device(boot), ROLLBACK_SLACK, "the peer reaches the device again")
        print(f"\n[safe-apply unbound profile] rolled back after {rolled_back_after:.1f} s")
        assert host0_profile(boot) == "systest-unbound"
        assert f"inet {wrong}/24" not in tb.exec(["ip", "-4", "addr", "show", tb.device_if]).stdout
    finally:
        tb.exec(["nmcli", "connection", "up", "testbed-host0"], check=False)


def test_exclusive_silent_dns_server_is_rolled_back(boot: Hostd) -> None:
    """dnsServers = one server that never answers, exclusive: nothing resolves, the probe fails, and the
    good generation's servers are back in dnsmasq within the deadline; config.json is left as written."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    good = generations(boot)["good"]
    silent = sibling(tb.peer_ip, 250)  # on the link, nobody there

    bad = {**cfg, "dnsServers": silent, "os": {**cfg["os"], "dns": {"mode": "exclusive"}}}
    started = time.monotonic()
    tb.write_config(bad)
    boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing")
    assert dnsmasq_upstreams(boot) == [silent]
    assert not boot.probe().ok
    doc, rolled_back_after = wait_rolled_back(boot, good, started)
    print(f"\n[safe-apply dns] rolled back after {rolled_back_after:.1f} s (timeout {PROBE_TIMEOUT} s)")
    assert rolled_back_after <= PROBE_TIMEOUT + ROLLBACK_SLACK
    assert doc["dns"] == {"mode": "append", "servers": [tb.peer_ip]}
    assert dnsmasq_upstreams(boot) == [tb.peer_ip]
    tb.wait_for(lambda: boot.probe().ok, 5, "resolution through dnsmasq again")
    assert f"{tb.probe_name} does not resolve" in doc["generations"]["lastRollback"]["evidence"]
    assert tb.read_config() == bad


def test_good_network_change_is_probed_and_kept(boot: Hostd) -> None:
    """A network change that keeps the device reachable passes its probe and becomes last-known-good."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    good = generations(boot)["good"]
    since = int(time.time()) - 1
    servers = [tb.peer_ip, sibling(tb.peer_ip, 250)]
    started = time.monotonic()
    tb.write_config({**cfg, "dnsServers": " ".join(servers)})
    doc = boot.wait_describe(
        lambda d: (
            d["generations"]["current"] not in (good, "")
            and d["generations"]["current"] == d["generations"]["good"]
            and d["generations"]["transaction"] == ""
        ),
        what="the change kept",
    )
    print(f"\n[safe-apply good] kept after {time.monotonic() - started:.1f} s")
    gens = doc["generations"]
    assert gens["notApplied"] == "" and doc["dns"]["servers"] == servers
    assert dnsmasq_upstreams(boot) == servers
    log = tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "hostd", f"--since=@{since}"]).stdout
    assert f"generation {gens['current']} passed its probe: kept" in log, log
    assert boot.prop("GoodGeneration") == boot.prop("Generation") == gens["current"]


def write_and_try(hostd: Hostd, cfg: dict[str, Any], timeout: int) -> str:
    """`hostctl apply --try --timeout S NEW.json`: hostd writes the new config.json itself and puts it
    on trial at once (the config.json watcher cannot keep it first); returns the generation on trial."""
    hostd.tb.exec(["sh", "-c", "cat > /tmp/try.json"], input=json.dumps(cfg, indent=2) + "\n")
    r = hostd.hostctl("apply", "--try", "--timeout", str(timeout), "/tmp/try.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"run `hostctl confirm` within {timeout} s" in r.stdout, r.stdout
    gens = generations(hostd)
    assert gens["transaction"] == "awaiting-confirm", gens
    return gens["current"]


def test_try_rolls_back_unless_confirmed(boot: Hostd) -> None:
    """`hostctl apply --try --timeout S`: without `hostctl confirm` the change is rolled back after S s;
    with it, the change is kept (and stays kept past S).  Try on what is kept already is refused."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    good = generations(boot)["good"]
    timeout = 5

    started = time.monotonic()
    trial = write_and_try(boot, {**cfg, "ntpServers": sibling(tb.peer_ip, 251)}, timeout)
    assert boot.describe()["time"]["ntpServers"] == [sibling(tb.peer_ip, 251)]
    doc, rolled_back_after = wait_rolled_back(boot, good, started)
    print(f"\n[try] unconfirmed trial rolled back after {rolled_back_after:.1f} s (timeout {timeout} s)")
    assert timeout - 1 <= rolled_back_after <= timeout + 3
    assert doc["generations"]["lastRollback"]["generation"] == trial
    assert doc["generations"]["lastRollback"]["reason"] == f"not confirmed within {timeout} s"
    assert doc["time"]["ntpServers"] == cfg.get("ntpServers", "").split()

    trial = write_and_try(boot, {**cfg, "ntpServers": sibling(tb.peer_ip, 252)}, timeout)
    r = boot.hostctl("confirm")
    assert r.returncode == 0 and "confirmed: the change is kept" in r.stdout, r.stdout + r.stderr
    gens = generations(boot)
    assert (gens["current"], gens["good"], gens["transaction"], gens["notApplied"]) == (trial, trial, "", "")
    time.sleep(timeout + 1)
    doc = boot.describe()
    assert doc["generations"]["current"] == doc["generations"]["good"] == trial
    assert doc["time"]["ntpServers"] == [sibling(tb.peer_ip, 252)]

    again = boot.hostctl("apply", "--try", "--timeout", str(timeout))  # config.json is what is kept
    assert again.returncode == 1 and "io.hostd1.Error.NothingToTry" in again.stderr, again.stdout + again.stderr
    nothing = boot.hostctl("confirm")
    assert nothing.returncode == 1 and "io.hostd1.Error.NothingToConfirm" in nothing.stderr, nothing.stderr
    assert generations(boot)["good"] == trial and trial not in rejected_ids(boot)


def disabled_profile(interface: str) -> bytes:
    """A profile that takes the uplink over (higher autoconnect-priority) with no IP at all: the
    uplink is up but carries nothing."""
    return (
        "[connection]\nid=systest-noip\nuuid=0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0\ntype=ethernet\n"
        f"interface-name={interface}\nautoconnect=true\nautoconnect-priority=100\n\n[ethernet]\n\n"
        "[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=disabled\n"
    ).encode()


def test_profile_that_deactivates_the_uplink_is_undone_by_the_checkpoint(boot: Hostd) -> None:
    """A profile that leaves the uplink without an address: NetworkManager's checkpoint (taken before
    the change, extended while probing) puts host0 back on its profile; the files follow."""
    tb = boot.tb
    make_good_baseline(boot)
    good = generations(boot)["good"]
    started = time.monotonic()
    (tb.boot_dir / "system-connections" / "systest-noip.nmconnection").write_bytes(disabled_profile(tb.device_if))
    boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing the profile")
    tb.wait_for(lambda: host0_profile(boot) == "systest-noip", 5, "NetworkManager runs the profile")
    [checkpoint] = nm_checkpoints(boot)
    doc, rolled_back_after = wait_rolled_back(boot, good, started)
    tb.wait_for(lambda: peer_reaches_device(boot), ROLLBACK_SLACK, "the peer reaches the device again")
    print(f"\n[safe-apply no-ip profile] rolled back after {rolled_back_after:.1f} s (timeout {PROBE_TIMEOUT} s)")
    assert host0_profile(boot) == "testbed-host0" and nm_checkpoints(boot) == []
    assert f"{NM_DIR}/systest-noip.nmconnection" not in boot.nm_profiles()
    assert "NetworkManager checkpoint rolled back (host0 restored" in doc["generations"]["lastRollback"]["evidence"]
    assert checkpoint.startswith("/org/freedesktop/NetworkManager/Checkpoint/")


def test_kill_9_inside_the_window_leads_to_a_fresh_judgement(boot: Hostd) -> None:
    """hostd killed (SIGKILL) while a change that cuts the device off is probed: systemd starts it
    again, it finds the trial recorded on the state partition and NetworkManager's checkpoint left
    behind, rolls NetworkManager back to it, judges the change afresh and rejects it: never kept."""
    tb = boot.tb
    make_good_baseline(boot)
    good = generations(boot)["good"]
    since = int(time.time()) - 1
    (tb.boot_dir / "system-connections" / CUTOFF).write_bytes(cutoff_profile(tb.device_if, other_subnet(tb.device_ip)))
    doc = boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing the profile")
    candidate = doc["generations"]["current"]
    assert (tb.state_dir / "hostd" / "trial.json").exists()
    pid = boot.pid()
    started = time.monotonic()
    tb.exec(["kill", "-9", str(pid)])
    tb.wait_for(lambda: boot.ready() and boot.pid() != pid, 30, "hostd started again by systemd")
    doc, rolled_back_after = wait_rolled_back(boot, good, started)
    tb.wait_for(lambda: peer_reaches_device(boot), ROLLBACK_SLACK, "the peer reaches the device again")
    print(f"\n[safe-apply kill -9] rolled back {rolled_back_after:.1f} s after the kill (timeout {PROBE_TIMEOUT} s)")
    log = journal_since(boot, since)
    assert "checkpoint" in log and "rolled back" in log and f"generation {candidate} was on trial" in log, log
    assert doc["generations"]["lastRollback"]["generation"] == candidate and candidate in rejected_ids(boot)
    assert host0_profile(boot) == "testbed-host0" and nm_checkpoints(boot) == []
    assert not (tb.state_dir / "hostd" / "trial.json").exists()


def test_a_checkpoint_left_over_is_cleared_at_start(boot: Hostd) -> None:
    """A checkpoint nobody will finish (left by a crash) blocks NetworkManager's next one: hostd
    clears it when it starts, and the next change gets its own checkpoint, destroyed once kept."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    good = generations(boot)["good"]
    [stale] = tb.exec(["busctl", "call", *NM, "CheckpointCreate", "aouu", "0", "600", "0"]).stdout.split()[1:]
    assert nm_checkpoints(boot) == [stale.strip('"')]
    tb.exec(["systemctl", "restart", "hostd"])
    boot.wait_ready()
    assert nm_checkpoints(boot) == []
    tb.write_config({**cfg, "dnsServers": f"{tb.peer_ip} {sibling(tb.peer_ip, 250)}"})
    wait_kept(boot, good)
    assert nm_checkpoints(boot) == []


def test_try_interrupted_by_a_reboot_is_rolled_back(boot: Hostd) -> None:
    """`hostctl apply --try` then a reboot inside the confirm window: the change is never kept; the
    device comes back on the good generation and says why."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    good = generations(boot)["good"]
    trial = write_and_try(boot, {**cfg, "ntpServers": sibling(tb.peer_ip, 253)}, 120)
    tb.reboot()
    boot.wait_ready()
    doc = boot.wait_describe(lambda d: d["generations"]["current"] == good, what="back on the good generation")
    gens = doc["generations"]
    assert (gens["good"], gens["transaction"]) == (good, "")
    assert gens["lastRollback"]["generation"] == trial
    assert "hostd stopped inside the confirm window" in gens["lastRollback"]["reason"]
    assert "is not applied" in gens["notApplied"] and trial in rejected_ids(boot)
    assert doc["time"]["ntpServers"] == cfg.get("ntpServers", "").split()
    tb.wait_for(lambda: peer_reaches_device(boot), 10, "the peer reaches the device after the reboot")


def set_uplink(hostd: Hostd, up: bool) -> None:
    """The far end of the device's veth, from the host side (the peer namespace)."""
    link = ["ip", "netns", "exec", hostd.tb.netns, "ip", "link", "set", "tb-peer0", "up" if up else "down"]
    subprocess.run(link, check=True, capture_output=True)


def test_a_good_change_during_an_uplink_flap_is_kept(boot: Hostd) -> None:
    """The uplink goes down (host side) just before a good change and stays down through its probe
    window (5 s): the probe before the change saw the outage, so the change is not blamed: rolled
    back without being rejected (Retry and LastRollback say so), tried again once the uplink is
    healthy, and kept.  It is never rejected."""
    tb = boot.tb
    cfg = make_good_baseline(boot)
    servers = [tb.peer_ip, sibling(tb.peer_ip, 249)]
    quick = {**cfg, "os": {**cfg["os"], "safeApply": {**cfg["os"]["safeApply"], "timeout": 5}}}
    started = time.monotonic()
    try:
        set_uplink(boot, False)
        tb.write_config({**quick, "dnsServers": " ".join(servers)})
        doc = boot.wait_describe(lambda d: d["generations"]["transaction"] == "probing", what="probing")
        candidate = doc["generations"]["current"]
        deferred = boot.wait_describe(
            lambda d: d["generations"]["transaction"] == "" and d["generations"]["retry"] is not None,
            timeout=15,
            what="rolled back, not blamed",
        )
    finally:
        set_uplink(boot, True)
    flap = time.monotonic() - started
    gens = deferred["generations"]
    assert gens["retry"]["generation"] == candidate and gens["retry"]["attempts"] == 0, gens
    assert gens["lastRollback"]["generation"] == candidate and "not blamed" in gens["lastRollback"]["reason"]
    assert "retry 1 of 3 once the uplink is healthy" in gens["notApplied"]
    assert candidate not in rejected_ids(boot)
    doc = boot.wait_describe(
        lambda d: d["generations"]["good"] == candidate and d["generations"]["transaction"] == "",
        timeout=45,
        what="the change retried and kept",
    )
    print(f"\n[safe-apply flap] uplink down {flap:.1f} s; kept {time.monotonic() - started:.1f} s after it went down")
    gens = doc["generations"]
    assert gens["current"] == candidate and gens["notApplied"] == "" and gens["retry"] is None
    assert candidate not in rejected_ids(boot) and nm_checkpoints(boot) == []
    assert dnsmasq_upstreams(boot) == servers
    tb.wait_for(lambda: peer_reaches_device(boot), 10, "the peer reaches the device")


def test_https_connectivity_uri_is_checked_outside_hostd(boot: Hostd, tmp_path: Path) -> None:
    """balenaOS's connectivity URI is https: with it (and balenaRootCA), a change is probed through it
    and kept, and a change whose URI does not answer is rolled back, while hostd itself never loads
    OpenSSL (each check runs in a process of its own, hostd.urlcheck): no libssl in hostd's maps."""
    ca = TestCA(tmp_path, "hostd test root CA")
    pid = boot.pid()
    with https_server(boot, ca):
        cfg = with_safe_apply(boot, boot.tb.read_config())
        uri = f"https://{boot.tb.peer_ip}:{HTTPS_PORT}/connectivity-check"
        cfg["os"]["network"] = {"connectivity": {"uri": uri}}
        cfg["balenaRootCA"] = base64.b64encode(ca.pem.encode()).decode()
        before = generations(boot)["current"]
        boot.tb.write_config(cfg)
        doc = boot.wait_describe(
            lambda d: d["generations"]["current"] not in ("", before) and d["generations"]["transaction"] == "",
            timeout=PROBE_TIMEOUT + ROLLBACK_SLACK + 5,
            what="the https connectivity URI judged",
        )
        good = doc["generations"]["current"]
        assert good == doc["generations"]["good"], doc["generations"]  # probed through https, kept
        earlier_rollback = doc["generations"]["lastRollback"]  # an earlier test's, if any
        cfg["os"]["network"] = {"connectivity": {"uri": uri.replace(str(HTTPS_PORT), str(HTTPS_PORT + 1))}}
        cfg["systestNonce"] = uuid.uuid4().hex
        boot.tb.write_config(cfg)
        doc = boot.wait_describe(
            lambda d: (
                d["generations"]["lastRollback"] != earlier_rollback
                and d["generations"]["transaction"] == ""
                and d["generations"]["current"] == good
            ),
            timeout=PROBE_TIMEOUT + ROLLBACK_SLACK + 5,
            what=f"rolled back to {good}",
        )
    assert "the connectivity URI" in doc["generations"]["lastRollback"]["evidence"], doc["generations"]
    assert boot.pid() == pid
    maps = boot.tb.exec(["cat", f"/proc/{pid}/maps"]).stdout
    assert "libssl" not in maps and "_ssl." not in maps
