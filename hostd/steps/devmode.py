"""``developmentMode`` -> balenaOS's development-features flag, ``/var/volatile/development-features``.

The flag file is also the environment of the units behind the development features, as on
balenaOS: ``SSHD_OPTS`` (sshd@.service: root with an empty password on port 22222; keys still
required when ``os.sshKeys`` is set) and ``BALENA_DEVELOPMENT_ARGS`` (the engine on tcp 2375
without auth).  The getty units are conditioned on its existence.  Production: no flag, the
read-only sshd_config (keys only), none of those.  When the flag changes,
``development-features.target`` is restarted, and with it every unit that is part of it.
"""

from __future__ import annotations

from hostd import keys
from hostd.bus import errors
from hostd.config import Config
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "devmode"
KEYS = keys.read_by(NAME)  # developmentMode, and os.sshKeys: with keys, development mode requires them
TRIGGERS: frozenset[Event] = frozenset()

DEVELOPMENT_TARGET = "development-features.target"
DEVELOPMENT_SSHD_OPTS = "-f /etc/ssh/sshd_config_development"
KEYS_REQUIRED_SSHD_OPTS = " -o PasswordAuthentication=no"
DEVELOPMENT_ENGINE_ARGS = "-H tcp://0.0.0.0:2375"


def flag_content(config: Config) -> bytes | None:
    """The flag file's content (an environment file), None in production (no flag)."""
    if not config.development_mode:
        return None
    sshd_opts = DEVELOPMENT_SSHD_OPTS + (KEYS_REQUIRED_SSHD_OPTS if config.ssh_keys else "")
    return f"SSHD_OPTS='{sshd_opts}'\nBALENA_DEVELOPMENT_ARGS='{DEVELOPMENT_ENGINE_ARGS}'\n".encode()


def plan(ctx: Context) -> Plan:
    result = Plan()
    plan_file(result, ctx.layout, ctx.layout.devmode_env, flag_content(ctx.config))
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    """Restart development-features.target when the flag changed: its units read the flag when
    they start (or check it as their condition)."""
    outcome = Outcome()
    if not result.changes:
        return outcome
    systemd = services.systemd
    if (await systemd.unit_state(DEVELOPMENT_TARGET)).load_state != "loaded":
        return outcome  # an image without development features
    try:
        job = await systemd.restart_unit(DEVELOPMENT_TARGET)
    except errors.BusError as exc:
        outcome.problems.append(f"{DEVELOPMENT_TARGET} not restarted: {exc}")
        return outcome
    if job.value != "done":
        outcome.problems.append(f"{DEVELOPMENT_TARGET}: restart job {job.value}")
    return outcome
