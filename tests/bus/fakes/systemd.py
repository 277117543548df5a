"""A fake systemd Manager: jobs that finish with a scripted result, unit states, unit files."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

from hostd.bus import names

from .base import FakeService

Str = Annotated[str, DBusSignature("s")]
Path = Annotated[str, DBusSignature("o")]
StrList = Annotated[list[str], DBusSignature("as")]
Bool = Annotated[bool, DBusSignature("b")]
Properties = Annotated[list[Any], DBusSignature("a(sv)")]
AuxUnits = Annotated[list[Any], DBusSignature("a(sa(sv))")]
Changes = Annotated[list[list[str]], DBusSignature("a(sss)")]
EnableReply = Annotated[tuple[bool, list[list[str]]], DBusSignature("ba(sss)")]
UnitList = Annotated[list[list[Any]], DBusSignature("a(ssssssouso)")]
JobRemovedBody = Annotated[tuple[int, str, str, str], DBusSignature("uoss")]


class Manager(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.SYSTEMD_MANAGER_INTERFACE)
        self.job_results: dict[str, str] = {}
        """Result of jobs per unit; "done" when absent."""
        self.job_delay = 0.0
        self.units: dict[str, tuple[str, str, str]] = {}
        """unit -> (load state, active state, sub state)"""
        self.transient_units: dict[str, dict[str, Any]] = {}
        self.queued_jobs: dict[str, int] = {}
        """unit -> id of a job that runs until finish_job() (a boot's start job still running)"""
        self._next_job = 0

    def queue_job(self, unit: str) -> None:
        self._next_job += 1
        self.queued_jobs[unit] = self._next_job

    def finish_job(self, unit: str, result: str = "done") -> None:
        job_id = self.queued_jobs.pop(unit)
        self.JobRemoved(job_id, f"{names.SYSTEMD_PATH}/job/{job_id}", unit, result)

    def _queue_job(self, unit: str) -> str:
        self._next_job += 1
        job_id = self._next_job
        job = f"{names.SYSTEMD_PATH}/job/{job_id}"
        result = self.job_results.get(unit, "done")
        # Emitted after the reply is on its way, like systemd finishing a job on a later loop turn.
        loop = asyncio.get_running_loop()
        loop.call_later(self.job_delay, self.JobRemoved, job_id, job, unit, result)
        return job

    @dbus_signal()
    def JobRemoved(self, job_id: int, job: str, unit: str, result: str) -> JobRemovedBody:
        return (job_id, job, unit, result)

    @dbus_method()
    def StartUnit(self, name: Str, mode: Str) -> Path:
        return self._queue_job(name)

    @dbus_method()
    def StopUnit(self, name: Str, mode: Str) -> Path:
        return self._queue_job(name)

    @dbus_method()
    def RestartUnit(self, name: Str, mode: Str) -> Path:
        return self._queue_job(name)

    @dbus_method()
    def TryRestartUnit(self, name: Str, mode: Str) -> Path:
        return self._queue_job(name)

    @dbus_method()
    def StartTransientUnit(self, name: Str, mode: Str, properties: Properties, aux: AuxUnits) -> Path:
        self.transient_units[name] = {key: variant.value for key, variant in properties}
        if self.job_results.get(name, "done") == "done":
            self.units[name] = ("loaded", "active", "mounted")
        return self._queue_job(name)

    @dbus_method()
    def ListUnitsByNames(self, units: StrList) -> UnitList:
        rows = []
        for unit in units:
            load, active, sub = self.units.get(unit, ("not-found", "inactive", "dead"))
            job_id = self.queued_jobs.get(unit, 0)
            job = (f"{names.SYSTEMD_PATH}/job/{job_id}", "start") if job_id else ("/", "")
            rows.append([unit, "", load, active, sub, "", "/", job_id, job[1], job[0]])
        return rows

    @dbus_method()
    def EnableUnitFiles(self, files: StrList, runtime: Bool, force: Bool) -> EnableReply:
        where = "/run" if runtime else "/etc"
        return (True, [["symlink", f"{where}/systemd/system/multi-user.target.wants/{f}", f] for f in files])

    @dbus_method()
    def DisableUnitFiles(self, files: StrList, runtime: Bool) -> Changes:
        where = "/run" if runtime else "/etc"
        return [["unlink", f"{where}/systemd/system/multi-user.target.wants/{f}", ""] for f in files]

    @dbus_method()
    def ResetFailedUnit(self, name: Str):  # no return annotation: no reply body
        pass

    @dbus_method()
    def Reload(self):  # no return annotation: dbus-fast reads it as "no reply body"
        pass

    @dbus_method()
    def Subscribe(self):
        pass


class FakeSystemd(FakeService):
    bus_name = names.SYSTEMD_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.manager = Manager()

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(names.SYSTEMD_PATH, self.manager)]
