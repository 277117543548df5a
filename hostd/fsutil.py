"""Power-safe file writes that leave flash alone when nothing changed.

A write goes to a temp file in the same directory, is fsynced, renamed over the target and
the directory is fsynced: after a power cut the target holds either the old or the new
content, never a mix.  Every function first compares and returns False when converged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
from pathlib import Path

ROOT_UID = 0
ROOT_GID = 0

# Power-cut fault injection (tests/reliability/powercut.py): with HOSTD_FAULT_CRASH_AT=N in the
# environment when this module is imported, the process SIGKILLs itself at the Nth fault point.
# A point sits between any two durable operations (create, write, chmod, chown, fsync, rename,
# unlink, mkdir, rmdir), so crashing at every N visits every state a power cut can leave.  A
# negative N only counts (``_fault_points``).  Unset, a point costs one global lookup.
_CRASH_AT = int(os.environ.get("HOSTD_FAULT_CRASH_AT") or 0)
_fault_points = 0


def _fault_point() -> None:
    global _fault_points
    if _CRASH_AT:
        _fault_points += 1
        if _fault_points == _CRASH_AT:
            os.kill(os.getpid(), signal.SIGKILL)


def _can_chown() -> bool:
    # An unprivileged run (tests, offline planning) cannot own files as root; ownership is
    # then left to the caller's uid rather than failing every write.
    return os.geteuid() == 0


def read_bytes(path: Path) -> bytes | None:
    """The content of a regular file, or None when there is none (missing, or not a regular file)."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return None
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def metadata_differs(path: Path, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> bool:
    st = path.lstat()
    if stat.S_IMODE(st.st_mode) != mode:
        return True
    return _can_chown() and (st.st_uid, st.st_gid) != (uid, gid)


def file_differs(path: Path, content: bytes, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> str | None:
    """What differs between the file and the wanted state: 'missing', 'content', 'metadata' or None."""
    current = read_bytes(path)
    if current is None:
        return "missing"
    if current != content:
        return "content"
    if metadata_differs(path, mode, uid, gid):
        return "metadata"
    return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _fault_point()
        os.fsync(fd)
        _fault_point()
    finally:
        os.close(fd)


def ensure_dir(path: Path, mode: int = 0o755) -> bool:
    """Create a directory (and its parents) if missing; True when something was created."""
    if path.is_dir():
        return False
    parent = path.parent
    if not parent.is_dir():
        ensure_dir(parent, 0o755)
    _fault_point()
    path.mkdir(mode=mode)
    _fault_point()
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    fsync_dir(parent)
    return True


def atomic_write(path: Path, content: bytes, mode: int = 0o644, uid: int = ROOT_UID, gid: int = ROOT_GID) -> None:
    """Replace ``path`` with ``content`` power-safely: temp file, fsync, rename, fsync directory."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.hostd-tmp")
    _fault_point()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        _fault_point()
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
            _fault_point()
        os.fchmod(fd, mode)
        _fault_point()
        if _can_chown():
            os.fchown(fd, uid, gid)
            _fault_point()
        os.fsync(fd)
        _fault_point()
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # e.g. a directory where the file should be: leave no temp behind
            raise
        # The target is a bind-mounted file (/etc/hostname comes from the state partition): no
        # rename can replace a mount point, and renaming over the bind source would leave the
        # mount on the old inode.  Write through the mount in place instead; these files are
        # derived from config.json, so a power cut mid-write is repaired at the next boot.
        tmp.unlink()
        _write_in_place(path, content, mode, uid, gid)
        return
    fsync_dir(path.parent)


def _write_in_place(path: Path, content: bytes, mode: int, uid: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        _fault_point()
        os.ftruncate(fd, 0)
        _fault_point()
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
            _fault_point()
        os.fchmod(fd, mode)
        _fault_point()
        if _can_chown():
            os.fchown(fd, uid, gid)
            _fault_point()
        os.fsync(fd)
        _fault_point()
    finally:
        os.close(fd)


def set_metadata(path: Path, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> None:
    _fault_point()
    os.chmod(path, mode, follow_symlinks=False)
    _fault_point()
    if _can_chown():
        os.chown(path, uid, gid, follow_symlinks=False)
    fsync_dir(path.parent)


def remove_file(path: Path) -> bool:
    """Unlink a file power-safely; True when it existed."""
    _fault_point()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def remove_tree(path: Path) -> None:
    """Delete a directory and everything in it; symbolic links in it are removed, never followed."""
    # fwalk works on directory fds: a directory swapped for a symlink mid-walk is not descended.
    for _top, dirs, files, dir_fd in os.fwalk(path, topdown=False):
        for name in files:
            _fault_point()
            os.unlink(name, dir_fd=dir_fd)
        for name in dirs:
            _fault_point()
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=dir_fd)
            else:
                os.rmdir(name, dir_fd=dir_fd)
    _fault_point()
    os.rmdir(path)
    fsync_dir(path.parent)


def remove_stale_temp_files(directory: Path) -> None:
    """Drop temp files a crash left behind in ``directory``: the targets are intact."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") and name.endswith(".hostd-tmp") and not entry.is_dir(follow_symlinks=False):
                _fault_point()
                os.unlink(entry.path)
