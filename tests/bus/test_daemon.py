"""The daemon on a private dbus-daemon, with fake services: the io.hostd1 contract and reconcile."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from hostd import api, generations, stamp
from hostd.daemon import Daemon
from hostd.generations import GenerationStore
from hostd.layout import Layout
from hostd.prepare import NETWORK_INPUTS_UNIT
from hostd.reconciler import Reconciler

from .fakes.dnsmasq import FakeDnsmasq
from .fakes.networkmanager import FakeNetworkManager
from .fakes.systemd import FakeSystemd
from .support import log_lines, wait_until

REPO = Path(__file__).resolve().parents[2]
UUID = "0123456789abcdef0123456789abcdef"


def make_root(tmp_path: Path, config: dict[str, Any]) -> Layout:
    root = tmp_path / "root"
    for directory in ("mnt/boot/system-connections", "mnt/state", "mnt/data", "etc"):
        (root / directory).mkdir(parents=True)
    (root / "etc/hostname").write_text("")
    layout = Layout(root)
    Path(layout.config_json).write_text(json.dumps(config, indent=2))
    return layout


@asynccontextmanager
async def running_daemon(layout: Layout, address: str) -> AsyncIterator[Daemon]:
    daemon = Daemon(layout, address)
    task = asyncio.create_task(daemon.run())
    async with client(address) as bus:
        while not await name_has_owner(bus):
            if task.done():
                task.result()  # raises what stopped the daemon
            await asyncio.sleep(0.01)
    try:
        yield daemon
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 10) == 0


async def name_has_owner(bus: MessageBus) -> bool:
    reply = await call(
        bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", api.BUS_NAME
    )
    return bool(reply.body[0])


@asynccontextmanager
async def client(address: str) -> AsyncIterator[MessageBus]:
    bus = await MessageBus(bus_address=address).connect()
    try:
        yield bus
    finally:
        bus.disconnect()


async def call(
    bus: MessageBus, destination: str, path: str, interface: str, member: str, signature: str = "", *body: Any
) -> Message:
    reply = await bus.call(
        Message(
            destination=destination, path=path, interface=interface, member=member, signature=signature, body=list(body)
        )
    )
    assert reply is not None
    return reply


async def hostd_call(bus: MessageBus, member: str, signature: str = "", *body: Any) -> Message:
    return await call(bus, api.BUS_NAME, api.OBJECT_PATH, api.INTERFACE, member, signature, *body)


async def follow_signals(bus: MessageBus) -> list[tuple[str, list[Any]]]:
    """io.hostd1's signals as they come: (member, body), appended to the list returned."""
    seen: list[tuple[str, list[Any]]] = []

    def on_message(message: Message) -> None:
        if message.message_type == MessageType.SIGNAL and message.path == api.OBJECT_PATH:
            seen.append((message.member, message.body))

    bus.add_message_handler(on_message)
    await call(
        bus,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "AddMatch",
        "s",
        f"type='signal',path='{api.OBJECT_PATH}'",
    )
    return seen


async def get_all(bus: MessageBus) -> dict[str, Any]:
    reply = await call(bus, api.BUS_NAME, api.OBJECT_PATH, api.PROPERTIES_INTERFACE, "GetAll", "s", api.INTERFACE)
    return reply.body[0]


