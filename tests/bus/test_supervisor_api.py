"""What the supervisor gets beyond balena's calls: SetConfig, SetDiscoverable and the outcome
signals (Applied, HeldBack), on a private bus with the daemon and a fake systemd."""

from __future__ import annotations

import json
from pathlib import Path

from dbus_fast import MessageType, Variant

from hostd import api

from .fakes.systemd import FakeSystemd
from .support import wait_until
from .test_daemon import UUID, client, follow_signals, get_all, hostd_call, make_root, running_daemon

# As balena's tools write it: keys hostd does not own, nested objects, its own spacing.
CONFIG = (
    '{\n  "apiKey": "keep-me",\n  "uuid": "' + UUID + '",\n'
    '  "os": {"sshKeys": [ ], "dns" : {"mode": "append"}},\n  "applicationId": 1234\n}\n'
)


async def test_set_config_writes_nested_keys_in_place_and_applies(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {})
    Path(layout.config_json).write_text(CONFIG)
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        signals = await follow_signals(bus)
        changes = {
            "os.dns.mode": Variant("s", "exclusive"),
            "dnsServers": Variant("as", ["1.1.1.1", "9.9.9.9"]),
            "persistentLogging": Variant("s", "true"),
            "os.network.connectivity.interval": Variant("x", 600),
        }
        reply = await hostd_call(bus, "SetConfig", "a{sv}", changes)
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        text = Path(layout.config_json).read_text()
        assert '"apiKey": "keep-me"' in text and '"applicationId": 1234\n}' in text  # untouched bytes
        assert '"sshKeys": [ ], "dns" : {"mode": "exclusive"}' in text  # replaced in place
        document = json.loads(text)
        assert document["dnsServers"] == ["1.1.1.1", "9.9.9.9"]
        assert document["os"]["network"] == {"connectivity": {"interval": 600}}
        properties = await get_all(bus)
        assert properties["DnsMode"].value == "exclusive"
        assert properties["PersistentLogging"].value is True
        # dnsServers is risky: probed (nothing to fail here), then kept; the supervisor sees both
        await wait_until(lambda: any(name == "Applied" and body[1] == "kept" for name, body in signals))
        assert any(name == "Applied" and body[1] == "on-trial" for name, body in signals)


async def test_set_config_refuses_bad_values_naming_key_and_value(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {})
    Path(layout.config_json).write_text(CONFIG)
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        bad = await hostd_call(
            bus, "SetConfig", "a{sv}", {"dnsServers": Variant("s", "not-an-ip"), "hostname": Variant("s", "ok")}
        )
        assert bad.message_type == MessageType.ERROR and bad.error_name == api.ERROR_INVALID_ARGS
        assert "dnsServers" in bad.body[0] and "not-an-ip" in bad.body[0]
        secret = "https://user:hunter2@"
        refused = await hostd_call(
            bus, "SetConfig", "a{sv}", {"os.network.connectivity.uri": Variant("s", secret + " x")}
        )
        assert refused.error_name == api.ERROR_INVALID_ARGS
        assert "os.network.connectivity.uri" in refused.body[0] and "hunter2" not in refused.body[0]
        unknown = await hostd_call(bus, "SetConfig", "a{sv}", {"apiKey": Variant("s", "x")})
        assert unknown.error_name == api.ERROR_INVALID_ARGS and "apiKey" in unknown.body[0]
        assert Path(layout.config_json).read_text() == CONFIG  # all or nothing


async def test_held_back_key_is_signalled(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        signals = await follow_signals(bus)
        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "dnsServers": "not-an-ip"}))
        await hostd_call(bus, "Reload")
        await wait_until(lambda: any(name == "HeldBack" for name, _ in signals))
        [held] = next(body for name, body in signals if name == "HeldBack")
        assert [pointer for pointer, _, _ in held] == ["/dnsServers"]
        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "dnsServers": "1.1.1.1"}))
        await hostd_call(bus, "Reload")
        await wait_until(lambda: [body for name, body in signals if name == "HeldBack"][-1] == [[]])


async def test_set_discoverable_stops_avahi_persists_and_is_not_degraded(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    systemd = FakeSystemd(bus_address)
    await systemd.start()
    try:
        async with running_daemon(layout, bus_address), client(bus_address) as bus:
            assert (await get_all(bus))["Discoverable"].value is True
            systemd.calls.clear()
            reply = await hostd_call(bus, "SetDiscoverable", "b", False)
            assert reply.message_type == MessageType.METHOD_RETURN, reply.body
            assert [body[0] for body in systemd.calls_to("StopUnit")] == ["avahi-daemon.socket", "avahi-daemon.service"]
            assert (Path(layout.hostd_state) / "discoverable").read_bytes() == b"off\n"
            properties = await get_all(bus)
            assert properties["Discoverable"].value is False
            assert "avahi" not in properties["Degraded"].value  # no avahi on this bus: off on purpose
        # the setting holds at the next start: avahi is stopped again at boot
        systemd.calls.clear()
        async with running_daemon(layout, bus_address), client(bus_address) as bus:
            assert (await get_all(bus))["Discoverable"].value is False
            assert [body[0] for body in systemd.calls_to("StopUnit")] == ["avahi-daemon.socket", "avahi-daemon.service"]
            reply = await hostd_call(bus, "SetDiscoverable", "b", True)
            assert reply.message_type == MessageType.METHOD_RETURN, reply.body
            assert [body[0] for body in systemd.calls_to("StartUnit")][-2:] == [
                "avahi-daemon.socket",
                "avahi-daemon.service",
            ]
            assert (Path(layout.hostd_state) / "discoverable").read_bytes() == b"on\n"
    finally:
        await systemd.stop()
