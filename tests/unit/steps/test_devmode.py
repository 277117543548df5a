"""devmode: balenaOS's development flag (the development units' environment); its target
restarted only when the flag changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostd.steps import devmode

from ..conftest import ED25519_KEY, UUID
from .fakes import FakeSystemd, services


def test_flag_only_in_development_mode(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True})
    device.run_step(devmode)
    assert Path(device.layout.devmode_env).read_text() == (
        "SSHD_OPTS='-f /etc/ssh/sshd_config_development'\nBALENA_DEVELOPMENT_ARGS='-H tcp://0.0.0.0:2375'\n"
    )
    device.write_config({"uuid": UUID})
    device.run_step(devmode)
    assert not Path(device.layout.devmode_env).exists()  # production: no flag


def test_keys_are_required_in_development_mode_when_given(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True, "os": {"sshKeys": [ED25519_KEY]}})
    device.run_step(devmode)
    assert "SSHD_OPTS='-f /etc/ssh/sshd_config_development -o PasswordAuthentication=no'" in (
        Path(device.layout.devmode_env).read_text()
    )
    assert "os.sshKeys" in devmode.KEYS  # a change to the keys re-runs the step


def test_target_restarted_only_when_the_flag_changed(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True})
    systemd = FakeSystemd(loaded_units={devmode.DEVELOPMENT_TARGET})
    for _ in range(2):
        result = device.run_step(devmode)
        asyncio.run(devmode.apply_live(services(systemd=systemd), device.context(), result))
    assert systemd.calls == [("restart", devmode.DEVELOPMENT_TARGET)]
    device.write_config({"uuid": UUID})
    asyncio.run(devmode.apply_live(services(systemd=systemd), device.context(), device.run_step(devmode)))
    assert systemd.calls[1:] == [("restart", devmode.DEVELOPMENT_TARGET)]


def test_an_image_without_development_features_is_left_alone(device) -> None:
    device.write_config({"uuid": UUID, "developmentMode": True})
    systemd = FakeSystemd(loaded_units=set())
    asyncio.run(devmode.apply_live(services(systemd=systemd), device.context(), device.run_step(devmode)))
    assert systemd.calls == []
