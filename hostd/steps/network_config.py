"""NetworkManager settings from config.json: connectivity checking and Wi-Fi scan MAC randomisation."""

from __future__ import annotations

from hostd import keys
from hostd.steps.base import Context, Event, Plan, plan_file

NAME = "network-config"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()
NO_LIVE_EFFECT = "NetworkManager reads its conf.d when it starts: at boot after hostd, at runtime at its next start"


def render(ctx: Context) -> str | None:
    cfg = ctx.config
    lines: list[str] = []
    if cfg.connectivity_uri:
        lines += ["[connectivity]", f"uri={cfg.connectivity_uri}", f"interval={cfg.connectivity_interval}"]
        if cfg.connectivity_response is not None:
            lines.append(f"response={cfg.connectivity_response}")
    if cfg.wifi_random_mac_scan is not None:
        lines += ["[device]", f"wifi.scan-rand-mac-address={'yes' if cfg.wifi_random_mac_scan else 'no'}"]
    if not lines:
        return None
    return "# Written by hostd from config.json; do not edit.\n" + "\n".join(lines) + "\n"


def plan(ctx: Context) -> Plan:
    result = Plan()
    content = render(ctx)
    plan_file(result, ctx.layout, ctx.layout.nm_dropin, content.encode() if content is not None else None)
    return result
