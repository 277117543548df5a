"""dnsmasq's upstream resolvers (``dnsServers``, ``os.dns.mode``).

``append`` (balenaOS's behaviour): the configured servers go after the ones the network
provides.  ``exclusive``: only the configured servers.  The servers file is what dnsmasq reads
when it (re)starts; the running dnsmasq gets the same list over D-Bus.
"""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "dns"
KEYS = frozenset({"dnsServers", "os.dns.mode"})


def effective_servers(ctx: Context) -> tuple[str, ...]:
    configured = ctx.config.dns_servers
    if ctx.config.dns_mode == "exclusive":
        return configured
    return tuple(dict.fromkeys(ctx.facts.network_dns_servers + configured))


def plan(ctx: Context) -> Plan:
    result = Plan()
    lines = "".join(f"server={server}\n" for server in effective_servers(ctx))
    plan_file(result, ctx.layout, ctx.layout.dnsmasq_servers, lines.encode())
    return result
