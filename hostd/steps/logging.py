"""journald's storage: 8M in RAM by default; on the data partition, capped, when persistent.

journald starts long before hostd, with the shipped defaults (units/conf/journald.conf.d).  When
config.json asks for just that, no drop-in is written, so journald is not restarted at every boot.
Live: journald restarted (and flushed to disk when persistent) through systemd when the drop-in
changed; the journal's disk usage recorded for the API.
"""

from __future__ import annotations

import logging

from hostd import fsutil, keys
from hostd.bus import errors
from hostd.record import Record
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

log = logging.getLogger("hostd.steps.logging")

NAME = "logging"
KEYS = keys.read_by(NAME)
TRIGGERS = frozenset({Event.JOURNALD_RETURNED})


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


class JournalUsage(Record):
    """The journal's disk usage, as the live effect last read it."""

    __slots__ = ("bytes",)

    def __init__(self, bytes: int) -> None:
        self.bytes = bytes


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    journald = services.journald
    if result.changes:
        await journald.restart()  # through systemd on the bus
    if not ctx.layout.is_live:
        return outcome  # journalctl acts on the running system's journal, not on a root directory
    if result.changes and ctx.config.persistent_logging:
        await journald.flush()
    try:
        outcome.record = JournalUsage(await journald.disk_usage())
    except errors.BusError as exc:
        log.debug("journal disk usage unknown: %s", exc)
    return outcome
