"""NetworkManager dispatcher scripts dropped into the boot partition (``dispatcher.d/``), 0755."""

from __future__ import annotations

import os

from hostd import keyfile
from hostd.steps.base import Context, Event, Plan
from hostd.steps.imports import plan_import, read_boot_dir

NAME = "dispatcher"
KEYS: frozenset[str] = frozenset()  # follows the boot partition's files
TRIGGERS: frozenset[Event] = frozenset()
NO_LIVE_EFFECT = "NetworkManager's dispatcher runs the scripts it finds in its directory at each event"
MAX_SCRIPT_BYTES = 1024 * 1024


def plan(ctx: Context) -> Plan:
    result = Plan()
    layout = ctx.layout
    if link := layout.symlink_in(layout.boot_dispatcher):
        result.problems.append(
            f"{layout.device_path(link)}: is a symbolic link; hostd does not read through it, "
            "imported scripts are left as they are"
        )
        return result
    files = read_boot_dir(layout.boot_dispatcher, MAX_SCRIPT_BYTES, keyfile.check_name, result.report)
    if files is None:
        result.problems.append(f"{layout.boot_dispatcher}: cannot be read; imported scripts are left as they are")
        return result
    plan_import(
        result,
        layout,
        files=files,
        target_dir=layout.nm_dispatcher,
        manifest_path=os.path.join(layout.hostd_state, "imported-dispatcher.json"),
        mode=0o755,
    )
    return result
