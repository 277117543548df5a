"""Safe apply on a private bus: a network change is kept only if the device stays reachable.

The connectivity probe resolves a name through a small DNS server of the test's own (standing in
for dnsmasq), so each scenario can make the device look reachable or cut off.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hostd import prepare
from hostd.daemon import Daemon
from hostd.layout import Layout

from .fakes.networkmanager import FakeNetworkManager
from .support import wait_until
from .test_daemon import UUID, call, client, get_all, hostd_call, make_root, name_has_owner

PROBE_NAME = "probe.test"
DBUS_DAEMON = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


class Resolver(asyncio.DatagramProtocol):
    """Answers A queries for PROBE_NAME while ``up`` and not ``cut_off()``; NXDOMAIN otherwise."""

    def __init__(self) -> None:
        self.up = True
        self.cut_off: Callable[[], bool] = lambda: False  # what the change under test does
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query_id, _, _, _, _, _ = struct.unpack("!6H", data[:12])
        question = data[12:]
        qtype = struct.unpack("!H", question[question.index(b"\0") + 1 : question.index(b"\0") + 3])[0]
        answer = self.up and not self.cut_off() and qtype == 1
        header = struct.pack("!6H", query_id, 0x8180 if answer else 0x8183, 1, 1 if answer else 0, 0, 0)
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 213, 0, 99]) if answer else b""
        assert self.transport is not None
        self.transport.sendto(header + question + record, addr)


@asynccontextmanager
async def resolver() -> AsyncIterator[tuple[Resolver, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Resolver, local_addr=("127.0.0.1", 0))
    try:
        yield protocol, transport.get_extra_info("sockname")
    finally:
        transport.close()


@asynccontextmanager
async def daemon_on(layout: Layout, address: str, dns: tuple[str, int]) -> AsyncIterator[Daemon]:
    daemon = Daemon(layout, address, probe_resolver=dns)
    task = asyncio.create_task(daemon.run())
    async with client(address) as bus:
        while not await name_has_owner(bus):
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)


def config(**extra: Any) -> dict[str, Any]:
    return {"uuid": UUID, "os": {"safeApply": {"timeout": 5, "probeName": PROBE_NAME}}, **extra}


async def properties(address: str) -> dict[str, Any]:
    async with client(address) as bus:
        return {name: variant.value for name, variant in (await get_all(bus)).items()}


async def test_first_boot_applies_without_probe_and_good_change_is_kept(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (dns, address), daemon_on(layout, bus_address, address) as daemon:
        dns.up = False  # first boot: nothing to roll back to, so nothing is probed
        first = await properties(bus_address)
        assert first["GoodGeneration"] == first["Generation"] != ""
        dns.up = True
        Path(layout.config_json).write_text(json.dumps(config(dnsServers="9.9.9.9")))
        # a network change: probed (the resolver answers at once), then kept
        await wait_until(lambda: daemon.reconciler.applied_id not in ("", first["Generation"]), timeout=5)
        await wait_until(
            lambda: (
                daemon.reconciler.store.good() == daemon.reconciler.applied_id
                and daemon.reconciler.transaction.state == ""
            ),
            timeout=5,
        )
        kept = await properties(bus_address)
        assert kept["GoodGeneration"] == kept["Generation"] != first["Generation"]
        assert kept["DnsServers"] == ["9.9.9.9"] and kept["NotApplied"] == ""


async def test_cut_off_device_rolls_back_and_does_not_retry(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    bad = json.dumps(config(dnsServers="192.0.2.1", os_extra=1))
    async with resolver() as (dns, address):
        async with daemon_on(layout, bus_address, address) as daemon:
            good = (await properties(bus_address))["GoodGeneration"]
            # the new servers cut name resolution off (it worked before: the change is to blame)
            dns.cut_off = lambda: "192.0.2.1" in Path(layout.dnsmasq_servers).read_text()
            Path(layout.config_json).write_text(bad)
            await wait_until(lambda: daemon.reconciler.transaction.state == "probing", timeout=5)
            await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
            after = await properties(bus_address)
            assert after["Generation"] == good == after["GoodGeneration"]
            assert after["DnsServers"] == ["1.1.1.1"]
            assert Path(layout.dnsmasq_servers).read_text() == "server=1.1.1.1\n"
            _when, rejected, reason, evidence = after["LastRollback"]
            assert rejected != good and "probe failed" in reason and f"{PROBE_NAME} does not resolve" in evidence
            assert "rolled back" in after["NotApplied"]
            assert Path(layout.config_json).read_text() == bad  # the user's file is never rewritten
        # the next boot does not try the rejected generation again
        async with daemon_on(layout, bus_address, address):
            again = await properties(bus_address)
            assert again["Generation"] == good and again["DnsServers"] == ["1.1.1.1"]
            assert "is not applied" in again["NotApplied"]
            # ... until config.json changes
            Path(layout.config_json).write_text(json.dumps(config(dnsServers="192.0.2.1")))
            await wait_until(lambda: Path(layout.dnsmasq_servers).read_text() == "server=192.0.2.1\n", timeout=5)


async def test_try_rolls_back_unless_confirmed(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, config(hostname="before"))
    async with (
        resolver() as (_, address),
        daemon_on(layout, bus_address, address) as daemon,
        client(bus_address) as bus,
    ):
        reply = await hostd_call(bus, "Try", "su", json.dumps(config(hostname="unconfirmed")), 5)
        assert reply.body == [] and daemon.reconciler.transaction.state == "awaiting-confirm"
        assert Path(layout.etc_hostname).read_text() == "unconfirmed\n"
        await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=8)
        assert Path(layout.etc_hostname).read_text() == "before\n"

        invalid = await hostd_call(bus, "Try", "su", '{"hostname": "nö good"}', 5)
        assert invalid.error_name == "org.freedesktop.DBus.Error.InvalidArgs" and "'nö good'" in invalid.body[0]
        assert json.loads(Path(layout.config_json).read_text())["hostname"] == "unconfirmed"  # not written
        await hostd_call(bus, "Try", "su", json.dumps(config(hostname="confirmed")), 5)
        assert (await hostd_call(bus, "Confirm")).message_type.name == "METHOD_RETURN"
        await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=3)
        await asyncio.sleep(0.1)
        assert Path(layout.etc_hostname).read_text() == "confirmed\n"
        nothing = await hostd_call(bus, "Confirm")
        assert nothing.error_name == "io.hostd1.Error.NothingToConfirm"


async def test_a_held_back_key_keeps_its_last_known_good_value_across_boots(tmp_path: Path, bus_address: str) -> None:
    """A good generation holding a key back records the value the key ran with: after a reboot
    and further edits the key still runs with it (not the default), so nothing risky changed and
    nothing is probed."""
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (dns, address):
        async with daemon_on(layout, bus_address, address) as daemon:
            dns.up = False  # a probe would fail: none must be needed
            Path(layout.config_json).write_text(json.dumps(config(dnsServers="not-an-ip", developmentMode="true")))
            await wait_until(
                lambda: daemon.reconciler.applied is not None and daemon.reconciler.applied.config.development_mode,
                timeout=5,
            )
            kept = await properties(bus_address)
            assert kept["DnsServers"] == ["1.1.1.1"] and kept["GoodGeneration"] == kept["Generation"]
            assert [list(entry)[::2] for entry in kept["HeldBack"]] == [["/dnsServers", "last-known-good"]]
        async with daemon_on(layout, bus_address, address) as daemon:  # the next boot
            Path(layout.config_json).write_text(json.dumps(config(dnsServers="not-an-ip", developmentMode="false")))
            await wait_until(
                lambda: daemon.reconciler.applied is not None and not daemon.reconciler.applied.config.development_mode,
                timeout=5,
            )
            after = await properties(bus_address)
            assert after["DnsServers"] == ["1.1.1.1"] and Path(layout.dnsmasq_servers).read_text() == "server=1.1.1.1\n"
            assert after["GoodGeneration"] == after["Generation"] and after["Transaction"] == ""


async def test_networkmanager_checkpoint_is_the_inner_layer(tmp_path: Path, bus_address: str) -> None:
    """A checkpoint of every device is taken before the change (rollback timeout beyond the window),
    extended while probing, destroyed when the change is kept and rolled back when it is not; one
    left behind by an earlier hostd is cleared at start, so that the next one can be taken."""
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    stale = "/org/freedesktop/NetworkManager/Checkpoint/99"  # left by a hostd killed inside a window
    fake.manager.checkpoints[stale] = 600
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (dns, address), daemon_on(layout, bus_address, address) as daemon:
        assert fake.manager.checkpoint_calls == [("destroy", stale)]  # no trial was recorded: destroyed
        first = daemon.reconciler.applied_id
        Path(layout.config_json).write_text(json.dumps(config(dnsServers="9.9.9.9")))
        await wait_until(lambda: daemon.reconciler.store.good() not in (first, None), timeout=8)
        kinds = [call[0] for call in fake.manager.checkpoint_calls[1:]]
        create = fake.manager.checkpoint_calls[1]
        assert create[0] == "create" and create[2:] == ("25", "6")  # 5 s window + margin; new profiles/devices
        assert kinds[-1] == "destroy" and "adjust" in kinds and not fake.manager.checkpoints

        dns.cut_off = lambda: "192.0.2.1" in Path(layout.dnsmasq_servers).read_text()
        Path(layout.config_json).write_text(json.dumps(config(dnsServers="192.0.2.1")))
        await wait_until(lambda: daemon.reconciler.transaction.state == "probing", timeout=5)
        assert len(fake.manager.checkpoints) == 1
        await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
        assert fake.manager.checkpoint_calls[-1][0] == "rollback" and not fake.manager.checkpoints
        _when, _rejected, _reason, evidence = (await properties(bus_address))["LastRollback"]
        assert "NetworkManager checkpoint rolled back" in evidence


async def test_a_change_the_boot_stage_wrote_is_probed_without_a_checkpoint(tmp_path: Path, bus_address: str) -> None:
    """The boot partition changed while the device was off: at boot hostd.prepare writes the new
    generation's network inputs before NetworkManager starts, then hostd puts it on trial.  No
    NetworkManager checkpoint is taken (it would hold the changed state, and its rollback bring the
    change back); the good generation's files, restored through the steps, undo it."""
    fake = FakeNetworkManager(bus_address)
    await fake.start()
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (dns, address):
        async with daemon_on(layout, bus_address, address) as daemon:
            good = daemon.reconciler.store.good()
        Path(layout.config_json).write_text(json.dumps(config(dnsServers="192.0.2.1")))
        assert prepare.run("network-inputs", layout.root) == 0
        assert Path(layout.dnsmasq_servers).read_text() == "server=192.0.2.1\n"
        dns.cut_off = lambda: "192.0.2.1" in Path(layout.dnsmasq_servers).read_text()
        calls = len(fake.manager.checkpoint_calls)
        async with daemon_on(layout, bus_address, address) as daemon:
            assert daemon.reconciler.transaction.state == "probing"
            await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
            after = await properties(bus_address)
            assert after["Generation"] == after["GoodGeneration"] == good
            servers = Path(layout.dnsmasq_servers).read_text()  # beside the (fake) network's own
            assert "server=1.1.1.1\n" in servers and "192.0.2.1" not in servers
            assert [call for call in fake.manager.checkpoint_calls[calls:] if call[0] == "create"] == []


