"""Who may change the host: the shipped bus policy, enforced by a real dbus-daemon, and hostd's own check.

Every mutating method called by a non-root user is refused with AccessDenied, both by the
policy file (units/dbus/io.hostd1.conf) on a system-bus-like daemon and, with the policy
loosened, by hostd itself; reads keep working and nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostd import api

from .test_daemon import UUID, make_root, running_daemon

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
OBJECT = (api.BUS_NAME, api.OBJECT_PATH, api.INTERFACE)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")

SYSTEM_LIKE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  {include}
</busconfig>
"""
LOOSE_INCLUDE = '<policy context="default"><allow own="*"/><allow send_destination="*"/></policy>'


@pytest.fixture(params=["shipped-policy", "loosened-policy"])
def system_bus(request: pytest.FixtureRequest) -> Iterator[str]:
    # The socket must be reachable by the unprivileged caller: not under pytest's private tmp.
    directory = Path(tempfile.mkdtemp(prefix="hostd-policy-"))
    directory.chmod(0o755)
    include = (
        f"<include>{REPO / 'units/dbus/io.hostd1.conf'}</include>"
        if request.param == "shipped-policy"
        else LOOSE_INCLUDE
    )
    config = directory / "bus.conf"
    config.write_text(SYSTEM_LIKE.format(socket=directory / "socket", include=include))
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--print-address=1", "--nofork"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        yield daemon.stdout.readline().strip()
    finally:
        daemon.terminate()
        daemon.wait(timeout=5)
        shutil.rmtree(directory)


async def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    command = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *command)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    return subprocess.CompletedProcess(command, process.returncode or 0, stdout.decode(), stderr.decode())


def busctl(address: str, *args: str) -> list[str]:
    return ["busctl", f"--address={address}", "--timeout=10", *args]


def dbus_send(address: str, method: str, *args: str) -> list[str]:
    # dbus-send, unlike busctl, prints the error's own message, which says who refused.
    return [
        "dbus-send",
        f"--bus={address}",
        "--print-reply",
        f"--dest={api.BUS_NAME}",
        api.OBJECT_PATH,
        f"{api.INTERFACE}.{method}",
        *args,
    ]


async def test_non_root_caller_cannot_change_anything(
    tmp_path: Path, system_bus: str, request: pytest.FixtureRequest
) -> None:
    # With the policy loosened, the refusal must come from hostd's own credentials check.
    refuser = "needs root" if "loosened" in request.node.callspec.id else "Rejected send message"
    layout = make_root(tmp_path, {"uuid": UUID, "hostname": "kitchen"})
    config_before = Path(layout.config_json).read_bytes()
    async with running_daemon(layout, system_bus):
        for method, args in (
            ("Reload", ()),
            ("SetHostname", ("string:evil",)),
            ("SetPersistentLogging", ("boolean:true",)),
            ("SetDiscoverable", ("boolean:false",)),
            ("AddConnection", ("string:evil", "string:[connection]\ntype=ethernet\n")),
            ("UpdateConnection", ("string:evil", "string:[connection]\ntype=ethernet\n")),
            ("RemoveConnection", ("string:evil",)),
        ):
            refused = await as_nobody(*dbus_send(system_bus, method, *args))
            assert refused.returncode != 0, method
            assert refuser in refused.stderr, (method, refused.stderr)
        # dbus-send cannot build an a{sv}
        set_config = busctl(system_bus, "call", *OBJECT, "SetConfig", "a{sv}", "1", "dnsServers", "s", "1.1.1.1")
        refused = await as_nobody(*set_config)
        assert refused.returncode != 0 and ("needs root" in refused.stderr or "Access denied" in refused.stderr), (
            refused.stderr
        )
        describe = await as_nobody(*busctl(system_bus, "--json=short", "call", *OBJECT, "Describe"))
        assert describe.returncode == 0, describe.stderr
        assert json.loads(json.loads(describe.stdout)["data"][0])["staticHostname"] == "kitchen"
        hostname = await as_nobody(*busctl(system_bus, "get-property", *OBJECT, "StaticHostname"))
        assert hostname.stdout.strip() == 's "kitchen"', hostname.stderr
        plan = await as_nobody(*busctl(system_bus, "call", *OBJECT, "Plan"))
        assert plan.returncode == 0, plan.stderr
        listed = await as_nobody(*busctl(system_bus, "call", *OBJECT, "ListConnections"))
        assert listed.returncode == 0 and listed.stdout.strip() == "a(sssss) 0", listed.stderr
    assert Path(layout.config_json).read_bytes() == config_before
    assert Path(layout.etc_hostname).read_text() == "kitchen\n"
    assert not (Path(layout.hostd_state) / "discoverable").exists()
    assert list(Path(layout.boot_connections).iterdir()) == []
