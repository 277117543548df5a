"""NetworkManager: connection profiles on disk, overall state and connectivity, the DNS servers it
uses, the NTP servers its DHCP leases offer.

Profiles are read through GetSettings, which never carries secrets; even so only id, uuid, type,
interface name and autoconnect settings are kept from it, and nothing from a profile is logged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dbus_fast import Message
from dbus_fast.aio import MessageBus

from hostd.bus import errors, names
from hostd.bus.base import DEFAULT_TIMEOUT, BusAdapter, Callbacks, TolerantIntEnum, properties_changed_rule, unwrap
from hostd.record import Record

NM_DEVICE_INTERFACE = "org.freedesktop.NetworkManager.Device"
NM_ACTIVE_INTERFACE = names.NM_ACTIVE_CONNECTION_INTERFACE
# The leases' NTP servers as NetworkManager's internal DHCP client (balenaOS's) publishes them: option
# 42; DHCPv6 option 56's server addresses, or option 31's (SNTP) when 56 is absent, both under one name
# (read from NetworkManager 1.42's DHCP6Config on the testbed device, offered both and each alone)
DHCP_NTP_OPTIONS = {
    names.NM_DHCP4_CONFIG_INTERFACE: ("ntp_servers",),
    names.NM_DHCP6_CONFIG_INTERFACE: ("dhcp6_ntp_servers",),
}
NM_OBJECT_MANAGER_PATH = "/org/freedesktop"
CONNECTIVITY_CHECK_TIMEOUT = 30.0
"""CheckConnectivity answers after NetworkManager's own HTTP probe, which can take many seconds."""
CHECKPOINT_FLAGS = 0x02 | 0x04
"""NM_CHECKPOINT_CREATE_FLAG_DELETE_NEW_CONNECTIONS | DISCONNECT_NEW_DEVICES: a rollback also removes
the profiles the change added and takes down devices that appeared with it."""
ROLLBACK_RESULTS = {0: "restored", 1: "not restored", 2: "gone", 3: "unmanaged"}
PROFILE_READS_IN_FLIGHT = 32
"""GetSettings calls in flight at once when reading many profiles: a burst of thousands fills the bus
socket (dbus-fast then drops the connection, and hostd exits) and is no faster than a few dozen."""


RELOAD_FLAG_CONF = 0x1


class NMState(TolerantIntEnum):
    UNKNOWN = 0
    ASLEEP = 10
    DISCONNECTED = 20
    DISCONNECTING = 30
    CONNECTING = 40
    CONNECTED_LOCAL = 50
    CONNECTED_SITE = 60
    CONNECTED_GLOBAL = 70


class Connectivity(TolerantIntEnum):
    UNKNOWN = 0
    NONE = 1
    PORTAL = 2
    LIMITED = 3
    FULL = 4


class LoadResult(Record):
    __slots__ = ("failures", "ok")

    def __init__(self, ok: bool, failures: list[str]) -> None:
        self.ok = ok
        self.failures = failures  # files NetworkManager could not load


class ConnectionProfile(Record):
    __slots__ = (
        "autoconnect",
        "autoconnect_priority",
        "filename",
        "id",
        "interface_name",
        "path",
        "type",
        "unsaved",
        "uuid",
    )

    def __init__(
        self,
        path: str,
        filename: str,
        uuid: str,
        id: str,
        type: str,
        unsaved: bool,
        interface_name: str = "",
        autoconnect: bool = True,
        autoconnect_priority: int = 0,
    ) -> None:
        self.path = path
        self.filename = filename  # the keyfile the profile lives in; empty for profiles only in memory
        self.uuid = uuid
        self.id = id
        self.type = type
        self.unsaved = unsaved
        self.interface_name = interface_name
        self.autoconnect = autoconnect
        self.autoconnect_priority = autoconnect_priority


