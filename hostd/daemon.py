"""hostd, the daemon: config -> steps -> API -> READY=1, then reconcile on every change.

Start: load config.json, run every step (each followed by its live effect through the
services' own APIs), export io.hostd1, tell systemd READY=1.  Then: ping the watchdog from
the event loop, watch config.json and the boot partition's drop-in directories, re-apply a
service's steps when it (re)appears, and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from hostd import __version__, engine, notify
from hostd import config as config_model
from hostd.api import Api, ApiError, InvalidArgument
from hostd.engine import StepResult
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, STEPS_BY_NAME, dns
from hostd.steps.base import Context

log = logging.getLogger("hostd")

CONFIG_POLL_SECONDS = 1.0


class Daemon:
    def __init__(
        self,
        layout: Layout,
        bus_address: str | None,
        *,
        admin_gids: frozenset[int] = frozenset(),
        poll_interval: float = CONFIG_POLL_SECONDS,
    ) -> None:
        self.layout = layout
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
        await self._stop.wait()

        notify.notify("STOPPING=1")
        for task in list(self._tasks):
            task.cancel()
        await services.close()
        bus.disconnect()
        return 0

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
        """What changes when config.json or a boot drop-in directory changes (one stat each)."""
        stamp = []
        for path in (self.layout.config_json, self.layout.boot_connections, self.layout.boot_dispatcher):
            try:
                st = path.stat()
                stamp.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
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
        """Re-read config.json and apply what changed (everything when ``full``, or the named steps)."""
        async with self._lock:
            loaded = config_model.load(self.layout)
            self.loaded = loaded
            self.config_error = str(loaded.error) if loaded.error else ""
            if loaded.error is not None:
                log.error("%s", loaded.error)
            if loaded.error is not None and self.applied is not None:
                # At runtime an unusable config changes nothing; the device keeps what it runs.
                self._publish()
                return []
            if only is not None:
                steps = tuple(STEPS_BY_NAME[name] for name in only)
            elif full or self.applied is None:
                steps = ALL_STEPS
            else:
                steps = engine.steps_for_keys(config_model.changed_keys(self.applied, loaded.config))
            ctx = Context(loaded.config, self.layout, self.effects.facts())
            results = []
            for step in steps:
                [result] = engine.run(ctx, [step], apply=True)
                started = time.monotonic()
                await self.effects.after_step(ctx, result)
                result.duration += time.monotonic() - started
                self.results[step.NAME] = result
                results.append(result)
            engine.keep_last_known_good(loaded, ctx)
            self.applied = loaded.config
            self._publish()
            if self.api is not None:
                self.api.emit_reconciled(self._step_tuples(results))
            notify.notify("STATUS=" + self._status_line())
            return results

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
            "Steps": self._step_tuples(self._ordered_results()),
            "Degraded": sorted(self.effects.degraded()),
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
        from hostd import fsutil

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hostd", description="Converge the host to config.json and serve io.hostd1.")
    parser.add_argument("--root", default="/", help="device root directory (default /)")
    parser.add_argument("--bus", metavar="ADDRESS", help="D-Bus address (default: the system bus)")
    parser.add_argument(
        "--admin-group",
        action="append",
        default=["hostd-admin"],
        help="group whose members may call mutating methods (besides root)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from hostd import logsetup

    logsetup.setup(args.verbose)
    daemon = Daemon(Layout(Path(args.root)), args.bus, admin_gids=admin_group_ids(args.admin_group))
    try:
        return asyncio.run(daemon.run())
    except Exception:
        log.exception("hostd failed")
        return 1
