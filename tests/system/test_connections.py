"""Boot-partition NetworkManager profiles: imported and loaded into the running NetworkManager
(never restarted), NetworkManager's verdict per file in hostd's report, hostd's accept/reject
checked against NetworkManager's own on its keyfile corpus, removal, and profiles made on the
device left alone across reboots."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

CORPUS = Path(__file__).resolve().parents[1] / "data" / "nm-keyfiles"
NOT_PROFILES = {"README.md", "verdicts.json"}  # documentation of the corpus, not part of it
NM_DIR = "/etc/NetworkManager/system-connections"

ABSENT_LINK_PROFILE = b"""[connection]
id=systest-absent
uuid=7d0f6a4e-5a4b-4c1e-9d2a-3f1e2d3c4b5a
type=ethernet
interface-name=tb-absent0
autoconnect=true

[ipv4]
method=manual
address1=192.0.2.10/24

[ipv6]
method=ignore
"""


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name not in NOT_PROFILES)


def entries(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {e["name"]: e for e in doc["connections"]}


def nm_state(hostd: Hostd) -> tuple[int, str]:
    """NetworkManager's PID and the invocation of its unit: both change if it is restarted."""
    props = hostd.unit_props("NetworkManager.service", "MainPID", "InvocationID")
    return int(props["MainPID"]), props["InvocationID"]


def device_file(hostd: Hostd, name: str) -> Path:
    """Host path of a file in the device's /etc/NetworkManager/system-connections (a bind mount
    from the state partition)."""
    return hostd.tb.state_dir / "root-overlay" / NM_DIR.lstrip("/") / name


def test_boot_profile_loaded_live_with_verdict(boot: Hostd) -> None:
    """A profile dropped into the boot partition is imported 0600 and loaded by the running
    NetworkManager (same PID); a broken one is rejected alone; the report carries both verdicts."""
    nm_before = nm_state(boot)
    conns = boot.tb.boot_dir / "system-connections"
    (conns / "systest-absent.nmconnection").write_bytes(ABSENT_LINK_PROFILE)
    (conns / "systest-broken.nmconnection").write_bytes(b"this is not a keyfile\n")
    doc = boot.wait_describe(
        lambda d: {"systest-absent.nmconnection", "systest-broken.nmconnection"} <= entries(d).keys(),
        what="both files in the report",
    )
    good, bad = entries(doc)["systest-absent.nmconnection"], entries(doc)["systest-broken.nmconnection"]
    assert (good["status"], good["nm"]) == ("imported", "loaded"), good
    assert bad["status"] == "rejected" and "systest-broken.nmconnection" in bad["reason"], bad
    assert boot.nm_profiles().get(f"{NM_DIR}/systest-absent.nmconnection") == "systest-absent"
    st = device_file(boot, "systest-absent.nmconnection").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert not device_file(boot, "systest-broken.nmconnection").exists()
    assert nm_state(boot) == nm_before, "NetworkManager was restarted"
    # the same verdicts through the property and the CLI
    assert ["systest-absent.nmconnection", "imported", "loaded"] in boot.prop("Connections")
    rows = {line.split()[0]: line.split()[1:3] for line in boot.hostctl("connections").stdout.splitlines()[1:]}
    assert rows["systest-absent.nmconnection"] == ["imported", "loaded"]
    assert rows["systest-broken.nmconnection"][0] == "rejected"
    assert boot.host0_connection() == "100 (connected)\ntestbed-host0"


def test_profile_removed_from_boot_leaves_networkmanager(boot: Hostd) -> None:
    """Deleting an imported profile from the boot partition deletes the device's copy and
    NetworkManager unloads it, without a restart."""
    conns = boot.tb.boot_dir / "system-connections"
    (conns / "systest-absent.nmconnection").write_bytes(ABSENT_LINK_PROFILE)
    boot.wait_describe(lambda d: entries(d).get("systest-absent.nmconnection", {}).get("nm") == "loaded", what="loaded")
    nm_before = nm_state(boot)
    (conns / "systest-absent.nmconnection").unlink()
    doc = boot.wait_describe(
        lambda d: entries(d).get("systest-absent.nmconnection", {}).get("status") == "removed", what="removed"
    )
    assert entries(doc)["systest-absent.nmconnection"]["nm"] == "unloaded"
    assert f"{NM_DIR}/systest-absent.nmconnection" not in boot.nm_profiles()
    assert not device_file(boot, "systest-absent.nmconnection").exists()
    assert nm_state(boot) == nm_before, "NetworkManager was restarted"


def networkmanager_verdicts(hostd: Hostd, files: list[Path]) -> set[str]:
    """The oracle: the corpus files NetworkManager loads when they are all put straight into
    /etc/NetworkManager/system-connections (0600 root, as hostd imports them), without hostd.
    The directory is emptied again afterwards and NetworkManager told so."""
    target = device_file(hostd, "")
    assert not any(target.iterdir()), f"{NM_DIR} is not empty: {sorted(p.name for p in target.iterdir())}"
    paths = [f"{NM_DIR}/{f.name}" for f in files]
    try:
        for f in files:
            shutil.copyfile(f, target / f.name)
            os.chmod(target / f.name, 0o600)
        hostd.tb.exec(["nmcli", "connection", "load", *paths], check=False)  # fails for the files it refuses
        loaded = {Path(p).name for p in hostd.nm_profiles() if p.startswith(NM_DIR + "/")}
    finally:
        for f in files:
            (target / f.name).unlink(missing_ok=True)
        hostd.tb.exec(["nmcli", "connection", "load", *paths], check=False)  # a missing file is unloaded
    assert not [p for p in hostd.nm_profiles() if p.startswith(NM_DIR + "/")]
    return loaded


