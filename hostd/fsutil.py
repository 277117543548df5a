"""Power-safe file writes that leave flash alone when nothing changed.

A write goes to a temp file in the same directory, is fsynced, renamed over the target and
the directory is fsynced: after a power cut the target holds either the old or the new
content, never a mix.  Every function first compares and returns False when converged.

Inside ``with batch():`` (a step applying its changes, a generation being saved) the flushes
wait for the end of the block: the temp files are fsynced together (from a few threads, so that
the file system commits once for many), then renamed in order, then each directory is fsynced
once.  Each target still holds its old or its new content after a power cut, and what a later
write records (a manifest) is durable no sooner than what it follows.
"""

from __future__ import annotations

import _thread  # threading's C half: its thread-local storage without importing threading
import contextlib
import errno
import hashlib
import os
import stat

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Iterator

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
            import signal  # here, not at the top: the boot stage that the network waits for imports this module

            os.kill(os.getpid(), signal.SIGKILL)


def _can_chown() -> bool:
    # An unprivileged run (tests, offline planning) cannot own files as root; ownership is
    # then left to the caller's uid rather than failing every write.
    return os.geteuid() == 0


def open_to_read(path: str, flags: int = 0) -> int:
    """A file descriptor to read ``path`` without updating its access time: a read is then no
    write (with relatime, the first read after every change would write the inode: flash wear,
    and a write on every reconcile that changes nothing).  O_NOATIME is for the file's owner or
    root; anyone else reads with the mount's atime policy."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOATIME | flags)
    except PermissionError:
        return os.open(path, os.O_RDONLY | flags)


def read_bytes(path: str) -> bytes | None:
    """The content of a regular file, or None when there is none (missing, or not a regular file)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(open_to_read(path, os.O_NOFOLLOW), "rb") as file:
            return file.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def metadata_differs(path: str, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> bool:
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) != mode:
        return True
    return _can_chown() and (st.st_uid, st.st_gid) != (uid, gid)


