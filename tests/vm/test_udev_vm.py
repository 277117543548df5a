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
from .boots import BOOT_DISK, DATA_DISK, boot_order, udev_links


@pytest.mark.timeout(1800)
def test_rules_added_live_act_on_devices_present_since_boot(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["empty"]
    assert udev_links(boot, "boot") == {}, boot.report  # config.json had no rules at boot
    assert udev_links(boot, "live-1") == {"hostd-vm-boot": BOOT_DISK, "hostd-vm-data": DATA_DISK}, boot.report


@pytest.mark.timeout(1800)
def test_a_rule_dropped_live_takes_its_link_with_it(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["empty"]
    assert udev_links(boot, "live-2") == {"hostd-vm-boot": BOOT_DISK}, boot.report


@pytest.mark.timeout(1800)
def test_a_rule_kept_from_an_earlier_boot_acts_on_devices_present_at_boot(boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["saved"]
    assert udev_links(boot, "boot") == {"hostd-vm-boot": BOOT_DISK}, boot.report
    # replayed once the rules were bound, after udev's own coldplug, which could not see them
    order = boot_order(boot)
    condition, _, replayed, _, _ = order["hostd-udev-replay.service"]
    assert condition == "yes" and replayed > order["etc-udev-rules.d.mount"][4], order
    assert order["systemd-udev-trigger.service"][4] < order["etc-udev-rules.d.mount"][4], order
    # and not hostd's replay after a change: its step found the rule in place
    assert boot.one("udev-step") == "ok", boot.report


@pytest.mark.timeout(1800)
def test_no_replay_without_rules(boots: dict[str, vmdevice.Boot]) -> None:
    order = boot_order(boots["empty"])  # a first boot: the state partition has no rules yet
    condition, checked, started, _, _ = order["hostd-udev-replay.service"]
    assert (condition, started) == ("no", 0) and checked > 0, order  # checked: it is enabled
