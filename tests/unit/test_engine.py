"""The engine and every step on a temporary device root: happy path, idempotence, bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hostd import config as cfg
from hostd import engine, fsutil, generations
from hostd.steps import ALL_STEPS, STEPS_BY_NAME
from hostd.steps.base import Context, Facts

from .conftest import ED25519_KEY, UUID, WIFI, WIRED


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
    assert Path(layout.etc_hostname).read_text() == "kitchen\n"
    assert Path(layout.dnsmasq_servers).read_text() == "server=1.1.1.1\nserver=9.9.9.9\n"
    assert Path(layout.chrony_sources).read_text() == "pool time.example.com iburst\npool 10.0.0.1 iburst\n"
    journald = Path(layout.journald_dropin).read_text()
    assert "Storage=persistent" in journald and "SystemMaxUse=32M" in journald and "RuntimeMaxUse=8M" in journald
    assert Path(layout.authorized_keys).read_text() == ED25519_KEY + "\n"
    assert stat.S_IMODE(Path(layout.authorized_keys).stat().st_mode) == 0o600
    # keys given: development mode requires them too (balenaOS's flag file)
    assert Path(layout.devmode_env).read_text() == (
        "SSHD_OPTS='-f /etc/ssh/sshd_config_development -o PasswordAuthentication=no'\n"
        "BALENA_DEVELOPMENT_ARGS='-H tcp://0.0.0.0:2375'\n"
    )
    nm = Path(layout.nm_dropin).read_text()
    assert "uri=https://c.example.com/check" in nm and "interval=600" in nm and "wifi.scan-rand-mac-address=no" in nm
    assert (Path(layout.udev_rules) / "99-test.rules").read_text().startswith('ACTION=="add"')
    assert Path(layout.modprobe_dropin).read_text() == "options cfg80211 ieee80211_regdom=GB\n"
    profile = Path(layout.nm_connections) / "home"
    assert profile.read_text() == WIFI and stat.S_IMODE(profile.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (profile.stat().st_uid, profile.stat().st_gid) == (0, 0)
    assert good_config(device) == Path(layout.config_json).read_bytes()
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
    assert Path(layout.etc_hostname).read_text() == UUID[:7] + "\n"
    assert Path(layout.dnsmasq_servers).read_text() == "server=8.8.8.8\n"
    assert not Path(layout.chrony_sources).exists()
    assert not Path(layout.journald_dropin).exists()  # the shipped defaults say it: journald is left alone
    assert not Path(layout.authorized_keys).exists()
    assert not Path(layout.nm_dropin).exists()
    assert not Path(layout.modprobe_dropin).exists()
    assert not Path(layout.devmode_env).exists()  # production: no development flag


def test_turning_features_off_removes_their_files(device) -> None:
    device.write_config(full_config())
    apply(device)
    device.write_config({"uuid": UUID})
    results = apply(device)
    layout = device.layout
    assert not Path(layout.authorized_keys).exists()
    assert not Path(layout.chrony_sources).exists()
    assert not Path(layout.nm_dropin).exists()
    assert not (Path(layout.udev_rules) / "99-test.rules").exists()
    assert not Path(layout.modprobe_dropin).exists()
    assert not Path(layout.journald_dropin).exists()
    assert {c.kind for c in results["ssh"].changes} == {"remove"}


def test_missing_uuid_is_written_back_preserving_other_keys(device) -> None:
    original = '{\n  "apiKey": "k",\n  "applicationId": 5,\n  "hostname": "dev"\n}\n'
    device.write_config(original)
    apply(device)
    written = Path(device.layout.config_json).read_text()
    document = json.loads(written)
    assert len(document["uuid"]) == 32
    assert written == original.replace("{\n", '{\n  "uuid": "' + document["uuid"] + '",\n', 1)
    assert good_config(device) == written.encode()
    before = device.snapshot()
    apply(device)
    assert device.snapshot() == before


def good_config(device) -> bytes | None:
    kept = generations.GenerationStore(device.layout).good_config()
    return kept[0] if kept else None


def test_a_bad_value_holds_back_its_key_alone_and_leaves_the_file(device) -> None:
    device.write_config({"uuid": UUID, "hostname": "good"})
    apply(device)
    device.write_config('{"uuid": "' + UUID + '", "hostname": "bäd host", "ntpServers": "a.example.com"}')
    loaded = cfg.load(device.layout)
    assert loaded.source == "config.json" and loaded.error is None
    [held] = loaded.held_back
    assert (held.pointer, held.fallback) == ("/hostname", "last-known-good") and "'bäd host'" in held.message
    results = apply(device)
    assert Path(device.layout.etc_hostname).read_text() == "good\n"
    assert Path(device.layout.chrony_sources).read_text() == "pool a.example.com iburst\n"  # the other keys apply
    assert all(r.status != "failed" for r in results.values())
    assert "bäd host" in Path(device.layout.config_json).read_text()

    # Kept as good with hostname held back: the next bad value still falls back to "good", not the default.
    device.write_config('{"uuid": "' + UUID + '", "hostname": "wörse"}')
    apply(device)
    assert cfg.load(device.layout).config.hostname == "good"
    assert Path(device.layout.etc_hostname).read_text() == "good\n"


def test_unreadable_config_uses_last_known_good_and_leaves_file(device) -> None:
    device.write_config({"uuid": UUID, "hostname": "good"})
    apply(device)
    device.write_config('{"uuid": "' + UUID + '", "hostname": ')
    loaded = cfg.load(device.layout)
    assert loaded.source == "last-known-good" and "not valid JSON" in str(loaded.error)
    results = apply(device)
    assert Path(device.layout.etc_hostname).read_text() == "good\n"
    assert all(r.status == "ok" for r in results.values())
    assert Path(device.layout.config_json).read_text().endswith('"hostname": ')


def test_failing_step_is_isolated(device, monkeypatch) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "a.example.com"})

    def explode(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(STEPS_BY_NAME["dns"], "plan", explode)
    results = apply(device)
    assert results["dns"].status == "failed" and "disk on fire" in results["dns"].message
    assert results["ntp"].status == "changed"
    assert Path(device.layout.chrony_sources).exists()


def test_steps_for_keys() -> None:
    names = [step.NAME for step in engine.steps_for_keys({"dnsServers"})]
    assert "dns" in names and "ntp" not in names and "hostname" not in names
    assert {"state", "connections", "dispatcher"} <= set(names)  # file-driven steps always run
    assert {s.NAME for s in engine.steps_for_keys(cfg.Config().values_by_key())} == {s.NAME for s in ALL_STEPS}


def test_temp_files_a_crash_left_are_removed_where_the_api_writes_too(device) -> None:
    device.write_config({"uuid": UUID})
    apply(device)
    left = [
        Path(fsutil.temp_path(os.path.join(d, "x")))
        for d in (device.layout.boot_connections, device.layout.nm_connections)
    ]
    for temp in left:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"torn")
    engine.remove_stale_temp_files(device.layout)
    assert [temp for temp in left if temp.exists()] == []
