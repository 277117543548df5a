"""hostname: ``hostname``, else uuid[:7], in /etc/hostname."""

from __future__ import annotations

import pytest

from hostd.steps import hostname

from ..conftest import UUID


@pytest.mark.parametrize(("given", "written"), [({"hostname": "Kitchen"}, "kitchen\n"), ({}, UUID[:7] + "\n")])
def test_hostname_or_uuid_prefix(device, given, written) -> None:
    device.write_config({"uuid": UUID, **given})
    device.run_step(hostname)
    assert device.layout.etc_hostname.read_text() == written
