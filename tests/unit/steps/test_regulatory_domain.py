"""regulatory-domain: ``country`` as cfg80211's module option (the live domain is set only on the device)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostd.steps import regulatory_domain

from ..conftest import UUID
from .fakes import services


def test_module_option_follows_country(device) -> None:
    device.write_config({"uuid": UUID, "country": "gb"})
    device.run_step(regulatory_domain)
    assert Path(device.layout.modprobe_dropin).read_text() == "options cfg80211 ieee80211_regdom=GB\n"
    device.write_config({"uuid": UUID})
    assert [c.kind for c in device.run_step(regulatory_domain).changes] == ["remove"]


def test_the_kernel_is_not_touched_for_a_root_directory(device) -> None:
    device.write_config({"uuid": UUID, "country": "GB"})
    result = device.run_step(regulatory_domain)
    outcome = asyncio.run(regulatory_domain.apply_live(services(), device.context(), result))
    assert outcome.report == [] and not outcome.problems


def test_kernel_verdict_reported() -> None:
    assert regulatory_domain.KernelDomain("GB", "set").as_dict() == {"country": "GB", "kernel": "set"}
