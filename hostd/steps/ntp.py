"""chrony's extra sources in its sourcedir: ``ntpServers``, one ``pool NAME iburst`` line each,
and with ``os.ntp.mode`` append (the default) the servers the network's DHCP leases offer, one
``server ADDRESS iburst`` line each (what balenaOS's dispatcher script adds); exclusive leaves
them out.  chrony.conf's own pools are the image's: hostd does not own that file.

Live: ``chronyc reload sources`` when they changed and chronyd runs.  chrony's tracking and the
clock's trust are followed by ``hostd.timesync``.
"""

from __future__ import annotations

import os

from hostd import keys
from hostd.record import Record
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "ntp"
KEYS = keys.read_by(NAME)
TRIGGERS = frozenset({Event.CHRONYD_RETURNED, Event.NETWORK_NTP_CHANGED})


class Given(Record):
    """The network's (DHCP) servers chrony was given beside ``ntpServers``."""

    __slots__ = ("network_servers",)

    def __init__(self, network_servers: tuple[str, ...]) -> None:
        self.network_servers = network_servers


def network_servers(ctx: Context) -> tuple[str, ...]:
    """The DHCP-offered servers chrony is given: none in exclusive mode, none already configured."""
    if ctx.config.ntp_mode == "exclusive":
        return ()
    return tuple(server for server in ctx.facts.network_ntp_servers if server not in ctx.config.ntp_servers)


def sources(ctx: Context) -> bytes | None:
    lines = [f"pool {server} iburst\n" for server in ctx.config.ntp_servers]
    lines += [f"server {server} iburst\n" for server in network_servers(ctx)]
    return "".join(lines).encode() if lines else None


def plan(ctx: Context) -> Plan:
    result = Plan(record=Given(network_servers(ctx)))
    content = sources(ctx)
    path = ctx.layout.chrony_sources
    # A chrony unit with RuntimeDirectory= (Debian's) hands the directory, files included, to
    # chrony's user when it starts: the file has the directory's owner, or every run would take it back.
    directory = os.path.dirname(path)
    owner = os.stat(directory) if os.path.isdir(directory) else None
    plan_file(result, ctx.layout, path, content, 0o644, *((owner.st_uid, owner.st_gid) if owner else ()))
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    from hostd.bus import errors  # the live side only: the boot stage plans without D-Bus

    outcome = Outcome()
    if not ctx.layout.is_live:
        return outcome  # chronyc talks to the running system's chronyd, not to a root directory
    chrony = services.chrony
    if _chronyd_stopped(services):
        return outcome  # it reads its sourcedir when it starts (at boot hostd runs before it): nothing to ask
    if result.changes:
        try:
            await chrony.reload_sources()
        except errors.ServiceUnavailable:
            return outcome  # stopped meanwhile: it reads its sourcedir when it starts
    return outcome


def _chronyd_stopped(services: Services) -> bool:
    """chronyd's unit exists and is not running (followed from systemd's signals)."""
    from hostd.bus.chrony import CHRONY_UNITS
    from hostd.bus.systemd import ActiveState

    states = [services.systemd.followed_unit_state(unit) for unit in CHRONY_UNITS]
    known = [state for state in states if state is not None]
    return bool(known) and all(state in (ActiveState.INACTIVE, ActiveState.FAILED) for state in known)
