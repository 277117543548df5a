"""A thin client of the daemon's io.hostd1 API, for hostctl: blocking calls, standard library only."""

from __future__ import annotations

from hostd import sync_bus
from hostd.bus.names import (
    ERROR_ACCESS_DENIED,
    ERROR_NAME_HAS_NO_OWNER,
    ERROR_SERVICE_UNKNOWN,
    HOSTD_INTERFACE,
    HOSTD_NAME,
    HOSTD_PATH,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from typing import Any

CALL_TIMEOUT = 120.0  # a reconcile may restart services


class NotRunning(Exception):
    pass


class Denied(Exception):
    pass


class Failed(Exception):
    pass


class Hostd:
    """io.hostd1 over one bus connection; use as a context manager."""

    def __init__(self, address: str | None) -> None:
        try:
            self._bus = sync_bus.Connection(address, timeout=CALL_TIMEOUT)
        except (OSError, sync_bus.BusError) as exc:
            raise NotRunning(f"cannot reach the system bus: {exc}") from None

    def __enter__(self) -> Hostd:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bus.close()

    def call(self, member: str, signature: str = "", *args: Any) -> list[Any]:
        try:
            return self._bus.call(HOSTD_NAME, HOSTD_PATH, HOSTD_INTERFACE, member, signature, *args)
        except TimeoutError:
            raise Failed(f"hostd did not answer {member} within {CALL_TIMEOUT:g} s") from None
        except OSError as exc:
            raise Failed(f"the bus connection failed during {member}: {exc}") from None
        except sync_bus.BusError as exc:
            if exc.name in (ERROR_SERVICE_UNKNOWN, ERROR_NAME_HAS_NO_OWNER):
                raise NotRunning("hostd is not running (nothing owns io.hostd1 on the bus)") from None
            if exc.name == ERROR_ACCESS_DENIED:
                raise Denied(f"not allowed: {exc.text or exc.name}") from None
            raise Failed(f"{exc.name}: {exc.text or exc.name}") from None


def variant(value: Any) -> tuple[str, Any]:
    """A JSON value as a D-Bus variant (signature, value): what SetConfig's a{sv} carries."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("x", value)
    if isinstance(value, float):
        return ("d", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return ("as", value)
        return ("av", [variant(item) for item in value])
    if isinstance(value, dict):
        return ("a{sv}", {str(key): variant(item) for key, item in value.items()})
    raise ValueError('null cannot be sent over D-Bus; "" means not set')
