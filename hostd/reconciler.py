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
from typing import TYPE_CHECKING, Any, TypeVar

from hostd import config as config_model
from hostd import engine, fsutil, generations, keys
from hostd.bus import errors
from hostd.layout import Layout
from hostd.record import Record
from hostd.steps import ALL_STEPS, STEPS_BY_NAME, state
from hostd.steps.base import Context, Facts, Outcome, StepResult, StepStatus, live_effect
from hostd.transaction import (
    MAX_RETRIES,
    NO_RETRY,
    Retry,
    Rollback,
    Transaction,
    TransactionState,
    TrialRecord,
    Verdict,
)

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.probe import ProbeSettings
    from hostd.steps.base import Step

log = logging.getLogger("hostd.reconciler")

# At boot (before io.hostd1 is exported: nobody watches the steps go by) a step's live effect
# runs while the next steps write their files, each effect on its own service, and READY=1 waits
# for all of them.  Two orders hold: the later steps write through the state partition's bind
# mounts, static units in place before hostd starts (After=local-fs.target), so the state step's
# effect (mounts made live) is awaited first only when it found one of those missing; and these
# steps' effects wait for it: journald's storage is set once the journal's own mount (the data
# partition's, hostd's) is made.  At runtime every effect is awaited in turn, as observers expect.
AFTER_MOUNTS_AT_BOOT = frozenset({"logging"})

T = TypeVar("T")
Reconciled = Callable[[list[StepResult], str], None]
RetryReported = Callable[[str, int, int, str], None]  # generation, attempt, of, outcome
UPLINK_POLL_SECONDS = 5.0  # while a deferred change waits for a healthy uplink


