"""The boot stages (hostd.prepare): the bind sources before the mounts, the network's inputs before
the network; written by the steps' own plans, from the generation the daemon applies at boot."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hostd import config as cfg
from hostd import engine, generations, log, prepare, stamp
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, state
from hostd.steps.base import Context
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
    dispatcher = Path(device.layout.boot_dispatcher) / "50-hook"
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
    state_dir = Path(layout.hostd_state)
    expected = {
        layout.etc_hostname,
        Path(layout.nm_connections) / "home.nmconnection",
        state_dir / "imported-connections.json",
        Path(layout.nm_dispatcher) / "50-hook",
        state_dir / "imported-dispatcher.json",
        layout.dnsmasq_servers,
        layout.saved_dnsmasq_servers,
        layout.chrony_sources,
        layout.nm_dropin,
        layout.modprobe_dropin,
        layout.network_inputs_generation,
        layout.path("/" + stamp.PENDING),  # what the next boot replays, once the daemon keeps it
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
    network = set(prepare.STAGES["network-inputs"])
    for result in results:
        if result.name in network:
            assert not result.changes, (result.name, result.changes)
    rewritten = {path for path in written(after_stage, files(device.root)) if path in after_stage}
    assert not rewritten


def reboot(device: DeviceRoot) -> None:
    """What a reboot leaves: /run (tmpfs) empty."""
    shutil.rmtree(device.root / "run", ignore_errors=True)


def boot(device: DeviceRoot) -> None:
    """The stage, then the daemon's first reconcile: every step applied, the generation kept as
    good, and the stage's stamp kept once ready."""
    assert prepare.run("network-inputs", device.root) == 0
    loaded = cfg.load(device.layout)
    engine.apply_loaded(loaded, Context(loaded.config, device.layout))
    prepare.keep_stamp(device.layout)


def test_network_inputs_on_an_unchanged_boot_write_nothing_on_flash(device: DeviceRoot) -> None:
    """Only /run (tmpfs, empty at each boot) is written, also after the daemon kept the generation
    as good at the boot before."""
    device = prepared_device(device)
    boot(device)
    reboot(device)
    before = files(device.root)
    assert prepare.run("network-inputs", device.root) == 0
    assert all(path.startswith("/run/") for path in written(before, files(device.root)))
    assert Path(device.layout.network_inputs_generation).is_file()


def test_the_stage_records_the_generation_it_wrote(device: DeviceRoot) -> None:
    """The daemon's first reconcile reads it: a change on trial at boot is in place already."""
    device = prepared_device(device)
    assert prepare.run("network-inputs", device.root) == 0
    candidate = generations.read_inputs(device.layout, Path(device.layout.config_json).read_bytes()).id
    assert Path(device.layout.network_inputs_generation).read_text() == f"{candidate}\n"
    store = generations.GenerationStore(device.layout)
    good = saved_generation(device, good=True)
    device.write_config({"uuid": UUID, "hostname": "rejected"})
    store.reject(saved_generation(device, good=False), "probe failed", [])
    assert prepare.run("network-inputs", device.root) == 0
    assert Path(device.layout.network_inputs_generation).read_text() == f"{good}\n"


def test_a_generated_uuid_is_written_back_once_and_names_the_host(device: DeviceRoot) -> None:
    device.write_config({"dnsServers": "10.0.0.53"})
    prepare.run("bind-sources", device.root)
    assert prepare.run("network-inputs", device.root) == 0
    uuid = json.loads(Path(device.layout.config_json).read_text())["uuid"]
    assert Path(device.layout.etc_hostname).read_text() == uuid[:7] + "\n"
    assert cfg.load(device.layout).config.uuid == uuid  # the daemon reads the same uuid


