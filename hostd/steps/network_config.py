"""NetworkManager settings from config.json: connectivity checking and Wi-Fi scan MAC randomisation."""

from __future__ import annotations

from hostd import keys
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "network-config"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()


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


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    """A changed drop-in takes effect only once NetworkManager re-reads its configuration (until
    then its ConnectivityCheckUri is the old one, and the safe-apply probe would judge a setting
    NetworkManager never loaded)."""
    from hostd.bus import errors  # the live side only: the boot stage plans without D-Bus

    outcome = Outcome()
    if not result.changes:
        return outcome
    nm = services.networkmanager
    if not nm.attached:
        outcome.problems.append("NetworkManager is not running: it reads the settings when it starts")
        return outcome
    try:
        await nm.reload_config()
    except errors.BusError as exc:
        outcome.problems.append(f"NetworkManager did not reload its configuration: {exc}")
    return outcome
