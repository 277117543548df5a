from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostd import config as cfg
from hostd import engine
from hostd.layout import Layout
from hostd.steps import state
from hostd.steps.base import Context, Facts, StepResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hostd.steps.base import Step

ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f me@laptop"
UUID = "0123456789abcdef0123456789abcdef"
WIFI = (
    "[connection]\nid=home\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a001\ntype=wifi\n[wifi]\nssid=home\n"
    "[wifi-security]\nkey-mgmt=wpa-psk\npsk=SuperSecret123\n"
)
WIRED = "[connection]\nid=wired\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a002\ntype=ethernet\n"
SHIPPED_JOURNALD_DEFAULTS = Path(__file__).parents[2] / "units/conf/journald.conf.d/50-hostd-defaults.conf"


class DeviceRoot:
    """A temporary directory laid out like a device's root filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(root)
        for partition in ("mnt/boot/system-connections", "mnt/state", "mnt/data"):
            (root / partition).mkdir(parents=True)
        for path in state.STATE_BIND_PATHS + state.DATA_BIND_PATHS:
            target = Path(self.layout.path(path))
            if path in ("/etc/hostname", "/home/root/.rnd"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("")
            else:
                target.mkdir(parents=True, exist_ok=True)
        # what the image ships and journald starts with
        Path(self.layout.journald_defaults).parent.mkdir(parents=True)
        Path(self.layout.journald_defaults).write_bytes(SHIPPED_JOURNALD_DEFAULTS.read_bytes())

    def write_config(self, document: dict | str | bytes) -> Path:
        path = Path(self.layout.config_json)
        if isinstance(document, dict):
            document = json.dumps(document, indent=2)
        if isinstance(document, str):
            document = document.encode()
        path.write_bytes(document)
        return path

    def boot_profile(self, name: str, content: str | bytes) -> Path:
        path = Path(self.layout.boot_connections) / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def context(self, facts: Facts | None = None) -> Context:
        return Context(cfg.load(self.layout).config, self.layout, facts or Facts())

    def run_step(self, step: Step, facts: Facts | None = None, *, apply: bool = True) -> StepResult:
        """One step, planned and (with ``apply``) applied, with the device's config.json."""
        [result] = engine.run(self.context(facts), [step], apply=apply)
        return result

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """(inode, mtime_ns, mode) of every file and directory under the root."""
        result = {}
        for path in sorted(self.root.rglob("*")):
            st = path.lstat()
            result[str(path.relative_to(self.root))] = (st.st_ino, st.st_mtime_ns, st.st_mode)
        return result


@pytest.fixture
def device(tmp_path: Path) -> DeviceRoot:
    return DeviceRoot(tmp_path / "root")
