"""The engine and every step on a temporary device root: happy path, idempotence, bad input."""

from __future__ import annotations

import json
import os
import stat

import pytest

from hostd import config as cfg
from hostd import engine
from hostd.steps import ALL_STEPS, STEPS_BY_NAME
from hostd.steps.base import Context, Facts

from .conftest import ED25519_KEY, UUID

WIFI = (
    "[connection]\nid=home\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a001\ntype=wifi\n[wifi]\nssid=home\n"
    "[wifi-security]\nkey-mgmt=wpa-psk\npsk=SuperSecret123\n"
)
WIRED = "[connection]\nid=wired\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a002\ntype=ethernet\n"


def apply(device, facts: Facts | None = None) -> dict[str, engine.StepResult]:
    loaded = cfg.load(device.layout)
    results = engine.apply_loaded(loaded, Context(loaded.config, device.layout, facts or Facts()))
    return {result.name: result for result in results}


def plan(device) -> dict[str, engine.StepResult]:
    loaded = cfg.load(device.layout)
    return {r.name: r for r in engine.run(Context(loaded.config, device.layout), apply=False)}


def full_config() -> dict:
    return {
        "uuid": UUID,
        "apiKey": "secret-api-key",
        "hostname": "kitchen",
        "dnsServers": "1.1.1.1 9.9.9.9",
        "ntpServers": "time.example.com 10.0.0.1",
        "persistentLogging": True,
        "developmentMode": True,
        "country": "gb",
        "os": {
            "sshKeys": [ED25519_KEY],
            "network": {
                "connectivity": {"uri": "https://c.example.com/check", "interval": 600},
                "wifi": {"randomMacAddressScan": False},
            },
            "udevRules": {"99-test": 'ACTION=="add", SUBSYSTEM=="usb", RUN+="/bin/true"'},
        },
    }


