"""A fake dnsmasq D-Bus interface (no Properties; plain methods)."""

from __future__ import annotations

from typing import Annotated

from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method

from hostd.bus import names

from .base import FakeService

Str = Annotated[str, DBusSignature("s")]
ServerGroups = Annotated[list[list[str]], DBusSignature("aas")]


class Dnsmasq(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.DNSMASQ_INTERFACE)
        self.servers: list[list[str]] = []

    @dbus_method()
    def GetVersion(self) -> Str:
        return "2.90"

    @dbus_method()
    def ClearCache(self):  # no annotation: no reply body
        pass

    @dbus_method()
    def SetServersEx(self, servers: ServerGroups):  # no annotation: no reply body
        self.servers = servers


class FakeDnsmasq(FakeService):
    bus_name = names.DNSMASQ_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.dnsmasq = Dnsmasq()

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(names.DNSMASQ_PATH, self.dnsmasq)]

    def on_start(self) -> None:
        self.dnsmasq.servers = []  # a restarted dnsmasq forgot what was set over D-Bus
