"""The static hostname: ``hostname``, else the first 7 characters of the uuid."""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "hostname"
KEYS = frozenset({"hostname", "uuid"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    name = ctx.config.effective_hostname
    if name is None:
        result.problems.append("no hostname and no uuid to derive one from")
        return result
    plan_file(result, ctx.layout, ctx.layout.etc_hostname, f"{name}\n".encode())
    return result
