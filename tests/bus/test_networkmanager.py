"""NetworkManager adapter against its fake."""

from __future__ import annotations

import logging

import pytest

from hostd.bus import errors, names
from hostd.bus.networkmanager import Connectivity, LoadResult, NetworkManagerAdapter, NMState

from .fakes.networkmanager import FakeNetworkManager
from .support import Recorder, client_bus, wait_until


async def test_state_and_connectivity_are_cached_at_attach(bus_address: str) -> None:
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()
        assert nm.state is NMState.CONNECTED_GLOBAL
        assert nm.connectivity is Connectivity.FULL
        assert nm.dns_servers == ["192.168.1.1"]
        assert len(fake.calls_to("GetAll")) == 2  # NetworkManager and DnsManager, once each


async def test_properties_changed_updates_the_cache_without_a_call(bus_address: str) -> None:
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()
        calls_before = len(fake.calls)
        fake.manager.change(state=NMState.CONNECTING.value, connectivity=Connectivity.LIMITED.value)
        await wait_until(lambda: nm.state is NMState.CONNECTING)
        assert nm.connectivity is Connectivity.LIMITED
        assert len(fake.calls) == calls_before


async def test_dns_servers_are_followed_and_reported(bus_address: str) -> None:
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        changed = Recorder()
        nm.on_dns_servers_changed(changed)
        await nm.start()
        await wait_until(lambda: changed.calls == [(["192.168.1.1"],)])
        calls_before = len(fake.calls)
        fake.dns.change(
            [
                {"nameservers": ["10.0.0.1", "10.0.0.2"], "interface": "wlan0", "priority": 50, "vpn": False},
                {"nameservers": ["10.0.0.2", "fd00::1"], "interface": "eth0", "priority": 100, "vpn": False},
            ]
        )
        await wait_until(lambda: changed.count == 2)
        assert changed.calls[-1] == (["10.0.0.1", "10.0.0.2", "fd00::1"],)
        assert nm.dns_servers == ["10.0.0.1", "10.0.0.2", "fd00::1"]
        assert len(fake.calls) == calls_before
        # A change elsewhere in the configuration that leaves the servers alone is not reported.
        fake.dns.change(
            [
                {"nameservers": ["10.0.0.1", "10.0.0.2"], "interface": "wlan0", "priority": 40, "vpn": False},
                {"nameservers": ["fd00::1"], "interface": "eth0", "priority": 100, "vpn": False},
            ]
        )
        fake.manager.change(state=NMState.CONNECTED_SITE.value)
        await wait_until(lambda: nm.state is NMState.CONNECTED_SITE)
        assert changed.count == 2


async def test_unknown_enum_values_are_tolerated(bus_address: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hostd.bus")
    fake = FakeNetworkManager(bus_address)
    fake.manager.state = 75  # a state newer than hostd
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()
        assert nm.state is NMState.UNKNOWN
        assert nm.state is NMState.UNKNOWN
        fake.manager.change(connectivity=9)
        await wait_until(lambda: nm.connectivity is Connectivity.UNKNOWN)
        assert nm.available
    unknown = [r for r in caplog.records if r.name == "hostd.bus.networkmanager" and "unknown NMState" in r.message]
    assert len(unknown) == 1 and unknown[0].levelno == logging.DEBUG


async def test_connection_profiles(bus_address: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeNetworkManager(bus_address)
    fake.add_connection("/etc/NetworkManager/system-connections/home.nmconnection", "home")
    fake.loadable_files["/etc/NetworkManager/system-connections/new.nmconnection"] = "new"
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()

        result = await nm.load_connections(
            [
                "/etc/NetworkManager/system-connections/new.nmconnection",
                "/etc/NetworkManager/system-connections/broken.nmconnection",
            ]
        )
        assert result == LoadResult(False, ["/etc/NetworkManager/system-connections/broken.nmconnection"])

        profiles = {profile.id: profile for profile in await nm.list_connections()}
        assert set(profiles) == {"home", "new"}
        home = profiles["home"]
        assert home.filename == "/etc/NetworkManager/system-connections/home.nmconnection"
        assert home.type == "802-11-wireless" and len(home.uuid) == 36 and not home.unsaved
        assert "hunter2" not in repr(profiles)

        assert await nm.delete_connection_by_filename("/etc/NetworkManager/system-connections//home.nmconnection")
        assert not await nm.delete_connection_by_filename("/etc/NetworkManager/system-connections/gone")
        assert [profile.id for profile in await nm.list_connections()] == ["new"]
        assert await nm.reload_connections() is True
    assert "hunter2" not in caplog.text


async def test_profile_deleted_while_listing_is_skipped(bus_address: str) -> None:
    fake = FakeNetworkManager(bus_address)
    fake.add_connection("/etc/NetworkManager/system-connections/a.nmconnection", "a")
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()
        fake.fail("GetSettings", names.ERROR_UNKNOWN_OBJECT)
        assert await nm.list_connections() == []
        fake.fail("GetSettings", names.NM_SETTINGS_ERROR_PERMISSION_DENIED)
        with pytest.raises(errors.AccessDenied):
            await nm.list_connections()


async def test_check_connectivity(bus_address: str) -> None:
    fake = FakeNetworkManager(bus_address)
    fake.manager.connectivity = Connectivity.PORTAL.value
    await fake.start()
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        await nm.start()
        assert await nm.check_connectivity() is Connectivity.PORTAL


async def test_dhcp_ntp_servers_follow_the_leases(bus_address: str) -> None:
    """Option 42 (and DHCPv6's) from the leases' DHCP config objects: read at attach, followed as
    leases begin, renew with other options and end; a value that is not an address or a name is
    dropped (it would go into chrony's sources file)."""
    v4, v6 = names.NM_DHCP4_CONFIG_INTERFACE, names.NM_DHCP6_CONFIG_INTERFACE
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    first = fake.add_lease(
        f"{names.NM_DHCP4_CONFIG_PATH}/1", v4, {"ntp_servers": "10.0.0.5 10.0.0.6", "ip_address": "x"}
    )
    async with client_bus(bus_address) as bus:
        nm = NetworkManagerAdapter(bus)
        changed = Recorder()
        nm.on_ntp_servers_changed(changed)
        await nm.start()
        await wait_until(lambda: nm.ntp_servers == ("10.0.0.5", "10.0.0.6"))
        fake.add_lease(f"{names.NM_DHCP6_CONFIG_PATH}/1", v6, {"dhcp6_ntp_servers": "fd00::123 ntp.example.com"})
        await wait_until(lambda: nm.ntp_servers == ("10.0.0.5", "10.0.0.6", "fd00::123", "ntp.example.com"))
        first.change({"ntp_servers": "10.0.0.7 bad;name"})  # renewed with other options
        await wait_until(lambda: nm.ntp_servers == ("10.0.0.7", "fd00::123", "ntp.example.com"))
        fake.end_lease(f"{names.NM_DHCP6_CONFIG_PATH}/1", v6)
        await wait_until(lambda: nm.ntp_servers == ("10.0.0.7",))
        assert [call[0] for call in changed.calls] == [
            ("10.0.0.5", "10.0.0.6"),
            ("10.0.0.5", "10.0.0.6", "fd00::123", "ntp.example.com"),
            ("10.0.0.7", "fd00::123", "ntp.example.com"),
            ("10.0.0.7",),
        ]
        await nm.close()
