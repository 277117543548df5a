"""Run the setup steps: plan, or apply, each one isolated from the others' failures."""

from __future__ import annotations

import os
import time

from hostd import config as config_model
from hostd import fsutil, generations
from hostd.layout import Layout
from hostd.log import Logger
from hostd.steps.base import Change, Context, StepResult, StepStatus

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Iterable

    from hostd.steps.base import Step

log = Logger("hostd.engine")


def steps_for_keys(keys: Iterable[str]) -> tuple[Step, ...]:
    """The steps to run when these config.json keys changed; file-driven steps always run."""
    from hostd.steps import ALL_STEPS

    changed = frozenset(keys)
    return tuple(step for step in ALL_STEPS if not step.KEYS or step.KEYS & changed)


def written_dirs(layout: Layout) -> set[str]:
    """Every directory the steps write files into: where a crash may have left a temp file."""
    from hostd.steps import state

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
        layout.redsocks_conf,
    )
    dirs = {os.path.dirname(path) for path in files} | {layout.nm_connections, layout.nm_dispatcher, layout.udev_rules}
    dirs |= {layout.boot_proxy, layout.boot_connections}  # the API's writes (SetProxy, connection methods)
    dirs |= {layout.state, layout.data} | {os.path.dirname(source) for source, _ in state.bind_mounts(layout)}
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
    link = layout.symlink_in(os.path.dirname(layout.path(change.path)))
    if link is None:
        return None
    return f"{change.path}: not changed: {layout.device_path(link)} is a symbolic link; hostd does not write through it"


def run(ctx: Context, steps: Iterable[Step] | None = None, *, apply: bool, clean: bool = True) -> list[StepResult]:
    """Plan each step (every step: None), and with ``apply`` make its changes; ``clean``: drop
    stale temp files first (a caller running the steps one at a time does that once, not once per step)."""
    if steps is None:
        from hostd.steps import ALL_STEPS as steps
    if apply and clean:
        remove_stale_temp_files(ctx.layout)
    results = []
    for step in steps:
        started = time.monotonic()
        result = StepResult(step.NAME, StepStatus.OK)
        try:
            plan = step.plan(ctx)
            result.problems, result.report, result.record = plan.problems, plan.report, plan.record
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
                result.status = StepStatus.CHANGED if apply else StepStatus.PLANNED
            if refused or plan.failed:
                result.status = StepStatus.FAILED
        except OSError as exc:  # the device's state (read-only, full, a directory in the way): no bug
            log.error("step %s failed: %s", step.NAME, exc)
            result.status = StepStatus.FAILED
            result.problems.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # one step's failure must not stop the others
            log.exception("step %s failed", step.NAME)
            result.status = StepStatus.FAILED
            result.problems.append(f"{type(exc).__name__}: {exc}")
        result.duration = time.monotonic() - started
        result.finished_at = time.time()
        results.append(result)
    return results


def apply_loaded(
    loaded: config_model.LoadedConfig, ctx: Context, steps: Iterable[Step] | None = None
) -> list[StepResult]:
    """Apply, then keep what was applied as the last-known-good generation when it came from config.json."""
    results = run(ctx, steps, apply=True)
    keep_last_known_good(loaded, ctx)
    return results


def keep_last_known_good(loaded: config_model.LoadedConfig, ctx: Context) -> None:
    """Keep config.json, once applied, as the good generation with the values its keys ran with
    (nothing written if unchanged).  Offline there is no probe: what was applied is kept."""
    if loaded.source == "config.json":
        if link := ctx.layout.symlink_in(ctx.layout.hostd_state):
            log.warning("last-known-good config not saved: %s is a symbolic link", link)
            return
        try:
            raw = loaded.raw
            if loaded.config.uuid_generated or raw is None:
                with open(ctx.layout.config_json, "rb") as file:  # now holds the generated uuid
                    raw = file.read()
            store = generations.GenerationStore(ctx.layout)
            generation = store.save(generations.read_inputs(ctx.layout, raw))
            store.promote(generation, config_model.applied_values(loaded.config))
        except OSError as exc:
            log.warning("last-known-good config not saved: %s", exc)