async def test_try_interrupted_by_a_restart_is_rolled_back_at_the_next_start(tmp_path: Path, bus_address: str) -> None:
    """The trial is recorded on the state partition: hostd stopping inside Try's confirm window (a
    crash, a reboot) never keeps the change; the next start rolls it back and says why."""
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (_, address):
        async with daemon_on(layout, bus_address, address) as daemon, client(bus_address) as bus:
            good = daemon.reconciler.store.good()
            reply = await hostd_call(bus, "Try", "su", json.dumps(config(dnsServers="9.9.9.9")), 60)
            assert reply.body == [] and (Path(layout.hostd_state) / "trial.json").exists()
            tried = daemon.reconciler.applied_id
            daemon.reconciler.transaction.supersede()  # the process dies: its trial with it
        async with daemon_on(layout, bus_address, address) as daemon:  # started again, never confirmed
            after = await properties(bus_address)
            assert after["Generation"] == after["GoodGeneration"] == good != tried
            assert after["DnsServers"] == ["1.1.1.1"] and after["Transaction"] == ""
            _when, rejected, reason, _evidence = after["LastRollback"]
            assert rejected == tried and "hostd stopped inside the confirm window" in reason
            assert "is not applied" in after["NotApplied"] and not (Path(layout.hostd_state) / "trial.json").exists()


