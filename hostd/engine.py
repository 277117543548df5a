"""Run the setup steps: plan, or apply, each one isolated from the others' failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hostd import config as config_model
from hostd.steps import ALL_STEPS
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


def run(ctx: Context, steps: Iterable[Step] = ALL_STEPS, *, apply: bool) -> list[StepResult]:
    results = []
    for step in steps:
        started = time.monotonic()
        result = StepResult(step.NAME, "ok")
        try:
            plan = step.plan(ctx)
            result.problems, result.report = plan.problems, plan.report
            for change in plan.changes:
                if change.action is None:
                    result.pending.append(change)
                elif apply:
                    change.action()
                    result.changes.append(change)
                else:
                    result.changes.append(change)
            if result.changes:
                result.status = "changed" if apply else "planned"
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
        try:
            raw = loaded.raw
            if loaded.config.uuid_generated or raw is None:
                raw = ctx.layout.config_json.read_bytes()  # now holds the generated uuid
                config_model.parse(raw, ctx.layout.config_json)
            config_model.save_last_known_good(ctx.layout, raw)
        except (OSError, config_model.ConfigError) as exc:
            log.warning("last-known-good config not saved: %s", exc)
