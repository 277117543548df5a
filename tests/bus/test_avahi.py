"""Avahi adapter against its fake: host name, the ssh service, conflicts and their recovery."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hostd.bus import errors, names
from hostd.bus.avahi import DEVICE_SUBTYPE, SSH_PORT, SSH_SERVICE_TYPE, AvahiAdapter, ServerState

from .fakes.avahi import FakeAvahi
from .support import Recorder, client_bus, log_lines, wait_until

FAST_RECLAIM = {"reclaim_delay": 0.05, "reclaim_max_delay": 0.2}


async def test_host_name_and_ssh_service_are_published(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        await avahi.start()
        assert (avahi.state, avahi.host_name) == (ServerState.RUNNING, "avahi-host")

        await avahi.set_host_name("balena-1234567")
        await avahi.set_host_name("balena-1234567")  # avahi answers NoChange: not an error
        await wait_until(lambda: avahi.state is ServerState.RUNNING and avahi.host_name == "balena-1234567")
        assert fake.server.host_name == "balena-1234567"

        await avahi.publish_ssh()
        await wait_until(lambda: avahi.ssh_published)
        assert fake.published == [("balena-1234567", [DEVICE_SUBTYPE])]
        (group,) = fake.groups.values()
        assert group.services[0]["type"] == SSH_SERVICE_TYPE and group.services[0]["port"] == SSH_PORT
        assert not avahi.collision

        await avahi.withdraw_ssh()
        assert fake.groups == {} and not avahi.ssh_published


async def test_service_follows_a_new_host_name(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        await avahi.start()
        await avahi.set_host_name("first")
        await avahi.publish_ssh()
        await wait_until(lambda: fake.published == [("first", [DEVICE_SUBTYPE])])
        await avahi.set_host_name("second")
        await wait_until(lambda: fake.published == [("second", [DEVICE_SUBTYPE])])


async def test_host_name_conflict_is_reported_and_the_name_reclaimed(
    bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeAvahi(bus_address)
    fake.taken_host_names.add("wanted")
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus, **FAST_RECLAIM)
        collisions = Recorder()
        avahi.on_collision_changed(collisions)
        await avahi.start()
        await avahi.set_host_name("wanted")
        await avahi.publish_ssh()

        await wait_until(lambda: avahi.host_name_collision)
        await wait_until(lambda: avahi.host_name == "wanted-2")  # avahi-daemon's own fallback
        await wait_until(lambda: collisions.calls[:1] == [(True,)])
        assert avahi.collision and avahi.wanted_host_name == "wanted"
        assert any("taken" in line for line in log_lines(caplog, "hostd.bus.avahi", logging.WARNING))
        # Still discoverable meanwhile: the service keeps the wanted name, on avahi's fallback host.
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])
        # hostd retries the wanted name and never asks for another one.
        await wait_until(lambda: len(fake.calls_to("SetHostName")) >= 3)
        assert {tuple(body) for body in fake.calls_to("SetHostName")} == {("wanted",)}

        fake.taken_host_names.clear()  # the other host left
        await wait_until(lambda: not avahi.host_name_collision, timeout=5)
        assert fake.server.host_name == "wanted" and avahi.host_name == "wanted"
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])
        await wait_until(lambda: collisions.calls == [(True,), (False,)])  # callbacks run in a task


async def test_service_name_conflict_is_reported_and_retried(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    fake.taken_service_names.add("wanted")
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus, **FAST_RECLAIM)
        collisions = Recorder()
        avahi.on_collision_changed(collisions)
        await avahi.start()
        await avahi.set_host_name("wanted")
        await avahi.publish_ssh()
        await wait_until(lambda: avahi.service_collision)
        assert not avahi.host_name_collision and not avahi.ssh_published
        await wait_until(lambda: len(fake.calls_to("Commit")) >= 3)
        assert {body[3] for body in fake.calls_to("AddService")} == {"wanted"}  # never renamed

        fake.taken_service_names.clear()
        await wait_until(lambda: avahi.ssh_published, timeout=5)
        assert not avahi.collision
        assert [call[0] for call in collisions.calls] == [True, False]


async def test_avahi_restart_gets_the_name_and_service_again(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        attached = Recorder()
        avahi.on_attach(attached)
        await avahi.start()
        await avahi.set_host_name("wanted")
        await avahi.publish_ssh()
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])

        await fake.restart()
        await wait_until(lambda: attached.count == 1)
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])
        assert fake.server.host_name == "wanted"


async def test_avahi_restarting_with_the_wanted_name_already_gets_the_service_again(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        await avahi.start()
        await avahi.set_host_name("wanted")
        await avahi.publish_ssh()
        await wait_until(lambda: avahi.ssh_published)
        fake.boot_host_name = "wanted"  # the system host name hostd set: SetHostName answers NoChange
        await fake.restart()
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])
        await wait_until(lambda: avahi.ssh_published)


async def test_wanted_name_set_while_avahi_is_down_is_applied_when_it_appears(bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        await avahi.start()
        with pytest.raises(errors.ServiceUnavailable):
            await avahi.set_host_name("wanted")
        with pytest.raises(errors.ServiceUnavailable):
            await avahi.publish_ssh()
        fake = FakeAvahi(bus_address)
        await fake.start()
        await wait_until(lambda: fake.published == [("wanted", [DEVICE_SUBTYPE])])
        assert fake.server.host_name == "wanted"


async def test_state_changes_arrive_by_signal_and_unknown_states_are_tolerated(bus_address: str) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus)
        await avahi.start()
        get_state_calls = len(fake.calls_to("GetState"))
        fake.server.set_state(ServerState.REGISTERING.value)
        await wait_until(lambda: avahi.state is ServerState.REGISTERING)
        fake.server.set_state(9)
        await wait_until(lambda: avahi.state is ServerState.UNKNOWN)
        assert len(fake.calls_to("GetState")) == get_state_calls
        assert avahi.available


@pytest.mark.parametrize(
    ("error_name", "exception"),
    [
        (names.AVAHI_ERROR_NOT_PERMITTED, errors.AccessDenied),
        (names.AVAHI_ERROR_INVALID_HOST_NAME, errors.InvalidArgs),
    ],
)
async def test_refused_host_name_is_typed_and_not_taken_for_a_conflict(
    error_name: str, exception: type[errors.BusError], bus_address: str
) -> None:
    fake = FakeAvahi(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        avahi = AvahiAdapter(bus, **FAST_RECLAIM)
        await avahi.start()
        await avahi.publish_ssh()
        fake.fail("SetHostName", error_name, "refused")
        with pytest.raises(exception):
            await avahi.set_host_name("bad name")
        assert avahi.wanted_host_name is None
        fake.server.set_state(ServerState.RUNNING.value)
        await asyncio.sleep(0.2)
        assert not avahi.collision
        assert len(fake.calls_to("SetHostName")) == 1
