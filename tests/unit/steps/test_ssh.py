"""ssh: ``os.sshKeys`` -> authorized_keys_local, 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hostd.steps import ssh

from ..conftest import ED25519_KEY, UUID


@pytest.mark.parametrize("mode", [0o644, 0o666])
def test_wrong_mode_is_fixed_without_rewrite(device, mode) -> None:
    device.write_config({"uuid": UUID, "os": {"sshKeys": [ED25519_KEY]}})
    device.run_step(ssh)
    keys = Path(device.layout.authorized_keys)
    os.chmod(keys, mode)
    inode = keys.stat().st_ino
    assert [c.kind for c in device.run_step(ssh).changes] == ["chmod"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and keys.stat().st_ino == inode


def test_no_keys_no_file(device) -> None:
    device.write_config({"uuid": UUID, "os": {"sshKeys": [ED25519_KEY]}})
    device.run_step(ssh)
    device.write_config({"uuid": UUID})
    assert [c.kind for c in device.run_step(ssh).changes] == ["remove"]
    assert not Path(device.layout.authorized_keys).exists()
