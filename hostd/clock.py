"""hostd-clock: never start the day before the image was built.

A device whose clock is in the past cannot do TLS, so it cannot reach anything that would set its
clock right.  ``hostd-clock raise`` runs once, early at boot (``hostd-clock.service``, before
``time-set.target``, chronyd and hostd): it raises the system clock to the newer of the image's
build time (``/etc/timestamp``, as OpenEmbedded writes it) and the last time saved on the state
partition, and never lowers it.  What it found and did is recorded in
``/run/hostd/clock-bootstrap.json``.  ``hostd-clock save`` writes the current time to the state
partition, power-safely: at shutdown (the service's stop) and every few hours (a systemd timer).

Standard library only, no D-Bus, no asyncio: it runs before the system bus exists.

Exit codes: 0 done (also when the clock was already good); 1 the clock could not be set, or the
record or the time not written; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hostd import fsutil
from hostd.layout import Layout

US = 1_000_000
# OpenEmbedded's rootfs_update_timestamp (and balenaOS's images): date -u +%4Y%2m%2d%2H%2M%2S
TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
# Without /etc/timestamp, the newest lower bound the image still has: this module's own file,
# whose mtime a package build clamps to the build's date (SOURCE_DATE_EPOCH).
PACKAGE_FILE = __file__


@dataclass(frozen=True)
class Bootstrap:
    """Which time the clock stands on after the bootstrap, and the clock before and after (µs)."""

    source: str  # "rtc": it was already at least every floor; "saved" or "build": raised to that floor
    before: int
    after: int

    def record(self) -> dict[str, object]:
        return {"source": self.source, "before": self.before, "after": self.after}


def decide(now_us: int, build_us: int | None, saved_us: int | None) -> Bootstrap:
    """The clock only ever moves forwards, to the newest floor it is behind; on a tie the saved
    time wins (it is the newer knowledge)."""
    floors = [(us, name) for name, us in (("build", build_us), ("saved", saved_us)) if us is not None]
    if not floors:
        return Bootstrap("rtc", now_us, now_us)
    floor_us, name = max(floors)
    if now_us >= floor_us:
        return Bootstrap("rtc", now_us, now_us)
    return Bootstrap(name, now_us, floor_us)


def parse_timestamp(text: str) -> int | None:
    """/etc/timestamp (UTC) as µs since the epoch, or None when it is not in OpenEmbedded's form."""
    text = text.strip()
    if not re.fullmatch(r"\d{14}", text):
        return None
    try:
        parsed = datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(parsed.timestamp()) * US


def build_time(layout: Layout, package_file: str = PACKAGE_FILE) -> int | None:
    """The image's build time (µs): /etc/timestamp, else the package's own build time."""
    content = fsutil.read_bytes(layout.build_timestamp)
    if content is not None:
        parsed = parse_timestamp(content.decode("ascii", "replace"))
        if parsed is not None:
            return parsed
        log(f"{layout.build_timestamp} is not YYYYMMDDhhmmss; the package's build time is the floor")
    try:
        return int(os.stat(package_file).st_mtime) * US
    except OSError:
        return None


def saved_time(layout: Layout) -> int | None:
    """The last saved time (µs), or None when none was saved or it cannot be read."""
    content = fsutil.read_bytes(layout.saved_clock)
    if content is None:
        return None
    try:
        seconds = int(content.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        log(f"{layout.saved_clock} does not hold seconds since the epoch; ignored")
        return None
    return seconds * US if seconds > 0 else None


def now_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_REALTIME) // 1000


def set_clock(us: int) -> None:
    time.clock_settime_ns(time.CLOCK_REALTIME, us * 1000)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / US, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_if_changed(path: str, content: bytes) -> None:
    if fsutil.file_differs(path, content, 0o644):
        fsutil.atomic_write(path, content)  # makes the directories it needs (0755)


def raise_clock(
    layout: Layout, clock_setter: Callable[[int], None] | None, clock: Callable[[], int] = now_us
) -> Bootstrap:
    """Raise the clock to its floor (``clock_setter`` None: only decide, as for a root that is not
    the running system) and record in /run what the clock now stands on."""
    bootstrap = decide(clock(), build_time(layout), saved_time(layout))
    failure = None
    if bootstrap.source != "rtc" and clock_setter is not None:
        try:
            clock_setter(bootstrap.after)
        except OSError as e:
            failure = OSError(e.errno, f"cannot set the clock to {iso(bootstrap.after)} ({bootstrap.source} time)")
            bootstrap = Bootstrap("rtc", bootstrap.before, clock())  # the record tells what the clock is on
        else:
            log(f"clock raised from {iso(bootstrap.before)} to {iso(bootstrap.after)} ({bootstrap.source} time)")
    write_if_changed(layout.clock_bootstrap_record, (json.dumps(bootstrap.record()) + "\n").encode())
    if failure is not None:
        raise failure
    return bootstrap


def save(layout: Layout, clock: Callable[[], int] = now_us) -> None:
    """The current time, in whole seconds, power-safely on the state partition."""
    write_if_changed(layout.saved_clock, f"{clock() // US}\n".encode())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hostd-clock", description="Raise the clock to its floor at boot; save the time for the next boot."
    )
    ap.add_argument("--root", default="/", help="the device's root (default: /)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("raise", help="raise the clock to the newer of the build time and the saved time")
    sub.add_parser("save", help="save the current time on the state partition")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    layout = Layout(args.root)
    try:
        if args.command == "raise":
            raise_clock(layout, set_clock if layout.is_live else None)
        else:
            save(layout)
    except OSError as e:
        log(f"hostd-clock {args.command}: {e}")
        return 1
    return 0
