"""state: the reset flag, bind sources like their targets; the bind mounts made through systemd."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from hostd.bus.systemd import unit_name_from_path
from hostd.steps import state
from hostd.steps.base import StepStatus

from ..conftest import UUID
from .fakes import FakeSystemd, services


def test_reset_flag_wipes_overlay_once(device) -> None:
    device.write_config({"uuid": UUID})
    leftover = Path(device.layout.state) / "root-overlay" / "etc" / "stale"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("old")
    device.run_step(state)
    assert not leftover.exists()
    assert (Path(device.layout.state) / "remove_me_to_reset").exists()
    assert (Path(device.layout.data) / "remove_me_to_reset").exists()
    assert (Path(device.layout.state) / "root-overlay/etc/NetworkManager/system-connections").is_dir()
    assert (Path(device.layout.state) / "root-overlay/etc/hostname").is_file()
    assert (Path(device.layout.data) / "root-overlay/var/log/journal").is_dir()
    kept = Path(device.layout.state) / "root-overlay" / "etc" / "kept"
    kept.write_text("new")
    device.run_step(state)
    assert kept.exists()


def test_mounts_are_pending_offline(device) -> None:
    device.write_config({"uuid": UUID})
    result = device.run_step(state)
    assert {c.path for c in result.pending} == set(state.STATE_BIND_PATHS + state.DATA_BIND_PATHS)


def test_live_effect_mounts_what_systemd_does_not_hold_yet(device) -> None:
    device.write_config({"uuid": UUID})
    result = device.run_step(state)
    held = unit_name_from_path(str(device.layout.path("/etc/hostname")))
    systemd = FakeSystemd(active_units={held})
    outcome = asyncio.run(state.apply_live(services(systemd=systemd), device.context(), result))
    result.merge(outcome)
    assert [c.path for c in outcome.converged] == ["/etc/hostname"]
    assert len(systemd.calls) == len(state.STATE_BIND_PATHS + state.DATA_BIND_PATHS) - 1
    assert not result.pending and result.status == StepStatus.CHANGED
    assert "/var/log/journal" in {c.path for c in result.changes}


def test_no_systemd_no_mounts(device) -> None:
    device.write_config({"uuid": UUID})
    result = device.run_step(state)
    outcome = asyncio.run(state.apply_live(services(systemd=FakeSystemd(available=False)), device.context(), result))
    assert outcome.problems == ["systemd is not reachable: bind mounts not made"] and not outcome.made


def test_bind_target_the_image_lacks_converges_in_one_pass(device) -> None:
    """No /etc/hostname in the root: the state step makes the mount point, its source and the
    mount in one pass, so the hostname step writes through the mount (live) instead of onto the
    root, where the mount would hide it next time."""
    Path(device.layout.etc_hostname).unlink()
    device.write_config({"uuid": UUID})
    result = device.run_step(state)
    assert not any("bind target" in problem for problem in result.problems), result.problems
    assert stat.S_IMODE(Path(device.layout.etc_hostname).stat().st_mode) == 0o644
    assert (Path(device.layout.state) / "root-overlay/etc/hostname").is_file()
    assert any(c.kind == "mount" and c.path == "/etc/hostname" for c in result.pending)
    assert device.run_step(state, apply=False).changes == []  # nothing left but the mounts (pending offline)


def test_reset_flag_removed_on_a_running_device_wipes_nothing(device, monkeypatch) -> None:
    """The overlay's bind mounts are up (a running device): a removed flag asks for a reset at the
    next boot, reported as a typed entry (Describe() shows it), and nothing is wiped now."""
    device.write_config({"uuid": UUID})
    device.run_step(state)
    kept = Path(device.layout.state) / "root-overlay/etc/NetworkManager/system-connections/made-with-nmcli"
    kept.write_text("[connection]\n")
    (Path(device.layout.state) / "remove_me_to_reset").unlink()
    monkeypatch.setattr(type(device.layout), "is_live", property(lambda layout: True))
    monkeypatch.setattr(state, "mounted_targets", lambda: {str(t) for _, t in state.bind_mounts(device.layout)})
    result = device.run_step(state, apply=False)
    assert kept.exists() and not any(change.kind == "wipe" for change in result.changes)
    assert result.as_dict()["report"] == [
        {
            "name": "/mnt/state/remove_me_to_reset",
            "status": "missing",
            "reason": "the overlay is wiped at the next boot",
        }
    ]


def test_copied_ca_certificates_are_durable_before_they_are_renamed_into_place(device, monkeypatch) -> None:
    """A first boot copies the image's /etc/ssl/certs onto the state partition: every copied file's
    data and every directory are fsynced while the copy is still aside, so a power cut after the
    rename cannot leave empty certificates that the next boot takes as done."""
    certs = Path(device.layout.path("/etc/ssl/certs"))
    (certs / "ca-certificates.crt").write_text("bundle")
    (certs / "local").mkdir()
    (certs / "local" / "extra.pem").write_text("extra")
    (certs / "0a1b2c3d.0").symlink_to("ca-certificates.crt")
    synced: list[str] = []
    real_fsync = state.fsutil.os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(state.fsutil.os, "fsync", recording_fsync)
    device.write_config({"uuid": UUID})
    device.run_step(state)
    source = Path(device.layout.state) / "root-overlay/etc/ssl/certs"
    assert (source / "ca-certificates.crt").read_text() == "bundle" and (source / "0a1b2c3d.0").is_symlink()
    assert (source / "local" / "extra.pem").read_text() == "extra"
    staging = state.fsutil.temp_path(str(source))
    for name in ("ca-certificates.crt", "local/extra.pem", "local", ""):
        assert os.path.join(staging, name).rstrip("/") in synced, (name, synced)
    assert synced.index(staging) < synced.index(str(source.parent))  # then the rename
    assert stat.S_IMODE(source.stat().st_mode) == stat.S_IMODE(certs.stat().st_mode)
