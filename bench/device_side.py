"""The part of the benchmarks that runs inside the device: `python3 -c <this file> COMMAND JSON`.

It runs on the device's own python3, with the standard library (and the device's hostd and
dbus-fast where a floor needs them); it prints one JSON document.  One process per measurement
series, so that nothing from the host (nsenter, a Python start) lands between the steps it times.

Commands:
    boot      {"runs": N, "chain": "<script text>", "machine": NAME}
              rounds of: reset (cold, warm, restart), a boot of hostd's units and the network's
              (one systemd transaction), systemd's timestamps and hostd's per-step durations; the
              balenaOS boot as units (bind-mount oneshots, then one oneshot per setup step), the
              shell chain in one oneshot, `hostctl apply --offline` into a scratch root and the
              interpreter + imports floor, each timed by systemd the same way
    prepare   {"mode": M, "machine": NAME}      reset only (for the flash and mDNS benchmarks)
    start     {}                                the boot's units started (hostd's and the network's):
                                                systemd's timestamps of them, hostd's PID and io
    procstat  {"pid": P}                        VmRSS/VmHWM and /proc/PID/io of a process
    cli       {"runs": N}                       hostctl status vs hostnamectl wall times
    floor     {}                                RSS of a python with asyncio + dbus-fast connected
    nmload    {"count": N}                      NetworkManager LoadConnections of N files alone
    idle      {"seconds": S, "settle": S}       hostd's wakeups over S idle seconds (after hostnamed, timedated exit)
    edit      {"runs": N}                       config.json edited -> hostd reconciling, /etc/hostname written
    echo-start, echo-stop                       the API floor: a minimal dbus-fast server
"""

from __future__ import annotations

import json
import os
import sys

HOSTD_PYTHON = "/usr/lib/hostd/python"
RUN_FILES = (  # what hostd writes under /run: gone at every reboot
    "/run/systemd/journald.conf.d/hostd.conf",
    "/run/NetworkManager/conf.d/hostd.conf",
    "/run/chrony/hostd.sources",
    "/var/volatile/development-features",
    "/run/modprobe.d/hostd.conf",
    "/run/hostd/network-inputs.generation",
)
DNSMASQ_SERVERS = "/run/dnsmasq.servers"  # created empty by tmpfiles at boot
SHELL_ROOT = "/run/bench-shell"
OFFLINE_ROOT = "/run/bench-offline"
MOUNT_RATELIMIT_S = 1.2
# What a boot starts, as one transaction (systemd orders it by the units' own dependencies): hostd's
# boot stages (they pull the state partition's mount units), hostd, and the network's services.
HOSTD_UNITS = ("hostd-bind-sources.service", "hostd-network-inputs.service", "hostd.service")
NETWORK_UNITS = (
    "NetworkManager.service",
    "dnsmasq.service",
    "chrony.service",
    "avahi-daemon.socket",
    "avahi-daemon.service",
)
BALENA_DIR = "/run/bench-balena"  # the balenaOS-as-units baseline: scripts, scratch root and partition
BALENA_UNITS_DIR = "/run/systemd/system"
BALENA_TARGET = "bench-balena.target"


