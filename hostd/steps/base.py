"""What every setup step shares: the context it reads, the changes it plans, the results it reports.

A step is a module named after it with ``NAME``, ``KEYS`` (the config.json keys it reads, from
``hostd.keys``), ``TRIGGERS`` (the service events that re-run it), ``plan(ctx) -> Plan`` and
either ``apply_live`` (its live effect) or ``NO_LIVE_EFFECT`` (why it needs none).  A planned
change carries the action that performs it, so applying a plan does exactly what the plan said
and nothing else; an empty plan means converged.  Nothing here touches D-Bus: a live effect is
given the service adapters by the reconciler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hostd import fsutil
from hostd.config import Config
from hostd.layout import Layout

if TYPE_CHECKING:
    from hostd.bus.services import Services


@dataclass(frozen=True)
class Facts:
    """What the running system tells hostd that config.json does not (empty offline)."""

    network_dns_servers: tuple[str, ...] = ()
    network_ntp_servers: tuple[str, ...] = ()  # offered by DHCP


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


class FileStatus(StrEnum):
    """What became of one file a step imports (a boot-partition profile, a udev rule)."""

    IMPORTED = "imported"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    REMOVED = "removed"
    KEPT = "kept"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    MISSING = "missing"  # a file that should be there is not (the reset flag, removed on a running device)


@dataclass(frozen=True)
class FileEntry:
    name: str
    status: FileStatus
    reason: str = ""
    verdict: str = ""  # what the service that loads the file made of it (NetworkManager)

    def as_dict(self) -> dict[str, str]:
        entry = {"name": self.name, "status": self.status.value, "reason": self.reason}
        if self.verdict:
            entry["nm"] = self.verdict
        return entry


class ReportEntry(Protocol):
    """One item of a step's report, as Describe() and ``hostctl --json`` show it."""

    def as_dict(self) -> dict[str, str]: ...


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    # Per-item findings a step wants to report (e.g. the per-file import report).
    report: list[ReportEntry] = field(default_factory=list)
    # Problems that do not stop the rest of the step (one bad profile among many).
    problems: list[str] = field(default_factory=list)
    # What the step gives its service, for the API to show as given (not computed again later).
    record: object = None
    # The step cannot do its job at all (its problems say why): reported as failed, not ok.
    failed: bool = False


class StepStatus(StrEnum):
    OK = "ok"  # converged
    CHANGED = "changed"
    PLANNED = "planned"  # changes to make
    FAILED = "failed"


@dataclass
class StepResult:
    name: str
    status: StepStatus
    changes: list[Change] = field(default_factory=list)  # made (apply) or to make (plan)
    pending: list[Change] = field(default_factory=list)  # needs the running system (mounts, offline)
    problems: list[str] = field(default_factory=list)
    report: list[ReportEntry] = field(default_factory=list)
    record: object = None  # the plan's record, or the live effect's when it gave one
    duration: float = 0.0
    finished_at: float = 0.0

    @property
    def message(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        if self.status == StepStatus.CHANGED:
            return f"{len(self.changes)} change(s)"
        if self.status == StepStatus.PLANNED:
            return f"{len(self.changes)} change(s) to make"
        return ""

    def file_entries(self) -> list[FileEntry]:
        return [entry for entry in self.report if isinstance(entry, FileEntry)]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "changes": [change.as_dict() for change in self.changes],
            "pending": [change.as_dict() for change in self.pending],
            "problems": list(self.problems),
            "report": [entry.as_dict() for entry in self.report],
            "duration_ms": round(self.duration * 1000, 3),
            "finished_at": self.finished_at,
        }

    def merge(self, outcome: Outcome) -> None:
        """Take in what the step's live effect did."""
        for change in outcome.converged + outcome.made:
            self.pending.remove(change)
        self.changes += outcome.made
        self.problems += outcome.problems
        if outcome.verdicts:
            self.report = [
                replace(entry, verdict=outcome.verdicts[entry.name])
                if isinstance(entry, FileEntry) and entry.name in outcome.verdicts
                else entry
                for entry in self.report
            ]
        self.report += outcome.report
        if outcome.record is not None:
            self.record = outcome.record
        if self.status == StepStatus.OK and outcome.made:
            self.status = StepStatus.CHANGED


@dataclass
class Outcome:
    """What a live effect did; the runner merges it into the step's result."""

    made: list[Change] = field(default_factory=list)  # pending changes it made (bind mounts)
    converged: list[Change] = field(default_factory=list)  # pending changes found made already
    problems: list[str] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)  # reported file name -> the service's verdict
    report: list[ReportEntry] = field(default_factory=list)
    record: object = None  # what the service was given or reported, for the API


class Event(StrEnum):
    """Service events that re-run the steps listing them in TRIGGERS."""

    SYSTEMD_ATTACHED = "systemd attached"
    NETWORKMANAGER_ATTACHED = "NetworkManager attached"
    NETWORK_DNS_CHANGED = "the network's DNS servers changed"
    NETWORK_NTP_CHANGED = "the network's NTP servers changed"
    DNSMASQ_ATTACHED = "dnsmasq attached"
    AVAHI_ATTACHED = "avahi-daemon attached"
    CHRONYD_RETURNED = "chronyd running again"
    JOURNALD_RETURNED = "journald running again"
    REDSOCKS_RETURNED = "redsocks running again"


LiveEffect = Callable[["Services", Context, StepResult], Awaitable[Outcome]]


class Step(Protocol):
    NAME: str
    KEYS: frozenset[str]
    TRIGGERS: frozenset[Event]

    def plan(self, ctx: Context) -> Plan: ...


def live_effect(step: Step) -> LiveEffect | None:
    """The step's live effect; None for a step that declares NO_LIVE_EFFECT."""
    effect: LiveEffect | None = getattr(step, "apply_live", None)
    return effect


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
