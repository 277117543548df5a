"""What the reliability tests share: device roots, the CLI run in-process, snapshots of a tree."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hostd import cli

WIFI = (
    "[connection]\nid=home\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a001\ntype=wifi\n[wifi]\nssid=home\n"
    "[wifi-security]\nkey-mgmt=wpa-psk\npsk=SuperSecret123\n"
)
WIRED = "[connection]\nid=wired\nuuid=5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a002\ntype=ethernet\n"


def ssh_key(seed: int, comment: str = "me@laptop") -> str:
    """A well-formed ssh-ed25519 public key line (the key bytes are not a real key)."""
    kind = b"ssh-ed25519"
    blob = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big") + bytes((seed + i) % 256 for i in range(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str  # with every log record hostd emitted, formatted as a handler would print it


def run_cli(argv: list[str]) -> CliRun:
    """hostctl's main() in this process, its output captured through strict UTF-8 streams like a terminal's."""
    out, err = io.BytesIO(), io.BytesIO()
    out_text = io.TextIOWrapper(out, encoding="utf-8", errors="strict")
    err_text = io.TextIOWrapper(err, encoding="utf-8", errors="strict")
    handler = logging.StreamHandler(err_text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("hostd")
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out_text), contextlib.redirect_stderr(err_text):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        logger.removeHandler(handler)
    return CliRun(code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8"))


# (kind, content or link target, permission bits); content None for directories
Entry = tuple[str, bytes | str | None, int]


def tree(root: Path) -> dict[str, Entry]:
    """Every entry under ``root`` (symlinks not followed), by relative path."""
    result: dict[str, Entry] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                result[relative] = ("dir", None, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                result[relative] = ("link", os.readlink(path), 0)
            elif stat.S_ISREG(st.st_mode):
                result[relative] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
            else:
                result[relative] = ("other", None, st.st_mode)
    return result


def stamps(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """(inode, mtime_ns, ctime_ns, mode) of every entry under ``root``: any write shows."""
    result = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            result[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    return result


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """No log output from in-process runs that are not under test."""
    logger = logging.getLogger("hostd")
    saved = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = saved
