"""dispatcher: NetworkManager dispatcher scripts from the boot partition, imported 0755."""

from __future__ import annotations

from pathlib import Path

from hostd.steps import dispatcher
from hostd.steps.base import FileStatus

from ..conftest import UUID


def test_dispatcher_scripts_are_executable(device) -> None:
    device.write_config({"uuid": UUID})
    Path(device.layout.boot_dispatcher).mkdir()
    (Path(device.layout.boot_dispatcher) / "90-hook").write_text("#!/bin/sh\nexit 0\n")
    [entry] = device.run_step(dispatcher).file_entries()
    assert (entry.name, entry.status) == ("90-hook", FileStatus.IMPORTED)
    assert (Path(device.layout.nm_dispatcher) / "90-hook").stat().st_mode & 0o777 == 0o755
