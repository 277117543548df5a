"""chrony's extra sources (``ntpServers``), one ``pool NAME iburst`` line each, in its sourcedir."""

from __future__ import annotations

from hostd.steps.base import Context, Plan, plan_file

NAME = "ntp"
KEYS = frozenset({"ntpServers"})


def plan(ctx: Context) -> Plan:
    result = Plan()
    servers = ctx.config.ntp_servers
    content = "".join(f"pool {server} iburst\n" for server in servers).encode() if servers else None
    path = ctx.layout.chrony_sources
    # A chrony unit with RuntimeDirectory= (Debian's) hands the directory, files included, to
    # chrony's user when it starts: the file has the directory's owner, or every run would take it back.
    owner = path.parent.stat() if path.parent.is_dir() else None
    plan_file(result, ctx.layout, path, content, 0o644, *((owner.st_uid, owner.st_gid) if owner else ()))
    return result
