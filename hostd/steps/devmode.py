"""``developmentMode`` -> the environment the development-feature units read.

On: root SSH without a password on port 22222, the engine on tcp 2375 without auth, getty on
tty1 and serial.  Off: key-only SSH and none of those.  The units are switched at runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostd import keys
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "devmode"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()

DEVELOPMENT_ENV = (
    "DEVELOPMENT_MODE=1\n"
    'SSHD_EXTRA_OPTS="-o PermitRootLogin=yes -o PermitEmptyPasswords=yes -o PasswordAuthentication=yes"\n'
    'ENGINE_EXTRA_ARGS="-H tcp://0.0.0.0:2375"\n'
)
PRODUCTION_ENV = (
    "DEVELOPMENT_MODE=0\n"
    'SSHD_EXTRA_OPTS="-o PermitRootLogin=prohibit-password -o PermitEmptyPasswords=no -o PasswordAuthentication=no"\n'
    'ENGINE_EXTRA_ARGS=""\n'
)


# Units behind the development features: started or stopped with developmentMode, restarted
# when the environment file they read changed.  Units a device does not have are left alone.
SWITCHED_UNITS = ("getty@tty1.service", "serial-getty@ttyS0.service")
RESTARTED_UNITS = ("sshd.service", "balena-engine.service")


def plan(ctx: Context) -> Plan:
    result = Plan()
    env = DEVELOPMENT_ENV if ctx.config.development_mode else PRODUCTION_ENV
    plan_file(result, ctx.layout, ctx.layout.devmode_env, env.encode())
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    if not result.changes:
        return outcome  # only units whose input changed are touched
    systemd = services.systemd
    development = ctx.config.development_mode
    for unit in SWITCHED_UNITS:
        if (await systemd.unit_state(unit)).load_state != "loaded":
            continue
        job = await (systemd.start_unit(unit) if development else systemd.stop_unit(unit))
        if job.value != "done":
            outcome.problems.append(f"{unit}: {'start' if development else 'stop'} job {job.value}")
    for unit in RESTARTED_UNITS:
        if (await systemd.unit_state(unit)).load_state == "loaded":
            await systemd.try_restart_unit(unit)
    return outcome
