"""dnsmasq's upstream resolvers (``dnsServers``, ``os.dns.mode``).

``append`` (balenaOS's behaviour): the configured servers go after the ones the network
provides.  ``exclusive``: only the configured servers.  The servers file (balenaOS's
``--servers-file``) is what dnsmasq reads when it (re)starts, so the last list applied outlives
hostd; the running dnsmasq re-reads it and gets the same list over D-Bus.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from hostd.bus import errors
from hostd.steps.base import Context, Plan, plan_file

if TYPE_CHECKING:  # the engine imports the steps
    from hostd.bus.systemd import SystemdAdapter
    from hostd.engine import StepResult
    from hostd.layout import Layout

DNSMASQ_UNIT = "dnsmasq.service"

NAME = "dns"
KEYS = frozenset({"dnsServers", "os.dns.mode"})


def effective_servers(ctx: Context) -> tuple[str, ...]:
    configured = ctx.config.dns_servers
    if ctx.config.dns_mode == "exclusive":
        return configured
    return tuple(dict.fromkeys(ctx.facts.network_dns_servers + configured))


def servers_file(servers: tuple[str, ...]) -> bytes:
    return "".join(f"server={server}\n" for server in servers).encode()


def plan(ctx: Context) -> Plan:
    result = Plan()
    plan_file(result, ctx.layout, ctx.layout.dnsmasq_servers, servers_file(effective_servers(ctx)))
    # Only config.json's servers are kept on flash: the network's change with every lease.
    plan_file(result, ctx.layout, ctx.layout.saved_dnsmasq_servers, servers_file(ctx.config.dns_servers))
    return result


async def reread_servers_file(systemd: SystemdAdapter, layout: Layout, result: StepResult) -> None:
    """dnsmasq keeps the servers it read from --servers-file beside those set over D-Bus until it
    reads the file again (on SIGHUP): after the step rewrote it, an old server would stay in use."""
    servers_file = layout.device_path(layout.dnsmasq_servers)
    if not any(change.path == servers_file for change in result.changes) or not systemd.available:
        return
    state = await systemd.unit_state(DNSMASQ_UNIT)
    if state.active_state.value != "active":
        return  # it reads the file when it starts
    try:
        await systemd.kill_unit(DNSMASQ_UNIT, signal.SIGHUP)
    except errors.BusError as exc:
        result.problems.append(f"dnsmasq not told to re-read {servers_file}: {exc}")
