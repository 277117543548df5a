"""chrony: its tracking from a real chronyd's command port, checked against chronyc's own reading;
chronyc's commands through a fake chronyc script: parsing, missing binary, daemon down, timeouts."""

from __future__ import annotations

import logging
import select
from pathlib import Path

import pytest

from hostd.bus import errors
from hostd.bus.chrony import (
    Chrony,
    ChronySource,
    ChronyTracking,
    LeapStatus,
    SourceMode,
    SourceState,
    _chrony_float,
    parse_sources,
    parse_tracking_reply,
    tracking_request,
)

from .support import RealChronyd, log_lines, real_chronyd, requires_chronyd

SOURCES_CSV = """\
^,*,192.168.1.1,2,6,377,35,-0.000012345,-0.000012987,0.015663000
^,+,2001:db8::123,3,7,17,4294967295,0.001000000,0.001200000,0.020000000
#,?,PPS,0,4,0,-,0.000000000,0.000000000,0.000000000
^,!,10.0.0.9,2,6,1,12,0.000100000,0.000100000,0.000500000
"""


def fake_chronyc(tmp_path: Path, body: str) -> str:
    script = tmp_path / "chronyc"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


HEALTHY = f"""
case "$*" in
  "reload sources") echo "200 OK" ;;
  "-n -c sources") printf '%s' '{SOURCES_CSV}' ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
"""


def test_sources_are_parsed() -> None:
    sources = parse_sources(SOURCES_CSV)
    assert sources[0] == ChronySource(
        mode=SourceMode.SERVER,
        state=SourceState.SELECTED,
        address="192.168.1.1",
        stratum=2,
        poll=6,
        reach=0o377,
        last_sample_age=35,
        offset=-0.000012345,
        error=0.015663,
    )
    assert sources[1].reach == 0o17 and sources[1].state is SourceState.COMBINED
    assert [source.address for source in sources] == ["192.168.1.1", "2001:db8::123", "10.0.0.9"]
    assert sources[2].state is SourceState.UNKNOWN  # a state letter newer than hostd


def answer(chrony: Chrony) -> ChronyTracking | None:
    """Ask, wait until the answer (or the kernel's refusal) is in the socket, read it: what hostd
    does a watchdog tick apart."""
    chrony.ask_tracking()
    assert chrony._cmdmon is not None
    select.select([chrony._cmdmon], [], [], 10)
    return chrony.read_tracking()


def chronyc_tracking(chronyd: RealChronyd) -> list[str]:
    """chronyc's reading of the same command port, as `chronyc -n -c tracking` prints it."""
    return chronyd.chronyc("-n", "-c", "tracking").strip().split(",")


@requires_chronyd
async def test_tracking_from_the_command_port_is_chronycs(tmp_path: Path) -> None:
    """Unsynchronized, then synchronized to its local clock: every field hostd keeps is chronyc's."""
    with real_chronyd(tmp_path) as chronyd:
        chrony = Chrony(cmdmon_address=chronyd.address)
        tracking = answer(chrony)
        assert tracking is not None and chrony.available
        assert (tracking.reference_id, tracking.reference, tracking.stratum) == ("00000000", "", 0)
        assert tracking.leap_status is LeapStatus.NOT_SYNCHRONISED and not tracking.synchronized
        chronyd.chronyc("local", "stratum", "3")
        tracking, csv = answer(chrony), chronyc_tracking(chronyd)
        assert tracking is not None and tracking.synchronized
        ref_id, reference, stratum, ref_time, correction, last, rms, frequency, *_, interval, leap = csv
        assert (tracking.reference_id, tracking.reference, str(tracking.stratum)) == (ref_id, reference, stratum)
        assert tracking.reference_time == pytest.approx(float(ref_time), abs=1e-6)  # a double: µs, as LastSync
        assert tracking.leap_status.value == leap == "Normal"
        assert [tracking.system_time_offset, tracking.last_offset, tracking.rms_offset] == [
            float(correction),
            float(last),
            float(rms),
        ]
        assert f"{tracking.frequency_ppm:.3f}" == frequency and f"{tracking.update_interval:.1f}" == interval
        await chrony.close()


