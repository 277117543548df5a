"""``os.sshKeys`` -> the root account's extra authorized keys (0600); removed when there are none."""

from __future__ import annotations

import os

from hostd import fsutil, keys
from hostd.steps.base import Change, Context, Event, Plan, plan_file

NAME = "ssh"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()
NO_LIVE_EFFECT = "sshd reads authorized_keys_local at every login"


def plan(ctx: Context) -> Plan:
    result = Plan()
    keys = ctx.config.ssh_keys
    path = ctx.layout.authorized_keys
    directory = os.path.dirname(path)
    if keys and not os.path.isdir(directory):
        result.changes.append(
            Change("mkdir", ctx.layout.device_path(directory), action=lambda: fsutil.ensure_dir(directory, 0o700))
        )
    content = "".join(f"{key}\n" for key in keys).encode() if keys else None
    plan_file(result, ctx.layout, path, content, 0o600)
    return result
