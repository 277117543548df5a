"""The Wi-Fi regulatory domain (``country``): a module option for cfg80211, and set live by the effect.

The option covers a Wi-Fi stack that loads after hostd (a USB dongle plugged in later); a stack
already loaded is told over nl80211 (hostd/nl80211.py), as ``iw reg set`` does.
"""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "regulatory-domain"
KEYS = frozenset({"country"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    country = ctx.config.country
    content = f"options cfg80211 ieee80211_regdom={country}\n".encode() if country else None
    plan_file(result, ctx.layout, ctx.layout.modprobe_dropin, content)
    return result
