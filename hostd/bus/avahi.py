"""Avahi: the mDNS host name and the device's `_ssh._tcp` service, with name conflicts reported.

On a conflict avahi-daemon renames itself (name-2, name-3, …) and a service whose name is taken
goes to COLLISION. hostd accepts neither silently: it reports the conflict (flags plus a callback)
and keeps trying to reclaim the wanted names with backoff, so they come back once the other host
is gone. Everything wanted is remembered and re-applied when avahi-daemon restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import Message
from dbus_fast.aio import MessageBus

from hostd.bus import errors, names
from hostd.bus.base import DEFAULT_TIMEOUT, BusAdapter, Callbacks, TolerantIntEnum

AVAHI_SERVICE_UNIT = "avahi-daemon.service"  # followed: stopped on purpose is not degraded
SSH_SERVICE_TYPE = "_ssh._tcp"
SSH_PORT = 22222
DEVICE_SUBTYPE = "_resin-device._sub._ssh._tcp"
_ANY_INTERFACE = -1
_ANY_PROTOCOL = -1
_NO_FLAGS = 0
_DEFAULT_DOMAIN = ""
_THIS_HOST = ""


SETTLE_TIMEOUT = 5.0
"""Longest wait for avahi to finish probing a name before it is renamed (probing takes ~1 s)."""


class ServerState(TolerantIntEnum):
    UNKNOWN = -1
    INVALID = 0
    REGISTERING = 1
    RUNNING = 2
    COLLISION = 3
    FAILURE = 4


class EntryGroupState(TolerantIntEnum):
    UNKNOWN = -1
    UNCOMMITTED = 0
    REGISTERING = 1
    ESTABLISHED = 2
    COLLISION = 3
    FAILURE = 4


class AvahiAdapter(BusAdapter):
    key = "avahi"
    bus_name = names.AVAHI_NAME
    signal_rules = (
        {
            "path": names.AVAHI_SERVER_PATH,
            "interface": names.AVAHI_SERVER_INTERFACE,
            "member": "StateChanged",
        },
        {"interface": names.AVAHI_ENTRY_GROUP_INTERFACE, "member": "StateChanged"},
    )

    def __init__(
        self,
        bus: MessageBus,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reclaim_delay: float = 10.0,
        reclaim_max_delay: float = 300.0,
    ) -> None:
        super().__init__(bus, timeout=timeout)
        self.reclaim_delay = reclaim_delay
        self.reclaim_max_delay = reclaim_max_delay
        self._wanted_host_name: str | None = None
        self._ssh_wanted = False
        # The device is not discoverable on purpose (hostd.discovery): avahi-daemon down is expected.
        self.silenced = False
        self._state = ServerState.UNKNOWN
        self._host_name = ""
        self._group_path: str | None = None
        self._group_state = EntryGroupState.UNKNOWN
        self._published_as: tuple[str, str] | None = None  # (service name, avahi host name) when committed
        self._host_name_collision = False
        self._service_collision = False
        self._collision_callbacks = Callbacks(self._log, "collision changed")
        self._converge_lock = asyncio.Lock()
        self._converge_tasks: set[asyncio.Task[None]] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._retry_due = False
        self._next_retry_delay = reclaim_delay

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def host_name(self) -> str:
        """The name avahi-daemon announces now (name-2 while in conflict)."""
        return self._host_name

    @property
    def wanted_host_name(self) -> str | None:
        return self._wanted_host_name

    @property
    def host_name_collision(self) -> bool:
        """Another host holds the wanted name; avahi announces a different one until it is reclaimed."""
        return self._host_name_collision

    @property
    def service_collision(self) -> bool:
        """Another host announces an ssh service by the same name; ours is not published."""
        return self._service_collision

    @property
    def collision(self) -> bool:
        return self._host_name_collision or self._service_collision

    @property
    def ssh_published(self) -> bool:
        return self._group_state is EntryGroupState.ESTABLISHED

    def on_collision_changed(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        """Register a callback that gets `collision` whenever it changes."""
        self._collision_callbacks.add(callback)

    async def set_host_name(self, name: str) -> None:
        """Announce name.local; remembered, so it is re-applied after conflicts and avahi restarts.

        Raises ServiceUnavailable when avahi is not running (the name is applied when it appears).
        """
        previous, self._wanted_host_name = self._wanted_host_name, name
        self._next_retry_delay = self.reclaim_delay
        if self._state is ServerState.REGISTERING:
            # avahi 0.8 renamed while it still probes its current name drops the host's address
            # record, and <name>.local never answers: rename once it has settled, without
            # holding the caller up.
            self._rename_when_settled()
            return
        try:
            await self._apply_host_name()
        except errors.ServiceUnavailable:
            raise
        except errors.BusError:
            # Refused (invalid, not permitted): keeping it would read as a conflict and be retried forever.
            self._wanted_host_name = previous
            raise
        await self._converge()

    async def publish_ssh(self) -> None:
        """Publish _ssh._tcp on port 22222 with the _resin-device subtype, named by the wanted host name.

        Remembered like set_host_name; raises ServiceUnavailable when avahi is not running.
        """
        self._ssh_wanted = True
        await self._converge()

    async def withdraw_ssh(self) -> None:
        self._ssh_wanted = False
        if self._group_path is not None:
            path, self._group_path, self._published_as = self._group_path, None, None
            self._group_state = EntryGroupState.UNKNOWN
            await self._group(path, "Free")
        self._set_collision(service=False)

    async def get_host_name(self) -> str:
        """Ask avahi-daemon (the host_name property is the cached answer)."""
        (self._host_name,) = await self._server("GetHostName")
        return self._host_name

    async def get_state(self) -> ServerState:
        (state,) = await self._server("GetState")
        self._state = ServerState(state)
        return self._state

    def _rename_when_settled(self) -> None:
        async def rename() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SETTLE_TIMEOUT
            while self._state is ServerState.REGISTERING and loop.time() < deadline:
                await asyncio.sleep(0.05)  # StateChanged updates the state
            try:
                await self._apply_host_name()
                await self._converge()
            except errors.BusError as err:
                self._log.warning("cannot rename the mDNS host to %s: %s", self._wanted_host_name, err)

        task = asyncio.get_running_loop().create_task(rename())
        self._converge_tasks.add(task)
        task.add_done_callback(self._converge_tasks.discard)

    async def _server(self, method: str, signature: str = "", *body: Any) -> list[Any]:
        return await self._call(names.AVAHI_SERVER_PATH, names.AVAHI_SERVER_INTERFACE, method, signature, *body)

    async def _apply_host_name(self) -> None:
        if self._wanted_host_name is None:
            return
        try:
            await self._server("SetHostName", "s", self._wanted_host_name)
        except errors.RemoteError as err:
            if err.name != names.AVAHI_ERROR_NO_CHANGE:
                raise

    async def _converge(self) -> None:
        """Bring avahi to what is wanted: one serialized pass, run again on every state change."""
        async with self._converge_lock:
            # The state comes with StateChanged; the name does not, and avahi may have renamed itself.
            await self.get_host_name()
            if self._state is ServerState.COLLISION:
                self._set_collision(host=True)
            if self._state is not ServerState.RUNNING:
                return  # while registering, whether the name holds is not known yet
            renamed = self._wanted_host_name is not None and self._host_name != self._wanted_host_name
            self._set_collision(host=renamed)
            retrying, self._retry_due = self._retry_due, False
            if self._ssh_wanted and (
                (self._service_collision and retrying)
                or (not self._service_collision and self._published_as != self._wanted_publication())
            ):
                await self._publish()
            if retrying and self._host_name_collision:
                await self._apply_host_name()
            if retrying:
                self._next_retry_delay = min(self._next_retry_delay * 2, self.reclaim_max_delay)
            if self.collision:
                self._schedule_retry()
            else:
                self._cancel_retry()
                self._next_retry_delay = self.reclaim_delay

    def _wanted_publication(self) -> tuple[str, str]:
        return (self._wanted_host_name or self._host_name, self._host_name)

    async def _publish(self) -> None:
        service_name, host_name = self._wanted_publication()
        if self._group_path is None:
            (self._group_path,) = await self._server("EntryGroupNew")
            self._group_state = EntryGroupState.UNCOMMITTED
        else:
            await self._group(self._group_path, "Reset")
        where = (_ANY_INTERFACE, _ANY_PROTOCOL, _NO_FLAGS, service_name, SSH_SERVICE_TYPE, _DEFAULT_DOMAIN)
        await self._group(self._group_path, "AddService", "iiussssqaay", *where, _THIS_HOST, SSH_PORT, [])
        await self._group(self._group_path, "AddServiceSubtype", "iiussss", *where, DEVICE_SUBTYPE)
        await self._group(self._group_path, "Commit")
        self._published_as = (service_name, host_name)

    async def _group(self, path: str, method: str, signature: str = "", *body: Any) -> list[Any]:
        return await self._call(path, names.AVAHI_ENTRY_GROUP_INTERFACE, method, signature, *body)

    def _set_collision(self, *, host: bool | None = None, service: bool | None = None) -> None:
        before = self.collision
        if host is not None and host != self._host_name_collision:
            self._host_name_collision = host
            if host:
                self._log.warning(
                    "mDNS host name %s is taken by another host; announcing %s until it is free",
                    self._wanted_host_name,
                    self._host_name,
                )
            else:
                self._log.info("mDNS host name %s reclaimed", self._host_name)
        if service is not None and service != self._service_collision:
            self._service_collision = service
            if service and self._published_as is not None:
                self._log.warning("mDNS ssh service name %s is taken by another host", self._published_as[0])
        if self.collision != before:
            self._collision_callbacks.fire(self.collision)

    def _schedule_retry(self) -> None:
        if self._retry_task is not None and not self._retry_task.done():
            return

        async def retry_later(delay: float) -> None:
            await asyncio.sleep(delay)
            self._retry_due = True
            self._kick()

        self._retry_task = asyncio.get_running_loop().create_task(retry_later(self._next_retry_delay))

    def _cancel_retry(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            self._retry_task = None
        self._retry_due = False

    def _kick(self) -> None:
        """Converge from a signal handler; failures are logged, the next state change retries."""

        async def converge() -> None:
            try:
                await self._converge()
            except errors.ServiceUnavailable as err:
                self._log.debug("avahi went away while converging: %s", err)  # re-applied on attach
            except errors.BusError as err:
                self._log.warning("cannot bring avahi to the wanted state: %s", err)

        task = asyncio.get_running_loop().create_task(converge())
        self._converge_tasks.add(task)
        task.add_done_callback(self._converge_tasks.discard)

    async def _on_attached(self) -> None:
        # A new avahi-daemon knows nothing of our name or service: apply both again.
        self._group_path, self._published_as = None, None
        self._group_state = EntryGroupState.UNKNOWN
        self._next_retry_delay = self.reclaim_delay
        await self._apply_host_name()
        await self.get_state()
        await self._converge()

    def _on_detached(self) -> None:
        self._cancel_retry()
        for task in list(self._converge_tasks):
            task.cancel()
        self._state = ServerState.UNKNOWN
        self._group_path, self._published_as = None, None
        self._group_state = EntryGroupState.UNKNOWN
        # Unknown until avahi is back; not a reclaim, so reset quietly.
        had_collision = self.collision
        self._host_name_collision = self._service_collision = False
        if had_collision:
            self._collision_callbacks.fire(False)

    def _on_signal(self, message: Message) -> None:
        if message.member != "StateChanged":
            return
        state, error = message.body
        if message.interface == names.AVAHI_SERVER_INTERFACE:
            self._state = ServerState(state)
            if self._state is ServerState.FAILURE:
                self._log.warning("avahi-daemon reports failure: %s", error)
        elif message.path == self._group_path:
            self._group_state = EntryGroupState(state)
            if self._group_state is EntryGroupState.COLLISION:
                self._set_collision(service=True)
            elif self._group_state is EntryGroupState.ESTABLISHED:
                self._set_collision(service=False)
            elif self._group_state is EntryGroupState.FAILURE:
                self._log.warning("publishing the ssh service failed: %s", error)
        else:
            return
        self._kick()
