"""The clock bootstrap on a device whose clock can be wrong: a qemu VM with its RTC at 2000-01-01.

systemd itself first advances a clock that is before its own build to that build's time; the image
was built later (its /etc/timestamp), and hostd-clock raises the clock to that, or to a saved time
that is newer still, before chronyd and hostd start.  At power-off the time is saved on the state
partition.  The device has no network: nothing else can set its clock.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from . import vmdevice

Y2000 = 946684800
DAY = 86400
US = 1_000_000
RTC = "2000-01-01T00:00:00"  # qemu's -rtc base=, UTC


SAVED_AFTER_BUILD = 30 * DAY


@pytest.fixture(scope="module")
def image() -> vmdevice.Image:
    reason = vmdevice.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return vmdevice.device_image()


@pytest.fixture(scope="module")
def boots(image: vmdevice.Image, tmp_path_factory: pytest.TempPathFactory) -> dict[str, vmdevice.Boot]:
    """Both devices boot at once (each takes a core for a minute or two without KVM), RTC in 2000:
    one with an empty state partition, one with a saved time newer than the build."""
    saved = image.build_time + SAVED_AFTER_BUILD
    cases = {"empty": {}, "saved": {"hostd/clock": f"{saved}\n"}}
    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        futures = {
            name: pool.submit(vmdevice.boot, image, tmp_path_factory.mktemp(name), RTC, state)
            for name, state in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


# a first run builds the Debian root (about 3 min); without KVM each boot takes 2-3 min
@pytest.mark.timeout(1800)
def test_rtc_in_2000_is_raised_to_the_build_time(image: vmdevice.Image, boots: dict[str, vmdevice.Boot]) -> None:
    boot = boots["empty"]
    record = vmdevice.record(boot)
    assert record["source"] == "build", (record, boot.report)
    assert record["after"] == image.build_time * US
    # what the clock was when hostd-clock ran: past 2000 (systemd's own raise), still before the build
    assert Y2000 * US < record["before"] < image.build_time * US, record
    assert int(boot.one("now")) >= image.build_time
    assert boot.one("hostd-clock") == "active" and boot.one("hostd") == "active", boot.report
    assert any("clock raised from" in line and "(build time)" in line for line in boot.report["journal"])
    # saved at power-off, on the state partition: the next boot starts at least there
    assert int(boot.state_file("/hostd/clock")) >= int(boot.one("now"))


@pytest.mark.timeout(1800)
def test_a_saved_time_newer_than_the_build_wins(image: vmdevice.Image, boots: dict[str, vmdevice.Boot]) -> None:
    boot, saved = boots["saved"], image.build_time + SAVED_AFTER_BUILD
    record = vmdevice.record(boot)
    assert record == {"source": "saved", "before": record["before"], "after": saved * US}, boot.report
    assert record["before"] < image.build_time * US
    assert saved <= int(boot.one("now")) < saved + DAY
    assert boot.one("hostd") == "active", boot.report
    assert any("clock raised from" in line and "(saved time)" in line for line in boot.report["journal"])