class NetworkManagerAdapter(BusAdapter):
    key = "networkmanager"
    bus_name = names.NM_NAME
    signal_rules = (
        properties_changed_rule(path=names.NM_PATH),
        properties_changed_rule(path=names.NM_DNS_MANAGER_PATH),
        # a lease renewed with other options; a new lease is a new object
        properties_changed_rule(path_namespace=names.NM_DHCP4_CONFIG_PATH),
        properties_changed_rule(path_namespace=names.NM_DHCP6_CONFIG_PATH),
        *(
            {
                "path": NM_OBJECT_MANAGER_PATH,
                "interface": names.OBJECT_MANAGER_INTERFACE,
                "member": member,
                "arg0path": prefix + "/",
            }
            for member in ("InterfacesAdded", "InterfacesRemoved")  # a lease begins, or ends
            for prefix in (names.NM_DHCP4_CONFIG_PATH, names.NM_DHCP6_CONFIG_PATH)
        ),
    )

    def __init__(self, bus: MessageBus, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(bus, timeout=timeout)
        self._dns_servers_callbacks = Callbacks(self._log, "DNS servers changed")
        self._notified_dns_servers: list[str] | None = None
        self._ntp_servers_callbacks = Callbacks(self._log, "NTP servers changed")
        self._ntp_servers: tuple[str, ...] = ()

    @property
    def state(self) -> NMState:
        return NMState(self._cached(names.NM_PATH, names.NM_INTERFACE).get("State", NMState.UNKNOWN))

    @property
    def connectivity(self) -> Connectivity:
        value = self._cached(names.NM_PATH, names.NM_INTERFACE).get("Connectivity", Connectivity.UNKNOWN)
        return Connectivity(value)

    @property
    def dns_servers(self) -> list[str]:
        """Upstream nameservers NetworkManager uses now, most preferred first, without duplicates."""
        dns_manager = self._cached(names.NM_DNS_MANAGER_PATH, names.NM_DNS_MANAGER_INTERFACE)
        servers: list[str] = []
        for entry in dns_manager.get("Configuration", []):
            servers.extend(server for server in entry.get("nameservers", []) if server not in servers)
        return servers

    def on_dns_servers_changed(self, callback: Callable[[list[str]], Awaitable[None]]) -> None:
        """Register a callback that gets the new dns_servers whenever NetworkManager changes them."""
        self._dns_servers_callbacks.add(callback)

    @property
    def ntp_servers(self) -> tuple[str, ...]:
        """NTP servers the active connections' DHCP leases offer (IPv4, then IPv6), without duplicates."""
        return self._ntp_servers

    def on_ntp_servers_changed(self, callback: Callable[[tuple[str, ...]], Awaitable[None]]) -> None:
        self._ntp_servers_callbacks.add(callback)

    async def load_connections(self, filenames: Sequence[str]) -> LoadResult:
        """Load or reload these keyfiles without restarting NetworkManager."""
        ok, failures = await self._settings("LoadConnections", "as", list(filenames))
        return LoadResult(ok, failures)

    async def reload_connections(self) -> bool:
        """Re-read every profile from disk."""
        (ok,) = await self._settings("ReloadConnections")
        return ok

    async def list_connections(self) -> list[ConnectionProfile]:
        slots = asyncio.Semaphore(PROFILE_READS_IN_FLIGHT)

        async def profile(path: str, properties: dict[str, Any]) -> ConnectionProfile | None:
            async with slots:
                return await self._profile(path, properties)

        found = await self._connection_properties()
        profiles = await asyncio.gather(*(profile(path, properties) for path, properties in found.items()))
        return [profile for profile in profiles if profile is not None]

    async def connection_filenames(self) -> set[str]:
        """The files NetworkManager has loaded profiles from (one call, however many profiles)."""
        found = await self._connection_properties()
        return {properties["Filename"] for properties in found.values() if properties.get("Filename")}

    async def _connection_properties(self) -> dict[str, dict[str, Any]]:
        """Settings path -> Settings.Connection properties (Filename, Unsaved, ...) of every profile."""
        try:
            (objects,) = await self._call(NM_OBJECT_MANAGER_PATH, names.OBJECT_MANAGER_INTERFACE, "GetManagedObjects")
            return {
                path: interfaces[names.NM_CONNECTION_INTERFACE]
                for path, interfaces in objects.items()
                if names.NM_CONNECTION_INTERFACE in interfaces
            }
        except (errors.NotSupported, errors.NoSuchObject):  # no ObjectManager there: one GetAll per profile
            pass
        (paths,) = await self._settings("ListConnections")
        slots = asyncio.Semaphore(PROFILE_READS_IN_FLIGHT)

        async def properties(path: str) -> dict[str, Any] | None:
            async with slots:
                try:
                    (values,) = await self._call(
                        path, names.PROPERTIES_INTERFACE, "GetAll", "s", names.NM_CONNECTION_INTERFACE
                    )
                except errors.NoSuchObject:
                    return None  # deleted while we listed
                return values

        found = await asyncio.gather(*(properties(path) for path in paths))
        return {path: values for path, values in zip(paths, found, strict=True) if values is not None}

    async def delete_connection_by_filename(self, filename: str) -> bool:
        """Delete the profile stored in filename; False if NetworkManager has none from that file."""
        wanted = os.path.normpath(filename)
        for profile in await self.list_connections():
            if profile.filename and os.path.normpath(profile.filename) == wanted:
                await self._call(profile.path, names.NM_CONNECTION_INTERFACE, "Delete")
                return True
        return False

    async def active_profile_of(self, interface: str) -> str | None:
        """Settings path of the profile active on the device named interface ("" when none); None
        when NetworkManager has no such device."""
        try:
            (device,) = await self._call(names.NM_PATH, names.NM_INTERFACE, "GetDeviceByIpIface", "s", interface)
        except errors.RemoteError:
            return None  # org.freedesktop.NetworkManager.UnknownDevice
        (active,) = await self._call(
            device, names.PROPERTIES_INTERFACE, "Get", "ss", NM_DEVICE_INTERFACE, "ActiveConnection"
        )
        if active in ("", "/"):
            return ""
        try:
            (profile,) = await self._call(
                active, names.PROPERTIES_INTERFACE, "Get", "ss", NM_ACTIVE_INTERFACE, "Connection"
            )
        except errors.RemoteError:
            return ""  # deactivated meanwhile
        return str(profile)

    async def running_profiles(self) -> dict[str, list[str]]:
        """Settings path of each active profile -> the devices (by interface name) it is active on."""
        (actives,) = await self._call(
            names.NM_PATH, names.PROPERTIES_INTERFACE, "Get", "ss", names.NM_INTERFACE, "ActiveConnections"
        )
        running: dict[str, list[str]] = {}
        for active in actives:
            try:
                (props,) = await self._call(active, names.PROPERTIES_INTERFACE, "GetAll", "s", NM_ACTIVE_INTERFACE)
                for device in props.get("Devices", []):
                    (interface,) = await self._call(
                        device, names.PROPERTIES_INTERFACE, "Get", "ss", NM_DEVICE_INTERFACE, "Interface"
                    )
                    running.setdefault(str(props.get("Connection", "")), []).append(str(interface))
            except errors.RemoteError:
                continue  # deactivated meanwhile
        return running

    async def activate(self, profile_path: str, interface: str) -> None:
        """Activate a profile on the device named interface (as NetworkManager would at boot)."""
        (device,) = await self._call(names.NM_PATH, names.NM_INTERFACE, "GetDeviceByIpIface", "s", interface)
        await self._call(names.NM_PATH, names.NM_INTERFACE, "ActivateConnection", "ooo", profile_path, device, "/")

    async def reload_config(self) -> None:
        """Re-read NetworkManager.conf and its conf.d snippets (Reload with NM_MANAGER_RELOAD_FLAG_CONF:
        the configuration only, no DNS update, no profiles)."""
        await self._call(names.NM_PATH, names.NM_INTERFACE, "Reload", "u", RELOAD_FLAG_CONF)

    async def check_connectivity(self, *, timeout: float = CONNECTIVITY_CHECK_TIMEOUT) -> Connectivity:
        (value,) = await self._call(names.NM_PATH, names.NM_INTERFACE, "CheckConnectivity", timeout=timeout)
        return Connectivity(value)

    async def checkpoints(self) -> list[str]:
        """NetworkManager's checkpoints now (one left behind blocks the next one on the same devices)."""
        (paths,) = await self._call(
            names.NM_PATH, names.PROPERTIES_INTERFACE, "Get", "ss", names.NM_INTERFACE, "Checkpoints"
        )
        return [str(path) for path in paths]

    async def checkpoint_create(self, rollback_timeout: int) -> str:
        """Snapshot every device and profile; NetworkManager itself rolls back to it after
        ``rollback_timeout`` seconds unless it is destroyed or extended first."""
        (path,) = await self._call(
            names.NM_PATH, names.NM_INTERFACE, "CheckpointCreate", "aouu", [], rollback_timeout, CHECKPOINT_FLAGS
        )
        return str(path)

    async def checkpoint_extend(self, checkpoint: str, rollback_timeout: int) -> None:
        """NetworkManager rolls back ``rollback_timeout`` seconds from now (not from the creation)."""
        await self._call(
            names.NM_PATH, names.NM_INTERFACE, "CheckpointAdjustRollbackTimeout", "ou", checkpoint, rollback_timeout
        )

    async def checkpoint_destroy(self, checkpoint: str) -> None:
        await self._call(names.NM_PATH, names.NM_INTERFACE, "CheckpointDestroy", "o", checkpoint)

    async def checkpoint_rollback(self, checkpoint: str) -> dict[str, str]:
        """Return every device and profile to the checkpoint; per interface, what became of it."""
        (results,) = await self._call(names.NM_PATH, names.NM_INTERFACE, "CheckpointRollback", "o", checkpoint)
        outcome: dict[str, str] = {}
        for device, result in results.items():
            try:
                (interface,) = await self._call(
                    device, names.PROPERTIES_INTERFACE, "Get", "ss", NM_DEVICE_INTERFACE, "Interface"
                )
            except errors.RemoteError:
                interface = device  # removed by the rollback itself
            outcome[str(interface)] = ROLLBACK_RESULTS.get(int(result), f"result {result}")
        return outcome

    async def _settings(self, method: str, signature: str = "", *body: Any) -> list[Any]:
        return await self._call(names.NM_SETTINGS_PATH, names.NM_SETTINGS_INTERFACE, method, signature, *body)

    async def _profile(self, path: str, properties: dict[str, Any]) -> ConnectionProfile | None:
        try:
            (settings,) = await self._call(path, names.NM_CONNECTION_INTERFACE, "GetSettings")
        except errors.NoSuchObject:
            return None  # deleted while we listed
        connection = settings.get("connection", {})
        return ConnectionProfile(
            path=path,
            filename=properties.get("Filename", ""),
            uuid=connection.get("uuid", ""),
            id=connection.get("id", ""),
            type=connection.get("type", ""),
            unsaved=bool(properties.get("Unsaved", False)),
            interface_name=connection.get("interface-name", ""),
            autoconnect=bool(connection.get("autoconnect", True)),
            autoconnect_priority=int(connection.get("autoconnect-priority", 0)),
        )

    async def _on_attached(self) -> None:
        await asyncio.gather(
            self._fetch_properties(names.NM_PATH, names.NM_INTERFACE),
            self._fetch_properties(names.NM_DNS_MANAGER_PATH, names.NM_DNS_MANAGER_INTERFACE),
        )
        self._notify_dns_servers()
        await self._load_dhcp_configs()

    def _on_properties_changed(self, path: str, interface: str, changed: set[str]) -> None:
        if interface == names.NM_DNS_MANAGER_INTERFACE and "Configuration" in changed:
            self._notify_dns_servers()
        if interface in DHCP_NTP_OPTIONS and "Options" in changed:
            self._notify_ntp_servers()

    def _on_signal(self, message: Message) -> None:
        """A lease began (its DHCP config object, options included) or ended."""
        path, interfaces = message.body
        dhcp = [interface for interface in interfaces if interface in DHCP_NTP_OPTIONS]
        if not dhcp:
            return
        if message.member == "InterfacesAdded":
            for interface in dhcp:
                self._store_properties(path, interface, unwrap(interfaces[interface]), message.serial)
        elif message.member == "InterfacesRemoved":
            self._forget_cache(path, dhcp)
        self._notify_ntp_servers()

    async def _load_dhcp_configs(self) -> None:
        """Every DHCP4Config/DHCP6Config object NetworkManager exports (one per lease), into the cache."""
        try:
            reply = await self._call_message(
                NM_OBJECT_MANAGER_PATH, names.OBJECT_MANAGER_INTERFACE, "GetManagedObjects"
            )
        except errors.RemoteError as err:
            self._log.debug("DHCP leases not read: %s", err)
            return
        for path, interfaces in unwrap(reply.body[0]).items():
            for interface in set(interfaces) & set(DHCP_NTP_OPTIONS):
                self._store_properties(path, interface, interfaces[interface], reply.serial)
        self._notify_ntp_servers()

    def _notify_dns_servers(self) -> None:
        servers = self.dns_servers
        if servers != self._notified_dns_servers:
            self._notified_dns_servers = servers
            self._dns_servers_callbacks.fire(servers)

    def _notify_ntp_servers(self) -> None:
        servers: list[str] = []
        for path, interface in sorted((key for key in self._caches if key[1] in DHCP_NTP_OPTIONS), key=_ipv4_first):
            options = self._cached(path, interface).get("Options", {})
            for option in DHCP_NTP_OPTIONS[interface]:
                servers += [server for server in str(options.get(option, "")).split() if _usable_server(server)]
        found = tuple(dict.fromkeys(servers))
        if found != self._ntp_servers:
            self._ntp_servers = found
            self._ntp_servers_callbacks.fire(found)


def _usable_server(server: str) -> bool:
    """An address or a host name: what goes into chrony's sources file, and nothing else."""
    from hostd.keys import is_fqdn, is_ip

    return is_ip(server) or is_fqdn(server)


def _ipv4_first(key: tuple[str, str]) -> tuple[bool, str]:
    path, interface = key
    return interface != names.NM_DHCP4_CONFIG_INTERFACE, path