async def test_api_contract(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen", "dnsServers": "1.1.1.1"})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        properties = await get_all(bus)
        assert set(properties) == set(api.PROPERTIES)
        for name, variant in properties.items():
            assert variant.signature == api.PROPERTIES[name], name
        assert properties["StaticHostname"].value == "kitchen"
        assert properties["DnsServers"].value == ["1.1.1.1"]
        assert properties["Variant"].value == "production"
        assert properties["ConfigError"].value == ""
        assert [step[0] for step in properties["Steps"].value][:3] == ["identity", "state", "hostname"]

        describe = json.loads((await hostd_call(bus, "Describe")).body[0])
        assert describe["staticHostname"] == "kitchen"
        assert describe["dns"] == {"mode": "append", "servers": ["1.1.1.1"]}
        assert {step["name"] for step in describe["steps"]} >= {"hostname", "dns", "connections"}

        plan = json.loads((await hostd_call(bus, "Plan")).body[0])
        assert all(not step["changes"] for step in plan["steps"])  # converged

        bad = await hostd_call(bus, "SetHostname", "s", "-nope-")
        assert bad.message_type == MessageType.ERROR
        assert bad.error_name == "org.freedesktop.DBus.Error.InvalidArgs" and "'-nope-'" in bad.body[0]
        wrong_signature = await hostd_call(bus, "SetHostname", "i", 5)
        assert wrong_signature.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
        read_only = await call(
            bus,
            api.BUS_NAME,
            api.OBJECT_PATH,
            api.PROPERTIES_INTERFACE,
            "Set",
            "ssv",
            api.INTERFACE,
            "Hostname",
            __import__("dbus_fast").Variant("s", "x"),
        )
        assert read_only.message_type == MessageType.ERROR


async def test_introspection_matches_committed_xml(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    committed = (REPO / "packaging/io.hostd1.Manager.xml").read_text()
    interface = re.search(r'  <interface name="io.hostd1.Manager">.*?</interface>\n', committed, re.S)
    assert interface is not None
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        live = await call(bus, api.BUS_NAME, api.OBJECT_PATH, "org.freedesktop.DBus.Introspectable", "Introspect")
        assert interface.group(0) in live.body[0]
        # every method of the committed contract answers (reads) or checks its caller (mutations)
        for method in re.findall(r'<method name="(\w+)">', interface.group(0)):
            spec = api.METHODS[method]
            args = {"": [], "s": ["x"], "b": [True], "su": ["", 60], "ss": ["x", "x"], "a{sv}": [{}], "sas": ["", []]}[
                spec.in_signature
            ]
            reply = await hostd_call(bus, method, spec.in_signature, *args)
            assert reply.error_name != "org.freedesktop.DBus.Error.UnknownMethod", method


async def test_set_hostname_writes_config_and_signals(tmp_path: Path, bus_address: str) -> None:
    original = {"uuid": UUID, "apiKey": "keep-me", "hostname": "kitchen"}
    layout = make_root(tmp_path, original)
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        signals = await follow_signals(bus)

        def changed() -> list[dict[str, Any]]:
            return [body[1] for name, body in signals if name == "PropertiesChanged"]

        def reconciled() -> list[tuple[Any, ...]]:
            return [tuple(body) for name, body in signals if name == "Reconciled"]

        reply = await hostd_call(bus, "SetHostname", "s", "Garage")
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        document = json.loads(Path(layout.config_json).read_text())
        assert document == {**original, "hostname": "garage"}
        assert list(document) == list(original)  # no key reordered
        assert Path(layout.etc_hostname).read_text() == "garage\n"
        await wait_until(lambda: any("StaticHostname" in c for c in changed()) and reconciled())
        assert next(c for c in changed() if "StaticHostname" in c)["StaticHostname"].value == "garage"
        # only the steps that depend on the changed key, plus the file-driven ones; a hostname cannot
        # cut the device off (keys table: not risky), so it is applied and kept without a probe
        steps, outcome = reconciled()[0]
        assert outcome == "applied"
        assert [step[0] for step in steps] == ["state", "hostname", "connections", "dispatcher", "proxy"]


async def test_set_proxy_writes_the_boot_files_as_a_new_generation(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    conf = "redsocks {\n type = http-connect;\n ip = 192.0.2.8;\n port = 3128;\n password = hunter2;\n}\n"
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        bad = await hostd_call(bus, "SetProxy", "sas", "redsocks {\n type = ftp;\n}\n", [])
        assert bad.error_name == api.ERROR_INVALID_ARGS and "line 2" in bad.body[0]
        bad = await hostd_call(bus, "SetProxy", "sas", conf, ["proxy.example.com"])
        assert bad.error_name == api.ERROR_INVALID_ARGS and "'proxy.example.com'" in bad.body[0]
        assert not Path(layout.boot_proxy).exists()

        reply = await hostd_call(bus, "SetProxy", "sas", conf, ["203.0.113.0/24"])
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        assert (Path(layout.boot_proxy) / "redsocks.conf").read_text() == conf
        assert (Path(layout.boot_proxy) / "no_proxy").read_text() == "203.0.113.0/24\n"
        state = json.loads((await hostd_call(bus, "Describe")).body[0])
        # a generation of its own: probed (passed at once here), restored whole by a rollback
        generation = Path(layout.hostd_state) / "generations" / state["generations"]["current"]
        assert (generation / "system-proxy/redsocks.conf").read_text() == conf
        in_force = state["proxy"]
        assert in_force["server"] == "http-connect 192.0.2.8:3128" and in_force["noProxy"] == "203.0.113.0/24"
        assert "hunter2" not in json.dumps(in_force)
        assert (await hostd_call(bus, "SetProxy", "sas", "", [])).message_type == MessageType.METHOD_RETURN
        assert (
            not (Path(layout.boot_proxy) / "redsocks.conf").exists()
            and not (Path(layout.boot_proxy) / "no_proxy").exists()
        )
        assert json.loads((await hostd_call(bus, "Describe")).body[0])["proxy"] == {"state": "off"}


async def test_reconcile_restarts_only_what_changed(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID, "dnsServers": "1.1.1.1"})
    systemd, dnsmasq = FakeSystemd(bus_address), FakeDnsmasq(bus_address)
    await systemd.start()
    await dnsmasq.start()
    async with running_daemon(layout, bus_address) as daemon, client(bus_address) as bus:
        assert dnsmasq.dnsmasq.servers == [["1.1.1.1"]]
        systemd.calls.clear()

        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "dnsServers": "9.9.9.9"}))
        await hostd_call(bus, "Reload")
        assert dnsmasq.dnsmasq.servers == [["9.9.9.9"]]
        assert systemd.calls_to("RestartUnit") == [] and systemd.calls_to("TryRestartUnit") == []

        Path(layout.config_json).write_text(
            json.dumps({"uuid": UUID, "dnsServers": "9.9.9.9", "persistentLogging": True})
        )
        await hostd_call(bus, "Reload")
        assert [body[0] for body in systemd.calls_to("RestartUnit")] == ["systemd-journald.service"]
        assert "Storage=persistent" in Path(layout.journald_dropin).read_text()

        systemd.calls.clear()
        results = await daemon.reconciler.reconcile()  # what Reload runs; nothing changed: nothing runs at all
        assert results == []
        assert [member for _, member, _ in systemd.calls if member != "ListUnitsByNames"] == []  # reads only
    await systemd.stop()
    await dnsmasq.stop()


