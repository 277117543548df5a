"""CLI: `hostctl status` cold start (wall time of the process, inside the device) beside hostnamectl."""

from __future__ import annotations

from bench.common import Device, Report, Row, median

TARGET_MS = 80.0


def run(device: Device, report: Report, runs: int) -> None:
    times = device.side_call("cli", {"runs": runs})
    med = {name: median(values) for name, values in times.items()}
    report.details["cli"] = {"runs": runs, "samples_ms": times}
    n = f"median of {runs}"
    report.add(
        Row(
            "cli",
            f"hostctl status, process wall time ({n})",
            med["hostctl"],
            "ms",
            med["hostnamectl"],
            "hostnamectl",
            f"<= {TARGET_MS:.0f} ms",
            med["hostctl"] <= TARGET_MS,
        )
    )
    report.add(
        Row(
            "cli",
            f"floor: python3 + import asyncio + dbus_fast.aio ({n})",
            med["floor"],
            "ms",
            med["hostctl"],
            "hostctl status",
            note=f"python3 -c pass alone: {med['python']:.1f} ms",
        )
    )
