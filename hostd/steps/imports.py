"""Files copied from the boot partition into a device directory, and only those.

A manifest on the state partition records (name -> hash) what hostd imported, so that:
- a file removed from the boot partition is removed from the device only when hostd put it
  there and it is unchanged since;
- a copy edited on the device is kept until the boot partition's file itself changes;
- a file created on the device is never touched, even when a boot file has its name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat

from hostd import fsutil
from hostd.layout import Layout
from hostd.record import Record
from hostd.steps.base import Change, FileEntry, FileStatus, Plan, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Callable

    from hostd.steps.base import ReportEntry


class BootFile(Record):
    __slots__ = ("content", "name")

    def __init__(self, name: str, content: bytes) -> None:
        self.name = name
        self.content = content


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_boot_dir(
    directory: str,
    max_bytes: int,
    check_name: Callable[[str], None],
    report: list[ReportEntry],
    ignored_name: Callable[[str], str | None] = lambda name: None,
) -> list[BootFile] | None:
    """The plain files of a boot-partition directory; None when it cannot be read at all.

    Anything that is not a plain regular file of its own (symlink, hard link, directory, device,
    FIFO, oversized) is rejected alone, with the reason in ``report``; ``*.ignore`` samples and
    names for which ``ignored_name`` gives a reason are skipped.
    A boot partition without config.json is taken as not mounted: nothing is read from it, so
    nothing imported earlier is removed.
    """
    if not os.path.isfile(os.path.join(os.path.dirname(directory), "config.json")):
        return None
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError:
        return None
    files: list[BootFile] = []
    for entry in entries:
        name = entry.name
        if name.endswith(".ignore"):
            report.append(FileEntry(name, FileStatus.SKIPPED, "sample (*.ignore)"))
            continue
        if reason := ignored_name(name):
            report.append(FileEntry(name, FileStatus.SKIPPED, reason))
            continue
        try:
            check_name(name)
            files.append(BootFile(name, read_plain_file(entry.path, max_bytes)))
        except ValueError as exc:
            report.append(FileEntry(name, FileStatus.REJECTED, str(exc)))
    return files


def read_plain_file(path: str, max_bytes: int) -> bytes:
    # Only a regular file is opened: opening a device can have effects of its own (a watchdog
    # starts ticking).  O_NOFOLLOW and O_NONBLOCK guard against a swap since: never read through
    # a symlink, never hang the boot on a FIFO.
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: is a symbolic link, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: is {'a directory' if stat.S_ISDIR(st.st_mode) else 'not a regular file'}")
    try:
        fd = fsutil.open_to_read(path, os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path}: is a symbolic link, not a file") from None
        raise ValueError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ValueError(f"{path}: is {kind}")
        if st.st_nlink > 1:
            raise ValueError(f"{path}: has {st.st_nlink} hard links; only a plain file is imported")
        if st.st_size > max_bytes:
            raise ValueError(f"{path}: is {st.st_size} bytes, more than {max_bytes}")
        content = os.read(fd, max_bytes + 1)
        if len(content) > max_bytes:
            raise ValueError(f"{path}: is more than {max_bytes} bytes")
        return content
    finally:
        os.close(fd)


def load_manifest(path: str) -> dict[str, str]:
    raw = fsutil.read_bytes(path)
    if raw is None:
        return {}
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(manifest, dict):
        return {}
    # A name that is not a plain file name ("../x", "/etc/x") would lead out of the target directory.
    return {name: digest for name, digest in manifest.items() if isinstance(digest, str) and _is_plain_name(name)}


def _is_plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def plan_import(
    plan: Plan,
    layout: Layout,
    *,
    files: list[BootFile],
    target_dir: str,
    manifest_path: str,
    mode: int,
) -> None:
    """Plan the import of ``files`` into ``target_dir``; the per-file outcome goes to plan.report.

    Boot files already reported rejected exist but were refused: their earlier good copy stays.
    Every rejection and conflict in the report is also one of the plan's problems.
    """
    rejected = {
        entry.name for entry in plan.report if isinstance(entry, FileEntry) and entry.status == FileStatus.REJECTED
    }
    manifest = load_manifest(manifest_path)
    new_manifest: dict[str, str] = {}
    wanted = {boot_file.name for boot_file in files}
    target_dir_missing = not os.path.isdir(target_dir)
    if target_dir_missing and files:
        plan.changes.append(
            Change("mkdir", layout.device_path(target_dir), action=lambda: fsutil.ensure_dir(target_dir))
        )

    for boot_file in files:
        target = os.path.join(target_dir, boot_file.name)
        boot_hash = sha256(boot_file.content)
        current = fsutil.read_bytes(target)
        if current is None and os.path.lexists(target):
            plan.report.append(
                FileEntry(boot_file.name, FileStatus.CONFLICT, f"{target} exists and is not a plain file")
            )
            continue
        if current == boot_file.content:
            status, reason = FileStatus.UNCHANGED, ""
        elif current is None:
            status, reason = FileStatus.IMPORTED, ""
        elif boot_file.name not in manifest:
            plan.report.append(
                FileEntry(
                    boot_file.name,
                    FileStatus.CONFLICT,
                    "a profile created on the device has this name; it is left as it is",
                )
            )
            continue
        elif manifest[boot_file.name] == boot_hash:
            # The boot file is unchanged since import, so the difference is an edit on the device.
            new_manifest[boot_file.name] = boot_hash
            plan.report.append(FileEntry(boot_file.name, FileStatus.KEPT, "changed on the device since import"))
            continue
        else:
            status = FileStatus.IMPORTED
            reason = "" if sha256(current) == manifest[boot_file.name] else "replaced a copy changed on the device"
        plan_file(plan, layout, target, boot_file.content, mode)
        new_manifest[boot_file.name] = boot_hash
        plan.report.append(FileEntry(boot_file.name, status, reason))

    for name, digest in manifest.items():
        if name in wanted:
            continue
        if name in rejected:
            new_manifest[name] = digest  # the last good copy stays until the boot file is fixed
            continue
        target = os.path.join(target_dir, name)
        current = fsutil.read_bytes(target)
        if current is None:
            continue
        if sha256(current) == digest:
            plan.changes.append(
                Change("remove", layout.device_path(target), action=lambda t=target: fsutil.remove_file(t))
            )
            plan.report.append(FileEntry(name, FileStatus.REMOVED, "no longer in the boot partition"))
        else:
            plan.report.append(
                FileEntry(name, FileStatus.KEPT, "removed from the boot partition but changed on the device")
            )

    if new_manifest != manifest:
        encoded = (json.dumps(new_manifest, indent=1, sort_keys=True) + "\n").encode()
        plan_file(plan, layout, manifest_path, encoded, 0o600)
    plan.problems.extend(
        entry.reason
        for entry in plan.report
        if isinstance(entry, FileEntry) and entry.status in (FileStatus.REJECTED, FileStatus.CONFLICT)
    )
