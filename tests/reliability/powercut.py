"""Power cuts: kill ``hostctl apply --offline`` at a fault point and check what it leaves.

Each run lays out a device that has been applied once, then changes its config.json and boot
partition so that the next apply has real work (writes, removals, a uuid written back, removed
profiles, sometimes an overlay wipe and a stale temp file from an earlier crash).  A dry run
in this process counts the fault points that apply passes (hostd/fsutil.py); the apply then
runs in a subprocess with HOSTD_FAULT_CRASH_AT=k, k drawn from 1..count, and dies there.
The invariants checked afterwards:

- every entry is in its old state or its new one (whole content and mode; a file under an
  overlay being wiped may also be missing): nothing torn, nothing partial, nothing else;
- config.json parses and keeps every key it had; the last-known-good copy parses;
- the next full run converges: it leaves exactly the tree an uninterrupted apply leaves (no
  temp file either), and a run after it writes nothing (same inode, mtime and ctime).

    python3 -m tests.reliability.powercut --runs 1000 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from hostd import config as config_model
from hostd import fsutil, generations
from hostd.layout import Layout
from tests.unit.conftest import DeviceRoot

from .support import WIFI, WIRED, Entry, quiet_logs, run_cli, ssh_key, stamps, tree

REPO = Path(__file__).resolve().parents[2]
UUID = "0123456789abcdef0123456789abcdef"
TEMP_SUFFIX = ".hostd-tmp"


def first_config() -> dict[str, Any]:
    """Every key hostd owns, and keys it does not own at every level."""
    return {
        "applicationId": 1234,
        "apiKey": "secret-api-key",
        "deviceType": "raspberrypi4-64",
        "uuid": UUID,
        "hostname": "kitchen",
        "persistentLogging": True,
        "dnsServers": "1.1.1.1 9.9.9.9",
        "ntpServers": ["time.example.com", "10.0.0.1"],
        "developmentMode": True,
        "country": "GB",
        "apiEndpoint": "https://api.example.com",
        "installer": {"secureboot": False, "migrate": {"force": True}},
        "os": {
            "sshKeys": [ssh_key(1), ssh_key(2, "ci@build")],
            "network": {
                "connectivity": {"uri": "https://c.example.com/check", "interval": 600, "response": "ok"},
                "wifi": {"randomMacAddressScan": False},
                "unknownNetworkKey": [1, 2, 3],
            },
            "dns": {"mode": "exclusive"},
            "journal": {"runtimeMaxUse": "16M", "systemMaxUse": "64M"},
            "udevRules": {"99-usb": 'ACTION=="add", SUBSYSTEM=="usb", RUN+="/bin/true"', "98-tty": 'KERNEL=="ttyS0"'},
            "unknownOsKey": {"nested": {"deeper": "value"}},
        },
    }


def changed_config(rng: random.Random) -> dict[str, Any]:
    """The first config with each owned key kept, changed or removed at random; the uuid usually removed."""
    document = first_config()
    os_keys = document["os"]
    if rng.random() < 0.85:
        del document["uuid"]  # the apply generates one and writes it back
    choices: list[tuple[dict[str, Any], str, Any]] = [
        (document, "hostname", "pantry"),
        (document, "persistentLogging", False),
        (document, "dnsServers", ["8.8.4.4"]),
        (document, "ntpServers", "pool.example.org"),
        (document, "developmentMode", False),
        (document, "country", "de"),
        (os_keys, "sshKeys", [ssh_key(3)]),
        (os_keys["network"]["connectivity"], "interval", 60),
        (os_keys["network"]["wifi"], "randomMacAddressScan", True),
        (os_keys["dns"], "mode", "append"),
        (os_keys["journal"], "runtimeMaxUse", "8M"),
        (os_keys, "udevRules", {"99-usb": 'ACTION=="remove"', "97-net": 'SUBSYSTEM=="net"'}),
    ]
    for parent, key, new_value in choices:
        roll = rng.random()
        if roll < 0.4:
            parent[key] = new_value
        elif roll < 0.7:
            del parent[key]
    return document


BOOT_PROFILES = {
    "home": WIFI,
    "wired": WIRED,
    "office": WIFI.replace("id=home", "id=office").replace("c6a001", "c6a003").replace("ssid=home", "ssid=office"),
    "broken": "[connection\nid=broken\n",
    "sample.ignore": WIFI,
}
DISPATCHER_SCRIPTS = {"10-notify": "#!/bin/sh\nlogger up\n", "20-log": "#!/bin/sh\nexit 0\n"}


@dataclass
class Scenario:
    """A device applied once, then changed: the state a crashed apply starts from."""

    wiped: list[str] = field(default_factory=list)  # overlays (relative paths) this apply wipes

    @staticmethod
    def build(root: Path, rng: random.Random) -> Scenario:
        device = DeviceRoot(root)
        layout = device.layout
        device.write_config(first_config())
        for name, content in BOOT_PROFILES.items():
            device.boot_profile(name, content)
        Path(layout.boot_dispatcher).mkdir()
        for name, content in DISPATCHER_SCRIPTS.items():
            (Path(layout.boot_dispatcher) / name).write_text(content)
        with quiet_logs():
            first = run_cli(["apply", "--offline", "--root", str(root)])
        if first.code != 0:
            raise RuntimeError(f"first apply failed: {first.stdout}{first.stderr}")

        device.write_config(changed_config(rng))
        boot = Path(layout.boot_connections)
        if rng.random() < 0.7:
            (boot / "wired").unlink()  # removed from the device too
        if rng.random() < 0.5:
            (boot / "office").write_text(BOOT_PROFILES["office"].replace("ssid=office", "ssid=office-5g"))
        if rng.random() < 0.5:
            (boot / "guest").write_text(WIRED.replace("id=wired", "id=guest").replace("c6a002", "c6a004"))
        if rng.random() < 0.3:  # a name at NAME_MAX: its temp file needs a shorter name
            (boot / ("long-" + "x" * 250)).write_text(WIRED.replace("id=wired", "id=long").replace("c6a002", "c6a005"))
        if rng.random() < 0.3:
            (Path(layout.nm_connections) / "home").write_text(WIFI.replace("id=home", "id=home-edited"))  # kept
        if rng.random() < 0.5:
            (Path(layout.boot_dispatcher) / "20-log").unlink()
        if rng.random() < 0.3:
            (Path(layout.boot_dispatcher) / "30-new").write_text("#!/bin/sh\ntrue\n")
        if rng.random() < 0.3:
            # An earlier crash left a temp file next to a target that needs no write now.
            (Path(layout.dnsmasq_servers).parent / f".dnsmasq.servers{TEMP_SUFFIX}").write_text("server=1.")
        scenario = Scenario()
        for partition in (Path(layout.state), Path(layout.data)):
            if rng.random() < 0.25:
                overlay = partition / "root-overlay"
                (overlay / "etc" / "stale").mkdir(parents=True, exist_ok=True)
                for index in range(3):
                    (overlay / "etc" / "stale" / f"file{index}").write_text(f"old {index}\n")
                (partition / "remove_me_to_reset").unlink()
                scenario.wiped.append(str(overlay.relative_to(root)))
        return scenario


@contextlib.contextmanager
def counting_fault_points() -> Iterator[list[int]]:
    """Count the fault points passed in this process (none crashes); the count lands in the list."""
    counted: list[int] = []
    saved = fsutil._CRASH_AT, fsutil._fault_points
    fsutil._CRASH_AT, fsutil._fault_points = -1, 0
    try:
        yield counted
    finally:
        counted.append(fsutil._fault_points)
        fsutil._CRASH_AT, fsutil._fault_points = saved


def apply_in_process(root: Path, uuid: str | None = None) -> int:
    """One full offline apply here; ``uuid`` is what a generated uuid comes out as."""
    with quiet_logs(), mock.patch("secrets.token_hex", return_value=uuid) if uuid else contextlib.nullcontext():
        return run_cli(["apply", "--offline", "--root", str(root), "--json"]).code


def crash_apply(root: Path, point: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOSTD_FAULT_CRASH_AT": str(point), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hostd.cli", "apply", "--offline", "--root", str(root), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def allowed(path: str, old: dict[str, Entry], new: dict[str, Entry], wiped: list[str]) -> list[Entry | None]:
    states = [old.get(path), new.get(path)]
    if any(path == overlay or path.startswith(overlay + "/") for overlay in wiped):
        states.append(None)  # removed before being recreated
    return states


def check_crash_state(
    crashed: dict[str, Entry], old: dict[str, Entry], new: dict[str, Entry], wiped: list[str], layout: Layout
) -> list[str]:
    violations = []
    for path in sorted(set(crashed) | set(old) | set(new)):
        state = crashed.get(path)
        if state is not None and _is_temp(path):
            continue  # checked after the next run: it must be gone
        if state not in allowed(path, old, new, wiped):
            violations.append(f"{path}: neither its old nor its new state: {describe(state)}")
    config_path = str(Path(layout.config_json).relative_to(layout.root))
    old_document = json.loads(_content(old[config_path]))
    try:
        config_model.parse(_content(crashed[config_path]), config_path)
        document = json.loads(_content(crashed[config_path]))
        lost = {key for key, value in old_document.items() if document.get(key) != value}
        if lost:
            violations.append(f"config.json: keys lost or changed: {sorted(lost)}")
    except (KeyError, config_model.ConfigError) as exc:
        violations.append(f"config.json: unusable after the crash: {exc!r}")
    try:
        good = _content(crashed[_relative(layout, Path(layout.hostd_state) / "good-generation")]).decode().strip()
        generation = Path(layout.hostd_state) / "generations" / good
        config_model.read(_content(crashed[_relative(layout, generation / "config.json")]))
        applied = _content(crashed[_relative(layout, generation / generations.APPLIED)])
        if config_model.config_of_applied(applied) is None:
            raise KeyError(f"{generations.APPLIED} is not the values of a configuration")
    except (KeyError, config_model.ConfigError) as exc:
        violations.append(f"last-known-good generation: unusable after the crash: {exc!r}")
    return violations


def _is_temp(path: str) -> bool:
    """A temp file, or a generation being built aside (a directory of temp name and what is in it)."""
    return path.endswith(TEMP_SUFFIX) or f"{TEMP_SUFFIX}/" in path


def _relative(layout: Layout, path: Path) -> str:
    return str(path.relative_to(layout.root))


def _content(entry: Entry) -> bytes:
    content = entry[1]
    if not isinstance(content, bytes):
        raise KeyError("not a file")
    return content


def describe(entry: Entry | None) -> str:
    if entry is None:
        return "missing"
    kind, content, mode = entry
    shown = content[:40] if isinstance(content, bytes) else content
    return f"{kind} {mode:o} {shown!r}"


@dataclass
class RunResult:
    points: int
    crashed_at: int
    violations: list[str]
    temp_left: bool  # the crash left a temp file behind
    config_rewritten: bool  # the crash came after the uuid was written back
    wiping: bool  # the apply wiped an overlay


def one_run(workdir: Path, rng: random.Random) -> RunResult:
    """Build a scenario, crash an apply of it at a point drawn from those it passes, check the invariants."""
    pre, dry, crash, reference = (workdir / name for name in ("pre", "dry", "crash", "reference"))
    for directory in (pre, dry, crash, reference):
        shutil.rmtree(directory, ignore_errors=True)
    scenario = Scenario.build(pre, rng)
    old = tree(pre)

    shutil.copytree(pre, dry, symlinks=True)
    with counting_fault_points() as counted:
        apply_in_process(dry)
    points = counted[0]
    point = rng.randint(1, points)

    shutil.copytree(pre, crash, symlinks=True)
    process = crash_apply(crash, point)
    violations = []
    if process.returncode != -signal.SIGKILL:
        violations.append(f"apply did not die at point {point} of {points}: exit {process.returncode}")
    crashed = tree(crash)

    # The next run finishes the job; an uninterrupted apply with the same uuid says what it must leave.
    recovery_code = apply_in_process(crash)
    layout = Layout(crash)
    uuid = json.loads(Path(layout.config_json).read_bytes()).get("uuid")
    shutil.copytree(pre, reference, symlinks=True)
    apply_in_process(reference, uuid)
    new = tree(reference)

    violations += check_crash_state(crashed, old, new, scenario.wiped, layout)
    if recovery_code != 0:
        violations.append(f"the run after the crash exited {recovery_code}")
    recovered = tree(crash)
    violations += [f"{path}: temp file left after the next run" for path in recovered if _is_temp(path)]
    for path in sorted(set(recovered) | set(new)):
        if recovered.get(path) != new.get(path):
            violations.append(
                f"{path}: after the next run {describe(recovered.get(path))}, not {describe(new.get(path))}"
            )
    before = stamps(crash)
    second_code = apply_in_process(crash)
    if second_code != 0 or stamps(crash) != before:
        changed = sorted(path for path, stamp in stamps(crash).items() if before.get(path) != stamp)
        violations.append(f"a second run wrote again (exit {second_code}): {changed[:5]}")
    config_path = str(Path(layout.config_json).relative_to(layout.root))
    return RunResult(
        points,
        point,
        violations,
        temp_left=any(path.endswith(TEMP_SUFFIX) for path in crashed),
        config_rewritten=crashed.get(config_path) != old.get(config_path),
        wiping=bool(scenario.wiped),
    )


def source_digest() -> str:
    """The source of the hostd modules loaded here: the dry runs in this process and the crashed
    runs in subprocesses must run the same code."""
    digest = hashlib.sha256()
    for name in sorted(name for name in sys.modules if name == "hostd" or name.startswith("hostd.")):
        if path := getattr(sys.modules[name], "__file__", None):
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    source = ""
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="hostd-powercut-") as tmp:
        for index in range(args.runs):
            result = one_run(Path(tmp), random.Random(f"{args.seed}-{index}"))
            source = source or source_digest()  # the engine's modules are loaded by the first run
            results.append(result)
            for violation in result.violations:
                print(f"run {index} (seed {args.seed}, crash at {result.crashed_at}/{result.points}): {violation}")
    violations = sum(len(r.violations) for r in results)
    points = [r.points for r in results]
    print(
        f"{args.runs} runs, {violations} violations, fault points per apply {min(points)}..{max(points)}, "
        f"{time.monotonic() - started:.0f} s; the crash left a temp file in {sum(r.temp_left for r in results)} "
        f"runs, came after the uuid write-back in {sum(r.config_rewritten for r in results)}, during an apply "
        f"that wipes an overlay in {sum(r.wiping for r in results)}"
    )
    if source_digest() != source:
        print("hostd's source changed during the run: its figures do not count; run it again")
        return 2
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
