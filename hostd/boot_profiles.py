"""The boot partition's NetworkManager profiles as io.hostd1 offers them: listed without secrets,
added, replaced and removed one file at a time, each validated as an import is (hostd.keyfile).

hostd applies a changed boot profile through safe apply like any import; these functions only
read and write the boot partition, power-safely.
"""

from __future__ import annotations

import os

from hostd import fsutil, keyfile
from hostd.record import Record

ProfileTuple = tuple[str, str, str, str, str]  # file name, id, uuid, type, keyfile without secrets


class Undo(Record):
    """What a boot profile was before a change: put back when the change is rolled back."""

    __slots__ = ("content", "path")

    def __init__(self, path: str, content: bytes | None) -> None:
        self.path = path
        self.content = content  # None: there was no file

    def apply(self) -> None:
        if self.content is None:
            fsutil.remove_file(self.path)
        else:
            fsutil.atomic_write(self.path, self.content, 0o600)


def listing(directory: str) -> list[ProfileTuple]:
    """Every profile file (samples included); one that NetworkManager would not load shows only its name."""
    try:
        with os.scandir(directory) as entries:
            files = sorted((entry.name, entry.path) for entry in entries if entry.is_file(follow_symlinks=False))
    except OSError:
        return []
    profiles = []
    for name, path in files:
        data = fsutil.read_bytes(path) or b""
        try:
            parsed = keyfile.parse_keyfile(name, data)
        except keyfile.KeyfileError:
            profiles.append((name, "", "", "", ""))
            continue
        text = keyfile.without_secrets(data.decode("utf-8"))
        profiles.append((name, parsed.id or "", parsed.uuid or "", parsed.type, text))
    return profiles


def check(name: str, content: str | None) -> bytes | None:
    """The bytes to write for ``name`` (None: remove it); ValueError naming the file when NetworkManager
    would not load it, or a plain import would skip it."""
    keyfile.check_name(name)
    if name.endswith(".ignore") or keyfile.nm_ignores_name(name):
        raise ValueError(f"{name}: NetworkManager (or the import) skips files of this name; choose another")
    if content is None:
        return None
    data = content.encode("utf-8", "surrogateescape")
    keyfile.parse_keyfile(name, data)
    return data


def write(directory: str, name: str, data: bytes | None) -> Undo:
    """Write (or remove) the profile power-safely; what to put back if the change is rolled back."""
    path = os.path.join(directory, name)
    undo = Undo(path, fsutil.read_bytes(path))
    if data is None:
        fsutil.remove_file(path)
    else:
        fsutil.atomic_write(path, data, 0o600)
    return undo
