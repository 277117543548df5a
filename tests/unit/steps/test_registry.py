"""The step registry: every step is one module named after it, with its keys from the keys table,
its triggers, and a live effect or the reason it needs none."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from hostd import keys
from hostd.steps import ALL_STEPS, STEPS_BY_NAME, triggered_by
from hostd.steps.base import Event, live_effect

REPO = Path(__file__).parents[3]


def test_every_step_is_a_module_named_after_it() -> None:
    for step in ALL_STEPS:
        assert step.__name__ == "hostd.steps." + step.NAME.replace("-", "_")  # type: ignore[attr-defined]
    assert len(STEPS_BY_NAME) == len(ALL_STEPS)


def test_keys_come_from_the_keys_table() -> None:
    for step in ALL_STEPS:
        assert keys.read_by(step.NAME) == step.KEYS, step.NAME
    assert {name for key in keys.TABLE for name in key.steps} <= set(STEPS_BY_NAME)


def test_every_step_has_a_live_effect_or_says_why_it_needs_none() -> None:
    for step in ALL_STEPS:
        effect = live_effect(step)
        reason = getattr(step, "NO_LIVE_EFFECT", None)
        assert (effect is None) != (reason is None), f"{step.NAME}: a live effect or NO_LIVE_EFFECT, one of them"
        if effect is not None:
            assert inspect.iscoroutinefunction(effect), step.NAME
        else:
            assert isinstance(reason, str) and len(reason) > 20, step.NAME


def test_triggers_are_service_events_and_every_event_triggers_a_step() -> None:
    for step in ALL_STEPS:
        assert isinstance(step.TRIGGERS, frozenset) and all(isinstance(e, Event) for e in step.TRIGGERS), step.NAME
        if step.TRIGGERS:
            assert live_effect(step) is not None, f"{step.NAME}: re-run for a service, but has nothing to give it"
    for event in Event:
        assert triggered_by(event), event


def test_triggered_steps_run_in_registry_order() -> None:
    assert triggered_by(Event.NETWORKMANAGER_ATTACHED) == ("connections", "dns")
    assert triggered_by(Event.JOURNALD_RETURNED) == ("logging",)


def test_the_offline_side_never_imports_dbus_fast() -> None:
    """config, keys, the steps' plans, the engine, fsutil and layout work without D-Bus (hostctl
    plan/apply --offline, config check): importing them must not load dbus_fast."""
    modules = ["hostd.config", "hostd.keys", "hostd.engine", "hostd.fsutil", "hostd.layout", "hostd.steps"]
    modules += [step.__name__ for step in ALL_STEPS]  # type: ignore[attr-defined]
    code = "import importlib, sys\n"
    code += "".join(f"importlib.import_module({name!r})\n" for name in modules)
    code += "print(sorted(name for name in sys.modules if name.split('.')[0] == 'dbus_fast'))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
