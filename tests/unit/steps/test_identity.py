"""identity: a missing uuid is generated and written back to config.json."""

from __future__ import annotations

import json
from pathlib import Path

from hostd.steps import identity

from ..conftest import UUID


def test_uuid_written_back_only_when_missing(device) -> None:
    device.write_config({"hostname": "dev"})
    [change] = device.run_step(identity).changes
    assert change.detail == "generated uuid"
    assert len(json.loads(Path(device.layout.config_json).read_text())["uuid"]) == 32
    device.write_config({"uuid": UUID})
    assert device.run_step(identity).changes == []
