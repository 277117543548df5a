"""journald's storage: 8M in RAM by default; on the data partition, capped, when persistent.

journald starts long before hostd, with the shipped defaults (units/conf/journald.conf.d).  When
config.json asks for just that, no drop-in is written, so journald is not restarted at every boot.
"""

from __future__ import annotations

from hostd import fsutil
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


def _settings(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]


def plan(ctx: Context) -> Plan:
    result = Plan()
    content = render(ctx)
    shipped = fsutil.read_bytes(ctx.layout.journald_defaults)
    as_shipped = shipped is not None and _settings(shipped.decode("utf-8", "replace")) == _settings(content)
    plan_file(result, ctx.layout, ctx.layout.journald_dropin, None if as_shipped else content.encode())
    return result
