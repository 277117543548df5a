"""os.udevRules on a device with a udevd of its own and kernel devices: a qemu VM.

The nspawn testbed has no udevd (its /sys is read-only, and the kernel's uevents do not reach a
container), so only here can a rule be seen acting on a device.  The devices are the VM's virtio
disks, present since boot; the judge is udev itself: the links under /dev/disk that the rules
make, read on the device with readlink.

- Live: config.json edited on a running device (as the supervisor writes it) gains two rules, one
  matching "add" only, one any event: udev applies both to disks present since boot.  The next edit
  drops one: its link goes.
- At boot: a rule an earlier boot wrote to the state partition, still in config.json, acts on the
  disks present at boot, though udev saw them before /etc/udev/rules.d was bound from the state
  partition.
"""

from __future__ import annotations

import pytest

from . import vmdevice
from .boots import BOOT_DISK, DATA_DISK


def boot_order(boot: vmdevice.Boot) -> dict[str, tuple[str, int, int, int]]:
    """unit -> (its condition held, its process started, exited, it became active), from systemd's
    monotonic clock (µs; 0: never, or no process)."""
    order = {}
    for line in boot.report["boot-order"]:
        unit, condition, *times = line.split()
        started, exited, active = (int(time) if time != "-" else 0 for time in times)
        order[unit] = (condition, started, exited, active)
    return order


def links(boot: vmdevice.Boot, when: str) -> dict[str, str]:
    """The hostd-vm-* links under /dev/disk, and what each resolves to, at ``when``."""
    return dict(entry.split(":", 1) for entry in boot.one(f"udev-{when}").split())


@pytest.mark.timeout(1800)
def test_rules_added_live_act_on_devices_present_since_boot(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["empty"]
    assert links(boot, "boot") == {}, boot.report  # config.json had no rules at boot
    assert links(boot, "live-1") == {"hostd-vm-boot": BOOT_DISK, "hostd-vm-data": DATA_DISK}, boot.report


@pytest.mark.timeout(1800)
def test_a_rule_dropped_live_takes_its_link_with_it(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["empty"]
    assert links(boot, "live-2") == {"hostd-vm-boot": BOOT_DISK}, boot.report


@pytest.mark.timeout(1800)
def test_a_rule_kept_from_an_earlier_boot_acts_on_devices_present_at_boot(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["saved"]
    assert links(boot, "boot") == {"hostd-vm-boot": BOOT_DISK}, boot.report
    # replayed once the rules were bound, after udev's own coldplug, which could not see them
    order = boot_order(boot)
    condition, replayed, _, _ = order["hostd-udev-replay.service"]
    assert condition == "yes" and replayed > order["etc-udev-rules.d.mount"][3], order
    assert order["systemd-udev-trigger.service"][3] < order["etc-udev-rules.d.mount"][3], order


@pytest.mark.timeout(1800)
def test_no_replay_without_rules(boots: dict[str, vmdevice.Boot]) -> None:
    order = boot_order(boots["empty"])  # a first boot: the state partition has no rules yet
    assert order["hostd-udev-replay.service"][:2] == ("no", 0), order
