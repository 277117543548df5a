"""The ``io.hostd1`` object the supervisor talks to, following hostnamed's conventions.

State is properties that emit PropertiesChanged; changes are methods; ``Describe()`` returns
the whole state as one JSON document, cached and rebuilt only when something changed.
Messages are dispatched by hand (not through reflection) so that every mutating call can be
checked against the caller's credentials before it runs, and so reads stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from hostd.bus.base import unwrap
from hostd.bus.names import HOSTD_INTERFACE as INTERFACE
from hostd.bus.names import HOSTD_NAME as BUS_NAME
from hostd.bus.names import HOSTD_PATH as OBJECT_PATH
from hostd.record import Record

ERROR_PREFIX = "io.hostd1.Error."
ERROR_ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
ERROR_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ERROR_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
ERROR_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
ERROR_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
ERROR_PROPERTY_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
INTROSPECTABLE_INTERFACE = "org.freedesktop.DBus.Introspectable"
PEER_INTERFACE = "org.freedesktop.DBus.Peer"

log = logging.getLogger("hostd.api")

# name -> D-Bus signature.  Step tuple: (name, state, message, last run as unix time, duration in s).
PROPERTIES: dict[str, str] = {
    "Version": "s",
    "Hostname": "s",
    "StaticHostname": "s",
    "Variant": "s",
    "PersistentLogging": "b",
    "JournalUsage": "t",
    "DnsServers": "as",
    "DnsMode": "s",
    "NtpServers": "as",
    "TimeSynchronized": "b",
    "TimeTrusted": "b",  # the clock stands on NTP or a verified HTTPS server's time
    "TimeSource": "s",  # ntp, https, rtc, saved, build
    "LastSync": "t",  # µs since the epoch of the last trusted sync (0: none this boot)
    "TimeTracking": "(sus)",  # chrony's reference, stratum, leap status
    "Connections": "a(sss)",
    "Modems": "a(ssssub)",
    "ConfigSource": "s",
    "ConfigError": "s",
    "HeldBack": "a(sss)",  # config.json keys not applied: pointer, message, fallback
    "Steps": "a(sssdd)",
    "Degraded": "as",
    "Generation": "s",
    "GoodGeneration": "s",
    "Transaction": "s",
    "NotApplied": "s",
    "LastRollback": "(dsss)",
    "Retry": "(suuds)",  # a change not blamed for its rollback: generation, retries made, of, next at, why
    "Discoverable": "b",  # announced over mDNS (name and services)
    "Proxy": "a{ss}",  # the system proxy in force: state, server, noProxy, ipv6, udp, rejected
}


class MethodSpec(Record):
    __slots__ = ("in_names", "in_signature", "mutating", "out_names", "out_signature")

    def __init__(
        self,
        in_signature: str,
        out_signature: str,
        mutating: bool,
        in_names: tuple[str, ...] = (),
        out_names: tuple[str, ...] = (),
    ) -> None:
        self.in_signature = in_signature
        self.out_signature = out_signature
        self.mutating = mutating
        self.in_names = in_names
        self.out_names = out_names


METHODS: dict[str, MethodSpec] = {
    "Describe": MethodSpec("", "s", False, out_names=("json",)),
    "Plan": MethodSpec("", "s", False, out_names=("json",)),
    "Reload": MethodSpec("", "", True),
    "SetHostname": MethodSpec("s", "", True, in_names=("hostname",)),
    "SetPersistentLogging": MethodSpec("b", "", True, in_names=("enabled",)),
    "Try": MethodSpec("su", "", True, in_names=("config", "timeout")),
    "Confirm": MethodSpec("", "", True),
    "SetConfig": MethodSpec("a{sv}", "", True, in_names=("changes",)),
    "SetDiscoverable": MethodSpec("b", "", True, in_names=("discoverable",)),
    # boot-partition profiles: (file name, id, uuid, type, keyfile without secrets)
    "ListConnections": MethodSpec("", "a(sssss)", False, out_names=("connections",)),
    "AddConnection": MethodSpec("ss", "", True, in_names=("name", "keyfile")),
    "UpdateConnection": MethodSpec("ss", "", True, in_names=("name", "keyfile")),
    "RemoveConnection": MethodSpec("s", "", True, in_names=("name",)),
    "SetProxy": MethodSpec("sas", "", True, in_names=("redsocks_conf", "no_proxy")),
}
SIGNALS: dict[str, tuple[str, tuple[str, ...]]] = {
    # outcome: applied, probing, trying, kept, rolled-back, re-applied
    "Reconciled": ("a(sssdd)s", ("steps", "outcome")),
    # the generation the device runs now; state: kept (last-known-good), on-trial, applied
    "Applied": ("ss", ("generation", "state")),
    # a change on trial failed and the last-known-good generation is back
    "RolledBack": ("sss", ("generation", "reason", "evidence")),
    # config.json keys not applied now: pointer, message, fallback
    "HeldBack": ("a(sss)", ("keys",)),
    # a change not blamed for its rollback; outcome: deferred (retried later), kept, rejected
    "RetryAttempt": ("suus", ("generation", "attempt", "attempts", "outcome")),
}


class ApiError(Exception):
    """A domain failure reported to the caller as ``io.hostd1.Error.<name>``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.error_name = ERROR_PREFIX + name