@requires_chronyd
async def test_no_chronyd_on_the_command_port_is_service_unavailable(tmp_path: Path) -> None:
    """chronyd stopped: the kernel refuses the request (ICMP port unreachable), read as not running."""
    with real_chronyd(tmp_path) as chronyd:
        address = chronyd.address
    chrony = Chrony(cmdmon_address=address)
    with pytest.raises(errors.ServiceUnavailable):
        answer(chrony)
    assert chrony.degraded_reason == "chronyd is not running"
    await chrony.close()


def test_chronys_floats() -> None:
    """A 7-bit signed exponent over a 25-bit signed coefficient: coefficient * 2 ** (exponent - 25)."""
    assert _chrony_float(24 << 25 | 129) == 64.5
    assert _chrony_float(23 << 25 | 0x1FFFFFF) == -0.25  # coefficient -1
    assert _chrony_float(0x7B << 25 | 1) == 2.0**-30  # exponent -5
    assert _chrony_float(0) == 0.0


def reply_header(reply: int, status: int, sequence: int) -> bytes:
    return bytes([6, 2, 0, 0, 0, 33, 0, reply, 0, status]) + bytes(6) + sequence.to_bytes(4, "big") + bytes(8)


def test_a_reply_to_another_request_is_not_the_answer() -> None:
    request = tracking_request(7)
    assert len(request) == 104 and request[:6] == bytes([6, 1, 0, 0, 0, 33])  # padded to the reply's length
    with pytest.raises(errors.RemoteError):  # chronyd's STT_BADPKTLENGTH
        parse_tracking_reply(reply_header(1, 19, 7), 7)
    assert parse_tracking_reply(reply_header(5, 0, 8) + bytes(76), 7) is None  # a late answer to request 8


async def test_commands_against_a_healthy_chronyd(tmp_path: Path) -> None:
    chrony = Chrony(chronyc=fake_chronyc(tmp_path, HEALTHY))
    await chrony.start()
    assert chrony.available
    await chrony.reload_sources()
    assert len(await chrony.sources()) == 3


async def test_missing_chronyc_degrades_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    chrony = Chrony(chronyc="/nonexistent/chronyc")
    await chrony.start()
    assert not chrony.available and "not installed" in (chrony.degraded_reason or "")
    with pytest.raises(errors.ServiceUnavailable):
        await chrony.sources()
    assert len(log_lines(caplog, "hostd.bus.chrony")) == 1


async def test_chronyd_not_running_is_service_unavailable(tmp_path: Path) -> None:
    chrony = Chrony(chronyc=fake_chronyc(tmp_path, 'echo "506 Cannot talk to daemon" >&2; exit 1'))
    await chrony.start()
    with pytest.raises(errors.ServiceUnavailable):
        await chrony.reload_sources()
    assert chrony.degraded_reason == "chronyd is not running"


async def test_other_failures_are_command_failed(tmp_path: Path) -> None:
    chrony = Chrony(chronyc=fake_chronyc(tmp_path, 'echo "501 Not authorised" >&2; exit 1'))
    await chrony.start()
    with pytest.raises(errors.CommandFailed) as failed:
        await chrony.reload_sources()
    assert failed.value.returncode == 1 and "Not authorised" in failed.value.stderr


async def test_hanging_chronyc_times_out_degrades_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    script = fake_chronyc(tmp_path, f"[ -e {tmp_path}/hang ] && exec sleep 10\n{HEALTHY}")
    (tmp_path / "hang").touch()
    chrony = Chrony(chronyc=script, timeout=0.2)
    await chrony.start()
    with pytest.raises(errors.Timeout):
        await chrony.sources()
    assert not chrony.available
    (tmp_path / "hang").unlink()
    await chrony.sources()
    assert chrony.available
    assert len(log_lines(caplog, "hostd.bus.chrony", logging.WARNING)) == 1
