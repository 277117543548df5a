"""NetworkManager profiles dropped into the boot partition (``system-connections/``).

Each file is validated as a NetworkManager keyfile and rejected alone when bad; good ones are
imported 0600 root:root.  See ``imports`` for what is removed and what is never touched.
"""

from __future__ import annotations

from hostd import keyfile
from hostd.steps.base import Context, Plan
from hostd.steps.imports import BootFile, plan_import, read_boot_dir

NAME = "connections"
KEYS: frozenset[str] = frozenset()  # follows the boot partition's files, not config.json keys


def _ignored_by_nm(name: str) -> str | None:
    # Importing a file NetworkManager never loads would only hide the mistake: say so instead.
    if keyfile.nm_ignores_name(name):
        return (
            f"{name}: NetworkManager never loads a file named like this (hidden, backup, certificate or temp-file name)"
        )
    return None


def plan(ctx: Context) -> Plan:
    result = Plan()
    layout = ctx.layout
    if link := layout.symlink_in(layout.boot_connections):
        result.problems.append(
            f"{layout.device_path(link)}: is a symbolic link; hostd does not read through it, "
            "imported profiles are left as they are"
        )
        return result
    files = read_boot_dir(
        layout.boot_connections, keyfile.MAX_KEYFILE_BYTES, keyfile.check_name, result.report, _ignored_by_nm
    )
    if files is None:
        result.problems.append(f"{layout.boot_connections}: cannot be read; imported profiles are left as they are")
        return result
    good: list[BootFile] = []
    owner_of_uuid: dict[str, str] = {}
    for boot_file in files:
        try:
            profile = keyfile.parse_keyfile(boot_file.name, boot_file.content)
        except keyfile.KeyfileError as exc:
            result.report.append({"name": boot_file.name, "status": "rejected", "reason": str(exc)})
            continue
        if profile.uuid and profile.uuid in owner_of_uuid:
            result.report.append(
                {
                    "name": boot_file.name,
                    "status": "rejected",
                    "reason": f"{boot_file.name}: connection.uuid {profile.uuid!r} is already used by "
                    f"{owner_of_uuid[profile.uuid]}",
                }
            )
            continue
        if profile.uuid:
            owner_of_uuid[profile.uuid] = boot_file.name
        good.append(boot_file)
    plan_import(
        result,
        layout,
        files=good,
        target_dir=layout.nm_connections,
        manifest_path=layout.hostd_state / "imported-connections.json",
        mode=0o600,
    )
    return result