class InvalidArgument(ValueError):
    """A bad argument: org.freedesktop.DBus.Error.InvalidArgs, with a message naming the value."""


class Host(Protocol):
    """What the daemon offers the API; every method may raise ApiError or InvalidArgument."""

    def describe(self) -> dict[str, Any]: ...
    def plan(self) -> dict[str, Any]: ...
    async def reload(self) -> None: ...
    async def set_hostname(self, name: str) -> None: ...
    async def set_persistent_logging(self, enabled: bool) -> None: ...
    async def try_apply(self, config: str, timeout: int) -> None: ...
    async def confirm(self) -> None: ...
    async def set_config(self, changes: dict[str, Any]) -> None: ...
    async def set_discoverable(self, discoverable: bool) -> None: ...
    def list_connections(self) -> list[tuple[str, str, str, str, str]]: ...
    async def set_connection(self, name: str, keyfile: str | None, *, exists: bool) -> None: ...
    async def set_proxy(self, redsocks_conf: str, no_proxy: list[str]) -> None: ...


def introspection_xml() -> str:
    """The interface as D-Bus introspection XML; packaging/io.hostd1.Manager.xml must match it."""
    lines = [f'  <interface name="{INTERFACE}">']
    for name, spec in METHODS.items():
        lines.append(f'    <method name="{name}">')
        for arg_name, sig in zip(spec.in_names, _split(spec.in_signature), strict=True):
            lines.append(f'      <arg name="{arg_name}" type="{sig}" direction="in"/>')
        for arg_name, sig in zip(spec.out_names, _split(spec.out_signature), strict=True):
            lines.append(f'      <arg name="{arg_name}" type="{sig}" direction="out"/>')
        lines.append("    </method>")
    for name, (sig, arg_names) in SIGNALS.items():
        lines.append(f'    <signal name="{name}">')
        lines += [f'      <arg name="{arg}" type="{s}"/>' for arg, s in zip(arg_names, _split(sig), strict=True)]
        lines.append("    </signal>")
    for name, sig in PROPERTIES.items():
        lines.append(f'    <property name="{name}" type="{sig}" access="read">')
        lines.append('      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/>')
        lines.append("    </property>")
    lines.append("  </interface>")
    return "\n".join(lines) + "\n"


def _split(signature: str) -> list[str]:
    from dbus_fast.signature import get_signature_tree

    return [tree.signature for tree in get_signature_tree(signature).types] if signature else []


_STANDARD_INTERFACES = """  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
"""


