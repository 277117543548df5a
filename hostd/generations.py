"""Generations: each configuration hostd applies, kept so that a bad one can be undone.

A generation is what the boot partition held when hostd acted on it — config.json and the
NetworkManager profiles and dispatcher scripts to import and the system proxy — saved on the state partition as a
small directory laid out like a boot partition.  Restoring one is running the ordinary steps
with that directory as their boot partition.  A generation becomes last-known-good only after
its probe passed, together with the values its keys ran with (a key config.json held back ran
at its own last-known-good value: that is the value to fall back to next time); this is hostd's
only last-known-good.  A rejected generation is remembered by hash and not tried again until
the boot partition changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

from hostd import fsutil
from hostd.layout import Layout
from hostd.record import Record
from hostd.steps.imports import read_plain_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Container
    from typing import Any

INPUT_DIRS = ("system-connections", "dispatcher.d", "system-proxy")
MAX_INPUT_BYTES = 1024 * 1024
KEEP_GENERATIONS = 4  # the good one, the one on trial, and a little history
APPLIED = "applied.json"  # in a good generation: the owned keys' values it ran with (hostd.config)


class Inputs(Record):
    """The boot partition's content that hostd acts on, read once."""

    __slots__ = ("config", "files")

    def __init__(self, config: bytes, files: dict[str, bytes] | None = None) -> None:
        self.config = config
        self.files = {} if files is None else files  # "system-connections/name" -> content

    @property
    def id(self) -> str:
        digest = hashlib.sha256(b"config.json\0" + self.config)
        for name in sorted(self.files):
            digest.update(b"\0" + os.fsencode(name) + b"\0" + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()[:16]

    def files_differ(self, other: Inputs | None) -> bool:
        return other is None or self.files != other.files


def read_inputs(layout: Layout, config_raw: bytes) -> Inputs:
    """The profiles and scripts in the boot partition, with the config.json bytes already read.

    Only plain files are taken (the import steps validate and report the rest).
    """
    files: dict[str, bytes] = {}
    for directory in INPUT_DIRS:
        with contextlib.suppress(OSError):
            for entry in os.scandir(os.path.join(layout.boot, directory)):
                with contextlib.suppress(ValueError):
                    files[f"{directory}/{entry.name}"] = read_plain_file(entry.path, MAX_INPUT_BYTES)
    return Inputs(config_raw, files)


def boot_choice(candidate: str | None, rejected: Container[str], good: str | None) -> str | None:
    """The generation hostd applies first at boot (the daemon's first reconcile, and the network
    inputs stage before it): config.json's (``candidate``; None when config.json is unusable)
    unless it was rejected; else the last-known-good one (``good``); with none, "" (the defaults)
    when config.json is unusable, None (nothing applied) when it was rejected."""
    if candidate is not None and candidate not in rejected:
        return candidate
    if candidate is None and good is None:
        return ""
    return good


class GenerationStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.directory = os.path.join(layout.hostd_state, "generations")
        self._good_file = os.path.join(layout.hostd_state, "good-generation")
        self._rejected_file = os.path.join(layout.hostd_state, "rejected-generations.json")

    def path(self, generation_id: str) -> str:
        return os.path.join(self.directory, generation_id)

    def layout_of(self, generation_id: str) -> Layout:
        """A layout whose boot partition is the saved generation."""
        return Layout(self.layout.root, boot_dir=self.path(generation_id))

    def load(self, generation_id: str) -> Inputs | None:
        directory = self.path(generation_id)
        config = fsutil.read_bytes(os.path.join(directory, "config.json"))
        if config is None:
            return None
        files = {}
        for sub in INPUT_DIRS:
            with contextlib.suppress(OSError):
                for entry in os.scandir(os.path.join(directory, sub)):
                    if (content := fsutil.read_bytes(entry.path)) is not None:
                        files[f"{sub}/{entry.name}"] = content
        return Inputs(config, files)

    def save(self, inputs: Inputs) -> str:
        """Keep a generation (nothing is written if it is kept already); returns its id."""
        generation_id = inputs.id
        target = self.path(generation_id)
        if os.path.isdir(target):
            return generation_id
        # Built aside and renamed into place: a power cut leaves no half-saved generation.
        import shutil  # not at the top: a boot that changes nothing does not load it

        staging = os.path.join(self.directory, f".{generation_id}.hostd-tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self._restrict_directory()
        for directory in (staging, *(os.path.join(staging, sub) for sub in INPUT_DIRS)):
            fsutil.ensure_dir(directory, 0o700)  # config.json and profiles carry credentials: root only
        with fsutil.batch():  # one flush for all the files
            for name, content in {"config.json": inputs.config, **inputs.files}.items():
                fsutil.atomic_write(os.path.join(staging, name), content, 0o600)
        os.rename(staging, target)
        fsutil.fsync_dir(self.directory)
        self._prune(keep={generation_id, self.good() or ""})
        return generation_id

    def good(self) -> str | None:
        raw = fsutil.read_bytes(self._good_file)
        good = raw.decode().strip() if raw else ""
        return good if good and os.path.isdir(self.path(good)) else None

    def good_config(self) -> tuple[bytes, bytes | None] | None:
        """The last-known-good generation's config.json, and the values its keys ran with when kept."""
        good = self.good()
        config = fsutil.read_bytes(os.path.join(self.path(good), "config.json")) if good else None
        if good is None or config is None:
            return None
        return config, fsutil.read_bytes(os.path.join(self.path(good), APPLIED))

    def promote(self, generation_id: str, applied: bytes | None = None) -> bool:
        """Make a generation last-known-good, with the values its keys ran with; True when that
        changed anything (nothing is written when it is good already with these values)."""
        changed = False
        applied_path = os.path.join(self.path(generation_id), APPLIED)
        if applied is not None and fsutil.file_differs(applied_path, applied, 0o600) is not None:
            fsutil.atomic_write(applied_path, applied, 0o600)
            changed = True
        content = f"{generation_id}\n".encode()
        if fsutil.file_differs(self._good_file, content, 0o600) is None:
            return changed
        fsutil.atomic_write(self._good_file, content, 0o600)
        self._forget_dropped_profiles(generation_id)
        return True

    def _restrict_directory(self) -> None:
        """The generations directory is root's alone (0700), also when an older hostd made it 0755."""
        fsutil.ensure_dir(self.directory, 0o700)
        if os.stat(self.directory).st_mode & 0o777 != 0o700:
            os.chmod(self.directory, 0o700)

    def _forget_dropped_profiles(self, good: str) -> None:
        """Once a generation is good, no other one keeps a profile (and its PSK) the good one does not
        hold as it is: a profile removed or changed on the boot partition leaves no copy behind."""
        import shutil

        kept = self.load(good)
        if kept is None:
            return
        for entry in self._generation_entries():
            if entry.name == good:
                continue
            other = self.load(entry.name)
            if other is None or any(kept.files.get(name) != content for name, content in other.files.items()):
                shutil.rmtree(entry.path, ignore_errors=True)
        fsutil.fsync_dir(self.directory)

    def rejected(self) -> dict[str, dict[str, Any]]:
        raw = fsutil.read_bytes(self._rejected_file)
        try:
            rejected = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return rejected if isinstance(rejected, dict) else {}

    def reject(self, generation_id: str, reason: str, evidence: list[str]) -> dict[str, Any]:
        record = {"generation": generation_id, "when": time.time(), "reason": reason, "evidence": evidence}
        # Only recent rejections matter: a boot partition that changes gets a new id anyway.
        rejected = dict(list(self.rejected().items())[-(KEEP_GENERATIONS - 1) :])
        rejected[generation_id] = record
        fsutil.atomic_write(self._rejected_file, (json.dumps(rejected, indent=1) + "\n").encode(), 0o600)
        return record

    def _generation_entries(self) -> list[os.DirEntry[str]]:
        try:
            return [entry for entry in os.scandir(self.directory) if entry.is_dir() and not entry.name.startswith(".")]
        except OSError:
            return []

    def _prune(self, keep: set[str]) -> None:
        entries = self._generation_entries()
        entries.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
        import shutil

        for entry in entries[KEEP_GENERATIONS:]:
            if entry.name not in keep:
                shutil.rmtree(entry.path, ignore_errors=True)
