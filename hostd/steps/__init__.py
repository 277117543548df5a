"""The registry of setup steps, in the order they run.

Each module is one step, named after it (see ``hostd.steps.base``): its keys, its offline plan,
its live effect (or why it needs none) and the service events that re-run it.

The step modules are imported when ``ALL_STEPS`` or ``STEPS_BY_NAME`` is first used, not with
this package: the network-inputs stage (hostd.prepare), which the network waits for, imports
its own steps only.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.steps.base import Event, Step

# state first: the persistent paths must be bound before anything writes through them.
MODULES = (
    "identity",
    "state",
    "hostname",
    "connections",
    "dispatcher",
    "dns",
    "logging",
    "ntp",
    "ssh",
    "devmode",
    "network_config",
    "regulatory_domain",
    "udev",
    "proxy",
)
ALL_STEPS: tuple[Step, ...]  # the modules, in running order (loaded on first use, see __getattr__)
STEPS_BY_NAME: dict[str, Step]


def __getattr__(name: str) -> object:
    if name not in ("ALL_STEPS", "STEPS_BY_NAME"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here, not at the top: the boot stages import their steps without it

    steps: tuple[Step, ...] = tuple(importlib.import_module(f"{__name__}.{module}") for module in MODULES)  # type: ignore[misc]
    globals().update(ALL_STEPS=steps, STEPS_BY_NAME={step.NAME: step for step in steps})
    return globals()[name]


def triggered_by(event: Event) -> tuple[str, ...]:
    """The steps a service event re-runs, in running order."""
    return tuple(step.NAME for step in __getattr__("ALL_STEPS") if event in step.TRIGGERS)  # type: ignore[attr-defined]
