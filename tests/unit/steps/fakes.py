"""Stand-ins for the service adapters a live effect is given: only what the effects use, and a call log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hostd.bus import errors
from hostd.bus.networkmanager import LoadResult
from hostd.bus.systemd import ActiveState, JobResult, UnitState


@dataclass
class FakeDnsmasq:
    attached: bool = True
    servers: list[str] | None = None
    given: list[list[str]] = field(default_factory=list)

    async def set_servers(self, servers: list[str]) -> None:
        if not self.attached:
            raise errors.ServiceUnavailable("dnsmasq is not running")
        self.servers = servers
        self.given.append(servers)


@dataclass
class FakeSystemd:
    available: bool = True
    active_units: set[str] = field(default_factory=set)
    loaded_units: set[str] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def _state(self, unit: str) -> UnitState:
        active = ActiveState.ACTIVE if unit in self.active_units else ActiveState.INACTIVE
        loaded = "loaded" if unit in self.loaded_units | self.active_units else "not-found"
        return UnitState(unit, loaded, active, "")

    async def unit_states(self, units: list[str]) -> list[UnitState]:
        return [self._state(unit) for unit in units]

    async def unit_state(self, unit: str) -> UnitState:
        return self._state(unit)

    async def start_transient_mount(self, what: str, where: str) -> JobResult:
        self.calls.append(("mount", what, where))
        return JobResult.DONE

    async def start_unit(self, unit: str) -> JobResult:
        self.calls.append(("start", unit))
        return JobResult.DONE

    async def restart_unit(self, unit: str) -> JobResult:
        self.calls.append(("restart", unit))
        return JobResult.DONE

    async def kill_unit(self, unit: str, signal: int) -> None:
        self.calls.append(("kill", unit, str(signal)))


@dataclass
class FakeJournald:
    restarts: int = 0

    async def restart(self) -> None:
        self.restarts += 1


@dataclass
class FakeNetworkManager:
    attached: bool = True
    refused: set[str] = field(default_factory=set)  # files it will not load
    loaded: set[str] = field(default_factory=set)
    asked: list[list[str]] = field(default_factory=list)

    async def load_connections(self, files: list[str]) -> LoadResult:
        self.asked.append(files)
        for path in files:
            if Path(path).exists() and path not in self.refused:
                self.loaded.add(path)
            else:
                self.loaded.discard(path)
        failures = [path for path in files if path in self.refused]
        return LoadResult(not failures, failures)

    async def connection_filenames(self) -> set[str]:
        return set(self.loaded)


def services(**adapters: Any) -> Any:
    """A Services stand-in holding just the adapters a test gives."""
    return SimpleNamespace(**adapters)
