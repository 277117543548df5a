"""Safe apply: the change on trial, kept only when it passes its probe or confirmation in time.

The reconciler starts a trial after applying a change that can cut the device off; this module
holds the trial's state, waits for its verdict and remembers the last rollback.  What is kept
or restored is the reconciler's business (through the generations).

Two layers undo a change: NetworkManager's checkpoint (its devices and profiles, as they were
live: the inner layer, which NetworkManager itself rolls back should hostd stop answering) and
the good generation's files, re-applied through the steps (dnsmasq, chrony, the boot partition's
imports: the outer layer).  The trial is recorded on the state partition before the change is
applied, so that hostd starting again after a power cut, reboot or crash inside the window knows
it was interrupted (``TrialRecord``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Coroutine
from enum import StrEnum

from hostd import fsutil
from hostd.bus import errors
from hostd.log import Logger
from hostd.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from hostd.bus.networkmanager import NetworkManagerAdapter
    from hostd.probe import ProbeSettings


class TransactionState(StrEnum):
    """As the ``Transaction`` property shows it."""

    NONE = ""
    PROBING = "probing"
    AWAITING_CONFIRM = "awaiting-confirm"


class Rollback(Record):
    __slots__ = ("evidence", "generation", "reason", "when")

    def __init__(self, when: float, generation: str, reason: str, evidence: str) -> None:
        self.when = when
        self.generation = generation  # the rejected one
        self.reason = reason
        self.evidence = evidence

    def as_tuple(self) -> tuple[float, str, str, str]:
        return (self.when, self.generation, self.reason, self.evidence)

    def as_dict(self) -> dict[str, Any] | None:
        if not self.generation:
            return None
        return {"when": self.when, "generation": self.generation, "reason": self.reason, "evidence": self.evidence}


NO_ROLLBACK = Rollback(0.0, "", "", "")

MAX_RETRIES = 3
"""A change rolled back while the uplink was already failing is tried again this many times."""


class Retry(Record):
    """A change not blamed for its failed probe (the uplink failed before it was applied), waiting
    to be tried again once the uplink is healthy."""

    __slots__ = ("attempts", "generation", "next_at", "reason")

    def __init__(self, generation: str, attempts: int, next_at: float, reason: str) -> None:
        self.generation = generation
        self.attempts = attempts  # retries made so far
        self.next_at = next_at  # unix time of the next one, at the earliest (the uplink healthy by then)
        self.reason = reason  # the uplink's failure before the last attempt

    def as_tuple(self) -> tuple[str, int, int, float, str]:
        return (self.generation, self.attempts, MAX_RETRIES, self.next_at, self.reason)

    def as_dict(self) -> dict[str, Any] | None:
        if not self.generation:
            return None
        return dict(zip(("generation", "attempts", "maxAttempts", "nextAt", "reason"), self.as_tuple(), strict=True))


NO_RETRY = Retry("", 0, 0.0, "")


class Verdict(Record):
    __slots__ = ("evidence", "passed", "reason")

    def __init__(self, passed: bool, reason: str = "", evidence: tuple[str, ...] = ()) -> None:
        self.passed = passed
        self.reason = reason
        self.evidence = evidence


log = Logger("hostd.transaction")

CHECKPOINT_MARGIN = 20
"""Seconds NetworkManager's checkpoint outlives the window: hostd judges first, and NetworkManager
rolls back on its own only if hostd has stopped (its watchdog restarts it well within this)."""
CHECKPOINT_EXTEND_EVERY = 5.0


class TrialRecord(Record):
    """A trial in progress, kept on the state partition until its verdict is acted on."""

    __slots__ = ("began", "candidate", "good", "kind")

    def __init__(self, candidate: str, kind: str, good: str, began: float) -> None:
        self.candidate = candidate
        self.kind = kind  # "try" (kept only on Confirm) or "probe" (automatic apply)
        self.good = good
        self.began = began

    @staticmethod
    def read(path: str) -> TrialRecord | None:
        raw = fsutil.read_bytes(path)
        try:
            return TrialRecord(**json.loads(raw)) if raw else None
        except (ValueError, TypeError):
            return None  # torn by an older writer, or from another version: no trial to resume

    def write(self, path: str) -> None:
        record = {"candidate": self.candidate, "kind": self.kind, "good": self.good, "began": self.began}
        fsutil.atomic_write(path, (json.dumps(record) + "\n").encode(), 0o600)

    @staticmethod
    def clear(path: str) -> None:
        fsutil.remove_file(path)


class Transaction:
    def __init__(self) -> None:
        self.state = TransactionState.NONE
        self.last_rollback = NO_ROLLBACK
        self.checkpoint = ""  # NetworkManager's checkpoint taken before the change on trial
        import asyncio  # here, not at the top: the boot stage (hostd.prepare) reads TrialRecord without it

        self._judging: asyncio.Task[None] | None = None
        self._confirmed = asyncio.Event()

    def begin(self, state: TransactionState, judge: Coroutine[Any, Any, None]) -> None:
        """Put the applied change on trial; ``judge`` waits for the verdict and acts on it."""
        self.state = state
        self._confirmed.clear()
        import asyncio

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
            import asyncio

            await asyncio.wait_for(self._confirmed.wait(), timeout)
        except TimeoutError:
            return Verdict(False, f"not confirmed within {timeout:g} s")
        return Verdict(True)

    async def take_checkpoint(self, nm: NetworkManagerAdapter, window: float) -> None:
        """NetworkManager's checkpoint before the change, unless one taken before a superseded
        change still holds the state to return to (then it is extended)."""
        if not nm.attached:
            return
        try:
            if self.checkpoint and self.checkpoint in await nm.checkpoints():
                await nm.checkpoint_extend(self.checkpoint, int(window) + CHECKPOINT_MARGIN)
                return
            self.checkpoint = await nm.checkpoint_create(int(window) + CHECKPOINT_MARGIN)
            log.info(
                "NetworkManager checkpoint %s taken (rollback in %d s)", self.checkpoint, window + CHECKPOINT_MARGIN
            )
        except errors.BusError as exc:
            self.checkpoint = ""
            log.warning("no NetworkManager checkpoint (the files alone will undo the change): %s", exc)

    async def hold_checkpoint(self, nm: NetworkManagerAdapter, deadline: float) -> None:
        """While the verdict is awaited: NetworkManager's own rollback stays beyond ``deadline``."""
        while self.checkpoint:
            remaining = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(errors.BusError):
                await nm.checkpoint_extend(self.checkpoint, int(remaining) + CHECKPOINT_MARGIN)
            import asyncio

            await asyncio.sleep(CHECKPOINT_EXTEND_EVERY)

    async def release_checkpoint(self, nm: NetworkManagerAdapter, *, roll_back: bool) -> str:
        """Destroy the checkpoint (kept) or roll NetworkManager back to it; what became of each device."""
        checkpoint, self.checkpoint = self.checkpoint, ""
        if not checkpoint:
            return ""
        try:
            if not roll_back:
                await nm.checkpoint_destroy(checkpoint)
                return ""
            devices = await nm.checkpoint_rollback(checkpoint)
        except errors.BusError as exc:  # gone: NetworkManager restarted, or rolled back on its own
            log.warning("NetworkManager checkpoint %s: %s", checkpoint, exc)
            return ""
        restored = ", ".join(f"{device} {result}" for device, result in sorted(devices.items()))
        log.info("NetworkManager rolled back to checkpoint %s: %s", checkpoint, restored or "no device")
        return f"NetworkManager checkpoint rolled back ({restored or 'no device'})"

    @staticmethod
    async def clear_stale_checkpoints(nm: NetworkManagerAdapter, *, roll_back: bool) -> list[str]:
        """Checkpoints left by a hostd that stopped inside a window: rolled back when that trial was
        interrupted (its change was never judged), else destroyed; either way they no longer block
        the next one.  Returns what was done, one line each."""
        if not nm.attached:
            return []
        done = []
        try:
            for checkpoint in await nm.checkpoints():
                if roll_back:
                    await nm.checkpoint_rollback(checkpoint)
                else:
                    await nm.checkpoint_destroy(checkpoint)
                done.append(
                    f"stale NetworkManager checkpoint {checkpoint} {'rolled back' if roll_back else 'destroyed'}"
                )
        except errors.BusError as exc:
            log.warning("stale NetworkManager checkpoints not cleared: %s", exc)
        for line in done:
            log.warning("%s", line)
        return done

    @staticmethod
    async def probe(nm: NetworkManagerAdapter, settings: ProbeSettings, timeout: float) -> Verdict:
        from hostd import probe  # only when a change is on trial

        result = await probe.probe(nm, settings, timeout)
        reason = f"connectivity probe failed for {result.seconds:.0f} s ({result.attempts} attempts)"
        return Verdict(result.ok, reason, tuple(result.evidence))