def test_bind_sources_first_boot_and_reset(device: DeviceRoot) -> None:
    """No flag: the overlay is wiped, every source made like its target, the flag recreated;
    config.json is not read (none here), nothing outside the partitions is written."""
    leftover = Path(device.layout.state) / "root-overlay/etc/stale"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("old")
    before = files(device.root)
    assert prepare.run("bind-sources", device.root) == 0
    assert not leftover.exists()
    for partition in (device.layout.state, device.layout.data):
        assert os.path.isfile(os.path.join(partition, state.RESET_FLAG))
    for source, target in state.bind_mounts(device.layout):
        assert os.path.isdir(source) == os.path.isdir(target) and os.path.exists(source), source
    assert all(path.startswith(("/mnt/state/", "/mnt/data/")) for path in written(before, files(device.root)))
    kept = Path(device.layout.state) / "root-overlay/etc/kept"
    kept.write_text("new")
    assert prepare.run("bind-sources", device.root) == 0  # the flag is there: no reset
    assert kept.exists()


# -- which generation the stage writes: the one the daemon's first reconcile applies ------------


def saved_generation(device: DeviceRoot, *, good: bool) -> str:
    store = generations.GenerationStore(device.layout)
    generation = store.save(generations.read_inputs(device.layout, Path(device.layout.config_json).read_bytes()))
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
    trial = Path(device.layout.trial_record)
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
    assert not Path(device.layout.dnsmasq_servers).exists()


def test_unknown_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "_to_stderr", False)  # main() sends this process's log lines to stderr: undone after
    assert prepare.main("nope") == 2


def fresh_python(code: str) -> tuple[set[str], str]:
    """Run ``code`` in a fresh ``python3 -IS``, as the units run hostd: the modules loaded after
    it, and what it wrote on stderr."""
    import subprocess
    import sys

    repo = str(Path(__file__).parents[2])
    program = f"import sys; sys.path.insert(0, {repo!r}); {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True, check=True)
    return set(out.stdout.split()), out.stderr


def modules_after(code: str) -> set[str]:
    return fresh_python(code)[0]


def test_importing_prepare_loads_nothing_else() -> None:
    """The daemon's argument parser reads STAGES; the unit's replay starts here."""
    assert {name for name in modules_after("import hostd.prepare") if name.startswith("hostd")} == {
        "hostd",
        "hostd.prepare",
    }


def test_a_full_run_imports_its_own_steps_and_no_event_loop_or_bus(device: DeviceRoot) -> None:
    """The network waits for this process: no event loop, no D-Bus (no bus adapter, no dbus_fast:
    only the bus errors' and names' plain modules, which the trial record's module names), none
    of the other steps' modules."""
    device = prepared_device(device)
    loaded = modules_after(f"from hostd import prepare; prepare.full_run('network-inputs', {str(device.root)!r})")
    steps = {name.removeprefix("hostd.steps.") for name in loaded if name.startswith("hostd.steps.")}
    assert steps == {"base", "imports", "state", *(name.replace("-", "_") for name in prepare.STAGES["network-inputs"])}
    plain = {"hostd.bus", "hostd.bus.errors", "hostd.bus.names"}
    assert {name for name in loaded if name.startswith("hostd.bus")} <= plain
    assert not loaded & {"asyncio", "dbus_fast", "argparse", "ssl", "socket"}


def test_a_full_run_reports_without_logging_dataclasses_or_typing(device: DeviceRoot) -> None:
    """The network waits for this process: its log lines, in the journal's form, are written without
    the logging module, and the engine's records and types cost no import of dataclasses (with
    inspect), typing or socket."""
    device = prepared_device(device)
    loaded, stderr = fresh_python(
        f"from hostd import log, prepare; log.to_stderr(); prepare.full_run('network-inputs', {str(device.root)!r})"
    )
    assert not loaded & {"logging", "traceback", "dataclasses", "inspect", "typing", "socket"}
    profile = "/etc/NetworkManager/system-connections/home.nmconnection"
    assert f"\n<6>hostd.prepare: connections: write {profile}" in stderr


# What neither stage's full run may load: the network waits for it.  Paths are strings (os.path),
# not pathlib (with fnmatch, urllib.parse, ntpath); the batch's thread-local storage is threading's
# C half; the steps are imported without importlib; the CA certificates are copied by fsutil, not
# shutil (with fnmatch, zlib, bz2, lzma).
NOT_IN_A_STAGE = {
    "pathlib",
    "urllib",
    "urllib.parse",
    "ntpath",
    "threading",
    "importlib",
    "tempfile",
    "fnmatch",
    "shutil",
}


