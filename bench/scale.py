"""Scale: importing 10, 100 and 1,000 boot-partition profiles into NetworkManager.

Each size starts from a boot partition without benchmark profiles.  The profiles are written
aside and swapped in with two renames (a user's copy would take its own time), then Reload()
is called, and the clock stops when Describe() shows every profile imported and loaded by
NetworkManager (hostd's connections step, LoadConnections, and the verdict read back).  The
profiles are valid ethernet keyfiles bound to interfaces that do not exist, autoconnect=false:
nothing activates.  Beside it, NetworkManager alone loading as many files (busctl
LoadConnections inside the device) is the floor.  Then the profiles are removed the same way.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from bench.common import Device, Report, Row
from hostd import sync_bus

SIZES = (10, 100, 1000)
TARGET_1000_S = 2.0
FLAT_TARGET = 2.0  # per-profile time at 1,000 within this factor of the per-profile time at 100
NOOP_RELOADS = 5  # a no-op Reload's time is subtracted: the per-profile time is the marginal one
TIMEOUT_S = 120.0
TEMPLATE = """# hostd benchmark @R@
[connection]
id=bench-@P@-@N@
uuid=@U@
type=ethernet
interface-name=bnch@P@@N@
autoconnect=false

[ethernet]

[ipv4]
method=disabled

[ipv6]
method=ignore
"""


RUN = uuid.uuid4().hex[:8]  # new content at every run: a new generation, saved afresh


def profile(prefix: str, index: int) -> str:
    number = f"{index:04d}"
    return (
        TEMPLATE.replace("@R@", RUN)
        .replace("@P@", prefix)
        .replace("@N@", number)
        .replace("@U@", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{prefix}-{number}.bench.hostd")))
    )


def _call(address: str, member: str) -> str:
    with sync_bus.Connection(address, timeout=TIMEOUT_S) as connection:
        reply = connection.call("io.hostd1", "/io/hostd1", "io.hostd1.Manager", member)
    return reply[0] if reply else ""


def _swap(connections: Path, replacement: Path, aside: Path) -> None:
    os.rename(connections, aside)
    os.rename(replacement, connections)


def _wait(device: Device, predicate, started: float) -> tuple[float, dict]:
    while True:
        state = device.describe()
        if predicate(state):
            return time.monotonic() - started, state
        if time.monotonic() - started > TIMEOUT_S:
            raise TimeoutError(f"profiles not all loaded after {TIMEOUT_S:g} s")
        time.sleep(0.02)


def _loaded(state: dict, count: int) -> bool:
    ours = [c for c in state["connections"] if c["name"].startswith("bench-")]
    return len(ours) == count and all(
        c["status"] in ("imported", "unchanged") and c.get("nm") == "loaded" for c in ours
    )


def _gone(state: dict) -> bool:
    return not any(c["name"].startswith("bench-") and c["status"] != "removed" for c in state["connections"])


def _step_ms(state: dict, name: str) -> float:
    return next((s["duration_ms"] for s in state["steps"] if s["name"] == name), 0.0)


def run(device: Device, report: Report) -> None:
    boot = device.tb.boot_dir
    connections = boot / "system-connections"
    stage, aside = boot.parent / "bench-stage", boot.parent / "bench-aside"
    results = {}
    noop = []
    for _ in range(NOOP_RELOADS):
        started = time.monotonic()
        _call(device.bus_address, "Reload")
        noop.append(time.monotonic() - started)
    base_s = sorted(noop)[len(noop) // 2]
    for size in SIZES:
        # Import: the current directory plus `size` profiles, swapped in at once.
        shutil.rmtree(stage, ignore_errors=True)
        shutil.copytree(connections, stage)
        for index in range(size):
            (stage / f"bench-{index:04d}.nmconnection").write_text(profile("h", index))
        started = time.monotonic()
        _swap(connections, stage, aside)
        _call(device.bus_address, "Reload")
        reloaded = time.monotonic() - started
        import_s, state = _wait(device, lambda s, n=size: _loaded(s, n), started)
        step_ms = _step_ms(state, "connections")
        # Remove them again: back to the directory as it was.
        shutil.rmtree(stage, ignore_errors=True)
        os.rename(aside, stage)
        for path in stage.glob("bench-*"):
            path.unlink()
        started = time.monotonic()
        _swap(connections, stage, aside)
        _call(device.bus_address, "Reload")
        remove_s, _ = _wait(device, _gone, started)
        shutil.rmtree(aside)
        nm = device.side_call("nmload", {"count": size, "template": TEMPLATE.replace("@R@", RUN)})
        results[size] = {
            "import_s": import_s,
            "reload_returned_s": reloaded,
            "connections_step_ms": step_ms,
            "remove_s": remove_s,
            "nm_load_ms": nm["load_ms"],
            "nm_unload_ms": nm["unload_ms"],
        }
    report.details["scale"] = {"noop_reload_s": base_s, **results}
    per = {size: max(results[size]["import_s"] - base_s, 0.0) / size for size in SIZES}
    for size in SIZES:
        r = results[size]
        target, met = "", None
        if size == 1000:
            target = f"<= {TARGET_1000_S:g} s; per profile <= {FLAT_TARGET:g}x of 100's"
            met = r["import_s"] <= TARGET_1000_S and per[1000] <= FLAT_TARGET * per[100]
        report.add(
            Row(
                "scale",
                f"import {size:,} profiles: Reload -> all loaded",
                r["import_s"] * 1000,
                "ms",
                r["nm_load_ms"],
                "NM LoadConnections alone",
                target,
                met,
                f"{per[size] * 1000:.2f} ms/profile over a no-op Reload ({base_s * 1000:.0f} ms); "
                f"removing them: {r['remove_s'] * 1000:.0f} ms",
            )
        )
