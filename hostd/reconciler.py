"""The reconciler: from config.json (or a kept generation) to the device, step by step.

It decides what to run (every step, the steps whose keys changed, or the steps a service event
names), runs each step's file work in a worker thread and then its live effect, and puts a
change that can cut the device off on trial (``hostd.transaction``): kept once it passes,
otherwise the last-known-good generation is restored.  config.json is never rewritten here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hostd import config as config_model
from hostd import engine, generations, keys
from hostd.bus import errors
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, STEPS_BY_NAME
from hostd.steps.base import Context, Facts, Outcome, Step, StepResult, StepStatus, live_effect
from hostd.transaction import Rollback, Transaction, TransactionState, Verdict

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.probe import ProbeSettings

log = logging.getLogger("hostd.reconciler")

# At boot (before io.hostd1 is exported: nobody watches the steps go by) a step's live effect
# runs while the next steps write their files, each effect on its own service, and READY=1 waits
# for all of them.  These are awaited at once: the later steps write through the state step's
# bind mounts.  At runtime every effect is awaited in turn, as observers expect.
AWAITED_AT_BOOT = frozenset({"state"})

Reconciled = Callable[[list[StepResult], str], None]


@dataclass(frozen=True)
class Applied:
    """What the device runs: a config, read from a boot partition (or a restored generation)."""

    config: config_model.Config
    layout: Layout
    inputs: generations.Inputs | None  # None: defaults, no generation

    @property
    def id(self) -> str:
        return self.inputs.id if self.inputs is not None else ""


class Reconciler:
    def __init__(
        self,
        layout: Layout,
        services: Services,
        *,
        probe_resolver: tuple[str, int],
        publish: Callable[[], None],
        reconciled: Reconciled,
    ) -> None:
        self.layout = layout
        self.services = services
        self.probe_resolver = probe_resolver
        self.store = generations.GenerationStore(layout)
        self.transaction = Transaction()
        self.lock = asyncio.Lock()
        self.at_boot = True  # until io.hostd1 is exported
        self.loaded: config_model.LoadedConfig | None = None
        self.config_error = ""
        self.applied: Applied | None = None
        self.not_applied = ""  # why config.json is not what the device runs
        self.results: dict[str, StepResult] = {}
        # Per step, what its services were last given or reported (the API shows these).
        self.records: dict[str, object] = {}
        self._publish = publish
        self._reconciled = reconciled

    @property
    def applied_id(self) -> str:
        return self.applied.id if self.applied is not None else ""

    def facts(self) -> Facts:
        nm = self.services.networkmanager
        return Facts(network_dns_servers=tuple(nm.dns_servers) if nm.attached else ())

    def ordered_results(self) -> list[StepResult]:
        return [self.results[step.NAME] for step in ALL_STEPS if step.NAME in self.results]

    async def reconcile(self, *, full: bool = False) -> list[StepResult]:
        """Re-read config.json and apply what changed (everything when ``full``)."""
        async with self.lock:
            return await self._reconcile(full=full, trial_timeout=None)

    async def rerun(self, names: tuple[str, ...]) -> list[StepResult]:
        """Run the named steps again on what the device runs (a service (re)appeared)."""
        async with self.lock:
            if self.applied is None:
                return []  # the first reconcile is still to come, and covers it
            ctx = Context(self.applied.config, self.applied.layout, self.facts())
            return await self._run_steps(ctx, tuple(STEPS_BY_NAME[name] for name in names), "re-applied")

    async def try_locked(self, timeout: float) -> None:
        """Apply config.json on trial, kept only if confirmed within ``timeout``; the caller holds
        the lock (it has just written config.json)."""
        await self._reconcile(full=False, trial_timeout=timeout)

    async def _reconcile(self, *, full: bool, trial_timeout: float | None) -> list[StepResult]:
        trial = trial_timeout is not None
        loaded = await asyncio.to_thread(config_model.load, self.layout)
        self.loaded = loaded
        self.config_error = loaded.problems
        for problem in (*loaded.held_back, *loaded.adjusted):
            log.warning("%s: %s", loaded.path, problem)
        if loaded.error is not None:
            log.error("%s", loaded.error)
            if self.applied is not None:
                # At runtime an unusable config changes nothing; the device keeps what it runs.
                self._publish()
                return []
            good = self.store.good()
            if good is not None:  # at boot: the last generation known to work
                return await self._restore(good, "config.json is unusable")
            return await self._apply(Applied(loaded.config, self.layout, None), ALL_STEPS, "applied")

        assert loaded.raw is not None
        inputs = await asyncio.to_thread(generations.read_inputs, self.layout, loaded.raw)
        candidate = inputs.id
        rejected = self.store.rejected().get(candidate)
        if rejected is not None and not trial:
            self.not_applied = (
                f"config.json (generation {candidate}) is not applied: it cut the device off at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rejected['when']))} ({rejected['reason']}); "
                "change it to try again"
            )
            if self.applied is None and (good := self.store.good()) is not None:
                return await self._restore(good, "the boot partition holds a rejected generation")
            self._publish()
            return []
        self.not_applied = ""
        if candidate == self.applied_id and not full and not trial:
            self._publish()
            return []

        good = self.store.good()
        if self.applied is not None:
            baseline, baseline_config = self.applied.inputs, self.applied.config
        else:
            # At boot: what the good generation ran with (its held-back keys at their fallback values).
            baseline = good and self.store.load(good)
            baseline_config = config_model.last_known_good(self.layout) if good is not None else None
        if self.applied is None or full:
            steps = ALL_STEPS
        else:
            steps = engine.steps_for_keys(config_model.changed_keys(self.applied.config, loaded.config))
        risky = (
            baseline_config is None
            or bool(keys.RISKY & config_model.changed_keys(baseline_config, loaded.config))
            or inputs.files_differ(baseline)
        )
        self.transaction.supersede()
        self.store.save(inputs)
        needs_trial = trial or (risky and good is not None and good != candidate)
        outcome = ("trying" if trial else "probing") if needs_trial else "applied"
        results = await self._apply(Applied(loaded.config, self.layout, inputs), steps, outcome)
        if trial_timeout is not None:
            self.transaction.begin(
                TransactionState.AWAITING_CONFIRM, self._judge(candidate, loaded, confirm_within=trial_timeout)
            )
        elif needs_trial:
            self.transaction.begin(TransactionState.PROBING, self._judge(candidate, loaded))
        else:
            self._promote(candidate, loaded)
        self._publish()
        return results

    async def _apply(self, applied: Applied, steps: tuple[Step, ...], outcome: str) -> list[StepResult]:
        results = await self._run_steps(Context(applied.config, applied.layout, self.facts()), steps, outcome)
        self.applied = applied
        return results

    async def _run_steps(self, ctx: Context, steps: tuple[Step, ...], outcome: str) -> list[StepResult]:
        # The steps' file work (reads, fsyncs) runs in a worker thread: the event loop keeps
        # answering the API and pinging the watchdog meanwhile.
        await asyncio.to_thread(engine.remove_stale_temp_files, ctx.layout)  # once per reconcile
        results = []
        overlapping = []
        for step in steps:
            [result] = await asyncio.to_thread(engine.run, ctx, [step], apply=True, clean=False)
            self.results[step.NAME] = result
            results.append(result)
            if self.at_boot and step.NAME not in AWAITED_AT_BOOT:
                overlapping.append(asyncio.ensure_future(self._live(step, ctx, result)))
            else:
                await self._live(step, ctx, result)
        await asyncio.gather(*overlapping)
        for result in results:
            if result.record is not None:
                self.records[result.name] = result.record
        self._publish()
        self._reconciled(results, outcome)
        return results

    async def _live(self, step: Step, ctx: Context, result: StepResult) -> None:
        """The step's live effect, merged into its result; a failure there is the step's problem only."""
        effect = live_effect(step)
        if effect is None or result.status == StepStatus.FAILED:
            return
        started = time.monotonic()
        try:
            outcome = await effect(self.services, ctx, result)
        except errors.BusError as exc:
            outcome = Outcome(problems=[f"live effect not applied: {exc}"])
        except Exception as exc:  # a peer's surprise must never take hostd down
            log.exception("live effect of %s failed", result.name)
            outcome = Outcome(problems=[f"live effect failed: {type(exc).__name__}: {exc}"])
        result.merge(outcome)
        result.duration += time.monotonic() - started

    def _promote(self, candidate: str, loaded: config_model.LoadedConfig) -> None:
        self.store.promote(candidate, config_model.applied_values(loaded.config))

    async def _judge(
        self, candidate: str, loaded: config_model.LoadedConfig, *, confirm_within: float | None = None
    ) -> None:
        """Keep the candidate if it passes (probe, or confirmation within ``confirm_within`` s), else roll back."""
        verdict: Verdict
        if confirm_within is not None:
            verdict = await self.transaction.confirmation(confirm_within)
        else:
            verdict = await self.transaction.probe(
                self.services.networkmanager, self._probe_settings(loaded.config), loaded.config.safe_apply_timeout
            )
        async with self.lock:
            if self.applied_id != candidate:
                return  # superseded while being judged
            if verdict.passed:
                how = "confirmation" if confirm_within is not None else "probe"
                log.info("generation %s passed its %s: kept", candidate, how)
                self.transaction.end()
                self._promote(candidate, loaded)
                self._publish()
                self._reconciled([], "kept")
                return
            good = self.store.good()
            evidence = "; ".join(verdict.evidence)
            record = self.store.reject(candidate, verdict.reason, list(verdict.evidence))
            self.transaction.last_rollback = Rollback(record["when"], candidate, verdict.reason, evidence)
            log.error("generation %s rejected: %s; %s; restoring %s", candidate, verdict.reason, evidence, good)
            self.not_applied = f"config.json (generation {candidate}) was rolled back: {verdict.reason}"
            if good is not None:
                await self._restore(good, verdict.reason)
            self.transaction.end()  # the trial ends once the good generation is back
            self._publish()

    async def _restore(self, good: str, why: str) -> list[StepResult]:
        layout = self.store.layout_of(good)
        restored = config_model.load(layout)
        log.warning("restoring last-known-good generation %s: %s", good, why)
        results = await self._apply(Applied(restored.config, layout, self.store.load(good)), ALL_STEPS, "rolled-back")
        self._publish()
        return results

    def _probe_settings(self, config: config_model.Config) -> ProbeSettings:
        from hostd import probe

        return probe.ProbeSettings(config.probe_name, self.probe_resolver, config.connectivity_uri)
