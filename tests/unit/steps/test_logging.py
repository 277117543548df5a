"""logging: journald's drop-in only when config.json asks for other than the shipped defaults; journald
restarted when it changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostd.steps import logging

from ..conftest import UUID
from .fakes import FakeJournald, services


def test_dropin_only_when_config_differs_from_the_shipped_defaults(device) -> None:
    device.write_config({"uuid": UUID, "os": {"journal": {"runtimeMaxUse": "16M"}}})
    assert [c.kind for c in device.run_step(logging).changes] == ["write"]
    assert "RuntimeMaxUse=16M" in Path(device.layout.journald_dropin).read_text()
    device.write_config({"uuid": UUID, "os": {"journal": {"systemMaxUse": "64M"}}})  # unused while volatile
    assert [c.kind for c in device.run_step(logging).changes] == ["remove"]
    Path(device.layout.journald_defaults).unlink()  # an image without them: journald's own defaults are not ours
    device.run_step(logging)
    assert "Storage=volatile" in Path(device.layout.journald_dropin).read_text()


def test_persistent_storage_is_capped(device) -> None:
    device.write_config({"uuid": UUID, "persistentLogging": True, "os": {"journal": {"systemMaxUse": "64M"}}})
    device.run_step(logging)
    dropin = Path(device.layout.journald_dropin).read_text()
    assert "Storage=persistent" in dropin and "SystemMaxUse=64M" in dropin


def test_journald_restarted_only_when_the_dropin_changed(device) -> None:
    device.write_config({"uuid": UUID, "persistentLogging": True})
    journald = FakeJournald()
    for _ in range(2):
        result = device.run_step(logging)
        outcome = asyncio.run(logging.apply_live(services(journald=journald), device.context(), result))
        assert outcome.record is None  # the journal's usage is the running system's, not a root directory's
    assert journald.restarts == 1
