"""What every fake shares: its own bus connection, call recording, and scripted faults.

Faults are scripted per member name on the connection, ahead of the exported interfaces, so they
work for any method including the Properties methods dbus-fast answers itself:
  fail(member, error)  answer with a D-Bus error
  hang(member)         never answer (the caller's timeout fires; NoReply once the fake goes away)
Lifecycle: start() (connect, export, own the name), stop() (disconnect: the name vanishes),
restart() (a new connection and owner), release_name() / acquire_name() (same connection).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface


class FakeService:
    bus_name: ClassVar[str]

    def __init__(self, address: str) -> None:
        self.address = address
        self.bus: MessageBus | None = None
        self.calls: list[tuple[str, str, list[Any]]] = []  # (interface, member, body)
        self._failures: dict[str, tuple[str, str]] = {}
        self._hanging: set[str] = set()

    def exports(self) -> list[tuple[str, ServiceInterface]]:
        raise NotImplementedError

    def on_start(self) -> None:
        """Forget runtime state a real service would lose when it restarts."""

    # -- scripting ----------------------------------------------------------------------------

    def fail(self, member: str, error_name: str, text: str = "scripted failure") -> None:
        self._failures[member] = (error_name, text)

    def hang(self, member: str) -> None:
        self._hanging.add(member)

    def heal(self) -> None:
        self._failures.clear()
        self._hanging.clear()

    def calls_to(self, member: str) -> list[list[Any]]:
        return [body for _interface, called, body in self.calls if called == member]

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.on_start()
        bus = await MessageBus(bus_address=self.address).connect()
        bus.add_message_handler(self._intercept)
        for path, interface in self.exports():
            bus.export(path, interface)
        self.bus = bus
        await bus.request_name(self.bus_name)

    async def stop(self) -> None:
        if self.bus is not None:
            bus, self.bus = self.bus, None
            bus.disconnect()
            await bus.wait_for_disconnect()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def release_name(self) -> None:
        assert self.bus is not None
        await self.bus.release_name(self.bus_name)

    async def acquire_name(self) -> None:
        assert self.bus is not None
        await self.bus.request_name(self.bus_name)

    @property
    def unique_name(self) -> str | None:
        return None if self.bus is None else self.bus.unique_name

    def send_signal(self, path: str, interface: str, member: str, signature: str, *body: Any) -> None:
        """Emit a signal from any path, e.g. ObjectManager signals from the manager object."""
        assert self.bus is not None
        self.bus.send(Message.new_signal(path, interface, member, signature, list(body)))

    def _intercept(self, message: Message) -> Message | bool | None:
        if message.message_type is not MessageType.METHOD_CALL:
            return None
        self.calls.append((message.interface or "", message.member or "", list(message.body)))
        if message.member in self._hanging:
            return True  # handled: no reply is ever sent
        if message.member in self._failures:
            name, text = self._failures[message.member]
            return Message.new_error(message, name, text)
        return None


async def settle() -> None:
    """Let queued signal emissions go out."""
    await asyncio.sleep(0.01)
