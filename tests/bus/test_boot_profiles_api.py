"""The boot partition's profiles over io.hostd1: listed without secrets, added, replaced and removed
one file at a time, validated like imports, and applied through safe apply; a profile that cuts
the device off is rolled back with its file (here the probe's resolver stands for "reachable")."""

from __future__ import annotations

from pathlib import Path

from dbus_fast import MessageType

from hostd import api

from .support import wait_until
from .test_daemon import client, get_all, hostd_call, make_root
from .test_safe_apply import config, daemon_on, resolver

WIFI = """[connection]
id=office
uuid=5f2a9a3e-6c1e-4a53-9d2f-0b1f3c6a7e11
type=wifi

[wifi]
ssid=office

[wifi-security]
key-mgmt=wpa-psk
psk=hunter2hunter2
"""
ETHERNET = "[connection]\nid=wired\ntype=ethernet\n\n[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\n"


async def test_profiles_listed_without_secrets_and_changed_one_file_at_a_time(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, config())
    async with resolver() as (_, dns), daemon_on(layout, bus_address, dns), client(bus_address) as bus:
        reply = await hostd_call(bus, "AddConnection", "ss", "office", WIFI)
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        assert (Path(layout.boot_connections) / "office").read_text() == WIFI
        [[name, id_, uuid, type_, text]] = (await hostd_call(bus, "ListConnections")).body[0]
        assert (name, id_, uuid, type_) == (
            "office",
            "office",
            "5f2a9a3e-6c1e-4a53-9d2f-0b1f3c6a7e11",
            "802-11-wireless",
        )
        assert "ssid=office" in text and "hunter2" not in text and "psk=" not in text
        await wait_until(lambda: Path(layout.nm_connections).joinpath("office").exists(), timeout=5)

        again = await hostd_call(bus, "AddConnection", "ss", "office", WIFI)
        assert again.error_name == api.ERROR_PREFIX + "ConnectionExists"
        missing = await hostd_call(bus, "UpdateConnection", "ss", "nowhere", WIFI)
        assert missing.error_name == api.ERROR_PREFIX + "NoSuchConnection"
        invalid = await hostd_call(bus, "UpdateConnection", "ss", "office", "[wifi-security]\npsk=hunter2\n")
        assert invalid.error_name == api.ERROR_INVALID_ARGS and "hunter2" not in invalid.body[0]
        sample = await hostd_call(bus, "AddConnection", "ss", "x.ignore", WIFI)
        assert sample.error_name == api.ERROR_INVALID_ARGS
        assert (Path(layout.boot_connections) / "office").read_text() == WIFI

        reply = await hostd_call(bus, "RemoveConnection", "s", "office")
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        assert not (Path(layout.boot_connections) / "office").exists()
        assert (await hostd_call(bus, "ListConnections")).body[0] == []


async def test_a_profile_that_cuts_the_device_off_is_rolled_back_file_included(
    tmp_path: Path, bus_address: str
) -> None:
    layout = make_root(tmp_path, config())
    async with (
        resolver() as (dns, address),
        daemon_on(layout, bus_address, address) as daemon,
        client(bus_address) as bus,
    ):
        good = (await get_all(bus))["GoodGeneration"].value
        dns.up = False  # the new static address cuts name resolution off
        reply = await hostd_call(bus, "AddConnection", "ss", "wired", ETHERNET)
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        assert daemon.reconciler.transaction.state == "probing"
        await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
        await wait_until(lambda: not (Path(layout.boot_connections) / "wired").exists(), timeout=5)
        await wait_until(lambda: daemon.reconciler.not_applied == "", timeout=5)
        after = await get_all(bus)
        assert after["Generation"].value == good == after["GoodGeneration"].value
        assert after["LastRollback"].value[1] != good
        assert not Path(layout.nm_connections).joinpath("wired").exists()
