"""The generation store: power-safe, bounded, restorable through the ordinary steps."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hostd import config as cfg
from hostd import engine, generations
from hostd.steps.base import Context

from .conftest import UUID, WIFI, WIRED


def inputs_of(device) -> generations.Inputs:
    return generations.read_inputs(device.layout, Path(device.layout.config_json).read_bytes())


def test_id_follows_config_and_profiles(device) -> None:
    device.write_config({"uuid": UUID})
    device.boot_profile("home", WIFI)
    first = inputs_of(device)
    assert first.id == inputs_of(device).id
    device.boot_profile("home", WIRED)
    assert inputs_of(device).id != first.id
    assert inputs_of(device).files_differ(first)
    device.write_config({"uuid": UUID, "hostname": "x"})
    assert inputs_of(device).id != first.id


def test_save_is_idempotent_and_restorable(device) -> None:
    device.write_config({"uuid": UUID, "hostname": "saved"})
    device.boot_profile("home", WIFI)
    store = generations.GenerationStore(device.layout)
    generation = store.save(inputs_of(device))
    before = device.snapshot()
    assert store.save(inputs_of(device)) == generation
    assert device.snapshot() == before  # nothing written the second time
    assert store.load(generation) == inputs_of(device)
    assert not list(Path(store.directory).glob(".*"))  # no staging left behind

    # the boot partition moves on; restoring the generation runs the steps on the saved inputs
    device.write_config({"uuid": UUID, "hostname": "moved-on"})
    (Path(device.layout.boot_connections) / "home").unlink()
    layout = store.layout_of(generation)
    loaded = cfg.load(layout)
    engine.run(Context(loaded.config, layout), apply=True)
    assert Path(device.layout.etc_hostname).read_text() == "saved\n"
    assert (Path(device.layout.nm_connections) / "home").read_text() == WIFI
    assert json.loads(Path(device.layout.config_json).read_text())["hostname"] == "moved-on"  # never rewritten


def test_store_is_bounded_and_keeps_the_good_one(device) -> None:
    store = generations.GenerationStore(device.layout)
    device.write_config({"uuid": UUID, "hostname": "good"})
    good = store.save(inputs_of(device))
    store.promote(good)
    for index in range(10):
        device.write_config({"uuid": UUID, "hostname": f"n{index}"})
        store.save(inputs_of(device))
    kept = os.listdir(store.directory)
    assert len(kept) <= generations.KEEP_GENERATIONS + 1 and good in kept
    assert store.good() == good
    assert not store.promote(good)  # unchanged: nothing written


def test_rejections_are_remembered_and_bounded(device) -> None:
    store = generations.GenerationStore(device.layout)
    for index in range(10):
        store.reject(f"{index:016x}", "probe failed", ["x"])
    rejected = store.rejected()
    assert len(rejected) < generations.KEEP_GENERATIONS + 1
    assert rejected[f"{9:016x}"]["reason"] == "probe failed"


def test_corrupt_state_files_are_ignored(device) -> None:
    store = generations.GenerationStore(device.layout)
    Path(device.layout.hostd_state).mkdir(parents=True)
    (Path(device.layout.hostd_state) / "rejected-generations.json").write_text("{not json")
    (Path(device.layout.hostd_state) / "good-generation").write_text("does-not-exist\n")
    assert store.rejected() == {}
    assert store.good() is None


def test_a_profile_name_that_is_not_utf8_is_kept(device) -> None:
    """Names are bytes on Linux: a boot file named with a stray byte has an id and is saved."""
    device.write_config({"uuid": UUID})
    with open(os.fsencode(device.layout.boot_connections) + b"/caf\xe9", "wb") as file:
        file.write(WIRED.encode())
    store = generations.GenerationStore(device.layout)
    generation = store.save(inputs_of(device))
    assert store.load(generation) == inputs_of(device)


def test_generations_are_root_only(device) -> None:
    """config.json (apiKey) and profiles (PSKs) are kept in a 0700 directory, files 0600, also when an
    older hostd left the directory 0755."""
    device.write_config({"uuid": UUID, "apiKey": "secret"})
    device.boot_profile("home", WIFI)
    store = generations.GenerationStore(device.layout)
    os.makedirs(store.directory, mode=0o755)
    os.chmod(store.directory, 0o755)
    generation = store.save(inputs_of(device))
    directory, saved = Path(store.directory), Path(store.path(generation))
    modes = {path.relative_to(directory): path.stat().st_mode & 0o777 for path in directory.rglob("*")}
    assert directory.stat().st_mode & 0o777 == 0o700
    assert modes[saved.relative_to(directory)] == 0o700
    assert {mode for path, mode in modes.items() if saved.joinpath(path.name).is_file()} <= {0o600}
    assert all(mode in (0o700, 0o600) for mode in modes.values()), modes


def test_a_dropped_profile_leaves_no_generation_once_its_removal_is_good(device) -> None:
    """The PSK of a profile removed from the boot partition (or changed there) is gone from every
    generation as soon as the generation without it is good; until then the good one keeps it."""
    store = generations.GenerationStore(device.layout)
    device.write_config({"uuid": UUID})
    device.boot_profile("home", WIFI)
    device.boot_profile("wired", WIRED)
    with_wifi = store.save(inputs_of(device))
    store.promote(with_wifi)
    (Path(device.layout.boot_connections) / "home").unlink()
    without = store.save(inputs_of(device))
    assert os.path.isdir(store.path(with_wifi))  # on trial: the good one still holds it
    store.promote(without)
    assert not os.path.exists(store.path(with_wifi))
    assert os.path.isdir(store.path(without))
    assert store.load(without).files == {"system-connections/wired": WIRED.encode()}
    assert not any(WIFI.encode() in path.read_bytes() for path in Path(store.directory).rglob("*") if path.is_file())
