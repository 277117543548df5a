"""io.hostd1's time properties on a private bus: the daemon's watchdog tick reads a real chronyd's
tracking from its command port and publishes TimeTrusted, TimeSource, LastSync and TimeTracking
with PropertiesChanged only when they change."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from hostd import api

from .support import real_chronyd, requires_chronyd, wait_until
from .test_daemon import UUID, client, follow_signals, get_all, hostd_call, make_root, running_daemon


def fake_chronyc(directory: Path) -> None:
    """The ntp step's `chronyc reload sources` (no sources to reload here)."""
    script = directory / "chronyc"
    script.write_text('#!/bin/sh\necho "200 OK"\n')
    script.chmod(0o755)


def time_changes(signals: list) -> list[dict[str, object]]:
    return [
        {name: value.value for name, value in body[1].items() if name.startswith(("Time", "LastSync"))}
        for member, body in signals
        if member == "PropertiesChanged" and any(name.startswith(("Time", "LastSync")) for name in body[1])
    ]


@requires_chronyd
async def test_time_properties_follow_chrony_from_the_watchdog_tick(tmp_path: Path, bus_address: str, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_chronyc(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a tick every 50 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    layout = make_root(tmp_path, {"uuid": UUID})
    chronyd_dir = tmp_path / "chronyd"
    chronyd_dir.mkdir(mode=0o700)
    with real_chronyd(chronyd_dir) as chronyd:
        monkeypatch.setattr("hostd.bus.chrony.CMDMON_ADDRESS", chronyd.address)
        async with running_daemon(layout, bus_address), client(bus_address) as bus:
            signals = await follow_signals(bus)
            values = await get_all(bus)
            assert (values["TimeTrusted"].value, values["TimeSource"].value, values["LastSync"].value) == (
                False,
                "rtc",
                0,
            )
            for _ in range(200):  # asked at the first tick, the answer read at the next
                describe = json.loads((await hostd_call(bus, "Describe")).body[0])
                if describe["time"]["tracking"]["leapStatus"]:
                    break
                await asyncio.sleep(0.05)
            assert describe["time"]["tracking"]["leapStatus"] == "Not synchronised"
            assert "no https connectivity URI" in describe["time"]["problem"]  # unsynchronized, nothing to probe
            chronyd.chronyc("local", "stratum", "3")  # synchronized, to its own clock
            reference_time = float(chronyd.chronyc("-n", "-c", "tracking").split(",")[3])
            await wait_until(lambda: any(c.get("TimeSource") == "ntp" for c in time_changes(signals)), timeout=10)
            change = time_changes(signals)[-1]  # one signal, every changed time property in it
            assert abs(int(change.pop("LastSync")) - reference_time * 1e6) <= 1  # chrony's reference time, µs
            assert {**change, "TimeTracking": list(change["TimeTracking"])} == {
                "TimeTrusted": True,
                "TimeSource": "ntp",
                "TimeTracking": ["", 3, "Normal"],  # the local clock has no address
            }
            seen = len(time_changes(signals))
            values = await get_all(bus)
            assert values["TimeTracking"].signature == "(sus)"
            await asyncio.sleep(0.5)  # ten ticks, nothing new: no further signal
            assert len(time_changes(signals)) == seen
            describe = json.loads((await hostd_call(bus, "Describe")).body[0])
            assert describe["time"]["trusted"] is True and describe["time"]["tracking"]["stratum"] == 3


def test_the_properties_are_in_the_contract() -> None:
    assert {name: api.PROPERTIES[name] for name in ("TimeTrusted", "TimeSource", "LastSync", "TimeTracking")} == {
        "TimeTrusted": "b",
        "TimeSource": "s",
        "LastSync": "t",
        "TimeTracking": "(sus)",
    }
