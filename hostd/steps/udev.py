"""``os.udevRules`` (name -> rule text) -> ``/etc/udev/rules.d/<name>.rules``.

Rules hostd wrote are tracked like boot-partition imports, so a rule dropped from config.json
is removed and rules created on the device are never touched.  udevd is then told to re-read its
rules and the present devices are replayed through them as at boot (an "add" event each, as
balenaOS does by restarting systemd-udev-trigger), so the rules act on devices already there, not
only on the next one plugged in.  Users' rules often match ACTION=="add" alone: a "change" replay
would pass them by.
"""

from __future__ import annotations

import os

from hostd import keys
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult
from hostd.steps.imports import BootFile, plan_import

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "udev"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()


def plan(ctx: Context) -> Plan:
    result = Plan()
    files = [
        BootFile(f"{name}.rules", text.encode() + (b"" if text.endswith("\n") else b"\n"))
        for name, text in ctx.config.udev_rules
    ]
    plan_import(
        result,
        ctx.layout,
        files=files,
        target_dir=ctx.layout.udev_rules,
        manifest_path=os.path.join(ctx.layout.hostd_state, "written-udev-rules.json"),
        mode=0o644,
    )
    return result


UDEVADM_TIMEOUT = 30.0
RELOAD = ("udevadm", "control", "--reload")
# The coldplug's replay, as hostd-udev-replay.service makes it at boot: subsystems, then devices
# (one --type=all pass needs systemd 251).  A device whose uevent write fails fails the pass but not
# the other devices: both passes run whatever the first one says.
REPLAY = (
    ("udevadm", "trigger", "--type=subsystems", "--action=add"),
    ("udevadm", "trigger", "--type=devices", "--action=add", "--settle"),
)


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    """udevadm control --reload, then the coldplug replay: udevadm trigger --action=add, settled
    (no D-Bus: udevd has none).  Under a root other than / there is no udevd of the device's to tell."""
    outcome = Outcome()
    if not result.changes or not ctx.layout.is_live:
        return outcome
    if not os.path.exists(ctx.layout.path("/run/udev/control")):
        outcome.problems.append("systemd-udevd is not running: the rules take effect when it starts")
        return outcome
    problem = await _udevadm(RELOAD)
    if problem:
        outcome.problems.append(problem)  # udevd kept its old rules: replaying would apply those
        return outcome
    for argv in REPLAY:
        problem = await _udevadm(argv)
        if problem:
            outcome.problems.append(problem)
    return outcome


async def _udevadm(argv: tuple[str, ...]) -> str:
    """What went wrong running ``argv``; empty when nothing did."""
    from hostd import children  # the live side only: the offline steps (hostd.prepare) run without asyncio

    try:
        returncode, _, stderr = await children.run(argv, UDEVADM_TIMEOUT, stdout=False)
    except TimeoutError:
        return f"{' '.join(argv)}: no answer within {UDEVADM_TIMEOUT:g} s"
    if returncode != 0:
        return f"{' '.join(argv)} failed: {stderr.decode(errors='replace').strip()}"
    return ""
