"""A fake ModemManager: modems under an ObjectManager, added and removed at run time."""

from __future__ import annotations

from typing import Annotated

from dbus_fast import Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

from hostd.bus import names

from .base import FakeService

Int = Annotated[int, DBusSignature("i")]
Str = Annotated[str, DBusSignature("s")]
ObjectPath = Annotated[str, DBusSignature("o")]
Quality = Annotated[list[object], DBusSignature("(ub)")]

MM_MODEM_STATE_REGISTERED = 8


class Modem(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.MM_MODEM_INTERFACE)
        self.state = MM_MODEM_STATE_REGISTERED
        self.quality = [71, True]
        self.sim = "/org/freedesktop/ModemManager1/SIM/0"

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> Int:
        return self.state

    @dbus_property(access=PropertyAccess.READ)
    def SignalQuality(self) -> Quality:
        return self.quality

    @dbus_property(access=PropertyAccess.READ)
    def Sim(self) -> ObjectPath:
        return self.sim

    @dbus_property(access=PropertyAccess.READ)
    def Manufacturer(self) -> Str:
        return "Quectel"

    @dbus_property(access=PropertyAccess.READ)
    def Model(self) -> Str:
        return "EC25"

    def change_state(self, state: int) -> None:
        self.state = state
        self.emit_properties_changed({"State": state})


class Modem3gpp(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.MM_MODEM_3GPP_INTERFACE)
        self.operator_name = "Vodafone"

    @dbus_property(access=PropertyAccess.READ)
    def OperatorName(self) -> Str:
        return self.operator_name


class FakeModemManager(FakeService):
    bus_name = names.MM_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.modems: dict[str, tuple[Modem, Modem3gpp]] = {}

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [(path, interface) for path, pair in self.modems.items() for interface in pair]

    def add_modem(self, index: int) -> Modem:
        path = f"{names.MM_MODEM_PATH_PREFIX}/{index}"
        modem, three_gpp = Modem(), Modem3gpp()
        self.modems[path] = (modem, three_gpp)
        if self.bus is not None:
            self.bus.export(path, modem)
            self.bus.export(path, three_gpp)
            self.send_signal(
                names.MM_PATH,
                names.OBJECT_MANAGER_INTERFACE,
                "InterfacesAdded",
                "oa{sa{sv}}",
                path,
                {
                    names.MM_MODEM_INTERFACE: {
                        "State": Variant("i", modem.state),
                        "SignalQuality": Variant("(ub)", modem.quality),
                        "Sim": Variant("o", modem.sim),
                        "Manufacturer": Variant("s", "Quectel"),
                        "Model": Variant("s", "EC25"),
                    },
                    names.MM_MODEM_3GPP_INTERFACE: {"OperatorName": Variant("s", three_gpp.operator_name)},
                },
            )
        return modem

    def remove_modem(self, index: int) -> None:
        path = f"{names.MM_MODEM_PATH_PREFIX}/{index}"
        del self.modems[path]
        if self.bus is not None:
            self.bus.unexport(path)
            self.send_signal(
                names.MM_PATH,
                names.OBJECT_MANAGER_INTERFACE,
                "InterfacesRemoved",
                "oas",
                path,
                [names.MM_MODEM_INTERFACE, names.MM_MODEM_3GPP_INTERFACE],
            )

    def disable_3gpp(self, index: int) -> None:
        """Drop the 3GPP interface only, as ModemManager does when a modem is disabled."""
        path = f"{names.MM_MODEM_PATH_PREFIX}/{index}"
        _modem, three_gpp = self.modems[path]
        assert self.bus is not None
        self.bus.unexport(path, three_gpp)
        self.send_signal(
            names.MM_PATH, names.OBJECT_MANAGER_INTERFACE, "InterfacesRemoved", "oas", path, [three_gpp.name]
        )
