"""What every setup step shares: the context it reads, the changes it plans.

A step is a module with ``NAME``, ``KEYS`` (the config.json keys it depends on) and
``plan(ctx) -> Plan``.  A planned change carries the action that performs it, so applying a
plan does exactly what the plan said and nothing else; an empty plan means converged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hostd import fsutil
from hostd.config import Config
from hostd.layout import Layout


@dataclass(frozen=True)
class Facts:
    """What the running system tells hostd that config.json does not (empty offline)."""

    network_dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    config: Config
    layout: Layout
    facts: Facts = Facts()


@dataclass(frozen=True)
class Change:
    kind: str  # write, chmod, remove, mkdir, wipe, mount
    path: str  # device path
    detail: str = ""
    action: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    # Per-item findings a step wants to report (e.g. the per-file import report).
    report: list[dict[str, Any]] = field(default_factory=list)
    # Problems that do not stop the rest of the step (one bad profile among many).
    problems: list[str] = field(default_factory=list)
    # The step cannot do its job at all (its problems say why): reported as failed, not ok.
    failed: bool = False


class Step(Protocol):
    NAME: str
    KEYS: frozenset[str]

    def plan(self, ctx: Context) -> Plan: ...


def plan_file(
    plan: Plan,
    layout: Layout,
    path: Path,
    content: bytes | None,
    mode: int = 0o644,
    uid: int = fsutil.ROOT_UID,
    gid: int = fsutil.ROOT_GID,
) -> None:
    """Add to ``plan`` what it takes for ``path`` to hold ``content`` (None: to not exist)."""
    device_path = layout.device_path(path)
    if content is None:
        if path.exists() or path.is_symlink():
            plan.changes.append(Change("remove", device_path, action=lambda: fsutil.remove_file(path)))
        return
    differs = fsutil.file_differs(path, content, mode, uid, gid)
    if differs is None:
        return
    # A file with other hard links (one outside the root, say) is replaced, not chmodded: that
    # would change the other name's file too.
    if differs == "metadata" and path.lstat().st_nlink == 1:
        plan.changes.append(
            Change("chmod", device_path, f"{mode:04o}", lambda: fsutil.set_metadata(path, mode, uid, gid))
        )
        return
    plan.changes.append(
        Change("write", device_path, differs, lambda: fsutil.atomic_write(path, content, mode, uid, gid))
    )
