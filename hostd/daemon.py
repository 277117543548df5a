"""hostd, the daemon: its lifecycle.

Start: connect to the bus, load config.json and run every step (the reconciler), export
io.hostd1, tell systemd READY=1.  Then: ping the watchdog from the event loop, run the config
watch, re-run a service's steps when it (re)appears (``hostd.events``), publish every change
(PropertiesChanged, Reconciled, the unit's STATUS=), and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hostd import notify
from hostd.layout import Layout
from hostd.steps.base import StepResult

if TYPE_CHECKING:
    import argparse

    from hostd.api import Api
    from hostd.bus.services import Services
    from hostd.discovery import Discovery
    from hostd.reconciler import Reconciler
    from hostd.timesync import TimeMonitor
    from hostd.view import View

log = logging.getLogger("hostd")

DEFAULT_PROBE_RESOLVER = ("127.0.0.2", 53)  # dnsmasq, as balenaOS runs it


class Daemon:
    def __init__(
        self,
        layout: Layout,
        bus_address: str | None,
        *,
        admin_gids: frozenset[int] = frozenset(),
        probe_resolver: tuple[str, int] = DEFAULT_PROBE_RESOLVER,
        chrony_health: dict[str, float] | None = None,
    ) -> None:
        self.layout = layout
        self.bus_address = bus_address
        self.admin_gids = admin_gids
        self.probe_resolver = probe_resolver
        self.chrony_health = chrony_health or {}  # ChronyHealth's thresholds other than its defaults
        self.reconciler: Reconciler | None = None  # made once the bus is connected
        self._view: View | None = None
        self._api: Api | None = None  # exported after the first reconcile
        self._time: TimeMonitor | None = None
        self._outcomes = Outcomes()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus

        from hostd import events
        from hostd.api import Api
        from hostd.bus.services import Services
        from hostd.discovery import Discovery
        from hostd.manager import Manager
        from hostd.reconciler import Reconciler
        from hostd.timesync import ChronyHealth, TimeMonitor
        from hostd.view import View
        from hostd.watch import ConfigWatch

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)

        notify.notify("STATUS=Connecting to the system bus")
        if self.bus_address:
            bus = await MessageBus(bus_address=self.bus_address).connect()
        else:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        services = Services(bus)
        reconciler = self.reconciler = Reconciler(
            self.layout,
            services,
            probe_resolver=self.probe_resolver,
            publish=self._publish,
            reconciled=self._reconciled,
        )
        discovery = Discovery(self.layout, services)
        time_monitor = self._time = TimeMonitor(
            self.layout, services, reconciler.current_config, self._publish, health=ChronyHealth(**self.chrony_health)
        )
        view = self._view = View(reconciler, services, discovery, time_monitor)
        watch = ConfigWatch(self.layout, reconciler.reconcile)
        events.follow(services, self.layout, self._on_service_event, self._on_discovery_changed(discovery))
        await services.start()
        await self._after_network_inputs_stage(services, reconciler)

        notify.notify("STATUS=Applying config.json")
        watch.mark_seen()
        await reconciler.reconcile(full=True)
        if not discovery.enabled:
            await self._withdraw_at_boot(discovery)

        manager = Manager(reconciler, view, watch, discovery, self._publish)
        self._outcomes.on_rolled_back = manager.rolled_back
        self._api = Api(bus, manager, admin_gids=self.admin_gids)
        reconciler.retry_reported = self._api.emit_retry_attempt
        reconciler.at_boot = False
        self._api.export()
        self._publish()
        await self._api.request_name()
        notify.notify("READY=1\nSTATUS=" + view.status_line())
        log.info("ready: %s", view.status_line())

        self._spawn(watch.run())
        self._spawn(self._keep_network_inputs_stamp())
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
        time_monitor.close()
        for task in list(self._tasks):
            task.cancel()
        if bus.connected:
            await services.close()
            bus.disconnect()
        return 1 if lost.done() and not lost.cancelled() else 0

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the event loop itself: a loop that is stuck stops the pings and systemd
        # kills and restarts hostd.  The time check rides on the tick: no wakeup of its own.
        while True:
            notify.notify("WATCHDOG=1")
            if self._time is not None:
                self._time.tick()
            await asyncio.sleep(interval)

    async def _on_service_event(self, steps: tuple[str, ...]) -> None:
        """A service (re)appeared or its state changed: re-apply the steps that depend on it."""
        assert self.reconciler is not None
        if not steps:
            self._publish()
        elif self.reconciler.applied is None:
            # The first reconcile may have run these steps already, without the service (it can
            # come on the bus while that reconcile runs): run them again once it is done.  The
            # rerun waits for its lock; before the first reconcile starts, it does nothing.
            self._spawn(self.reconciler.rerun(steps))
        else:
            await self.reconciler.rerun(steps)

    @staticmethod
    async def _after_network_inputs_stage(services: Services, reconciler: Reconciler) -> None:
        """One writer at a time: hostd starts beside the network-inputs stage (its interpreter,
        imports and attaching overlap the stage), and its first reconcile waits for the stage's
        job to be over; meanwhile it keeps config.json's generation, which the stage does not
        write.  At a restart of hostd it is long over: no wait, no call (systemd's answer at attach
        tells it)."""
        from hostd.prepare import NETWORK_INPUTS_UNIT

        systemd = services.systemd
        if systemd.has_job(NETWORK_INPUTS_UNIT):
            notify.notify(f"STATUS=Waiting for {NETWORK_INPUTS_UNIT}")
            log.info("waiting for %s to finish before applying config.json", NETWORK_INPUTS_UNIT)
            try:
                reconciler.keep_generation_ahead()
            except OSError as exc:
                log.warning("config.json's generation was not kept ahead (the first reconcile keeps it): %s", exc)
        if not await systemd.wait_until_no_job(NETWORK_INPUTS_UNIT):
            log.warning(
                "cannot tell whether %s has finished (systemd: %s); applying config.json without waiting for it",
                NETWORK_INPUTS_UNIT,
                systemd.degraded_reason or "left the bus",
            )

    async def _keep_network_inputs_stamp(self) -> None:
        """After READY, off the network's and hostd's start: the stage's new stamp onto flash."""
        from hostd import prepare

        try:
            await asyncio.to_thread(prepare.keep_stamp, self.layout)
        except OSError as exc:
            log.warning("the network-inputs stage's stamp was not kept (the next boot runs it in full): %s", exc)

    def _on_discovery_changed(self, discovery: Discovery) -> Callable[[], Awaitable[None]]:
        async def changed() -> None:
            discovery.follow()
            self._publish()

        return changed

    @staticmethod
    async def _withdraw_at_boot(discovery: Discovery) -> None:
        from hostd.bus import errors

        try:
            await discovery.apply()
        except errors.BusError as exc:
            log.error("not discoverable, but avahi-daemon could not be stopped: %s", exc)

    # -- signals -------------------------------------------------------------------------------

    def _publish(self) -> None:
        """PropertiesChanged for what changed, then the outcome signals; Describe() rebuilt on its next call."""
        if self._api is not None and self._view is not None:
            properties = self._view.properties()
            self._api.update(properties)
            self._api.invalidate_describe()
            self._outcomes.publish(self._api, properties)

    def _reconciled(self, results: list[StepResult], outcome: str) -> None:
        from hostd.view import step_tuples

        if self._api is not None:
            self._api.emit_reconciled(step_tuples(results), outcome)
        if self._view is not None:
            notify.notify("STATUS=" + self._view.status_line())


