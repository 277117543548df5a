"""A fake systemd-hostnamed."""

from __future__ import annotations

from typing import Annotated

from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_method, dbus_property

from hostd.bus import names

from .base import FakeService

Str = Annotated[str, DBusSignature("s")]
Bool = Annotated[bool, DBusSignature("b")]


class Hostname1(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.HOSTNAME1_INTERFACE)
        self.hostname = "localhost"
        self.static_hostname = ""

    @dbus_property(access=PropertyAccess.READ)
    def Hostname(self) -> Str:
        return self.hostname

    @dbus_property(access=PropertyAccess.READ)
    def StaticHostname(self) -> Str:
        return self.static_hostname

    @dbus_method()
    def SetStaticHostname(self, name: Str, interactive: Bool):  # no annotation: no reply body
        self.static_hostname = name
        self.hostname = name  # hostnamed follows the static name when no transient one is set
        self.emit_properties_changed({"StaticHostname": name, "Hostname": name})

    @dbus_method()
    def SetHostname(self, name: Str, interactive: Bool):  # no annotation: no reply body
        self.hostname = name
        self.emit_properties_changed({"Hostname": name})


class FakeHostname1(FakeService):
    bus_name = names.HOSTNAME1_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.hostnamed = Hostname1()

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(names.HOSTNAME1_PATH, self.hostnamed)]