def stage_modules(stage: str, root: Path) -> set[str]:
    """The modules a full run of ``stage`` loads, its log lines written as its unit has them."""
    return modules_after(f"from hostd import log, prepare; log.to_stderr(); prepare.full_run({stage!r}, {str(root)!r})")


def test_a_full_run_of_network_inputs_leaves_out_pathlib_and_the_modules_it_pulls(device: DeviceRoot) -> None:
    device = prepared_device(device)
    loaded = stage_modules("network-inputs", device.root)
    assert not loaded & NOT_IN_A_STAGE


def test_a_full_run_of_bind_sources_leaves_out_pathlib_and_the_modules_it_pulls(device: DeviceRoot) -> None:
    """A first boot (every source made, the image's CA certificates copied), before the mounts and
    the network-inputs stage."""
    Path(device.layout.path("/etc/ssl/certs/ca-certificates.crt")).write_text("bundle")
    assert not os.path.exists(device.layout.path("/mnt/state/remove_me_to_reset"))
    loaded = stage_modules("bind-sources", device.root)
    assert os.path.isfile(device.layout.path("/mnt/state/remove_me_to_reset"))
    assert not loaded & NOT_IN_A_STAGE


def test_a_stage_exits_without_the_interpreters_teardown(device: DeviceRoot) -> None:
    """As its unit runs it (hostd --prepare STAGE): its exit status, and its log lines are out."""
    import subprocess
    import sys

    device = prepared_device(device)
    program = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parents[2])!r}); from hostd import entry, prepare; "
        f"prepare.full_run = lambda stage, root='/': print('ran', stage) or 3; "
        "sys.argv = ['hostd', '--prepare', 'network-inputs']; entry.hostd(); print('not reached')"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (3, "ran network-inputs\n")


def test_prepare_runs_on_a_layout_root() -> None:
    assert Layout(Path("/")).is_live  # the units run it on "/" (hostd --prepare STAGE)
    assert set(prepare.STAGES) == {"bind-sources", "network-inputs"}
    for stage, names in prepare.STAGES.items():  # the registry's running order
        assert [step.NAME for step in ALL_STEPS if step.NAME in names] == list(names)
        assert [step.NAME for step in prepare.stage_steps(stage)] == list(names)


# -- the stamp (hostd.stamp): an unchanged boot replays the last full run --------------------------


def files_but_the_stamp(root: Path) -> dict[str, tuple[int, bytes]]:
    """(mode, content) of every regular file under root, the stamp left out."""
    return {
        path: ((root / path.lstrip("/")).stat().st_mode, content)
        for path, (_, content) in files(root).items()
        if path != "/" + stamp.STAMP
    }


def assert_same_as_a_full_run(device: DeviceRoot, tmp_path: Path) -> bool:
    """The stage on this device leaves exactly what a full run leaves on a copy of it; True when
    it replayed its stamp."""
    copy = tmp_path / "full-run"
    shutil.copytree(device.root, copy, symlinks=True)
    replayed = prepare.replayed("network-inputs", device.root)
    if not replayed:
        assert prepare.full_run("network-inputs", device.root) == 0
    assert prepare.full_run("network-inputs", copy) == 0
    for root in (device.root, copy):  # the daemon, once ready
        prepare.keep_stamp(Layout(root))
    assert files_but_the_stamp(device.root) == files_but_the_stamp(copy)
    return replayed


def booted(device: DeviceRoot) -> DeviceRoot:
    """A device booted once (the stage, then the daemon) and rebooted: a stamp to replay."""
    device = prepared_device(device)
    boot(device)
    reboot(device)
    return device


def test_an_unchanged_boot_replays_what_a_full_run_writes(device: DeviceRoot, tmp_path: Path) -> None:
    device = booted(device)
    assert assert_same_as_a_full_run(device, tmp_path)
    assert Path(device.layout.chrony_sources).read_text() == "pool ntp.example iburst\n"


