"""Run the setup steps: plan, or apply, each one isolated from the others' failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostd import config as config_model
from hostd import fsutil
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, state
from hostd.steps.base import Change, Context, Step

log = logging.getLogger("hostd.engine")


@dataclass
class StepResult:
    name: str
    status: str  # ok (converged), changed, planned (changes to make), failed
    changes: list[Change] = field(default_factory=list)  # made (apply) or to make (plan)
    pending: list[Change] = field(default_factory=list)  # needs the running system (mounts, offline)
    problems: list[str] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    finished_at: float = 0.0

    @property
    def message(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        if self.status == "changed":
            return f"{len(self.changes)} change(s)"
        if self.status == "planned":
            return f"{len(self.changes)} change(s) to make"
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "changes": [change.as_dict() for change in self.changes],
            "pending": [change.as_dict() for change in self.pending],
            "problems": list(self.problems),
            "report": list(self.report),
            "duration_ms": round(self.duration * 1000, 3),
            "finished_at": self.finished_at,
        }


def steps_for_keys(keys: Iterable[str]) -> tuple[Step, ...]:
    """The steps to run when these config.json keys changed; file-driven steps always run."""
    changed = frozenset(keys)
    return tuple(step for step in ALL_STEPS if not step.KEYS or step.KEYS & changed)


def written_dirs(layout: Layout) -> set[Path]:
    """Every directory the steps write files into: where a crash may have left a temp file."""
    files = (
        layout.config_json,
        layout.last_known_good,
        layout.etc_hostname,
        layout.authorized_keys,
        layout.journald_dropin,
        layout.nm_dropin,
        layout.chrony_sources,
        layout.dnsmasq_servers,
        layout.modprobe_dropin,
        layout.devmode_env,
    )
    dirs = {path.parent for path in files} | {layout.nm_connections, layout.nm_dispatcher, layout.udev_rules}
    dirs |= {layout.state, layout.data} | {source.parent for source, _ in state.bind_mounts(layout)}
    return dirs


def remove_stale_temp_files(layout: Layout) -> None:
    """Drop the temp files of writes a crash interrupted (their targets are intact)."""
    for directory in sorted(written_dirs(layout)):
        if layout.symlink_in(directory):
            continue
        try:
            fsutil.remove_stale_temp_files(directory)
        except OSError as exc:  # e.g. a read-only boot partition: the writes there fail and say so
            log.warning("%s: stale temp files not removed: %s", directory, exc.strerror)


def _refusal(layout: Layout, change: Change) -> str | None:
    """Why a change must not be made: its directory is reached through a symbolic link."""
    link = layout.symlink_in(layout.path(change.path).parent)
    if link is None:
        return None
    return f"{change.path}: not changed: {layout.device_path(link)} is a symbolic link; hostd does not write through it"


def run(ctx: Context, steps: Iterable[Step] = ALL_STEPS, *, apply: bool, clean: bool = True) -> list[StepResult]:
    """Plan each step, and with ``apply`` make its changes; ``clean``: drop stale temp files first
    (a caller running the steps one at a time does that once, not once per step)."""
    if apply and clean:
        remove_stale_temp_files(ctx.layout)
    results = []
    for step in steps:
        started = time.monotonic()
        result = StepResult(step.NAME, "ok")
        try:
            plan = step.plan(ctx)
            result.problems, result.report = plan.problems, plan.report
            refused = False
            with fsutil.batch():  # one flush for all the step's writes (a thousand profiles)
                for change in plan.changes:
                    if change.action is None:
                        result.pending.append(change)
                    elif refusal := _refusal(ctx.layout, change):
                        result.problems.append(refusal)
                        refused = True
                    elif apply:
                        change.action()
                        result.changes.append(change)
                    else:
                        result.changes.append(change)
            if result.changes:
                result.status = "changed" if apply else "planned"
            if refused or plan.failed:
                result.status = "failed"
        except OSError as exc:  # the device's state (read-only, full, a directory in the way): no bug
            log.error("step %s failed: %s", step.NAME, exc)
            result.status = "failed"
            result.problems.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # one step's failure must not stop the others
            log.exception("step %s failed", step.NAME)
            result.status = "failed"
            result.problems.append(f"{type(exc).__name__}: {exc}")
        result.duration = time.monotonic() - started
        result.finished_at = time.time()
        results.append(result)
    return results


def apply_loaded(
    loaded: config_model.LoadedConfig, ctx: Context, steps: Iterable[Step] = ALL_STEPS
) -> list[StepResult]:
    """Apply, then keep config.json as last-known-good when it was the config applied."""
    results = run(ctx, steps, apply=True)
    keep_last_known_good(loaded, ctx)
    return results


def keep_last_known_good(loaded: config_model.LoadedConfig, ctx: Context) -> None:
    """Save config.json on the state partition once it has been applied (nothing written if unchanged)."""
    if loaded.source == "config.json":
        if link := ctx.layout.symlink_in(ctx.layout.last_known_good.parent):
            log.warning("last-known-good config not saved: %s is a symbolic link", link)
            return
        try:
            raw = loaded.raw
            if loaded.config.uuid_generated or raw is None:
                raw = ctx.layout.config_json.read_bytes()  # now holds the generated uuid
                config_model.parse(raw, ctx.layout.config_json)
            config_model.save_last_known_good(ctx.layout, raw)
        except (OSError, config_model.ConfigError) as exc:
            log.warning("last-known-good config not saved: %s", exc)
