"""A bounded power-cut run for CI; the long run is ``python3 -m tests.reliability.powercut --runs 1000``."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from hostd.steps import state
from tests.unit.conftest import UUID, DeviceRoot

from .powercut import apply_in_process, one_run

CI_RUNS = 60


@pytest.mark.parametrize("index", range(CI_RUNS))
def test_crash_anywhere_leaves_old_or_new_and_converges(tmp_path: Path, index: int) -> None:
    result = one_run(tmp_path, random.Random(f"ci-{index}"))
    assert result.violations == [], f"crash at {result.crashed_at}/{result.points}"


class Crash(BaseException):
    """Stops a run where it is, as a power cut would: no step catches it."""


def test_a_bind_source_directory_appears_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = DeviceRoot(tmp_path / "root")
    device.write_config({"uuid": UUID})
    os.chmod(device.layout.path("/home/root/.ssh"), 0o700)
    source = Path(device.layout.state) / "root-overlay/home/root/.ssh"

    def crash(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(state.os, "rename", crash)
    with pytest.raises(Crash):
        apply_in_process(device.root)
    assert not source.exists()  # built aside: not there at all rather than there with the wrong mode
    monkeypatch.undo()
    assert apply_in_process(device.root) == 0
    assert stat.S_IMODE(source.stat().st_mode) == 0o700
    assert not list(source.parent.glob(".*.hostd-tmp"))  # no staging left
