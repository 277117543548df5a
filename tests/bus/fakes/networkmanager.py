"""A fake NetworkManager: state, connectivity, DnsManager, Settings with keyfile-backed profiles."""

from __future__ import annotations

import uuid as uuidlib
from typing import Annotated, Any

from dbus_fast import DBusError, Message, Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_method, dbus_property

from hostd.bus import names

from .base import FakeService

UInt = Annotated[int, DBusSignature("u")]
Bool = Annotated[bool, DBusSignature("b")]
Str = Annotated[str, DBusSignature("s")]
Path = Annotated[str, DBusSignature("o")]
PathList = Annotated[list[str], DBusSignature("ao")]
StrList = Annotated[list[str], DBusSignature("as")]
RollbackReply = Annotated[dict[str, int], DBusSignature("a{su}")]
LoadReply = Annotated[tuple[bool, list[str]], DBusSignature("bas")]
ConnectionSettings = Annotated[dict[str, dict[str, Variant]], DBusSignature("a{sa{sv}}")]
DnsConfiguration = Annotated[list[dict[str, Variant]], DBusSignature("aa{sv}")]

NM_STATE_CONNECTED_GLOBAL = 70
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
NM_CONNECTIVITY_FULL = 4


class NetworkManager(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.NM_INTERFACE)
        self.state = NM_STATE_CONNECTED_GLOBAL
        self.connectivity = NM_CONNECTIVITY_FULL
        self.reloads: list[int] = []  # the flags of every Reload call
        self.checkpoints: dict[str, int] = {}
        """checkpoint path -> its rollback timeout (s), as last set"""
        self.checkpoint_calls: list[tuple[str, ...]] = []
        self._next_checkpoint = 0

    @dbus_property(access=PropertyAccess.READ)
    def Checkpoints(self) -> PathList:
        return list(self.checkpoints)

    @dbus_method()
    def CheckpointCreate(self, devices: PathList, rollback_timeout: UInt, flags: UInt) -> Path:
        if self.checkpoints:  # as NetworkManager: one checkpoint per device at a time
            raise DBusError("org.freedesktop.NetworkManager.InvalidArguments", "a checkpoint already exists")
        self._next_checkpoint += 1
        path = f"/org/freedesktop/NetworkManager/Checkpoint/{self._next_checkpoint}"
        self.checkpoints[path] = rollback_timeout
        self.checkpoint_calls.append(("create", path, str(rollback_timeout), str(flags)))
        return path

    @dbus_method()
    def CheckpointAdjustRollbackTimeout(
        self, checkpoint: Path, add_timeout: UInt
    ):  # no return annotation: no reply body
        self._checkpoint(checkpoint)
        self.checkpoints[checkpoint] = add_timeout
        self.checkpoint_calls.append(("adjust", checkpoint, str(add_timeout)))

    @dbus_method()
    def CheckpointDestroy(self, checkpoint: Path):  # no return annotation: no reply body
        self._checkpoint(checkpoint)
        del self.checkpoints[checkpoint]
        self.checkpoint_calls.append(("destroy", checkpoint))

    @dbus_method()
    def CheckpointRollback(self, checkpoint: Path) -> RollbackReply:
        self._checkpoint(checkpoint)
        del self.checkpoints[checkpoint]
        self.checkpoint_calls.append(("rollback", checkpoint))
        return {}

    def _checkpoint(self, checkpoint: str) -> None:
        if checkpoint not in self.checkpoints:
            raise DBusError("org.freedesktop.NetworkManager.InvalidArguments", f"no checkpoint {checkpoint}")

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> UInt:
        return self.state

    @dbus_property(access=PropertyAccess.READ)
    def Connectivity(self) -> UInt:
        return self.connectivity

    @dbus_method()
    def CheckConnectivity(self) -> UInt:
        return self.connectivity

    @dbus_method()
    def Reload(self, flags: UInt):  # no return annotation: dbus-fast reads it as "no reply body"
        self.reloads.append(flags)

    def change(self, **values: int) -> None:
        """Change state/connectivity and signal it, as NetworkManager does."""
        self.state = values.get("state", self.state)
        self.connectivity = values.get("connectivity", self.connectivity)
        self.emit_properties_changed({"State": self.state, "Connectivity": self.connectivity})


