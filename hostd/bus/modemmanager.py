"""ModemManager, read-only: the modems it manages and their state, followed from its signals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Message
from dbus_fast.aio import MessageBus

from hostd.bus import names
from hostd.bus.base import (
    DEFAULT_TIMEOUT,
    BusAdapter,
    Callbacks,
    TolerantIntEnum,
    properties_changed_rule,
    unwrap,
)
from hostd.record import Record

_MODEM_INTERFACES = (names.MM_MODEM_INTERFACE, names.MM_MODEM_3GPP_INTERFACE)
_REPORTED_PROPERTIES = frozenset({"State", "SignalQuality", "Sim", "Manufacturer", "Model", "OperatorName"})


class ModemState(TolerantIntEnum):
    FAILED = -1
    UNKNOWN = 0
    INITIALIZING = 1
    LOCKED = 2
    DISABLED = 3
    DISABLING = 4
    ENABLING = 5
    ENABLED = 6
    SEARCHING = 7
    REGISTERED = 8
    DISCONNECTING = 9
    CONNECTING = 10
    CONNECTED = 11


class Modem(Record):
    __slots__ = (
        "manufacturer",
        "model",
        "operator_name",
        "path",
        "signal_quality",
        "signal_recent",
        "sim_present",
        "state",
    )

    def __init__(
        self,
        path: str,
        state: ModemState,
        signal_quality: int,
        signal_recent: bool,
        operator_name: str,
        sim_present: bool,
        manufacturer: str,
        model: str,
    ) -> None:
        self.path = path
        self.state = state
        self.signal_quality = signal_quality  # percent, 0-100
        self.signal_recent = signal_recent  # False when the quality value is stale
        self.operator_name = operator_name
        self.sim_present = sim_present
        self.manufacturer = manufacturer
        self.model = model


class ModemManagerAdapter(BusAdapter):
    key = "modemmanager"
    bus_name = names.MM_NAME
    signal_rules = (
        {"path": names.MM_PATH, "interface": names.OBJECT_MANAGER_INTERFACE},
        properties_changed_rule(path_namespace=names.MM_MODEM_PATH_PREFIX),
    )

    def __init__(self, bus: MessageBus, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(bus, timeout=timeout)
        self._modem_paths: set[str] = set()
        self._modems_changed_callbacks = Callbacks(self._log, "modems changed")

    @property
    def modems(self) -> dict[str, Modem]:
        """Modems by object path."""
        return {path: self._modem(path) for path in sorted(self._modem_paths)}

    def on_modems_changed(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register a callback run when a modem appears, goes away or changes a followed property."""
        self._modems_changed_callbacks.add(callback)

    def _modem(self, path: str) -> Modem:
        modem = self._cached(path, names.MM_MODEM_INTERFACE)
        three_gpp = self._cached(path, names.MM_MODEM_3GPP_INTERFACE)
        quality, recent = modem.get("SignalQuality", (0, False))
        return Modem(
            path=path,
            state=ModemState(modem.get("State", ModemState.UNKNOWN)),
            signal_quality=quality,
            signal_recent=recent,
            operator_name=three_gpp.get("OperatorName", ""),
            sim_present=modem.get("Sim", names.MM_NO_SIM_PATH) != names.MM_NO_SIM_PATH,
            manufacturer=modem.get("Manufacturer", ""),
            model=modem.get("Model", ""),
        )

    async def _on_attached(self) -> None:
        reply = await self._call_message(names.MM_PATH, names.OBJECT_MANAGER_INTERFACE, "GetManagedObjects")
        self._modem_paths.clear()
        for path, interfaces in reply.body[0].items():
            self._add_interfaces(path, unwrap(interfaces), reply.serial)
        self._modems_changed_callbacks.fire()

    def _on_detached(self) -> None:
        self._modem_paths.clear()

    def _on_signal(self, message: Message) -> None:
        if message.member == "InterfacesAdded":
            path, interfaces = message.body
            if self._add_interfaces(path, unwrap(interfaces), message.serial):
                self._modems_changed_callbacks.fire()
        elif message.member == "InterfacesRemoved":
            path, removed = message.body
            if path not in self._modem_paths:
                return
            if names.MM_MODEM_INTERFACE in removed:
                self._modem_paths.discard(path)
                self._forget_cache(path, _MODEM_INTERFACES)
            else:
                self._forget_cache(path, removed)
            self._modems_changed_callbacks.fire()

    def _on_properties_changed(self, path: str, interface: str, changed: set[str]) -> None:
        if path in self._modem_paths and changed & _REPORTED_PROPERTIES:
            self._modems_changed_callbacks.fire()

    def _add_interfaces(self, path: str, interfaces: dict[str, dict[str, Any]], serial: int) -> bool:
        if not path.startswith(names.MM_MODEM_PATH_PREFIX + "/"):
            return False
        for interface in _MODEM_INTERFACES:
            if interface in interfaces:
                self._store_properties(path, interface, interfaces[interface], serial)
        if names.MM_MODEM_INTERFACE in interfaces:
            self._modem_paths.add(path)
        return path in self._modem_paths
