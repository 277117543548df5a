"""hostname: ``hostname``, else uuid[:7], in /etc/hostname."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostd import config as cfg
from hostd.steps import hostname
from hostd.steps.base import StepStatus

from ..conftest import UUID


@pytest.mark.parametrize(("given", "written"), [({"hostname": "Kitchen"}, "kitchen\n"), ({}, UUID[:7] + "\n")])
def test_hostname_or_uuid_prefix(device, given, written) -> None:
    device.write_config({"uuid": UUID, **given})
    device.run_step(hostname)
    assert Path(device.layout.etc_hostname).read_text() == written


def test_no_name_at_all_fails_the_hostname_step(device) -> None:
    """First boot with an unusable config.json and no last-known-good: no uuid, no hostname; the
    step says it failed instead of "ok" with no name set."""
    device.write_config('{"uuid": ')
    assert cfg.load(device.layout).source == "defaults"
    result = device.run_step(hostname)
    assert result.status == StepStatus.FAILED
    assert result.problems == ["no hostname and no uuid to derive one from"]
