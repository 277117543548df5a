"""network-config: NetworkManager's connectivity check and Wi-Fi scan settings in its conf.d."""

from __future__ import annotations

from pathlib import Path

from hostd.steps import network_config

from ..conftest import UUID


def test_dropin_only_with_settings(device) -> None:
    device.write_config(
        {
            "uuid": UUID,
            "os": {
                "network": {
                    "connectivity": {"uri": "https://c.example.com/check"},
                    "wifi": {"randomMacAddressScan": True},
                }
            },
        }
    )
    device.run_step(network_config)
    dropin = Path(device.layout.nm_dropin).read_text()
    assert "uri=https://c.example.com/check\ninterval=3600\n" in dropin and "wifi.scan-rand-mac-address=yes" in dropin
    device.write_config({"uuid": UUID})
    device.run_step(network_config)
    assert not Path(device.layout.nm_dropin).exists()
