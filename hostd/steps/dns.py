"""dnsmasq's upstream resolvers (``dnsServers``, ``os.dns.mode``).

``append`` (balenaOS's behaviour): the configured servers go after the ones the network
provides.  ``exclusive``: only the configured servers.  The servers file is what dnsmasq reads
when it (re)starts; the running dnsmasq gets the same list over D-Bus.  The list is computed
once per run and recorded: the API shows what dnsmasq was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hostd import keys
from hostd.bus import errors
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "dns"
KEYS = keys.read_by(NAME)
TRIGGERS = frozenset({Event.NETWORKMANAGER_ATTACHED, Event.NETWORK_DNS_CHANGED, Event.DNSMASQ_ATTACHED})


@dataclass(frozen=True)
class Given:
    """The upstreams dnsmasq was given (its servers file, and over D-Bus when it runs)."""

    servers: tuple[str, ...]


def effective_servers(ctx: Context) -> tuple[str, ...]:
    configured = ctx.config.dns_servers
    if ctx.config.dns_mode == "exclusive":
        return configured
    return tuple(dict.fromkeys(ctx.facts.network_dns_servers + configured))


def plan(ctx: Context) -> Plan:
    servers = effective_servers(ctx)
    result = Plan(record=Given(servers))
    lines = "".join(f"server={server}\n" for server in servers)
    plan_file(result, ctx.layout, ctx.layout.dnsmasq_servers, lines.encode())
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    assert isinstance(result.record, Given)
    servers = list(result.record.servers)
    dnsmasq = services.dnsmasq
    if dnsmasq.servers == servers and dnsmasq.attached:
        return outcome
    try:
        await dnsmasq.set_servers(servers)
    except errors.ServiceUnavailable:
        outcome.problems.append("dnsmasq is not running: its servers are set when it starts")
    return outcome
