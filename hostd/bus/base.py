"""What every adapter shares: owner tracking, re-attach, bounded calls, error translation, property cache.

Adapters talk to the bus with plain messages and hand-written signatures: no Introspect round trip,
no proxy objects. Each adapter follows its service's owner through one NameOwnerChanged match rule
(arg0 = its bus name), so a service that starts, restarts or stops is noticed without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Self

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from hostd import children
from hostd.bus import errors, names

DEFAULT_TIMEOUT = 5.0
"""Seconds any single call may take before it raises errors.Timeout."""
ATTACH_RETRY_DELAY = 0.1
ATTACH_RETRY_MAX_DELAY = 60.0
"""A failed attach (a busy service at boot; NetworkManager owns its name ~0.1 s before it exports its
objects) is retried soon, then with backoff."""

Callback = Callable[..., Awaitable[None]]

_NOT_STARTED = "not started"
_enum_log = logging.getLogger("hostd.bus")
_unknown_enum_values_seen: set[tuple[str, object]] = set()


def _tolerate_unknown(enum_type: type, value: object) -> None:
    key = (enum_type.__qualname__, value)
    if key not in _unknown_enum_values_seen:
        _unknown_enum_values_seen.add(key)
        _enum_log.getChild(enum_type.__module__.rsplit(".", 1)[-1]).debug(
            "unknown %s value %r, treated as UNKNOWN", enum_type.__name__, value
        )


class TolerantIntEnum(IntEnum):
    """An integer enum of a remote service; values newer than hostd map to the subclass's UNKNOWN."""

    @classmethod
    def _missing_(cls, value: object) -> Self:
        _tolerate_unknown(cls, value)
        return cls["UNKNOWN"]


class TolerantStrEnum(StrEnum):
    """A string enum of a remote service; values newer than hostd map to the subclass's UNKNOWN."""

    @classmethod
    def _missing_(cls, value: object) -> Self:
        _tolerate_unknown(cls, value)
        return cls["UNKNOWN"]


def unwrap(value: Any) -> Any:
    """Turn dbus-fast values (Variants, nested) into plain Python data."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def match_rule(**fields: str) -> str:
    """A D-Bus match rule string from keyword fields (values never contain quotes)."""
    return ",".join(f"{key}='{value}'" for key, value in fields.items())


def properties_changed_rule(**where: str) -> dict[str, str]:
    """A signal_rules entry for PropertiesChanged, narrowed by path (or path_namespace) and arg0."""
    return {"interface": names.PROPERTIES_INTERFACE, "member": "PropertiesChanged", **where}


class Callbacks:
    """Registered async callbacks; a failing callback is logged and never stops the others."""

    def __init__(self, log: logging.Logger, event: str) -> None:
        self._log = log
        self._event = event
        self._callbacks: list[Callback] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, callback: Callback) -> None:
        self._callbacks.append(callback)

    async def run(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            try:
                await callback(*args)
            except asyncio.CancelledError:
                raise
            except Exception:
                name = getattr(callback, "__qualname__", repr(callback))
                self._log.exception("%s callback %s failed", self._event, name)

    def fire(self, *args: Any) -> None:
        """Run the callbacks in a task, for use from synchronous signal handlers."""
        if not self._callbacks:
            return
        task = asyncio.get_running_loop().create_task(self.run(*args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class PropertyCache:
    """One object's properties on one interface, fed by GetAll replies and PropertiesChanged signals.

    Each value remembers the serial of the message it came from: a GetAll reply that the sender sent
    before a PropertiesChanged we already applied must not overwrite the newer value.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._serials: dict[str, int] = {}

    def apply(self, values: dict[str, Any], serial: int) -> set[str]:
        """Store values; returns the names whose value changed."""
        changed = set()
        for name, value in values.items():
            if self._serials.get(name, 0) > serial:
                continue
            self._serials[name] = serial
            if name not in self.values or self.values[name] != value:
                self.values[name] = value
                changed.add(name)
        return changed

    def forget_serials(self) -> None:
        """A new owner counts its serials from 1 again."""
        self._serials.clear()


