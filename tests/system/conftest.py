"""System tests: a real device (tests/testbed/testbed) booted once per session.

Every test under tests/system is marked `system`.  The `testbed` fixture skips them with a reason
when this machine cannot run the testbed (not root, no namespaces/overlayfs).  Set
HOSTD_TESTBED_KEEP=1 to leave the device running after the session (inspect it with
`tests/testbed/testbed status|exec ...`, stop it with `... down`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testbed"))

from harness import Testbed, unavailable_reason

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def testbed():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        tb = Testbed.up()
    except BaseException:
        with contextlib.suppress(Exception):
            Testbed.down()
        raise
    try:
        yield tb
    finally:
        if os.environ.get("HOSTD_TESTBED_KEEP") != "1":
            Testbed.down()
