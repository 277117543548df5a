"""The clock's trust and chrony's health, decided from chrony's tracking and the probe's result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hostd import config as cfg
from hostd import timeprobe
from hostd.bus import errors
from hostd.bus.chrony import ChronyTracking, LeapStatus
from hostd.bus.systemd import JobResult
from hostd.timesync import (
    HEALTHY_INTERVAL,
    ChronyHealth,
    HealthAction,
    ProbeSchedule,
    TimeMonitor,
    TimeSource,
    bootstrap_source,
)

SYNCED = ChronyTracking("C0A80101", "192.168.1.1", 3, 1700000000.5, -0.000001, 0.0, 0.0, -2.3, 64.5, LeapStatus.NORMAL)
UNSYNCED = ChronyTracking("00000000", "", 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, LeapStatus.NOT_SYNCHRONISED)


def test_health_burst_after_grace_then_restart_with_backoff() -> None:
    health = ChronyHealth(grace=300, restart_after=600, max_restart_interval=1800)
    assert health.observe(0, False) is HealthAction.NONE  # first seen unsynchronized
    assert health.observe(299, False) is HealthAction.NONE
    assert health.observe(300, False) is HealthAction.BURST
    assert health.observe(600, False) is HealthAction.NONE
    assert health.observe(900, False) is HealthAction.RESTART
    # the cycle again, the restart twice as late
    assert health.observe(1200, False) is HealthAction.BURST
    assert health.observe(1200 + 1199, False) is HealthAction.NONE
    assert health.observe(1200 + 1200, False) is HealthAction.RESTART
    assert health.observe(2700, False) is HealthAction.BURST
    assert health.observe(2700 + 1800, False) is HealthAction.RESTART  # at most max_restart_interval


def test_health_resets_once_synchronized() -> None:
    health = ChronyHealth(grace=10, restart_after=10)
    health.observe(0, False)
    assert health.observe(10, False) is HealthAction.BURST
    assert health.observe(15, True) is HealthAction.NONE
    assert health.observe(16, False) is HealthAction.NONE
    assert health.observe(25, False) is HealthAction.NONE
    assert health.observe(26, False) is HealthAction.BURST


def test_probe_schedule_backs_off_to_an_hour() -> None:
    schedule = ProbeSchedule(first_retry=60, max_retry=3600)
    assert schedule.due(0)
    delays = []
    now = 0.0
    for _ in range(9):
        schedule.failed(now)
        step = next(d for d in range(1, 4000) if schedule.due(now + d))
        delays.append(step)
        now += step
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_bootstrap_record(device) -> None:
    record = Path(device.layout.clock_bootstrap_record)
    assert bootstrap_source(device.layout) is TimeSource.RTC  # no record: the RTC's
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"source": "saved", "before": 946684800000000, "after": 1764000000000000}))
    assert bootstrap_source(device.layout) is TimeSource.SAVED
    record.write_text("{")
    assert bootstrap_source(device.layout) is TimeSource.RTC


def test_probe_paths_are_the_layouts(device) -> None:
    from hostd.layout import Layout

    layout = Layout()
    assert (str(layout.time_probe_request), str(layout.time_probe_result)) == (timeprobe.REQUEST, timeprobe.RESULT)


class FakeChrony:
    """chronyd's command port: asked at one tick, its answer (None: chronyd not running) read at the next."""

    def __init__(self) -> None:
        self.answer: ChronyTracking | None = UNSYNCED
        self.calls: list[str] = []

    def ask_tracking(self) -> None:
        self.calls.append("tracking")

    def read_tracking(self) -> ChronyTracking | None:
        if self.answer is None:
            raise errors.ServiceUnavailable("nothing listens on chronyd's command port")
        return self.answer

    async def burst(self) -> None:
        self.calls.append("burst")


class FakeSystemd:
    def __init__(self, layout, result: dict[str, Any] | None) -> None:
        self.layout, self.result, self.started, self.restarted = layout, result, [], []

    async def start_unit(self, unit: str, *, job_timeout: float) -> JobResult:
        self.started.append((unit, json.loads(Path(self.layout.time_probe_request).read_text())))
        if self.result is not None:
            Path(self.layout.time_probe_result).write_text(json.dumps(self.result))
        return JobResult.DONE

    async def restart_unit(self, unit: str) -> JobResult:
        self.restarted.append(unit)
        return JobResult.DONE

    def followed_unit_state(self, unit: str) -> object:
        return "active" if unit == "chrony.service" else None


def monitor(device, config: dict[str, Any], result: dict[str, Any] | None = None):
    device.write_config(config)
    now = [0.0]
    services = SimpleNamespace(chrony=FakeChrony(), systemd=FakeSystemd(device.layout, result))
    published: list[object] = []
    time_monitor = TimeMonitor(
        device.layout,
        services,  # type: ignore[arg-type]
        lambda: cfg.load(device.layout).config,
        lambda: published.append(time_monitor.state),
        health=ChronyHealth(grace=30, restart_after=60),
        clock=lambda: now[0],
    )
    time_monitor.tick()  # the first tick asks chronyd; each settle() reads the last answer
    return time_monitor, services, published, now


