"""``os.sshKeys`` -> the root account's extra authorized keys (0600); removed when there are none."""

from __future__ import annotations

from hostd import fsutil
from hostd.steps import devmode
from hostd.steps.base import Change, Context, Plan, plan_file

NAME = "ssh"
KEYS = frozenset({"os.sshKeys"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    keys = ctx.config.ssh_keys
    path = ctx.layout.authorized_keys
    if keys and not path.parent.is_dir():
        result.changes.append(
            Change("mkdir", ctx.layout.device_path(path.parent), action=lambda: fsutil.ensure_dir(path.parent, 0o700))
        )
    content = "".join(f"{key}\n" for key in keys).encode() if keys else None
    plan_file(result, ctx.layout, path, content, 0o600)
    # With keys, development mode requires them too: the development flag's SSHD_OPTS follow them.
    devmode.plan_flag(result, ctx)
    return result
