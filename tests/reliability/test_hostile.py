"""Hostile boot partitions and device trees, case by case, through hostctl's main().

Every run must exit 0, 1 or 2 without a traceback, leave the sentinel directory beside the root
untouched, and say what it refused and why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostd.layout import Layout
from tests.unit.conftest import UUID, DeviceRoot

from .support import WIFI, WIRED, CliRun, run_cli, ssh_key, stamps, tree

PSK = "SuperSecret123"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class Device(DeviceRoot):
    """A device root applied once, and a sentinel directory beside it that nothing may touch."""

    def __init__(self, base: Path) -> None:
        super().__init__(base / "root")
        self.outside = base / "outside"
        self.outside.mkdir()
        (self.outside / "victim").write_text(WIRED)
        (self.outside / "dir").mkdir()
        self.write_config({"uuid": UUID, "hostname": "kitchen", "os": {"sshKeys": [ssh_key(1)]}})
        self.boot_profile("home", WIFI)
        assert self.hostctl("apply").code == 0
        self.outside_before = stamps(self.outside)

    def hostctl(self, command: str, *extra: str) -> CliRun:
        argv = [command, "--offline"] if command == "apply" else [command]
        result = run_cli([*argv, "--root", str(self.root), "--json", *extra])
        assert result.code in (0, 1, 2), result
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result

    def apply(self) -> dict:
        document = json.loads(self.hostctl("apply").stdout)
        assert stamps(self.outside) == self.outside_before, "something outside the root changed"
        return document

    def untouched_outside(self) -> None:
        """Take the sentinel as it is now as the state to keep (after a test's own setup changed it)."""
        self.outside_before = stamps(self.outside)

    def step(self, document: dict, name: str) -> dict:
        return next(step for step in document["steps"] if step["name"] == name)

    def report(self, document: dict, step: str = "connections") -> dict[str, dict]:
        return {entry["name"]: entry for entry in self.step(document, step)["report"]}


@pytest.fixture
def dev(tmp_path: Path) -> Device:
    return Device(tmp_path)


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..evil", "...", "..\\..\\etc\\passwd", "-rf", "a\u2215b", "new\nline", "x" * 255])
def test_odd_boot_file_names_stay_in_the_target_directory(dev: Device, name: str) -> None:
    dev.boot_profile(name, WIRED)
    dev.apply()
    outside_dir = {p.name for p in Path(dev.layout.nm_connections).parent.iterdir()}
    assert outside_dir == {"system-connections", "conf.d", "dispatcher.d"}
    imported = {p.name for p in Path(dev.layout.nm_connections).iterdir()}
    assert imported <= {"home", name}


@pytest.mark.parametrize("name", ["../../../outside/victim", "/etc/passwd", "..", ".", "a/b", "99-x\n", ""])
def test_udev_rule_names_that_are_not_plain_are_rejected(dev: Device, name: str) -> None:
    dev.write_config({"uuid": UUID, "os": {"udevRules": {name: 'ACTION=="add"'}}})
    document = dev.apply()
    [error] = document["config"]["errors"]
    pointer = "/os/udevRules/" + name.replace("~", "~0").replace("/", "~1")
    assert error["pointer"] == pointer and error["path"] == str(dev.layout.config_json)
    assert repr(name) in error["message"]
    assert document["config"]["source"] == "config.json"  # the key alone is held back
    assert [entry["key"] for entry in document["config"]["heldBack"]] == ["os.udevRules"]
    assert list(Path(dev.layout.udev_rules).iterdir()) == []


def test_a_tampered_manifest_cannot_lead_out_of_the_target_directory(dev: Device) -> None:
    victim = dev.outside / "victim"
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    manifest = Path(dev.layout.hostd_state) / "imported-connections.json"
    entries = json.loads(manifest.read_text())
    entries.update({"../../../../../outside/victim": digest, str(victim): digest, "..": digest})
    manifest.write_text(json.dumps(entries))
    document = dev.apply()
    assert victim.read_text() == WIRED
    assert dev.report(document) == {"home": {"name": "home", "status": "unchanged", "reason": ""}}


# --- links, devices, FIFOs, directories ----------------------------------------------------------------


def test_symlink_and_hard_link_in_the_boot_partition_are_rejected(dev: Device) -> None:
    (Path(dev.layout.boot_connections) / "link").symlink_to(dev.outside / "victim")
    os.link(dev.outside / "victim", Path(dev.layout.boot_connections) / "hard")
    dev.untouched_outside()
    report = dev.report(dev.apply())
    assert "symbolic link" in report["link"]["reason"] and report["link"]["status"] == "rejected"
    assert "hard links" in report["hard"]["reason"] and report["hard"]["status"] == "rejected"
    assert sorted(p.name for p in Path(dev.layout.nm_connections).iterdir()) == ["home"]


def test_target_that_is_a_symlink_or_hard_link_is_not_written_through(dev: Device) -> None:
    target = Path(dev.layout.nm_connections) / "home"
    target.unlink()
    target.symlink_to(dev.outside / "victim")  # a profile created on the device?  Not a plain file: left alone
    hostname = Path(dev.layout.etc_hostname)
    hostname.unlink()
    os.link(dev.outside / "victim", hostname)
    (dev.outside / "victim").write_text("kitchen\n")
    os.chmod(dev.outside / "victim", 0o600)  # right content, wrong mode: a chmod would change the outside file
    before = tree(dev.outside)
    document = json.loads(dev.hostctl("apply").stdout)
    assert tree(dev.outside) == before  # its link count drops, nothing else
    assert dev.report(document)["home"]["status"] == "conflict"
    assert target.is_symlink()
    assert hostname.stat().st_nlink == 1 and stat.S_IMODE(hostname.stat().st_mode) == 0o644
    assert stat.S_IMODE((dev.outside / "victim").stat().st_mode) == 0o600


@as_root
def test_device_node_in_the_boot_partition_is_never_opened(dev: Device) -> None:
    # An unassigned character device: opening it would fail with ENXIO, so the reason shows it was not opened.
    os.mknod(Path(dev.layout.boot_connections) / "chardev", 0o600 | stat.S_IFCHR, os.makedev(240, 77))
    os.mknod(Path(dev.layout.config_json).with_name("dispatcher.d"), 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    document = dev.apply()
    entry = dev.report(document)["chardev"]
    assert entry["status"] == "rejected" and entry["reason"].endswith("is not a regular file")
    assert "cannot be read" in dev.step(document, "dispatcher")["message"]


@as_root
def test_config_json_that_is_a_device_node_is_never_opened(dev: Device) -> None:
    Path(dev.layout.config_json).unlink()
    os.mknod(dev.layout.config_json, 0o600 | stat.S_IFCHR, os.makedev(240, 77))
    document = dev.apply()
    assert document["config"]["source"] == "last-known-good"
    assert "is not a regular file" in document["config"]["errors"][0]["message"]


def test_fifos_do_not_hang_the_run(dev: Device) -> None:
    os.mkfifo(Path(dev.layout.boot_connections) / "fifo")
    Path(dev.layout.boot_dispatcher).mkdir()
    os.mkfifo(Path(dev.layout.boot_dispatcher) / "fifo")
    started = time.monotonic()
    document = dev.apply()
    assert time.monotonic() - started < 10
    assert dev.report(document)["fifo"]["status"] == "rejected"
    assert dev.report(document, "dispatcher")["fifo"]["status"] == "rejected"
    Path(dev.layout.config_json).unlink()
    os.mkfifo(dev.layout.config_json)
    document = dev.apply()
    assert document["config"]["source"] == "last-known-good"


def test_directories_named_like_profiles(dev: Device) -> None:
    (Path(dev.layout.boot_connections) / "dir-profile").mkdir()
    (Path(dev.layout.boot_connections) / "dir-profile" / "inner").write_text(WIRED)
    dev.boot_profile("wired", WIRED)
    (Path(dev.layout.nm_connections) / "wired").mkdir()  # in the way on the device
    report = dev.report(dev.apply())
    assert report["dir-profile"]["status"] == "rejected" and "directory" in report["dir-profile"]["reason"]
    assert report["wired"]["status"] == "conflict"
    assert (Path(dev.layout.nm_connections) / "wired").is_dir()


def test_a_directory_where_a_target_file_goes_fails_that_step_alone(dev: Device) -> None:
    Path(dev.layout.dnsmasq_servers).unlink()
    Path(dev.layout.dnsmasq_servers).mkdir()
    document = dev.apply()
    dns = dev.step(document, "dns")
    assert dns["status"] == "failed" and "dnsmasq.servers" in dns["message"]
    assert [s["name"] for s in document["steps"] if s["status"] == "failed"] == ["dns"]
    assert not list(Path(dev.layout.dnsmasq_servers).parent.glob(".*hostd-tmp"))


# --- size, nesting, encoding, line endings ---------------------------------------------------------------


def test_huge_files_are_not_read(dev: Device) -> None:
    with open(Path(dev.layout.boot_connections) / "huge", "wb") as huge:
        huge.truncate(1 << 34)  # sparse: 16 GiB that reading would take minutes and all the memory
    config = Path(dev.layout.config_json)
    config.unlink()
    with open(config, "wb") as file:
        file.truncate(1 << 34)
    started = time.monotonic()
    document = dev.apply()
    assert time.monotonic() - started < 10
    assert document["config"]["errors"][0]["message"] == "file is more than 1048576 bytes"
    assert "more than 65536" in dev.report(document)["huge"]["reason"]


@pytest.mark.parametrize("depth", [100, 900, 980, 990, 1000, 100000])
def test_deeply_nested_config(dev: Device, depth: int) -> None:
    dev.write_config('{"hostname": ' + "[" * depth + "]" * depth + "}")
    document = dev.apply()
    [error] = document["config"]["errors"]
    assert error["pointer"] in ("", "/hostname")


def test_deeply_nested_unknown_key_keeps_the_config_usable_when_parsable(dev: Device) -> None:
    dev.write_config('{"uuid": "' + UUID + '", "hostname": "deep", "x": ' + "[" * 200 + "]" * 200 + "}")
    document = dev.apply()
    assert document["config"]["errors"] == []
    assert Path(dev.layout.etc_hostname).read_text() == "deep\n"


def test_non_utf8(dev: Device) -> None:
    dev.boot_profile("latin1", b"[connection]\nid=caf\xe9\ntype=ethernet\n")
    with open(os.path.join(os.fsencode(dev.layout.boot_connections), b"bad\xffname"), "wb") as file:
        file.write(WIRED.encode())
    report = dev.report(dev.apply())
    assert "line 2" in report["latin1"]["reason"] and "caf\\xe9" in report["latin1"]["reason"]
    assert "not valid UTF-8" in report["bad\udcffname"]["reason"]
    dev.write_config(b'{"uuid": "' + UUID.encode() + b'", "hostname": "caf\xe9"}')
    document = dev.apply()
    assert document["config"]["errors"][0]["message"] == "not UTF-8 (byte 61)"
    result = dev.hostctl("plan", "--json")  # human output of the same, too
    assert result.code == 1


def test_crlf_line_endings_are_kept(dev: Device) -> None:
    original = '{\r\n  "hostname": "crlf",\r\n  "apiKey": "k"\r\n}\r\n'
    dev.write_config(original)
    profile = WIRED.replace("\n", "\r\n")
    dev.boot_profile("wired", profile)
    document = dev.apply()
    uuid = json.loads(Path(dev.layout.config_json).read_text())["uuid"]
    assert (
        Path(dev.layout.config_json).read_bytes()
        == original.replace("{\r\n", '{\r\n  "uuid": "' + uuid + '",\r\n').encode()
    )
    assert dev.report(document)["wired"]["status"] == "imported"
    assert (Path(dev.layout.nm_connections) / "wired").read_bytes() == profile.encode()


def test_duplicate_connection_uuids(dev: Device) -> None:
    dev.boot_profile("second", WIFI.replace("id=home", "id=second"))
    dev.boot_profile("third", WIFI.replace("id=home", "id=third").replace("5f0c4b8e-8a3b", "5F0C4B8E-8A3B"))
    report = dev.report(dev.apply())
    assert report["home"]["status"] == "unchanged"
    for name in ("second", "third"):
        reason = report[name]["reason"]
        assert report[name]["status"] == "rejected"
        assert name in reason and "connection.uuid" in reason and "home" in reason
        assert "5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a001" in reason


# --- the boot partition missing, read-only; links to outside the root --------------------------------------


def test_missing_boot_partition_keeps_everything(dev: Device) -> None:
    before = tree(dev.root / "etc")
    os.rename(dev.layout.boot, dev.root / "boot-elsewhere")
    Path(dev.layout.boot).mkdir()  # the mount point, with nothing mounted
    result = dev.hostctl("apply")
    document = json.loads(result.stdout)
    assert result.code == 1 and document["config"]["source"] == "last-known-good"
    assert tree(dev.root / "etc") == before
    assert "cannot be read" in dev.step(document, "connections")["message"]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


@as_root
def test_read_only_boot_partition(dev: Device) -> None:
    dev.write_config({"hostname": "no-uuid"})  # the uuid write-back must fail, and say so
    before = tree(dev.layout.boot)
    with read_only(dev.layout.boot):
        result = dev.hostctl("apply")
        document = json.loads(result.stdout)
        assert tree(dev.layout.boot) == before
    identity = dev.step(document, "identity")
    assert result.code == 1 and identity["status"] == "failed"
    assert "Read-only file system" in identity["message"] and "config.json" in identity["message"]
    assert [s["name"] for s in document["steps"] if s["status"] == "failed"] == ["identity"]
    assert Path(dev.layout.etc_hostname).read_text() == "no-uuid\n"
    dev.write_config({"uuid": UUID, "hostname": "with-uuid"})
    with read_only(dev.layout.boot):
        assert dev.hostctl("apply").code == 0  # nothing to write there


TARGET_DIRS = [
    "etc/NetworkManager/system-connections",
    "etc/NetworkManager/dispatcher.d",
    "etc/udev/rules.d",
    "home/root/.ssh",
    "run/systemd/journald.conf.d",
    "run",
    "etc",
    "mnt/state/hostd",
]


@pytest.mark.parametrize("relative", TARGET_DIRS)
def test_symlinked_target_directory_is_not_written_through(dev: Device, relative: str) -> None:
    dev.write_config(
        {
            "uuid": UUID,
            "hostname": "changed",
            "ntpServers": "pool.example.org",
            "dnsServers": "9.9.9.9",
            "persistentLogging": True,
            "os": {"sshKeys": [ssh_key(2)], "udevRules": {"99-x": "x"}},
        }
    )
    dev.boot_profile("wired", WIRED)
    Path(dev.layout.boot_dispatcher).mkdir()
    (Path(dev.layout.boot_dispatcher) / "10-up").write_text("#!/bin/sh\n")
    directory = dev.root / relative
    directory.mkdir(parents=True, exist_ok=True)  # journald's drop-in directory: none with the defaults
    os.rename(directory, directory.with_name(directory.name + ".moved"))
    directory.symlink_to(dev.outside / "dir", target_is_directory=True)  # absolute, like an image's links
    result = dev.hostctl("apply")
    assert stamps(dev.outside) == dev.outside_before
    assert result.code == 1 and "is a symbolic link; hostd does not write through it" in result.stdout
    assert directory.is_symlink()


def test_symlinked_boot_directory_is_not_read(dev: Device) -> None:
    (dev.outside / "dir" / "host-wifi").write_text(WIRED)
    dev.untouched_outside()
    Path(dev.layout.boot_connections).rename(Path(dev.layout.boot) / "moved")
    Path(dev.layout.boot_connections).symlink_to(dev.outside / "dir")
    document = dev.apply()
    assert "is a symbolic link; hostd does not read through it" in dev.step(document, "connections")["message"]
    assert not (Path(dev.layout.nm_connections) / "host-wifi").exists()
    assert (Path(dev.layout.nm_connections) / "home").exists()  # imported earlier: left as it is


def test_config_json_that_is_a_symlink_or_a_directory(dev: Device) -> None:
    (dev.outside / "config.json").write_text(json.dumps({"uuid": UUID, "hostname": "from-outside"}))
    dev.untouched_outside()
    config = Path(dev.layout.config_json)
    config.unlink()
    config.symlink_to(dev.outside / "config.json")
    document = dev.apply()
    assert document["config"]["source"] == "last-known-good"
    assert "symbolic link" in document["config"]["errors"][0]["message"]
    assert Path(dev.layout.etc_hostname).read_text() == "kitchen\n" and config.is_symlink()
    config.unlink()
    config.mkdir()
    document = dev.apply()
    assert document["config"]["source"] == "last-known-good"
    assert "is a directory" in document["config"]["errors"][0]["message"]
    assert config.is_dir() and list(config.iterdir()) == []


def test_last_known_good_in_a_symlinked_state_directory_is_not_written(dev: Device, tmp_path: Path) -> None:
    state = Path(dev.layout.hostd_state)
    os.rename(state, tmp_path / "state-moved")
    state.symlink_to(dev.outside / "dir")
    dev.write_config({"uuid": UUID, "hostname": "changed"})
    dev.apply()
    assert list((dev.outside / "dir").iterdir()) == []


# --- secrets -------------------------------------------------------------------------------------------


SECRET_LINES = [
    f"psk={PSK}\xff",  # a bad byte in its value
    f"psk={PSK}\0",
    f"p\xffsk={PSK}",  # a bad byte in its key
    f"p\ufeffsk={PSK}\xff",  # an invisible character in its key
    f"psk {PSK}",  # no '='
    f"pin {PSK}",
    f"psk={PSK}\n[broken",  # fine itself, an error on the next line
    f"psk={PSK}\n[connection]\nuuid=not-a-uuid",
]


@pytest.mark.parametrize("line", SECRET_LINES)
def test_a_secret_never_appears_in_any_output(dev: Device, line: str) -> None:
    profile = WIFI.replace(f"psk={PSK}\n", line + "\n")
    dev.boot_profile("bad", profile.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    dev.boot_profile("dup", WIFI)  # accepted content with the psk, rejected for its uuid
    outputs = [
        dev.hostctl("plan"),
        dev.hostctl("apply"),
        run_cli(["plan", "--root", str(dev.root)]),
        run_cli(["apply", "--offline", "--root", str(dev.root)]),
    ]
    document = json.loads(outputs[0].stdout)
    assert dev.report(document)["bad"]["status"] == "rejected"
    for output in outputs:
        assert PSK not in output.stdout + output.stderr
        assert PSK[:8] not in output.stdout + output.stderr


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"hostname": "kitchen\n"}, "/hostname"),  # $ matched before a final newline
        ({"dnsServers": ["fe80::1%eth0\nserver=1.2.3.4"]}, "/dnsServers/0"),  # any IPv6 scope id parsed
        ({"ntpServers": ["pool.ntp.org\n"]}, "/ntpServers/0"),
        (
            {"os": {"network": {"connectivity": {"uri": "https://x/\n[main]\nplugins=evil"}}}},
            "/os/network/connectivity/uri",
        ),
        ({"os": {"network": {"connectivity": {"response": "ok\r\x1b[2J"}}}}, "/os/network/connectivity/response"),
        ({"os": {"udevRules": {"99-x\n": "x"}}}, "/os/udevRules/99-x\n"),
        ({"os": {"udevRules": {"99-x": "\ud800"}}}, "/os/udevRules/99-x"),
        ({"os": {"sshKeys": [ssh_key(1, "\udfff")]}}, "/os/sshKeys/0"),
        ({"uuid": UUID + "\n"}, "/uuid"),
    ],
)
def test_values_that_would_break_out_of_their_line_are_rejected(dev: Device, document: dict, pointer: str) -> None:
    dev.write_config({"uuid": UUID, **document})
    before = tree(dev.root / "run")
    result = dev.hostctl("apply")
    assert [error["pointer"] for error in json.loads(result.stdout)["config"]["errors"]] == [pointer]
    assert tree(dev.root / "run") == before
    human = run_cli(["apply", "--offline", "--root", str(dev.root)])  # printable, a lone surrogate too
    assert human.code == 1 and "Traceback" not in human.stderr


