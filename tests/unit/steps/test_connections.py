"""Importing boot-partition profiles: the per-file report, the manifest, what is never touched."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hostd.steps import connections

from ..conftest import UUID, WIFI, WIRED
from .fakes import FakeNetworkManager, services


def run(device):
    result = device.run_step(connections)
    return result, {entry.name: entry for entry in result.file_entries()}


@pytest.fixture
def dev(device):
    device.write_config({"uuid": UUID})
    return device


def test_report_for_each_kind_of_file(dev) -> None:
    dev.boot_profile("home", WIFI)
    dev.boot_profile("sample.ignore", WIFI)
    dev.boot_profile("broken", "not a keyfile\n")
    _result, report = run(dev)
    assert report["home"].status == "imported"
    assert report["sample.ignore"].status == "skipped"
    assert report["broken"].status == "rejected" and "broken" in report["broken"].reason
    assert not (Path(dev.layout.nm_connections) / "broken").exists()
    _, report = run(dev)
    assert report["home"].status == "unchanged"


def test_removed_from_boot_is_removed_from_device(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    (Path(dev.layout.boot_connections) / "home").unlink()
    _, report = run(dev)
    assert report["home"].status == "removed"
    assert not (Path(dev.layout.nm_connections) / "home").exists()


def test_profile_created_on_device_is_never_touched(dev) -> None:
    runtime = Path(dev.layout.nm_connections) / "made-by-nmcli.nmconnection"
    runtime.write_text(WIRED)
    dev.boot_profile("made-by-nmcli.nmconnection", WIFI)
    _, report = run(dev)
    assert report["made-by-nmcli.nmconnection"].status == "conflict"
    assert runtime.read_text() == WIRED
    (Path(dev.layout.boot_connections) / "made-by-nmcli.nmconnection").unlink()
    run(dev)
    assert runtime.read_text() == WIRED


def test_edit_on_device_is_kept_until_boot_file_changes(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    device_copy = Path(dev.layout.nm_connections) / "home"
    device_copy.write_text(WIFI.replace("id=home", "id=home-edited"))
    _, report = run(dev)
    assert report["home"].status == "kept"
    assert "home-edited" in device_copy.read_text()
    dev.boot_profile("home", WIFI.replace("ssid=home", "ssid=new"))
    _, report = run(dev)
    assert report["home"].status == "imported"
    assert "ssid=new" in device_copy.read_text()


def test_edited_copy_survives_removal_from_boot(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    device_copy = Path(dev.layout.nm_connections) / "home"
    device_copy.write_text(WIRED)
    (Path(dev.layout.boot_connections) / "home").unlink()
    _, report = run(dev)
    assert report["home"].status == "kept"
    assert device_copy.read_text() == WIRED


def test_bad_edit_keeps_last_good_copy(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    dev.boot_profile("home", "[broken\n")
    _, report = run(dev)
    assert report["home"].status == "rejected"
    assert (Path(dev.layout.nm_connections) / "home").read_text() == WIFI


def test_duplicate_uuid_rejects_the_second(dev) -> None:
    dev.boot_profile("a", WIFI)
    dev.boot_profile("b", WIFI.replace("id=home", "id=other"))
    _, report = run(dev)
    assert report["a"].status == "imported"
    assert report["b"].status == "rejected" and "already used by a" in report["b"].reason


def test_hostile_entries_are_rejected_alone(dev, tmp_path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text(WIRED)
    boot = Path(dev.layout.boot_connections)
    (boot / "link").symlink_to(outside)
    os.link(outside, boot / "hardlink")
    (boot / "dir-profile").mkdir()
    os.mkfifo(boot / "fifo")
    (boot / "huge").write_bytes(b"[connection]\ntype=ethernet\n" + b"#" * 70000)
    (boot / ".hidden").write_text(WIRED)  # NetworkManager ignores hidden files: skipped
    dev.boot_profile("good", WIRED)
    _, report = run(dev)
    assert report[".hidden"].status == "skipped"
    for name in ("link", "hardlink", "dir-profile", "fifo", "huge"):
        assert report[name].status == "rejected", name
        assert name in report[name].reason
    assert report["good"].status == "imported"
    assert sorted(p.name for p in Path(dev.layout.nm_connections).iterdir()) == ["good"]


def test_psk_never_in_report(dev) -> None:
    dev.boot_profile("bad", WIFI.replace("[wifi]", "[wifi\n"))
    result, _report = run(dev)
    assert "SuperSecret123" not in repr(result.as_dict())


def test_unreadable_boot_dir_touches_nothing(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    boot = Path(dev.layout.boot_connections)
    os.rename(boot, boot.with_name("moved"))
    boot.write_text("not a directory")
    result, _ = run(dev)
    assert (Path(dev.layout.nm_connections) / "home").exists()
    assert result.problems


def test_missing_boot_dir_removes_imported(dev) -> None:
    dev.boot_profile("home", WIFI)
    run(dev)
    (Path(dev.layout.boot_connections) / "home").unlink()
    Path(dev.layout.boot_connections).rmdir()
    _, report = run(dev)
    assert report["home"].status == "removed"


def test_names_networkmanager_ignores_are_skipped_with_reason(dev) -> None:
    dev.boot_profile("home.backup", WIFI)
    dev.boot_profile("cert.pem", WIFI)
    _, report = run(dev)
    assert report["home.backup"].status == "skipped" and "never loads" in report["home.backup"].reason
    assert report["cert.pem"].status == "skipped"
    assert not (Path(dev.layout.nm_connections) / "home.backup").exists()


def _live(dev, result, nm):
    outcome = asyncio.run(connections.apply_live(services(networkmanager=nm), dev.context(), result))
    result.merge(outcome)
    return {entry.name: entry for entry in result.file_entries()}


def test_networkmanager_not_running(dev) -> None:
    dev.boot_profile("home", WIFI)
    dev.boot_profile("broken", "not a keyfile\n")
    report = _live(dev, dev.run_step(connections), FakeNetworkManager(attached=False))
    assert report["home"].verdict == "not loaded: NetworkManager is not running"
    assert report["broken"].verdict == "" and report["broken"].as_dict().keys() == {"name", "status", "reason"}


def test_networkmanager_verdict_per_file(dev) -> None:
    dev.boot_profile("home", WIFI)
    dev.boot_profile("wired", WIRED)
    nm = FakeNetworkManager(refused={str(Path(dev.layout.nm_connections) / "wired")})
    result = dev.run_step(connections)
    report = _live(dev, result, nm)
    assert report["home"].verdict == "loaded" and report["home"].as_dict()["nm"] == "loaded"
    assert report["wired"].verdict == "failed: NetworkManager did not load it (LoadConnections reported it)"
    assert result.problems == ["wired: NetworkManager did not load it"]
    assert sorted(nm.asked[0]) == sorted(str(Path(dev.layout.nm_connections) / n) for n in ("home", "wired"))
    (Path(dev.layout.boot_connections) / "home").unlink()
    report = _live(dev, dev.run_step(connections), nm)
    assert report["home"].verdict == "unloaded"
    assert nm.asked[-1] == [str(Path(dev.layout.nm_connections) / "home")]  # exactly the changed files
