"""config.json edited on the device is applied without polling: hostd watches the boot partition
through inotify, and idle it is woken by nothing but its watchdog ping."""

from __future__ import annotations

import json
import time

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

WINDOW_SECONDS = 2.5  # a 1 s poll would wake hostd at least twice in it; the watchdog ping once at most (15 s)


def inotify_inodes(hostd: Hostd) -> set[int]:
    """The inodes hostd's inotify descriptors watch, from /proc/PID/fdinfo."""
    script = (
        "import os, sys\n"
        "pid = sys.argv[1]\n"
        "for fd in os.listdir(f'/proc/{pid}/fd'):\n"
        "    with open(f'/proc/{pid}/fdinfo/{fd}') as f:\n"
        "        for line in f:\n"
        "            if line.startswith('inotify wd:'):\n"
        "                print(int(line.split(' ino:')[1].split()[0], 16))\n"
    )
    out = hostd.tb.exec(["python3", "-c", script, str(hostd.pid())]).stdout
    return {int(line) for line in out.split()}


def wakeups(hostd: Hostd, pid: int) -> int:
    """Voluntary context switches of all hostd's threads: each is a sleep that a wakeup ended."""
    out = hostd.tb.exec(["sh", "-c", f"cat /proc/{pid}/task/*/status"]).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("voluntary_ctxt_switches:"))


def test_an_edit_on_the_device_is_applied_through_inotify(boot: Hostd) -> None:
    tb = boot.tb
    boot_inode = int(tb.exec(["stat", "-c", "%i", "/mnt/boot"]).stdout)
    assert boot_inode in inotify_inodes(boot)

    config = tb.read_config()
    config["hostname"] = "watched-edit"
    # In place, as an editor on the device that does not rename writes it.
    tb.exec(["sh", "-c", "cat > /mnt/boot/config.json"], input=json.dumps(config, indent=2) + "\n")
    hostname1 = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.hostname1")
    tb.wait_for(
        lambda: tb.busctl("get-property", *hostname1, "Hostname").stdout.strip() == 's "watched-edit"',
        10,
        "hostnamed's Hostname (a client outside the device)",
    )
    tb.wait_for(lambda: boot.mdns("watched-edit", 1000) == [tb.device_ip], 10, "watched-edit.local from the peer")
    assert "polling" not in tb.journal("hostd.service")


def test_idle_hostd_is_not_woken_by_a_poll(hostd: Hostd) -> None:
    """Some window of WINDOW_SECONDS passes with at most one wakeup of hostd (retried: a service's
    signal may wake it meanwhile); a once-a-second poll never allows that."""
    pid = hostd.pid()
    counts = []
    for _ in range(20):
        before = wakeups(hostd, pid)
        time.sleep(WINDOW_SECONDS)
        counts.append(wakeups(hostd, pid) - before)
        if counts[-1] <= 1:
            break
    assert min(counts) <= 1, counts
    assert hostd.pid() == pid
