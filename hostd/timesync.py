"""Whether the clock can be trusted, what it stands on, and chrony kept healthy.

Checked from the daemon's watchdog tick (no timer of its own): chronyd's tracking is asked over its
command port at one tick and its answer read at the next, from a socket the event loop does not
watch, so a check wakes hostd no more than the watchdog does.  chronyd is asked at every tick while
it is not synchronized; once it is, every ``HEALTHY_INTERVAL``.  The clock's source, most trusted
first:

- ``ntp``: chrony is (or was, this boot) synchronized to a server;
- ``https``: a verified HTTPS server's time (``hostd.timeprobe``, run by hostd-time-probe.service
  while chrony is not synchronized): the clock agrees with it, or was raised to it;
- ``saved``, ``build``, ``rtc``: what the boot's clock bootstrap raised the clock to (its record),
  or the RTC as the kernel read it.  None of these is trusted.

chrony's health: unsynchronized for ``grace`` seconds (no selectable source) -> ``chronyc burst``
and ``reselect``; still so ``restart_after`` seconds later -> chronyd restarted through systemd,
the next restart waiting twice as long (at most ``max_restart_interval``): an offline device is
not restarting chronyd every few minutes.  A chronyd that does not run (nothing answers on its
command port) is left alone: stopped is systemd's or an administrator's decision.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hostd import fsutil
from hostd.bus import errors
from hostd.bus.chrony import CHRONY_UNITS, ChronyTracking
from hostd.record import Record

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.config import Config
    from hostd.layout import Layout

log = logging.getLogger("hostd.time")

PROBE_UNIT = "hostd-time-probe.service"
PROBE_JOB_TIMEOUT = 90.0  # the unit's TimeoutStartSec= is 60 s; the probe itself takes at most ~40 s
HEALTHY_INTERVAL = 300.0
"""Seconds between chrony checks while it is synchronized: a lost sync is seen within the burst's
grace, and LastSync and the tracking follow chrony's polls (64 s and more) closely enough."""
PROBE_FIRST_RETRY = 60.0
PROBE_MAX_RETRY = 3600.0
USEC = 1_000_000


class TimeSource(StrEnum):
    NTP = "ntp"
    HTTPS = "https"
    SAVED = "saved"
    BUILD = "build"
    RTC = "rtc"


TRUSTED_SOURCES = frozenset({TimeSource.NTP, TimeSource.HTTPS})


class HealthAction(StrEnum):
    NONE = "none"
    BURST = "burst"
    RESTART = "restart"


class ChronyHealth:
    """chrony's health from its synchronization, observed once per tick: what to do about it."""

    def __init__(
        self, grace: float = 300.0, restart_after: float = 600.0, max_restart_interval: float = 6 * 3600.0
    ) -> None:
        self.grace = grace
        self.restart_after = restart_after
        self.max_restart_interval = max_restart_interval
        self._unsynchronized_since: float | None = None
        self._burst_at: float | None = None
        self._restart_wait: float | None = None

    def observe(self, now: float, synchronized: bool) -> HealthAction:
        if synchronized:
            self._unsynchronized_since = self._burst_at = self._restart_wait = None
            return HealthAction.NONE
        if self._unsynchronized_since is None:
            self._unsynchronized_since = now
            return HealthAction.NONE
        if self._burst_at is None:
            if now - self._unsynchronized_since < self.grace:
                return HealthAction.NONE
            self._burst_at = now
            return HealthAction.BURST
        wait = self._restart_wait or self.restart_after
        if now - self._burst_at < wait:
            return HealthAction.NONE
        # Restarted: the whole cycle again, the next restart later.
        self._unsynchronized_since, self._burst_at = now, None
        self._restart_wait = min(wait * 2, self.max_restart_interval)
        return HealthAction.RESTART


class ProbeSchedule:
    """When to run the HTTPS probe again after it failed: backoff from a minute to an hour."""

    def __init__(self, first_retry: float = PROBE_FIRST_RETRY, max_retry: float = PROBE_MAX_RETRY) -> None:
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._next_at = 0.0
        self._delay = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next_at

    def failed(self, now: float) -> None:
        self._delay = min(self._delay * 2, self.max_retry) if self._delay else self.first_retry
        self._next_at = now + self._delay


