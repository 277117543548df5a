"""The Wi-Fi regulatory domain (``country``): a module option for cfg80211, and set live by the effect.

The option covers a Wi-Fi stack that loads after hostd (a USB dongle plugged in later); a stack
already loaded is told over nl80211 (hostd/nl80211.py), as ``iw reg set`` does.
"""

from __future__ import annotations

from hostd import keys
from hostd.record import Record
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "regulatory-domain"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()


class KernelDomain(Record):
    """The domain asked for, and what the kernel made of it."""

    __slots__ = ("country", "kernel")

    def __init__(self, country: str, kernel: str) -> None:
        self.country = country
        self.kernel = kernel

    def as_dict(self) -> dict[str, str]:
        return {"country": self.country, "kernel": self.kernel}


def plan(ctx: Context) -> Plan:
    result = Plan()
    country = ctx.config.country
    content = f"options cfg80211 ieee80211_regdom={country}\n".encode() if country else None
    plan_file(result, ctx.layout, ctx.layout.modprobe_dropin, content)
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    if not ctx.layout.is_live:
        return outcome  # the kernel's domain is the running system's, not a root directory's
    import asyncio  # the live side only: the boot stage (hostd.prepare) runs without it

    from hostd import nl80211  # only devices that set a country need it

    # Removed from config.json: the kernel keeps the last hint until told the world domain.
    country = ctx.config.country or ("00" if result.changes else None)
    if country is None:
        return outcome
    try:
        if await asyncio.to_thread(nl80211.regulatory_domain) == country:
            kernel = "set"
        else:
            await asyncio.to_thread(nl80211.request_regulatory_domain, country)
            kernel = "requested"
    except nl80211.Unavailable:
        kernel = "no Wi-Fi stack loaded: cfg80211 starts in this domain when it loads"
    except OSError as exc:
        kernel = "refused"
        outcome.problems.append(f"the kernel refused regulatory domain {country}: {exc.strerror}")
    outcome.report.append(KernelDomain(country, kernel))
    return outcome