async def test_network_settings_make_networkmanager_reload_its_configuration(tmp_path: Path, bus_address: str) -> None:
    """The drop-in alone changes nothing until NetworkManager re-reads it: Reload(CONF) follows
    each change, and nothing else asks for one."""
    layout = make_root(tmp_path, {"uuid": UUID})
    nm = FakeNetworkManager(bus_address)
    await nm.start()
    async with running_daemon(layout, bus_address) as daemon, client(bus_address) as bus:
        await wait_until(lambda: daemon.reconciler.services.networkmanager.attached, 5)
        assert nm.manager.reloads == []
        config = {"uuid": UUID, "os": {"network": {"connectivity": {"uri": "http://127.0.0.1:9/check"}}}}
        Path(layout.config_json).write_text(json.dumps(config))
        await hostd_call(bus, "Reload")
        assert "uri=http://127.0.0.1:9/check" in Path(layout.nm_dropin).read_text()
        assert nm.manager.reloads == [1]  # NM_MANAGER_RELOAD_FLAG_CONF
    await nm.stop()


async def test_invalid_config_at_runtime_changes_nothing(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen"})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        before = Path(layout.etc_hostname).stat().st_mtime_ns
        Path(layout.config_json).write_text('{"uuid": "' + UUID + '", "hostname": "bäd name"}')
        await hostd_call(bus, "Reload")
        properties = await get_all(bus)
        assert "/hostname: 'bäd name' is not a valid hostname" in properties["ConfigError"].value
        assert properties["StaticHostname"].value == "kitchen"
        assert Path(layout.etc_hostname).stat().st_mtime_ns == before
        refused = await hostd_call(bus, "SetPersistentLogging", "b", True)
        assert refused.error_name == "io.hostd1.Error.ConfigInvalid"

        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "hostname": "fixed"}))
        for _ in range(500):  # the watch picks it up
            if (await get_all(bus))["ConfigError"].value == "":
                break
            await asyncio.sleep(0.01)
        assert (await get_all(bus))["ConfigError"].value == ""
        assert Path(layout.etc_hostname).read_text() == "fixed\n"


