"""The benchmark harness (bench/) still imports and its offline parts still work.

Benchmarks are not tests: nothing here measures or asserts a number, it only keeps the code from
rotting.  The benchmarks themselves: `sudo python3 -m bench` (BENCHMARKS.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dbus_fast import Message
from dbus_fast._private.unmarshaller import Unmarshaller

from bench import __main__ as bench_main
from bench import api, boot, cli, common, dbuswire, device_side, flash, idle, scale

REPO = Path(__file__).resolve().parents[2]


def test_marshalled_call_is_what_dbus_fast_reads() -> None:
    wire = dbuswire.marshal_call(
        "io.hostd1", "/io/hostd1", "org.freedesktop.DBus.Properties", "Get", "ss", ("io.hostd1.Manager", "Hostname")
    )
    message = _unmarshal(bytes(wire))
    assert (message.destination, message.path, message.interface, message.member) == (
        "io.hostd1",
        "/io/hostd1",
        "org.freedesktop.DBus.Properties",
        "Get",
    )
    assert message.signature == "ss" and message.body == ["io.hostd1.Manager", "Hostname"]
    assert dbuswire.marshal_call("a.b", "/a", "a.b", "M") == dbuswire.marshal_call("a.b", "/a", "a.b", "M")


def _unmarshal(data: bytes) -> Message:
    reader, writer = os.pipe()
    try:
        os.write(writer, data)
        with open(reader, "rb", closefd=False) as stream:
            unmarshaller = Unmarshaller(stream)
            message = unmarshaller.unmarshall()
        assert message is not None
        return message
    finally:
        os.close(reader)
        os.close(writer)


def test_statistics_and_table() -> None:
    values = [float(v) for v in range(1, 101)]
    assert common.percentile(values, 50) == 50.0 and common.percentile(values, 99) == 99.0
    rows = [
        common.Row("api", "Get p50", 80.0, "us", 64.0, "hostnamed", "<= 1.3x", True),
        common.Row("memory", "floor", 23.0, "MiB"),
    ]
    assert rows[0].ratio == 1.25
    table = common.format_table(rows)
    assert "1.25x" in table and "yes" in table and "23.0 MiB" in table
    assert common.format_markdown(rows).count("\n") == 3


def test_flash_snapshot_sees_rewrites_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("y")
    before = flash.snapshot({"state": tmp_path})
    (tmp_path / "a.new").write_text("x")
    os.replace(tmp_path / "a.new", tmp_path / "a")  # same content, new inode
    os.chmod(tmp_path / "b", 0o600)
    changes = {path: what for path, what, _ in flash.diff(before, flash.snapshot({"state": tmp_path}))}
    assert changes["state:a"] == "rewritten" and changes["state:b"] == "metadata"
    assert flash.diff(before, before) == []


def test_scale_profiles_are_valid_keyfiles() -> None:
    from hostd import keyfile

    profile = scale.profile("h", 7)
    parsed = keyfile.parse_keyfile("bench-0007.nmconnection", profile.encode())
    assert parsed.id == "bench-h-0007" and parsed.uuid == scale.profile("h", 7).split("uuid=")[1].split()[0]


@pytest.mark.skipif(not shutil.which("jq"), reason="the shell chain needs jq")
def test_balena_chain_writes_every_file(tmp_path: Path) -> None:
    boot_dir = bench_main.boot_partition(tmp_path, 0)
    root = tmp_path / "root"
    env = {**os.environ, "ROOT": str(root), "CONFIG": str(boot_dir / "config.json"), "BOOT": str(boot_dir)}
    subprocess.run(["bash", str(REPO / "bench/balena_chain.sh")], env=env, check=True, timeout=60)
    assert (root / "etc/hostname").read_text() == "hostd-demo\n"
    assert "server=10.213.0.1" in (root / "run/dnsmasq.servers").read_text()
    assert "ssh-ed25519" in (root / "home/root/.ssh/authorized_keys_local").read_text()
    assert (root / "etc/NetworkManager/system-connections/boot-eth.nmconnection").exists()
    assert "wifi.scan-rand-mac-address=no" in (root / "run/NetworkManager/conf.d/os-networkmanager.conf").read_text()


def test_every_module_is_wired() -> None:
    assert set(bench_main.SECTIONS) == {"boot", "api", "flash", "idle", "cli", "scale"}
    for module in (api, boot, cli, flash, idle, scale):
        assert callable(module.run)
    assert "def main()" in (REPO / "bench/device_side.py").read_text() and callable(device_side.main)


def test_daemon_defaults_match_its_parser() -> None:
    """hostd skips argparse when started without arguments (memory): its defaults must stay equal."""
    from hostd import daemon

    assert vars(daemon.build_parser().parse_args([])) == daemon.DEFAULT_ARGS


def test_balena_chain_splits_into_one_unit_per_step() -> None:
    """The balenaOS-as-units baseline runs each `bash -c` block of the chain as its own oneshot."""
    steps = device_side.chain_steps((REPO / "bench/balena_chain.sh").read_text())
    assert len(steps) == 7
    assert all("$ROOT" in step and not step.startswith("'") for step in steps)


def test_the_import_floor_runs_as_hostds_launcher() -> None:
    """The floor row measures what hostd pays: its launcher's interpreter flags and sys.path."""
    import sys

    sys.path.insert(0, str(REPO / "packaging"))
    try:
        import launchers
    finally:
        sys.path.remove(str(REPO / "packaging"))
    shebang, *body = launchers.TEMPLATE.format(libdir=device_side.HOSTD_PYTHON, module="m", function="f").splitlines()
    assert shebang == "#!/usr/bin/python3 " + " ".join(device_side.FLOOR_FLAGS)
    prelude = "; ".join(line.split("#")[0].strip() for line in body if line.startswith(("sys.dont", "sys.path")))
    assert device_side.IMPORT_FLOOR.replace("'", '"').startswith(f"import sys; {prelude}; ")
    compile(device_side.IMPORT_FLOOR, "floor", "exec")
