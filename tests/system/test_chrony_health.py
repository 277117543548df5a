"""chrony's health on the device, judged by real clients: with no NTP source answering, hostd
bursts (the peer receives the NTP requests of sources that were offline), then restarts chronyd
through systemd (a new invocation of chrony.service, a new chronyd in its journal), then backs off
(the second restart comes later than the first cycle could); a chronyd stopped on purpose stays
stopped.  hostd runs with short thresholds, set as a device under test sets them: a drop-in on
hostd.service (`--chrony-grace`, `--chrony-restart-after`, a shorter watchdog: ticks every 5 s).

Times are compared only as orders and lower bounds on the kernel's one monotonic clock, which the
peer's listener, systemd in the device and this test share: a loaded machine makes them later,
never wrong.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

GRACE, RESTART_AFTER = 10, 20  # seconds; hostd's defaults are 300 and 600
TICK = 5  # WatchdogSec=10: hostd checks chrony every 5 s
DROP_IN = "/run/systemd/system/hostd.service.d/zz-chrony-health-test.conf"
CHRONY = "chrony.service"  # Debian's name for balenaOS's chronyd.service
UNIT_WAIT = 300  # bounded waits: generous, a restart is due within a minute
NTP_LISTENER = """
import socket, sys, time
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((sys.argv[1], 123))
with open(sys.argv[2], "a") as log:
    while True:
        listener.recv(512)
        log.write(f"{time.monotonic()}\\n")
        log.flush()
"""


@contextlib.contextmanager
def hostd_with_short_thresholds(hostd: Hostd) -> Iterator[None]:
    tb = hostd.tb
    tb.exec(["mkdir", "-p", str(Path(DROP_IN).parent)])
    tb.exec(
        ["tee", DROP_IN],
        input="[Service]\nExecStart=\n"
        f"ExecStart=/usr/bin/hostd --verbose --chrony-grace {GRACE} --chrony-restart-after {RESTART_AFTER}\n"
        f"WatchdogSec={2 * TICK}\n",
    )
    tb.exec(["systemctl", "daemon-reload"])
    tb.restart_unit("hostd.service")
    hostd.wait_ready()
    try:
        yield
    finally:
        tb.exec(["rm", "-f", DROP_IN])
        tb.exec(["systemctl", "daemon-reload"])
        tb.restart_unit(CHRONY)  # as after a boot: sources online, unsynchronized
        tb.restart_unit("hostd.service")
        hostd.wait_ready()


@contextlib.contextmanager
def ntp_requests_at_peer(hostd: Hostd, log: Path) -> Iterator[Path]:
    """Every NTP request reaching the peer's address, one monotonic time a line; nothing answers."""
    tb = hostd.tb
    log.touch()
    argv = ["ip", "netns", "exec", tb.netns, sys.executable, "-c", NTP_LISTENER, tb.peer_ip, str(log)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tb.wait_for(
            lambda: process.poll() is not None or tb.peer_exec(["ss", "-Hlun", "sport = :123"]).stdout.strip(),
            10,
            "the NTP listener on the peer",
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        yield log
    finally:
        process.terminate()
        process.wait(timeout=10)


def chrony_unit(hostd: Hostd) -> dict[str, str]:
    return hostd.unit_props(
        CHRONY, "InvocationID", "ActiveState", "MainPID", "NRestarts", "ExecMainStartTimestampMonotonic"
    )


def started_at(unit: dict[str, str]) -> float:
    return int(unit["ExecMainStartTimestampMonotonic"]) / 1e6


def next_invocation(hostd: Hostd, after: dict[str, str]) -> dict[str, str]:
    def restarted() -> dict[str, str] | None:
        unit = chrony_unit(hostd)
        fresh = unit["InvocationID"] not in ("", after["InvocationID"]) and unit["ActiveState"] == "active"
        return unit if fresh else None

    return hostd.tb.wait_for(restarted, UNIT_WAIT, f"{CHRONY} restarted", interval=0.5)


def chronyd_started_in(hostd: Hostd, invocation: str) -> bool:
    """chronyd's own journal of that invocation of the unit says it started."""
    out = hostd.tb.exec(["journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={invocation}"]).stdout
    return "chronyd version" in out and "starting" in out


def test_unsynchronized_chrony_is_burst_then_restarted_with_backoff(hostd: Hostd, tmp_path: Path) -> None:
    tb = hostd.tb
    assert tb.exec(["chronyc", "-n", "-c", "tracking"]).stdout.strip().endswith("Not synchronised")
    tb.exec(["chronyc", "offline"])  # no NTP request leaves chronyd now, but for a burst
    first = chrony_unit(hostd)
    with ntp_requests_at_peer(hostd, tmp_path / "ntp-requests") as requests, hostd_with_short_thresholds(hostd):
        second = next_invocation(hostd, first)
        burst = [float(line) for line in requests.read_text().split()]
        third = next_invocation(hostd, second)
    # the burst: NTP requests from the offline sources, after chronyd's start and before the restart
    assert burst, "no NTP request reached the peer before chronyd was restarted"
    assert started_at(first) < burst[0] < started_at(second)
    # the restarts: hostd's, through systemd (not systemd's own Restart=), each a new chronyd
    assert first["NRestarts"] == second["NRestarts"] == third["NRestarts"]
    assert len({first["MainPID"], second["MainPID"], third["MainPID"]}) == 3
    assert chronyd_started_in(hostd, second["InvocationID"]) and chronyd_started_in(hostd, third["InvocationID"])
    # backing off: after a restart, a grace and then twice the wait before the next (less a tick for
    # the restarts' own latency, which may differ); without it, GRACE + RESTART_AFTER and a tick or two
    assert started_at(third) - started_at(second) >= GRACE + 2 * RESTART_AFTER - TICK


def test_stopped_chronyd_is_left_alone(hostd: Hostd) -> None:
    """chronyd stopped on purpose: hostd reads nothing on its command port through more than a
    whole burst-and-restart cycle of ticks, and neither starts nor restarts it."""
    tb = hostd.tb
    with hostd_with_short_thresholds(hostd):
        tb.exec(["systemctl", "stop", CHRONY])
        stopped = chrony_unit(hostd)
        assert stopped["ActiveState"] == "inactive"
        since = tb.exec(["date", "+%s"]).stdout.strip()
        not_read = "chrony's tracking not read: nothing listens on chronyd's command port"
        ticks_needed = (GRACE + RESTART_AFTER) // TICK + 4  # a whole cycle and more

        def ticks_seen() -> bool:
            out = tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "hostd.service", f"--since=@{since}"])
            return out.stdout.count(not_read) >= ticks_needed

        tb.wait_for(ticks_seen, UNIT_WAIT, f"{ticks_needed} ticks of hostd finding chronyd stopped", interval=1)
        after = chrony_unit(hostd)
        assert after["ActiveState"] == "inactive" and after["InvocationID"] == stopped["InvocationID"]
        assert after["ExecMainStartTimestampMonotonic"] == stopped["ExecMainStartTimestampMonotonic"]