class Api:
    """Serves OBJECT_PATH on ``bus``; ``update()`` publishes new property values."""

    def __init__(
        self,
        bus: MessageBus,
        host: Host,
        *,
        admin_gids: frozenset[int] = frozenset(),
    ) -> None:
        self._bus = bus
        self._host = host
        self._admin_gids = admin_gids
        self._values: dict[str, Any] = {}
        self._describe_cache: str | None = None
        self._introspection: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def export(self) -> None:
        self._bus.add_message_handler(self._handle)

    async def request_name(self) -> None:
        from dbus_fast import RequestNameReply

        reply = await self._bus.request_name(BUS_NAME)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise RuntimeError(f"cannot own {BUS_NAME}: {reply.name}")

    # -- state ------------------------------------------------------------------------------

    def update(self, values: dict[str, Any]) -> None:
        """Set property values; emit PropertiesChanged for those that changed."""
        changed = {name: value for name, value in values.items() if self._values.get(name, _MISSING) != value}
        if not changed:
            return
        unknown = set(changed) - set(PROPERTIES)
        if unknown:
            raise KeyError(f"unknown properties {sorted(unknown)}")
        self._values.update(changed)
        self._describe_cache = None
        body = {name: Variant(PROPERTIES[name], value) for name, value in changed.items()}
        self._bus.send(
            Message.new_signal(
                OBJECT_PATH, PROPERTIES_INTERFACE, "PropertiesChanged", "sa{sv}as", [INTERFACE, body, []]
            )
        )

    def invalidate_describe(self) -> None:
        self._describe_cache = None

    def value(self, name: str) -> Any:
        return self._values[name]

    def emit_reconciled(self, steps: list[tuple[str, str, str, float, float]], outcome: str) -> None:
        self.emit("Reconciled", [steps, outcome])

    def emit(self, signal: str, body: list[Any]) -> None:
        self._bus.send(Message.new_signal(OBJECT_PATH, INTERFACE, signal, SIGNALS[signal][0], body))

    def emit_retry_attempt(self, generation: str, attempt: int, attempts: int, outcome: str) -> None:
        signature = SIGNALS["RetryAttempt"][0]
        body = [generation, attempt, attempts, outcome]
        self._bus.send(Message.new_signal(OBJECT_PATH, INTERFACE, "RetryAttempt", signature, body))

    def describe(self) -> str:
        if self._describe_cache is None:
            self._describe_cache = json.dumps(self._host.describe(), sort_keys=True)
        return self._describe_cache

    # -- dispatch ---------------------------------------------------------------------------

    def _handle(self, msg: Message) -> Message | bool | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.path != OBJECT_PATH:
            return None
        interface, member = msg.interface, msg.member
        if interface == PROPERTIES_INTERFACE:
            return self._properties(msg)
        if interface == INTROSPECTABLE_INTERFACE and member == "Introspect":
            return Message.new_method_return(msg, "s", [self._introspect()])
        if interface == PEER_INTERFACE:
            return None  # dbus-fast answers Ping and GetMachineId itself
        if interface not in (INTERFACE, None) or member not in METHODS:
            return Message.new_error(msg, ERROR_UNKNOWN_METHOD, f"no method {interface}.{member}")
        spec = METHODS[member]
        if msg.signature != spec.in_signature:
            return Message.new_error(
                msg, ERROR_INVALID_ARGS, f"{member} takes ({spec.in_signature}), not ({msg.signature})"
            )
        if member == "Describe":
            return Message.new_method_return(msg, "s", [self.describe()])
        if member == "Plan":
            return self._reply_sync(msg, lambda: json.dumps(self._host.plan(), sort_keys=True))
        if member == "ListConnections":
            return Message.new_method_return(msg, spec.out_signature, [self._host.list_connections()])
        task = asyncio.get_running_loop().create_task(self._call_mutating(msg, member))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _reply_sync(self, msg: Message, produce: Callable[[], str]) -> Message:
        try:
            return Message.new_method_return(msg, "s", [produce()])
        except ApiError as exc:
            return Message.new_error(msg, exc.error_name, str(exc))

    async def _call_mutating(self, msg: Message, member: str) -> None:
        try:
            await self._authorize(msg)
            await self._mutation(member, msg.body)()
            reply = Message.new_method_return(msg)
        except PermissionError as exc:
            reply = Message.new_error(msg, ERROR_ACCESS_DENIED, str(exc))
        except InvalidArgument as exc:
            reply = Message.new_error(msg, ERROR_INVALID_ARGS, str(exc))
        except ApiError as exc:
            reply = Message.new_error(msg, exc.error_name, str(exc))
        except Exception as exc:
            log.exception("%s failed", member)
            reply = Message.new_error(msg, ERROR_PREFIX + "Failed", f"{member} failed: {exc}")
        self._bus.send(reply)

    def _mutation(self, member: str, body: list[Any]) -> Callable[[], Awaitable[None]]:
        if member == "Reload":
            return self._host.reload
        if member == "SetHostname":
            return lambda: self._host.set_hostname(body[0])
        if member == "SetPersistentLogging":
            return lambda: self._host.set_persistent_logging(body[0])
        if member == "Try":
            return lambda: self._host.try_apply(body[0], body[1])
        if member == "Confirm":
            return self._host.confirm
        if member == "SetConfig":
            return lambda: self._host.set_config(unwrap(body[0]))
        if member == "SetDiscoverable":
            return lambda: self._host.set_discoverable(body[0])
        if member == "AddConnection":
            return lambda: self._host.set_connection(body[0], body[1], exists=False)
        if member == "UpdateConnection":
            return lambda: self._host.set_connection(body[0], body[1], exists=True)
        if member == "RemoveConnection":
            return lambda: self._host.set_connection(body[0], None, exists=True)
        if member == "SetProxy":
            return lambda: self._host.set_proxy(body[0], body[1])
        raise AssertionError(member)

    async def _authorize(self, msg: Message) -> None:
        """Root, or a member of an admin group; the bus policy says the same, this holds if it is loosened."""
        reply = await self._bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="GetConnectionCredentials",
                signature="s",
                body=[msg.sender],
            )
        )
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            raise PermissionError(f"cannot determine the credentials of {msg.sender}")
        credentials = reply.body[0]
        uid = credentials["UnixUserID"].value if "UnixUserID" in credentials else None
        gids = set(credentials["UnixGroupIDs"].value) if "UnixGroupIDs" in credentials else set()
        if uid == 0 or (self._admin_gids & gids):
            return
        raise PermissionError(f"{msg.member} needs root (caller uid {uid})")

    def _properties(self, msg: Message) -> Message:
        member, body = msg.member, msg.body
        if member == "Get" and msg.signature == "ss":
            interface, name = body
            if interface != INTERFACE:
                return Message.new_error(msg, ERROR_UNKNOWN_INTERFACE, f"no interface {interface}")
            if name not in self._values:
                return Message.new_error(msg, ERROR_UNKNOWN_PROPERTY, f"no property {name!r}")
            return Message.new_method_return(msg, "v", [Variant(PROPERTIES[name], self._values[name])])
        if member == "GetAll" and msg.signature == "s":
            if body[0] not in (INTERFACE, ""):
                return Message.new_method_return(msg, "a{sv}", [{}])
            values = {name: Variant(PROPERTIES[name], value) for name, value in self._values.items()}
            return Message.new_method_return(msg, "a{sv}", [values])
        if member == "Set":
            return Message.new_error(
                msg, ERROR_PROPERTY_READ_ONLY, "every io.hostd1 property is read-only; use the methods"
            )
        return Message.new_error(
            msg, ERROR_UNKNOWN_METHOD, f"no method {PROPERTIES_INTERFACE}.{member}({msg.signature})"
        )

    def _introspect(self) -> str:
        if self._introspection is None:
            self._introspection = (
                '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
                ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n<node>\n'
                + introspection_xml()
                + _STANDARD_INTERFACES
                + "</node>\n"
            )
        return self._introspection


_MISSING = object()
