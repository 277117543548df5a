"""hostd-clock on a temporary root: the bootstrap's decision, what it reads, records and saves."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hostd import clock
from hostd.layout import Layout

US = clock.US
Y2000 = 946684800 * US  # 2000-01-01T00:00:00Z
BUILD = 1772600767 * US  # /etc/timestamp 20260304050607


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/timestamp").write_text("20260304050607\n")
    return Layout(tmp_path)


def test_decide_raises_to_the_newest_floor_and_never_lowers() -> None:
    assert clock.decide(Y2000, BUILD, None) == clock.Bootstrap("build", Y2000, BUILD)
    assert clock.decide(Y2000, BUILD, BUILD + 5 * US) == clock.Bootstrap("saved", Y2000, BUILD + 5 * US)
    assert clock.decide(Y2000, BUILD, BUILD - 5 * US) == clock.Bootstrap("build", Y2000, BUILD)
    assert clock.decide(Y2000, BUILD, BUILD).source == "saved"  # a tie: the newer knowledge
    assert clock.decide(Y2000, None, BUILD) == clock.Bootstrap("saved", Y2000, BUILD)
    # already at or past every floor: left alone
    assert clock.decide(BUILD, BUILD, None) == clock.Bootstrap("rtc", BUILD, BUILD)
    assert clock.decide(BUILD + 1, BUILD, BUILD) == clock.Bootstrap("rtc", BUILD + 1, BUILD + 1)
    assert clock.decide(Y2000, None, None) == clock.Bootstrap("rtc", Y2000, Y2000)


def test_build_time_from_etc_timestamp_as_openembedded_writes_it(layout: Layout) -> None:
    assert clock.build_time(layout) == BUILD
    assert clock.parse_timestamp("2026030405060") is None
    assert clock.parse_timestamp("20261304050607") is None  # month 13
    assert clock.parse_timestamp("not a time") is None


def test_build_time_falls_back_to_the_package_build(layout: Layout, tmp_path: Path) -> None:
    package_file = tmp_path / "clock.py"
    package_file.write_text("")
    os.utime(package_file, (1_700_000_000, 1_700_000_000))
    Path(layout.build_timestamp).write_text("garbage\n")
    assert clock.build_time(layout, package_file) == 1_700_000_000 * US
    Path(layout.build_timestamp).unlink()
    assert clock.build_time(layout, package_file) == 1_700_000_000 * US
    assert clock.build_time(layout, tmp_path / "missing") is None


def test_saved_time_ignores_what_is_not_a_time(layout: Layout) -> None:
    assert clock.saved_time(layout) is None
    Path(layout.saved_clock).parent.mkdir(parents=True)
    for bad in ("", "soon\n", "-5\n", "\xff"):
        Path(layout.saved_clock).write_text(bad, errors="surrogateescape")
        assert clock.saved_time(layout) is None
    Path(layout.saved_clock).write_text("1800000000\n")
    assert clock.saved_time(layout) == 1_800_000_000 * US


def test_raise_sets_the_clock_and_records_what_it_did(layout: Layout) -> None:
    set_to: list[int] = []
    result = clock.raise_clock(layout, set_to.append, clock=lambda: Y2000 + 3)
    assert result == clock.Bootstrap("build", Y2000 + 3, BUILD) and set_to == [BUILD]
    record = json.loads(Path(layout.clock_bootstrap_record).read_text())
    assert record == {"source": "build", "before": Y2000 + 3, "after": BUILD}

    clock.save(layout, clock=lambda: BUILD + 3600 * US + 999)
    assert Path(layout.saved_clock).read_text() == f"{BUILD // US + 3600}\n"
    set_to.clear()
    assert clock.raise_clock(layout, set_to.append, clock=lambda: Y2000).source == "saved"
    assert set_to == [BUILD + 3600 * US]


def test_a_good_clock_is_left_alone_and_nothing_is_saved_at_boot(layout: Layout) -> None:
    now = BUILD + 86400 * US
    result = clock.raise_clock(layout, lambda us: pytest.fail("the clock was set"), clock=lambda: now)
    assert result == clock.Bootstrap("rtc", now, now)
    assert not Path(layout.hostd_state).exists()  # the raise never writes the state partition


def test_a_clock_that_cannot_be_set_is_recorded_as_it_is(layout: Layout) -> None:
    def refuse(us: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    with pytest.raises(OSError, match="cannot set the clock"):
        clock.raise_clock(layout, refuse, clock=lambda: Y2000)
    assert json.loads(Path(layout.clock_bootstrap_record).read_text())["source"] == "rtc"


def test_save_is_atomic_and_unchanged_within_a_second(layout: Layout) -> None:
    clock.save(layout, clock=lambda: BUILD)
    inode = Path(layout.saved_clock).stat().st_ino
    clock.save(layout, clock=lambda: BUILD + 500_000)  # same second: converged, nothing written
    assert Path(layout.saved_clock).stat().st_ino == inode
    clock.save(layout, clock=lambda: BUILD + US)  # a new file renamed over the old one
    assert Path(layout.saved_clock).stat().st_ino != inode
    assert [p.name for p in Path(layout.hostd_state).iterdir()] == ["clock"]  # no temp file left


def test_command_line_on_a_root_that_is_not_the_running_system(layout: Layout, capsys) -> None:
    before = time.time()
    assert clock.main(["--root", str(layout.root), "save"]) == 0
    assert int(Path(layout.saved_clock).read_text()) >= int(before)
    assert clock.main(["--root", str(layout.root), "raise"]) == 0  # decides, records, sets nothing
    assert json.loads(Path(layout.clock_bootstrap_record).read_text())["source"] == "rtc"
    Path(layout.saved_clock).write_text(f"{int(before) + 86400}\n")
    assert clock.main(["--root", str(layout.root), "raise"]) == 0
    record = json.loads(Path(layout.clock_bootstrap_record).read_text())
    assert record["source"] == "saved" and record["after"] == (int(before) + 86400) * US
    assert "clock raised" not in capsys.readouterr().err  # nothing was set on a temp root
