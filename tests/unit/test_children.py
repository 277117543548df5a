"""hostd.children: a child outlives neither a timeout nor hostd's stop (its task cancelled)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hostd import children


def _sleeper(pid_file: Path) -> tuple[str, ...]:
    return ("sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 30')


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _started(pid_file: Path) -> int:
    while not pid_file.exists() or not pid_file.read_text().strip():
        await asyncio.sleep(0.01)
    return int(pid_file.read_text())


def test_output_and_exit_status() -> None:
    status, out, err = asyncio.run(children.run(("sh", "-c", "cat; echo oops >&2; exit 3"), 10, stdin=b"in"))
    assert (status, out, err) == (3, b"in", b"oops\n")
    assert asyncio.run(children.run(("sh", "-c", "echo out; echo err >&2"), 10, stdout=False)) == (0, b"", b"err\n")


def test_a_timeout_kills_and_reaps_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(TimeoutError):
        asyncio.run(children.run(_sleeper(pid_file), 0.5))
    assert _gone(int(pid_file.read_text()))  # killed and reaped: not even a zombie is left


def test_a_cancelled_caller_leaves_no_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def cancel_it() -> int:
        task = asyncio.create_task(children.run(_sleeper(pid_file), 60))
        pid = await _started(pid_file)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    assert _gone(asyncio.run(cancel_it()))


def test_a_missing_program() -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(children.run(("/nonexistent/program",), 1))
