"""A fake systemd-timedated."""

from __future__ import annotations

from typing import Annotated

from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

from hostd.bus import names

from .base import FakeService

Str = Annotated[str, DBusSignature("s")]
Bool = Annotated[bool, DBusSignature("b")]


class Timedate1(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.TIMEDATE1_INTERFACE)
        self.ntp_synchronized = False
        self.ntp = True
        self.timezone = "UTC"

    @dbus_property(access=PropertyAccess.READ)
    def NTPSynchronized(self) -> Bool:
        return self.ntp_synchronized

    @dbus_property(access=PropertyAccess.READ)
    def NTP(self) -> Bool:
        return self.ntp

    @dbus_property(access=PropertyAccess.READ)
    def Timezone(self) -> Str:
        return self.timezone


class FakeTimedate1(FakeService):
    bus_name = names.TIMEDATE1_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.timedated = Timedate1()

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(names.TIMEDATE1_PATH, self.timedated)]
