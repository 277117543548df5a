"""The state partition's bind mounts before what reads them early, on a VM device with real disks.

systemd-random-seed runs before the system bus exists, so nothing hostd does at runtime could
order it; the static mount unit of /var/lib/systemd, and systemd's RequiresMountsFor, must.  The
judges are systemd's own timestamps and the seed itself, found on the state partition after the
device powered off: on the read-only root it could not have been written at all.
"""

from __future__ import annotations

import pytest

from . import vmdevice
from .boots import boot_order

SEED_BYTES = 32  # systemd-random-seed's seed: the kernel's pool size (256 bits since Linux 5.18)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("device", ["empty", "saved"])
def test_the_random_seed_is_read_and_saved_through_the_state_partition(
    boots: dict[str, vmdevice.Boot], device: str
) -> None:
    boot = boots[device]
    order = boot_order(boot)
    seed_started = order["systemd-random-seed.service"][2]
    assert 0 < order["var-lib-systemd.mount"][4] < seed_started, order
    seed = boot.state_bytes("/root-overlay/var/lib/systemd/random-seed")
    assert len(seed) >= SEED_BYTES and len(set(seed)) > SEED_BYTES // 2, seed  # written, and random
