"""NetworkManager profiles dropped into the boot partition (``system-connections/``).

Each file is validated as a NetworkManager keyfile and rejected alone when bad; good ones are
imported 0600 root:root.  See ``imports`` for what is removed and what is never touched.  Live:
NetworkManager loads exactly the changed files and gives its verdict per file; a changed profile
is activated where NetworkManager would run it at boot, so that the safe-apply probe judges it.
"""

from __future__ import annotations

import os

from hostd import keyfile
from hostd.log import Logger
from hostd.steps.base import Context, Event, FileEntry, FileStatus, Outcome, Plan, StepResult
from hostd.steps.imports import BootFile, plan_import, read_boot_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.networkmanager import ConnectionProfile, NetworkManagerAdapter
    from hostd.bus.services import Services

log = Logger("hostd.steps.connections")

NAME = "connections"
# Imported files NetworkManager should have loaded.
LOADABLE = (FileStatus.IMPORTED, FileStatus.UNCHANGED, FileStatus.KEPT)
KEYS: frozenset[str] = frozenset()  # follows the boot partition's files, not config.json keys
TRIGGERS = frozenset({Event.NETWORKMANAGER_ATTACHED})


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
            result.report.append(FileEntry(boot_file.name, FileStatus.REJECTED, str(exc)))
            continue
        if profile.uuid and profile.uuid in owner_of_uuid:
            result.report.append(
                FileEntry(
                    boot_file.name,
                    FileStatus.REJECTED,
                    f"{boot_file.name}: connection.uuid {profile.uuid!r} is already used by "
                    f"{owner_of_uuid[profile.uuid]}",
                )
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
        manifest_path=os.path.join(layout.hostd_state, "imported-connections.json"),
        mode=0o600,
    )
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    nm = services.networkmanager
    entries = result.file_entries()
    if not nm.attached:
        outcome.verdicts = {
            entry.name: "not loaded: NetworkManager is not running" for entry in entries if entry.status in LOADABLE
        }
        return outcome
    layout = ctx.layout
    directory = layout.nm_connections
    profile_changes = [
        change
        for change in result.changes
        if change.kind in ("write", "remove") and os.path.dirname(layout.path(change.path)) == directory
    ]
    touched = [layout.path(change.path) for change in profile_changes]
    failures: set[str] = set()
    if touched:
        load = await nm.load_connections(touched)
        failures = set(load.failures)
    loaded = await nm.connection_filenames()  # one call; a profile's settings only when needed below
    for entry in entries:
        path = os.path.join(directory, entry.name)
        if entry.status == FileStatus.REMOVED:
            outcome.verdicts[entry.name] = "still loaded" if path in loaded else "unloaded"
        elif entry.status in LOADABLE:
            if path in loaded:
                outcome.verdicts[entry.name] = "loaded"
            else:
                outcome.verdicts[entry.name] = "failed: NetworkManager did not load it" + (
                    " (LoadConnections reported it)" if path in failures else ""
                )
                outcome.problems.append(f"{entry.name}: NetworkManager did not load it")
    written = {layout.path(change.path) for change in profile_changes if change.kind == "write"}
    if written and layout.is_live:
        profiles = await nm.list_connections()
        await _activate_written(nm, [p for p in profiles if p.filename in written], profiles, outcome)
    return outcome


async def _activate_written(
    nm: NetworkManagerAdapter, written: list[ConnectionProfile], profiles: list[ConnectionProfile], outcome: Outcome
) -> None:
    """NetworkManager loads a new or changed profile but keeps a device on the profile it runs
    until it reconnects (the next boot): the change would pass the safe-apply probe unused and
    cut the device off at the next boot.  So a written autoconnect profile is activated now where
    NetworkManager would run it at boot: on the device it runs on now (a profile edited in place,
    bound to a device or not), or on its own device when it ranks above that device's profile by
    autoconnect-priority; the probe then judges it in use."""
    from hostd.bus import errors  # the live side only: the boot stage plans without D-Bus

    if not any(profile.autoconnect for profile in written):
        return
    targets: dict[str, ConnectionProfile] = {}  # interface -> profile
    try:
        running = await nm.running_profiles()
    except errors.BusError as exc:
        outcome.problems.append(f"changed profiles not activated: {exc}")
        return
    for profile in written:
        if not profile.autoconnect:
            continue
        running_on = running.get(profile.path, [])
        for interface in running_on:
            targets[interface] = profile
        if profile.interface_name and profile.interface_name not in running_on:
            other = targets.get(profile.interface_name)
            if other is None or profile.autoconnect_priority > other.autoconnect_priority:
                targets[profile.interface_name] = profile
    priority = {profile.path: profile.autoconnect_priority for profile in profiles}
    for interface, profile in targets.items():
        name = profile.filename.rsplit("/", 1)[-1]
        try:
            active = await nm.active_profile_of(interface)
            if active is None or (
                active and active != profile.path and priority.get(active, 0) >= profile.autoconnect_priority
            ):
                continue  # no such device, or NetworkManager keeps the profile it runs
            await nm.activate(profile.path, interface)
            log.info("%s: activated on %s", name, interface)
        except errors.BusError as exc:
            outcome.problems.append(f"{name}: not activated on {interface}: {exc}")
