"""What every setup step shares: the context it reads, the changes it plans, the results it reports.

A step is a module named after it with ``NAME``, ``KEYS`` (the config.json keys it reads, from
``hostd.keys``), ``TRIGGERS`` (the service events that re-run it), ``plan(ctx) -> Plan`` and
either ``apply_live`` (its live effect) or ``NO_LIVE_EFFECT`` (why it needs none).  A planned
change carries the action that performs it, so applying a plan does exactly what the plan said
and nothing else; an empty plan means converged.  Nothing here touches D-Bus: a live effect is
given the service adapters by the reconciler.
"""

from __future__ import annotations

import os
from enum import StrEnum

from hostd import fsutil
from hostd.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Protocol

    from hostd.bus.services import Services
    from hostd.config import Config
    from hostd.layout import Layout


class Facts(Record):
    """What the running system tells hostd that config.json does not (empty offline)."""

    __slots__ = ("network_dns_servers", "network_ntp_servers")

    def __init__(self, network_dns_servers: tuple[str, ...] = (), network_ntp_servers: tuple[str, ...] = ()) -> None:
        self.network_dns_servers = network_dns_servers
        self.network_ntp_servers = network_ntp_servers  # offered by DHCP


class Context(Record):
    __slots__ = ("config", "facts", "layout")

    def __init__(self, config: Config, layout: Layout, facts: Facts | None = None) -> None:
        self.config = config
        self.layout = layout
        self.facts = Facts() if facts is None else facts


class Change(Record):
    __slots__ = ("action", "detail", "kind", "path")

    def __init__(self, kind: str, path: str, detail: str = "", action: Callable[[], None] | None = None) -> None:
        self.kind = kind  # write, chmod, remove, mkdir, wipe, mount
        self.path = path  # device path
        self.detail = detail
        self.action = action

    def _fields(self) -> tuple[object, ...]:
        return (self.kind, self.path, self.detail)  # not the action: two plans of one change are equal

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


class FileEntry(Record):
    __slots__ = ("name", "reason", "status", "verdict")

    def __init__(self, name: str, status: FileStatus, reason: str = "", verdict: str = "") -> None:
        self.name = name
        self.status = status
        self.reason = reason
        self.verdict = verdict  # what the service that loads the file made of it (NetworkManager)

    def as_dict(self) -> dict[str, str]:
        entry = {"name": self.name, "status": self.status.value, "reason": self.reason}
        if self.verdict:
            entry["nm"] = self.verdict
        return entry


class Plan(Record):
    __slots__ = ("changes", "failed", "problems", "record", "report")

    def __init__(
        self,
        changes: list[Change] | None = None,
        report: list[ReportEntry] | None = None,
        problems: list[str] | None = None,
        record: object = None,
        failed: bool = False,
    ) -> None:
        self.changes = [] if changes is None else changes
        # Per-item findings a step wants to report (e.g. the per-file import report).
        self.report = [] if report is None else report
        # Problems that do not stop the rest of the step (one bad profile among many).
        self.problems = [] if problems is None else problems
        # What the step gives its service, for the API to show as given (not computed again later).
        self.record = record
        # The step cannot do its job at all (its problems say why): reported as failed, not ok.
        self.failed = failed


class StepStatus(StrEnum):
    OK = "ok"  # converged
    CHANGED = "changed"
    PLANNED = "planned"  # changes to make
    FAILED = "failed"


class StepResult(Record):
    __slots__ = ("changes", "duration", "finished_at", "name", "pending", "problems", "record", "report", "status")

    def __init__(
        self,
        name: str,
        status: StepStatus,
        changes: list[Change] | None = None,
        pending: list[Change] | None = None,
        problems: list[str] | None = None,
        report: list[ReportEntry] | None = None,
        record: object = None,
        duration: float = 0.0,
        finished_at: float = 0.0,
    ) -> None:
        self.name = name
        self.status = status
        self.changes = [] if changes is None else changes  # made (apply) or to make (plan)
        self.pending = [] if pending is None else pending  # needs the running system (mounts, offline)
        self.problems = [] if problems is None else problems
        self.report = [] if report is None else report
        self.record = record  # the plan's record, or the live effect's when it gave one
        self.duration = duration
        self.finished_at = finished_at

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
                FileEntry(entry.name, entry.status, entry.reason, outcome.verdicts[entry.name])
                if isinstance(entry, FileEntry) and entry.name in outcome.verdicts
                else entry
                for entry in self.report
            ]
        self.report += outcome.report
        if outcome.record is not None:
            self.record = outcome.record
        if self.status == StepStatus.OK and outcome.made:
            self.status = StepStatus.CHANGED


class Outcome(Record):
    """What a live effect did; the runner merges it into the step's result."""

    __slots__ = ("converged", "made", "problems", "record", "report", "verdicts")

    def __init__(
        self,
        made: list[Change] | None = None,
        converged: list[Change] | None = None,
        problems: list[str] | None = None,
        verdicts: dict[str, str] | None = None,
        report: list[ReportEntry] | None = None,
        record: object = None,
    ) -> None:
        self.made = [] if made is None else made  # pending changes it made (bind mounts)
        self.converged = [] if converged is None else converged  # pending changes found made already
        self.problems = [] if problems is None else problems
        self.verdicts = {} if verdicts is None else verdicts  # reported file name -> the service's verdict
        self.report = [] if report is None else report
        self.record = record  # what the service was given or reported, for the API


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


if TYPE_CHECKING:  # what type checkers hold the step modules and report entries to (no typing at run time)

    class ReportEntry(Protocol):
        """One item of a step's report, as Describe() and ``hostctl --json`` show it."""

        def as_dict(self) -> dict[str, str]: ...

    LiveEffect = Callable[[Services, Context, StepResult], Awaitable[Outcome]]

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
    path: str,
    content: bytes | None,
    mode: int = 0o644,
    uid: int = fsutil.ROOT_UID,
    gid: int = fsutil.ROOT_GID,
) -> None:
    """Add to ``plan`` what it takes for ``path`` to hold ``content`` (None: to not exist)."""
    device_path = layout.device_path(path)
    if content is None:
        if os.path.lexists(path):
            plan.changes.append(Change("remove", device_path, action=lambda: fsutil.remove_file(path)))
        return
    differs = fsutil.file_differs(path, content, mode, uid, gid)
    if differs is None:
        return
    # A file with other hard links (one outside the root, say) is replaced, not chmodded: that
    # would change the other name's file too.
    if differs == "metadata" and os.lstat(path).st_nlink == 1:
        plan.changes.append(
            Change("chmod", device_path, f"{mode:04o}", lambda: fsutil.set_metadata(path, mode, uid, gid))
        )
        return
    plan.changes.append(
        Change("write", device_path, differs, lambda: fsutil.atomic_write(path, content, mode, uid, gid))
    )
