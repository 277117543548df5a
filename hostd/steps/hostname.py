"""The static hostname: ``hostname``, else the first 7 characters of the uuid."""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "hostname"
KEYS = frozenset({"hostname", "uuid"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    name = ctx.config.effective_hostname
    if name is None:
        # First boot with an unusable config.json and no last-known-good: no name to set.
        result.problems.append("no hostname and no uuid to derive one from")
        result.failed = True
        return result
    plan_file(result, ctx.layout, ctx.layout.etc_hostname, f"{name}\n".encode())
    return result
