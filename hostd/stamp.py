"""The network-inputs stage's stamp: an unchanged boot gets the network's inputs without the engine.

NetworkManager waits for ``hostd-network-inputs.service`` (hostd.prepare): every millisecond of it
delays the network, and most boots change nothing.  After a full run the stage records, on the
state partition, a digest of everything that run reads and writes that outlives a reboot
(``PERSISTENT``: config.json and the boot partition's profiles, scripts and proxy files; the
generations, trial record and rejections the boot choice reads; the imported profiles and
scripts, their manifests, /etc/hostname and the saved servers file; hostd's own code), a digest
of what it reads in /run (``RUN_INPUTS``, before it writes), and what it left in /run (gone at
every boot), the generation it wrote and the kernel hostname it set (left in /run for the daemon
to keep: ``PENDING``).  At the next boot, when
both digests are equal, a full run would find every step converged and write the same /run
files: the stage writes those, sets the name and exits, having imported nothing but ``os`` and
``hashlib``.

The digest is of contents and metadata, read at every boot, not a flag that writers must clear:
whatever writes one of those files later (the daemon's live apply, a rollback, hostctl, a reset,
an edit by hand, a new hostd) makes the next boot's digest differ, and that boot runs in full
and records a new stamp.  Files that change on their own (the saved clock) are not among them.
"""

from __future__ import annotations

import os

STAMP = "mnt/state/hostd/network-inputs.stamp"
# Where a full run leaves a new stamp: tmpfs, so that its fsync on the state partition (about 8 ms,
# more on an SD card) is not on the network's path.  The daemon, once ready, moves it to STAMP; a
# boot whose daemon never gets there just runs in full again.
PENDING = "run/hostd/network-inputs.stamp"
FORMAT = b"hostd network-inputs stamp 1"
# Device paths, relative to the root: files and directory trees (contents, modes and owners).
PERSISTENT = (
    "mnt/boot/config.json",
    "mnt/boot/system-connections",
    "mnt/boot/dispatcher.d",
    "mnt/boot/system-proxy",
    "mnt/state/hostd/rejected-generations.json",
    "mnt/state/hostd/trial.json",
    "mnt/state/hostd/imported-connections.json",
    "mnt/state/hostd/imported-dispatcher.json",
    "mnt/state/hostd/dnsmasq.servers",
    "etc/hostname",
    "etc/NetworkManager/system-connections",
    "etc/NetworkManager/dispatcher.d",
)
# The last-known-good configuration: in the digest only when the run read it (config.json unusable,
# rejected or a key held back), so that the daemon keeping a new generation as good, as it does
# after every change, does not make the next boot run in full.
GOOD = (
    "mnt/state/hostd/good-generation",
    "mnt/state/hostd/generations",
    "mnt/state/hostd/config.json",  # the last-known-good config from before generations
)
# Read in /run before the run writes there: chrony's sources take their directory's owner.
RUN_INPUTS = ("run/chrony",)
_CHUNK = 1 << 16


def _read(path: str) -> bytes:
    """A file's content, read without updating its access time where the mount would (a read is
    then no write: flash), as hostd.fsutil.open_to_read does (for root, or the file's owner)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        chunks = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _add_entry(digest: object, path: str, name: str, *, inside: bool = True) -> None:
    """One path into the digest, never through a symbolic link: its type, mode and owner; with
    ``inside``, a file's content, a link's target, a directory's entries in name order."""
    update = digest.update  # type: ignore[attr-defined]
    update(os.fsencode(name) + b"\0")
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        update(b"-\0")
        return
    update(b"%o %d %d\0" % (st.st_mode, st.st_uid, st.st_gid))
    if not inside:
        return
    if st.st_mode & 0o170000 == 0o100000:  # a regular file
        update(_read(path) + b"\0%d\0" % st.st_size)
    elif st.st_mode & 0o170000 == 0o120000:  # a symbolic link
        update(os.fsencode(os.readlink(path)) + b"\0")
    elif st.st_mode & 0o170000 == 0o040000:
        for child in sorted(os.listdir(path)):
            _add_entry(digest, os.path.join(path, child), child)
        update(b"/\0")


def _digest(root: str, paths: tuple[str, ...], extra: bytes = b"") -> bytes:
    from hashlib import sha256

    digest = sha256(FORMAT + b"\0" + extra)
    for relative in paths:
        parent = os.path.dirname(relative)  # a directory swapped for a link above: the steps refuse it
        while parent:
            _add_entry(digest, os.path.join(root, parent), parent, inside=False)
            parent = os.path.dirname(parent)
        _add_entry(digest, os.path.join(root, relative), relative)
    return digest.hexdigest().encode()


