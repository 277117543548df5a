"""systemd's Manager: unit jobs that are waited for, unit state, transient bind mounts, unit files, reload."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus

from hostd.bus import errors, names
from hostd.bus.base import (
    DEFAULT_TIMEOUT,
    BusAdapter,
    Callbacks,
    TolerantStrEnum,
    properties_changed_rule,
)
from hostd.record import Record

DEFAULT_JOB_TIMEOUT = 90.0
"""Seconds to wait for a job to finish; systemd's own default start timeout is 90 s."""
DAEMON_RELOAD_TIMEOUT = 30.0
"""systemd answers Reload only once the reload is done, which takes seconds on a small board."""

UNIT_INTERFACE = "org.freedesktop.systemd1.Unit"
_JOB_MODE = "replace"
_UNIT_NAME_MAX = 255
_UNESCAPED = frozenset(string.ascii_letters + string.digits + ":_.")


class JobResult(TolerantStrEnum):
    DONE = "done"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    FAILED = "failed"
    DEPENDENCY = "dependency"
    SKIPPED = "skipped"
    INVALID = "invalid"
    ASSERT = "assert"
    UNSUPPORTED = "unsupported"
    COLLECTED = "collected"
    ONCE = "once"
    UNKNOWN = "unknown"


class ActiveState(TolerantStrEnum):
    ACTIVE = "active"
    RELOADING = "reloading"
    INACTIVE = "inactive"
    FAILED = "failed"
    ACTIVATING = "activating"
    DEACTIVATING = "deactivating"
    MAINTENANCE = "maintenance"
    REFRESHING = "refreshing"
    UNKNOWN = "unknown"


class UnitState(Record):
    __slots__ = ("active_state", "load_state", "name", "sub_state")

    def __init__(self, name: str, load_state: str, active_state: ActiveState, sub_state: str) -> None:
        self.name = name
        # "loaded", "not-found", "masked", …; a unit that does not exist is "not-found", not an error
        self.load_state = load_state
        self.active_state = active_state
        self.sub_state = sub_state


class UnitFileChange(Record):
    __slots__ = ("destination", "kind", "path")

    def __init__(self, kind: str, path: str, destination: str) -> None:
        self.kind = kind  # "symlink" or "unlink"
        self.path = path
        self.destination = destination


def unit_object_path(unit: str) -> str:
    """The object path systemd gives a unit (sd_bus_path_encode: each byte outside [A-Za-z0-9] as _xx)."""
    encoded = "".join(c if c.isascii() and c.isalnum() else "".join(f"_{b:02x}" for b in c.encode()) for c in unit)
    return f"{names.SYSTEMD_PATH}/unit/{encoded}"


