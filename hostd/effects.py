"""The live half of each setup step: make the running services act on what the step wrote.

The engine writes files; this module, run by the daemon after each step, applies the change
through the service's own API and reads back its verdict (NetworkManager's per-file load
result, the mounts systemd made, the journal's disk usage...).  A missing service turns only
its own effect off; the step's report says so, and the effect is applied again when the
service appears (the daemon re-runs the step).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from hostd import fsutil
from hostd.bus import errors
from hostd.bus.chrony import CHRONY_UNITS
from hostd.bus.services import Services
from hostd.bus.systemd import ActiveState, unit_name_from_path
from hostd.engine import StepResult
from hostd.layout import Layout
from hostd.steps import devmode, dns, netconfig, state, udev
from hostd.steps.base import Context, Facts

log = logging.getLogger("hostd.effects")

OnEvent = Callable[[tuple[str, ...]], Awaitable[None]]

HOSTD_UNIT = "hostd.service"


class Effects:
    def __init__(self, services: Services, layout: Layout, on_event: OnEvent) -> None:
        self.services = services
        self.layout = layout
        self._journal_usage = 0
        self._tracking: dict[str, Any] = {}
        nm = services.networkmanager
        # A service that (re)appears gets what it needs again; state changes are republished.
        nm.on_attach(lambda: on_event(("connections", "dns")))
        nm.on_dns_servers_changed(lambda servers: on_event(("dns",)))
        services.dnsmasq.on_attach(lambda: on_event(("dns",)))
        services.avahi.on_attach(lambda: on_event(("hostname",)))
        services.avahi.on_collision_changed(lambda collision: on_event(()))
        services.modemmanager.on_modems_changed(lambda: on_event(()))
        for feature in (nm, services.dnsmasq, services.avahi, services.modemmanager, services.systemd):
            feature.on_detach(lambda: on_event(()))
        services.systemd.on_attach(lambda: on_event(("state",)))
        services.systemd.on_unit_state_changed(self._unit_state_changed)
        self._on_event = on_event

    async def _unit_state_changed(self, unit: str, state: ActiveState) -> None:
        """chronyd and journald have no bus name to watch: their units are followed instead.  Down,
        they show in Degraded; back, they get what they need again."""
        feature, steps = (
            (self.services.chrony, ("ntp",)) if unit in CHRONY_UNITS else (self.services.journald, ("logging",))
        )
        was_available = feature.available
        feature.follow_unit(unit, state.value)
        returned = feature.available and not was_available
        if returned and feature is self.services.journald and self.layout.is_live:
            self._reconnect_log_stream()
        await self._on_event(steps if returned else ())

    @staticmethod
    def _reconnect_log_stream() -> None:
        from hostd import logsetup

        if not logsetup.stderr_is_journal():
            return  # a terminal, a file: not ours to replace
        try:
            logsetup.reconnect_journal_stream(HOSTD_UNIT)
            log.info("journald is back: logging to a new stream")
        except OSError as exc:
            log.warning("journald is back, but a new log stream could not be opened: %s", exc)

    def facts(self) -> Facts:
        nm = self.services.networkmanager
        return Facts(network_dns_servers=tuple(nm.dns_servers) if nm.attached else ())

    def degraded(self) -> dict[str, str]:
        return self.services.degraded()

    def status(self) -> dict[str, Any]:
        services = self.services
        avahi = services.avahi
        return {
            # The kernel's own answer on the device: hostnamed's cached one goes stale when the name is
            # set without it (hostnamed gone or not startable, see _hostname).
            "hostname": socket.gethostname()
            if self.layout.is_live
            else (services.hostname1.hostname if services.hostname1.available else ""),
            "journal_usage": self._journal_usage,
            "time_synchronized": services.timedate1.ntp_synchronized if services.timedate1.available else False,
            "tracking": self._tracking,
            "modems": [
                {
                    "path": modem.path,
                    "state": modem.state.name.lower(),
                    "operator": modem.operator_name,
                    "model": modem.model,
                    "manufacturer": modem.manufacturer,
                    "signal_quality": modem.signal_quality,
                    "sim_present": modem.sim_present,
                }
                for modem in services.modemmanager.modems.values()
            ],
            "mdns": {
                "hostname": avahi.host_name,
                "wanted": avahi.wanted_host_name or "",
                "collision": avahi.collision,
                "sshPublished": avahi.ssh_published,
            }
            if avahi.available
            else {},
        }

    async def after_step(self, ctx: Context, result: StepResult) -> None:
        effect = getattr(self, "_" + result.name.replace("-", "_"), None)
        if effect is None or result.status == "failed":
            return
        try:
            await effect(ctx, result)
        except errors.BusError as exc:
            result.problems.append(f"live effect not applied: {exc}")
        except Exception as exc:  # a peer's surprise must never take hostd down
            log.exception("live effect of %s failed", result.name)
            result.problems.append(f"live effect failed: {type(exc).__name__}: {exc}")

    # -- one effect per step ---------------------------------------------------------------------

    async def _state(self, ctx: Context, result: StepResult) -> None:
        mounts = [change for change in result.pending if change.kind == "mount"]
        if not mounts:
            return
        systemd = self.services.systemd
        if not systemd.available:
            result.problems.append("systemd is not reachable: bind mounts not made")
            return
        # A mount systemd already holds (an earlier run's) is converged, even where the kernel's
        # table cannot be read (a root directory other than /).
        units = await systemd.unit_states([unit_name_from_path(str(self.layout.path(c.path))) for c in mounts])
        stopped = set()  # an earlier run's unit, unmounted since but still loaded: started again
        for change, unit in zip(list(mounts), units, strict=True):
            if unit.active_state.value == "active":
                result.pending.remove(change)
                mounts.remove(change)
            elif unit.load_state == "loaded":
                stopped.add(change)
        # One job each, all at once: systemd runs them in parallel.
        jobs = await asyncio.gather(
            *(
                systemd.start_unit(unit_name_from_path(str(self.layout.path(c.path))))
                if c in stopped
                else systemd.start_transient_mount(str(self.layout.path(c.detail)), str(self.layout.path(c.path)))
                for c in mounts
            ),
            return_exceptions=True,
        )
        for change, job in zip(mounts, jobs, strict=True):
            if isinstance(job, BaseException) or job.value != "done":
                reason = job if isinstance(job, BaseException) else f"systemd job {job.value}"
                result.problems.append(f"bind mount of {change.path} failed: {reason}")
                continue
            result.pending.remove(change)
            result.changes.append(change)
        if self.layout.is_live:
            mounted = state.mounted_targets()
            missing = [c.path for c in result.changes if c.kind == "mount" and c.path not in mounted]
            result.problems.extend(f"{path}: not a mount point after mounting" for path in missing)
        if result.status == "ok" and result.changes:
            result.status = "changed"

    async def _hostname(self, ctx: Context, result: StepResult) -> None:
        name = ctx.config.effective_hostname
        if name is None:
            return
        hostname1 = self.services.hostname1
        # Decided on the real state, not on hostnamed's cached view (it exits when idle): the step
        # wrote /etc/hostname already, which is hostnamed's static name; the kernel's name is ours.
        static_written = fsutil.read_bytes(self.layout.etc_hostname) == f"{name}\n".encode()
        current = socket.gethostname() if self.layout.is_live else hostname1.hostname
        try:
            if not static_written:
                await hostname1.set_static_hostname(name)
            if current != name:
                await hostname1.set_hostname(name)
        except errors.BusError as exc:
            # No hostnamed, or it cannot be started (masked, start limit hit after crashes, no reply):
            # /etc/hostname is written already; set the kernel's name directly.
            if not isinstance(exc, errors.ServiceUnavailable):
                result.problems.append(f"hostnamed not used ({exc}); the kernel's name is set directly")
            if self.layout.is_live and socket.gethostname() != name:
                socket.sethostname(name)
        avahi = self.services.avahi
        try:
            await avahi.set_host_name(name)
            await avahi.publish_ssh()
        except errors.ServiceUnavailable:
            result.problems.append("avahi-daemon is not running: <hostname>.local is announced when it starts")
        if avahi.host_name_collision:
            result.problems.append(
                f"{name}.local is taken by another host on the network; avahi announces {avahi.host_name}.local "
                "until it is free again"
            )

    async def _connections(self, ctx: Context, result: StepResult) -> None:
        nm = self.services.networkmanager
        if not nm.attached:
            for entry in result.report:
                if entry["status"] in ("imported", "unchanged", "kept"):
                    entry["nm"] = "not loaded: NetworkManager is not running"
            return
        directory = self.layout.nm_connections
        touched = [
            str(self.layout.path(change.path))
            for change in result.changes
            if change.kind in ("write", "remove") and self.layout.path(change.path).parent == directory
        ]
        failures: set[str] = set()
        if touched:
            load = await nm.load_connections(touched)
            failures = set(load.failures)
        loaded = await nm.connection_filenames()  # one call; a profile's settings only when needed below
        for entry in result.report:
            path = str(directory / entry["name"])
            if entry["status"] == "removed":
                entry["nm"] = "still loaded" if path in loaded else "unloaded"
            elif entry["status"] in ("imported", "unchanged", "kept"):
                if path in loaded:
                    entry["nm"] = "loaded"
                else:
                    entry["nm"] = "failed: NetworkManager did not load it" + (
                        " (LoadConnections reported it)" if path in failures else ""
                    )
                    result.problems.append(f"{entry['name']}: NetworkManager did not load it")
        written = {
            str(self.layout.path(change.path))
            for change in result.changes
            if change.kind == "write" and self.layout.path(change.path).parent == directory
        }
        if written and self.layout.is_live:
            profiles = await nm.list_connections()
            await self._activate_written(nm, [p for p in profiles if p.filename in written], profiles, result)

    async def _activate_written(self, nm: Any, written: list[Any], profiles: list[Any], result: StepResult) -> None:
        """NetworkManager loads a new or changed profile but keeps a device on the profile it runs
        until it reconnects (the next boot): the change would pass the safe-apply probe unused and
        cut the device off at the next boot.  So a written autoconnect profile is activated now where
        NetworkManager would run it at boot: on the device it runs on now (a profile edited in place,
        bound to a device or not), or on its own device when it ranks above that device's profile by
        autoconnect-priority; the probe then judges it in use."""
        if not any(profile.autoconnect for profile in written):
            return
        targets: dict[str, Any] = {}  # interface -> profile
        try:
            running = await nm.running_profiles()
        except errors.BusError as exc:
            result.problems.append(f"changed profiles not activated: {exc}")
            return
        for profile in written:
            if not profile.autoconnect:
                continue
            running_on = running.get(profile.path, [])
            for interface in running_on:
                targets[interface] = profile
            if profile.interface_name and profile.interface_name not in running_on:
                other = targets.get(profile.interface_name)
                if other is None or profile.autoconnect_priority > other.autoconnect_priority:
                    targets[profile.interface_name] = profile
        priority = {profile.path: profile.autoconnect_priority for profile in profiles}
        for interface, profile in targets.items():
            name = profile.filename.rsplit("/", 1)[-1]
            try:
                active = await nm.active_profile_of(interface)
                if active is None or (
                    active and active != profile.path and priority.get(active, 0) >= profile.autoconnect_priority
                ):
                    continue  # no such device, or NetworkManager keeps the profile it runs
                await nm.activate(profile.path, interface)
                log.info("%s: activated on %s", name, interface)
            except errors.BusError as exc:
                result.problems.append(f"{name}: not activated on {interface}: {exc}")

    async def _dns(self, ctx: Context, result: StepResult) -> None:
        if self.layout.is_live:
            await dns.reread_servers_file(self.services.systemd, self.layout, result)
        dnsmasq = self.services.dnsmasq
        servers = list(dns.effective_servers(ctx))
        if dnsmasq.servers == servers and dnsmasq.attached:
            return
        try:
            await dnsmasq.set_servers(servers)
        except errors.ServiceUnavailable:
            result.problems.append("dnsmasq is not running: its servers are set when it starts")

    async def _logging(self, ctx: Context, result: StepResult) -> None:
        journald = self.services.journald
        if result.changes:
            await journald.restart()  # through systemd on the bus
        if not self.layout.is_live:
            return  # journalctl acts on the running system's journal, not on a root directory
        if result.changes and ctx.config.persistent_logging:
            await journald.flush()
        try:
            self._journal_usage = await journald.disk_usage()
        except errors.BusError as exc:
            log.debug("journal disk usage unknown: %s", exc)

    async def _udev(self, ctx: Context, result: StepResult) -> None:
        if self.layout.is_live:
            await udev.reload_and_trigger(self.layout, result)

    async def _network_config(self, ctx: Context, result: StepResult) -> None:
        await netconfig.reload_networkmanager(self.services.networkmanager, result)

    async def _ntp(self, ctx: Context, result: StepResult) -> None:
        if not self.layout.is_live:
            return  # chronyc talks to the running system's chronyd, not to a root directory
        chrony = self.services.chrony
        if self._chronyd_stopped():
            return  # it reads its sourcedir when it starts (at boot hostd runs before it): nothing to ask
        if result.changes:
            try:
                await chrony.reload_sources()
            except errors.ServiceUnavailable:
                return  # stopped meanwhile: it reads its sourcedir when it starts
        if self.services.timedate1.available:
            await self.services.timedate1.refresh()  # timedated never signals NTPSynchronized
        try:
            tracking = await chrony.tracking()
        except errors.BusError as exc:
            log.debug("chrony tracking unknown: %s", exc)
            return
        self._tracking = {
            "reference": tracking.reference,
            "stratum": tracking.stratum,
            "leapStatus": tracking.leap_status.value,
            "synchronized": tracking.synchronized,
            "systemTimeOffset": tracking.system_time_offset,
        }

    def _chronyd_stopped(self) -> bool:
        """chronyd's unit exists and is not running (followed from systemd's signals)."""
        states = [self.services.systemd.followed_unit_state(unit) for unit in CHRONY_UNITS]
        known = [state for state in states if state is not None]
        return bool(known) and all(state in (ActiveState.INACTIVE, ActiveState.FAILED) for state in known)

    async def _regulatory_domain(self, ctx: Context, result: StepResult) -> None:
        if not self.layout.is_live:
            return  # the kernel's domain is the running system's, not a root directory's
        from hostd import nl80211  # only devices that set a country need it

        # Removed from config.json: the kernel keeps the last hint until told the world domain.
        country = ctx.config.country or ("00" if result.changes else None)
        if country is None:
            return
        entry: dict[str, Any] = {"country": country}
        result.report.append(entry)
        try:
            if await asyncio.to_thread(nl80211.regulatory_domain) == country:
                entry["kernel"] = "set"
            else:
                await asyncio.to_thread(nl80211.request_regulatory_domain, country)
                entry["kernel"] = "requested"
        except nl80211.Unavailable:
            entry["kernel"] = "no Wi-Fi stack loaded: cfg80211 starts in this domain when it loads"
        except OSError as exc:
            entry["kernel"] = "refused"
            result.problems.append(f"the kernel refused regulatory domain {country}: {exc.strerror}")

    async def _devmode(self, ctx: Context, result: StepResult) -> None:
        await devmode.restart_development_features(self.services.systemd, self.layout, result)

    _ssh = _devmode  # os.sshKeys also shape the development flag (keys required when given)
