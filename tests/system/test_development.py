"""developmentMode and os.sshKeys on the balenaOS image, proven with real clients from the peer
namespace: OpenSSH's ssh to the socket-activated sshd on 22222, a TCP connect to the engine's
2375, and the getty unit's state.  hostd only writes /var/volatile/development-features and
restarts development-features.target; the image's units do the rest, as on balenaOS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

SSH_PORT = 22222
ENGINE_PORT = 2375
GETTY = "console-getty.service"  # the container's stand-in for getty@tty1 / serial-getty
FLAG = "/var/volatile/development-features"


def ssh(hostd: Hostd, key: Path | None = None) -> subprocess.CompletedProcess:
    """`ssh -p 22222 root@device` from the peer: with the key only, or with no key at all (then
    only an empty password can let it in: BatchMode never prompts)."""
    auth = ["-i", str(key), "-o", "IdentitiesOnly=yes"] if key else ["-o", "PubkeyAuthentication=no"]
    return hostd.tb.peer_exec(
        [
            "ssh",
            "-F",
            "/dev/null",  # none of this machine's ssh settings or keys
            "-p",
            str(SSH_PORT),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            *auth,
            f"root@{hostd.tb.device_ip}",
            "echo",
            "logged-in",
        ],
        check=False,
        timeout=30,
    )


def logs_in(hostd: Hostd, key: Path | None = None) -> bool:
    return ssh(hostd, key).stdout.strip() == "logged-in"


def engine_open(hostd: Hostd) -> bool:
    return hostd.peer_connects(ENGINE_PORT)


def engine_command_line(hostd: Hostd) -> str:
    pid = hostd.main_pid("balena.service")
    return hostd.tb.exec(["cat", f"/proc/{pid}/cmdline"]).stdout.replace("\0", " ")


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    """A fresh ed25519 key pair: (private key file, public key line)."""
    private = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostd-test", "-f", private], check=True)
    return private, private.with_suffix(".pub").read_text().strip()


def set_mode(hostd: Hostd, development: bool, keys: list[str] | None = None) -> None:
    hostd.edit_config(developmentMode=development, os={"sshKeys": keys} if keys else None)
    variant = "development" if development else "production"
    hostd.wait_describe(lambda d: d["variant"] == variant, what=f"variant {variant}")
    hostd.reload()  # returns once applied, the target's restart included


def test_development_mode_live_both_ways(boot: Hostd, key: tuple[Path, str]) -> None:
    """Production (the sample): no password login, no 2375, no getty.  Development: root logs in
    with no password, the engine serves 2375, getty runs.  Back to production with a key in
    os.sshKeys: the empty password is refused again, the key is accepted, 2375 and getty are gone."""
    tb, (private, public) = boot.tb, key
    assert not logs_in(boot), "production must refuse root without a key"
    assert not engine_open(boot) and tb.unit_state(GETTY) != "active"
    assert tb.exec(["test", "-e", FLAG], check=False).returncode != 0

    set_mode(boot, True)
    tb.wait_for(lambda: logs_in(boot), 20, "root logs in over ssh without a password")
    tb.wait_for(lambda: engine_open(boot), 10, "the engine on tcp 2375")
    assert "-H tcp://0.0.0.0:2375" in engine_command_line(boot)
    tb.wait_for(lambda: tb.unit_state(GETTY) == "active", 10, "getty running")

    set_mode(boot, False, [public])
    tb.wait_for(lambda: not engine_open(boot), 10, "tcp 2375 closed")
    assert "tcp://" not in engine_command_line(boot)
    assert tb.unit_state(GETTY) != "active"
    assert not logs_in(boot), "production must refuse root without a key"
    assert logs_in(boot, private), ssh(boot, private).stderr
    assert tb.exec(["test", "-e", FLAG], check=False).returncode != 0


def test_development_mode_with_keys_requires_them(boot: Hostd, key: tuple[Path, str]) -> None:
    """balenaOS: with os.sshKeys set, development mode still runs its features but sshd wants a
    key (`-o PasswordAuthentication=no` in SSHD_OPTS)."""
    tb, (private, public) = boot.tb, key
    set_mode(boot, True, [public])
    tb.wait_for(lambda: engine_open(boot), 10, "the engine on tcp 2375")
    assert "PasswordAuthentication=no" in tb.exec(["cat", FLAG]).stdout
    assert not logs_in(boot), "keys given: the empty password must be refused"
    assert logs_in(boot, private), ssh(boot, private).stderr
