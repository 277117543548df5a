"""ntp: chrony's extra sources from ``ntpServers``."""

from __future__ import annotations

import asyncio

from hostd.steps import ntp

from ..conftest import UUID
from .fakes import services


def test_one_pool_line_per_server_none_without(device) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "time.example.com 10.0.0.1"})
    device.run_step(ntp)
    assert device.layout.chrony_sources.read_text() == "pool time.example.com iburst\npool 10.0.0.1 iburst\n"
    device.write_config({"uuid": UUID})
    device.run_step(ntp)
    assert not device.layout.chrony_sources.exists()


def test_chronyd_is_not_asked_about_a_root_directory(device) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "time.example.com"})
    result = device.run_step(ntp)
    outcome = asyncio.run(ntp.apply_live(services(), device.context(), result))  # no adapter is touched
    assert outcome.record is None and not outcome.problems