class TimeState(Record):
    """What the API shows: TimeTrusted, TimeSource, LastSync (µs, 0: never) and chrony's tracking."""

    __slots__ = ("last_sync", "offset", "problem", "source", "tracking", "trusted")

    def __init__(
        self,
        trusted: bool,
        source: str,
        last_sync: int,
        tracking: tuple[str, int, str],
        offset: float,
        problem: str = "",
    ) -> None:
        self.trusted = trusted
        self.source = source
        self.last_sync = last_sync
        self.tracking = tracking  # reference, stratum, leap status ("", 0, "") when unknown
        self.offset = offset  # seconds behind chrony's reference: Describe only, it moves every poll
        self.problem = problem  # why the time is not trusted ("" when it is)

    def _fields(self) -> tuple[object, ...]:
        return (self.trusted, self.source, self.last_sync, self.tracking, self.problem)  # not the offset

    def as_dict(self) -> dict[str, Any]:
        reference, stratum, leap = self.tracking
        return {
            "trusted": self.trusted,
            "source": self.source,
            "lastSync": self.last_sync,
            "problem": self.problem,
            "tracking": {"reference": reference, "stratum": stratum, "leapStatus": leap, "offset": self.offset},
        }


# The kernel's largest maximum error (NTP_PHASE_LIMIT): a clock no NTP daemon disciplines has it.
UNSYNCHRONIZED_MAXERROR_US = 16_000_000


def kernel_synchronized() -> bool:
    """TimeSynchronized: the kernel's clock discipline says an NTP daemon keeps the clock, read as
    systemd-timedated reads it for its NTPSynchronized (adjtimex without changes: a maximum error
    under 16 s), without starting timedated (bus-activated, 60-70 ms of a start that found it
    gone).  False where the kernel will not say (a seccomp filter: a container), as timedated's."""
    import ctypes  # the config watch loads it right after READY anyway (inotify)

    adjtimex, timex_type = _adjtimex()
    timex = timex_type()
    if adjtimex(ctypes.byref(timex)) < 0:
        return False
    return timex.maxerror < UNSYNCHRONIZED_MAXERROR_US


