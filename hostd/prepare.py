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

Both run the steps' own ``plan()`` through the engine: there is one code path per step.  An
unchanged boot (``hostd.stamp``: everything the last full run read and wrote is as it left it)
only rewrites what that run left in /run and sets the kernel's name, without the engine.  Nothing
is imported here at the top: the network waits for this process, and the daemon's argument
parser reads ``STAGES``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd import config as config_model
    from hostd.layout import Layout
    from hostd.steps.base import Step

NETWORK_INPUTS_UNIT = "hostd-network-inputs.service"
"""The network-inputs stage's unit: hostd starts beside it and its first reconcile waits for it."""

# Each stage's steps, by name, in the registry's running order (hostd.steps.ALL_STEPS).
STAGES: dict[str, tuple[str, ...]] = {
    "bind-sources": ("state",),
    "network-inputs": (
        "identity",
        "hostname",
        "connections",
        "dispatcher",
        "dns",
        "ntp",
        "network-config",
        "regulatory-domain",
    ),
}


def stage_steps(stage: str) -> tuple[Step, ...]:
    """The stage's step modules; only those are imported (not the registry's every step), and by
    ``__import__`` (its ``fromlist`` returns the step module itself): the importlib package is one
    import less on the network's path."""
    modules = (f"hostd.steps.{name.replace('-', '_')}" for name in STAGES[stage])
    return tuple(__import__(module, fromlist=["NAME"]) for module in modules)


class Source:
    """What the daemon's first reconcile applies at this boot: a configuration and the boot
    partition (or saved generation) it came from."""

    __slots__ = ("config", "generation", "layout", "reads_good")

    def __init__(self, config: config_model.Config, layout: Layout, generation: str, reads_good: bool) -> None:
        self.config = config
        self.layout = layout
        self.generation = generation  # its id; "" for the defaults
        # It depends on the last-known-good configuration: that generation itself, or the values
        # config.json's held-back keys fall back to.
        self.reads_good = reads_good


def boot_source(layout: Layout) -> Source | None:
    """The generation hostd.reconciler applies first at boot, chosen by the same function
    (generations.boot_choice), from files only: config.json as read (its held-back keys at their
    last-known-good values); the last-known-good generation instead when config.json is unusable,
    when its generation was rejected, or when a ``Try`` of it was cut short (never confirmed: the
    daemon rejects it before it chooses); None when nothing is applied (rejected, and no good
    generation to return to)."""
    from hostd import config as config_model
    from hostd import generations
    from hostd.transaction import TrialRecord

    loaded = config_model.load(layout)
    store = generations.GenerationStore(layout)
    candidate = None
    rejected = set(store.rejected())
    if loaded.error is None:
        assert loaded.raw is not None
        candidate = generations.read_inputs(layout, loaded.raw).id
        record = TrialRecord.read(layout.trial_record)
        if record is not None and record.candidate == candidate and record.kind == "try":
            rejected.add(candidate)
    choice = generations.boot_choice(candidate, rejected, store.good())
    if choice is None:
        return None
    if choice == candidate:
        return Source(loaded.config, layout, candidate, bool(loaded.held_back))
    if choice == "":
        return Source(loaded.config, layout, "", True)  # the defaults (nothing was ever good)
    restored = store.layout_of(choice)
    return Source(config_model.load(restored).config, restored, choice, True)


def run(stage: str, root: str | os.PathLike[str] = "/") -> int:
    """Run one stage; 0 unless a step failed (each step's problems are logged)."""
    return 0 if replayed(stage, root) else full_run(stage, root)


def replayed(stage: str, root: str | os.PathLike[str]) -> bool:
    """True when the stage is done by replaying the last full run's stamp (an unchanged boot)."""
    if stage != "network-inputs":
        return False
    from hostd import stamp

    try:
        return stamp.replay(os.fspath(root))
    except (OSError, ValueError):
        return False  # the full run writes every file itself, and says what is wrong


