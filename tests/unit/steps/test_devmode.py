"""devmode: the development features' environment file; their units switched when it changed."""

from __future__ import annotations

import asyncio

from hostd.steps import devmode

from ..conftest import UUID
from .fakes import FakeSystemd, services


def test_environment_for_each_mode(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True})
    device.run_step(devmode)
    assert "DEVELOPMENT_MODE=1" in device.layout.devmode_env.read_text()
    device.write_config({"uuid": UUID})
    device.run_step(devmode)
    assert "PermitRootLogin=prohibit-password" in device.layout.devmode_env.read_text()


def test_units_switched_only_when_the_environment_changed(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True})
    systemd = FakeSystemd(loaded_units={"getty@tty1.service", "sshd.service"})
    for _ in range(2):
        result = device.run_step(devmode)
        asyncio.run(devmode.apply_live(services(systemd=systemd), device.context(), result))
    # units the device does not have are left alone
    assert systemd.calls == [("start", "getty@tty1.service"), ("try-restart", "sshd.service")]
    device.write_config({"uuid": UUID})
    asyncio.run(devmode.apply_live(services(systemd=systemd), device.context(), device.run_step(devmode)))
    assert systemd.calls[2:] == [("stop", "getty@tty1.service"), ("try-restart", "sshd.service")]