async def test_a_bad_value_is_held_back_alone_and_shown(tmp_path: Path, bus_address: str) -> None:
    """The other keys apply; HeldBack, ConfigError and Describe() name the key, never a credential."""
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen", "dnsServers": "1.1.1.1"})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        credential = "Pa55w0rd"
        bad = {
            "uuid": UUID,
            "hostname": "kitchen",
            "dnsServers": "1.1.1.1 not-an-ip",
            "developmentMode": "true",
            "os": {"network": {"connectivity": {"uri": f"gopher://me:{credential}@c.example.com/"}}},
        }
        Path(layout.config_json).write_text(json.dumps(bad))
        await hostd_call(bus, "Reload")
        properties = await get_all(bus)
        assert properties["Variant"].value == "development"  # "true" applies
        assert properties["DnsServers"].value == ["1.1.1.1"]  # the last-known-good value
        assert [list(entry) for entry in properties["HeldBack"].value] == [
            ["/dnsServers", "'not-an-ip' is not an IPv4 or IPv6 address", "last-known-good"],
            [
                "/os/network/connectivity/uri",
                "the value (withheld: it may carry a credential) is not an http:// or https:// URI",
                "last-known-good",
            ],
        ]
        assert properties["ConfigSource"].value == "config.json"
        assert "/dnsServers: 'not-an-ip'" in properties["ConfigError"].value
        describe = (await hostd_call(bus, "Describe")).body[0]
        assert json.loads(describe)["config"]["heldBack"][0] == {
            "pointer": "/dnsServers",
            "message": "'not-an-ip' is not an IPv4 or IPv6 address",
            "fallback": "last-known-good",
        }
        assert credential not in describe + properties["ConfigError"].value + str(properties["HeldBack"].value)

        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "hostname": "kitchen", "dnsServers": "1.1.1.1"}))
        await hostd_call(bus, "Reload")
        properties = await get_all(bus)
        assert properties["HeldBack"].value == [] and properties["ConfigError"].value == ""


async def test_a_boot_profile_edited_in_place_is_reimported(tmp_path: Path, bus_address: str) -> None:
    """The watch sees a file rewritten in place (its directory's mtime does not change)."""
    layout = make_root(tmp_path, {"uuid": UUID})
    boot_file = Path(layout.boot_connections) / "wired"
    boot_file.write_text("[connection]\nid=wired\ntype=ethernet\n")
    async with running_daemon(layout, bus_address):
        imported = Path(layout.nm_connections) / "wired"
        assert imported.read_text() == "[connection]\nid=wired\ntype=ethernet\n"
        directory_mtime = Path(layout.boot_connections).stat().st_mtime_ns
        with boot_file.open("r+") as file:  # in place, as an editor on the boot partition may
            file.write("[connection]\nid=wire2")
        assert Path(layout.boot_connections).stat().st_mtime_ns == directory_mtime
        await wait_until(lambda: imported.read_text().startswith("[connection]\nid=wire2\n"), 5)