class Outcomes:
    """The signals a client follows instead of polling, each sent when its state changes: Applied
    (the generation the device runs, kept or on trial), RolledBack (a trial failed, with its
    evidence), HeldBack (config.json keys not applied, and why; empty once every key applies)."""

    def __init__(self) -> None:
        self._applied: tuple[str, str] | None = None
        self._rollback: tuple[float, str, str, str] | None = None
        self._held_back: list[tuple[str, str, str]] | None = None
        self.on_rolled_back: Callable[[str], None] = lambda generation: None

    def publish(self, api: Api, properties: dict[str, Any]) -> None:
        generation, transaction = properties["Generation"], properties["Transaction"]
        state = "on-trial" if transaction else ("kept" if generation == properties["GoodGeneration"] else "applied")
        if generation and (generation, state) != self._applied:
            self._applied = (generation, state)
            api.emit("Applied", [generation, state])
        rollback = properties["LastRollback"]
        if self._rollback is not None and rollback[1] and rollback != self._rollback:
            api.emit("RolledBack", list(rollback[1:]))
            self.on_rolled_back(rollback[1])
        self._rollback = rollback
        held_back = properties["HeldBack"]
        if self._held_back is not None and held_back != self._held_back:
            api.emit("HeldBack", [held_back])
        self._held_back = held_back


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
    "prepare": None,
    "time_probe": False,
    "chrony_grace": None,
    "chrony_restart_after": None,
}


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from hostd import prepare  # its names only: it imports nothing at the top

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
    parser.add_argument(
        "--prepare",
        metavar="STAGE",
        choices=tuple(prepare.STAGES),
        help="run one boot stage offline and exit, as its oneshot unit does: bind-sources (the state "
        "partition's bind sources, first boot and reset, before the bind mounts), network-inputs (the "
        "files NetworkManager, dnsmasq and chrony read, and the hostname, before they start)",
    )
    parser.add_argument(
        "--time-probe",
        action="store_true",
        help="take the time from a verified HTTPS server once, as hostd asked, and exit (hostd-time-probe.service)",
    )
    # For a device under test (a systemd drop-in on hostd.service): minutes are too long to wait for.
    parser.add_argument(
        "--chrony-grace",
        metavar="SECONDS",
        type=float,
        help="chrony unsynchronized this long: burst and reselect (default 300)",
    )
    parser.add_argument(
        "--chrony-restart-after",
        metavar="SECONDS",
        type=float,
        help="still unsynchronized this long after the burst: restart chronyd, each restart waiting twice "
        "as long as the last (default 600)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    import sys
    from types import SimpleNamespace

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv) if argv else SimpleNamespace(**DEFAULT_ARGS)
    if args.time_probe:
        from hostd import timeprobe

        return timeprobe.main()

    from hostd import logsetup

    logsetup.setup(args.verbose)
    if args.prepare:
        from hostd import prepare

        return prepare.run(args.prepare, args.root)
    host, _, port = args.probe_resolver.rpartition(":")
    daemon = Daemon(
        Layout(args.root),
        args.bus,
        admin_gids=admin_group_ids(args.admin_group),
        probe_resolver=(host.strip("[]"), int(port)),
        chrony_health={
            name: seconds
            for name, seconds in (("grace", args.chrony_grace), ("restart_after", args.chrony_restart_after))
            if seconds is not None
        },
    )
    try:
        return asyncio.run(daemon.run())
    except Exception:
        log.exception("hostd failed")
        return 1
