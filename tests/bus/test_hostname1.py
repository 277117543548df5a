"""hostname1 adapter against its fake, including bus activation (hostnamed exits when idle)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dbus_fast import Message
from dbus_fast.aio import MessageBus

from hostd.bus import errors, names
from hostd.bus.hostname1 import Hostname1Adapter

from .fakes.hostname1 import FakeHostname1
from .support import Recorder, client_bus, log_lines, wait_until


async def test_names_are_cached_and_set(bus_address: str) -> None:
    fake = FakeHostname1(bus_address)
    fake.hostnamed.hostname = "localhost"
    fake.hostnamed.static_hostname = "old"
    await fake.start()
    async with client_bus(bus_address) as bus:
        hostname1 = Hostname1Adapter(bus)
        await hostname1.start()
        assert (hostname1.hostname, hostname1.static_hostname) == ("localhost", "old")
        calls_before = len(fake.calls_to("GetAll"))

        await hostname1.set_static_hostname("balena-1234567")
        assert fake.calls_to("SetStaticHostname") == [["balena-1234567", False]]
        await wait_until(lambda: hostname1.static_hostname == "balena-1234567")
        assert hostname1.hostname == "balena-1234567"

        await hostname1.set_hostname("transient", interactive=True)
        assert fake.calls_to("SetHostname") == [["transient", True]]
        await wait_until(lambda: hostname1.hostname == "transient")
        assert len(fake.calls_to("GetAll")) == calls_before  # PropertiesChanged did it


async def test_invalid_name_is_invalid_args(bus_address: str) -> None:
    fake = FakeHostname1(bus_address)
    await fake.start()
    fake.fail("SetStaticHostname", names.ERROR_INVALID_ARGS, "Invalid static hostname 'a b'")
    async with client_bus(bus_address) as bus:
        hostname1 = Hostname1Adapter(bus)
        await hostname1.start()
        with pytest.raises(errors.InvalidArgs, match="Invalid static hostname"):
            await hostname1.set_static_hostname("a b")


async def _make_activatable(bus: MessageBus, service_dir: Path, name: str, program: str = "/bin/false") -> None:
    """Make name bus-activatable with a program (by default one that fails, like a service that cannot start)."""
    (service_dir / f"{name}.service").write_text(f"[D-BUS Service]\nName={name}\nExec={program}\n")
    # The daemon notices new files asynchronously; ReloadConfig makes it read them now.
    await bus.call(
        Message(
            destination=names.DBUS_NAME,
            path=names.DBUS_PATH,
            interface=names.DBUS_INTERFACE,
            member="ReloadConfig",
        )
    )


async def test_hostnamed_is_not_started_by_hostds_start_only_by_a_call(bus_address: str, tmp_path: Path) -> None:
    """A start that finds hostnamed exited (idle) leaves it so: starting it costs a process, and the
    hostname step calls it only when the name must change; a call starts it through the bus."""
    started = tmp_path / "started"
    async with client_bus(bus_address) as bus:
        program = f"/bin/sh -c 'touch {started}; exit 1'"
        await _make_activatable(bus, tmp_path / "services", names.HOSTNAME1_NAME, program)
        hostname1 = Hostname1Adapter(bus)
        await hostname1.start()
        assert hostname1.available and not hostname1.attached
        assert not started.exists()
        with pytest.raises(errors.ServiceUnavailable):  # no hostnamed there: its start fails
            await hostname1.set_hostname("x")
        assert started.exists()


async def test_activatable_service_exiting_when_idle_stays_available(
    bus_address: str, bus_service_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeHostname1(bus_address)
    fake.hostnamed.static_hostname = "kept"
    await fake.start()
    async with client_bus(bus_address) as bus:
        await _make_activatable(bus, bus_service_dir, names.HOSTNAME1_NAME)
        hostname1 = Hostname1Adapter(bus)
        attached, detached = Recorder(), Recorder()
        hostname1.on_attach(attached)
        hostname1.on_detach(detached)
        await hostname1.start()
        await fake.stop()  # idle exit
        await wait_until(lambda: detached.count == 1)
        assert hostname1.available and hostname1.degraded_reason is None
        assert hostname1.static_hostname == "kept"  # nothing it held was lost
        assert log_lines(caplog, "hostd.bus.hostname1", logging.INFO) == []
        # The next call starts it again through the bus (here the start fails, and says so).
        with pytest.raises(errors.ServiceUnavailable):
            await hostname1.set_static_hostname("x")
        await fake.start()
        await wait_until(lambda: attached.count == 1)
