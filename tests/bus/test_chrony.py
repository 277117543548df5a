"""chrony through a fake chronyc script: parsing, missing binary, daemon down, timeouts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hostd.bus import errors
from hostd.bus.chrony import (
    Chrony,
    ChronySource,
    LeapStatus,
    SourceMode,
    SourceState,
    parse_sources,
    parse_tracking,
)

from .support import log_lines

SOURCES_CSV = """\
^,*,192.168.1.1,2,6,377,35,-0.000012345,-0.000012987,0.015663000
^,+,2001:db8::123,3,7,17,4294967295,0.001000000,0.001200000,0.020000000
#,?,PPS,0,4,0,-,0.000000000,0.000000000,0.000000000
^,!,10.0.0.9,2,6,1,12,0.000100000,0.000100000,0.000500000
"""
TRACKING_CSV = (
    "C0A80101,192.168.1.1,3,1700000000.123456789,-0.000001234,0.000002000,0.000010000,"
    "-2.345,0.001,0.050,0.012345678,0.001234567,64.5,Normal\n"
)
UNSYNCHRONISED_CSV = "7F7F0101,,10,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,Not synchronised\n"


def fake_chronyc(tmp_path: Path, body: str) -> str:
    script = tmp_path / "chronyc"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


HEALTHY = f"""
case "$*" in
  "reload sources") echo "200 OK" ;;
  "-n -c sources") printf '%s' '{SOURCES_CSV}' ;;
  "-n -c tracking") printf '%s' '{TRACKING_CSV}' ;;
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


def test_tracking_is_parsed() -> None:
    tracking = parse_tracking(TRACKING_CSV)
    assert (tracking.reference_id, tracking.reference, tracking.stratum) == ("C0A80101", "192.168.1.1", 3)
    assert tracking.leap_status is LeapStatus.NORMAL and tracking.synchronized
    assert tracking.system_time_offset == -0.000001234 and tracking.update_interval == 64.5
    unsynchronised = parse_tracking(UNSYNCHRONISED_CSV)
    assert unsynchronised.leap_status is LeapStatus.NOT_SYNCHRONISED and not unsynchronised.synchronized
    with pytest.raises(ValueError):
        parse_tracking("506 Cannot talk to daemon\n")


async def test_commands_against_a_healthy_chronyd(tmp_path: Path) -> None:
    chrony = Chrony(chronyc=fake_chronyc(tmp_path, HEALTHY))
    await chrony.start()
    assert chrony.available
    await chrony.reload_sources()
    assert len(await chrony.sources()) == 3
    assert (await chrony.tracking()).stratum == 3


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
        await chrony.tracking()
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
