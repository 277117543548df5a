"""The two devices the VM tests boot, and what each carries.

Without KVM a boot takes two or three minutes of a core, so the two devices boot at once, once per
run, and each boot serves several tests: the clock (test_clock_vm) and os.udevRules (test_udev_vm).

- ``empty``: a first boot (empty state partition), its RTC in 2000, an HTTPS server with a
  certificate from balenaRootCA; once the clock is trusted, two config.json edits made live, the
  first adding two udev rules, the second dropping one.
- ``saved``: a device that booted before (its partitions' reset flags in place): a saved time newer
  than the build on its state partition and a udev rule that an earlier boot's hostd wrote there
  (the same rule still in config.json), an HTTPS server with a certificate from another CA.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.https_date import serve_in_thread, server
from tests.testca import TestCA

from . import vmdevice

DAY = 86400
RTC = "2000-01-01T00:00:00"  # qemu's -rtc base=, UTC
SAVED_AFTER_BUILD = 30 * DAY
SERVER_DATE_AFTER_BUILD = 100 * DAY  # the Date the test's HTTPS server states
CERT_FROM_BUILD = (50 * DAY, 100)  # its certificate's validity: from build + 50 days, for 100 days
TRUSTED_IN_JOURNAL = "time.trusted:.verified"
FAILED_IN_JOURNAL = "probe.failed:.certificate.not.verified"

# Rules in the forms users write them.  Many match "add" only: the event a device plugged in (or
# present at boot) makes, and what balenaOS replays when its rules change.  The boot partition is
# the second virtio disk (vdb), the data partition the fourth (vdd).
ADD_RULE = (
    "99-hostd-vm-boot",
    'ACTION=="add", SUBSYSTEM=="block", ENV{ID_FS_LABEL}=="resin-boot", SYMLINK+="disk/hostd-vm-boot"',
)
ANY_ACTION_RULE = (
    "99-hostd-vm-data",
    'SUBSYSTEM=="block", ENV{ID_FS_LABEL}=="resin-data", SYMLINK+="disk/hostd-vm-data"',
)
BOOT_DISK, DATA_DISK = "/dev/vdb", "/dev/vdd"


@contextlib.contextmanager
def https_server(ca: TestCA, build_time: int) -> Iterator[int]:
    """The test's HTTPS server on 127.0.0.1 (the device's vmdevice.SERVER), stating build +
    SERVER_DATE_AFTER_BUILD, with a certificate from ``ca``; yields its port."""
    start, days = CERT_FROM_BUILD
    issued = ca.issue(vmdevice.SERVER, start=build_time + start, days=days)
    date_offset = build_time + SERVER_DATE_AFTER_BUILD - time.time()
    httpd = server(str(issued.cert), str(issued.key), "127.0.0.1", 0, date_offset)
    serve_in_thread(httpd)
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def config_json(ca: TestCA, udev_rules: tuple[tuple[str, str], ...] = ()) -> str:
    """The cloud at the test's server (its connectivity check is the probe's URL), ``ca`` as
    balenaRootCA, and ``udev_rules`` as os.udevRules."""
    config: dict[str, Any] = {
        "apiEndpoint": f"https://{vmdevice.SERVER}",
        "balenaRootCA": base64.b64encode(ca.pem.encode()).decode(),
    }
    if udev_rules:
        config["os"] = {"udevRules": dict(udev_rules)}
    return json.dumps(config)


# An earlier boot left its partitions' reset flags (without them a boot is a first boot or a reset:
# the overlay is made afresh)
BOOTED_BEFORE = {"remove_me_to_reset": ""}


def written_by_an_earlier_boot(rules: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The state partition's files for ``rules`` as hostd leaves them: each rule under the bound
    /etc/udev/rules.d, and hostd's record that it wrote them."""
    files = {f"root-overlay/etc/udev/rules.d/{name}.rules": text + "\n" for name, text in rules}
    manifest = {f"{name}.rules": hashlib.sha256((text + "\n").encode()).hexdigest() for name, text in rules}
    files["hostd/written-udev-rules.json"] = json.dumps(manifest)
    return files


def boot_both(image: vmdevice.Image, out: Path) -> dict[str, vmdevice.Boot]:
    saved = image.build_time + SAVED_AFTER_BUILD
    trusted = TestCA(out / "ca", "hostd VM test root CA")
    other = TestCA(out / "other-ca", "hostd VM test root CA")  # same name, another key
    with (
        https_server(trusted, image.build_time) as trusted_port,
        https_server(other, image.build_time) as other_port,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        cases = {
            "empty": (
                {},
                {},
                {
                    "config.json": config_json(trusted),
                    f"{vmdevice.LIVE_DIR}/1.json": config_json(trusted, (ADD_RULE, ANY_ACTION_RULE)),
                    f"{vmdevice.LIVE_DIR}/2.json": config_json(trusted, (ADD_RULE,)),
                },
                trusted_port,
                TRUSTED_IN_JOURNAL,
            ),
            "saved": (
                {"hostd/clock": f"{saved}\n", **BOOTED_BEFORE, **written_by_an_earlier_boot((ADD_RULE,))},
                BOOTED_BEFORE,
                {"config.json": config_json(trusted, (ADD_RULE,))},
                other_port,
                FAILED_IN_JOURNAL,
            ),
        }
        futures = {
            name: pool.submit(
                vmdevice.boot,
                image,
                out / name,
                RTC,
                state,
                data,
                boot_files=boot_files,
                https_port=port,
                awaited=awaited,
            )
            for name, (state, data, boot_files, port, awaited) in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


def boot_order(boot: vmdevice.Boot) -> dict[str, tuple[str, int, int, int, int]]:
    """unit -> (its condition held, when it was checked, its process started, exited, it became
    active), from systemd's monotonic clock (µs; 0: never, or no process)."""
    order = {}
    for line in boot.report["boot-order"]:
        unit, condition, *times = line.split()
        checked, started, exited, active = (int(time) if time != "-" else 0 for time in times)
        order[unit] = (condition, checked, started, exited, active)
    return order


def udev_links(boot: vmdevice.Boot, when: str) -> dict[str, str]:
    """The hostd-vm-* links under /dev/disk, and what each resolves to, at ``when``."""
    return dict(entry.split(":", 1) for entry in boot.one(f"udev-{when}").split())
