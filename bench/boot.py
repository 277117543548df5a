"""Boot: hostd's boot units and the network's, cold and warm, beside the balenaOS boot as units;
when NetworkManager starts; when `<name>.local` answers from the peer."""

from __future__ import annotations

import statistics
import subprocess
import sys

from bench.common import HERE, Device, Report, Row, median

COLD_TARGET_MS = 150.0
UNITS_RATIO_TARGET = 0.5
NM_AFTER_HOSTD_TARGET_MS = 60.0
MDNS_TIMEOUT_MS = 20000

# Run in the peer namespace (python-zeroconf, the independent client): asks for NAME.local until
# it answers, prints CLOCK_MONOTONIC (this machine's, the device's systemd's too) at the answer.
MDNS_WAIT = r"""
import sys, time
from zeroconf import AddressResolverIPv4, IPVersion, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
try:
    print("listening", flush=True)
    resolver = AddressResolverIPv4(sys.argv[2])
    if resolver.request(zc, int(sys.argv[3])):
        print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000, resolver.parsed_addresses(IPVersion.V4Only))
finally:
    zc.close()
"""


def run(device: Device, report: Report, runs: int) -> None:
    chain = (HERE / "balena_chain.sh").read_text()
    result = device.side_call("boot", {"runs": runs, "chain": chain, "machine": device.machine})
    mdns = mdns_runs(device, max(3, runs // 2))
    med = {name: median_of_present(values) for name, values in result.items() if name != "steps"}
    steps = {
        mode: {name: statistics.median(run[name] for run in runs_) for name in runs_[0]}
        for mode, runs_ in result["steps"].items()
    }
    report.details["boot"] = {"runs": runs, "samples_ms": {k: v for k, v in result.items() if k != "steps"}}
    report.details["boot"]["step_medians_ms"] = steps
    report.details["boot"]["mdns_ms"] = mdns
    units = med["balena_units"]
    n = f"median of {runs}"
    report.add(
        Row(
            "boot",
            f"cold: boot -> hostd READY=1: stages, mounts, hostd ({n})",
            med["cold_boot_ready_ms"],
            "ms",
            units,
            "balenaOS as units",
            f"<= {UNITS_RATIO_TARGET}x",
            med["cold_boot_ready_ms"] / units <= UNITS_RATIO_TARGET,
            "first boot: empty state/data partitions",
        )
    )
    report.add(
        Row(
            "boot",
            f"cold: hostd's own start -> READY=1, waiting for the network-inputs stage included ({n})",
            med["cold_ms"],
            "ms",
            units,
            "balenaOS as units",
            f"<= {COLD_TARGET_MS:.0f} ms",
            med["cold_ms"] <= COLD_TARGET_MS,
        )
    )
    report.add(
        Row(
            "boot",
            f"warm: boot -> hostd READY=1 ({n})",
            med["warm_boot_ready_ms"],
            "ms",
            units,
            "balenaOS as units",
            note="a reboot with the same config.json",
        )
    )
    report.add(
        Row(
            "boot",
            f"warm: hostd's own start -> READY=1, waiting for the network-inputs stage included ({n})",
            med["warm_ms"],
            "ms",
            units,
            "balenaOS as units",
        )
    )
    report.add(Row("boot", f"restart on a converged device ({n})", med["restart_ms"], "ms", units, "balenaOS as units"))
    for mode in ("cold", "warm"):
        # The path to READY, each from the start command: what the stage and hostd wait for.
        path = (
            ("bind_sources", "the bind sources made (hostd-bind-sources.service; a first boot only)"),
            ("mounts", "the state partition's bind mounts active (the last one)"),
            ("stage", "the network-inputs stage starts"),
            ("hostd", "hostd starts (hostd.service's exec)"),
        )
        for key, what in path:
            value = med[f"{mode}_boot_to_{key}_ms"]
            if value is not None:
                report.add(Row("boot", f"{mode}: boot -> {what} ({n})", value, "ms"))
        report.add(
            Row(
                "boot",
                f"{mode}: hostd's first process (network-inputs stage) start -> NetworkManager start ({n})",
                med[f"{mode}_stage_to_nm_ms"],
                "ms",
                target=f"<= {NM_AFTER_HOSTD_TARGET_MS:.0f} ms",
                met=med[f"{mode}_stage_to_nm_ms"] <= NM_AFTER_HOSTD_TARGET_MS,
                note="warm: config.json unchanged (the stamp replayed); cold: a first boot (a full run)",
            )
        )
        report.add(Row("boot", f"{mode}: network-inputs stage exec -> exit ({n})", med[f"{mode}_stage_ms"], "ms"))
        report.add(
            Row(
                "boot",
                f"{mode}: network-inputs stage done -> hostd READY=1 ({n})",
                med[f"{mode}_inputs_to_ready_ms"],
                "ms",
                note="hostd's start beyond the stage; hostd's start - the stage's: "
                f"{med[f'{mode}_hostd_after_stage_ms']:+.0f} ms",
            )
        )
        report.add(
            Row(
                "boot",
                f"{mode}: boot -> network inputs written ({n})",
                med[f"{mode}_boot_to_inputs_ms"],
                "ms",
                units,
                "balenaOS as units",
                note="hostd-network-inputs.service done; balenaOS: every unit done",
            )
        )
        report.add(Row("boot", f"{mode}: boot -> NetworkManager start ({n})", med[f"{mode}_boot_to_nm_ms"], "ms"))
    if mdns:
        report.add(
            Row(
                "boot",
                f"warm: boot -> <name>.local answers from the peer (median of {len(mdns)})",
                statistics.median(mdns),
                "ms",
                note="python-zeroconf in the peer namespace; includes avahi's probing",
            )
        )
    report.add(
        Row(
            "boot",
            f"baseline: balenaOS as units, 16 bind-mount + 7 setup oneshots ({n})",
            units,
            "ms",
            note="start -> target active; bench/device_side.py balena_install",
        )
    )
    report.add(
        Row(
            "boot",
            f"same file work only: hostctl apply --offline, cold ({n})",
            med["offline"],
            "ms",
            med["chain"],
            "shell chain",
            note="one process, no D-Bus, into a scratch root like the chain",
        )
    )
    report.add(Row("boot", f"the setup steps alone: 7 x bash -c + jq in one oneshot ({n})", med["chain"], "ms"))
    report.add(
        Row(
            "boot",
            f"floor: python3 -IS + import asyncio + dbus_fast.aio, as hostd's launcher runs them ({n})",
            med["import_floor"],
            "ms",
            units,
            "balenaOS as units",
            note="interpreter start with hostd's flags and path; hostd cannot start faster",
        )
    )


def median_of_present(values: list[float | None]) -> float | None:
    """The median of the values measured (a first boot's stage is skipped at a warm boot: None)."""
    present = [value for value in values if value is not None]
    return median(present) if present else None


def mdns_runs(device: Device, runs: int) -> list[float]:
    """Warm boots, each timed from the start command (in the device) to the first mDNS answer
    for the device's name at the peer; [] when python-zeroconf is not installed here."""
    if subprocess.run([sys.executable, "-c", "import zeroconf"], capture_output=True).returncode != 0:
        print("boot: python-zeroconf is not installed for this python; no mDNS row", file=sys.stderr)
        return []
    tb = device.tb
    name = device.describe()["hostname"]
    samples = []
    for _ in range(runs):
        device.side_call("prepare", {"mode": "warm", "machine": device.machine})
        waiter = subprocess.Popen(
            ["ip", "netns", "exec", tb.netns, sys.executable, "-c", MDNS_WAIT, tb.peer_ip, f"{name}.local.",
             str(MDNS_TIMEOUT_MS)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert waiter.stdout is not None
        waiter.stdout.readline()  # listening: its cache is empty, the name withdrawn
        booted = device.side_call("start")
        out, _ = waiter.communicate(timeout=MDNS_TIMEOUT_MS / 1000 + 10)
        if out.strip():
            samples.append((int(out.split()[0]) - booted["t0_us"]) / 1000)
    return samples
