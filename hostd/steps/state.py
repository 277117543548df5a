"""Persistent paths: bind mounts from the state (and data) partition onto the read-only root.

Also the first-boot / reset flag: when ``remove_me_to_reset`` is missing from a partition at
boot (none of its bind mounts made yet), its overlay is wiped and the flag recreated.  Missing
bind sources are created with the type of their target, with its mode and owner, and empty: the
image's content is not copied, except the CA certificates, without which nothing can use TLS.
At boot this file work runs before the mounts (``hostd --prepare bind-sources``), and the
mounts are static units (units/mounts, written from STATE_BIND_PATHS and DATA_BIND_PATHS by
packaging/bind_units.py); the daemon finds them made, and makes through systemd only what is
missing (a unit stopped since, an image without the units).  Offline they are reported as
pending.  The data partition's /var/log/journal is bound whatever persistentLogging says: the
logging step's Storage= decides, live, whether journald writes there at all.
"""

from __future__ import annotations

import os
import stat
from functools import partial

from hostd import fsutil
from hostd.layout import Layout, is_within
from hostd.steps.base import Change, Context, Event, FileEntry, FileStatus, Outcome, Plan, StepResult

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "state"
KEYS: frozenset[str] = frozenset()  # the partitions, not config.json keys
TRIGGERS = frozenset({Event.SYSTEMD_ATTACHED})
RESET_FLAG = "remove_me_to_reset"

STATE_BIND_PATHS = (
    "/etc/hostname",
    "/etc/ssh/hostkeys",
    "/etc/openvpn",
    "/etc/NetworkManager/conf.d",
    "/etc/NetworkManager/system-connections",
    "/etc/NetworkManager/dispatcher.d",
    "/etc/udev/rules.d",
    "/etc/ssl/certs",
    "/home/root/.ssh",
    "/home/root/.rnd",
    "/var/lib/bluetooth",
    "/var/lib/NetworkManager",
    "/etc/docker",
    "/home/root/.docker",
    "/var/lib/systemd",
    "/var/lib/chrony",
)
DATA_BIND_PATHS = ("/var/log/journal",)
# The bind targets that are files (the others are directories), with their mode: a target the
# image lacks is made as an empty mount point of this type where the root is writable.
FILE_TARGET_MODES = {"/etc/hostname": 0o644, "/home/root/.rnd": 0o600}
# Bind sources first filled from the image: without them the device cannot work at all.
SEEDED_FROM_IMAGE = ("/etc/ssl/certs",)


def bind_mounts(layout: Layout) -> list[tuple[str, str]]:
    """(source, target) host paths of every persistent bind mount."""
    pairs = []
    for partition, paths in ((layout.state, STATE_BIND_PATHS), (layout.data, DATA_BIND_PATHS)):
        overlay = os.path.join(partition, "root-overlay")
        pairs += [(os.path.join(overlay, path.lstrip("/")), layout.path(path)) for path in paths]
    return pairs


def mounted_targets() -> set[str]:
    """Mount points of the running system, from the kernel's table."""
    points = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            # Field 5 is the mount point, with spaces and the like octal-escaped.
            points.add(line.split()[4].encode().decode("unicode_escape"))
    return points


def _create_source(source: str, target: str, copy_content: bool) -> None:
    """A bind source of the target's type, mode and owner; never the image's content, except where
    an empty directory would break the device (no CA certificates: no TLS)."""
    st = os.stat(target)
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        fsutil.atomic_write(source, b"", mode, st.st_uid, st.st_gid)
        return
    # Built aside and renamed into place: a crash must not leave a source half copied or with the
    # wrong mode or owner, which the next run would take as done since it exists.
    fsutil.ensure_dir(os.path.dirname(source))
    staging = fsutil.temp_path(source)
    if os.path.isdir(staging):
        fsutil.remove_tree(staging)
    if copy_content:
        fsutil.copy_tree(target, staging)
    else:
        os.mkdir(staging)
        os.chmod(staging, mode)
        if os.geteuid() == 0:
            os.chown(staging, st.st_uid, st.st_gid)
    os.rename(staging, source)
    fsutil.fsync_dir(os.path.dirname(source))


def _create_mount_point(target: str, file_mode: int | None) -> None:
    if file_mode is None:
        fsutil.ensure_dir(target)
    else:
        fsutil.atomic_write(target, b"", file_mode)


def _writable(path: str) -> bool:
    """Can path be created: is its nearest existing ancestor a writable directory?"""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.access(path, os.W_OK)


def _reset(overlay: str, flag: str) -> None:
    # Wipe first, flag last: a power cut in between wipes again at the next boot.
    if os.path.isdir(overlay):
        fsutil.remove_tree(overlay)
    fsutil.ensure_dir(overlay)
    fsutil.atomic_write(flag, b"", 0o644)


