"""A private dbus-daemon per test, and async tests run with asyncio.run (no pytest-asyncio needed)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import private_dbus_daemon

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# A backstop against a hung test, not a speed check: the longest tests wait out a 5 s safe-apply
# window and a retry's backoff, and a loaded CI machine can double that.
ASYNC_TEST_TIMEOUT = 40.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a private dbus-daemon carry the `bus` marker (`-m "not bus"` skips them)."""
    for item in items:
        if "bus_address" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.bus)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def test_…` functions in a fresh event loop, bounded in time."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**arguments), ASYNC_TEST_TIMEOUT))
    return True


@pytest.fixture
def bus_service_dir(tmp_path: Path) -> Path:
    """Where a test may drop .service files to make names activatable on the private bus."""
    service_dir = tmp_path / "services"
    service_dir.mkdir()
    return service_dir


@pytest.fixture
def bus_address(tmp_path: Path, bus_service_dir: Path) -> Iterator[str]:
    """The address of a dbus-daemon of this test's own, ended by its PID afterwards."""
    with private_dbus_daemon(tmp_path, bus_service_dir) as address:
        yield address