class Feature:
    """Something hostd depends on that may be missing: reports itself degraded with one log line."""

    key: ClassVar[str]
    """Short name used in logs (logger hostd.bus.<key>) and in the degraded report."""

    def __init__(self) -> None:
        self._log = logging.getLogger(f"hostd.bus.{self.key}")
        self._degraded_reason: str | None = _NOT_STARTED
        self._degradation_logged = False

    @property
    def degraded_reason(self) -> str | None:
        """Why the feature is off, or None while it works."""
        return self._degraded_reason

    @property
    def available(self) -> bool:
        return self._degraded_reason is None

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what start() set up."""

    def _degrade(self, reason: str) -> None:
        self._degraded_reason = reason
        if not self._degradation_logged:
            self._degradation_logged = True
            self._log.warning("%s: %s; its features are off until it returns", self.key, reason)

    def follow_unit(self, unit: str, state: str) -> None:
        """Track the systemd unit behind a feature that has no bus name of its own."""
        if state in ("inactive", "failed"):
            self._degrade(f"{unit} is {state}")
        elif state == "active":
            self._recover()

    def _recover(self) -> None:
        if self._degradation_logged:
            self._log.info("%s is back", self.key)
        self._degradation_logged = False
        self._degraded_reason = None


class BusAdapter(Feature):
    """Base of the D-Bus adapters: one per remote service, on a bus connection owned by the caller."""

    bus_name: ClassVar[str]
    signal_rules: ClassVar[tuple[dict[str, str], ...]] = ()
    """Match rules (without sender) for the signals this adapter follows; kept narrow on purpose."""
    exits_when_idle: ClassVar[bool] = False
    """The service is bus-activated and exits when idle (hostnamed): absence is routine.  Not
    running when hostd starts, it is left alone until a call needs it (the bus starts it then), so
    that a start that changes nothing costs no process start."""

    def __init__(self, bus: MessageBus, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self._bus = bus
        self.timeout = timeout
        self.attach_retry_delay = ATTACH_RETRY_DELAY
        self._owner: str | None = None
        self._attached = False
        self._activatable = False
        self._owner_changes = 0
        self._attach_task: asyncio.Task[None] | None = None
        self._first_attach_attempt = asyncio.Event()
        self._match_rules: list[str] = []
        self._caches: dict[tuple[str, str], PropertyCache] = {}
        self._attach_callbacks = Callbacks(self._log, "on_attach")
        self._detach_callbacks = Callbacks(self._log, "on_detach")
        self._refresh_tasks: set[asyncio.Task[None]] = set()
        self._started = False

    # -- public lifecycle -------------------------------------------------------------------------

    def on_attach(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register a callback run after every (re-)attach, when the service's cache is filled."""
        self._attach_callbacks.add(callback)

    def on_detach(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register a callback run when the service's owner goes away."""
        self._detach_callbacks.add(callback)

    @property
    def attached(self) -> bool:
        """The service is running now and its state is cached."""
        return self._attached

    async def start(self) -> None:
        """Watch the service and attach to it if it is running; never raises for a missing service."""
        if self._started:
            return
        self._started = True
        self._bus.add_message_handler(self._dispatch)
        self._match_rules = [
            match_rule(
                type="signal",
                sender=names.DBUS_NAME,
                path=names.DBUS_PATH,
                interface=names.DBUS_INTERFACE,
                member="NameOwnerChanged",
                arg0=self.bus_name,
            ),
            *(match_rule(type="signal", sender=self.bus_name, **rule) for rule in self.signal_rules),
        ]
        for rule in self._match_rules:
            self._add_match(rule)
        try:
            if self.exits_when_idle:
                (activatable,) = await self._call_bus_daemon("ListActivatableNames")
                self._activatable = self.bus_name in activatable
            owner_changes_before = self._owner_changes
            owner = await self._current_owner()
        except errors.BusError as err:
            self._degrade(f"cannot watch it: {err}")
            return
        if self._owner_changes == owner_changes_before:
            # No NameOwnerChanged overtook the answer, so it is still the newest news.
            self._set_owner(owner)
        if self._attach_task is not None:
            # Boot waits for the first attach attempt only so long; a slow one goes on in the background.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_attach_attempt.wait(), self.timeout)
            if self._degraded_reason == _NOT_STARTED:
                self._degraded_reason = "still attaching"
        elif self._degraded_reason == _NOT_STARTED:
            if self._activatable:
                self._recover()  # not started on purpose: the next call starts it
            else:
                self._degrade("not running")

    async def close(self) -> None:
        """Stop following the service; safe to call on a closed bus."""
        if not self._started:
            return
        self._started = False
        self._bus.remove_message_handler(self._dispatch)
        if self._owner is not None:
            self._owner, self._attached = None, False
            self._on_detached()
        for task in [self._attach_task, *self._refresh_tasks]:
            if task is not None:
                task.cancel()
        self._attach_callbacks.cancel()
        self._detach_callbacks.cancel()
        if self._bus.connected:
            for rule in self._match_rules:
                try:
                    await self._call_bus_daemon("RemoveMatch", "s", rule)
                except errors.BusError as err:
                    self._log.debug("RemoveMatch failed: %s", err)

    async def refresh(self) -> None:
        """Re-read every cached property (for properties the service does not signal)."""
        if self._owner is None and not self._activatable:
            raise errors.ServiceUnavailable(f"{self.bus_name} is not running")
        await asyncio.gather(*(self._fetch_properties(path, iface) for path, iface in list(self._caches)))

    # -- for subclasses ---------------------------------------------------------------------------

    async def _on_attached(self) -> None:
        """Fill caches and re-apply remembered intent; runs with the new owner set."""

    def _on_detached(self) -> None:
        """Forget state that belonged to the previous owner."""

    def _on_signal(self, message: Message) -> None:
        """A signal from the current owner other than PropertiesChanged."""

    def _on_properties_changed(self, path: str, interface: str, changed: set[str]) -> None:
        """Cached properties changed value."""

    def _cached(self, path: str, interface: str) -> dict[str, Any]:
        cache = self._caches.get((path, interface))
        return cache.values if cache is not None else {}

    def _forget_cache(self, path: str, interfaces: Iterable[str]) -> None:
        for interface in interfaces:
            self._caches.pop((path, interface), None)

    async def _fetch_properties(self, path: str, interface: str) -> dict[str, Any]:
        """GetAll into the cache; afterwards PropertiesChanged keeps it current."""
        reply = await self._call_message(path, names.PROPERTIES_INTERFACE, "GetAll", "s", interface)
        self._store_properties(path, interface, unwrap(reply.body[0]), reply.serial)
        return self._cached(path, interface)

    def _store_properties(self, path: str, interface: str, values: dict[str, Any], serial: int) -> set[str]:
        cache = self._caches.setdefault((path, interface), PropertyCache())
        return cache.apply(values, serial)

    async def _call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        *body: Any,
        timeout: float | None = None,
    ) -> list[Any]:
        """Call a method of the service; returns the reply body as plain data."""
        reply = await self._call_message(path, interface, member, signature, *body, timeout=timeout)
        return unwrap(reply.body)

    async def _call_message(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        *body: Any,
        timeout: float | None = None,
    ) -> Message:
        if self._owner is None and not self._activatable:
            raise errors.ServiceUnavailable(f"{self.bus_name} is not running")
        owner = self._owner
        message = Message(
            destination=self.bus_name,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
        return await self._send(message, timeout, owner)

    # -- internals --------------------------------------------------------------------------------

    async def _send(self, message: Message, timeout: float | None, owner: str | None) -> Message:
        bound = self.timeout if timeout is None else timeout
        what = f"{message.interface}.{message.member}"
        try:
            async with asyncio.timeout(bound):  # no task per call, as wait_for() makes
                reply = await self._bus.call(message)
        except TimeoutError:
            raise errors.Timeout(f"{what} got no reply within {bound:g} s") from None
        except (OSError, EOFError) as err:
            raise errors.ServiceUnavailable(f"bus connection lost during {what}: {err}") from err
        if reply is None:
            raise errors.ServiceUnavailable(f"bus connection closed during {what}")
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            vanished = False
            if reply.error_name == names.ERROR_NO_REPLY and message.destination == self.bus_name:
                vanished = await self._owner_differs_from(owner)
            raise errors.from_error_reply(reply.error_name or "", text, peer_vanished=vanished)
        return reply

    async def _call_bus_daemon(self, member: str, signature: str = "", *body: Any) -> list[Any]:
        message = Message(
            destination=names.DBUS_NAME,
            path=names.DBUS_PATH,
            interface=names.DBUS_INTERFACE,
            member=member,
            signature=signature,
            body=list(body),
        )
        return (await self._send(message, None, None)).body

    def _add_match(self, rule: str) -> None:
        """AddMatch without waiting for its reply (no round trip: a quarter of the calls at hostd's
        start).  The bus daemon handles a connection's messages in order, so the rule is in place
        before it answers the next call (GetNameOwner): no owner change falls between the two.  It
        fails only for a malformed rule (ours are fixed) or past the bus's quota of rules."""
        message = Message(
            destination=names.DBUS_NAME,
            path=names.DBUS_PATH,
            interface=names.DBUS_INTERFACE,
            member="AddMatch",
            signature="s",
            body=[rule],
            flags=MessageFlag.NO_REPLY_EXPECTED,
        )
        self._bus.send(message)

    async def _current_owner(self) -> str | None:
        try:
            (owner,) = await self._call_bus_daemon("GetNameOwner", "s", self.bus_name)
        except errors.ServiceUnavailable:  # NameHasNoOwner
            return None
        return str(owner)

    async def _owner_differs_from(self, owner: str | None) -> bool:
        try:
            return await self._current_owner() != owner
        except errors.BusError:
            return True

    def _dispatch(self, message: Message) -> None:
        """Message handler on the shared connection; returns None so other handlers see every message."""
        if message.message_type is not MessageType.SIGNAL:
            return
        try:
            if message.sender == names.DBUS_NAME:
                if message.member == "NameOwnerChanged" and message.body[0] == self.bus_name:
                    self._owner_changes += 1
                    self._set_owner(message.body[2] or None)
            elif message.sender == self._owner and self._owner is not None:
                if message.interface == names.PROPERTIES_INTERFACE and message.member == "PropertiesChanged":
                    self._apply_properties_changed(message)
                else:
                    self._on_signal(message)
        except Exception:
            self._log.exception("cannot handle %s.%s from %s", message.interface, message.member, self.key)

    def _apply_properties_changed(self, message: Message) -> None:
        interface, changed_values, invalidated = message.body
        key = (message.path, interface)
        if key not in self._caches:
            return
        changed = self._store_properties(message.path, interface, unwrap(changed_values), message.serial)
        if invalidated:
            self._spawn_refresh(message.path, interface)
        if changed:
            self._on_properties_changed(message.path, interface, changed)

    def _spawn_refresh(self, path: str, interface: str) -> None:
        async def refresh() -> None:
            try:
                changed_before = dict(self._cached(path, interface))
                values = await self._fetch_properties(path, interface)
                changed = {name for name, value in values.items() if changed_before.get(name) != value}
                if changed:
                    self._on_properties_changed(path, interface, changed)
            except errors.BusError as err:
                self._log.debug("re-reading invalidated properties of %s failed: %s", path, err)

        task = asyncio.get_running_loop().create_task(refresh())
        self._refresh_tasks.add(task)
        task.add_done_callback(self._refresh_tasks.discard)

    def _set_owner(self, owner: str | None) -> None:
        if owner == self._owner:
            return
        previous, self._owner = self._owner, owner
        if self._attach_task is not None:
            self._attach_task.cancel()
            self._attach_task = None
        if previous is not None:
            self._lose_owner()
        if owner is not None:
            self._attach_task = asyncio.get_running_loop().create_task(self._attach(owner))

    def _lose_owner(self) -> None:
        was_attached, self._attached = self._attached, False
        self._on_detached()
        if self._activatable:
            # Exited when idle: the next call starts it again, and nothing it held was lost.
            for cache in self._caches.values():
                cache.forget_serials()
            self._log.debug("%s exited; it is started again on the next call", self.bus_name)
        else:
            self._caches.clear()
            self._degrade("vanished from the bus")
        if was_attached:
            self._detach_callbacks.fire()

    async def _attach(self, owner: str) -> None:
        """Runs until attached; cancelled when the owner changes."""
        delay = self.attach_retry_delay
        while True:
            try:
                await self._on_attached()
                break
            except errors.BusError as err:
                self._degrade(f"attach failed: {err}")
            except Exception:
                self._log.exception("attaching to %s failed", self.bus_name)
                self._degrade("attach failed: internal error")
            self._first_attach_attempt.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, ATTACH_RETRY_MAX_DELAY)
        self._attached = True
        self._first_attach_attempt.set()
        self._log.debug("attached to %s (%s)", self.bus_name, owner)
        self._recover()
        await self._attach_callbacks.run()


