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
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testbed"))

from harness import Testbed, unavailable_reason

from .device import Hostd

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


@pytest.fixture(scope="session")
def hostd(testbed: Testbed) -> Hostd:
    """hostd on the device, ready: io.hostd1 owned and every service it follows attached."""
    h = Hostd(testbed)
    h.wait_ready()
    return h


@pytest.fixture
def boot(hostd: Hostd) -> Iterator[Hostd]:
    """hostd, with the boot partition (config.json, system-connections/) put back after the test
    and re-applied, so the next test finds the device as the sample boot partition made it."""
    tb = hostd.tb
    conns = tb.boot_dir / "system-connections"

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in conns.iterdir()} if conns.is_dir() else {}

    config, saved, name = tb.config_path.read_bytes(), files(), hostd.describe()["hostname"]
    yield hostd
    renamed = hostd.describe()["hostname"] != name
    if renamed:
        hostd.tb.wait_for(hostd.avahi_running, 10, "avahi-daemon done probing")
    if tb.config_path.read_bytes() != config:
        tmp = tb.config_path.with_name(".config.json.restore")
        tmp.write_bytes(config)
        os.replace(tmp, tb.config_path)
    now = files()
    for fname in now.keys() - saved.keys():
        (conns / fname).unlink()
    for fname, content in saved.items():
        if now.get(fname) != content:
            (conns / fname).write_bytes(content)
    hostd.wait_ready()
    hostd.reload()  # returns once applied
    if renamed:
        hostd.settle_mdns()
