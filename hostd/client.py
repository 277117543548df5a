"""A thin client of the daemon's io.hostd1 API, for hostctl."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from hostd.api import BUS_NAME, ERROR_ACCESS_DENIED, INTERFACE, OBJECT_PATH

CALL_TIMEOUT = 120.0  # a reconcile may restart services
_NOT_RUNNING_ERRORS = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)


class NotRunning(Exception):
    pass


class Denied(Exception):
    pass


class Failed(Exception):
    pass


class Hostd:
    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    async def call(self, member: str, signature: str = "", *body: Any) -> list[Any]:
        import asyncio

        message = Message(
            destination=BUS_NAME,
            path=OBJECT_PATH,
            interface=INTERFACE,
            member=member,
            signature=signature,
            body=list(body),
        )
        try:
            reply = await asyncio.wait_for(self._bus.call(message), CALL_TIMEOUT)
        except TimeoutError:
            raise Failed(f"hostd did not answer {member} within {CALL_TIMEOUT:g} s") from None
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body else reply.error_name
            if reply.error_name in _NOT_RUNNING_ERRORS:
                raise NotRunning("hostd is not running (nothing owns io.hostd1 on the bus)")
            if reply.error_name == ERROR_ACCESS_DENIED:
                raise Denied(f"not allowed: {text}")
            raise Failed(f"{reply.error_name}: {text}")
        return reply.body


@contextlib.asynccontextmanager
async def connect(address: str | None) -> AsyncIterator[Hostd]:
    try:
        if address:
            bus = await MessageBus(bus_address=address).connect()
        else:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, ValueError) as exc:
        raise NotRunning(f"cannot reach the system bus: {exc}") from None
    try:
        yield Hostd(bus)
    finally:
        bus.disconnect()
