"""The setup steps, in the order they run.  Each module: NAME, KEYS, plan(ctx) -> Plan."""

from __future__ import annotations

from hostd.steps import (
    connections,
    devmode,
    dispatcher,
    dns,
    hostname,
    identity,
    journal,
    netconfig,
    ntp,
    regdomain,
    ssh,
    state,
    udev,
)
from hostd.steps.base import Step

# state first: the persistent paths must be bound before anything writes through them.
ALL_STEPS: tuple[Step, ...] = (
    identity,
    state,
    hostname,
    connections,
    dispatcher,
    dns,
    journal,
    ntp,
    ssh,
    devmode,
    netconfig,
    regdomain,
    udev,
)
STEPS_BY_NAME: dict[str, Step] = {step.NAME: step for step in ALL_STEPS}