async def settle(time_monitor: TimeMonitor) -> None:
    """One watchdog tick (the answer to the last tick's question read, the next asked) and what it started."""
    time_monitor.tick()
    for task in (time_monitor._action, time_monitor._probe):
        if task is not None:
            await task


URI = {"uuid": "0123456789abcdef0123456789abcdef", "os": {"network": {"connectivity": {"uri": "https://api.test/x"}}}}


def test_synchronized_chrony_is_trusted_and_nothing_else_runs(device) -> None:
    time_monitor, services, published, now = monitor(device, URI)
    services.chrony.answer = SYNCED

    assert time_monitor.state.source == "rtc"  # asked; the answer waits for the next tick

    async def run() -> None:
        await settle(time_monitor)
        await settle(time_monitor)

    asyncio.run(run())
    state = time_monitor.state
    assert (state.trusted, state.source, state.last_sync) == (True, "ntp", 1700000000500000)
    assert state.tracking == ("192.168.1.1", 3, "Normal")
    assert services.chrony.calls == ["tracking"]  # synchronized: the next ticks ask nothing, no probe
    assert services.systemd.started == [] and len(published) == 1
    now[0] = HEALTHY_INTERVAL  # one check every HEALTHY_INTERVAL while synchronized
    asyncio.run(settle(time_monitor))
    asyncio.run(settle(time_monitor))
    assert services.chrony.calls == ["tracking", "tracking"] and len(published) == 1  # nothing changed: no signal


def test_no_ntp_the_https_probe_is_asked_and_trusted(device) -> None:
    verified = {"ok": True, "time": 1764000000000000, "offset": 0.2, "stepped": False, "url": "the connectivity URI"}
    time_monitor, services, published, _ = monitor(device, URI, verified)
    asyncio.run(settle(time_monitor))
    [(unit, request)] = services.systemd.started
    assert unit == "hostd-time-probe.service"
    assert request == {"url": "https://api.test/x", "label": "the connectivity URI", "ca": ""}
    assert Path(device.layout.time_probe_request).stat().st_mode & 0o777 == 0o600
    state = time_monitor.state
    assert (state.trusted, state.source, state.last_sync, state.problem) == (True, "https", 1764000000000000, "")
    assert published[-1] == state


def test_nothing_reachable_is_untrusted_with_the_reason_and_retried_later(device) -> None:
    failed = {"ok": False, "error": "cannot connect: Network is unreachable", "url": "the connectivity URI"}
    time_monitor, services, _, now = monitor(device, URI, failed)
    asyncio.run(settle(time_monitor))
    state = time_monitor.state
    assert (state.trusted, state.source) == (False, "rtc")
    assert state.problem.endswith("the HTTPS time probe failed: cannot connect: Network is unreachable")
    asyncio.run(settle(time_monitor))
    assert len(services.systemd.started) == 1  # backing off
    now[0] = 60.0
    asyncio.run(settle(time_monitor))
    assert len(services.systemd.started) == 2


def test_without_an_https_uri_there_is_no_probe(device) -> None:
    time_monitor, services, _, _ = monitor(device, {"uuid": "0123456789abcdef0123456789abcdef"})
    asyncio.run(settle(time_monitor))
    assert services.systemd.started == []
    assert "no https connectivity URI" in time_monitor.state.problem


def test_unhealthy_chrony_gets_a_burst_then_a_restart(device) -> None:
    time_monitor, services, _, now = monitor(device, URI, {"ok": False, "error": "x"})

    async def run() -> None:
        for at in (0, 29, 30, 89, 90):
            now[0] = at
            await settle(time_monitor)

    asyncio.run(run())
    assert services.chrony.calls.count("burst") == 1
    assert services.systemd.restarted == ["chrony.service"]


def test_chronyd_not_running_is_not_restarted_by_hostd(device) -> None:
    """A stopped chronyd (nothing answers on its command port) is systemd's and the admin's: no burst, no restart."""
    time_monitor, services, _, now = monitor(device, URI, {"ok": False, "error": "x"})
    services.chrony.answer = None

    async def run() -> None:
        for at in (0, 100, 1000):
            now[0] = at
            await settle(time_monitor)

    asyncio.run(run())
    assert "burst" not in services.chrony.calls and services.systemd.restarted == []


def test_time_synchronized_is_the_kernels_maximum_error_under_16_s(monkeypatch: Any) -> None:
    """TimeSynchronized as timedated reads it: adjtimex's maximum error under 16 s; a refused
    adjtimex (a container's seccomp filter) is unsynchronized.  The real call answers too."""
    import ctypes

    from hostd import timesync

    assert isinstance(timesync.kernel_synchronized(), bool)  # this machine's kernel, read only
    _adjtimex, timex_type = timesync._adjtimex()

    def answering(maxerror: int, result: int = 0) -> Any:
        def adjtimex(pointer: Any) -> int:
            ctypes.cast(pointer, ctypes.POINTER(timex_type)).contents.maxerror = maxerror
            return result

        return lambda: (adjtimex, timex_type)

    for maxerror, result, synchronized in ((15_999_999, 0, True), (16_000_000, 5, False), (0, -1, False)):
        monkeypatch.setattr(timesync, "_adjtimex", answering(maxerror, result))
        assert timesync.kernel_synchronized() is synchronized, (maxerror, result)