def full_run(stage: str, root: str | os.PathLike[str] = "/") -> int:
    """Run one stage's steps through the engine; for the network's inputs, record its stamp."""
    from hostd import config as config_model
    from hostd import engine, fsutil
    from hostd.layout import Layout
    from hostd.log import Logger
    from hostd.steps.base import Context, StepStatus

    log = Logger("hostd.prepare")
    layout = Layout(root)
    steps = stage_steps(stage)
    if stage == "bind-sources":
        # The state step reads no key: no config.json is read before the partitions are bound.
        ctx = Context(config_model.Config(), layout)
        results = engine.run(ctx, steps, apply=True, clean=False)
    else:
        from hostd import stamp
        from hostd.steps import hostname

        run_inputs = stamp.run_inputs_digest(os.fspath(root))
        source = boot_source(layout)
        if source is None:
            log.warning("config.json's generation was rejected and none is good: the daemon decides")
            return 0
        ctx = Context(source.config, source.layout)
        results = engine.run(ctx, steps, apply=True)
        # The daemon's first reconcile reads it: this generation is in place before it runs.
        marker = f"{source.generation}\n".encode()
        if fsutil.read_bytes(layout.network_inputs_generation) != marker:
            fsutil.atomic_write(layout.network_inputs_generation, marker, 0o644)
        named = all(r.status != StepStatus.FAILED for r in results if r.name == hostname.NAME)
        if named:
            hostname.set_kernel_hostname(ctx)
        if all(r.status != StepStatus.FAILED for r in results):
            _record(layout, run_inputs, source.reads_good, ctx.config.effective_hostname if named else None)
    failed = False
    for result in results:
        for problem in result.problems:
            log.warning("%s: %s", result.name, problem)
        if result.status == StepStatus.FAILED:
            failed = True
        elif result.changes:
            log.info("%s: %s", result.name, ", ".join(f"{change.kind} {change.path}" for change in result.changes))
    return 1 if failed else 0


def _record(layout: Layout, run_inputs: bytes, reads_good: bool, hostname: str | None) -> None:
    """The stamp of this full run, for the next boot to replay, left in /run for the daemon to
    keep (``keep_stamp``) when it differs from the kept one: an unchanged boot writes nothing on
    flash, and no boot waits for the state partition's fsync."""
    from hostd import fsutil, stamp
    from hostd.log import Logger

    outputs = (*volatile_outputs(layout), layout.device_path(layout.network_inputs_generation))
    pending = layout.path("/" + stamp.PENDING)
    try:
        content = stamp.content(layout.root, run_inputs, reads_good, hostname, outputs)
        if fsutil.file_differs(layout.path("/" + stamp.STAMP), content, 0o600) is not None:
            fsutil.atomic_write(pending, content, 0o600)
    except OSError as exc:  # the next boot runs in full again
        Logger("hostd.prepare").warning("%s: not written: %s", layout.device_path(pending), exc)


def keep_stamp(layout: Layout) -> None:
    """The daemon, once ready: the stamp a full run of the stage left in /run goes onto the state
    partition (power-safely), for the next boot to replay.  Nothing to do after a replay or at a
    restart of the daemon."""
    from hostd import fsutil, stamp

    pending = layout.path("/" + stamp.PENDING)
    content = fsutil.read_bytes(pending)
    if content is None:
        return
    kept = layout.path("/" + stamp.STAMP)
    if fsutil.file_differs(kept, content, 0o600) is not None:
        fsutil.atomic_write(kept, content, 0o600)
    os.unlink(pending)


def volatile_outputs(layout: Layout) -> tuple[str, ...]:
    """The device paths in /run the network steps write (tmpfs: gone at every boot)."""
    return tuple(
        layout.device_path(path)
        for path in (layout.dnsmasq_servers, layout.chrony_sources, layout.nm_dropin, layout.modprobe_dropin)
    )


def main(stage: str) -> int:
    """The stage as its unit runs it: its lines go to stderr (the journal) without logging."""
    if replayed(stage, "/"):
        return 0
    from hostd import log

    log.to_stderr()
    if stage not in STAGES:
        log.Logger("hostd.prepare").error("unknown stage %r (one of: %s)", stage, ", ".join(STAGES))
        return 2
    return full_run(stage)