class Applied(Record):
    """What the device runs: a config, read from a boot partition (or a restored generation)."""

    __slots__ = ("config", "inputs", "layout")

    def __init__(self, config: config_model.Config, layout: Layout, inputs: generations.Inputs | None) -> None:
        self.config = config
        self.layout = layout
        self.inputs = inputs  # None: defaults, no generation

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
        self._trial_file = layout.trial_record
        self.retry = NO_RETRY
        self.retry_reported: RetryReported = lambda generation, attempt, of, outcome: None
        self._retrying: asyncio.Task[None] | None = None
        self._uplink_before: tuple[str, ...] = ()  # the uplink's failures before the change on trial

    @property
    def applied_id(self) -> str:
        return self.applied.id if self.applied is not None else ""

    def current_config(self) -> config_model.Config:
        """The configuration the device runs (defaults before the first reconcile)."""
        return self.applied.config if self.applied is not None else config_model.Config()

    def facts(self) -> Facts:
        nm = self.services.networkmanager
        if not nm.attached:
            return Facts()
        return Facts(network_dns_servers=tuple(nm.dns_servers), network_ntp_servers=nm.ntp_servers)

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

    def keep_generation_ahead(self) -> None:
        """While the first reconcile waits for the network-inputs stage: config.json's generation
        onto the state partition (a first boot, a changed config.json), which that reconcile then
        finds kept, so that its files and fsyncs are off READY's path.  Only hostd's own directory
        is written, which the stage does not write; what the reconcile decides is unchanged (an
        unusable or rejected config.json is left to it, and a generation saved ahead that it does
        not apply is pruned as any other)."""
        loaded = config_model.load(self.layout)
        if loaded.error is not None or loaded.raw is None:
            return
        inputs = generations.read_inputs(self.layout, loaded.raw)
        if inputs.id not in self.store.rejected():
            self.store.save(inputs)

    async def try_locked(self, timeout: float) -> None:
        """Apply config.json on trial, kept only if confirmed within ``timeout``; the caller holds
        the lock (it has just written config.json)."""
        await self._reconcile(full=False, trial_timeout=timeout)

    async def _reconcile(self, *, full: bool, trial_timeout: float | None) -> list[StepResult]:
        trial = trial_timeout is not None
        loaded = await self._file_work(config_model.load, self.layout)
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
            boot = generations.boot_choice(None, (), self.store.good())
            if boot:  # at boot: the last generation known to work
                return await self._restore(boot, "config.json is unusable")
            return await self._apply(Applied(loaded.config, self.layout, None), ALL_STEPS, "applied")

        assert loaded.raw is not None
        inputs = await self._file_work(generations.read_inputs, self.layout, loaded.raw)
        candidate = inputs.id
        interrupted = self.applied is None and await self._resume_interrupted_trial(candidate)
        if self.retry.generation and self.retry.generation != candidate:
            self._drop_retry()  # the boot partition moved on: the new content is judged on its own
        rejected = self.store.rejected().get(candidate)
        if rejected is not None and not trial:
            self.not_applied = (
                f"config.json (generation {candidate}) is not applied: rejected at "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rejected['when']))} ({rejected['reason']}); "
                "change it to try again"
            )
            boot = generations.boot_choice(candidate, self.store.rejected(), self.store.good())
            if self.applied is None and boot is not None:
                return await self._restore(boot, "the boot partition holds a rejected generation")
            self._publish()
            return []
        if self._retrying is not None and self.retry.generation == candidate and not trial:
            self._publish()  # not blamed, waiting for its retry: not before its backoff and a healthy uplink
            return []
        self.not_applied = ""
        if candidate == self.applied_id and not full and not trial:
            self._publish()
            return []

        good = self.store.good()
        if self.applied is None or full:
            steps = ALL_STEPS
        else:
            steps = engine.steps_for_keys(config_model.changed_keys(self.applied.config, loaded.config))
        # A change on top of one still on trial is judged with it: the earlier one is not kept unprobed.
        on_trial = self.transaction.state != TransactionState.NONE
        # Only a generation other than the good one can be put on trial: whether it is risky is not
        # asked of the good one itself (a converged boot, which then reads no second config).
        needs_trial = trial or (
            good is not None and good != candidate and (interrupted or on_trial or self._risky(good, inputs, loaded))
        )
        self.transaction.supersede()
        self.store.save(inputs)
        outcome = ("trying" if trial else "probing") if needs_trial else "applied"
        if needs_trial:
            await self._open_trial(candidate, good or "", loaded, trial_timeout, carry_on=on_trial or interrupted)
        results = await self._apply(Applied(loaded.config, self.layout, inputs), steps, outcome)
        if trial_timeout is not None:
            self.transaction.begin(
                TransactionState.AWAITING_CONFIRM, self._judge(candidate, loaded, confirm_within=trial_timeout)
            )
        elif needs_trial:
            self.transaction.begin(TransactionState.PROBING, self._judge(candidate, loaded))
        else:
            self._promote(candidate, loaded)
            await self.transaction.release_checkpoint(self.services.networkmanager, roll_back=False)
            TrialRecord.clear(self._trial_file)
        self._publish()
        return results

    def _risky(self, good: str, inputs: generations.Inputs, loaded: config_model.LoadedConfig) -> bool:
        """The change could cut the device off: a risky key or an imported file differs from what
        the device runs (at boot: what the good generation ran with, its held-back keys at their
        fallback values)."""
        if self.applied is not None:
            baseline, baseline_config = self.applied.inputs, self.applied.config
        else:
            baseline, baseline_config = self.store.load(good), config_model.last_known_good(self.layout)
        return (
            baseline_config is None
            or bool(keys.RISKY & config_model.changed_keys(baseline_config, loaded.config))
            or inputs.files_differ(baseline)
        )

    async def _resume_interrupted_trial(self, candidate: str) -> bool:
        """At start: a trial recorded but never judged (power cut, reboot, crash inside its window).
        Try's change is rolled back (it was never confirmed); an automatic one is judged afresh
        (True).  Never kept silently.  NetworkManager's checkpoints left by it are rolled back."""
        record = await self._file_work(TrialRecord.read, self._trial_file)
        await self.transaction.clear_stale_checkpoints(self.services.networkmanager, roll_back=record is not None)
        if record is None:
            return False
        TrialRecord.clear(self._trial_file)
        began = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.began))
        if record.candidate != candidate:
            log.warning(
                "the trial of generation %s (began %s) was interrupted; config.json has moved on",
                record.candidate,
                began,
            )
            return False
        if record.kind == "try":
            reason = f"hostd stopped inside the confirm window (began {began}): not confirmed"
            rejected = self.store.reject(candidate, reason, [])
            self.transaction.last_rollback = Rollback(rejected["when"], candidate, reason, "")
            log.error("generation %s rejected: %s", candidate, reason)
            return False
        log.warning("generation %s was on trial when hostd stopped (began %s): judged afresh", candidate, began)
        return True

    async def _open_trial(
        self,
        candidate: str,
        good: str,
        loaded: config_model.LoadedConfig,
        trial_timeout: float | None,
        *,
        carry_on: bool,
    ) -> None:
        """Before the change: record the trial, probe the uplink as it is (so that a failure it
        already had is not blamed on the change), take NetworkManager's checkpoint."""
        kind = "probe" if trial_timeout is None else "try"
        await self._file_work(TrialRecord(candidate, kind, good, time.time()).write, self._trial_file)
        nm = self.services.networkmanager
        if trial_timeout is not None:
            self._uplink_before = ()
        elif not carry_on:  # on top of a change on trial, the uplink before that one is what counts
            from hostd import probe

            self._uplink_before = tuple(await probe.check_once(nm, self._probe_settings(loaded.config)))
            if self._uplink_before:
                log.warning(
                    "the uplink fails before generation %s is applied: %s", candidate, "; ".join(self._uplink_before)
                )
        window = trial_timeout if trial_timeout is not None else loaded.config.safe_apply_timeout
        written_at_boot = await self._file_work(fsutil.read_bytes, self.layout.network_inputs_generation)
        if self.applied is None and written_at_boot == f"{candidate}\n".encode():
            # At boot the change is in place already (hostd.prepare wrote the network's inputs
            # before NetworkManager started): a checkpoint now would hold the changed state and its
            # rollback bring the change back.  The good generation's files, restored through the
            # steps, undo it.
            return
        await self.transaction.take_checkpoint(nm, window)

    async def _apply(self, applied: Applied, steps: tuple[Step, ...], outcome: str) -> list[StepResult]:
        results = await self._run_steps(Context(applied.config, applied.layout, self.facts()), steps, outcome)
        self.applied = applied
        return results

    async def _file_work(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """File work (reads, fsyncs): in a worker thread, so that the event loop keeps answering the
        API and pinging the watchdog meanwhile.  At boot, before the API is exported, on the loop
        itself: nothing waits on it yet, and each hop to a thread and back wakes two threads (more
        than the work itself on a converged device, and much more on a loaded one)."""
        if self.at_boot:
            return function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    async def _run_steps(self, ctx: Context, steps: tuple[Step, ...], outcome: str) -> list[StepResult]:
        await self._file_work(engine.remove_stale_temp_files, ctx.layout)  # once per reconcile
        results = []
        overlapping = []
        mounts_made: asyncio.Future[None] | None = None  # the state step's effect, at boot
        for step in steps:
            [result] = await self._file_work(engine.run, ctx, [step], apply=True, clean=False)
            self.results[step.NAME] = result
            results.append(result)
            if not self.at_boot:
                await self._live(step, ctx, result)
                continue
            after = mounts_made if step.NAME in AFTER_MOUNTS_AT_BOOT else None
            effect = asyncio.ensure_future(self._live(step, ctx, result, after=after))
            overlapping.append(effect)
            if step.NAME == state.NAME:
                mounts_made = effect
                if any(c.kind == "mount" and c.path not in state.DATA_BIND_PATHS for c in result.pending):
                    await effect  # a state partition mount missing: the next steps write through it
            await asyncio.sleep(0)  # the effect sends its first call before the next step's files
        await asyncio.gather(*overlapping)
        for result in results:
            if result.record is not None:
                self.records[result.name] = result.record
        self._publish()
        self._reconciled(results, outcome)
        return results

    async def _live(
        self, step: Step, ctx: Context, result: StepResult, *, after: asyncio.Future[None] | None = None
    ) -> None:
        """The step's live effect (once ``after`` is done), merged into its result; a failure there
        is the step's problem only."""
        effect = live_effect(step)
        if effect is None or result.status == StepStatus.FAILED:
            return
        if after is not None:
            await asyncio.wait({after})
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
        nm = self.services.networkmanager
        window = confirm_within if confirm_within is not None else loaded.config.safe_apply_timeout
        holding = asyncio.ensure_future(self.transaction.hold_checkpoint(nm, time.monotonic() + window))
        verdict: Verdict
        try:
            if confirm_within is not None:
                verdict = await self.transaction.confirmation(confirm_within)
            else:
                verdict = await self.transaction.probe(nm, self._probe_settings(loaded.config), window)
        finally:
            holding.cancel()
        async with self.lock:
            if self.applied_id != candidate:
                return  # superseded while being judged
            retry = self.retry if self.retry.generation == candidate else NO_RETRY
            if verdict.passed:
                how = "confirmation" if confirm_within is not None else "probe"
                log.info("generation %s passed its %s: kept", candidate, how)
                await self.transaction.release_checkpoint(nm, roll_back=False)
                self.transaction.end()
                self._promote(candidate, loaded)
                TrialRecord.clear(self._trial_file)
                if retry.generation:
                    self._drop_retry()
                    self.retry_reported(candidate, retry.attempts, MAX_RETRIES, "kept")
                self._publish()
                self._reconciled([], "kept")
                return
            good = self.store.good()
            uplink_before = self._uplink_before if confirm_within is None else ()
            deferred = bool(uplink_before) and retry.attempts < MAX_RETRIES
            reason, evidence = verdict.reason, list(verdict.evidence)
            if uplink_before:
                reason += "; the uplink was failing before the change (" + "; ".join(uplink_before) + ")"
                reason += ": not blamed on it" if deferred else f", and at each of {MAX_RETRIES} retries"
            if deferred:
                when = time.time()
                self.retry = Retry(
                    candidate, retry.attempts, when + window * 2**retry.attempts, "; ".join(uplink_before)
                )
                self.not_applied = (
                    f"config.json (generation {candidate}) was rolled back: {reason}; "
                    f"retry {retry.attempts + 1} of {MAX_RETRIES} once the uplink is healthy"
                )
                log.warning("generation %s rolled back, not rejected: %s", candidate, reason)
            else:
                when = self.store.reject(candidate, reason, evidence)["when"]
                self.not_applied = f"config.json (generation {candidate}) was rolled back: {reason}"
                log.error("generation %s rejected: %s; %s; restoring %s", candidate, reason, "; ".join(evidence), good)
            if good is not None:
                await self._restore(good, reason)
            # Files first (outer layer), then NetworkManager's devices to exactly what they were.
            rolled_back = await self.transaction.release_checkpoint(nm, roll_back=True)
            self.transaction.last_rollback = Rollback(
                when, candidate, reason, "; ".join(filter(None, [*evidence, rolled_back]))
            )
            TrialRecord.clear(self._trial_file)
            self.transaction.end()  # the trial ends once the good generation is back
            if retry.generation and not deferred:
                self._drop_retry()
            if retry.generation or deferred:
                self.retry_reported(candidate, retry.attempts, MAX_RETRIES, "deferred" if deferred else "rejected")
            if deferred:
                self._retrying = asyncio.ensure_future(self._retry_when_healthy(candidate))
            self._publish()

    async def _retry_when_healthy(self, candidate: str) -> None:
        """Try a change that was not blamed again, after its backoff and once the uplink is healthy."""
        from hostd import probe

        await asyncio.sleep(max(0.0, self.retry.next_at - time.time()))
        while self.applied is not None and await probe.check_once(
            self.services.networkmanager, self._probe_settings(self.applied.config)
        ):
            await asyncio.sleep(UPLINK_POLL_SECONDS)
        async with self.lock:
            if self.retry.generation != candidate:
                return
            self.retry = Retry(candidate, self.retry.attempts + 1, 0.0, self.retry.reason)
            log.info(
                "generation %s: retry %d of %d, the uplink is healthy", candidate, self.retry.attempts, MAX_RETRIES
            )
            self._retrying = None
            await self._reconcile(full=False, trial_timeout=None)

    def _drop_retry(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            self._retrying = None
        self.retry = NO_RETRY

    async def _restore(self, good: str, why: str) -> list[StepResult]:
        layout = self.store.layout_of(good)
        restored = config_model.load(layout)
        log.warning("restoring last-known-good generation %s: %s", good, why)
        results = await self._apply(Applied(restored.config, layout, self.store.load(good)), ALL_STEPS, "rolled-back")
        self._publish()
        return results

    def _probe_settings(self, config: config_model.Config) -> ProbeSettings:
        from hostd import probe

        ca_pem = keys.root_ca_pem(config.root_ca) if config.root_ca else ""
        return probe.ProbeSettings(config.probe_name, self.probe_resolver, config.connectivity_uri, ca_pem)
