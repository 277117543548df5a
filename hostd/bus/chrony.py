"""chrony through chronyc (chronyd has no D-Bus API): reload sources, list them, read tracking."""

from __future__ import annotations

from dataclasses import dataclass

from hostd.bus import errors
from hostd.bus.base import DEFAULT_TIMEOUT, CommandFeature, TolerantStrEnum

_NOT_RUNNING_MARKER = "Cannot talk to daemon"
CHRONY_UNITS = ("chronyd.service", "chrony.service")  # balenaOS's name, Debian's
_SOURCE_FIELDS = 10
_TRACKING_FIELDS = 14


class SourceMode(TolerantStrEnum):
    SERVER = "^"
    PEER = "="
    REFCLOCK = "#"
    UNKNOWN = "unknown"


class SourceState(TolerantStrEnum):
    SELECTED = "*"
    COMBINED = "+"
    NOT_COMBINED = "-"
    UNUSABLE = "?"
    FALSETICKER = "x"
    TOO_VARIABLE = "~"
    UNKNOWN = "unknown"


class LeapStatus(TolerantStrEnum):
    NORMAL = "Normal"
    INSERT_SECOND = "Insert second"
    DELETE_SECOND = "Delete second"
    NOT_SYNCHRONISED = "Not synchronised"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ChronySource:
    mode: SourceMode
    state: SourceState
    address: str
    stratum: int
    poll: int
    """log2 of the polling interval in seconds."""
    reach: int
    """The reachability register, 8 bits, newest poll in bit 0."""
    last_sample_age: int
    """Seconds since the last sample."""
    offset: float
    """Seconds, of the last sample after adjustments."""
    error: float
    """Seconds, the error bound of the last sample."""


@dataclass(frozen=True)
class ChronyTracking:
    reference_id: str
    """Hex; 7F7F0101 is the local clock, 00000000 none."""
    reference: str
    stratum: int
    reference_time: float
    """Unix time of the last measurement from the reference (0 when none)."""
    system_time_offset: float
    """Seconds the system clock is behind NTP time (negative: ahead); chronyd slews it away."""
    last_offset: float
    rms_offset: float
    frequency_ppm: float
    update_interval: float
    leap_status: LeapStatus

    @property
    def synchronized(self) -> bool:
        return self.leap_status not in (LeapStatus.NOT_SYNCHRONISED, LeapStatus.UNKNOWN)


def parse_sources(csv: str) -> list[ChronySource]:
    """Parse `chronyc -c sources` output; lines that are not a source are skipped."""
    sources = []
    for line in csv.splitlines():
        fields = line.split(",")
        if len(fields) != _SOURCE_FIELDS:
            continue
        mode, state, address, stratum, poll, reach, age, offset, _measured_offset, error = fields
        try:
            source = ChronySource(
                mode=SourceMode(mode),
                state=SourceState(state),
                address=address,
                stratum=int(stratum),
                poll=int(poll),
                reach=int(reach, 8),
                last_sample_age=int(age),
                offset=float(offset),
                error=float(error),
            )
        except ValueError:
            continue
        sources.append(source)
    return sources


def parse_tracking(csv: str) -> ChronyTracking:
    """Parse `chronyc -c tracking` output."""
    fields = csv.strip().split(",")
    if len(fields) != _TRACKING_FIELDS:
        raise ValueError(f"chronyc tracking printed {len(fields)} fields, expected {_TRACKING_FIELDS}")
    ref_id, reference, stratum, ref_time, system_time, last, rms, frequency, *_, interval, leap = fields
    return ChronyTracking(
        reference_id=ref_id,
        reference=reference,
        stratum=int(stratum),
        reference_time=float(ref_time),
        system_time_offset=float(system_time),
        last_offset=float(last),
        rms_offset=float(rms),
        frequency_ppm=float(frequency),
        update_interval=float(interval),
        leap_status=LeapStatus(leap),
    )


class Chrony(CommandFeature):
    key = "chrony"

    def __init__(self, *, chronyc: str = "chronyc", timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(chronyc, timeout=timeout)

    async def reload_sources(self) -> None:
        """Make chronyd re-read its sourcedir files (added NTP servers)."""
        await self._run("reload", "sources")

    async def burst(self) -> None:
        """Poll every source now (4 good samples of at most 4 tries), and choose again among them:
        what chronyd does when it has lost its sources and the network may be back."""
        await self._run("burst", "4/4")
        await self._run("reselect")

    async def sources(self) -> list[ChronySource]:
        return parse_sources(await self._run("-n", "-c", "sources"))

    async def tracking(self) -> ChronyTracking:
        output = await self._run("-n", "-c", "tracking")
        try:
            return parse_tracking(output)
        except ValueError as err:
            raise errors.RemoteError(str(err)) from err

    def _failure(self, command_line: str, returncode: int, stderr: str) -> errors.BusError:
        if _NOT_RUNNING_MARKER in stderr:
            self._degrade("chronyd is not running")
            return errors.ServiceUnavailable(f"chronyd is not running ({command_line!r}: {stderr.strip()})")
        return super()._failure(command_line, returncode, stderr)