async def test_a_service_on_the_bus_during_the_first_reconcile_gets_its_steps_run_again(
    tmp_path: Path, bus_address: str, monkeypatch: Any
) -> None:
    """At boot NetworkManager can come on the bus while hostd's first reconcile runs, after the
    connections step found it missing: that step runs again once the reconcile is done, and its
    verdict is NetworkManager's."""
    layout = make_root(tmp_path, {"uuid": UUID})
    (Path(layout.boot_connections) / "wired.nmconnection").write_text("[connection]\nid=wired\ntype=ethernet\n")
    nm = FakeNetworkManager(bus_address)
    nm.add_connection(str(Path(layout.nm_connections) / "wired.nmconnection"), "wired")  # read at its start
    run_steps = Reconciler._run_steps

    async def steps_then_networkmanager_appears(self: Reconciler, *args: Any) -> Any:
        results = await run_steps(self, *args)
        if self.applied is None:
            await nm.start()
            await wait_until(lambda: self.services.networkmanager.attached, 5)
        return results

    monkeypatch.setattr(Reconciler, "_run_steps", steps_then_networkmanager_appears)

    def verdict(daemon: Daemon) -> str:
        [entry] = daemon.reconciler.results["connections"].file_entries()
        return entry.verdict

    async with running_daemon(layout, bus_address) as daemon:
        await wait_until(lambda: verdict(daemon) == "loaded", 5)
    await nm.stop()


async def test_the_first_reconcile_waits_for_the_network_inputs_stage(
    tmp_path: Path, bus_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    """hostd starts beside the stage: while systemd still runs the stage's start job, hostd
    writes nothing the stage writes (one writer at a time) and is not ready, but keeps
    config.json's generation in its own directory meanwhile (off READY's path); once the job is
    over, it reconciles.  When systemd leaves the bus during the wait, hostd goes on (it cannot
    learn more) and says so."""
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen"})
    systemd = FakeSystemd(bus_address)
    await systemd.start()
    systemd.manager.units[NETWORK_INPUTS_UNIT] = ("loaded", "activating", "start")
    systemd.manager.queue_job(NETWORK_INPUTS_UNIT)
    kitchen = generation_of(layout)
    async with running_daemon_waiting(layout, bus_address, until=lambda: systemd.calls_to("ListUnitsByNames")):
        await wait_until(lambda: kept_generations(layout) == {kitchen}, 5)
        await asyncio.sleep(0.2)
        assert Path(layout.etc_hostname).read_text() == ""
        assert not os.path.exists(os.path.join(layout.hostd_state, "good-generation"))
        systemd.manager.finish_job(NETWORK_INPUTS_UNIT)
    assert Path(layout.etc_hostname).read_text() == "kitchen\n"
    assert GenerationStore(layout).good() == kitchen

    Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "hostname": "garage"}))
    garage = generation_of(layout)
    systemd.manager.queue_job(NETWORK_INPUTS_UNIT)
    await systemd.restart()
    async with running_daemon_waiting(layout, bus_address, until=lambda: systemd.calls_to("ListUnitsByNames")):
        await wait_until(lambda: kept_generations(layout) == {kitchen, garage}, 5)
        await asyncio.sleep(0.2)
        assert Path(layout.etc_hostname).read_text() == "kitchen\n"
        assert GenerationStore(layout).good() == kitchen
        await systemd.stop()  # a job that never ends: only systemd leaving ends the wait
    assert Path(layout.etc_hostname).read_text() == "garage\n"
    warnings = log_lines(caplog, "hostd", logging.WARNING)
    assert any(f"cannot tell whether {NETWORK_INPUTS_UNIT} has finished" in line for line in warnings), warnings


def generation_of(layout: Layout) -> str:
    return generations.read_inputs(layout, Path(layout.config_json).read_bytes()).id


def kept_generations(layout: Layout) -> set[str]:
    directory = GenerationStore(layout).directory
    if not os.path.isdir(directory):
        return set()
    return {name for name in os.listdir(directory) if not name.startswith(".")}


