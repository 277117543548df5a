"""``os.udevRules`` (name -> rule text) -> ``/etc/udev/rules.d/<name>.rules``.

Rules hostd wrote are tracked like boot-partition imports, so a rule dropped from config.json
is removed and rules created on the device are never touched.
"""

from __future__ import annotations

from hostd import keys
from hostd.steps.base import Context, Event, Plan
from hostd.steps.imports import BootFile, plan_import

NAME = "udev"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()
NO_LIVE_EFFECT = (
    "udevd notices a changed rules directory itself and applies the rules to the devices it sees from then on"
)


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
        manifest_path=ctx.layout.hostd_state / "written-udev-rules.json",
        mode=0o644,
    )
    return result
