"""hostd-clock on the testbed device, whose clock (this machine's) is already good: the bootstrap
leaves it alone and says so; the periodic save is a systemd timer and writes the state partition.

Raising a clock that is behind needs a device with a clock of its own: tests/vm/test_clock_vm.py.
"""

from __future__ import annotations

import calendar
import json
import time

import pytest

from .device import Hostd

pytestmark = pytest.mark.system


def test_a_good_clock_is_left_alone_before_chrony_and_hostd(hostd: Hostd) -> None:
    tb = hostd.tb
    assert tb.unit_state("hostd-clock.service") == "active"
    record = json.loads(tb.exec(["cat", "/run/hostd/clock-bootstrap.json"]).stdout)
    assert record["source"] == "rtc" and record["before"] == record["after"], record
    # the device's clock is this machine's: it read the same time it has now, not a raised one
    assert record["after"] <= time.time() * 1e6
    build = calendar.timegm(time.strptime(tb.exec(["cat", "/etc/timestamp"]).stdout.strip(), "%Y%m%d%H%M%S"))
    assert record["after"] >= build * 1e6
    assert "clock raised" not in tb.journal("hostd-clock.service")
    # ordered before what reads the clock for real
    before = tb.systemctl("show", "-p", "Before", "--value", "hostd-clock.service").stdout.split()
    assert {"time-set.target", "chrony.service", "hostd.service", "sysinit.target"} <= set(before)


def test_the_time_is_saved_by_a_timer_not_by_hostd(hostd: Hostd) -> None:
    tb = hostd.tb
    assert tb.unit_state("hostd-clock-save.timer") == "active"
    assert tb.systemctl("show", "-p", "Triggers", "--value", "hostd-clock-save.timer").stdout.split() == [
        "hostd-clock-save.service"
    ]
    saved = tb.state_dir / "hostd" / "clock"
    started = int(time.time())
    tb.systemctl("start", "hostd-clock-save.service")
    assert tb.unit_state("hostd-clock-save.service") == "inactive"  # a oneshot that succeeded
    assert started <= int(saved.read_text()) <= int(time.time())
    assert not [p.name for p in saved.parent.iterdir() if p.name.startswith(".clock")]  # no temp file left