def test_full_apply_writes_every_target(device) -> None:
    device.write_config(full_config())
    device.boot_profile("home", WIFI)
    results = apply(device)
    assert all(r.status != "failed" for r in results.values()), {n: r.problems for n, r in results.items()}
    layout = device.layout
    assert layout.etc_hostname.read_text() == "kitchen\n"
    assert layout.dnsmasq_servers.read_text() == "server=1.1.1.1\nserver=9.9.9.9\n"
    assert layout.chrony_sources.read_text() == "pool time.example.com iburst\npool 10.0.0.1 iburst\n"
    journald = layout.journald_dropin.read_text()
    assert "Storage=persistent" in journald and "SystemMaxUse=32M" in journald and "RuntimeMaxUse=8M" in journald
    assert layout.authorized_keys.read_text() == ED25519_KEY + "\n"
    assert stat.S_IMODE(layout.authorized_keys.stat().st_mode) == 0o600
    # keys given: development mode requires them too (balenaOS's flag file)
    assert layout.devmode_env.read_text() == (
        "SSHD_OPTS='-f /etc/ssh/sshd_config_development -o PasswordAuthentication=no'\n"
        "BALENA_DEVELOPMENT_ARGS='-H tcp://0.0.0.0:2375'\n"
    )
    nm = layout.nm_dropin.read_text()
    assert "uri=https://c.example.com/check" in nm and "interval=600" in nm and "wifi.scan-rand-mac-address=no" in nm
    assert (layout.udev_rules / "99-test.rules").read_text().startswith('ACTION=="add"')
    assert layout.modprobe_dropin.read_text() == "options cfg80211 ieee80211_regdom=GB\n"
    profile = layout.nm_connections / "home"
    assert profile.read_text() == WIFI and stat.S_IMODE(profile.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (profile.stat().st_uid, profile.stat().st_gid) == (0, 0)
    assert layout.last_known_good.read_bytes() == layout.config_json.read_bytes()
    # bind mounts are planned, not made, offline
    assert {c.path for c in results["state"].pending} >= {"/etc/hostname", "/var/log/journal"}


def test_second_apply_writes_nothing(device) -> None:
    device.write_config(full_config())
    device.boot_profile("home", WIFI)
    device.boot_profile("wired", WIRED)
    apply(device)
    before = device.snapshot()
    results = apply(device)
    assert device.snapshot() == before  # same inode, mtime and mode for every file
    assert all(not r.changes for r in results.values())
    assert all(r.status == "ok" for r in results.values())
    assert all(not r.changes for r in plan(device).values())


def test_defaults_on_an_empty_config(device) -> None:
    device.write_config({"uuid": UUID})
    apply(device)
    layout = device.layout
    assert layout.etc_hostname.read_text() == UUID[:7] + "\n"
    assert layout.dnsmasq_servers.read_text() == "server=8.8.8.8\n"
    assert not layout.chrony_sources.exists()
    assert not layout.journald_dropin.exists()  # the shipped defaults say it: journald is left alone
    assert not layout.authorized_keys.exists()
    assert not layout.nm_dropin.exists()
    assert not layout.modprobe_dropin.exists()
    assert not layout.devmode_env.exists()  # production: no development flag


def test_turning_features_off_removes_their_files(device) -> None:
    device.write_config(full_config())
    apply(device)
    device.write_config({"uuid": UUID})
    results = apply(device)
    layout = device.layout
    assert not layout.authorized_keys.exists()
    assert not layout.chrony_sources.exists()
    assert not layout.nm_dropin.exists()
    assert not (layout.udev_rules / "99-test.rules").exists()
    assert not layout.modprobe_dropin.exists()
    assert not layout.journald_dropin.exists()
    assert {c.kind for c in results["ssh"].changes} == {"remove"}


def test_journald_dropin_only_when_config_differs_from_the_shipped_defaults(device) -> None:
    device.write_config({"uuid": UUID, "os": {"journal": {"runtimeMaxUse": "16M"}}})
    assert [c.kind for c in apply(device)["logging"].changes] == ["write"]
    assert "RuntimeMaxUse=16M" in device.layout.journald_dropin.read_text()
    device.write_config({"uuid": UUID, "os": {"journal": {"systemMaxUse": "64M"}}})  # unused while volatile
    assert [c.kind for c in apply(device)["logging"].changes] == ["remove"]
    device.layout.journald_defaults.unlink()  # an image without them: journald's own defaults are not ours
    apply(device)
    assert "Storage=volatile" in device.layout.journald_dropin.read_text()


def test_dns_modes_and_network_servers(device) -> None:
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1"})
    apply(device, Facts(network_dns_servers=("192.168.1.1",)))
    assert device.layout.dnsmasq_servers.read_text() == "server=192.168.1.1\nserver=1.1.1.1\n"
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1", "os": {"dns": {"mode": "exclusive"}}})
    apply(device, Facts(network_dns_servers=("192.168.1.1",)))
    assert device.layout.dnsmasq_servers.read_text() == "server=1.1.1.1\n"
    device.write_config({"uuid": UUID, "dnsServers": "null"})
    apply(device)
    assert device.layout.dnsmasq_servers.read_text() == ""


def test_missing_uuid_is_written_back_preserving_other_keys(device) -> None:
    original = '{\n  "apiKey": "k",\n  "applicationId": 5,\n  "hostname": "dev"\n}\n'
    device.write_config(original)
    apply(device)
    written = device.layout.config_json.read_text()
    document = json.loads(written)
    assert len(document["uuid"]) == 32
    assert written == original.replace("{\n", '{\n  "uuid": "' + document["uuid"] + '",\n', 1)
    assert device.layout.last_known_good.read_text() == written
    before = device.snapshot()
    apply(device)
    assert device.snapshot() == before


def test_broken_config_uses_last_known_good_and_leaves_file(device) -> None:
    device.write_config({"uuid": UUID, "hostname": "good"})
    apply(device)
    device.write_config('{"uuid": "' + UUID + '", "hostname": "bad host"}')
    loaded = cfg.load(device.layout)
    assert loaded.source == "last-known-good" and "'bad host'" in str(loaded.error)
    results = apply(device)
    assert device.layout.etc_hostname.read_text() == "good\n"
    assert all(r.status == "ok" for r in results.values())
    assert "bad host" in device.layout.config_json.read_text()


def test_failing_step_is_isolated(device, monkeypatch) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "a.example.com"})

    def explode(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(STEPS_BY_NAME["dns"], "plan", explode)
    results = apply(device)
    assert results["dns"].status == "failed" and "disk on fire" in results["dns"].message
    assert results["ntp"].status == "changed"
    assert device.layout.chrony_sources.exists()


def test_reset_flag_wipes_overlay_once(device) -> None:
    device.write_config({"uuid": UUID})
    leftover = device.layout.state / "root-overlay" / "etc" / "stale"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("old")
    apply(device)
    assert not leftover.exists()
    assert (device.layout.state / "remove_me_to_reset").exists()
    assert (device.layout.data / "remove_me_to_reset").exists()
    assert (device.layout.state / "root-overlay/etc/NetworkManager/system-connections").is_dir()
    assert (device.layout.state / "root-overlay/etc/hostname").is_file()
    assert (device.layout.data / "root-overlay/var/log/journal").is_dir()
    kept = device.layout.state / "root-overlay" / "etc" / "kept"
    kept.write_text("new")
    apply(device)
    assert kept.exists()


def test_steps_for_keys() -> None:
    names = [step.NAME for step in engine.steps_for_keys({"dnsServers"})]
    assert "dns" in names and "ntp" not in names and "hostname" not in names
    assert {"state", "connections", "dispatcher"} <= set(names)  # file-driven steps always run
    assert {s.NAME for s in engine.steps_for_keys(cfg.Config().values_by_key())} == {s.NAME for s in ALL_STEPS}


def test_every_step_declares_name_and_keys() -> None:
    known = set(cfg.Config().values_by_key())
    for step in ALL_STEPS:
        assert step.NAME and isinstance(step.KEYS, frozenset)
        assert known >= step.KEYS, step.NAME


@pytest.mark.parametrize("mode", [0o644, 0o666])
def test_wrong_mode_is_fixed_without_rewrite(device, mode) -> None:
    device.write_config({"uuid": UUID, "os": {"sshKeys": [ED25519_KEY]}})
    apply(device)
    keys = device.layout.authorized_keys
    os.chmod(keys, mode)
    inode = keys.stat().st_ino
    results = apply(device)
    assert [c.kind for c in results["ssh"].changes] == ["chmod"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and keys.stat().st_ino == inode


def test_no_name_at_all_fails_the_hostname_step(device) -> None:
    """First boot with an unusable config.json and no last-known-good: no uuid, no hostname; the
    step says it failed instead of "ok" with no name set."""
    device.write_config('{"uuid": ')
    loaded = cfg.load(device.layout)
    assert loaded.source == "defaults"
    result = apply(device)["hostname"]
    assert result.status == "failed" and result.problems == ["no hostname and no uuid to derive one from"]


def test_bind_target_the_image_lacks_converges_in_one_pass(device) -> None:
    """No /etc/hostname in the root: the state step makes the mount point, its source and the
    mount in one pass, so the hostname step writes through the mount (live) instead of onto the
    root, where the mount would hide it next time."""
    device.layout.etc_hostname.unlink()
    device.write_config({"uuid": UUID})
    state_step = apply(device)["state"]
    assert not any("bind target" in problem for problem in state_step.problems), state_step.problems
    assert stat.S_IMODE(device.layout.etc_hostname.stat().st_mode) == 0o644
    assert (device.layout.state / "root-overlay/etc/hostname").is_file()
    assert any(c.kind == "mount" and c.path == "/etc/hostname" for c in state_step.pending)
    assert plan(device)["state"].changes == []  # nothing left but the mounts (pending offline)
