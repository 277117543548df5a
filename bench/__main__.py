"""hostd benchmarks: `sudo python3 -m bench` from the repository root; prints one table.

Boots its own testbed device (tests/testbed, instance HOSTD_TESTBED_INSTANCE, default 2, so a
default test instance keeps running), runs every section, takes the device down.  Every
comparison is a ratio of two numbers measured in the same run; see BENCHMARKS.md.
Benchmarks are never tests: the exit code says whether the run completed, not whether a target
was met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECTIONS = ("boot", "api", "flash", "idle", "cli", "scale")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f bench@hostd"
BOOT_PROFILES = {
    "boot-eth.nmconnection": "[connection]\nid=boot-eth\ntype=ethernet\ninterface-name=bootnet0\n"
    "autoconnect=false\n\n[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n",
    "boot-wifi.nmconnection": "[connection]\nid=boot-wifi\ntype=wifi\nautoconnect=false\n\n[wifi]\n"
    "mode=infrastructure\nssid=bench\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=not-a-real-passphrase\n\n"
    "[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="boot runs per kind (median; default 10)")
    parser.add_argument("--cli-runs", type=int, default=30, help="CLI runs (median; default 30)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--attach", action="store_true", help="use the running testbed instance instead of booting one")
    parser.add_argument("--keep", action="store_true", help="leave the device running afterwards")
    parser.add_argument("--json", type=Path, help="also write every sample and detail to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too (for BENCHMARKS.md)")
    return parser


def boot_partition(directory: Path, instance: int) -> Path:
    """The sample boot partition, with SSH keys, a NetworkManager setting and two profiles added,
    so that every step has something to write."""
    from bench.common import REPO

    boot = directory / "boot"
    shutil.copytree(REPO / "tests/testbed/sample-boot", boot)
    config_path = boot / "config.json"
    config = json.loads(config_path.read_text().replace("10.213.0.", f"10.213.{instance}."))
    config.setdefault("os", {})["sshKeys"] = [SSH_KEY]
    config["os"]["network"] = {"wifi": {"randomMacAddressScan": False}}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    connections = boot / "system-connections"
    connections.mkdir(exist_ok=True)
    for name, text in BOOT_PROFILES.items():
        (connections / name).write_text(text)
    return boot


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {sorted(unknown)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("the benchmarks boot a testbed device: run them as root", file=sys.stderr)
        return 2
    os.environ.setdefault("HOSTD_TESTBED_INSTANCE", "2")  # before the harness reads it
    from bench import api, boot, cli, flash, idle, scale
    from bench.common import Device, Report, format_markdown, format_table, machine_info
    from tests.testbed import harness

    reason = harness.unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if "boot" in sections and not shutil.which("jq"):  # the baseline's JSON parser (the device runs this root)
        print("installing jq for the shell-chain baseline ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "jq"], check=False, stdout=subprocess.DEVNULL)
        if not shutil.which("jq"):
            print("cannot run the boot section: jq is not installed", file=sys.stderr)
            return 2
    instance = int(os.environ["HOSTD_TESTBED_INSTANCE"])
    report = Report()
    started = time.monotonic()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="hostd-bench-") as tmp:
        if args.attach:
            testbed = harness.Testbed.attach()
        else:
            print(f"booting testbed instance {instance} ...", file=sys.stderr)
            testbed = harness.Testbed.up(boot=boot_partition(Path(tmp), instance))
        device = Device(testbed)
        try:
            device.tb.wait_for(lambda: device.tb.unit_state("hostd.service") == "active", 60, "hostd active")
            for section in sections:
                print(f"{section} ...", file=sys.stderr)
                section_started = time.monotonic()
                if section == "boot":
                    boot.run(device, report, args.runs)
                elif section == "api":
                    api.run(device, report)
                elif section == "flash":
                    flash.run(device, report)
                elif section == "idle":
                    idle.run(device, report)
                elif section == "cli":
                    cli.run(device, report, args.cli_runs)
                elif section == "scale":
                    scale.run(device, report)
                report.details.setdefault("section_seconds", {})[section] = time.monotonic() - section_started
        finally:
            if not (args.keep or args.attach):
                harness.Testbed.down()
    machine["load average (end)"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print()
    for key, value in machine.items():
        print(f"{key}: {value}")
    print(f"wall time: {time.monotonic() - started:.0f} s\n")
    print(format_table(report.rows))
    if args.markdown:
        print()
        print(format_markdown(report.rows))
    if args.json:
        document = {"machine": machine, "rows": [row.as_dict() for row in report.rows], "details": report.details}
        args.json.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
