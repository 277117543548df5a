"""CLI: `hostctl status` cold start (wall time of the process, inside the device) beside hostnamectl."""

from __future__ import annotations

from bench.common import Device, Report, Row, median

HOSTNAMECTL_RATIO_TARGET = 3.0  # "answers like a C tool"


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
            f"<= {HOSTNAMECTL_RATIO_TARGET:g}x",
            med["hostctl"] / med["hostnamectl"] <= HOSTNAMECTL_RATIO_TARGET,
        )
    )
    report.add(
        Row(
            "cli",
            f"floor: python3 -IS -c pass, the launchers' interpreter start ({n})",
            med["python"],
            "ms",
            med["hostctl"],
            "hostctl status",
        )
    )
    report.add(
        Row(
            "cli",
            f"what hostctl no longer imports: python3 -IS + asyncio + dbus_fast.aio, as the launchers run them ({n})",
            med["floor"],
            "ms",
            med["hostctl"],
            "hostctl status",
        )
    )
