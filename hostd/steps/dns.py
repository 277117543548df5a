"""dnsmasq's upstream resolvers (``dnsServers``, ``os.dns.mode``).

``append`` (balenaOS's behaviour): the configured servers go after the ones the network
provides.  ``exclusive``: only the configured servers.  The servers file (balenaOS's
``--servers-file``) is what dnsmasq reads when it (re)starts, so the last list applied outlives
hostd; the running dnsmasq re-reads it and gets the same list over D-Bus.  The list is computed
once per run and recorded: the API shows what dnsmasq was given.
"""

from __future__ import annotations

from hostd import keys
from hostd.record import Record
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services
    from hostd.bus.systemd import SystemdAdapter
    from hostd.layout import Layout

NAME = "dns"
KEYS = keys.read_by(NAME)
TRIGGERS = frozenset({Event.NETWORKMANAGER_ATTACHED, Event.NETWORK_DNS_CHANGED, Event.DNSMASQ_ATTACHED})
DNSMASQ_UNIT = "dnsmasq.service"


class Given(Record):
    """The upstreams dnsmasq was given (its servers file, and over D-Bus when it runs)."""

    __slots__ = ("servers",)

    def __init__(self, servers: tuple[str, ...]) -> None:
        self.servers = servers


def effective_servers(ctx: Context) -> tuple[str, ...]:
    configured = ctx.config.dns_servers
    if ctx.config.dns_mode == "exclusive":
        return configured
    return tuple(dict.fromkeys(ctx.facts.network_dns_servers + configured))


def servers_file(servers: tuple[str, ...]) -> bytes:
    return "".join(f"server={server}\n" for server in servers).encode()


def plan(ctx: Context) -> Plan:
    servers = effective_servers(ctx)
    result = Plan(record=Given(servers))
    plan_file(result, ctx.layout, ctx.layout.dnsmasq_servers, servers_file(servers))
    # Only config.json's servers are kept on flash: the network's change with every lease.
    plan_file(result, ctx.layout, ctx.layout.saved_dnsmasq_servers, servers_file(ctx.config.dns_servers))
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    from hostd.bus import errors  # the live side only: the boot stage plans without D-Bus

    outcome = Outcome()
    if ctx.layout.is_live:
        await _reread_servers_file(services.systemd, ctx.layout, result, outcome)
    assert isinstance(result.record, Given)
    servers = list(result.record.servers)
    dnsmasq = services.dnsmasq
    if dnsmasq.servers == servers and dnsmasq.attached:
        return outcome
    try:
        await dnsmasq.set_servers(servers)
    except errors.ServiceUnavailable:
        outcome.problems.append("dnsmasq is not running: its servers are set when it starts")
    return outcome


async def _reread_servers_file(systemd: SystemdAdapter, layout: Layout, result: StepResult, outcome: Outcome) -> None:
    """dnsmasq keeps the servers it read from --servers-file beside those set over D-Bus until it
    reads the file again (on SIGHUP): after the step rewrote it, an old server would stay in use."""
    import signal

    from hostd.bus import errors

    written = layout.device_path(layout.dnsmasq_servers)
    if not any(change.path == written for change in result.changes) or not systemd.available:
        return
    state = await systemd.unit_state(DNSMASQ_UNIT)
    if state.active_state.value != "active":
        return  # it reads the file when it starts
    try:
        await systemd.kill_unit(DNSMASQ_UNIT, signal.SIGHUP)
    except errors.BusError as exc:
        outcome.problems.append(f"dnsmasq not told to re-read {written}: {exc}")
