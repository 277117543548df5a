"""journald's storage: 8M in RAM by default; on the data partition, capped, when persistent."""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "logging"
KEYS = frozenset({"persistentLogging", "os.journal.runtimeMaxUse", "os.journal.systemMaxUse"})


def render(ctx: Context) -> str:
    cfg = ctx.config
    lines = ["# Written by hostd from config.json; do not edit.", "[Journal]"]
    if cfg.persistent_logging:
        lines += ["Storage=persistent", f"SystemMaxUse={cfg.system_max_use}"]
    else:
        lines += ["Storage=volatile"]
    lines.append(f"RuntimeMaxUse={cfg.runtime_max_use}")
    return "\n".join(lines) + "\n"


def plan(ctx: Context) -> Plan:
    result = Plan()
    plan_file(result, ctx.layout, ctx.layout.journald_dropin, render(ctx).encode())
    return result