@functools.cache
def _adjtimex() -> tuple[Callable[[Any], int], type]:
    """libc's adjtimex, and struct timex: its leading fields, then room for the rest."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = (
            ("modes", ctypes.c_uint),  # 0: read only
            ("offset", ctypes.c_long),
            ("freq", ctypes.c_long),
            ("maxerror", ctypes.c_long),
            ("esterror", ctypes.c_long),
            ("status", ctypes.c_int),
            ("rest", ctypes.c_byte * 256),  # the kernel writes the whole struct (~200 bytes)
        )

    return ctypes.CDLL(None, use_errno=True).adjtimex, Timex


def bootstrap_source(layout: Layout) -> TimeSource:
    """What the boot's clock bootstrap left the clock on; the RTC's when it left no record."""
    try:
        with open(layout.clock_bootstrap_record, "rb") as file:
            record = json.loads(file.read())
        return TimeSource(record["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return TimeSource.RTC


def probe_target(config: Config) -> tuple[str, str] | None:
    """(URL, how to name it) to take the time from: the connectivity URI (by default
    ``<apiEndpoint>/connectivity-check``), if it is https; its value may carry a credential."""
    uri = config.connectivity_uri
    if uri and uri.lower().startswith("https://"):
        return uri, "the connectivity URI"
    return None


class TimeMonitor:
    def __init__(
        self,
        layout: Layout,
        services: Services,
        config: Callable[[], Config],
        publish: Callable[[], None],
        *,
        health: ChronyHealth | None = None,
        schedule: ProbeSchedule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layout = layout
        self.services = services
        self._config = config
        self._publish = publish
        self.health = health or ChronyHealth()
        self.schedule = schedule or ProbeSchedule()
        self._clock = clock
        self._boot_source = bootstrap_source(layout)
        self._tracking: ChronyTracking | None = None
        self._ntp_synced_at = 0  # µs: chrony's last reference time while synchronized
        self._https_at = 0  # µs: the verified HTTPS time, when it was taken
        self._problem = ""
        self._checked_synchronized_at: float | None = None
        self._asked = False  # chronyd was asked at the last tick: its answer is read at this one
        self._action: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._read_earlier_probe()

    @property
    def state(self) -> TimeState:
        tracking = self._tracking
        if self._ntp_synced_at:
            source, last_sync = TimeSource.NTP, self._ntp_synced_at
        elif self._https_at:
            source, last_sync = TimeSource.HTTPS, self._https_at
        else:
            source, last_sync = self._boot_source, 0
        trusted = source in TRUSTED_SOURCES
        return TimeState(
            trusted=trusted,
            source=source.value,
            last_sync=last_sync,
            tracking=(tracking.reference, tracking.stratum, tracking.leap_status.value) if tracking else ("", 0, ""),
            offset=tracking.system_time_offset if tracking else 0.0,
            problem="" if trusted else self._problem or "no NTP server has answered yet",
        )

    def tick(self) -> None:
        """From the watchdog tick: chronyd's answer to the last tick's question, then the next
        question when one is due.  The answer is a tick old: fresh enough for minutes of grace."""
        if self._asked:
            self._asked = False
            self._observe(self._read_tracking())
        healthy_since = self._checked_synchronized_at
        if healthy_since is None or self._clock() - healthy_since >= HEALTHY_INTERVAL:
            try:
                self.services.chrony.ask_tracking()
                self._asked = True
            except errors.BusError as err:
                log.debug("chrony's tracking not asked: %s", err)

    def close(self) -> None:
        for task in (self._action, self._probe):
            if task is not None:
                task.cancel()

    def _read_tracking(self) -> ChronyTracking | None:
        try:
            tracking = self.services.chrony.read_tracking()
        except errors.BusError as err:
            log.debug("chrony's tracking not read: %s", err)
            return None
        if tracking is None:
            log.debug("chronyd did not answer the tracking request within a tick")
        return tracking

    def _observe(self, tracking: ChronyTracking | None) -> None:
        before = self.state
        if tracking is not None:
            self._tracking = tracking
            if tracking.synchronized:
                if not self._ntp_synced_at:
                    log.info("time trusted: chrony is synchronized to %s", tracking.reference or tracking.reference_id)
                self._ntp_synced_at = int(tracking.reference_time * USEC)
            action = self.health.observe(self._clock(), tracking.synchronized)
            if action is not HealthAction.NONE and (self._action is None or self._action.done()):
                self._action = asyncio.get_running_loop().create_task(self._keep_chrony_healthy(action))
        synchronized = tracking is not None and tracking.synchronized
        self._checked_synchronized_at = self._clock() if synchronized else None
        if not synchronized and not self.state.trusted and self.schedule.due(self._clock()):
            self._start_probe()
        if self.state != before:
            self._publish()

    async def _keep_chrony_healthy(self, action: HealthAction) -> None:
        try:
            if action is HealthAction.BURST:
                log.warning(
                    "chrony has had no selectable source for %.0f s: polling every source now", self.health.grace
                )
                await self.services.chrony.burst()
            elif action is HealthAction.RESTART:
                unit = self._chrony_unit()
                log.warning("chrony is still not synchronized after a burst: restarting %s", unit)
                await self.services.systemd.restart_unit(unit)
        except errors.BusError as err:
            log.warning("chrony's %s failed: %s", action.value, err)

    def _chrony_unit(self) -> str:
        systemd = self.services.systemd
        return next((unit for unit in CHRONY_UNITS if systemd.followed_unit_state(unit) is not None), CHRONY_UNITS[0])

    # -- the HTTPS probe --------------------------------------------------------------------

    def _start_probe(self) -> None:
        if self._probe is not None and not self._probe.done():
            return
        target = probe_target(self._config())
        if target is None:
            problem = "no NTP server has answered, and no https connectivity URI to take the time from"
            if problem != self._problem:
                log.warning("time not trusted: %s", problem)
            self._problem = problem
            self.schedule.failed(self._clock())
            return
        self._probe = asyncio.get_running_loop().create_task(self._run_probe(*target))

    async def _run_probe(self, url: str, label: str) -> None:
        before = self.state
        config = self._config()
        from hostd.keys import root_ca_pem

        request = {"url": url, "label": label, "ca": root_ca_pem(config.root_ca) if config.root_ca else ""}
        result: dict[str, Any] = {}
        try:
            await asyncio.to_thread(self._write_request, request)
            job = await self.services.systemd.start_unit(PROBE_UNIT, job_timeout=PROBE_JOB_TIMEOUT)
            result = self._read_probe_result() or {"ok": False, "error": f"{PROBE_UNIT} gave no result ({job.value})"}
        except (OSError, errors.BusError) as err:
            result = {"ok": False, "error": f"{PROBE_UNIT} could not run: {err}"}
        if result.get("ok"):
            self._https_at = int(result["time"])
            log.info("time trusted: verified by %s over https (%s)", label, _stepped(result))
        else:
            self._problem = f"no NTP server has answered, and the HTTPS time probe failed: {result.get('error')}"
            log.warning("time not trusted: %s", self._problem)
            self.schedule.failed(self._clock())
        if self.state != before:
            self._publish()

    def _write_request(self, request: dict[str, Any]) -> None:
        fsutil.remove_file(self.layout.time_probe_result)
        fsutil.ensure_dir(os.path.dirname(self.layout.time_probe_request))
        fsutil.atomic_write(self.layout.time_probe_request, json.dumps(request).encode(), 0o600)

    def _read_probe_result(self) -> dict[str, Any] | None:
        try:
            with open(self.layout.time_probe_result, "rb") as file:
                result = json.loads(file.read())
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) else None

    def _read_earlier_probe(self) -> None:
        """hostd restarted within the boot: an earlier probe's verified time still holds."""
        result = self._read_probe_result()
        if result and result.get("ok") and isinstance(result.get("time"), int):
            self._https_at = result["time"]


def _stepped(result: dict[str, Any]) -> str:
    if result.get("stepped"):
        return f"the clock was {result.get('offset')} s behind and was set"
    return f"the clock was {result.get('offset')} s off"
