"""Plain records for the engine and the daemon: what a frozen dataclass gave them (equality and a
hash by field, a repr), without importing dataclasses (and inspect) into the boot stages or
generating each class's methods at import, about 0.8 ms a class on the network's path
(hostd.prepare) and on hostd's way to READY=1."""

from __future__ import annotations


class Record:
    """A record's fields are its class's ``__slots__``, set by its ``__init__`` and not changed
    afterwards (except the results' fields a step run fills in)."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        """The fields that make two records equal."""
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"
