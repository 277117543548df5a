"""What every D-Bus adapter must do when its service is missing, vanishes, returns or misbehaves.

One table row per adapter; each test runs against every row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dbus_fast.aio import MessageBus

from hostd.bus import errors, names
from hostd.bus.avahi import AvahiAdapter
from hostd.bus.base import BusAdapter
from hostd.bus.dnsmasq import DnsmasqAdapter
from hostd.bus.hostname1 import Hostname1Adapter
from hostd.bus.modemmanager import ModemManagerAdapter
from hostd.bus.networkmanager import NetworkManagerAdapter, NMState
from hostd.bus.systemd import SystemdAdapter

from .fakes.avahi import FakeAvahi
from .fakes.base import FakeService
from .fakes.dnsmasq import FakeDnsmasq
from .fakes.hostname1 import FakeHostname1
from .fakes.modemmanager import FakeModemManager
from .fakes.networkmanager import FakeNetworkManager
from .fakes.systemd import FakeSystemd
from .support import Recorder, client_bus, log_lines, wait_until


def _no_change(_: Any) -> None:
    pass


async def _nothing(_: Any) -> None:
    pass


@dataclass(frozen=True)
class Case:
    adapter: Callable[..., BusAdapter]
    fake: Callable[[str], FakeService]
    probe: Callable[[Any], Awaitable[object]]
    """An operation that makes one method call to the service..."""
    probe_member: str
    """...and the member it calls, for scripting faults."""
    attach_member: str | None
    """A member called while attaching (None if attaching calls nothing)."""
    prepare_fake: Callable[[Any], None]
    prepare_adapter: Callable[[Any], Awaitable[None]]
    change_while_away: Callable[[Any], None]
    refilled: Callable[[Any, Any], bool]
    """After re-attach: the cache shows the service's new state, or what hostd wants was re-applied."""


def _add_modem(fake: FakeModemManager) -> None:
    fake.add_modem(0)


async def _want_host_name(avahi: AvahiAdapter) -> None:
    await avahi.set_host_name("wanted")


async def _set_dns_servers(dnsmasq: DnsmasqAdapter) -> None:
    await dnsmasq.set_servers(["1.1.1.1", "9.9.9.9"])


CASES = {
    "systemd": Case(
        adapter=SystemdAdapter,
        fake=FakeSystemd,
        probe=lambda a: a.unit_state("x.service"),
        probe_member="ListUnitsByNames",
        attach_member="Subscribe",
        prepare_fake=_no_change,
        prepare_adapter=_nothing,
        change_while_away=_no_change,
        refilled=lambda a, fake: len(fake.calls_to("Subscribe")) == 2,
    ),
    "networkmanager": Case(
        adapter=NetworkManagerAdapter,
        fake=FakeNetworkManager,
        probe=lambda a: a.reload_connections(),
        probe_member="ReloadConnections",
        attach_member="GetAll",
        prepare_fake=_no_change,
        prepare_adapter=_nothing,
        change_while_away=lambda fake: setattr(fake.manager, "state", NMState.DISCONNECTED.value),
        refilled=lambda a, fake: a.state is NMState.DISCONNECTED,
    ),
    "modemmanager": Case(
        adapter=ModemManagerAdapter,
        fake=FakeModemManager,
        probe=lambda a: a.refresh(),
        probe_member="GetAll",
        attach_member="GetManagedObjects",
        prepare_fake=_add_modem,
        prepare_adapter=_nothing,
        change_while_away=lambda fake: fake.add_modem(1),
        refilled=lambda a, fake: len(a.modems) == 2,
    ),
    "hostname1": Case(
        adapter=Hostname1Adapter,
        fake=FakeHostname1,
        probe=lambda a: a.set_static_hostname("probe"),
        probe_member="SetStaticHostname",
        attach_member="GetAll",
        prepare_fake=_no_change,
        prepare_adapter=_nothing,
        change_while_away=lambda fake: setattr(fake.hostnamed, "hostname", "renamed"),
        refilled=lambda a, fake: a.hostname == "renamed",
    ),
    "avahi": Case(
        adapter=AvahiAdapter,
        fake=FakeAvahi,
        probe=lambda a: a.get_host_name(),
        probe_member="GetHostName",
        attach_member="GetState",
        prepare_fake=_no_change,
        prepare_adapter=_want_host_name,
        change_while_away=_no_change,  # a restarted avahi-daemon is back to the system host name
        refilled=lambda a, fake: fake.server.host_name == "wanted" and a.host_name == "wanted",
    ),
    "dnsmasq": Case(
        adapter=DnsmasqAdapter,
        fake=FakeDnsmasq,
        probe=lambda a: a.get_version(),
        probe_member="GetVersion",
        attach_member=None,
        prepare_fake=_no_change,
        prepare_adapter=_set_dns_servers,
        change_while_away=_no_change,  # a restarted dnsmasq forgot the servers set over D-Bus
        refilled=lambda a, fake: fake.dnsmasq.servers == [["1.1.1.1"], ["9.9.9.9"]],
    ),
}

each_adapter = pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
ATTACHING = {name: case for name, case in CASES.items() if case.attach_member is not None}
each_attaching_adapter = pytest.mark.parametrize("case", ATTACHING.values(), ids=ATTACHING.keys())


async def _attached(case: Case, bus: MessageBus, address: str, **options: Any) -> tuple[Any, Any]:
    fake = case.fake(address)
    case.prepare_fake(fake)
    await fake.start()
    adapter = case.adapter(bus, **options)
    await adapter.start()
    assert adapter.available, adapter.degraded_reason
    await case.prepare_adapter(adapter)
    return adapter, fake


