"""The registry of setup steps, in the order they run.

Each module is one step, named after it (see ``hostd.steps.base``): its keys, its offline plan,
its live effect (or why it needs none) and the service events that re-run it.
"""

from __future__ import annotations

from hostd.steps import (
    connections,
    devmode,
    dispatcher,
    dns,
    hostname,
    identity,
    logging,
    network_config,
    ntp,
    proxy,
    regulatory_domain,
    ssh,
    state,
    udev,
)
from hostd.steps.base import Event, Step

# state first: the persistent paths must be bound before anything writes through them.
ALL_STEPS: tuple[Step, ...] = (
    identity,
    state,
    hostname,
    connections,
    dispatcher,
    dns,
    logging,
    ntp,
    ssh,
    devmode,
    network_config,
    regulatory_domain,
    udev,
    proxy,
)
STEPS_BY_NAME: dict[str, Step] = {step.NAME: step for step in ALL_STEPS}


def triggered_by(event: Event) -> tuple[str, ...]:
    """The steps a service event re-runs, in running order."""
    return tuple(step.NAME for step in ALL_STEPS if event in step.TRIGGERS)
