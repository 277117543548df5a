"""The device uuid: generated and written back to config.json when missing."""

from __future__ import annotations

import os

from hostd import config, fsutil, keys
from hostd.steps.base import Change, Context, Event, Plan

NAME = "identity"
KEYS = keys.read_by(NAME)
TRIGGERS: frozenset[Event] = frozenset()
NO_LIVE_EFFECT = "the uuid is written back to config.json; no service reads it from there"


def plan(ctx: Context) -> Plan:
    result = Plan()
    uuid = ctx.config.uuid
    if not ctx.config.uuid_generated or uuid is None:
        return result
    path = ctx.layout.config_json

    def write_back() -> None:
        # Re-read: the file may have changed since it was planned; every other byte is kept.
        with open(path, "rb") as file:
            raw = file.read()
        fsutil.atomic_write(path, config.with_key_set(raw, "uuid", uuid), os.stat(path).st_mode & 0o777)

    result.changes.append(Change("write", ctx.layout.device_path(path), "generated uuid", write_back))
    return result