def _run(*argv: str, check: bool = True) -> str:
    import subprocess

    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: rc={result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _show(unit: str, *props: str) -> dict[str, str]:
    out = _run("systemctl", "show", unit, *(f"--property={p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _hostd_mount_units() -> list[str]:
    out = _run("systemctl", "list-units", "--type=mount", "--plain", "--no-legend", "--no-pager")
    units = []
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[4].startswith(("hostd", "bench mount of ")):
            units.append(parts[0])
    return units


def _wipe(directory: str) -> None:
    import shutil

    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def reset(mode: str, machine: str) -> None:
    """Put the device where a boot of this kind finds it, hostd stopped.

    restart: hostd stopped, everything else as it was (a converged device).
    warm:    as after a reboot with the same config: the network's services and hostd's boot
             stages stopped, the bind mounts gone, /run empty of hostd's files, the kernel hostname
             the image's, hostnamed and timedated (bus-activated) not running; the state partition
             kept.
    cold:    warm, and the state and data partitions empty (first boot).
    """
    _run("systemctl", "stop", "hostd.service")
    # Boots come faster here than on a device: clear systemd's start rate limits (hostd restarts
    # journald when its drop-in is new, and remounts its bind mounts, at every boot).
    _run("systemctl", "reset-failed")
    if mode == "restart":
        return
    _run("systemctl", "stop", *NETWORK_UNITS, *HOSTD_UNITS)
    units = _hostd_mount_units()
    if units:
        # Only the mounts: the services that require them (journald, logind, chrony) keep running.
        _run("systemctl", "stop", "--job-mode=ignore-dependencies", *units)
        # systemd reads the mount table at most 5 times a second: let the window of these
        # unmounts pass, or the next mounts wait for it (a device boots with no such backlog).
        import time

        time.sleep(MOUNT_RATELIMIT_S)
    for path in RUN_FILES:
        if os.path.lexists(path):
            os.unlink(path)
    with open(DNSMASQ_SERVERS, "w"):
        pass
    import socket

    socket.sethostname(machine)
    # Bus-activated, so not running when a device boots (hostd's start starts neither).
    _run("systemctl", "stop", "systemd-hostnamed.service", "systemd-timedated.service")
    if mode == "cold":
        _wipe("/mnt/state")
        _wipe("/mnt/data")


def _monotonic_us() -> int:
    import time

    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000  # systemd's timestamps' clock


def start_hostd() -> dict:
    """Start what a boot starts (hostd's units and the network's, one transaction); systemd's
    timestamps, in ms from the start command (``t0_us``: CLOCK_MONOTONIC, the same on this machine)."""
    _run("systemctl", "reset-failed", check=False)  # systemd's start rate limits
    t0 = _monotonic_us()
    _run("systemctl", "start", *HOSTD_UNITS, *NETWORK_UNITS)
    props = _show("hostd.service", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "MainPID")
    start, ready = int(props["ExecMainStartTimestampMonotonic"]), int(props["ActiveEnterTimestampMonotonic"])
    if ready <= max(start, t0):
        raise RuntimeError(f"hostd did not become ready after its start: {props}")
    nm = int(_show("NetworkManager.service", "ExecMainStartTimestampMonotonic")["ExecMainStartTimestampMonotonic"])
    inputs = _show(
        "hostd-network-inputs.service",
        "ActiveEnterTimestampMonotonic",
        "ExecMainStartTimestampMonotonic",
        "ExecMainExitTimestampMonotonic",
    )
    # hostd's first process at a boot (bind-sources runs only at a first boot or a reset, before the
    # mounts): what NetworkManager waits for starts here, not at hostd.service's start.  (A restart
    # of hostd alone runs no stage: these are then the last boot's.)
    stage_start = int(inputs["ExecMainStartTimestampMonotonic"])
    stage_exit = int(inputs["ExecMainExitTimestampMonotonic"])
    bind_sources = int(
        _show("hostd-bind-sources.service", "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"]
    )
    pid = int(props["MainPID"])
    return {
        # The path to READY: the bind sources (a first boot only; else skipped: None), the state
        # partition's bind mounts (the last one active), the stage, hostd's own start.
        "boot_to_bind_sources_ms": (bind_sources - t0) / 1000 if bind_sources > t0 else None,
        "boot_to_mounts_ms": (_last_active(_hostd_mount_units()) - t0) / 1000,
        "boot_to_stage_ms": (stage_start - t0) / 1000,
        "boot_to_hostd_ms": (start - t0) / 1000,
        "ms": (ready - start) / 1000,  # hostd's own start -> READY=1
        "boot_ready_ms": (ready - t0) / 1000,  # boot -> READY=1: the stages, the mounts and hostd
        "stage_to_nm_ms": (nm - stage_start) / 1000,
        "stage_ms": (stage_exit - stage_start) / 1000,
        "boot_to_nm_ms": (nm - t0) / 1000,
        "boot_to_inputs_ms": (int(inputs["ActiveEnterTimestampMonotonic"]) - t0) / 1000,
        # What of hostd's start is left once the stage's job is over (hostd starts beside the stage
        # and its first reconcile waits for it), and when hostd started against the stage (< 0: first).
        "inputs_to_ready_ms": (ready - int(inputs["ActiveEnterTimestampMonotonic"])) / 1000,
        "hostd_after_stage_ms": (start - stage_start) / 1000,
        "t0_us": t0,
        "pid": pid,
        "io": _io(pid),
    }


def _last_active(units: list[str]) -> int:
    """The latest ActiveEnterTimestampMonotonic of the units (one systemctl call)."""
    out = _run("systemctl", "show", "--property=ActiveEnterTimestampMonotonic", *units)
    return max(int(line.split("=", 1)[1]) for line in out.splitlines() if "=" in line)


def oneshot_ms(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Run argv as a transient oneshot service; its exec -> exit time by systemd's clock, in ms."""
    global _oneshots
    _oneshots += 1
    unit = f"bench-oneshot-{os.getpid()}-{_oneshots}.service"
    setenv = [f"--setenv={k}={v}" for k, v in (env or {}).items()]
    _run(
        "systemd-run",
        "--quiet",
        f"--unit={unit}",
        "--property=Type=oneshot",
        "--property=RemainAfterExit=yes",
        *setenv,
        *argv,
    )
    props = _show(unit, "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "ExecMainStatus")
    _run("systemctl", "stop", unit)
    if props.get("ExecMainStatus") != "0":
        raise RuntimeError(f"{' '.join(argv)} failed: {props}")
    return (int(props["ExecMainExitTimestampMonotonic"]) - int(props["ExecMainStartTimestampMonotonic"])) / 1000


_oneshots = 0


def shell_chain(script: str) -> float:
    """One run of the balenaOS-style chain into an empty scratch root (a first boot)."""
    import shutil

    shutil.rmtree(SHELL_ROOT, ignore_errors=True)
    os.makedirs(SHELL_ROOT + "/root")
    with open(SHELL_ROOT + "/chain.sh", "w") as f:
        f.write(script)
    return oneshot_ms(["/bin/bash", SHELL_ROOT + "/chain.sh"], {"ROOT": SHELL_ROOT + "/root"})


def offline_apply() -> float:
    """hostd's engine doing the file work alone (no D-Bus): `hostctl apply --offline` into a
    scratch root holding a copy of the boot partition and empty state/data partitions."""
    import shutil

    sys.path.insert(0, HOSTD_PYTHON)
    from hostd.steps.state import DATA_BIND_PATHS, STATE_BIND_PATHS

    root = OFFLINE_ROOT + "/root"
    shutil.rmtree(OFFLINE_ROOT, ignore_errors=True)
    shutil.copytree("/mnt/boot", root + "/mnt/boot")
    for partition in ("/mnt/state", "/mnt/data"):
        os.makedirs(root + partition)
    for path in STATE_BIND_PATHS + DATA_BIND_PATHS:  # the image's bind targets
        if os.path.isdir(path):
            os.makedirs(root + path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            open(root + path, "w").close()
    return oneshot_ms(["/usr/bin/hostctl", "apply", "--offline", "--root", root])


def balena_install(chain: str) -> None:
    """The balenaOS boot as a balenaOS image runs it, as units (in /run, gone at the next reboot):
    one bind-mount oneshot per persistent path (balenaOS's bind-<path>.service running its
    bindmount tool; here one `mount --bind` each, sources made beforehand: lenient), then one
    oneshot per setup step of bench/balena_chain.sh (bash + jq, into a scratch root), after the
    mounts; a target wants them all.  Timed from the start command to the target's activation."""
    import shutil

    sys.path.insert(0, HOSTD_PYTHON)
    from hostd.steps.state import FILE_TARGET_MODES, STATE_BIND_PATHS

    shutil.rmtree(BALENA_DIR, ignore_errors=True)
    root, overlay = BALENA_DIR + "/root", BALENA_DIR + "/state/root-overlay"
    binds, steps = [], []
    for i, path in enumerate(STATE_BIND_PATHS):
        for base in (root, overlay):
            if path in FILE_TARGET_MODES:
                os.makedirs(os.path.dirname(base + path), exist_ok=True)
                open(base + path, "w").close()
            else:
                os.makedirs(base + path, exist_ok=True)
        unit = f"bench-balena-bind-{i:02d}.service"
        binds.append(unit)
        _write_unit(
            unit,
            f"[Unit]\nDescription=bench: balenaOS bind {path}\nDefaultDependencies=no\n\n"
            f"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/mount --bind {overlay}{path} {root}{path}\n"
            f"ExecStop=/bin/umount {root}{path}\n",
        )
    for i, script in enumerate(chain_steps(chain)):
        with open(f"{BALENA_DIR}/step-{i}.sh", "w") as f:
            f.write("set -eu\n" + script + "\n")
        unit = f"bench-balena-step-{i}.service"
        steps.append(unit)
        _write_unit(
            unit,
            f"[Unit]\nDescription=bench: balenaOS setup step {i}\nDefaultDependencies=no\n"
            f"After={' '.join(binds)}\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"Environment=ROOT={root} CONFIG=/mnt/boot/config.json BOOT=/mnt/boot\n"
            f"ExecStart=/bin/bash {BALENA_DIR}/step-{i}.sh\n",
        )
    units = binds + steps
    _write_unit(
        BALENA_TARGET,
        f"[Unit]\nDescription=bench: the balenaOS boot as units\nWants={' '.join(units)}\nAfter={' '.join(units)}\n",
    )
    _run("systemctl", "daemon-reload")


def chain_steps(chain: str) -> list[str]:
    """bench/balena_chain.sh's steps: the body of each `bash -c '...'` block."""
    import re

    return re.findall(r"^bash -c '\n(.*?)\n'$", chain, re.S | re.M)


def _write_unit(name: str, text: str) -> None:
    with open(f"{BALENA_UNITS_DIR}/{name}", "w") as f:
        f.write(text)


def _balena_units() -> list[str]:
    return sorted(name for name in os.listdir(BALENA_UNITS_DIR) if name.startswith("bench-balena"))


def balena_boot() -> dict[str, float]:
    """One boot of the baseline units: undone (unmounted), then started; ms from the start command
    to the target's activation (every unit done), and the units it ran."""
    import time

    _run("systemctl", "stop", *_balena_units())
    time.sleep(MOUNT_RATELIMIT_S)  # the unmounts' window of the mount table's rate limit
    t0 = _monotonic_us()
    _run("systemctl", "start", BALENA_TARGET)
    done = int(_show(BALENA_TARGET, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"])
    return {"ms": (done - t0) / 1000, "units": len(_balena_units()) - 1}


def balena_remove() -> None:
    units = _balena_units()
    _run("systemctl", "stop", *units, check=False)
    for name in units:
        os.unlink(f"{BALENA_UNITS_DIR}/{name}")
    _run("systemctl", "daemon-reload")
    import shutil

    shutil.rmtree(BALENA_DIR, ignore_errors=True)


# The floor: what hostd pays before its own modules, run as hostd's launcher runs it
# (packaging/launchers.py: python3 -IS, no bytecode written, the private directory first on
# sys.path; tests/unit/test_bench_smoke.py holds the two equal), with OpenSSL kept out as
# hostd.entry does; then asyncio and dbus-fast.
FLOOR_FLAGS = ("-IS",)
IMPORT_FLOOR = (
    f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, {HOSTD_PYTHON!r}); "
    "from hostd.entry import _without_openssl; _without_openssl(); import asyncio; import dbus_fast.aio"
)


def step_durations() -> dict[str, float]:
    """hostd's own per-step durations (file work + live effect); a failed step is an error here."""
    state = json.loads(_run("hostctl", "status", "--json", check=False))
    failed = {step["name"]: step["message"] for step in state["steps"] if step["status"] == "failed"}
    if failed:
        raise RuntimeError(f"hostd reports failed steps: {failed}")
    return {step["name"]: step["duration_ms"] for step in state["steps"]}


BOOT_KEYS = (
    "ms",
    "boot_ready_ms",
    "boot_to_bind_sources_ms",
    "boot_to_mounts_ms",
    "boot_to_stage_ms",
    "boot_to_hostd_ms",
    "stage_to_nm_ms",
    "stage_ms",
    "boot_to_nm_ms",
    "boot_to_inputs_ms",
    "inputs_to_ready_ms",
    "hostd_after_stage_ms",
)


def cmd_boot(args: dict) -> dict:
    names = ("chain", "balena_units", "offline", "import_floor")
    results: dict[str, list] = {name: [] for name in names}
    for mode in ("cold", "warm", "restart"):
        results.update({f"{mode}_{key}": [] for key in BOOT_KEYS})
    steps: dict[str, list[dict[str, float]]] = {"cold": [], "warm": [], "restart": []}
    balena_install(args["chain"])
    try:
        for _ in range(args["runs"]):
            for mode in ("cold", "warm", "restart"):
                reset(mode, args["machine"])
                booted = start_hostd()
                for key in BOOT_KEYS:
                    results[f"{mode}_{key}"].append(booted[key])
                steps[mode].append(step_durations())
            results["balena_units"].append(balena_boot()["ms"])
            results["chain"].append(shell_chain(args["chain"]))
            results["offline"].append(offline_apply())
            results["import_floor"].append(oneshot_ms(["/usr/bin/python3", *FLOOR_FLAGS, "-c", IMPORT_FLOOR]))
    finally:
        balena_remove()
    return {**results, "steps": steps}


def _io(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, _, value = line.partition(":")
            values[key] = int(value)
    return values


def cmd_procstat(args: dict) -> dict:
    pid = args["pid"]
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                status[key] = int(value.split()[0])  # kB
    return {"status": status, "io": _io(pid)}


def cmd_cli(args: dict) -> dict:
    import subprocess
    import time

    commands = {
        "hostctl": ["hostctl", "status"],
        "hostnamectl": ["hostnamectl", "status"],
        "python": ["python3", *FLOOR_FLAGS, "-c", "pass"],
        "floor": ["python3", *FLOOR_FLAGS, "-c", IMPORT_FLOOR],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args["runs"] + 1):  # the first round warms the page cache and is dropped
        for name, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: values[1:] for name, values in times.items()}


FLOOR_PROGRAM = """
import sys
sys.path.insert(0, %r)
import asyncio
from dbus_fast import BusType
from dbus_fast.aio import MessageBus

async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    await asyncio.sleep(1.0)
    with open("/proc/self/status") as f:
        print(f.read())
    bus.disconnect()

asyncio.run(main())
"""


def cmd_floor(args: dict) -> dict:
    out = _run("python3", "-c", FLOOR_PROGRAM % HOSTD_PYTHON)
    status = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0])
    return {"status": status}


ECHO_NAME = "io.hostd1.BenchEcho"
ECHO_POLICY = "/etc/dbus-1/system.d/hostd-bench-echo.conf"  # in the device's throw-away overlay
ECHO_PROGRAM = """
import asyncio, sys
sys.path.insert(0, %(python)r)
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    value = Variant("s", "bench")

    def handle(message):
        if message.message_type == MessageType.METHOD_CALL and message.member == "Get":
            return Message.new_method_return(message, "v", [value])
        return None

    bus.add_message_handler(handle)
    await bus.request_name(%(name)r)
    await bus.wait_for_disconnect()

asyncio.run(main())
"""


def echo_policy() -> str:
    return (
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n<busconfig>\n'
        f'  <policy user="root"><allow own="{ECHO_NAME}"/></policy>\n'
        f'  <policy context="default"><allow send_destination="{ECHO_NAME}"/></policy>\n</busconfig>\n'
    )


def _reload_bus_config() -> None:
    _run("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig")


def cmd_echo_start(args: dict) -> dict:
    """Start the API floor: the least a Python dbus-fast server does to answer Properties.Get,
    under a name of its own (ECHO_POLICY allows it, as hostd's policy allows io.hostd1; the host
    writes it through the overlay: the device's root is read-only)."""
    import time

    _reload_bus_config()
    _run("systemctl", "stop", "bench-echo.service", check=False)
    _run("systemctl", "reset-failed", "bench-echo.service", check=False)
    program = ECHO_PROGRAM % {"python": HOSTD_PYTHON, "name": ECHO_NAME}
    _run("systemd-run", "--quiet", "--unit=bench-echo.service", "/usr/bin/python3", "-c", program)
    call = ("busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
    for _ in range(200):
        if _run(*call, "NameHasOwner", "s", ECHO_NAME).strip() == "b true":
            return {"name": ECHO_NAME}
        time.sleep(0.05)
    raise RuntimeError("the echo server did not start")


def cmd_echo_stop() -> None:
    _run("systemctl", "stop", "bench-echo.service", check=False)
    _reload_bus_config()  # the host has removed ECHO_POLICY


def cmd_nmload(args: dict) -> dict:
    """NetworkManager alone: write N profiles into its directory, LoadConnections them, and back."""
    import time
    import uuid

    directory = "/etc/NetworkManager/system-connections"
    paths = []
    for i in range(args["count"]):
        path = f"{directory}/bench-nm-{i:04d}.nmconnection"
        with open(path, "w") as f:
            text = args["template"].replace("@N@", f"{i:04d}").replace("@P@", "nm")
            f.write(text.replace("@U@", str(uuid.uuid4())))
        os.chmod(path, 0o600)
        paths.append(path)
    settings = ("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager/Settings")
    call = ("busctl", "call", *settings, "org.freedesktop.NetworkManager.Settings", "LoadConnections", "as")
    started = time.perf_counter()
    out = _run(*call, str(len(paths)), *paths)
    load_ms = (time.perf_counter() - started) * 1000
    for path in paths:
        os.unlink(path)
    started = time.perf_counter()
    _run(*call, str(len(paths)), *paths)
    unload_ms = (time.perf_counter() - started) * 1000
    return {"load_ms": load_ms, "unload_ms": unload_ms, "reply": out.strip()[:200]}


def _wakeups(pid: int) -> int:
    """Voluntary context switches of all of hostd's threads: each is a sleep that a wakeup ended."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def cmd_idle(args: dict) -> dict:
    import time

    pid = int(_show("hostd.service", "MainPID")["MainPID"])
    with open(f"/proc/{pid}/environ", "rb") as f:
        environment = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    # hostnamed and timedated, bus-activated, exit ~30 s after their last call: hostd follows
    # hostnamed's bus name, so its exit wakes hostd (a peer's event, not hostd's own).  Measured after them.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
        _run("systemctl", "is-active", unit, check=False).strip() != "inactive"
        for unit in ("systemd-hostnamed.service", "systemd-timedated.service")
    ):
        time.sleep(1)
    time.sleep(args["settle"])  # whatever the previous section left (signals, a reconcile) is done
    chronyd = int(_show("chrony.service", "MainPID")["MainPID"])  # hostd's tracking requests wake it too
    tracking = _run("chronyc", "-n", "-c", "tracking").strip().split(",")[-1]
    before, chronyd_before, started = _wakeups(pid), _wakeups(chronyd), time.monotonic()
    time.sleep(args["seconds"])
    after, chronyd_after, elapsed = _wakeups(pid), _wakeups(chronyd), time.monotonic() - started
    if int(_show("hostd.service", "MainPID")["MainPID"]) != pid:
        raise RuntimeError("hostd restarted during the idle measurement")
    return {
        "wakeups": after - before,
        "chronyd_wakeups": chronyd_after - chronyd_before,
        "chrony_leap_status": tracking,
        "seconds": elapsed,
        "watchdog_usec": int(environment[b"WATCHDOG_USEC"]),
    }


HOSTD_REACTS = "config.json or a boot-partition drop-in changed: reconciling"  # hostd/watch.py's log line


def _reconciling_at(since: float) -> float | None:
    """The realtime (s) at which journald received hostd's first "reconciling" line after ``since``."""
    out = _run("journalctl", "-u", "hostd.service", "-o", "json", f"--since=@{int(since)}", "--no-pager")
    for line in out.splitlines():
        entry = json.loads(line)
        at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
        if at >= since and entry.get("MESSAGE", "").endswith(HOSTD_REACTS):
            return at
    return None


def cmd_edit(args: dict) -> dict:
    """config.json edited on the device as an editor saves it (a new file renamed over it): the time
    until hostd starts reconciling (its journal line, received by journald) and until the first
    effect is on disk (/etc/hostname rewritten, seen by 1 ms polls)."""
    import time

    config_path, aside = "/mnt/boot/config.json", "/mnt/boot/.config.json.bench"
    with open(config_path, "rb") as f:
        original = f.read()
    names = [f"bench-edit-{index}" for index in range(args["runs"])] + [json.loads(original)["hostname"]]
    samples: dict[str, list[float]] = {"reconciling_ms": [], "hostname_ms": []}
    for index, name in enumerate(names):
        config = json.loads(original)
        config["hostname"] = name
        text = original if index == len(names) - 1 else (json.dumps(config, indent=2) + "\n").encode()
        with open(aside, "wb") as f:
            f.write(text)
        since, started = time.time(), time.perf_counter()
        os.replace(aside, config_path)
        while True:
            with open("/etc/hostname") as f:
                if f.read() == name + "\n":
                    break
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"hostd did not write /etc/hostname = {name} within 30 s")
            time.sleep(0.001)
        written = (time.perf_counter() - started) * 1000
        reconciling = None
        for _ in range(100):  # journald may take a moment
            reconciling = _reconciling_at(since)
            if reconciling is not None:
                break
            time.sleep(0.05)
        if reconciling is None:
            raise RuntimeError("hostd's journal has no reconciling line for the edit")
        if index < len(names) - 1:  # the last edit puts the original back
            samples["hostname_ms"].append(written)
            samples["reconciling_ms"].append((reconciling - since) * 1000)
        time.sleep(1.0)  # the reconcile's live effects finish before the next edit
    return samples


def main() -> None:
    command, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    if command == "boot":
        result = cmd_boot(args)
    elif command == "prepare":
        reset(args["mode"], args["machine"])
        result = {}
    elif command == "start":
        result = start_hostd()
    elif command == "procstat":
        result = cmd_procstat(args)
    elif command == "cli":
        result = cmd_cli(args)
    elif command == "floor":
        result = cmd_floor(args)
    elif command == "echo-start":
        result = cmd_echo_start(args)
    elif command == "echo-stop":
        cmd_echo_stop()
        result = {}
    elif command == "nmload":
        result = cmd_nmload(args)
    elif command == "idle":
        result = cmd_idle(args)
    elif command == "edit":
        result = cmd_edit(args)
    else:
        raise SystemExit(f"unknown command {command!r}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
