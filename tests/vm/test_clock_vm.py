"""The clock on a device whose clock can be wrong: a qemu VM with its RTC at 2000-01-01.

systemd itself first advances a clock that is before its own build to that build's time; the image
was built later (its /etc/timestamp), and hostd-clock raises the clock to that, or to a saved time
that is newer still, before chronyd and hostd start.  At power-off the time is saved on the state
partition.

Then the HTTPS time probe: the device's network (NetworkManager's DHCP on qemu's user-mode
network) reaches nothing but an HTTPS server this test runs (no NTP server: chrony stays
unsynchronized), as ``apiEndpoint``; its certificate is for a time well after the build
(``SERVER_DATE_AFTER_BUILD``), the time its Date header states.  With a certificate from the CA
given as ``balenaRootCA``, the device's clock ends up at that Date: only the probe can have put it
there.  With one from another CA, the clock stays where hostd-clock put it, untrusted, and why is
reported.  Real clients judge: ``date``, ``busctl`` and ``hostctl`` on the device, read back over a
serial port.
"""

from __future__ import annotations

import json

import pytest

from . import vmdevice
from .boots import DAY, SAVED_AFTER_BUILD, SERVER_DATE_AFTER_BUILD

Y2000 = 946684800
US = 1_000_000


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


@pytest.mark.timeout(1800)
def test_the_https_probe_sets_the_clock_from_a_verified_server(
    image: vmdevice.Image, boots: dict[str, vmdevice.Boot]
) -> None:
    """hostd-clock left the clock at the build time; the Date 100 days later came only from the
    server, over a connection verified against balenaRootCA (without dates: at the build time the
    certificate was not yet valid)."""
    boot, server_date = boots["empty"], image.build_time + SERVER_DATE_AFTER_BUILD
    assert vmdevice.record(boot)["after"] == image.build_time * US
    assert server_date <= int(boot.one("now")) < server_date + DAY, boot.report
    probe = json.loads(boot.one("probe"))
    assert (probe["ok"], probe["stepped"], probe["verifiedWithoutDates"]) == (True, True, True), probe
    assert probe["offset"] > SERVER_DATE_AFTER_BUILD - DAY, probe
    assert any(line.startswith("time verified: ") for line in boot.report["probe-journal"]), boot.report
    assert "the clock was" in boot.one("awaited") and "was set" in boot.one("awaited"), boot.report
    # io.hostd1's properties, read with busctl on the device
    assert (boot.one("TimeTrusted"), boot.one("TimeSource")) == ("b true", 's "https"'), boot.report
    assert int(boot.one("LastSync").split()[1]) >= server_date * US
    hostctl = boot.report["hostctl"]  # hostctl time, on the device: io.hostd1's Describe()
    assert "synchronized: no" in hostctl and "trusted: yes (source: https)" in hostctl, hostctl
    # the services hostd drives that the image has, all running; no unit failed
    assert [line.split()[:2] for line in boot.report["unit"]] == [
        [unit, "active"] for unit in ("hostd", "NetworkManager", "dnsmasq", "avahi-daemon", "chrony")
    ], boot.report
    assert "failed" not in boot.report, boot.report
    # the network came from NetworkManager's DHCP on the NIC, as on balenaOS
    assert any(line.split(":")[1:3] == ["ethernet", "connected"] for line in boot.report["nm-device"]), boot.report
    assert any("ip_address = 10.0.2.15" in line for line in boot.report["nm-dhcp4"]), boot.report


@pytest.mark.timeout(1800)
def test_a_server_not_from_balena_root_ca_does_not_move_the_clock(
    image: vmdevice.Image, boots: dict[str, vmdevice.Boot]
) -> None:
    """The same Date from a certificate of another CA: the clock stays at the saved time, the time
    untrusted, and why is on the bus."""
    boot, saved = boots["saved"], image.build_time + SAVED_AFTER_BUILD
    assert saved <= int(boot.one("now")) < saved + DAY, boot.report
    probe = json.loads(boot.one("probe"))
    assert probe["ok"] is False and "certificate not verified" in probe["error"], probe
    assert "stepped" not in probe
    assert (boot.one("TimeTrusted"), boot.one("TimeSource"), boot.one("LastSync")) == (
        "b false",
        's "saved"',
        "t 0",
    ), boot.report
    assert "certificate not verified" in boot.one("awaited"), boot.report
    # hostctl time, on the device: io.hostd1's Describe()
    hostctl = boot.report["hostctl"]
    assert "synchronized: no" in hostctl and "trusted: no (source: saved)" in hostctl, hostctl
    assert any(line.startswith("why not trusted:") and "certificate not verified" in line for line in hostctl)
