"""``developmentMode`` -> the environment the development-feature units read.

On: root SSH without a password on port 22222, the engine on tcp 2375 without auth, getty on
tty1 and serial.  Off: key-only SSH and none of those.  The units are switched at runtime.
"""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "devmode"
KEYS = frozenset({"developmentMode"})

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


def plan(ctx: Context) -> Plan:
    result = Plan()
    env = DEVELOPMENT_ENV if ctx.config.development_mode else PRODUCTION_ENV
    plan_file(result, ctx.layout, ctx.layout.devmode_env, env.encode())
    return result
