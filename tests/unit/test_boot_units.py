"""The boot's units: the state partition's mount units are the state step's list, their sources are
made before them, and the network waits for its inputs only, not for hostd."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from hostd.bus.systemd import unit_name_from_path
from hostd.layout import Layout
from hostd.steps import state, udev

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "units"
sys.path.insert(0, str(REPO / "packaging"))
import bind_units  # noqa: E402

NETWORK = ("NetworkManager.service", "ModemManager.service", "dnsmasq.service", "chrony.service")


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd's lists: repeated keys and space-separated words)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key] += value.split() if key in ("After", "Before", "Wants", "WantedBy") else [value]
    return sections


def install_map() -> dict[str, str]:
    rows = {}
    for line in (REPO / "packaging/install-map").read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            rows[parts[0]] = parts[1]
    return rows


def test_committed_units_are_what_the_packaging_script_writes(tmp_path: Path) -> None:
    """Regenerate with packaging/bind_units.py after changing hostd/steps/state.py."""
    bind_units.main([str(tmp_path)])
    generated = {str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {rel: (UNITS / rel).read_text() for rel in generated if (UNITS / rel).is_file()}
    assert committed == generated
    mounts = {p.name for p in (UNITS / bind_units.MOUNTS_DIR).iterdir()}
    assert mounts == {Path(rel).name for rel in generated if rel.endswith(".mount")}


def test_one_mount_unit_per_bind_path_bound_from_its_source() -> None:
    layout = Layout()
    sources = dict((str(target), str(source)) for source, target in state.bind_mounts(layout))
    shipped = install_map()
    for path in state.STATE_BIND_PATHS + state.DATA_BIND_PATHS:
        name = unit_name_from_path(path)
        mount = unit(f"mounts/{name}")
        assert mount["Mount"]["Where"] == [path] and mount["Mount"]["What"] == [sources[path]], name
        assert mount["Mount"]["Options"] == ["bind"]
        assert mount["Unit"]["Description"][0].startswith("hostd"), name
        assert shipped[f"units/mounts/{name}"] == f"/usr/lib/systemd/system/{name}"


def test_bind_sources_run_before_the_mounts_and_only_when_something_is_missing() -> None:
    sources = unit("hostd-bind-sources.service")
    names = [unit_name_from_path(path) for path in state.STATE_BIND_PATHS + state.DATA_BIND_PATHS]
    assert set(names) <= set(sources["Unit"]["Wants"]) and set(names) <= set(sources["Unit"]["Before"])
    assert "local-fs.target" in sources["Unit"]["Before"] and sources["Install"]["WantedBy"] == ["sysinit.target"]
    assert sources["Unit"]["DefaultDependencies"] == ["no"]
    layout = Layout()
    missing = {f"|!{Path(layout.state) / state.RESET_FLAG}", f"|!{Path(layout.data) / state.RESET_FLAG}"}
    missing |= {f"|!{source}" for source, _ in state.bind_mounts(layout)}
    assert set(sources["Unit"]["ConditionPathExists"]) == missing
    assert sources["Service"]["ExecStart"] == ["/usr/bin/hostd --prepare bind-sources"]


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_the_network_waits_for_its_inputs_not_for_hostd() -> None:
    inputs = unit("hostd-network-inputs.service")
    assert set(NETWORK) <= set(inputs["Unit"]["Before"]) and "network-pre.target" in inputs["Unit"]["Before"]
    assert "local-fs.target" in inputs["Unit"]["After"] and inputs["Unit"]["DefaultDependencies"] == ["no"]
    assert inputs["Service"]["ExecStart"] == ["/usr/bin/hostd --prepare network-inputs"]
    hostd = unit("hostd.service")
    # hostd starts beside the stage (its first reconcile waits for the stage's job, not systemd).
    assert "hostd-network-inputs.service" not in hostd["Unit"]["After"] + inputs["Unit"]["After"]
    assert "hostd.service" not in inputs["Unit"]["Before"]
    # A hung stage is ended by systemd, so hostd's wait for it ends inside hostd's own start timeout.
    assert seconds(inputs["Service"]["TimeoutStartSec"][0]) < seconds(hostd["Service"]["TimeoutStartSec"][0])
    # Nothing of the network is ordered after hostd (network-pre.target would hold NetworkManager).
    assert not set(hostd["Unit"]["Before"]) & {*NETWORK, "network-pre.target"}
    # avahi-daemon waits for hostd: discoverability set off holds from boot.
    assert "avahi-daemon.service" in hostd["Unit"]["Before"]


# What makes systemd (252) set up a mount namespace before it executes a service
# (exec_needs_mount_namespace): 30-45 ms of every hostd start, before its first instruction.
MOUNT_NAMESPACE_SETTINGS = (
    "RootDirectory", "RootImage", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths",
    "NoExecPaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem", "MountImages", "ExtensionImages",
    "ExtensionDirectories", "MountFlags", "PrivateTmp", "PrivateDevices", "PrivateMounts", "PrivateIPC",
    "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectProc", "ProcSubset", "DynamicUser", "LogNamespace",
)  # fmt: skip


def test_hostd_starts_without_a_mount_namespace_and_keeps_what_the_namespace_gave() -> None:
    service = unit("hostd.service")["Service"]
    assert not set(service) & set(MOUNT_NAMESPACE_SETTINGS)
    # What ProtectKernelModules=, ProtectKernelLogs= and ProtectClock= dropped (not the latter's
    # filter, which refuses adjtimex's read: TimeSynchronized), and no mount system call at all
    # (ProtectControlGroups='s read-only cgroupfs was undone by any remount).
    assert service["CapabilityBoundingSet"] == ["~CAP_SYS_MODULE CAP_SYSLOG CAP_SYS_TIME CAP_WAKE_ALARM"]
    assert service["DeviceAllow"] == ["char-rtc r"] and "ProtectClock" not in service
    assert service["SystemCallFilter"] == ["~@module @mount syslog"]
    assert service["NoNewPrivileges"] == ["yes"]


def test_udev_replay_follows_coldplug_and_the_bound_rules() -> None:
    """The rules bound from the state partition miss the coldplug (it runs before the partition can
    be mounted): the replay waits for both, and the network does not wait for it; hostd's replay
    after a change is the same."""
    replay = unit("hostd-udev-replay.service")
    rules = Layout().udev_rules
    assert rules in state.STATE_BIND_PATHS
    assert replay["Unit"]["RequiresMountsFor"] == [rules]
    assert replay["Unit"]["ConditionPathExistsGlob"] == [f"{rules}/*.rules"]
    assert replay["Unit"]["After"] == ["systemd-udev-trigger.service"]
    assert replay["Unit"]["Before"] == ["balena.service", "shutdown.target"]
    assert replay["Install"]["WantedBy"] == ["sysinit.target"]
    assert replay["Service"]["ExecStart"] == [
        " ".join(udev.RELOAD),
        *(f"-{' '.join(argv)}" for argv in udev.REPLAY),
    ]
    assert install_map()["units/hostd-udev-replay.service"] == "/usr/lib/systemd/system/hostd-udev-replay.service"
