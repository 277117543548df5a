"""hostctl's online commands against the daemon on a private bus: output, JSON and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from hostd import cli

from .test_daemon import UUID, client, hostd_call, make_root, running_daemon

REPO = Path(__file__).resolve().parents[2]


def hostctl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hostd.cli", "--bus", address, *args], capture_output=True, text=True, env=env
    )


async def test_status_json_is_describe(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen", "dnsServers": "1.1.1.1"})
    async with running_daemon(layout, bus_address), client(bus_address) as bus:
        done = await asyncio.to_thread(hostctl, bus_address, "status", "--json")
        assert done.returncode == cli.EXIT_OK, done.stderr
        state = json.loads(done.stdout)
        assert state["staticHostname"] == "kitchen"
        assert state == json.loads((await hostd_call(bus, "Describe")).body[0])

        done = await asyncio.to_thread(hostctl, bus_address, "dns")
        assert done.returncode == cli.EXIT_OK and "1.1.1.1" in done.stdout


async def test_changes_reach_the_daemon(tmp_path: Path, bus_address: str) -> None:
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen"})
    async with running_daemon(layout, bus_address):
        done = await asyncio.to_thread(hostctl, bus_address, "hostname", "pantry")
        assert done.returncode == cli.EXIT_OK, done.stderr
        assert json.loads(Path(layout.config_json).read_text())["hostname"] == "pantry"

        done = await asyncio.to_thread(hostctl, bus_address, "hostname", "--", "bad_name!")
        assert done.returncode == cli.EXIT_INVALID
        assert "org.freedesktop.DBus.Error.InvalidArgs" in done.stderr and "'bad_name!'" in done.stderr

        done = await asyncio.to_thread(hostctl, bus_address, "confirm")
        assert done.returncode == cli.EXIT_INVALID and "NothingToConfirm" in done.stderr


async def test_not_running(tmp_path: Path, bus_address: str) -> None:
    done = await asyncio.to_thread(hostctl, bus_address, "status")
    assert done.returncode == cli.EXIT_NOT_RUNNING
    assert "hostd is not running" in done.stderr

    done = await asyncio.to_thread(hostctl, f"unix:path={tmp_path}/no-bus", "status")
    assert done.returncode == cli.EXIT_NOT_RUNNING
    assert "cannot reach the system bus" in done.stderr


async def test_set_discoverable_and_hostname_from_config(tmp_path: Path, bus_address: str) -> None:
    """`hostctl set` sends typed values through SetConfig; `hostname --from-config` (what
    balena-hostname.service runs) fails only when config.json's hostname is not applied."""
    layout = make_root(tmp_path, {"uuid": UUID, "os": {"dns": {"mode": "append"}}})
    async with running_daemon(layout, bus_address):
        done = await asyncio.to_thread(
            hostctl, bus_address, "set", "os.dns.mode=exclusive", 'dnsServers=["1.1.1.1"]', "persistentLogging=true"
        )
        assert done.returncode == cli.EXIT_OK, done.stderr
        document = json.loads(Path(layout.config_json).read_text())
        assert document["os"]["dns"]["mode"] == "exclusive"
        assert (document["dnsServers"], document["persistentLogging"]) == (["1.1.1.1"], True)

        done = await asyncio.to_thread(hostctl, bus_address, "set", "ntpServers=bad host!")
        assert done.returncode == cli.EXIT_INVALID and "ntpServers" in done.stderr

        # off the device (no kernel name to set) the name is hostnamed's: none here, so not applied
        Path(layout.config_json).write_text(json.dumps({**document, "hostname": 42}))
        done = await asyncio.to_thread(hostctl, bus_address, "hostname", "--from-config")
        assert done.returncode == cli.EXIT_INVALID and "hostname" in done.stderr

        done = await asyncio.to_thread(hostctl, bus_address, "discoverable", "off")
        assert done.returncode == cli.EXIT_INVALID or done.stdout.startswith("off"), done.stderr
        assert (Path(layout.hostd_state) / "discoverable").read_bytes() == b"off\n"