class DnsManager(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(names.NM_DNS_MANAGER_INTERFACE)
        self.configuration: list[dict[str, Any]] = [
            {"nameservers": ["192.168.1.1"], "interface": "eth0", "priority": 100, "vpn": False}
        ]

    @dbus_property(access=PropertyAccess.READ)
    def Mode(self) -> Str:
        return "default"

    @dbus_property(access=PropertyAccess.READ)
    def Configuration(self) -> DnsConfiguration:
        return [_variants(entry) for entry in self.configuration]

    def change(self, configuration: list[dict[str, Any]]) -> None:
        self.configuration = configuration
        self.emit_properties_changed({"Configuration": self.Configuration})


class DhcpConfig(ServiceInterface):
    """A lease's DHCP4Config/DHCP6Config object: its options, as NetworkManager's DHCP client names them."""

    def __init__(self, interface: str, options: dict[str, str]) -> None:
        super().__init__(interface)
        self.options = options

    @dbus_property(access=PropertyAccess.READ)
    def Options(self) -> Annotated[dict[str, Variant], DBusSignature("a{sv}")]:
        return {name: Variant("s", value) for name, value in self.options.items()}

    def change(self, options: dict[str, str]) -> None:
        self.options = options
        self.emit_properties_changed({"Options": self.Options})


def _variants(entry: dict[str, Any]) -> dict[str, Variant]:
    signatures = {"nameservers": "as", "domains": "as", "interface": "s", "priority": "i", "vpn": "b"}
    return {key: Variant(signatures[key], value) for key, value in entry.items()}


class Connection(ServiceInterface):
    def __init__(self, owner: FakeNetworkManager, path: str, filename: str, profile_id: str) -> None:
        super().__init__(names.NM_CONNECTION_INTERFACE)
        self.owner = owner
        self.path = path
        self.filename = filename
        self.settings = {
            "connection": {
                "id": Variant("s", profile_id),
                "uuid": Variant("s", str(uuidlib.uuid4())),
                "type": Variant("s", "802-11-wireless"),
            },
            # NetworkManager never sends secrets in GetSettings; the fake does, to prove hostd drops them.
            "802-11-wireless-security": {"psk": Variant("s", "hunter2-secret")},
        }

    @dbus_property(access=PropertyAccess.READ)
    def Filename(self) -> Str:
        return self.filename

    @dbus_property(access=PropertyAccess.READ)
    def Unsaved(self) -> Bool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> UInt:
        return 0

    @dbus_method()
    def GetSettings(self) -> ConnectionSettings:
        return self.settings

    @dbus_method()
    def Delete(self):  # no return annotation: dbus-fast reads it as "no reply body"
        self.owner.remove_connection(self.path)


class Settings(ServiceInterface):
    def __init__(self, owner: FakeNetworkManager) -> None:
        super().__init__(names.NM_SETTINGS_INTERFACE)
        self.owner = owner

    @dbus_method()
    def ListConnections(self) -> PathList:
        return list(self.owner.connections)

    @dbus_method()
    def LoadConnections(self, filenames: StrList) -> LoadReply:
        failures = [name for name in filenames if name not in self.owner.loadable_files]
        for name in filenames:
            if name in self.owner.loadable_files and name not in self.owner.files_loaded():
                self.owner.add_connection(name, self.owner.loadable_files[name])
        return (not failures, failures)

    @dbus_method()
    def ReloadConnections(self) -> Bool:
        return True


class FakeNetworkManager(FakeService):
    bus_name = names.NM_NAME

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.manager = NetworkManager()
        self.dns = DnsManager()
        self.settings = Settings(self)
        self.connections: dict[str, Connection] = {}
        self.loadable_files: dict[str, str] = {}
        """keyfile path -> profile id, the files LoadConnections accepts."""
        self._next_connection = 0

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        return [
            (names.NM_PATH, self.manager),
            (names.NM_DNS_MANAGER_PATH, self.dns),
            (names.NM_SETTINGS_PATH, self.settings),
            *((path, connection) for path, connection in self.connections.items()),
        ]

    def add_lease(self, path: str, interface: str, options: dict[str, str]) -> DhcpConfig:
        """A new lease: its object exported, then announced from NetworkManager's ObjectManager."""
        lease = DhcpConfig(interface, options)
        assert self.bus is not None
        self.bus.export(path, lease)
        body = {interface: {"Options": Variant("a{sv}", lease.Options)}}
        self.bus.send(
            Message.new_signal("/org/freedesktop", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [path, body])
        )
        return lease

    def end_lease(self, path: str, interface: str) -> None:
        assert self.bus is not None
        self.bus.unexport(path)
        self.bus.send(
            Message.new_signal("/org/freedesktop", OBJECT_MANAGER, "InterfacesRemoved", "oas", [path, [interface]])
        )

    def files_loaded(self) -> set[str]:
        return {connection.filename for connection in self.connections.values()}

    def add_connection(self, filename: str, profile_id: str) -> Connection:
        self._next_connection += 1
        path = f"{names.NM_SETTINGS_PATH}/{self._next_connection}"
        connection = Connection(self, path, filename, profile_id)
        self.connections[path] = connection
        if self.bus is not None:
            self.bus.export(path, connection)
        return connection

    def remove_connection(self, path: str) -> None:
        del self.connections[path]
        if self.bus is not None:
            self.bus.unexport(path)
