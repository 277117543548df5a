"""hostd, the daemon: config -> steps -> API -> READY=1, then reconcile on every change.

Start: load config.json, run every step (each followed by its live effect through the
services' own APIs), export io.hostd1, tell systemd READY=1.  Then: ping the watchdog from
the event loop, watch config.json and the boot partition's drop-in directories, re-apply a
service's steps when it (re)appears, and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hostd import __version__, engine, fsutil, generations, keys, notify
from hostd import config as config_model
from hostd.api import Api, ApiError, InvalidArgument
from hostd.engine import StepResult
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, STEPS_BY_NAME, dns
from hostd.steps.base import Context

if TYPE_CHECKING:
    import argparse

    from hostd import probe

log = logging.getLogger("hostd")

CONFIG_POLL_SECONDS = 1.0
# At boot (before io.hostd1 is exported: nobody watches the steps go by) a step's live effect
# runs while the next steps write their files, each effect on its own service, and READY=1 waits
# for all of them.  These are awaited at once: the later steps write through the state step's
# bind mounts.  At runtime every effect is awaited in turn, as observers expect.
AWAITED_EFFECTS = frozenset({"state"})
DEFAULT_PROBE_RESOLVER = ("127.0.0.2", 53)  # dnsmasq, as balenaOS runs it


def _stat_stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat(follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Daemon:
    def __init__(
        self,
        layout: Layout,
        bus_address: str | None,
        *,
        admin_gids: frozenset[int] = frozenset(),
        poll_interval: float = CONFIG_POLL_SECONDS,
        probe_resolver: tuple[str, int] = DEFAULT_PROBE_RESOLVER,
    ) -> None:
        self.layout = layout
        self.probe_resolver = probe_resolver
        self.store = generations.GenerationStore(layout)
        self.applied_layout = layout  # the boot partition, or a restored generation
        self.applied_inputs: generations.Inputs | None = None
        self.applied_id = ""
        self.not_applied = ""  # why config.json is not what the device runs
        self.transaction = ""  # "", "probing" or "awaiting-confirm"
        self.last_rollback: tuple[float, str, str, str] = (0.0, "", "", "")
        self._trial_task: asyncio.Task[None] | None = None
        self._confirmed = asyncio.Event()
        self.bus_address = bus_address
        self.admin_gids = admin_gids
        self.poll_interval = poll_interval
        self.loaded: config_model.LoadedConfig | None = None
        self.applied: config_model.Config | None = None  # the config the device now runs
        self.results: dict[str, StepResult] = {}
        self.config_error = ""
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._watch_stamp: tuple[Any, ...] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.api: Api | None = None
        self.effects: Any = None  # hostd.effects.Effects, imported with the bus

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus

        from hostd.bus.services import Services
        from hostd.effects import Effects

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)

        notify.notify("STATUS=Connecting to the system bus")
        if self.bus_address:
            bus = await MessageBus(bus_address=self.bus_address).connect()
        else:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        services = Services(bus)
        self.effects = Effects(services, self.layout, self._on_service_event)
        await services.start()

        notify.notify("STATUS=Applying config.json")
        self._watch_stamp = self._stamp()
        await self.reconcile(full=True)

        self.api = Api(bus, self, admin_gids=self.admin_gids)
        self.api.export()
        self._publish()
        await self.api.request_name()
        notify.notify("READY=1\nSTATUS=" + self._status_line())
        log.info("ready: %s", self._status_line())

        self._spawn(self._watch_config())
        interval = notify.watchdog_interval()
        if interval:
            self._spawn(self._watchdog(interval))
        # Adapters do not reconnect a lost bus: exit, and systemd starts hostd again.
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(bus.wait_for_disconnect())
        await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        if lost.done():
            log.error("lost the system bus; exiting so that systemd restarts hostd")
        for waiter in (stop, lost):
            waiter.cancel()

        notify.notify("STOPPING=1")
        for task in list(self._tasks):
            task.cancel()
        if bus.connected:
            await services.close()
            bus.disconnect()
        return 1 if lost.done() and not lost.cancelled() else 0

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the event loop itself: a loop that is stuck stops the pings and systemd
        # kills and restarts hostd.
        while True:
            notify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # -- reconcile ------------------------------------------------------------------------------

    def _stamp(self) -> tuple[Any, ...]:
        """What changes when config.json or a file in a boot drop-in directory changes.  Every entry
        is stat'ed: a file edited in place changes its own mtime, not its directory's."""
        stamp: list[Any] = [_stat_stamp(self.layout.config_json)]
        for directory in (self.layout.boot_connections, self.layout.boot_dispatcher):
            try:
                with os.scandir(directory) as entries:
                    stamp.append(sorted((entry.name, _stat_stamp(Path(entry.path))) for entry in entries))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            stamp = self._stamp()
            if stamp != self._watch_stamp:
                self._watch_stamp = stamp
                log.info("config.json or a boot-partition drop-in changed: reconciling")
                await self.reconcile()

    async def reconcile(self, *, full: bool = False, only: tuple[str, ...] | None = None) -> list[StepResult]:
        """Re-read config.json and apply what changed (everything when ``full``, or the named steps).

        A change that affects connectivity is a transaction: applied, then kept only once the
        probe passes (or ``Confirm()`` comes, for ``Try()``); otherwise the last-known-good
        generation is restored.  config.json itself is never rewritten by a rollback.
        """
        async with self._lock:
            if only is not None:
                if self.applied is None:
                    return []
                return await self._run_steps(
                    Context(self.applied, self.applied_layout, self.effects.facts()),
                    tuple(STEPS_BY_NAME[name] for name in only),
                    "re-applied",
                )
            return await self._reconcile(full=full, trial=None)

    async def _reconcile(self, *, full: bool, trial: str | None, trial_timeout: float = 0) -> list[StepResult]:
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
            return await self._apply(loaded.config, self.layout, ALL_STEPS, None, "applied")

        assert loaded.raw is not None
        inputs = await asyncio.to_thread(generations.read_inputs, self.layout, loaded.raw)
        candidate = inputs.id
        rejected = self.store.rejected().get(candidate)
        if rejected is not None and trial is None:
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
        if candidate == self.applied_id and not full and trial is None:
            self._publish()
            return []

        good = self.store.good()
        baseline = self.applied_inputs if self.applied is not None else (good and self.store.load(good))
        # At boot: what the good generation ran with (its held-back keys at their fallback values).
        baseline_config = self.applied
        if baseline_config is None and good is not None:
            baseline_config = config_model.last_known_good(self.layout)
        if self.applied is None or full:
            steps = ALL_STEPS
        else:
            steps = engine.steps_for_keys(config_model.changed_keys(self.applied, loaded.config))
        risky = (
            baseline_config is None
            or bool(keys.RISKY & config_model.changed_keys(baseline_config, loaded.config))
            or inputs.files_differ(baseline)
        )
        if self._trial_task is not None:
            self._trial_task.cancel()  # superseded: the new candidate is judged against the same good one
            self._trial_task = None
        self.store.save(inputs)
        needs_trial = trial is not None or (risky and good is not None and good != candidate)
        outcome = ("trying" if trial else "probing") if needs_trial else "applied"
        results = await self._apply(loaded.config, self.layout, steps, inputs, outcome)
        if needs_trial:
            self.transaction = "awaiting-confirm" if trial else "probing"
            self._trial_task = asyncio.get_running_loop().create_task(
                self._judge(
                    candidate,
                    loaded,
                    trial_timeout if trial else loaded.config.safe_apply_timeout,
                    confirm=trial is not None,
                )
            )
        else:
            self._promote(candidate, loaded)
        self._publish()
        return results

    async def _apply(
        self,
        config: config_model.Config,
        layout: Layout,
        steps: tuple[Any, ...],
        inputs: generations.Inputs | None,
        outcome: str,
    ) -> list[StepResult]:
        results = await self._run_steps(Context(config, layout, self.effects.facts()), steps, outcome)
        self.applied, self.applied_layout = config, layout
        self.applied_inputs = inputs
        self.applied_id = inputs.id if inputs is not None else ""
        return results

    async def _run_steps(self, ctx: Context, steps: tuple[Any, ...], outcome: str) -> list[StepResult]:
        # The steps' file work (reads, fsyncs) runs in a worker thread: the event loop keeps
        # answering the API and pinging the watchdog meanwhile.
        await asyncio.to_thread(engine.remove_stale_temp_files, ctx.layout)  # once per reconcile
        results = []
        effects = []
        for step in steps:
            [result] = await asyncio.to_thread(engine.run, ctx, [step], apply=True, clean=False)
            self.results[step.NAME] = result
            results.append(result)
            if self.api is None and step.NAME not in AWAITED_EFFECTS:
                effects.append(asyncio.ensure_future(self._effect(ctx, result)))
            else:
                await self._effect(ctx, result)
        await asyncio.gather(*effects)
        self._publish()
        if self.api is not None:
            self.api.emit_reconciled(self._step_tuples(results), outcome)
        notify.notify("STATUS=" + self._status_line())
        return results

    async def _effect(self, ctx: Context, result: StepResult) -> None:
        started = time.monotonic()
        await self.effects.after_step(ctx, result)
        result.duration += time.monotonic() - started

    def _promote(self, candidate: str, loaded: config_model.LoadedConfig) -> None:
        self.store.promote(candidate, config_model.applied_values(loaded.config))

    async def _judge(self, candidate: str, loaded: config_model.LoadedConfig, timeout: float, *, confirm: bool) -> None:
        """Keep the candidate if it passes (probe or confirmation) within ``timeout``, else roll back."""
        if confirm:
            self._confirmed.clear()
            try:
                await asyncio.wait_for(self._confirmed.wait(), timeout)
                passed, reason, evidence = True, "", []
            except TimeoutError:
                passed, reason, evidence = False, f"not confirmed within {timeout:g} s", []
        else:
            from hostd import probe  # only when a change is on trial

            result = await probe.probe(
                self.effects.services.networkmanager, self._probe_settings(loaded.config), timeout
            )
            passed, evidence = result.ok, result.evidence
            reason = f"connectivity probe failed for {result.seconds:.0f} s ({result.attempts} attempts)"
        async with self._lock:
            if self.applied_id != candidate:
                return  # superseded while being judged
            self._trial_task = None
            if passed:
                log.info("generation %s passed its %s: kept", candidate, "confirmation" if confirm else "probe")
                self.transaction = ""
                self._promote(candidate, loaded)
                self._publish()
                if self.api is not None:
                    self.api.emit_reconciled([], "kept")
                return
            good = self.store.good()
            record = self.store.reject(candidate, reason, evidence)
            self.last_rollback = (record["when"], candidate, reason, "; ".join(evidence))
            log.error("generation %s rejected: %s; %s; restoring %s", candidate, reason, "; ".join(evidence), good)
            self.not_applied = f"config.json (generation {candidate}) was rolled back: {reason}"
            if good is not None:
                await self._restore(good, reason)
            self.transaction = ""  # the trial ends once the good generation is back
            self._publish()

    async def _restore(self, good: str, why: str) -> list[StepResult]:
        layout = self.store.layout_of(good)
        restored = config_model.load(layout)
        log.warning("restoring last-known-good generation %s: %s", good, why)
        results = await self._apply(restored.config, layout, ALL_STEPS, self.store.load(good), "rolled-back")
        self._publish()
        return results

    def _probe_settings(self, config: config_model.Config) -> probe.ProbeSettings:
        from hostd import probe

        return probe.ProbeSettings(config.probe_name, self.probe_resolver, config.connectivity_uri)

    async def confirm(self) -> None:
        if self.transaction != "awaiting-confirm":
            raise ApiError("NothingToConfirm", "no change is waiting for confirmation")
        self._confirmed.set()

    async def try_apply(self, config: str, timeout: int) -> None:
        """Apply ``config`` (written as config.json first; "" = config.json as it is), and roll it back
        unless Confirm() comes within ``timeout`` seconds.  Taking the new file here, under the
        lock, means the config.json watcher cannot apply and keep it before the trial starts."""
        if not 5 <= timeout <= 3600:
            raise InvalidArgument(f"timeout {timeout} is outside 5..3600 seconds")
        async with self._lock:
            if config:
                path = self.layout.config_json
                raw = config.encode()
                try:
                    config_model.parse(raw, "the config given to Try")
                except config_model.ConfigError as exc:
                    raise InvalidArgument(str(exc)) from None
                mode = os.stat(path).st_mode & 0o777 if path.exists() else 0o644
                if fsutil.read_bytes(path) != raw:
                    fsutil.atomic_write(path, raw, mode)
                self._watch_stamp = self._stamp()
            loaded, good = config_model.load(self.layout), self.store.good()
            if (
                loaded.raw is not None
                and good is not None
                and self.applied_id == good
                and generations.read_inputs(self.layout, loaded.raw).id == good
            ):
                # Already kept (the config.json watcher probed it first): a trial would have nothing to
                # roll back to, and would record the last-known-good generation as rejected.
                raise ApiError(
                    "NothingToTry", f"config.json (generation {good}) is applied and kept already; nothing to try"
                )
            await self._reconcile(full=False, trial="try", trial_timeout=timeout)

    async def _on_service_event(self, steps: tuple[str, ...]) -> None:
        """A service (re)appeared or its state changed: re-apply the steps that depend on it."""
        if self.applied is None:
            return  # the first reconcile is still to come, and covers it
        if steps:
            await self.reconcile(only=steps)
        else:
            self._publish()

    # -- the API's view ---------------------------------------------------------------------------

    def _status_line(self) -> str:
        failed = [name for name, result in self.results.items() if result.status == "failed"]
        degraded = self.effects.degraded() if self.effects else {}
        parts = [f"{len(self.results)} steps applied"]
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if degraded:
            parts.append("degraded: " + ", ".join(sorted(degraded)))
        if self.config_error:
            parts.append("config.json invalid")
        if self.transaction:
            parts.append(self.transaction)
        if self.not_applied:
            parts.append("config.json not applied")
        return "; ".join(parts)

    @staticmethod
    def _step_tuples(results: Any) -> list[tuple[str, str, str, float, float]]:
        return [(r.name, r.status, r.message, r.finished_at, r.duration) for r in results]

    def _ordered_results(self) -> list[StepResult]:
        return [self.results[step.NAME] for step in ALL_STEPS if step.NAME in self.results]

    def _properties(self) -> dict[str, Any]:
        config = self.applied or config_model.Config()
        ctx = Context(config, self.layout, self.effects.facts())
        live = self.effects.status()
        connections = self.results.get("connections")
        return {
            "Version": __version__,
            "Hostname": live.get("hostname") or config.effective_hostname or "",
            "StaticHostname": config.effective_hostname or "",
            "Variant": "development" if config.development_mode else "production",
            "PersistentLogging": config.persistent_logging,
            "JournalUsage": live.get("journal_usage", 0),
            "DnsServers": list(dns.effective_servers(ctx)),
            "DnsMode": config.dns_mode,
            "NtpServers": list(config.ntp_servers),
            "TimeSynchronized": bool(live.get("time_synchronized", False)),
            "Connections": [
                (entry["name"], entry["status"], entry.get("nm") or entry.get("reason", ""))
                for entry in (connections.report if connections else [])
            ],
            "Modems": [
                (m["path"], m["state"], m["operator"], m["model"], m["signal_quality"], m["sim_present"])
                for m in live.get("modems", [])
            ],
            "ConfigSource": self.loaded.source if self.loaded else "",
            "ConfigError": self.config_error,
            "HeldBack": [
                (entry.pointer, entry.message, entry.fallback)
                for entry in (self.loaded.held_back if self.loaded else ())
            ],
            "Steps": self._step_tuples(self._ordered_results()),
            "Degraded": sorted(self.effects.degraded()),
            "Generation": self.applied_id,
            "GoodGeneration": self.store.good() or "",
            "Transaction": self.transaction,
            "NotApplied": self.not_applied,
            "LastRollback": self.last_rollback,
        }

    def _publish(self) -> None:
        if self.api is not None:
            self.api.update(self._properties())
            self.api.invalidate_describe()

    def describe(self) -> dict[str, Any]:
        props = self._properties()
        live = self.effects.status()
        return {
            "version": props["Version"],
            "hostname": props["Hostname"],
            "staticHostname": props["StaticHostname"],
            "variant": props["Variant"],
            "config": {
                "source": props["ConfigSource"],
                "error": props["ConfigError"],
                "heldBack": [
                    dict(zip(("pointer", "message", "fallback"), entry, strict=True)) for entry in props["HeldBack"]
                ],
                "path": str(self.layout.config_json),
            },
            "logging": {"persistent": props["PersistentLogging"], "journalUsage": props["JournalUsage"]},
            "dns": {"mode": props["DnsMode"], "servers": props["DnsServers"]},
            "time": {
                "ntpServers": props["NtpServers"],
                "synchronized": props["TimeSynchronized"],
                "tracking": live.get("tracking", {}),
            },
            "connections": self.results["connections"].report if "connections" in self.results else [],
            "modems": live.get("modems", []),
            "steps": [result.as_dict() for result in self._ordered_results()],
            "degraded": self.effects.degraded(),
            "mdns": live.get("mdns", {}),
            "generations": {
                "current": props["Generation"],
                "good": props["GoodGeneration"],
                "transaction": props["Transaction"],
                "notApplied": props["NotApplied"],
                "lastRollback": dict(zip(("when", "generation", "reason", "evidence"), self.last_rollback, strict=True))
                if self.last_rollback[1]
                else None,
            },
        }

    def plan(self) -> dict[str, Any]:
        loaded = config_model.load(self.layout)
        if loaded.error is not None:
            raise ApiError("ConfigInvalid", str(loaded.error))
        ctx = Context(loaded.config, self.layout, self.effects.facts())
        return {"steps": [result.as_dict() for result in engine.run(ctx, apply=False)]}

    async def reload(self) -> None:
        await self.reconcile()

    async def set_hostname(self, name: str) -> None:
        folded = name.lower()
        if name and not config_model.is_hostname_label(folded):
            raise InvalidArgument(
                f"{name!r} is not a valid hostname (1-63 of a-z, 0-9 and '-', not starting or ending with '-')"
            )
        await self._set_config_key("hostname", folded)

    async def set_persistent_logging(self, enabled: bool) -> None:
        await self._set_config_key("persistentLogging", bool(enabled))

    async def _set_config_key(self, key: str, value: Any) -> None:
        path = self.layout.config_json
        async with self._lock:
            try:
                raw = path.read_bytes()
                config_model.parse(raw, path)
            except OSError as exc:
                raise ApiError("ConfigUnreadable", f"{path}: cannot be read: {exc.strerror}") from None
            except config_model.ConfigError as exc:
                raise ApiError("ConfigInvalid", f"fix config.json first: {exc}") from None
            new = config_model.with_key_set(raw, key, value)
            if new != raw:
                fsutil.atomic_write(path, new, os.stat(path).st_mode & 0o777)
        self._watch_stamp = self._stamp()
        await self.reconcile()


def admin_group_ids(names: list[str]) -> frozenset[int]:
    gids = set()
    for name in names:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            log.info("admin group %r does not exist; only root may change settings", name)
    return frozenset(gids)


# What build_parser() gives for no arguments, how systemd starts hostd: then no parser is built,
# which would load argparse and, through its help formatter, shutil and the compression modules
# (1 MiB of resident memory for the daemon's whole life).  A unit test holds the two equal.
DEFAULT_ARGS = {
    "root": "/",
    "bus": None,
    "admin_group": ["hostd-admin"],
    "probe_resolver": "127.0.0.2:53",
    "verbose": False,
}


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="hostd", description="Converge the host to config.json and serve io.hostd1.")
    parser.add_argument("--root", default="/", help="device root directory (default /)")
    parser.add_argument("--bus", metavar="ADDRESS", help="D-Bus address (default: the system bus)")
    parser.add_argument(
        "--admin-group",
        action="append",
        default=["hostd-admin"],
        help="group whose members may call mutating methods (besides root)",
    )
    parser.add_argument(
        "--probe-resolver",
        metavar="HOST:PORT",
        default="127.0.0.2:53",
        help="the device's resolver, queried by the connectivity probe (default 127.0.0.2:53)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    import sys
    from types import SimpleNamespace

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv) if argv else SimpleNamespace(**DEFAULT_ARGS)

    from hostd import logsetup

    logsetup.setup(args.verbose)
    host, _, port = args.probe_resolver.rpartition(":")
    daemon = Daemon(
        Layout(Path(args.root)),
        args.bus,
        admin_gids=admin_group_ids(args.admin_group),
        probe_resolver=(host.strip("[]"), int(port)),
    )
    try:
        return asyncio.run(daemon.run())
    except Exception:
        log.exception("hostd failed")
        return 1
