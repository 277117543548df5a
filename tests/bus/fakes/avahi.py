"""A fake avahi-daemon: host name with conflicts, entry groups with service-name conflicts.

Conflicts are scripted with `taken_host_names` / `taken_service_names` (names another host on the
network holds). Like avahi-daemon, a host name conflict makes the fake rename itself to name-2.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from dbus_fast import DBusError
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

from hostd.bus import names

from .base import FakeService

Int = Annotated[int, DBusSignature("i")]
UInt = Annotated[int, DBusSignature("u")]
UInt16 = Annotated[int, DBusSignature("q")]
Str = Annotated[str, DBusSignature("s")]
ObjectPath = Annotated[str, DBusSignature("o")]
Txt = Annotated[list[bytes], DBusSignature("aay")]
StateBody = Annotated[tuple[int, str], DBusSignature("is")]

REGISTERING, RUNNING, COLLISION = 1, 2, 3
UNCOMMITTED, GROUP_REGISTERING, ESTABLISHED, GROUP_COLLISION = 0, 1, 2, 3
PROBE_TIME = 0.01


class Server(ServiceInterface):
    def __init__(self, owner: FakeAvahi) -> None:
        super().__init__(names.AVAHI_SERVER_INTERFACE)
        self.owner = owner
        self.state = RUNNING
        self.host_name = "avahi-host"

    @dbus_signal()
    def StateChanged(self, state: int, error: str) -> StateBody:
        return (state, error)

    def set_state(self, state: int) -> None:
        self.state = state
        self.StateChanged(state, "")

    @dbus_method()
    def GetState(self) -> Int:
        return self.state

    @dbus_method()
    def GetHostName(self) -> Str:
        return self.host_name

    @dbus_method()
    def SetHostName(self, name: Str):  # no annotation: no reply body
        if name == self.host_name and self.state != COLLISION:
            raise DBusError(names.AVAHI_ERROR_NO_CHANGE, "No change")
        self._register(name)

    def _register(self, name: str) -> None:
        self.host_name = name
        self.set_state(REGISTERING)
        asyncio.get_running_loop().call_later(PROBE_TIME, self._probed, name)

    def _probed(self, name: str) -> None:
        if name != self.host_name or self.owner.bus is None:
            return
        if name in self.owner.taken_host_names:
            self.set_state(COLLISION)
            base, _, number = name.rpartition("-")
            alternative = f"{base}-{int(number) + 1}" if base and number.isdigit() else f"{name}-2"
            self._register(alternative)
        else:
            self.set_state(RUNNING)

    @dbus_method()
    def EntryGroupNew(self) -> ObjectPath:
        return self.owner.new_group()


class EntryGroup(ServiceInterface):
    def __init__(self, owner: FakeAvahi, path: str) -> None:
        super().__init__(names.AVAHI_ENTRY_GROUP_INTERFACE)
        self.owner = owner
        self.path = path
        self.state = UNCOMMITTED
        self.services: list[dict[str, Any]] = []
        self.subtypes: list[str] = []

    @dbus_signal()
    def StateChanged(self, state: int, error: str) -> StateBody:
        return (state, error)

    def set_state(self, state: int) -> None:
        self.state = state
        self.StateChanged(state, "")

    @dbus_method()
    def GetState(self) -> Int:
        return self.state

    @dbus_method()
    def AddService(
        self,
        interface: Int,
        protocol: Int,
        flags: UInt,
        name: Str,
        service_type: Str,
        domain: Str,
        host: Str,
        port: UInt16,
        txt: Txt,
    ):  # no annotation: no reply body
        self.services.append({"name": name, "type": service_type, "host": host, "port": port, "txt": txt})

    @dbus_method()
    def AddServiceSubtype(
        self,
        interface: Int,
        protocol: Int,
        flags: UInt,
        name: Str,
        service_type: Str,
        domain: Str,
        subtype: Str,
    ):  # no annotation: no reply body
        self.subtypes.append(subtype)

    @dbus_method()
    def Commit(self):  # no annotation: no reply body
        self.set_state(GROUP_REGISTERING)
        asyncio.get_running_loop().call_later(PROBE_TIME, self._probed)

    def _probed(self) -> None:
        if self.state != GROUP_REGISTERING or self.owner.bus is None:
            return
        taken = any(service["name"] in self.owner.taken_service_names for service in self.services)
        self.set_state(GROUP_COLLISION if taken else ESTABLISHED)

    @dbus_method()
    def Reset(self):  # no annotation: no reply body
        self.services.clear()
        self.subtypes.clear()
        self.set_state(UNCOMMITTED)

    @dbus_method()
    def Free(self):  # no annotation: no reply body
        self.owner.free_group(self.path)


class FakeAvahi(FakeService):
    bus_name = names.AVAHI_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.server = Server(self)
        self.groups: dict[str, EntryGroup] = {}
        self.taken_host_names: set[str] = set()
        self.taken_service_names: set[str] = set()
        self.boot_host_name = "avahi-host"
        """The name a (re)started fake announces, like avahi-daemon taking the system host name."""
        self._next_group = 0

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(names.AVAHI_SERVER_PATH, self.server)]

    def on_start(self) -> None:
        # A restarted avahi-daemon starts from the system host name and has no client groups.
        self.groups.clear()
        self.server.host_name = self.boot_host_name
        self.server.state = RUNNING

    def new_group(self) -> str:
        self._next_group += 1
        path = f"/Client1/EntryGroup{self._next_group}"
        group = EntryGroup(self, path)
        self.groups[path] = group
        assert self.bus is not None
        self.bus.export(path, group)
        return path

    def free_group(self, path: str) -> None:
        self.groups.pop(path)
        assert self.bus is not None
        self.bus.unexport(path)

    @property
    def published(self) -> list[tuple[str, list[str]]]:
        """(service name, subtypes) of every established group."""
        return [
            (service["name"], group.subtypes)
            for group in self.groups.values()
            if group.state == ESTABLISHED
            for service in group.services
        ]
