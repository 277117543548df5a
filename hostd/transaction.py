"""Safe apply: the change on trial, kept only when it passes its probe or confirmation in time.

The reconciler starts a trial after applying a change that can cut the device off; this module
holds the trial's state, waits for its verdict and remembers the last rollback.  What is kept
or restored is the reconciler's business (through the generations).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hostd.bus.networkmanager import NetworkManagerAdapter
    from hostd.probe import ProbeSettings


class TransactionState(StrEnum):
    """As the ``Transaction`` property shows it."""

    NONE = ""
    PROBING = "probing"
    AWAITING_CONFIRM = "awaiting-confirm"


@dataclass(frozen=True)
class Rollback:
    when: float
    generation: str  # the rejected one
    reason: str
    evidence: str

    def as_tuple(self) -> tuple[float, str, str, str]:
        return (self.when, self.generation, self.reason, self.evidence)

    def as_dict(self) -> dict[str, Any] | None:
        if not self.generation:
            return None
        return {"when": self.when, "generation": self.generation, "reason": self.reason, "evidence": self.evidence}


NO_ROLLBACK = Rollback(0.0, "", "", "")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""
    evidence: tuple[str, ...] = ()


class Transaction:
    def __init__(self) -> None:
        self.state = TransactionState.NONE
        self.last_rollback = NO_ROLLBACK
        self._judging: asyncio.Task[None] | None = None
        self._confirmed = asyncio.Event()

    def begin(self, state: TransactionState, judge: Coroutine[Any, Any, None]) -> None:
        """Put the applied change on trial; ``judge`` waits for the verdict and acts on it."""
        self.state = state
        self._confirmed.clear()
        self._judging = asyncio.get_running_loop().create_task(judge)

    def supersede(self) -> None:
        """A newer change replaces the one on trial: it is judged against the same good generation."""
        if self._judging is not None:
            self._judging.cancel()
            self._judging = None

    def end(self) -> None:
        self.state = TransactionState.NONE
        self._judging = None

    def confirm(self) -> bool:
        """Keep what Try applied; False when nothing waits for confirmation."""
        if self.state != TransactionState.AWAITING_CONFIRM:
            return False
        self._confirmed.set()
        return True

    async def confirmation(self, timeout: float) -> Verdict:
        try:
            await asyncio.wait_for(self._confirmed.wait(), timeout)
        except TimeoutError:
            return Verdict(False, f"not confirmed within {timeout:g} s")
        return Verdict(True)

    @staticmethod
    async def probe(nm: NetworkManagerAdapter, settings: ProbeSettings, timeout: float) -> Verdict:
        from hostd import probe  # only when a change is on trial

        result = await probe.probe(nm, settings, timeout)
        reason = f"connectivity probe failed for {result.seconds:.0f} s ({result.attempts} attempts)"
        return Verdict(result.ok, reason, tuple(result.evidence))
