"""The config watch: config.json and the boot partition's drop-in directories, by inotify.

The kernel tells hostd when something in the boot directory or a drop-in directory changes
(``loop.add_reader`` on the inotify descriptor): idle, nothing wakes hostd for it.  Events only
say *that* something happened; what changed is decided by a stamp (every watched file's inode,
size, mtime and ctime), so hostd's own writes (``mark_seen``), a file read back or an editor's
temporary file in the boot directory reconcile nothing.  A burst (an editor's save, ``cp`` of
several profiles) is gathered for ``SETTLE_SECONDS``; events during a reconcile lead to one more
check after it.

Directories watched: the boot directory (for config.json, and for a drop-in directory created,
removed or renamed) and each drop-in directory that exists.  Written files are seen when they are
closed or renamed into place (``IN_CLOSE_WRITE``, ``IN_MOVED_TO``: an editor's rename-over), a
file removed or chmod'ed at once.  On an event queue overflow, an unmount, or a watch the kernel
dropped, every watch is set up again and the stamp compared.

Polling (every ``POLL_SECONDS``) only where inotify cannot see: no inotify instance or watch can
be had (``fs.inotify.max_user_instances``/``max_user_watches`` used up), or the boot directory is
on a network or FUSE filesystem (changes made by another host give no events).  Not seen at all:
a filesystem mounted over a watched directory while hostd runs (no event exists for it; hostd
starts after local-fs.target, which mounts the boot partition); ``Reload()`` reconciles then.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
from collections.abc import Awaitable, Callable

from hostd.layout import Layout, is_within

log = logging.getLogger("hostd.watch")

SETTLE_SECONDS = 0.01  # after the first event of a burst, before the stamp is compared
POLL_SECONDS = 1.0  # the fallback's interval, where inotify cannot see

# <sys/inotify.h>
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000

DIRECTORY_MASK = (
    IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
# The kernel dropped a watch, lost events or the filesystem went away: set every watch up again.
RESCAN_MASK = IN_Q_OVERFLOW | IN_UNMOUNT | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name

# Filesystems where changes made elsewhere (another host, a FUSE server) give no inotify event.
NO_EVENT_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "ceph", "afs", "fuse"})

FileStamp = tuple[int, int, int, int]


def _stat_stamp(path: str) -> FileStamp | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Inotify:
    """An inotify instance, through libc (the standard library has no binding; ctypes is imported
    once hostd is ready, or just before for TimeSynchronized: hostd.timesync)."""

    def __init__(self) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm_watch = libc.inotify_rm_watch
        self._rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
        self._get_errno = ctypes.get_errno
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise self._error("inotify_init1")
        self.fd: int = fd

    def _error(self, what: str, path: str | None = None) -> OSError:
        code = self._get_errno()
        return OSError(code, f"{what}: {os.strerror(code)}", path)

    def add_watch(self, path: str, mask: int) -> int:
        wd = self._add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise self._error("inotify_add_watch", path)
        return wd

    def rm_watch(self, wd: int) -> None:
        self._rm_watch(self.fd, wd)  # EINVAL: the kernel dropped it already

    def read(self) -> list[tuple[int, int, str]]:
        """Every queued event: (watch descriptor, mask, name in the watched directory or "")."""
        events = []
        while True:
            try:
                buffer = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(buffer):
                wd, mask, _cookie, length = _EVENT.unpack_from(buffer, offset)
                offset += _EVENT.size
                name = buffer[offset : offset + length].rstrip(b"\0")
                offset += length
                events.append((wd, mask, os.fsdecode(name)))

    def close(self) -> None:
        os.close(self.fd)


def filesystem_type(path: str) -> str:
    """The type of the filesystem ``path`` is on, from the mount table ("" when unknown)."""
    target = os.path.realpath(path)
    best, fstype = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as mountinfo:
            for line in mountinfo:
                fields, _, rest = line.partition(" - ")
                mount_point = fields.split()[4].replace("\\040", " ")
                if is_within(target, mount_point) and len(mount_point) >= len(best):
                    best, fstype = mount_point, rest.split()[0]
    except OSError:
        return ""
    return fstype


def gives_no_events(fstype: str) -> bool:
    return fstype.split(".")[0] in NO_EVENT_FILESYSTEMS


class ConfigWatch:
    def __init__(self, layout: Layout, on_change: Callable[[], Awaitable[object]]) -> None:
        self.layout = layout
        self._on_change = on_change
        self._seen: tuple[object, ...] | None = None
        self._inotify: Inotify | None = None
        self._watches: dict[int, str] = {}  # watch descriptor -> directory
        self._wake = asyncio.Event()
        self._settle: asyncio.TimerHandle | None = None
        self._lost = ""  # why inotify stopped working (then the watch polls)

    @property
    def dropin_directories(self) -> tuple[str, ...]:
        return (self.layout.boot_connections, self.layout.boot_dispatcher, self.layout.boot_proxy)

    def stamp(self) -> tuple[object, ...]:
        """What changes when config.json or a file in a boot drop-in directory changes.  Every entry
        is stat'ed: a file edited in place changes its own mtime, not its directory's."""
        stamp: list[object] = [_stat_stamp(self.layout.config_json)]
        for directory in self.dropin_directories:
            try:
                with os.scandir(directory) as entries:
                    stamp.append(sorted((entry.name, _stat_stamp(entry.path)) for entry in entries))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def mark_seen(self) -> None:
        """hostd itself changed config.json (and acts on it): not a change to react to."""
        self._seen = self.stamp()

    async def run(self) -> None:
        reason = self._start_inotify()
        if not reason:
            try:
                reason = await self._follow_events()
            finally:
                self._stop_inotify()
        log.warning("watching config.json by polling every %g s: %s", POLL_SECONDS, reason)
        await self._poll()

    async def _follow_events(self) -> str:
        """Check the stamp whenever events came; returns why inotify cannot be used any more."""
        assert self._inotify is not None
        asyncio.get_running_loop().add_reader(self._inotify.fd, self._on_events)
        self._wake.set()  # what changed before the watch began (hostd was starting)
        while not self._lost:
            await self._wake.wait()
            self._wake.clear()
            await self._check()
        return self._lost

    def _start_inotify(self) -> str:
        """Set up inotify and the watches; the reason it cannot be used, or ""."""
        fstype = filesystem_type(self.layout.boot)
        if gives_no_events(fstype):
            return f"{self.layout.boot} is on {fstype}, whose changes made elsewhere give no inotify events"
        try:
            self._inotify = Inotify()
            self._sync_watches()
        except OSError as exc:
            self._stop_inotify()
            return f"inotify: {exc}"
        return ""

    def _stop_inotify(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fd)  # False when never added
            self._inotify.close()
            self._inotify = None
            self._watches = {}

    def _sync_watches(self) -> None:
        """Watch the boot directory and every drop-in directory that exists (one created later is
        seen in the boot directory); the boot directory's parent while it does not exist.  Raises
        OSError when the kernel has no watch left."""
        assert self._inotify is not None
        watches: dict[int, str] = {}
        boot = self.layout.boot
        for directory in (boot, *self.dropin_directories, os.path.dirname(boot)):
            if directory == os.path.dirname(boot) and boot in watches.values():
                continue
            try:
                watches[self._inotify.add_watch(directory, DIRECTORY_MASK)] = directory
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
        for wd in self._watches.keys() - watches.keys():
            self._inotify.rm_watch(wd)  # a directory renamed away, or the boot directory's parent
        self._watches = watches

    def _on_events(self) -> None:
        assert self._inotify is not None
        boot, config_name = self.layout.boot, os.path.basename(self.layout.config_json)
        dropin_names = {os.path.basename(directory) for directory in self.dropin_directories}
        rescan = relevant = False
        for wd, mask, name in self._inotify.read():
            directory = self._watches.get(wd)
            if mask & IN_Q_OVERFLOW:
                rescan = relevant = True
            elif directory is None:
                continue  # a watch removed by hostd, whose IN_IGNORED comes after
            elif mask & RESCAN_MASK:
                rescan = relevant = True
            elif directory == boot:
                if name in dropin_names:
                    rescan = relevant = True
                elif name == config_name:
                    relevant = True
            elif directory == os.path.dirname(boot):
                if name == os.path.basename(boot):
                    rescan = relevant = True
            else:
                relevant = True  # anything in a drop-in directory
        if rescan:
            try:
                self._sync_watches()
            except OSError as exc:
                self._lost = f"the boot partition's directories cannot be watched again: {exc}"
                self._wake.set()
                return
        if relevant and self._settle is None:
            self._settle = asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._settled)

    def _settled(self) -> None:
        self._settle = None
        self._wake.set()

    async def _check(self) -> None:
        stamp = self.stamp()
        if stamp != self._seen:
            self._seen = stamp
            log.info("config.json or a boot-partition drop-in changed: reconciling")
            await self._on_change()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            await self._check()
