"""chrony's extra sources (``ntpServers``), one ``pool NAME iburst`` line each, in its sourcedir."""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "ntp"
KEYS = frozenset({"ntpServers"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    servers = ctx.config.ntp_servers
    content = "".join(f"pool {server} iburst\n" for server in servers).encode() if servers else None
    plan_file(result, ctx.layout, ctx.layout.chrony_sources, content)
    return result
