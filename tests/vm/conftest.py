"""VM device tests: a qemu VM (tests/vm/vmdevice.py), for what the nspawn testbed cannot do: a
clock of the device's own, a udevd with kernel devices.

Marked `system` with the testbed's tests (they need root and build images)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import vmdevice
from .boots import boot_both

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def image() -> vmdevice.Image:
    reason = vmdevice.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return vmdevice.device_image()


@pytest.fixture(scope="session")
def boots(image: vmdevice.Image, tmp_path_factory: pytest.TempPathFactory) -> dict[str, vmdevice.Boot]:
    """The two devices (tests/vm/boots.py), booted at once, once per run."""
    return boot_both(image, tmp_path_factory.mktemp("vm"))
