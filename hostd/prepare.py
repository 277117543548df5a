"""Boot stages run before the daemon, offline, each as a oneshot unit: the bind mounts and the
network's services wait only for what they read, not for hostd's bus, imports and other steps.

``bind-sources`` (``hostd-bind-sources.service``, before the state partition's mount units):
the state step's file work (first boot and reset: the overlay wiped and the flag recreated; every
bind source made like its target).  Its unit runs only when a flag or a source is missing.

``network-inputs`` (``hostd-network-inputs.service``, after the mounts, before NetworkManager,
ModemManager, dnsmasq and chrony): the steps whose files those services read when they start
(profiles, dispatcher scripts, NetworkManager's drop-in, dnsmasq's servers file, chrony's
sources, the regulatory domain), the uuid and the hostname (file and kernel name: NetworkManager
sends it with DHCP).  Written from the generation the daemon's first reconcile applies at this
boot (``boot_source``); the daemon then runs every step as usual, finds these converged, and
attaches to the services live.

Both run the steps' own ``plan()`` through the engine: there is one code path per step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hostd import config as config_model
from hostd import engine, fsutil, generations
from hostd.layout import Layout
from hostd.steps import ALL_STEPS, hostname, state
from hostd.steps.base import Context, Step, StepStatus
from hostd.transaction import TrialRecord

log = logging.getLogger("hostd.prepare")

NETWORK_INPUT_STEPS = frozenset(
    {"identity", "hostname", "connections", "dispatcher", "dns", "ntp", "network-config", "regulatory-domain"}
)
STAGES: dict[str, tuple[Step, ...]] = {
    "bind-sources": (state,),
    "network-inputs": tuple(step for step in ALL_STEPS if step.NAME in NETWORK_INPUT_STEPS),
}


@dataclass(frozen=True)
class Source:
    """What the daemon's first reconcile applies at this boot: a configuration and the boot
    partition (or saved generation) it came from."""

    config: config_model.Config
    layout: Layout
    generation: str  # its id; "" for the defaults


def boot_source(layout: Layout) -> Source | None:
    """The generation hostd.reconciler applies first at boot, decided the same way, from files only:
    config.json as read (its held-back keys at their last-known-good values); the last-known-good
    generation instead when config.json is unusable, when its generation was rejected, or when a
    ``Try`` of it was cut short (never confirmed); None when nothing is applied (rejected, and no
    good generation to return to)."""
    loaded = config_model.load(layout)
    store = generations.GenerationStore(layout)
    good = store.good()
    if loaded.error is None:
        assert loaded.raw is not None
        candidate = generations.read_inputs(layout, loaded.raw).id
        record = TrialRecord.read(layout.trial_record)
        unconfirmed = record is not None and record.candidate == candidate and record.kind == "try"
        if candidate not in store.rejected() and not unconfirmed:
            return Source(loaded.config, layout, candidate)
    elif good is None:
        return Source(loaded.config, layout, "")  # the defaults (nothing was ever good)
    if good is None:
        return None
    restored = store.layout_of(good)
    return Source(config_model.load(restored).config, restored, good)


def run(stage: str, root: Path = Path("/")) -> int:
    """Run one stage; 0 unless a step failed (each step's problems are logged)."""
    layout = Layout(root)
    if stage == "bind-sources":
        # The state step reads no key: no config.json is read before the partitions are bound.
        ctx = Context(config_model.Config(), layout)
        results = engine.run(ctx, STAGES[stage], apply=True, clean=False)
    else:
        source = boot_source(layout)
        if source is None:
            log.warning("config.json's generation was rejected and none is good: the daemon decides")
            return 0
        ctx = Context(source.config, source.layout)
        results = engine.run(ctx, STAGES[stage], apply=True)
        # The daemon's first reconcile reads it: this generation is in place before it runs.
        marker = f"{source.generation}\n".encode()
        if fsutil.read_bytes(layout.network_inputs_generation) != marker:
            fsutil.atomic_write(layout.network_inputs_generation, marker, 0o644)
        if all(r.status != StepStatus.FAILED for r in results if r.name == hostname.NAME):
            hostname.set_kernel_hostname(ctx)
    failed = False
    for result in results:
        for problem in result.problems:
            log.warning("%s: %s", result.name, problem)
        if result.status == StepStatus.FAILED:
            failed = True
        elif result.changes:
            log.info("%s: %s", result.name, ", ".join(f"{change.kind} {change.path}" for change in result.changes))
    return 1 if failed else 0


def main(stage: str) -> int:
    from hostd import logsetup

    logsetup.setup()
    if stage not in STAGES:
        log.error("unknown stage %r (one of: %s)", stage, ", ".join(STAGES))
        return 2
    return run(stage)
