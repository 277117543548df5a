"""The boot stages (hostd.prepare): the bind sources before the mounts, the network's inputs before
the network; written by the steps' own plans, from the generation the daemon applies at boot."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hostd import config as cfg
from hostd import engine, generations, prepare
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, state
from hostd.transaction import TrialRecord

from .conftest import ED25519_KEY, UUID, WIFI, DeviceRoot

FULL_CONFIG = {
    "uuid": UUID,
    "hostname": "early",
    "dnsServers": "10.0.0.53",
    "ntpServers": "ntp.example",
    "country": "GB",
    "persistentLogging": True,
    "developmentMode": True,
    "os": {
        "sshKeys": [ED25519_KEY],
        "udevRules": {"99-x": 'ACTION=="add", SUBSYSTEM=="net", RUN+="/bin/true"\n'},
        "network": {"connectivity": {"uri": "http://example.com/check"}, "wifi": {"randomMacAddressScan": True}},
    },
}


def files(root: Path) -> dict[str, tuple[int, bytes]]:
    """(inode, content) of every regular file under root."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found["/" + str(path.relative_to(root))] = (path.stat().st_ino, path.read_bytes())
    return found


def written(before: dict[str, tuple[int, bytes]], after: dict[str, tuple[int, bytes]]) -> set[str]:
    return {path for path, entry in after.items() if before.get(path) != entry}


def prepared_device(device: DeviceRoot) -> DeviceRoot:
    device.write_config(FULL_CONFIG)
    device.boot_profile("home.nmconnection", WIFI)
    dispatcher = device.layout.boot_dispatcher / "50-hook"
    dispatcher.parent.mkdir(parents=True)
    dispatcher.write_text("#!/bin/sh\n")
    assert prepare.run("bind-sources", device.root) == 0
    return device


def test_network_inputs_writes_exactly_the_network_inputs(device: DeviceRoot) -> None:
    """Exactly the files NetworkManager, dnsmasq and chrony read at start, the hostname and the
    regulatory domain: not the journal, SSH keys, development mode or udev rules (the daemon's)."""
    device = prepared_device(device)
    layout = device.layout
    before = files(device.root)
    assert prepare.run("network-inputs", device.root) == 0
    state_dir = layout.hostd_state
    expected = {
        layout.etc_hostname,
        layout.nm_connections / "home.nmconnection",
        state_dir / "imported-connections.json",
        layout.nm_dispatcher / "50-hook",
        state_dir / "imported-dispatcher.json",
        layout.dnsmasq_servers,
        layout.saved_dnsmasq_servers,
        layout.chrony_sources,
        layout.nm_dropin,
        layout.modprobe_dropin,
        layout.network_inputs_generation,
    }
    assert written(before, files(device.root)) == {layout.device_path(path) for path in expected}


def test_its_unit_waits_for_every_mount_it_writes_through(device: DeviceRoot) -> None:
    """Every file the stage writes is on tmpfs (/run) or under a path its unit's
    RequiresMountsFor= names: the bind mounts are there before it writes, even when
    local-fs.target was reached before their mount jobs (a stage started on a running device)."""
    unit = (Path(__file__).parents[2] / "units/hostd-network-inputs.service").read_text()
    mounts = [word for line in unit.splitlines() if line.startswith("RequiresMountsFor=") for word in line[18:].split()]
    device = prepared_device(device)
    before = files(device.root)
    assert prepare.run("network-inputs", device.root) == 0
    for path in written(before, files(device.root)):
        assert path.startswith("/run/") or any(path == m or path.startswith(m + "/") for m in mounts), path


def test_the_daemon_finds_the_network_inputs_converged(device: DeviceRoot) -> None:
    """One code path: after the stage, a full apply (the daemon's boot) rewrites none of its files."""
    device = prepared_device(device)
    assert prepare.run("network-inputs", device.root) == 0
    after_stage = files(device.root)
    results = engine.run(device.context(), ALL_STEPS, apply=True)
    network = {step.NAME for step in prepare.STAGES["network-inputs"]}
    for result in results:
        if result.name in network:
            assert not result.changes, (result.name, result.changes)
    rewritten = {path for path in written(after_stage, files(device.root)) if path in after_stage}
    assert not rewritten


def test_network_inputs_on_an_unchanged_boot_write_nothing_on_flash(device: DeviceRoot) -> None:
    """Only /run (tmpfs, empty at each boot) is written: here, the marker of the generation."""
    device = prepared_device(device)
    engine.run(device.context(), ALL_STEPS, apply=True)
    before = files(device.root)
    assert prepare.run("network-inputs", device.root) == 0
    assert written(before, files(device.root)) == {device.layout.device_path(device.layout.network_inputs_generation)}


def test_the_stage_records_the_generation_it_wrote(device: DeviceRoot) -> None:
    """The daemon's first reconcile reads it: a change on trial at boot is in place already."""
    device = prepared_device(device)
    assert prepare.run("network-inputs", device.root) == 0
    candidate = generations.read_inputs(device.layout, device.layout.config_json.read_bytes()).id
    assert device.layout.network_inputs_generation.read_text() == f"{candidate}\n"
    store = generations.GenerationStore(device.layout)
    good = saved_generation(device, good=True)
    device.write_config({"uuid": UUID, "hostname": "rejected"})
    store.reject(saved_generation(device, good=False), "probe failed", [])
    assert prepare.run("network-inputs", device.root) == 0
    assert device.layout.network_inputs_generation.read_text() == f"{good}\n"


