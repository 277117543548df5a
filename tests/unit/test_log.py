"""hostd.log: the daemon's modules log through logging; a boot stage writes the same lines itself."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hostd import log

STAGE = """
import sys
sys.path.insert(0, sys.argv[1])
from hostd import log
log.to_stderr()
logger = log.Logger("hostd.engine")
logger.info("step %s: %s", "dns", "write /run/dnsmasq.servers")
logger.warning("two\\nlines")
try:
    raise OSError("read-only")
except OSError:
    logger.exception("step %s failed", "hostname")
print("logging" in sys.modules, "traceback" in sys.modules)
"""


def test_a_logger_is_loggings_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        log.Logger("hostd.engine").warning("step %s failed: %s", "dns", "no space")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("hostd.engine", logging.WARNING, "step dns failed: no space")
    ]


def test_a_stage_writes_journal_lines_without_logging() -> None:
    repo = str(Path(__file__).parents[2])
    child = subprocess.run([sys.executable, "-I", "-S", "-c", STAGE, repo], capture_output=True, text=True, check=True)
    lines = child.stderr.splitlines()
    assert lines[:5] == [
        "<6>hostd.engine: step dns: write /run/dnsmasq.servers",
        "<4>hostd.engine: two",
        "<4>lines",
        "<3>hostd.engine: step hostname failed",
        "<3>Traceback (most recent call last):",
    ]
    assert lines[-1] == "<3>OSError: read-only"
    assert child.stdout.split() == ["False", "True"]  # traceback only for the failure's own lines
