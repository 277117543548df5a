"""Flash: what a boot with an unchanged config, and a no-op Reload, write to persistent storage.

Persistent storage is the boot, state and data partitions (/mnt/boot, /mnt/state, /mnt/data).
Every file and directory in them is snapshotted (inode, size, mode, owner, mtime, ctime) before
and after: an atomic rewrite with the same content still shows (new inode), as does a chmod.
Changes inside the directories other services own on the state partition (NetworkManager's,
systemd's, chrony's state, the journal) are listed but not counted as hostd's.  hostd's
/proc/PID/io write_bytes (what its writes sent towards the block device) is read as well; it
counts only on a disk file system (the table says which file system holds the partitions).

The clock's save (hostd-clock-save.service, started by its timer; and once more at shutdown) is
the one write a running device makes on purpose: one save is measured the same way, and the
writes a day follow from the timer's interval as the device has it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import Device, Report, Row
from hostd import sync_bus

SETTLE_SECONDS = 3.0  # after READY=1: services appearing make hostd re-apply some steps
OTHERS = (  # (partition, relative path prefix): directories other services write
    ("state", "root-overlay/var/lib/"),
    ("state", "root-overlay/etc/ssh/hostkeys"),
    ("state", "root-overlay/etc/docker"),
    ("state", "root-overlay/etc/openvpn"),
    ("state", "root-overlay/etc/ssl/certs"),
    ("state", "root-overlay/home/root/.rnd"),
    ("state", "root-overlay/home/root/.docker"),
    ("data", "root-overlay/var/log/journal"),
)

Snapshot = dict[str, tuple[int, int, int, int, int, int, int]]


def snapshot(partitions: dict[str, Path]) -> Snapshot:
    entries: Snapshot = {}
    for name, root in partitions.items():
        for directory, dirs, files in os.walk(root):
            for entry in [*dirs, *files, ""] if directory == str(root) else [*dirs, *files]:
                path = os.path.join(directory, entry) if entry else directory
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                key = f"{name}:{os.path.relpath(path, root)}"
                entries[key] = (st.st_ino, st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns)
    return entries


def diff(before: Snapshot, after: Snapshot) -> list[tuple[str, str, int]]:
    """(path, what, bytes written) for every entry created, changed or removed."""
    changes = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None:
            changes.append((path, "removed", 0))
        elif old is None:
            changes.append((path, "created", new[1] if not _is_dir(new) else 0))
        elif old[0] != new[0] or old[5] != new[5]:
            changes.append((path, "rewritten", new[1] if not _is_dir(new) else 0))
        else:
            changes.append((path, "metadata", 0))
    return changes


def _is_dir(entry: tuple[int, ...]) -> bool:
    import stat

    return stat.S_ISDIR(entry[2])


def _others(path: str) -> bool:
    partition, _, relative = path.partition(":")
    return any(partition == p and relative.startswith(prefix) for p, prefix in OTHERS)


def _measure(partitions: dict[str, Path], action) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    before = snapshot(partitions)
    action()
    changes = diff(before, snapshot(partitions))
    mine = [c for c in changes if not _others(c[0])]
    return mine, [c for c in changes if _others(c[0])]


def _fs_type(path: Path) -> str:
    import subprocess

    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout.strip()
    return out or "?"


def _reload(address: str) -> None:
    with sync_bus.Connection(address, timeout=120) as connection:
        connection.call("io.hostd1", "/io/hostd1", "io.hostd1.Manager", "Reload")


def _clock_saves_per_day(device: Device) -> float:
    """How often hostd-clock-save.timer fires a day, from its OnUnitActiveSec on the device."""
    shown = device.tb.systemctl("show", "-p", "TimersMonotonic", "--value", "hostd-clock-save.timer").stdout
    # e.g. "{ OnUnitActiveUSec=6h ; next_elapse=... }" per timer; systemd prints spans like "6h" or "30min"
    for part in shown.replace("{", " ").replace("}", " ").split(";"):
        name, _, span = part.strip().partition("=")
        if name == "OnUnitActiveUSec":
            seconds = float(device.tb.exec(["systemd-analyze", "timespan", span]).stdout.split("μs:")[1].split()[0])
            return 86400 / (seconds / 1e6)
    raise RuntimeError(f"hostd-clock-save.timer has no OnUnitActiveSec: {shown!r}")


def _clock_save(device: Device, partitions: dict[str, Path], report: Report) -> None:
    """One timer-driven save of the clock over an earlier one (steady state); the saves a day
    follow from the timer (plus one at each shutdown)."""
    save = lambda: device.tb.systemctl("start", "hostd-clock-save.service", check=True)  # noqa: E731
    save()
    time.sleep(1.1)  # the saved time has whole seconds: the next save has something to write
    changes, _ = _measure(partitions, save)
    # the file renamed over the old one, and so its directory
    if sorted(c[0] for c in changes) != ["state:hostd", "state:hostd/clock"]:
        raise RuntimeError(f"a clock save changed other than the saved time: {changes}")
    per_day = _clock_saves_per_day(device)
    written = sum(c[2] for c in changes)
    report.details["flash"]["clock_save_changes"] = changes
    report.add(
        Row(
            "flash",
            "clock saves a day (hostd-clock-save.timer; plus one at each shutdown)",
            per_day,
            "",
            target="<= 8",
            met=per_day <= 8,
            note=f"each: hostd/clock ({written} B) renamed over the old, 2 fsyncs; {per_day * written:.0f} B/day",
        )
    )


def run(device: Device, report: Report) -> None:
    tb = device.tb
    partitions = {"boot": tb.boot_dir, "state": tb.state_dir, "data": tb.data_dir}
    device.side_call("prepare", {"mode": "warm", "machine": device.machine})
    started: dict = {}

    def boot() -> None:
        started.update(device.side_call("start"))
        time.sleep(SETTLE_SECONDS)

    boot_mine, boot_others = _measure(partitions, boot)
    pid = started["pid"]
    io_boot = device.side_call("procstat", {"pid": pid})["io"]
    reload_mine, reload_others = _measure(partitions, lambda: _reload(device.bus_address))
    io_reload = device.side_call("procstat", {"pid": pid})["io"]
    if device.hostd_pid() != pid:
        raise RuntimeError("hostd restarted during the flash benchmark")
    report.details["flash"] = {
        "boot_changes": boot_mine,
        "boot_changes_by_other_services": boot_others,
        "reload_changes": reload_mine,
        "reload_changes_by_other_services": reload_others,
        "hostd_io_after_boot": io_boot,
        "hostd_io_after_reload": io_reload,
    }
    for what, mine, others in (
        ("boot, unchanged config", boot_mine, boot_others),
        ("no-op Reload", reload_mine, reload_others),
    ):
        written = sum(c[2] for c in mine)
        report.add(
            Row(
                "flash",
                f"{what}: bytes hostd wrote to boot/state/data",
                written,
                "B",
                target="0",
                met=written == 0 and not mine,
                note=f"{len(mine)} entries changed" + (f"; other services: {len(others)}" if others else ""),
            )
        )
    _clock_save(device, partitions, report)
    report.add(
        Row(
            "flash",
            "hostd /proc/PID/io write_bytes, boot + Reload",
            io_reload["write_bytes"],
            "B",
            target="0",
            met=io_reload["write_bytes"] == 0,
            note=f"partitions on {_fs_type(tb.state_dir)}",
        )
    )