def test_a_replay_imports_neither_the_engine_nor_logging(device: DeviceRoot) -> None:
    """The network waits for the stage: replaying loads hostd.stamp and the standard library's os
    and hashlib, as the unit runs it (python3 -IS)."""
    device = booted(device)
    loaded = modules_after(
        f"from hostd import prepare; assert prepare.replayed('network-inputs', {str(device.root)!r})"
    )
    assert {name for name in loaded if name.startswith("hostd.")} == {"hostd.prepare", "hostd.stamp"}
    assert not loaded & {"logging", "pathlib", "dataclasses", "typing", "json", "re", "socket", "enum", "asyncio"}


def change_config(device: DeviceRoot, **changes: object) -> None:
    device.write_config({**json.loads(Path(device.layout.config_json).read_bytes()), **changes})


def rollback(device: DeviceRoot) -> None:
    """The daemon's rollback: the good generation's files restored, the candidate rejected;
    config.json is left as it is."""
    store = generations.GenerationStore(device.layout)
    good = store.good()
    assert good is not None
    change_config(device, hostname="tried")
    candidate = saved_generation(device, good=False)
    restored = store.layout_of(good)
    engine.run(Context(cfg.load(restored).config, restored), ALL_STEPS, apply=True)
    store.reject(candidate, "probe failed", [])


def live_apply(device: DeviceRoot) -> None:
    """The daemon (or hostctl through it) applying a new config.json while the device runs."""
    change_config(device, dnsServers="10.9.9.9")
    loaded = cfg.load(device.layout)
    engine.apply_loaded(loaded, Context(loaded.config, device.layout))


def reset(device: DeviceRoot) -> None:
    """remove_me_to_reset removed: the next boot's bind-sources stage wipes the overlay, and the
    bind mounts show the fresh sources (here, with no mounts, copied onto their targets)."""
    (Path(device.layout.state) / state.RESET_FLAG).unlink()
    assert prepare.run("bind-sources", device.root) == 0
    for source, target in state.bind_mounts(device.layout):
        if os.path.isdir(source):
            shutil.rmtree(target)
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)


def profile_edited_on_the_device(device: DeviceRoot) -> None:
    (Path(device.layout.nm_connections) / "home.nmconnection").write_text(WIFI.replace("SuperSecret123", "Other1234"))


def profile_added_by_networkmanager(device: DeviceRoot) -> None:
    (Path(device.layout.nm_connections) / "nmcli.nmconnection").write_text(WIFI.replace("home", "nmcli"))


def boot_profile_added(device: DeviceRoot) -> None:
    device.boot_profile("office.nmconnection", WIFI.replace("home", "office"))


def hostname_file_edited(device: DeviceRoot) -> None:
    Path(device.layout.etc_hostname).write_text("other\n")


def saved_servers_chmodded(device: DeviceRoot) -> None:
    Path(device.layout.saved_dnsmasq_servers).chmod(0o600)


@pytest.mark.parametrize(
    "writer",
    [
        live_apply,
        rollback,
        reset,
        profile_edited_on_the_device,
        profile_added_by_networkmanager,
        boot_profile_added,
        hostname_file_edited,
        saved_servers_chmodded,
    ],
)
def test_whatever_writes_the_network_inputs_later_makes_the_next_boot_run_in_full(
    device: DeviceRoot, tmp_path: Path, writer: object
) -> None:
    """The stamp never claims what is not in place: after any writer of the stage's inputs or
    persistent outputs, the next boot runs in full, and leaves what a full run leaves."""
    device = booted(device)
    writer(device)  # type: ignore[operator]
    reboot(device)
    assert not assert_same_as_a_full_run(device, tmp_path / "1")
    reboot(device)  # and the boot after that one replays the new stamp
    assert assert_same_as_a_full_run(device, tmp_path / "2")