def unit_name_from_path(path: str, suffix: str = ".mount") -> str:
    """The unit name systemd requires for a path, as `systemd-escape --path --suffix=…` prints it."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    components = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in components:
        raise ValueError(f"not a normalized path: {path!r}")
    escaped = _escape("/".join(components)) if components else "-"
    name = escaped + suffix
    if len(name) > _UNIT_NAME_MAX:
        raise ValueError(f"unit name for {path!r} would exceed {_UNIT_NAME_MAX} characters")
    return name


def _escape(relative_path: str) -> str:
    escaped = []
    for position, byte in enumerate(relative_path.encode()):
        char = chr(byte)
        if char == "/":
            escaped.append("-")
        elif char in _UNESCAPED and not (position == 0 and char == "."):
            # A leading dot is escaped so "/.dir" does not become a hidden unit file.
            escaped.append(char)
        else:
            escaped.append(f"\\x{byte:02x}")
    return "".join(escaped)


class SystemdAdapter(BusAdapter):
    key = "systemd"
    bus_name = names.SYSTEMD_NAME
    signal_rules = ({"path": names.SYSTEMD_PATH, "interface": names.SYSTEMD_MANAGER_INTERFACE, "member": "JobRemoved"},)

    def __init__(
        self,
        bus: MessageBus,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
        followed_units: tuple[str, ...] = (),
        awaited_units: tuple[str, ...] = (),
    ) -> None:
        super().__init__(bus, timeout=timeout)
        self.job_timeout = job_timeout
        # Units whose ActiveState is followed from PropertiesChanged (services with no bus name of
        # their own, such as chronyd and journald), and units whose job hostd waits for without
        # following their state (wait_until_no_job): one narrow match rule each.
        self._followed = {unit_object_path(unit): unit for unit in (*followed_units, *awaited_units)}
        self._awaited = frozenset(awaited_units)
        self._no_job_waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self.signal_rules = (
            *type(self).signal_rules,
            *(properties_changed_rule(path=path, arg0=UNIT_INTERFACE) for path in self._followed),
        )
        self._unit_state_callbacks = Callbacks(self._log, "unit state changed")
        self._job_calls_in_flight = 0
        # JobRemoved can be read before the coroutine that created the job resumes with the job's path.
        self._finished_before_awaited: dict[str, str] = {}
        self._job_waiters: dict[str, asyncio.Future[str]] = {}

    async def start_unit(self, name: str, *, job_timeout: float | None = None) -> JobResult:
        return await self._run_job("StartUnit", "ss", name, _JOB_MODE, job_timeout=job_timeout)

    async def stop_unit(self, name: str, *, job_timeout: float | None = None) -> JobResult:
        return await self._run_job("StopUnit", "ss", name, _JOB_MODE, job_timeout=job_timeout)

    async def restart_unit(self, name: str, *, job_timeout: float | None = None) -> JobResult:
        return await self._run_job("RestartUnit", "ss", name, _JOB_MODE, job_timeout=job_timeout)

    async def try_restart_unit(self, name: str, *, job_timeout: float | None = None) -> JobResult:
        """Restart the unit only if it is running."""
        return await self._run_job("TryRestartUnit", "ss", name, _JOB_MODE, job_timeout=job_timeout)

    async def reset_failed_unit(self, name: str) -> None:
        """Forget a unit's failures and its start-rate count, so a deliberate restart is not refused."""
        await self._manager("ResetFailedUnit", "s", name)

    async def kill_unit(self, name: str, signal: int, *, who: str = "main") -> None:
        """Send signal to the unit's main process (who="main") or all its processes ("all")."""
        await self._manager("KillUnit", "ssi", name, who, signal)

    async def unit_state(self, name: str) -> UnitState:
        return (await self.unit_states([name]))[0]

    async def unit_states(self, names: Sequence[str]) -> list[UnitState]:
        """The state of each unit, in order, in one call."""
        (units,) = await self._manager("ListUnitsByNames", "as", list(names))
        if len(units) != len(names):
            raise errors.NoSuchObject(f"systemd returned {len(units)} units for {len(names)} names")
        return [
            UnitState(unit_name, load_state, ActiveState(active_state), sub_state)
            for unit_name, _description, load_state, active_state, sub_state, *_ in units
        ]

    async def start_transient_mount(
        self, what: str, where: str, options: str = "bind", *, job_timeout: float | None = None
    ) -> JobResult:
        """Mount what on where through a transient unit, so systemd tracks and orders the mount."""
        unit = unit_name_from_path(where, ".mount")
        properties = [
            ["Description", Variant("s", f"hostd mount of {where}")],
            ["What", Variant("s", what)],
            ["Where", Variant("s", where)],
            ["Options", Variant("s", options)],
        ]
        return await self._run_job(
            "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, _JOB_MODE, properties, [], job_timeout=job_timeout
        )

    async def enable_unit_files(
        self, files: Sequence[str], *, runtime: bool, force: bool = False
    ) -> list[UnitFileChange]:
        """runtime=True links under /run (gone at reboot), the only choice on a read-only root."""
        _carries_install_info, changes = await self._manager("EnableUnitFiles", "asbb", list(files), runtime, force)
        return [UnitFileChange(*change) for change in changes]

    async def disable_unit_files(self, files: Sequence[str], *, runtime: bool) -> list[UnitFileChange]:
        (changes,) = await self._manager("DisableUnitFiles", "asb", list(files), runtime)
        return [UnitFileChange(*change) for change in changes]

    async def reload(self, *, timeout: float = DAEMON_RELOAD_TIMEOUT) -> None:
        """daemon-reload; returns when systemd has finished reloading."""
        await self._manager("Reload", timeout=timeout)

    async def _manager(
        self, method: str, signature: str = "", *body: object, timeout: float | None = None
    ) -> list[Any]:
        return await self._call(
            names.SYSTEMD_PATH, names.SYSTEMD_MANAGER_INTERFACE, method, signature, *body, timeout=timeout
        )

    async def _run_job(self, method: str, signature: str, *body: object, job_timeout: float | None) -> JobResult:
        self._job_calls_in_flight += 1
        try:
            (job,) = await self._manager(method, signature, *body)
        finally:
            self._job_calls_in_flight -= 1
        result = self._finished_before_awaited.pop(job, None)
        if self._job_calls_in_flight == 0:
            self._finished_before_awaited.clear()
        if result is None:
            result = await self._wait_for_job(job, self.job_timeout if job_timeout is None else job_timeout)
        return JobResult(result)

    async def _wait_for_job(self, job: str, bound: float) -> str:
        waiter = asyncio.get_running_loop().create_future()
        self._job_waiters[job] = waiter
        try:
            return await asyncio.wait_for(waiter, bound)
        except TimeoutError:
            raise errors.Timeout(f"job {job} did not finish within {bound:g} s") from None
        finally:
            self._job_waiters.pop(job, None)

    def followed_unit_state(self, name: str) -> ActiveState | None:
        """The ActiveState of a followed unit (None: not known, e.g. the unit does not exist)."""
        if self._cached(unit_object_path(name), UNIT_INTERFACE).get("LoadState") != "loaded":
            return None
        return ActiveState(self._cached(unit_object_path(name), UNIT_INTERFACE).get("ActiveState", "unknown"))

    def has_job(self, name: str) -> bool:
        """An awaited unit has a job queued or running (at boot: its start job), as systemd said last."""
        job_id, _job_path = self._cached(unit_object_path(name), UNIT_INTERFACE).get("Job", [0, "/"])
        return self.attached and job_id != 0

    async def wait_until_no_job(self, name: str) -> bool:
        """Return once an awaited unit has no job (its start done, failed, or skipped by a
        condition), at once if it has none: True.  False, without waiting, when systemd cannot say
        (not on the bus, not attached) or leaves the bus during the wait.  No call: the state read
        at attach, JobRemoved and PropertiesChanged tell it."""
        if not self.attached:
            return False
        if not self.has_job(name):
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._no_job_waiters.setdefault(name, []).append(waiter)
        return await waiter

    def _wake_no_job_waiters(self, name: str) -> None:
        if not self.has_job(name):
            for waiter in self._no_job_waiters.pop(name, []):
                if not waiter.done():
                    waiter.set_result(True)

    def on_unit_state_changed(self, callback: Callable[[str, ActiveState], Awaitable[None]]) -> None:
        """Register a callback that gets (unit, ActiveState) whenever a followed unit's state changes."""
        self._unit_state_callbacks.add(callback)

    async def _on_attached(self) -> None:
        # systemd only emits JobRemoved while someone is subscribed; a restarted systemd forgot us.
        await self._manager("Subscribe")
        if not self._followed:
            return
        # One call for every followed unit: ListUnitsByNames loads each unit (its object, whose
        # PropertiesChanged the match rules follow, exists only once loaded) and answers its state.
        units = list(self._followed.values())
        reply = await self._call_message(
            names.SYSTEMD_PATH, names.SYSTEMD_MANAGER_INTERFACE, "ListUnitsByNames", "as", units
        )
        # (name, description, load, active, sub, following, unit path, job id, job type, job path)
        for unit_name, _description, load_state, active_state, *_, job_id, _job_type, job in reply.body[0]:
            values = {"ActiveState": active_state, "LoadState": load_state, "Job": [job_id, job]}
            self._store_properties(unit_object_path(unit_name), UNIT_INTERFACE, values, reply.serial)

    def _on_properties_changed(self, path: str, interface: str, changed: set[str]) -> None:
        unit = self._followed.get(path)
        if unit in self._awaited:
            if "Job" in changed:
                self._wake_no_job_waiters(unit)
        elif unit is not None and "ActiveState" in changed:
            state = self.followed_unit_state(unit)
            if state is not None:
                self._unit_state_callbacks.fire(unit, state)

    def _on_detached(self) -> None:
        for waiter in self._job_waiters.values():
            if not waiter.done():
                waiter.set_exception(errors.ServiceUnavailable("systemd went away while a job was running"))
        self._finished_before_awaited.clear()
        for waiters in self._no_job_waiters.values():
            for no_job_waiter in waiters:
                if not no_job_waiter.done():
                    no_job_waiter.set_result(False)
        self._no_job_waiters.clear()

    def _on_signal(self, message: Message) -> None:
        if message.member != "JobRemoved":
            return
        _job_id, job, unit, result = message.body
        if unit in self._awaited:
            # Also told by the unit's PropertiesChanged (Job), which a systemd may merge or delay.
            self._store_properties(unit_object_path(unit), UNIT_INTERFACE, {"Job": [0, "/"]}, message.serial)
            self._wake_no_job_waiters(unit)
        waiter = self._job_waiters.get(job)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(result)
        elif self._job_calls_in_flight:
            self._finished_before_awaited[job] = result
