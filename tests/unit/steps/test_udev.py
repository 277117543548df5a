"""udev: ``os.udevRules`` as rule files; only the rules hostd wrote are ever removed."""

from __future__ import annotations

from pathlib import Path

from hostd.steps import udev

from ..conftest import UUID


def test_rules_written_and_removed_when_dropped(device) -> None:
    device.write_config({"uuid": UUID, "os": {"udevRules": {"99-test": 'ACTION=="add", RUN+="/bin/true"'}}})
    device.run_step(udev)
    rule = Path(device.layout.udev_rules) / "99-test.rules"
    assert rule.read_text() == 'ACTION=="add", RUN+="/bin/true"\n'
    own = Path(device.layout.udev_rules) / "50-own.rules"
    own.write_text("# made on the device\n")
    device.write_config({"uuid": UUID})
    device.run_step(udev)
    assert not rule.exists() and own.exists()