def test_an_endpoint_that_would_break_out_of_its_line_is_not_used(dev: Device) -> None:
    dev.write_config({"uuid": UUID, "apiEndpoint": "https://api.example.com\n[main]\nplugins=evil"})
    dev.apply()
    assert not Path(dev.layout.nm_dropin).exists()


def test_a_number_too_long_to_convert(dev: Device) -> None:
    dev.write_config('{"uuid": "' + UUID + '", "os": {"network": {"connectivity": {"interval": ' + "9" * 5000 + "}}}}")
    document = dev.apply()
    assert document["config"]["errors"] == [
        {"path": str(dev.layout.config_json), "pointer": "", "message": "a number in it is too long"}
    ]


def test_rejections_name_file_line_and_value(dev: Device) -> None:
    dev.boot_profile("typo", WIRED.replace("type=ethernet", "type=ethernett"))
    dev.write_config(
        {"uuid": UUID, "dnsServers": ["1.1.1.1", "8.8.8.800"], "os": {"journal": {"systemMaxUse": "lots"}}}
    )
    document = dev.apply()
    reason = dev.report(document)["typo"]["reason"]
    assert reason == "keyfile 'typo' line 4: connection.type 'ethernett' is not a NetworkManager connection type"
    errors = {(e["pointer"], e["message"]) for e in document["config"]["errors"]}
    assert errors == {
        ("/dnsServers/1", "'8.8.8.800' is not an IPv4 or IPv6 address"),
        ("/os/journal/systemMaxUse", '\'lots\' is not a size such as "16M", "512M" or "1G"'),
    }
    assert {e["path"] for e in document["config"]["errors"]} == {str(Layout(dev.root).config_json)}
