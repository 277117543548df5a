"""persistentLogging: on, journald writes to /var/log/journal, bound from the data partition,
and the journal keeps earlier boots; off, it keeps an 8M journal in RAM again, without reboot."""

from __future__ import annotations

import re
import time

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

DROPIN = "/run/systemd/journald.conf.d/hostd.conf"
JOURNALD = "systemd-journald.service"


def journald_settings(hostd: Hostd) -> dict[str, str]:
    """The effective [Journal] settings: the last value of each key in journald.conf and its drop-ins."""
    out = hostd.tb.exec(["systemd-analyze", "cat-config", "systemd/journald.conf"]).stdout
    settings = {}
    for line in out.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def active_journal_file(hostd: Hostd) -> str:
    """The journal file journald writes now (the one `journalctl --header` shows ONLINE)."""
    out = hostd.tb.exec(["journalctl", "--header", "--no-pager"]).stdout
    path = ""
    for line in out.splitlines():
        if line.startswith("File path:"):
            path = line.split(":", 1)[1].strip()
        elif line.startswith("State:") and "ONLINE" in line:
            return path
    return ""


def boots(hostd: Hostd) -> list[str]:
    out = hostd.tb.exec(["journalctl", "--list-boots", "--no-pager", "-q"]).stdout
    return [line.split()[1] for line in out.splitlines() if line.strip()]


def log_marker(hostd: Hostd, tag: str) -> str:
    marker = f"{tag}-{time.monotonic_ns()}"
    hostd.tb.exec(["logger", "-t", "systest", marker])
    return marker


def in_journal(hostd: Hostd, marker: str, *where: str) -> bool:
    out = hostd.tb.exec(["journalctl", "--no-pager", "-o", "cat", "-t", "systest", *where], check=False).stdout
    return marker in out


def reset_start_limit(hostd: Hostd) -> None:
    """Zero journald's start-rate counter (systemd allows 5 starts in 10 s): hostd restarts
    journald at each storage change, and these tests change it often; the limit itself is
    test_quick_toggles_keep_journald_running's subject."""
    hostd.tb.exec(["systemctl", "reset-failed", JOURNALD])


def set_persistent(hostd: Hostd, on: bool) -> None:
    """Edit config.json and wait until journald runs with the storage it asks for."""
    reset_start_limit(hostd)
    journald_before = hostd.unit_props("systemd-journald.service", "InvocationID")["InvocationID"]
    hostd.edit_config(persistentLogging=on)
    hostd.wait_describe(lambda d: d["logging"]["persistent"] is on, what=f"persistentLogging {on}")
    hostd.tb.wait_for(
        lambda: active_journal_file(hostd).startswith("/var/log/journal/" if on else "/run/log/journal/"),
        10,
        "journald writing to the new storage",
    )
    assert hostd.unit_props("systemd-journald.service", "InvocationID")["InvocationID"] != journald_before


def test_persistent_journal_on_data_partition_across_reboot(boot: Hostd) -> None:
    """persistentLogging on: journald writes under the data partition's /var/log/journal (the
    files show on the host side) and `journalctl --list-boots` grows by one across a reboot."""
    tb = boot.tb
    set_persistent(boot, True)
    assert journald_settings(boot)["Storage"] == "persistent"
    machine_id = tb.exec(["cat", "/etc/machine-id"]).stdout.strip()
    on_data = tb.data_dir / "root-overlay/var/log/journal" / machine_id / "system.journal"
    assert on_data.is_file() and on_data.stat().st_size > 0
    assert active_journal_file(boot) == f"/var/log/journal/{machine_id}/system.journal"
    marker = log_marker(boot, "before-reboot")
    tb.wait_for(lambda: in_journal(boot, marker, "-D", "/var/log/journal"), 10, "marker in /var/log/journal")

    before = boots(boot)
    tb.reboot()
    boot.wait_ready()
    tb.wait_for(lambda: active_journal_file(boot).startswith("/var/log/journal/"), 10, "persistent journal")
    after = boots(boot)
    assert len(after) == len(before) + 1 and after[:-1] == before, (before, after)
    assert in_journal(boot, marker, "-b", "-1")


