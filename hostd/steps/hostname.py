"""The static hostname: ``hostname``, else the first 7 characters of the uuid; live, through
hostnamed (the kernel's name) and Avahi (``<name>.local`` and the SSH service)."""

from __future__ import annotations

from hostd import fsutil, keys
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "hostname"
KEYS = keys.read_by(NAME)
TRIGGERS = frozenset({Event.AVAHI_ATTACHED})


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


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    import socket  # the live side and the kernel name only: the boot stage plans without them

    from hostd.bus import errors

    outcome = Outcome()
    name = ctx.config.effective_hostname
    if name is None:
        return outcome
    layout = ctx.layout
    hostname1 = services.hostname1
    # Decided on the real state, not on hostnamed's cached view (it exits when idle): the step
    # wrote /etc/hostname already, which is hostnamed's static name; the kernel's name is ours.
    static_written = fsutil.read_bytes(layout.etc_hostname) == f"{name}\n".encode()
    current = socket.gethostname() if layout.is_live else hostname1.hostname
    try:
        if not static_written:
            await hostname1.set_static_hostname(name)
        if current != name:
            await hostname1.set_hostname(name)
    except errors.BusError as exc:
        # No hostnamed, or it cannot be started (masked, start limit hit after crashes, no reply):
        # /etc/hostname is written already; set the kernel's name directly.
        if not isinstance(exc, errors.ServiceUnavailable):
            outcome.problems.append(f"hostnamed not used ({exc}); the kernel's name is set directly")
        set_kernel_hostname(ctx)
    avahi = services.avahi
    try:
        await avahi.set_host_name(name)
        await avahi.publish_ssh()
    except errors.ServiceUnavailable:
        if not avahi.silenced:  # else not discoverable on purpose: nothing is announced
            outcome.problems.append("avahi-daemon is not running: <hostname>.local is announced when it starts")
    if avahi.host_name_collision:
        outcome.problems.append(
            f"{name}.local is taken by another host on the network; avahi announces {avahi.host_name}.local "
            "until it is free again"
        )
    return outcome


def set_kernel_hostname(ctx: Context) -> None:
    """The kernel's name set directly, as hostnamed sets it: without hostnamed, and at boot before
    the bus (hostd.prepare), so that NetworkManager's DHCP requests and avahi carry the name."""
    name = ctx.config.effective_hostname
    if name is None or not ctx.layout.is_live:
        return
    import _socket  # socket's C half (as hostd.stamp): socket itself costs the boot stage ~3 ms

    if _socket.gethostname() != name:
        _socket.sethostname(name)
