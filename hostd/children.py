"""Short-lived child processes run from the event loop: bounded in time, and never left behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

PIPE, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL


async def run(
    argv: Sequence[str], timeout: float, *, stdin: bytes | None = None, stdout: bool = True, stderr: bool = True
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to its end: (exit status, stdout, stderr), the streams not asked for empty.

    TimeoutError after ``timeout`` s.  On a timeout, and when the caller is cancelled (hostd
    stopping), the child is killed and reaped first: none outlives the call.  FileNotFoundError
    when the program is missing."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=DEVNULL if stdin is None else PIPE,
        stdout=PIPE if stdout else DEVNULL,
        stderr=PIPE if stderr else DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out or b"", err or b""
