"""Boot setup: hostd's start -> READY=1, cold and warm, beside the balenaOS-style shell chain."""

from __future__ import annotations

import statistics

from bench.common import HERE, Device, Report, Row, median

COLD_TARGET_MS = 150.0
CHAIN_RATIO_TARGET = 0.3


def run(device: Device, report: Report, runs: int) -> None:
    chain = (HERE / "balena_chain.sh").read_text()
    result = device.side_call("boot", {"runs": runs, "chain": chain, "machine": device.machine})
    med = {name: median(values) for name, values in result.items() if name != "steps"}
    steps = {
        mode: {name: statistics.median(run[name] for run in runs_) for name in runs_[0]}
        for mode, runs_ in result["steps"].items()
    }
    report.details["boot"] = {"runs": runs, "samples_ms": {k: v for k, v in result.items() if k != "steps"}}
    report.details["boot"]["step_medians_ms"] = steps
    chain_ms = med["chain"]
    n = f"median of {runs}"
    report.add(
        Row(
            "boot",
            f"cold: start -> READY=1, every step + live effect ({n})",
            med["cold"],
            "ms",
            chain_ms,
            "shell chain",
            f"<= {COLD_TARGET_MS:.0f} ms, <= {CHAIN_RATIO_TARGET}x",
            med["cold"] <= COLD_TARGET_MS and med["cold"] / chain_ms <= CHAIN_RATIO_TARGET,
            "empty state/data partitions",
        )
    )
    report.add(
        Row(
            "boot",
            f"warm: start -> READY=1, unchanged config ({n})",
            med["warm"],
            "ms",
            chain_ms,
            "shell chain",
            note="state kept; bind mounts and /run files gone, as after a reboot",
        )
    )
    report.add(
        Row(
            "boot",
            f"restart on a converged device ({n})",
            med["restart"],
            "ms",
            chain_ms,
            "shell chain",
            note="nothing to change",
        )
    )
    report.add(
        Row(
            "boot",
            f"same file work only: hostctl apply --offline, cold ({n})",
            med["offline"],
            "ms",
            chain_ms,
            "shell chain",
            f"<= {CHAIN_RATIO_TARGET}x",
            med["offline"] / chain_ms <= CHAIN_RATIO_TARGET,
            "one process, no D-Bus, into a scratch root like the chain",
        )
    )
    report.add(
        Row(
            "boot",
            f"baseline: balenaOS-style shell chain, 7 x bash -c + jq ({n})",
            chain_ms,
            "ms",
            note="bench/balena_chain.sh",
        )
    )
    report.add(
        Row(
            "boot",
            f"floor: python3 + import asyncio + dbus_fast.aio ({n})",
            med["import_floor"],
            "ms",
            med["cold"],
            "hostd cold",
            note="interpreter start; hostd cannot start faster",
        )
    )
    report.add(
        Row(
            "boot",
            f"floor: systemd makes the 17 bind mounts, minimal client ({n})",
            med["mount_floor"],
            "ms",
            steps["cold"]["state"],
            "hostd's state step, cold",
            note="transient mount units, one job each, in parallel",
        )
    )
