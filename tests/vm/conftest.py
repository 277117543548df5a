"""VM device tests: a qemu VM (tests/vm/vmdevice.py), for what needs a clock of the device's own.

Marked `system` with the testbed's tests (they need root and build images)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.system)
