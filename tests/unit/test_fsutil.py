"""fsutil's reads leave access times alone: with relatime a read after a change writes the inode."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hostd import config, fsutil
from hostd.steps.imports import read_plain_file


def _stale_atime(path: Path) -> int:
    """Set the access time before the change time's minute: relatime's next read updates it."""
    st = path.stat()
    os.utime(path, ns=(st.st_mtime_ns - 60 * 10**9, st.st_mtime_ns))
    return path.stat().st_atime_ns


@pytest.mark.parametrize(
    "read",
    [fsutil.read_bytes, config.read_config_bytes, lambda path: read_plain_file(path, 1 << 20)],
    ids=["fsutil.read_bytes", "config.read_config_bytes", "imports.read_plain_file"],
)
def test_reads_do_not_touch_the_access_time(tmp_path: Path, read: Callable[[Path], object]) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"{}")
    before = _stale_atime(path)
    path.read_bytes()  # a plain read: what this file system does
    if path.stat().st_atime_ns == before:
        pytest.skip("this file system does not update access times (noatime): nothing to hold hostd to")
    before = _stale_atime(path)
    assert read(path) is not None
    assert path.stat().st_atime_ns == before