async def test_automatic_apply_interrupted_by_a_restart_is_judged_afresh(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with resolver() as (dns, address):
        async with daemon_on(layout, bus_address, address) as daemon:
            good = daemon.reconciler.store.good()
            dns.cut_off = lambda: "192.0.2.1" in Path(layout.dnsmasq_servers).read_text()
            # the window (5 s): the test stops hostd within milliseconds of the trial's start
            Path(layout.config_json).write_text(json.dumps(config(dnsServers="192.0.2.1")))
            await wait_until(lambda: daemon.reconciler.transaction.state == "probing", timeout=10)
            daemon.reconciler.transaction.supersede()  # the process dies: its trial with it
        async with daemon_on(layout, bus_address, address) as daemon:  # stopped inside the window
            assert daemon.reconciler.transaction.state == "probing"  # not kept: probed again
            await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
            # the trial ends, then the good generation's files and effects are restored
            await wait_until(
                lambda: daemon.reconciler.applied is not None and daemon.reconciler.applied.id == good, timeout=10
            )
            after = await properties(bus_address)
            assert after["Generation"] == after["GoodGeneration"] == good
            assert after["DnsServers"] == ["1.1.1.1"] and "rolled back" in after["NotApplied"]


async def test_a_change_is_not_blamed_for_an_uplink_that_failed_before_it(tmp_path: Path, bus_address: str) -> None:
    """The uplink fails before the change is applied: the change is rolled back without being
    rejected, reported (Retry, RetryAttempt), and tried again once the uplink is healthy: kept."""
    layout = make_root(tmp_path, config(dnsServers="1.1.1.1"))
    async with (
        resolver() as (dns, address),
        daemon_on(layout, bus_address, address) as daemon,
        client(bus_address) as bus,
    ):
        attempts: list[tuple[Any, ...]] = []
        bus.add_message_handler(
            lambda m: attempts.append(tuple(m.body)) if m.member == "RetryAttempt" else None  # type: ignore[func-returns-value]
        )
        await call(bus, *DBUS_DAEMON, "AddMatch", "s", "type='signal',member='RetryAttempt'")
        dns.up = False  # the uplink is down before the change
        Path(layout.config_json).write_text(json.dumps(config(dnsServers="9.9.9.9")))
        await wait_until(lambda: daemon.reconciler.transaction.state == "probing", timeout=5)
        await wait_until(lambda: daemon.reconciler.transaction.state == "", timeout=10)
        deferred = await properties(bus_address)
        candidate, made, of, next_at, why = deferred["Retry"]
        assert made == 0 and of == 3 and next_at > 0 and f"{PROBE_NAME} does not resolve" in why
        assert deferred["Generation"] == deferred["GoodGeneration"] != candidate
        assert "not blamed" in deferred["LastRollback"][2] and "retry 1 of 3" in deferred["NotApplied"]
        assert candidate not in daemon.reconciler.store.rejected()
        await wait_until(lambda: attempts == [(candidate, 0, 3, "deferred")], timeout=3)
        dns.up = True  # healthy again: retried after its backoff (one window), then kept
        await wait_until(lambda: daemon.reconciler.store.good() == candidate, timeout=15)
        await wait_until(lambda: attempts[-1] == (candidate, 1, 3, "kept"), timeout=3)
        kept = await properties(bus_address)
        assert kept["DnsServers"] == ["9.9.9.9"] and kept["NotApplied"] == "" and kept["Retry"][0] == ""
