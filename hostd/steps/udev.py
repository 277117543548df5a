"""``os.udevRules`` (name -> rule text) -> ``/etc/udev/rules.d/<name>.rules``.

Rules hostd wrote are tracked like boot-partition imports, so a rule dropped from config.json
is removed and rules created on the device are never touched.  udevd is then told to re-read its
rules and the present devices are replayed through them (a "change" event each), so the rules
act on devices already there, not only on the next one plugged in.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hostd.steps.base import Context, Plan

if TYPE_CHECKING:  # the engine imports the steps
    from hostd.engine import StepResult
    from hostd.layout import Layout
from hostd.steps.imports import BootFile, plan_import

NAME = "udev"
KEYS = frozenset({"os.udevRules"})


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


UDEVADM_TIMEOUT = 30.0


async def reload_and_trigger(layout: Layout, result: StepResult) -> None:
    """udevadm control --reload, then udevadm trigger --action=change --settle."""
    if not result.changes:
        return
    if not layout.path("/run/udev/control").exists():
        result.problems.append("systemd-udevd is not running: the rules take effect when it starts")
        return
    for argv in (
        ("udevadm", "control", "--reload"),
        ("udevadm", "trigger", "--action=change", "--settle"),
    ):
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), UDEVADM_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            result.problems.append(f"{' '.join(argv)}: no answer within {UDEVADM_TIMEOUT:g} s")
            return
        if process.returncode != 0:
            result.problems.append(f"{' '.join(argv)} failed: {stderr.decode(errors='replace').strip()}")
            return
