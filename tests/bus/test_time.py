"""io.hostd1's time properties on a private bus: the daemon's watchdog tick reads chrony (a fake
chronyc on PATH) and publishes TimeTrusted, TimeSource, LastSync and TimeTracking with
PropertiesChanged only when they change."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from hostd import api

from .support import wait_until
from .test_daemon import UUID, client, follow_signals, get_all, hostd_call, make_root, running_daemon

SYNCED = "0A000001,10.0.0.1,3,1700000000.25,-0.000001,0.0,0.0,-2.3,0.001,0.05,0.01,0.001,64.5,Normal"
UNSYNCED = "00000000,,0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,Not synchronised"


def fake_chronyc(directory: Path, tracking: Path) -> None:
    script = directory / "chronyc"
    script.write_text(f'#!/bin/sh\ncase "$*" in\n  *tracking*) cat {tracking} ;;\n  *) echo "200 OK" ;;\nesac\n')
    script.chmod(0o755)


def time_changes(signals: list) -> list[dict[str, object]]:
    return [
        {name: value.value for name, value in body[1].items() if name.startswith(("Time", "LastSync"))}
        for member, body in signals
        if member == "PropertiesChanged" and any(name.startswith(("Time", "LastSync")) for name in body[1])
    ]


async def test_time_properties_follow_chrony_from_the_watchdog_tick(tmp_path: Path, bus_address: str, monkeypatch):
    bin_dir, tracking = tmp_path / "bin", tmp_path / "tracking.csv"
    bin_dir.mkdir()
    tracking.write_text(UNSYNCED + "\n")
    fake_chronyc(bin_dir, tracking)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a tick every 50 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    layout = make_root(tmp_path, {"uuid": UUID})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        signals = await follow_signals(bus)
        values = await get_all(bus)
        assert (values["TimeTrusted"].value, values["TimeSource"].value, values["LastSync"].value) == (False, "rtc", 0)
        for _ in range(100):  # the first tick's chronyc may still be running
            describe = json.loads((await hostd_call(bus, "Describe")).body[0])
            if describe["time"]["tracking"]["leapStatus"]:
                break
            await asyncio.sleep(0.05)
        assert describe["time"]["tracking"]["leapStatus"] == "Not synchronised"
        assert "no https connectivity URI" in describe["time"]["problem"]  # unsynchronized, nothing to probe
        tracking.write_text(SYNCED + "\n")
        await wait_until(lambda: any(c.get("TimeSource") == "ntp" for c in time_changes(signals)), timeout=5)
        change = time_changes(signals)[-1]  # one signal, every changed time property in it
        assert {**change, "TimeTracking": list(change["TimeTracking"])} == {
            "TimeTrusted": True,
            "TimeSource": "ntp",
            "LastSync": 1700000000250000,
            "TimeTracking": ["10.0.0.1", 3, "Normal"],
        }
        seen = len(time_changes(signals))
        values = await get_all(bus)
        assert values["TimeTracking"].signature == "(sus)"
        await asyncio.sleep(0.5)  # ten ticks, nothing new: no further signal
        assert len(time_changes(signals)) == seen
        describe = json.loads((await hostd_call(bus, "Describe")).body[0])
        assert describe["time"]["trusted"] is True and describe["time"]["tracking"]["reference"] == "10.0.0.1"


def test_the_properties_are_in_the_contract() -> None:
    assert {name: api.PROPERTIES[name] for name in ("TimeTrusted", "TimeSource", "LastSync", "TimeTracking")} == {
        "TimeTrusted": "b",
        "TimeSource": "s",
        "LastSync": "t",
        "TimeTracking": "(sus)",
    }