@asynccontextmanager
async def running_daemon_waiting(layout: Layout, address: str, until: Callable[[], object]) -> AsyncIterator[None]:
    """A daemon started while the block runs, expected to serve only once the block is over."""
    daemon = Daemon(layout, address)
    task = asyncio.create_task(daemon.run())
    async with client(address) as bus:
        await wait_until(until, 5)
        yield
        assert not await name_has_owner(bus)
        while not await name_has_owner(bus):
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    daemon.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_the_daemon_keeps_the_stamp_the_stage_left_in_run(tmp_path: Path, bus_address: str) -> None:
    """The network-inputs stage leaves a new stamp on tmpfs (no fsync on the network's path); hostd
    puts it on the state partition once ready, for the next boot to replay."""
    layout = make_root(tmp_path, {"uuid": UUID})
    pending, kept = Path(layout.path("/" + stamp.PENDING)), Path(layout.path("/" + stamp.STAMP))
    pending.parent.mkdir(parents=True)
    pending.write_bytes(b"a stamp")
    async with running_daemon(layout, bus_address):
        await wait_until(lambda: not pending.exists(), 5)
        assert kept.read_bytes() == b"a stamp" and kept.stat().st_mode & 0o777 == 0o600


async def test_watchdog_and_ready_notifications(tmp_path: Path, bus_address: str, monkeypatch) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    notify_socket = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_socket))
    receiver.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    messages: list[str] = []

    async def receive() -> None:
        loop = asyncio.get_running_loop()
        while True:
            messages.append((await loop.sock_recv(receiver, 4096)).decode())

    reader = asyncio.create_task(receive())
    async with running_daemon(layout, bus_address):
        await wait_until(lambda: sum(m == "WATCHDOG=1" for m in messages) >= 3, timeout=2)
    reader.cancel()
    receiver.close()
    assert any(m.startswith("READY=1") for m in messages)
    assert any(m.startswith("STATUS=") for m in messages)
    assert sum(m == "WATCHDOG=1" for m in messages) >= 3


def test_sigterm_exits_cleanly(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID})
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from hostd.daemon import main; sys.exit(main())",
            "--root",
            str(layout.root),
            "--bus",
            bus_address,
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        for _ in range(500):  # until hostd owns its name, i.e. is serving
            owned = subprocess.run(
                [
                    "busctl",
                    f"--address={bus_address}",
                    "call",
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "NameHasOwner",
                    "s",
                    api.BUS_NAME,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if owned.stdout.strip() == "b true" or process.poll() is not None:
                break
            time.sleep(0.02)
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert all(line.startswith("<") for line in stderr.splitlines()), stderr  # <N> priority prefixes


async def test_idle_hostd_arms_no_timer_but_the_watchdogs(tmp_path: Path, bus_address: str, monkeypatch) -> None:
    """Idle, only the watchdog ping wakes hostd of its own accord: an edit of config.json is seen
    through inotify on the loop, and afterwards no other timer is armed."""
    layout = make_root(tmp_path, {"uuid": UUID})
    monkeypatch.setenv("WATCHDOG_USEC", str(3600 * 10**6))  # pinged every 30 min: its timer is told by its due time
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    loop = asyncio.get_running_loop()
    the_tests_own = set(loop._scheduled)  # the test's time limit

    def timers() -> list[float]:
        """Seconds until each armed timer of hostd (the only other user of this loop)."""
        return [h.when() - loop.time() for h in loop._scheduled if not h.cancelled() and h not in the_tests_own]

    def only_the_watchdog() -> bool:
        due = timers()
        return len(due) == 1 and due[0] > 1000

    async with running_daemon(layout, bus_address):
        await wait_until(only_the_watchdog, 10)
        Path(layout.config_json).write_text(json.dumps({"uuid": UUID, "hostname": "edited"}))
        await wait_until(lambda: Path(layout.etc_hostname).read_text() == "edited\n", 10)
        await wait_until(only_the_watchdog, 10)
        await asyncio.sleep(0.5)
        assert only_the_watchdog(), timers()