def _which(command: str) -> str | None:
    """shutil.which(), without importing shutil (and the compression modules it loads) into hostd."""
    if os.sep in command:
        candidates = [command]
    else:
        candidates = [os.path.join(path, command) for path in os.environ.get("PATH", os.defpath).split(os.pathsep)]
    return next((c for c in candidates if os.access(c, os.X_OK) and not os.path.isdir(c)), None)


class CommandFeature(Feature):
    """A service driven through its command-line client (chronyc, journalctl), each run bounded."""

    def __init__(self, command: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.command = command
        self.timeout = timeout

    async def start(self) -> None:
        """Check the client is installed; a missing one turns the feature off with one log line."""
        if _which(self.command) is None:
            self._degrade(f"{self.command} is not installed")
        else:
            self._recover()

    async def _run(self, *args: str, timeout: float | None = None) -> str:
        """Run the client; returns stdout. Raises ServiceUnavailable, Timeout or CommandFailed."""
        bound = self.timeout if timeout is None else timeout
        command_line = " ".join((self.command, *args))
        try:
            returncode, stdout, stderr = await children.run((self.command, *args), bound)
        except FileNotFoundError:
            self._degrade(f"{self.command} is not installed")
            raise errors.ServiceUnavailable(f"{self.command} is not installed") from None
        except TimeoutError:
            self._degrade(f"{command_line!r} did not finish within {bound:g} s")
            raise errors.Timeout(f"{command_line!r} did not finish within {bound:g} s") from None
        if returncode != 0:
            # chronyc prints its errors ("506 Cannot talk to daemon") on stdout.
            output = (stderr or stdout).decode(errors="replace")
            raise self._failure(command_line, returncode, output)
        self._recover()
        return stdout.decode(errors="replace")

    def _failure(self, command_line: str, returncode: int, stderr: str) -> errors.BusError:
        """The error for a non-zero exit; subclasses recognise "the daemon is not running"."""
        return errors.CommandFailed(command_line, returncode, stderr)