def test_a_generated_uuid_is_written_back_once_and_names_the_host(device: DeviceRoot) -> None:
    device.write_config({"dnsServers": "10.0.0.53"})
    prepare.run("bind-sources", device.root)
    assert prepare.run("network-inputs", device.root) == 0
    uuid = json.loads(device.layout.config_json.read_text())["uuid"]
    assert device.layout.etc_hostname.read_text() == uuid[:7] + "\n"
    assert cfg.load(device.layout).config.uuid == uuid  # the daemon reads the same uuid


def test_bind_sources_first_boot_and_reset(device: DeviceRoot) -> None:
    """No flag: the overlay is wiped, every source made like its target, the flag recreated;
    config.json is not read (none here), nothing outside the partitions is written."""
    leftover = device.layout.state / "root-overlay/etc/stale"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("old")
    before = files(device.root)
    assert prepare.run("bind-sources", device.root) == 0
    assert not leftover.exists()
    for partition in (device.layout.state, device.layout.data):
        assert (partition / state.RESET_FLAG).is_file()
    for source, target in state.bind_mounts(device.layout):
        assert source.is_dir() == target.is_dir() and source.exists(), source
    assert all(path.startswith(("/mnt/state/", "/mnt/data/")) for path in written(before, files(device.root)))
    kept = device.layout.state / "root-overlay/etc/kept"
    kept.write_text("new")
    assert prepare.run("bind-sources", device.root) == 0  # the flag is there: no reset
    assert kept.exists()


# -- which generation the stage writes: the one the daemon's first reconcile applies ------------


def saved_generation(device: DeviceRoot, *, good: bool) -> str:
    store = generations.GenerationStore(device.layout)
    generation = store.save(generations.read_inputs(device.layout, device.layout.config_json.read_bytes()))
    if good:
        store.promote(generation)
    return generation


def test_boot_source_is_config_json_as_read(device: DeviceRoot) -> None:
    device.write_config({"uuid": UUID, "hostname": "now"})
    source = prepare.boot_source(device.layout)
    assert source is not None and source.layout == device.layout and source.config.hostname == "now"


def test_boot_source_is_the_good_generation_when_config_json_is_rejected(device: DeviceRoot) -> None:
    device.write_config({"uuid": UUID, "hostname": "good"})
    good = saved_generation(device, good=True)
    device.write_config({"uuid": UUID, "hostname": "bad"})
    bad = saved_generation(device, good=False)
    generations.GenerationStore(device.layout).reject(bad, "probe failed", [])
    source = prepare.boot_source(device.layout)
    assert source is not None and source.config.hostname == "good"
    assert source.layout == generations.GenerationStore(device.layout).layout_of(good)


def test_boot_source_is_the_good_generation_after_an_unconfirmed_try(device: DeviceRoot) -> None:
    device.write_config({"uuid": UUID, "hostname": "good"})
    good = saved_generation(device, good=True)
    device.write_config({"uuid": UUID, "hostname": "tried"})
    tried = saved_generation(device, good=False)
    trial = device.layout.trial_record
    TrialRecord(tried, "probe", good, 1.0).write(trial)
    assert prepare.boot_source(device.layout).config.hostname == "tried"  # judged afresh by the daemon
    TrialRecord(tried, "try", good, 1.0).write(trial)
    assert prepare.boot_source(device.layout).config.hostname == "good"  # rolled back by the daemon


def test_boot_source_when_config_json_is_unusable(device: DeviceRoot) -> None:
    device.write_config(b"{not json")
    assert prepare.boot_source(device.layout).config == cfg.Config()  # nothing was ever good: defaults
    device.write_config({"uuid": UUID, "hostname": "good"})
    saved_generation(device, good=True)
    device.write_config(b"{not json")
    assert prepare.boot_source(device.layout).config.hostname == "good"


def test_boot_source_rejected_and_nothing_good_writes_nothing(device: DeviceRoot) -> None:
    device.write_config({"uuid": UUID, "hostname": "bad", "dnsServers": "10.0.0.53"})
    bad = saved_generation(device, good=False)
    generations.GenerationStore(device.layout).reject(bad, "probe failed", [])
    assert prepare.boot_source(device.layout) is None
    prepare.run("bind-sources", device.root)
    assert prepare.run("network-inputs", device.root) == 0
    assert not device.layout.dnsmasq_servers.exists()


def test_unknown_stage() -> None:
    assert prepare.main("nope") == 2


def test_stages_import_neither_asyncio_nor_dbus() -> None:
    """The network waits for this process: it loads no event loop and no D-Bus library."""
    import subprocess
    import sys

    code = (
        "import sys; import hostd.prepare; "
        "print(sorted(m for m in ('asyncio', 'dbus_fast', 'argparse', 'ssl') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_prepare_runs_on_a_layout_root() -> None:
    assert Layout(Path("/")).is_live  # the units run it on "/" (hostd --prepare STAGE)
    assert set(prepare.STAGES) == {"bind-sources", "network-inputs"}
    assert {step.NAME for step in prepare.STAGES["network-inputs"]} == prepare.NETWORK_INPUT_STEPS