def _code() -> bytes:
    """hostd's own modules, by inode, size, modification and change time: a new hostd runs in full
    once.  The change time is the kernel's (an install or image build sets it), not the package's:
    a reproducible build clamps every modification time to one date."""
    package = os.path.dirname(os.path.abspath(__file__))
    code = []
    for directory in (package, os.path.join(package, "steps")):
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    st = entry.stat()
                    code.append(f"{entry.path} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}")
    return "\n".join(sorted(code)).encode()


def _state(root: str, with_good: bool, run_inputs: bytes | None = None) -> bytes:
    """Both digests, as the stamp holds them: the persistent files now, /run's inputs as given (the
    full run takes them before it writes) or now."""
    if run_inputs is None:
        run_inputs = _digest(root, RUN_INPUTS)
    return _digest(root, PERSISTENT + GOOD if with_good else PERSISTENT, _code()) + b" " + run_inputs


def run_inputs_digest(root: str) -> bytes:
    """What the stage reads in /run, taken before a full run writes there."""
    return _digest(root, RUN_INPUTS)


# -- the stamp: netstrings (length:bytes,) ---------------------------------------------------


def _pack(fields: list[bytes]) -> bytes:
    return b"".join(b"%d:%s," % (len(field), field) for field in fields)


def _unpack(raw: bytes) -> list[bytes]:
    fields = []
    index = 0
    while index < len(raw):
        colon = raw.index(b":", index)
        end = colon + 1 + int(raw[index:colon])
        if raw[end : end + 1] != b",":
            raise ValueError("not a netstring")
        fields.append(raw[colon + 1 : end])
        index = end + 1
    return fields


def content(root: str, run_inputs: bytes, with_good: bool, hostname: str | None, outputs: tuple[str, ...]) -> bytes:
    """The stamp after a full run: both digests (``with_good``: the run read the last-known-good
    configuration), the name the kernel was given (none: the hostname step failed), and each /run
    file the stage writes (device paths) as it is now, or absent."""
    scope = b"good" if with_good else b""
    fields = [FORMAT, scope, _state(root, with_good, run_inputs), os.fsencode(hostname or "")]
    for device_path in outputs:
        path = os.path.join(root, device_path.lstrip("/"))
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            fields += [os.fsencode(device_path), b"", b""]
            continue
        fields += [os.fsencode(device_path), b"%o %d %d" % (st.st_mode & 0o7777, st.st_uid, st.st_gid), _read(path)]
    return _pack(fields)


def replay(root: str) -> bool:
    """An unchanged boot: when the stamp's digests are this boot's, write its /run files, set the
    kernel's name and return True; False (nothing written) when the stage must run in full."""
    try:
        fields = _unpack(_read(os.path.join(root, STAMP)))
    except (FileNotFoundError, ValueError):  # no full run recorded yet (a first boot, a reset), or damaged
        return False
    if len(fields) < 4 or len(fields) % 3 != 1 or fields[0] != FORMAT or fields[2] != _state(root, bool(fields[1])):
        return False
    for index in range(4, len(fields), 3):
        path = os.path.join(root, os.fsdecode(fields[index]).lstrip("/"))
        if not fields[index + 1]:
            if os.path.lexists(path):
                os.unlink(path)
            continue
        mode, uid, gid = fields[index + 1].split()
        _put(path, fields[index + 2], int(mode, 8), int(uid), int(gid))
    name = os.fsdecode(fields[3])
    if name and os.path.realpath(root) == "/":
        import _socket  # socket's C half: the name is all it is used for

        if _socket.gethostname() != name:
            _socket.sethostname(name)
    # hostd.logsetup's line format (priority, logger name), written without the logging module.
    os.write(2, b"<6>hostd.prepare: network inputs unchanged since the last full run: its /run files replayed\n")
    return True


def _put(path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    """A /run file as the full run left it (fsutil's write, but on tmpfs, where a flush is
    meaningless and pathlib would cost what this saves): compared first, then a hidden temp
    file renamed over it, so a reader never sees half of it."""
    try:
        st = os.lstat(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            current = os.read(fd, len(data) + 1)
        finally:
            os.close(fd)
        if current == data and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid):
            return
    except FileNotFoundError:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.hostd-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
    os.replace(temp, path)
