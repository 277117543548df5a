"""chrony (it has no D-Bus API): through chronyc, reload sources, list them, burst; its tracking
read from chronyd's command port directly (no process per read).

The command port speaks chrony's command protocol, version 6 (chrony's candm.h): a request is a
20-byte header (version, packet type, command, attempt, sequence) padded with zeros to the length
of its reply, so that no request draws a larger answer; a reply is a 28-byte header (the same, plus
the reply's type and status) and then the report, every field in network byte order.  chronyd
answers monitoring requests such as tracking over UDP on 127.0.0.1:323 without authentication:
its default, which balenaOS's chrony.conf keeps (it sets no ``cmdport`` nor ``bindcmdaddress``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

from hostd.bus import errors
from hostd.bus.base import DEFAULT_TIMEOUT, CommandFeature, TolerantStrEnum
from hostd.record import Record

_NOT_RUNNING_MARKER = "Cannot talk to daemon"
CHRONY_UNITS = ("chronyd.service", "chrony.service")  # balenaOS's name, Debian's
_SOURCE_FIELDS = 10
CMDMON_ADDRESS = ("127.0.0.1", 323)
_PROTOCOL_VERSION = 6
_REQUEST, _REPLY = 1, 2
_REQ_TRACKING, _RPY_TRACKING = 33, 5
_STATUS_SUCCESS = 0
_REQUEST_HEADER = struct.Struct("!BBxxHHI8x")  # version, type, command, attempt, sequence
_REPLY_HEADER = struct.Struct("!BBxxHHH6xI8x")  # version, type, command, reply type, status, sequence
# reference ID, its address (16 bytes, then the family), stratum, leap status, reference time
# (seconds' high and low 32 bits, nanoseconds), then 9 of chrony's 32-bit floats: correction, last
# offset, RMS offset, frequency, residual frequency, skew, root delay, root dispersion, update interval
_TRACKING = struct.Struct("!I16sH2xHHIII9I")
_TRACKING_LENGTH = _REPLY_HEADER.size + _TRACKING.size
_NO_HIGH_SECONDS = 0x7FFFFFFF  # a 32-bit time: the high word unused
_FAMILY_INET4, _FAMILY_INET6 = 1, 2
_LEAP_STATUS = ("Normal", "Insert second", "Delete second", "Not synchronised")


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


class ChronySource(Record):
    __slots__ = ("address", "error", "last_sample_age", "mode", "offset", "poll", "reach", "state", "stratum")

    def __init__(
        self,
        mode: SourceMode,
        state: SourceState,
        address: str,
        stratum: int,
        poll: int,
        reach: int,
        last_sample_age: int,
        offset: float,
        error: float,
    ) -> None:
        self.mode = mode
        self.state = state
        self.address = address
        self.stratum = stratum
        self.poll = poll  # log2 of the polling interval in seconds
        self.reach = reach  # the reachability register, 8 bits, newest poll in bit 0
        self.last_sample_age = last_sample_age  # seconds since the last sample
        self.offset = offset  # seconds, of the last sample after adjustments
        self.error = error  # seconds, the error bound of the last sample


class ChronyTracking(Record):
    __slots__ = (
        "frequency_ppm",
        "last_offset",
        "leap_status",
        "reference",
        "reference_id",
        "reference_time",
        "rms_offset",
        "stratum",
        "system_time_offset",
        "update_interval",
    )

    def __init__(
        self,
        reference_id: str,
        reference: str,
        stratum: int,
        reference_time: float,
        system_time_offset: float,
        last_offset: float,
        rms_offset: float,
        frequency_ppm: float,
        update_interval: float,
        leap_status: LeapStatus,
    ) -> None:
        self.reference_id = reference_id  # hex; 7F7F0101 is the local clock, 00000000 none
        self.reference = reference
        self.stratum = stratum
        self.reference_time = reference_time  # Unix time of the last measurement from the reference (0: none)
        # Seconds the system clock is behind NTP time (negative: ahead); chronyd slews it away.
        self.system_time_offset = system_time_offset
        self.last_offset = last_offset
        self.rms_offset = rms_offset
        self.frequency_ppm = frequency_ppm
        self.update_interval = update_interval
        self.leap_status = leap_status

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


def tracking_request(sequence: int) -> bytes:
    return _REQUEST_HEADER.pack(_PROTOCOL_VERSION, _REQUEST, _REQ_TRACKING, 0, sequence).ljust(_TRACKING_LENGTH, b"\0")


def parse_tracking_reply(datagram: bytes, sequence: int) -> ChronyTracking | None:
    """chronyd's tracking reply to the request with this sequence number; None for any other
    datagram (a late answer to an earlier request).  Raises RemoteError when chronyd refused."""
    if len(datagram) < _REPLY_HEADER.size:
        return None
    version, kind, command, reply, status, echoed = _REPLY_HEADER.unpack_from(datagram)
    if (kind, command, echoed) != (_REPLY, _REQ_TRACKING, sequence):
        return None
    if status != _STATUS_SUCCESS or version != _PROTOCOL_VERSION:
        raise errors.RemoteError(f"chronyd refused the tracking request (status {status}, protocol {version})")
    if reply != _RPY_TRACKING or len(datagram) < _TRACKING_LENGTH:
        raise errors.RemoteError(f"chronyd answered tracking with reply type {reply}, {len(datagram)} bytes")
    ref_id, address, family, stratum, leap, high, low, nanoseconds, *floats = _TRACKING.unpack_from(
        datagram, _REPLY_HEADER.size
    )
    correction, last, rms, frequency, _residual, _skew, _delay, _dispersion, interval = map(_chrony_float, floats)
    seconds = (0 if high == _NO_HIGH_SECONDS else high << 32) | low
    return ChronyTracking(
        reference_id=f"{ref_id:08X}",
        reference=_reference_name(ref_id, family, address),
        stratum=stratum,
        reference_time=seconds + nanoseconds / 1e9,
        system_time_offset=correction,
        last_offset=last,
        rms_offset=rms,
        frequency_ppm=frequency,
        update_interval=interval,
        leap_status=LeapStatus(_LEAP_STATUS[leap] if leap < len(_LEAP_STATUS) else "unknown"),
    )


def _chrony_float(raw: int) -> float:
    """chrony's 32-bit float: a 7-bit signed exponent over a 25-bit signed coefficient,
    coefficient * 2 ** (exponent - 25)."""
    exponent, coefficient = raw >> 25, raw & 0x1FFFFFF
    exponent -= 0x80 if exponent & 0x40 else 0
    coefficient -= 0x2000000 if coefficient & 0x1000000 else 0
    return coefficient * 2.0 ** (exponent - 25)


def _reference_name(ref_id: int, family: int, address: bytes) -> str:
    """The reference's address, or for a reference clock its ID as text ("PPS", "GPS"), as
    ``chronyc -n tracking`` names it; "" for none or the local clock."""
    if family == _FAMILY_INET4:
        return str(ipaddress.IPv4Address(address[:4]))
    if family == _FAMILY_INET6:
        return str(ipaddress.IPv6Address(address))
    name = ref_id.to_bytes(4, "big").split(b"\0")[0]
    return name.decode() if name.isascii() and name.decode().isprintable() else ""


class Chrony(CommandFeature):
    key = "chrony"

    def __init__(
        self,
        *,
        chronyc: str = "chronyc",
        timeout: float = DEFAULT_TIMEOUT,
        cmdmon_address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(chronyc, timeout=timeout)
        self.cmdmon_address = cmdmon_address or CMDMON_ADDRESS
        self._cmdmon: socket.socket | None = None
        self._asked: int | None = None  # the sequence number of the tracking request awaiting its answer

    async def close(self) -> None:
        if self._cmdmon is not None:
            self._cmdmon.close()
            self._cmdmon = None

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

    def ask_tracking(self) -> None:
        """Ask chronyd for its tracking over the command port.  The answer waits in the socket,
        which the event loop does not watch, until read_tracking(): asking costs no wakeup."""
        if self._cmdmon is None:
            # connected: chronyd's answers only, and an ICMP "port unreachable" (chronyd stopped)
            # comes back to this socket as ECONNREFUSED
            cmdmon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            cmdmon.connect(self.cmdmon_address)
            self._cmdmon = cmdmon
        sequence = int.from_bytes(os.urandom(4), "big")
        try:
            self._cmdmon.send(tracking_request(sequence))
        except OSError as err:  # a full buffer, or ECONNREFUSED left from the last request
            self._asked = None
            raise errors.ServiceUnavailable(f"chronyd's command port {self._port_name()}: {err}") from None
        self._asked = sequence

    def read_tracking(self) -> ChronyTracking | None:
        """chronyd's answer to the last ask_tracking(), without waiting: None when it has not
        answered (yet).  Raises ServiceUnavailable when nothing listens on the command port."""
        sequence, self._asked = self._asked, None
        if self._cmdmon is None or sequence is None:
            return None
        tracking, refused = None, False
        while True:
            try:
                datagram = self._cmdmon.recv(_TRACKING_LENGTH + 1)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                refused = True
                continue
            tracking = parse_tracking_reply(datagram, sequence) or tracking
        if tracking is not None:
            self._recover()
        elif refused:
            self._degrade("chronyd is not running")
            raise errors.ServiceUnavailable(f"nothing listens on chronyd's command port {self._port_name()}")
        return tracking

    def _port_name(self) -> str:
        host, port = self.cmdmon_address
        return f"{host}:{port}"

    def _failure(self, command_line: str, returncode: int, stderr: str) -> errors.BusError:
        if _NOT_RUNNING_MARKER in stderr:
            self._degrade("chronyd is not running")
            return errors.ServiceUnavailable(f"chronyd is not running ({command_line!r}: {stderr.strip()})")
        return super()._failure(command_line, returncode, stderr)
