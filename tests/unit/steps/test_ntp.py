"""ntp: chrony's extra sources from ``ntpServers``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostd.steps import ntp
from hostd.steps.base import Facts

from ..conftest import UUID
from .fakes import services


def test_one_pool_line_per_server_none_without(device) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "time.example.com 10.0.0.1"})
    device.run_step(ntp)
    assert Path(device.layout.chrony_sources).read_text() == "pool time.example.com iburst\npool 10.0.0.1 iburst\n"
    device.write_config({"uuid": UUID})
    device.run_step(ntp)
    assert not Path(device.layout.chrony_sources).exists()


def test_chronyd_is_not_asked_about_a_root_directory(device) -> None:
    device.write_config({"uuid": UUID, "ntpServers": "time.example.com"})
    result = device.run_step(ntp)
    outcome = asyncio.run(ntp.apply_live(services(), device.context(), result))  # no adapter is touched
    assert outcome.record is None and not outcome.problems


def test_dhcp_servers_are_added_in_append_mode(device) -> None:
    """The network's (DHCP) servers follow config.json's as `server` lines; one configured too is not repeated."""
    facts = Facts(network_ntp_servers=("10.0.0.7", "10.0.0.1"))
    device.write_config({"uuid": UUID, "ntpServers": "10.0.0.1"})
    result = device.run_step(ntp, facts)
    assert Path(device.layout.chrony_sources).read_text() == "pool 10.0.0.1 iburst\nserver 10.0.0.7 iburst\n"
    assert result.status.value == "changed"
    assert device.run_step(ntp, facts).status.value == "ok"  # converged: nothing written
    device.write_config({"uuid": UUID})
    device.run_step(ntp, facts)
    assert Path(device.layout.chrony_sources).read_text() == "server 10.0.0.7 iburst\nserver 10.0.0.1 iburst\n"


def test_dhcp_servers_are_ignored_in_exclusive_mode(device) -> None:
    facts = Facts(network_ntp_servers=("10.0.0.7",))
    device.write_config({"uuid": UUID, "ntpServers": "time.example.com", "os": {"ntp": {"mode": "exclusive"}}})
    device.run_step(ntp, facts)
    assert Path(device.layout.chrony_sources).read_text() == "pool time.example.com iburst\n"
    device.write_config({"uuid": UUID, "os": {"ntp": {"mode": "exclusive"}}})
    device.run_step(ntp, facts)
    assert not Path(device.layout.chrony_sources).exists()
