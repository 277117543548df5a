"""The API's view of the device: io.hostd1's properties, Describe()'s document, the status line.

Read from what the reconciler applied and recorded (what the services were given) and from the
adapters' live state; nothing here computes a setting again.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from hostd import __version__, timesync
from hostd import config as config_model
from hostd.steps import connections, dns, ntp, proxy
from hostd.steps import logging as logging_step
from hostd.steps.base import StepResult, StepStatus

if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.discovery import Discovery
    from hostd.reconciler import Reconciler
    from hostd.timesync import TimeMonitor

StepTuple = tuple[str, str, str, float, float]


def step_tuples(results: list[StepResult]) -> list[StepTuple]:
    """Steps as the API sends them: (name, status, message, last run, duration)."""
    return [(r.name, r.status.value, r.message, r.finished_at, r.duration) for r in results]


class View:
    def __init__(self, reconciler: Reconciler, services: Services, discovery: Discovery, time: TimeMonitor) -> None:
        self.reconciler = reconciler
        self.services = services
        self.discovery = discovery
        self.time = time

    def degraded(self) -> dict[str, str]:
        """Services not reachable now; avahi-daemon stopped on purpose is not one of them."""
        degraded = self.services.degraded()
        if not self.discovery.discoverable:
            degraded.pop(self.services.avahi.key, None)
        return degraded

    def properties(self) -> dict[str, Any]:
        reconciler = self.reconciler
        config = reconciler.applied.config if reconciler.applied is not None else config_model.Config()
        given_dns = reconciler.records.get(dns.NAME)
        journal = reconciler.records.get(logging_step.NAME)
        connections_result = reconciler.results.get(connections.NAME)
        time_state = self.time.state
        return {
            "Version": __version__,
            "Hostname": self._kernel_hostname() or config.effective_hostname or "",
            "StaticHostname": config.effective_hostname or "",
            "Variant": "development" if config.development_mode else "production",
            "PersistentLogging": config.persistent_logging,
            "JournalUsage": journal.bytes if isinstance(journal, logging_step.JournalUsage) else 0,
            "DnsServers": list(given_dns.servers) if isinstance(given_dns, dns.Given) else [],
            "DnsMode": config.dns_mode,
            "NtpServers": list(config.ntp_servers),
            "TimeSynchronized": timesync.kernel_synchronized(),
            "TimeTrusted": time_state.trusted,
            "TimeSource": time_state.source,
            "LastSync": time_state.last_sync,
            "TimeTracking": time_state.tracking,
            "Connections": [
                (entry.name, entry.status.value, entry.verdict or entry.reason)
                for entry in (connections_result.file_entries() if connections_result else [])
            ],
            "Modems": [
                (m["path"], m["state"], m["operator"], m["model"], m["signal_quality"], m["sim_present"])
                for m in self._modems()
            ],
            "ConfigSource": reconciler.loaded.source if reconciler.loaded else "",
            "ConfigError": reconciler.config_error,
            "HeldBack": [
                (entry.pointer, entry.message, entry.fallback)
                for entry in (reconciler.loaded.held_back if reconciler.loaded else ())
            ],
            "Steps": step_tuples(reconciler.ordered_results()),
            "Degraded": sorted(self.degraded()),
            "Generation": reconciler.applied_id,
            "GoodGeneration": reconciler.store.good() or "",
            "Transaction": reconciler.transaction.state.value,
            "NotApplied": reconciler.not_applied,
            "LastRollback": reconciler.transaction.last_rollback.as_tuple(),
            "Retry": reconciler.retry.as_tuple(),
            "Discoverable": self.discovery.discoverable,
            "Proxy": self._proxy(),
        }

    def describe(self) -> dict[str, Any]:
        props = self.properties()
        reconciler = self.reconciler
        given_ntp = reconciler.records.get(ntp.NAME)
        connections_result = reconciler.results.get(connections.NAME)
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
                "path": str(reconciler.layout.config_json),
            },
            "logging": {"persistent": props["PersistentLogging"], "journalUsage": props["JournalUsage"]},
            "dns": {"mode": props["DnsMode"], "servers": props["DnsServers"]},
            "time": {
                "ntpServers": props["NtpServers"],
                "mode": reconciler.current_config().ntp_mode,
                "networkServers": list(given_ntp.network_servers) if isinstance(given_ntp, ntp.Given) else [],
                "synchronized": props["TimeSynchronized"],
                **self.time.state.as_dict(),
            },
            "connections": [entry.as_dict() for entry in connections_result.report] if connections_result else [],
            "modems": self._modems(),
            "steps": [result.as_dict() for result in reconciler.ordered_results()],
            "degraded": self.degraded(),
            "mdns": self._mdns(),
            "discovery": {
                "discoverable": props["Discoverable"],
                "setting": self.discovery.enabled,
                "why": self.discovery.why_not(),
            },
            "generations": {
                "current": props["Generation"],
                "good": props["GoodGeneration"],
                "transaction": props["Transaction"],
                "notApplied": props["NotApplied"],
                "lastRollback": reconciler.transaction.last_rollback.as_dict(),
                "retry": reconciler.retry.as_dict(),
            },
            "proxy": props["Proxy"],
        }

    def status_line(self) -> str:
        reconciler = self.reconciler
        failed = [name for name, result in reconciler.results.items() if result.status == StepStatus.FAILED]
        degraded = self.degraded()
        parts = [f"{len(reconciler.results)} steps applied"]
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if degraded:
            parts.append("degraded: " + ", ".join(sorted(degraded)))
        if reconciler.config_error:
            parts.append("config.json invalid")
        if reconciler.transaction.state:
            parts.append(reconciler.transaction.state.value)
        if reconciler.not_applied:
            parts.append("config.json not applied")
        return "; ".join(parts)

    def _proxy(self) -> dict[str, str]:
        in_force = self.reconciler.records.get(proxy.NAME)
        return in_force.as_dict() if isinstance(in_force, proxy.InForce) else proxy.InForce().as_dict()

    def _kernel_hostname(self) -> str:
        # The kernel's own answer on the device: hostnamed's cached one goes stale when the name is
        # set without it (hostnamed gone or not startable, see the hostname step).
        if self.reconciler.layout.is_live:
            return socket.gethostname()
        hostname1 = self.services.hostname1
        return hostname1.hostname if hostname1.available else ""

    def _modems(self) -> list[dict[str, Any]]:
        return [
            {
                "path": modem.path,
                "state": modem.state.name.lower(),
                "operator": modem.operator_name,
                "model": modem.model,
                "manufacturer": modem.manufacturer,
                "signal_quality": modem.signal_quality,
                "sim_present": modem.sim_present,
            }
            for modem in self.services.modemmanager.modems.values()
        ]

    def _mdns(self) -> dict[str, Any]:
        avahi = self.services.avahi
        if not avahi.available:
            return {}
        return {
            "hostname": avahi.host_name,
            "wanted": avahi.wanted_host_name or "",
            "collision": avahi.collision,
            "sshPublished": avahi.ssh_published,
        }