def file_differs(path: str, content: bytes, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> str | None:
    """What differs between the file and the wanted state: 'missing', 'content', 'metadata' or None."""
    current = read_bytes(path)
    if current is None:
        return "missing"
    if current != content:
        return "content"
    if metadata_differs(path, mode, uid, gid):
        return "metadata"
    return None


class _Batch:
    def __init__(self) -> None:
        self.writes: dict[str, tuple[str, bytes, int, int, int]] = {}  # temp file -> target, ...
        self.dirs: dict[str, None] = {}  # directories to fsync, in the order first touched


_local = _thread._local()  # .batch: each thread's own (the daemon applies steps in a worker thread)
PARALLEL_FSYNC_MIN_FILES = 8  # fewer pending files are fsynced one by one
FSYNC_THREADS = 16


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Defer the flushes of the writes inside to one per file system at the end (see above)."""
    if _pending() is not None:  # nested: the outer batch commits
        yield
        return
    _local.batch = current = _Batch()
    try:
        yield
    finally:
        _commit(current)


def _pending() -> _Batch | None:
    return getattr(_local, "batch", None)


def _commit(current: _Batch) -> None:
    failure: OSError | None = None
    try:
        if current.writes:
            _flush_data(list(current.writes))
        for tmp, (path, content, mode, uid, gid) in current.writes.items():
            try:
                _install(tmp, path, content, mode, uid, gid)  # its directory joins current.dirs
            except OSError as exc:  # the others are still installed; the first failure is raised
                failure = failure or exc
    finally:
        _local.batch = None
    for directory in current.dirs:
        with contextlib.suppress(FileNotFoundError):  # removed since (a wiped overlay)
            fsync_dir(directory)
    if failure is not None:
        raise failure


def _flush_data(temps: list[str]) -> None:
    """Make the temp files' content durable.  Many at once are fsynced from a few threads: the
    file system commits its journal once for all the fsyncs waiting on it, not once each."""
    if len(temps) < PARALLEL_FSYNC_MIN_FILES:
        for tmp in temps:
            _fsync_file(tmp)
        return
    import threading

    failures: list[OSError] = []

    def fsync_files(share: list[str]) -> None:
        for tmp in share:
            try:
                _fsync_file(tmp)
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=fsync_files, args=(temps[i::FSYNC_THREADS],)) for i in range(FSYNC_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _fsync_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
            _fault_point()
        finally:
            os.close(fd)


def fsync_dir(path: str) -> None:
    if (pending := _pending()) is not None:
        pending.dirs.setdefault(path, None)
        return
    _fsync_dir_now(path)


def _fsync_dir_now(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _fault_point()
        os.fsync(fd)
        _fault_point()
    finally:
        os.close(fd)


def copy_tree(source: str, destination: str) -> None:
    """Copy a directory tree to ``destination`` (new), built aside to be renamed into place:
    directories, regular files and symbolic links with their mode and owner (other file types are
    left out), every file's data and every directory fsynced.  Without the fsyncs, a power cut
    after the rename could leave the tree in place with empty files, taken as done next time."""
    st = os.stat(source)
    os.mkdir(destination, 0o700)
    with os.scandir(source) as entries:
        for entry in entries:
            path = os.path.join(destination, entry.name)
            est = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(est.st_mode):
                copy_tree(entry.path, path)
            elif stat.S_ISLNK(est.st_mode):
                os.symlink(os.readlink(entry.path), path)
                if _can_chown():
                    os.lchown(path, est.st_uid, est.st_gid)
            elif stat.S_ISREG(est.st_mode):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    with open(entry.path, "rb") as f:
                        _write_content(fd, f.read(), stat.S_IMODE(est.st_mode), est.st_uid, est.st_gid)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fault_point()
    os.chmod(destination, stat.S_IMODE(st.st_mode))
    if _can_chown():
        os.chown(destination, st.st_uid, st.st_gid)
    _fsync_dir_now(destination)  # not deferred to a batch: the rename that follows must find it done


def ensure_dir(path: str, mode: int = 0o755) -> bool:
    """Create a directory (and its parents) if missing; True when something was created."""
    if os.path.isdir(path):
        return False
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        ensure_dir(parent, 0o755)
    _fault_point()
    os.mkdir(path, mode)
    _fault_point()
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    fsync_dir(parent)
    return True


def atomic_write(path: str, content: bytes, mode: int = 0o644, uid: int = ROOT_UID, gid: int = ROOT_GID) -> None:
    """Replace ``path`` with ``content`` power-safely: temp file, fsync, rename, fsync directory."""
    ensure_dir(os.path.dirname(path))
    tmp = temp_path(path)
    _fault_point()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno != errno.EROFS or not os.path.isfile(path):
            raise
        # A file bind-mounted onto a read-only root (balenaOS's /etc/hostname): no temp file can
        # be made beside it, and no rename could replace a mount point anyway (see _install).
        _write_in_place(path, content, mode, uid, gid)
        return
    try:
        _fault_point()
        _write_content(fd, content, mode, uid, gid)
        pending = _pending()
        if pending is None:
            os.fsync(fd)
            _fault_point()
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    if pending is not None:
        pending.writes.pop(tmp, None)  # written twice in one batch: the last content, in its place
        pending.writes[tmp] = (path, content, mode, uid, gid)
        return
    _install(tmp, path, content, mode, uid, gid)


def _install(tmp: str, path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
    """Rename a flushed temp file over its target, then fsync the directory."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # e.g. a directory where the file should be: leave no temp behind
            raise
        # The target is a bind-mounted file (/etc/hostname comes from the state partition): no
        # rename can replace a mount point, and renaming over the bind source would leave the
        # mount on the old inode.  Write through the mount in place instead; these files are
        # derived from config.json, so a power cut mid-write is repaired at the next boot.
        os.unlink(tmp)
        _write_in_place(path, content, mode, uid, gid)
        return
    _fault_point()  # in a batch, renames follow one another with no flush in between
    fsync_dir(os.path.dirname(path))


def temp_path(path: str) -> str:
    """The temp file a write of ``path`` goes through: hidden, so NetworkManager, udev and the like skip it."""
    directory, base = os.path.split(path)
    name = f".{base}.hostd-tmp"
    if len(os.fsencode(name)) > 255:  # NAME_MAX: a target named at the limit gets a hashed temp name
        name = f".{hashlib.sha256(os.fsencode(base)).hexdigest()[:32]}.hostd-tmp"
    return os.path.join(directory, name)


def _write_content(fd: int, content: bytes, mode: int, uid: int, gid: int) -> None:
    """Write all of ``content`` to ``fd`` and give it its mode and owner (not synced)."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
        _fault_point()
    os.fchmod(fd, mode)
    _fault_point()
    if _can_chown():
        os.fchown(fd, uid, gid)
        _fault_point()


def _write_in_place(path: str, content: bytes, mode: int, uid: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        _fault_point()
        os.ftruncate(fd, 0)
        _fault_point()
        _write_content(fd, content, mode, uid, gid)
        os.fsync(fd)
        _fault_point()
    finally:
        os.close(fd)


def set_metadata(path: str, mode: int, uid: int = ROOT_UID, gid: int = ROOT_GID) -> None:
    _fault_point()
    os.chmod(path, mode, follow_symlinks=False)
    _fault_point()
    if _can_chown():
        os.chown(path, uid, gid, follow_symlinks=False)
    fsync_dir(os.path.dirname(path))


def remove_file(path: str) -> bool:
    """Unlink a file power-safely; True when it existed."""
    _fault_point()
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(os.path.dirname(path))
    return True


def remove_tree(path: str) -> None:
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
    fsync_dir(os.path.dirname(path))


def remove_stale_temp_files(directory: str) -> None:
    """Drop temp files a crash left behind in ``directory``: the targets are intact."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") and name.endswith(".hostd-tmp") and not entry.is_dir(follow_symlinks=False):
                _fault_point()
                os.unlink(entry.path)
