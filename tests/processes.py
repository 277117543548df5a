"""Ending the processes a test started."""

from __future__ import annotations

import subprocess


def end(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still running ``timeout`` seconds later; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
