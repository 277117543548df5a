"""hostname: ``hostname``, else uuid[:7], in /etc/hostname."""

from __future__ import annotations

from hostd.steps import hostname

from ..conftest import UUID


def test_hostname_or_uuid_prefix(device) -> None:
    device.write_config({"uuid": UUID, "hostname": "Kitchen"})
    device.run_step(hostname)
    assert device.layout.etc_hostname.read_text() == "kitchen\n"
    device.write_config({"uuid": UUID})
    device.run_step(hostname)
    assert device.layout.etc_hostname.read_text() == UUID[:7] + "\n"