@each_adapter
async def test_missing_service_turns_the_feature_off_with_one_log_line(
    case: Case, bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_bus(bus_address) as bus:
        adapter = case.adapter(bus)
        await adapter.start()
        assert not adapter.available
        assert adapter.degraded_reason == "not running"
        with pytest.raises(errors.ServiceUnavailable):
            await case.probe(adapter)
        assert len(log_lines(caplog, f"hostd.bus.{adapter.key}")) == 1
        await adapter.close()


@each_adapter
async def test_service_appearing_later_is_attached(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        adapter = case.adapter(bus)
        attached = Recorder()
        adapter.on_attach(attached)
        await adapter.start()
        assert not adapter.available
        fake = case.fake(bus_address)
        case.prepare_fake(fake)
        await fake.start()
        await wait_until(lambda: attached.count == 1)
        assert adapter.available and adapter.degraded_reason is None
        await case.probe(adapter)


@each_adapter
@pytest.mark.parametrize("how", ["restart", "release-and-reacquire"])
async def test_vanishing_and_returning_service_is_detached_then_reattached(
    case: Case, how: str, bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_bus(bus_address) as bus:
        adapter, fake = await _attached(case, bus, bus_address)
        attached, detached = Recorder(), Recorder()
        adapter.on_attach(attached)
        adapter.on_detach(detached)

        if how == "restart":
            await fake.stop()
        else:
            await fake.release_name()
        await wait_until(lambda: detached.count == 1)
        assert not adapter.available
        assert adapter.degraded_reason == "vanished from the bus"
        assert attached.count == 0
        assert len(log_lines(caplog, f"hostd.bus.{adapter.key}", logging.WARNING)) == 1

        case.change_while_away(fake)
        if how == "restart":
            await fake.start()
        else:
            await fake.acquire_name()
        await wait_until(lambda: attached.count == 1)
        assert adapter.available
        await wait_until(lambda: case.refilled(adapter, fake))
        assert detached.count == 1
        await case.probe(adapter)


@each_adapter
async def test_error_replies_become_typed_exceptions(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        adapter, fake = await _attached(case, bus, bus_address)
        expected = {
            names.ERROR_INVALID_ARGS: errors.InvalidArgs,
            names.ERROR_ACCESS_DENIED: errors.AccessDenied,
            names.ERROR_UNKNOWN_METHOD: errors.NotSupported,
            "org.example.Frobnicated": errors.RemoteError,
        }
        for error_name, exception in expected.items():
            fake.fail(case.probe_member, error_name, "it went wrong")
            with pytest.raises(exception) as raised:
                await case.probe(adapter)
            assert (raised.value.name, raised.value.message) == (error_name, "it went wrong")
        assert adapter.available


@each_adapter
async def test_slow_reply_times_out(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        adapter, fake = await _attached(case, bus, bus_address, timeout=0.2)
        fake.hang(case.probe_member)
        started = asyncio.get_running_loop().time()
        with pytest.raises(errors.Timeout):
            await case.probe(adapter)
        assert asyncio.get_running_loop().time() - started < 1.0
        fake.heal()
        await case.probe(adapter)


@each_adapter
async def test_call_pending_while_service_vanishes_is_service_unavailable(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        adapter, fake = await _attached(case, bus, bus_address)
        fake.hang(case.probe_member)
        pending = asyncio.ensure_future(case.probe(adapter))
        await wait_until(lambda: fake.calls_to(case.probe_member))
        await fake.stop()
        with pytest.raises(errors.ServiceUnavailable):
            await pending


@each_attaching_adapter
async def test_failed_attach_degrades_until_the_service_returns(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        fake = case.fake(bus_address)
        case.prepare_fake(fake)
        fake.fail(case.attach_member, names.ERROR_FAILED, "broken")
        await fake.start()
        adapter = case.adapter(bus)
        attached = Recorder()
        adapter.on_attach(attached)
        await adapter.start()
        assert not adapter.available
        assert "broken" in (adapter.degraded_reason or "")
        fake.heal()
        await fake.restart()
        await wait_until(lambda: attached.count == 1)
        assert adapter.available


@each_attaching_adapter
async def test_failed_attach_is_retried_while_the_service_stays(
    case: Case, bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_bus(bus_address) as bus:
        fake = case.fake(bus_address)
        case.prepare_fake(fake)
        fake.fail(case.attach_member, names.ERROR_FAILED, "not ready yet")
        await fake.start()
        adapter = case.adapter(bus)
        adapter.attach_retry_delay = 0.02
        attached = Recorder()
        adapter.on_attach(attached)
        await adapter.start()
        await wait_until(lambda: len(fake.calls_to(case.attach_member)) >= 3)
        assert not adapter.available
        fake.heal()
        await wait_until(lambda: attached.count == 1)
        assert adapter.available
        key = f"hostd.bus.{adapter.key}"
        assert len(log_lines(caplog, key, logging.WARNING)) == 1  # retries do not repeat the line
        await adapter.close()


@each_adapter
async def test_close_stops_following_the_service(case: Case, bus_address: str) -> None:
    async with client_bus(bus_address) as bus:
        adapter, fake = await _attached(case, bus, bus_address)
        detached = Recorder()
        adapter.on_detach(detached)
        await adapter.close()
        await fake.stop()
        await asyncio.sleep(0.05)
        assert detached.count == 0
