"""What the benchmark sections share: the result row, statistics, the device handle, the machine."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass
class Row:
    """One line of the table: a measured value beside its baseline, measured in the same run."""

    section: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None  # None: no target
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "calls/s":
        return f"{value:,.0f}/s"
    if unit == "us":
        return f"{value:.0f} us"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "per min":
        return f"{value:.1f} per min"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    return f"{value:g} {unit}".strip()


def format_table(rows: list[Row]) -> str:
    header = ("section", "metric", "value", "baseline", "ratio", "target", "met")
    lines = []
    for row in rows:
        baseline = f"{fmt(row.baseline, row.unit)} {row.baseline_label}".strip() if row.baseline_label else ""
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append((row.section, row.metric, fmt(row.value, row.unit), baseline, ratio, row.target, met))
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(out)


def format_markdown(rows: list[Row]) -> str:
    out = ["| section | metric | value | baseline (same run) | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        baseline = f"{fmt(row.baseline, row.unit)} {row.baseline_label}".strip() if row.baseline_label else ""
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        cells = (row.section, row.metric, fmt(row.value, row.unit), baseline, ratio, row.target, met)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def machine_info() -> dict[str, str]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pressure = ""
    if Path("/proc/pressure/cpu").exists():
        pressure = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    device_python = subprocess.run(["/usr/bin/python3", "-V"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python (device, hostd)": device_python,
        "python (bench driver)": sys.version.split()[0],
        "load average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "cpu pressure": pressure,
    }


class Device:
    """The testbed device as the benchmarks use it (wraps tests/testbed/harness.Testbed)."""

    def __init__(self, testbed: Any) -> None:
        self.tb = testbed
        self.side = (HERE / "device_side.py").read_text()

    @property
    def bus_address(self) -> str:
        return self.tb.bus_address

    @property
    def machine(self) -> str:
        return self.tb.machine

    def side_call(self, command: str, args: dict[str, Any] | None = None, timeout: float = 1800) -> Any:
        """Run bench/device_side.py COMMAND inside the device; its JSON output."""
        result = self.tb.exec(
            ["python3", "-c", self.side, command, json.dumps(args or {})], check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"device_side {command} failed (rc={result.returncode}):\n{result.stderr}")
        return json.loads(result.stdout)

    def hostd_pid(self) -> int:
        out = self.tb.exec(["systemctl", "show", "--property=MainPID", "--value", "hostd.service"]).stdout
        return int(out.strip())

    def describe(self) -> dict[str, Any]:
        from hostd import sync_bus

        with sync_bus.Connection(self.bus_address) as connection:
            [text] = connection.call("io.hostd1", "/io/hostd1", "io.hostd1.Manager", "Describe")
        return json.loads(text)