def test_corpus_verdicts_agree_with_networkmanager(boot: Hostd) -> None:
    """On NetworkManager's own keyfile corpus, hostd rejects only files NetworkManager would not
    load either, every file NetworkManager loads is imported, and the report's "nm" field is what
    the running NetworkManager did; host0 is not disturbed and NetworkManager is not restarted.

    Several corpus files share a connection.uuid.  NetworkManager loads one per uuid (the newest
    file); hostd imports the first by name and rejects the others, saying which file holds the
    uuid.  For those groups the test asserts one each side, not the same one."""
    files = corpus_files()
    expected = json.loads((CORPUS / "verdicts.json").read_text())["files"]
    assert {f.name for f in files} == set(expected), "verdicts.json does not cover the corpus"
    by_uuid: dict[str, list[str]] = {}
    for name, v in expected.items():
        if v.get("uuid"):
            by_uuid.setdefault(v["uuid"], []).append(name)
    shared = {n: group for group in by_uuid.values() if len(group) > 1 for n in group}

    nm_before, devices_before = nm_state(boot), boot.tb.exec(["nmcli", "-g", "DEVICE", "device"]).stdout
    nm_loads = networkmanager_verdicts(boot, files)

    conns = boot.tb.boot_dir / "system-connections"
    for f in files:
        shutil.copyfile(f, conns / f.name)
    doc = boot.wait_describe(
        lambda d: all(
            f.name in entries(d) and (entries(d)[f.name]["status"] != "imported" or "nm" in entries(d)[f.name])
            for f in files
        ),
        timeout=20,
        what="a verdict for every corpus file",
    )
    report = {f.name: entries(doc)[f.name] for f in files}
    accepted = {n for n, e in report.items() if e["status"] in ("imported", "unchanged")}
    live = {Path(p).name for p in boot.nm_profiles() if p.startswith(NM_DIR + "/")}

    # NetworkManager's verdicts are the ones the corpus records (one per uuid where files share one)
    for name, v in expected.items():
        if name not in shared:
            assert (name in nm_loads) == (v["verdict"] == "accept"), (name, v["why"])
    unique = [f.name for f in files if f.name not in shared]
    assert [n for n in unique if report[n]["status"] not in ("imported", "unchanged") and n in nm_loads] == [], (
        "hostd refused files NetworkManager loads"
    )
    assert [n for n in unique if n in nm_loads and n not in accepted] == []
    for group in {tuple(g) for g in by_uuid.values() if len(g) > 1}:
        assert len(set(group) & nm_loads) == 1, group
        kept = set(group) & accepted
        assert len(kept) == 1, {n: report[n] for n in group}
        for n in set(group) - kept:
            assert report[n]["status"] == "rejected" and next(iter(kept)) in report[n]["reason"], report[n]
    # the report says what the running NetworkManager did with each imported file
    for name in accepted:
        assert (report[name]["nm"] == "loaded") == (name in live), report[name]
    assert nm_state(boot) == nm_before, "NetworkManager was restarted"
    assert boot.host0_connection() == "100 (connected)\ntestbed-host0"
    assert boot.tb.exec(["nmcli", "-g", "DEVICE", "device"]).stdout == devices_before, "a corpus profile made a device"


def test_runtime_profile_survives_reboot_untouched(boot: Hostd) -> None:
    """A profile made on the device with nmcli lives on the state partition: it survives a
    reboot, and hostd never touches it, not even when a boot file of the same name appears."""
    name = "systest-runtime"
    tb = boot.tb
    add = ["nmcli", "connection", "add", "type", "ethernet", "ifname", "tb-none0", "con-name", name]
    tb.exec([*add, "autoconnect", "no", "ipv4.method", "disabled", "ipv6.method", "ignore"])
    try:
        path = device_file(boot, f"{name}.nmconnection")
        before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
        uuid = tb.exec(["nmcli", "-g", "connection.uuid", "connection", "show", name]).stdout.strip()
        (tb.boot_dir / "system-connections" / f"{name}.nmconnection").write_bytes(ABSENT_LINK_PROFILE)
        doc = boot.wait_describe(lambda d: f"{name}.nmconnection" in entries(d), what="the boot file reported")
        assert entries(doc)[f"{name}.nmconnection"]["status"] == "conflict"

        tb.reboot()
        boot.wait_ready()
        assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before
        assert tb.exec(["nmcli", "-g", "connection.uuid", "connection", "show", name]).stdout.strip() == uuid
        assert entries(boot.describe())[f"{name}.nmconnection"]["status"] == "conflict"

        (tb.boot_dir / "system-connections" / f"{name}.nmconnection").unlink()
        boot.reload()
        assert f"{name}.nmconnection" not in entries(boot.describe())
        assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before
    finally:
        tb.exec(["nmcli", "connection", "delete", name], check=False)