def test_an_unconfirmed_try_boots_the_last_known_good_generation(device: DeviceRoot, tmp_path: Path) -> None:
    device = booted(device)
    store = generations.GenerationStore(device.layout)
    good = store.good()
    change_config(device, hostname="tried")
    tried = saved_generation(device, good=False)
    live = cfg.load(device.layout)
    engine.run(Context(live.config, device.layout), ALL_STEPS, apply=True)  # Try applied it live
    TrialRecord(tried, "try", good or "", 1.0).write(device.layout.trial_record)
    reboot(device)  # inside the confirm window
    assert not assert_same_as_a_full_run(device, tmp_path)
    assert Path(device.layout.etc_hostname).read_text() == "early\n"
    assert Path(device.layout.network_inputs_generation).read_text() == f"{good}\n"


def test_a_held_back_key_ties_the_stamp_to_the_last_known_good_generation(device: DeviceRoot, tmp_path: Path) -> None:
    """A held-back key runs at the good generation's value: a new good generation is a new input."""
    device = booted(device)
    change_config(device, dnsServers="not an address")
    reboot(device)
    assert not assert_same_as_a_full_run(device, tmp_path / "1")
    assert Path(device.layout.saved_dnsmasq_servers).read_text() == "server=10.0.0.53\n"
    store = generations.GenerationStore(device.layout)
    store.promote(store.good() or "", b'{"dnsServers": "10.1.1.1"}\n')  # other values kept as good
    reboot(device)
    assert not assert_same_as_a_full_run(device, tmp_path / "2")


def test_a_new_hostd_runs_in_full(device: DeviceRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = booted(device)
    monkeypatch.setattr(stamp, "_code", lambda: b"another hostd")
    assert not assert_same_as_a_full_run(device, tmp_path)


def test_a_damaged_stamp_runs_in_full(device: DeviceRoot, tmp_path: Path) -> None:
    device = booted(device)
    path = Path(device.layout.path("/" + stamp.STAMP))
    path.write_bytes(path.read_bytes()[:-5])
    assert not assert_same_as_a_full_run(device, tmp_path)


def test_a_failed_step_records_no_stamp(device: DeviceRoot) -> None:
    device = prepared_device(device)
    Path(device.layout.nm_dropin).parent.parent.mkdir(parents=True)
    Path(device.layout.nm_dropin).parent.write_text("a file where a directory should be")
    assert prepare.run("network-inputs", device.root) == 1
    assert not Path(device.layout.path("/" + stamp.PENDING)).exists()
    prepare.keep_stamp(device.layout)
    assert not Path(device.layout.path("/" + stamp.STAMP)).exists()


def test_the_stamp_waits_in_run_for_the_daemon(device: DeviceRoot, tmp_path: Path) -> None:
    """A full run writes its stamp on tmpfs: the network does not wait for an fsync on the state
    partition.  The daemon keeps it once ready; a boot whose daemon never got there (the stamp gone
    with /run) runs in full again, and leaves what a full run leaves."""
    device = prepared_device(device)
    assert prepare.run("network-inputs", device.root) == 0
    pending, kept = Path(device.layout.path("/" + stamp.PENDING)), Path(device.layout.path("/" + stamp.STAMP))
    assert pending.is_file() and not kept.exists()
    reboot(device)  # no daemon at that boot
    assert not assert_same_as_a_full_run(device, tmp_path / "1")
    assert kept.is_file() and not pending.exists()
    content = kept.read_bytes()
    reboot(device)
    assert assert_same_as_a_full_run(device, tmp_path / "2")
    assert kept.read_bytes() == content and not pending.exists()


@pytest.mark.parametrize(
    ("candidate", "rejected", "good", "chosen"),
    [
        ("new", set(), "old", "new"),  # config.json, as read
        ("new", set(), None, "new"),
        ("new", {"new"}, "old", "old"),  # rejected (or a Try cut short): back to the good one
        ("new", {"new"}, None, None),  # rejected, nothing good: nothing applied
        (None, set(), "old", "old"),  # config.json unusable
        (None, set(), None, ""),  # unusable, nothing ever good: the defaults
    ],
)
def test_the_boot_choice(candidate: str | None, rejected: set[str], good: str | None, chosen: str | None) -> None:
    """One function for the stage's choice (boot_source) and the daemon's first reconcile's."""
    assert generations.boot_choice(candidate, rejected, good) == chosen