def test_volatile_journal_without_reboot(boot: Hostd) -> None:
    """persistentLogging off (from on): journald is restarted with Storage=volatile and
    RuntimeMaxUse=8M, writes to /run/log/journal, and nothing new reaches the data partition."""
    tb = boot.tb
    set_persistent(boot, True)
    leader = tb.leader
    set_persistent(boot, False)
    assert tb.leader == leader  # no reboot
    assert tb.exec(["test", "-e", DROPIN], check=False).returncode == 1  # the shipped defaults say it
    settings = journald_settings(boot)
    assert (settings["Storage"], settings["RuntimeMaxUse"]) == ("volatile", "8M")
    started = tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "systemd-journald", "-n", "5"]).stdout
    assert "Runtime Journal (/run/log/journal/" in started and "max 8.0M" in started, started
    marker = log_marker(boot, "volatile")
    tb.wait_for(lambda: in_journal(boot, marker), 10, "marker in the journal")
    assert not in_journal(boot, marker, "-D", "/var/log/journal")
    assert boot.describe()["logging"]["persistent"] is False
    assert "volatile" in boot.hostctl("status").stdout


def test_boot_with_default_logging_leaves_journald_alone(boot: Hostd) -> None:
    """With the default logging config, hostd writes no drop-in at boot and journald, started long
    before hostd with the shipped defaults (8M in RAM), is not restarted."""
    tb = boot.tb
    tb.reboot()
    boot.wait_ready()
    assert boot.describe()["logging"]["persistent"] is False
    assert tb.exec(["test", "-e", DROPIN], check=False).returncode == 1
    settings = journald_settings(boot)
    assert (settings["Storage"], settings["RuntimeMaxUse"]) == ("volatile", "8M")
    journald = boot.unit_props(JOURNALD, "ActiveEnterTimestampMonotonic", "NRestarts")
    hostd = boot.unit_props("hostd.service", "ExecMainStartTimestampMonotonic")
    assert int(journald["ActiveEnterTimestampMonotonic"]) < int(hostd["ExecMainStartTimestampMonotonic"])
    assert journald["NRestarts"] == "0"


def test_hostctl_logs_persistent_on_off(boot: Hostd) -> None:
    """`hostctl logs persistent on|off` inside the device switches the storage and prints the status."""
    reset_start_limit(boot)
    for state, path in (("on", "/var/log/journal/"), ("off", "/run/log/journal/")):
        r = boot.hostctl("logs", "persistent", state)
        assert r.returncode == 0, r.stderr
        assert ("Logging: persistent" if state == "on" else "Logging: volatile") in r.stdout
        boot.tb.wait_for(lambda p=path: active_journal_file(boot).startswith(p), 10, f"journal in {path}")


def test_quick_toggles_keep_journald_running(boot: Hostd) -> None:
    """Switching persistentLogging on and off three times in a row leaves journald running and logging."""
    tb = boot.tb
    reset_start_limit(boot)
    try:
        for on in (True, False, True, False, True, False):
            boot.edit_config(persistentLogging=on)
            boot.wait_describe(lambda d, on=on: d["logging"]["persistent"] is on, what=f"persistentLogging {on}")
        tb.wait_for(lambda: tb.unit_state(JOURNALD) in ("active", "failed"), 10, "journald settled")
        assert tb.unit_state(JOURNALD) == "active"
        marker = log_marker(boot, "after-toggles")
        tb.wait_for(lambda: in_journal(boot, marker), 5, "marker in the journal")
    finally:  # until fixed: bring journald back, and hostd's stdout stream with it
        sockets = ["systemd-journald.socket", "systemd-journald-dev-log.socket"]
        tb.exec(["systemctl", "reset-failed", JOURNALD, *sockets], check=False)
        tb.exec(["systemctl", "start", *sockets, JOURNALD], check=False)
        tb.restart_unit("hostd.service")
        boot.wait_ready()


def test_journal_usage_is_what_journalctl_reports(boot: Hostd) -> None:
    """hostd reads the journal's disk usage from its files at start (no journalctl process on the
    way to READY): what it reports is what `journalctl --disk-usage` says, to journalctl's rounding."""
    boot.tb.exec(["systemctl", "restart", "hostd.service"])
    boot.wait_ready()
    reported = boot.describe()["logging"]["journalUsage"]
    out = boot.tb.exec(["journalctl", "--disk-usage"]).stdout  # "... take up 8.0M in the file system."
    number, unit = re.search(r"take up (\d+(?:\.\d+)?)([BKMGT]?)", out).groups()  # type: ignore[union-attr]
    said = float(number) * 1024 ** "BKMGT".index(unit or "B")
    assert reported > 0 and abs(reported - said) <= max(0.1 * said, 0.05 * 1024 ** "BKMGT".index(unit or "B")), out