def plan(ctx: Context) -> Plan:
    result = Plan()
    layout = ctx.layout
    wiping: set[str] = set()
    mounted = mounted_targets() if layout.is_live else set()
    for partition in (layout.state, layout.data):
        if not os.path.isdir(partition):
            result.problems.append(f"{partition}: partition is not mounted; its bind mounts are skipped")
            continue
        flag = os.path.join(partition, RESET_FLAG)
        if not os.path.exists(flag):
            overlay = os.path.join(partition, "root-overlay")
            if any(target in mounted for source, target in bind_mounts(layout) if is_within(source, overlay)):
                # Removing the flag asks for a reset at the next boot: wiping now would pull the
                # files from under the running services (a profile made a minute ago, gone).
                reason = "the overlay is wiped at the next boot"
                result.report.append(FileEntry(layout.device_path(flag), FileStatus.MISSING, reason))
                continue
            wiping.add(overlay)
            result.changes.append(
                Change(
                    "wipe",
                    layout.device_path(overlay),
                    f"{RESET_FLAG} is missing (first boot or reset)",
                    lambda o=overlay, f=flag: _reset(o, f),
                )
            )
    for source, target in bind_mounts(layout):
        overlay = next((o for o in (layout.state, layout.data) if is_within(source, o)), None)
        if overlay is None or not os.path.isdir(overlay):
            continue
        target_is_dir, file_mode = os.path.isdir(target), None
        if not os.path.lexists(target):
            # Made here, in the same pass as its source and mount: a step after this one (the
            # hostname) would otherwise write the target itself, hidden by the mount next time.
            device_target = layout.device_path(target)
            if not _writable(os.path.dirname(target)):
                result.problems.append(f"{device_target}: bind target does not exist (and cannot be made)")
                continue
            file_mode = FILE_TARGET_MODES.get(device_target)
            target_is_dir = file_mode is None
            result.changes.append(
                Change(
                    "mkdir" if target_is_dir else "write",
                    device_target,
                    "mount point the image lacks",
                    lambda t=target, m=file_mode: _create_mount_point(t, m),
                )
            )
        source_missing = any(is_within(source, o) for o in wiping) or not os.path.exists(source)
        if source_missing:
            kind = "mkdir" if target_is_dir else "write"
            if file_mode is not None:  # the target is written in this step's batch: not in place yet
                create = partial(fsutil.atomic_write, source, b"", file_mode)
            else:
                create = partial(_create_source, source, target, layout.device_path(target) in SEEDED_FROM_IMAGE)
            result.changes.append(Change(kind, layout.device_path(source), "like its target", create))
        elif os.path.isdir(source) != target_is_dir:
            result.problems.append(
                f"{layout.device_path(source)}: is a {'directory' if os.path.isdir(source) else 'file'} but "
                f"{layout.device_path(target)} is not"
            )
            continue
        if target not in mounted:
            result.changes.append(Change("mount", layout.device_path(target), layout.device_path(source)))
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    """Make the pending bind mounts as transient mount units through systemd."""
    from hostd.bus.systemd import unit_name_from_path

    outcome = Outcome()
    layout = ctx.layout
    mounts = [change for change in result.pending if change.kind == "mount"]
    if not mounts:
        return outcome
    systemd = services.systemd
    if not systemd.available:
        outcome.problems.append("systemd is not reachable: bind mounts not made")
        return outcome
    # A mount systemd already holds (an earlier run's) is converged, even where the kernel's
    # table cannot be read (a root directory other than /).
    units = await systemd.unit_states([unit_name_from_path(layout.path(c.path)) for c in mounts])
    stopped = set()  # an earlier run's unit, unmounted since but still loaded: started again
    to_mount = []
    for change, unit in zip(mounts, units, strict=True):
        if unit.active_state.value == "active":
            outcome.converged.append(change)
            continue
        if unit.load_state == "loaded":
            stopped.add(change)
        to_mount.append(change)
    # One job each, all at once: systemd runs them in parallel.
    import asyncio  # the live side only: the boot stage (hostd.prepare) runs without it

    jobs = await asyncio.gather(
        *(
            systemd.start_unit(unit_name_from_path(layout.path(c.path)))
            if c in stopped
            else systemd.start_transient_mount(layout.path(c.detail), layout.path(c.path))
            for c in to_mount
        ),
        return_exceptions=True,
    )
    for change, job in zip(to_mount, jobs, strict=True):
        if isinstance(job, BaseException) or job.value != "done":
            reason = job if isinstance(job, BaseException) else f"systemd job {job.value}"
            outcome.problems.append(f"bind mount of {change.path} failed: {reason}")
            continue
        outcome.made.append(change)
    if layout.is_live:
        mounted = mounted_targets()
        outcome.problems.extend(
            f"{c.path}: not a mount point after mounting" for c in outcome.made if c.path not in mounted
        )
    return outcome
