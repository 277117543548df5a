"""API: io.hostd1 Describe() and Properties.Get latency and throughput, beside hostnamed (C).

Clients are on this machine, on the device bus's host-side address, the same for every server,
and are as thin as a client can be (bench/dbuswire.py), so that the numbers are the servers'.
The bus daemon's own GetId is measured too: every call to a service passes through it twice,
so its throughput bounds everyone's.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from bench import device_side
from bench.common import Device, Report, Row, median, percentile
from bench.dbuswire import Connection, marshal_call

LATENCY_CALLS = 10_000
BLOCK = 1_000  # latency samples are taken in interleaved blocks: load changes hit all servers alike
CLIENTS = 8
THROUGHPUT_SECONDS = 2.0
THROUGHPUT_ROUNDS = 3
P50_RATIO_TARGET = 1.3
THROUGHPUT_TARGET = 25_000
MEMORY_CALLS = 100_000
RSS_TARGET_MIB = 26.0
GROWTH_TARGET_MIB = 1.0

PROPS = "org.freedesktop.DBus.Properties"
CALLS = {
    "hostd Get": ("io.hostd1", "/io/hostd1", PROPS, "Get", "ss", ("io.hostd1.Manager", "Hostname")),
    "hostd Describe": ("io.hostd1", "/io/hostd1", "io.hostd1.Manager", "Describe", "", ()),
    "hostnamed Get": (
        "org.freedesktop.hostname1",
        "/org/freedesktop/hostname1",
        PROPS,
        "Get",
        "ss",
        ("org.freedesktop.hostname1", "Hostname"),
    ),
    "bus GetId": ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId", "", ()),
    # the least a Python dbus-fast server does to answer (bench/device_side.py echo-start)
    "dbus-fast echo Get": ("io.hostd1.BenchEcho", "/bench", PROPS, "Get", "ss", ("bench.Echo", "Value")),
}
HOSTD_CALLS = ("hostd Get", "hostd Describe")


def _message(name: str) -> bytearray:
    destination, path, interface, member, signature, args = CALLS[name]
    return marshal_call(destination, path, interface, member, signature, args)


def latency(address: str, total: int = LATENCY_CALLS) -> dict[str, list[float]]:
    """Round-trip times in microseconds, `total` per call kind, interleaved in blocks."""
    connection = Connection(address)
    connection.sock.settimeout(60)
    messages = {name: _message(name) for name in CALLS}
    for message in messages.values():  # warm-up (activates hostnamed, fills caches)
        for _ in range(200):
            connection.call_fast(message)
    samples: dict[str, list[float]] = {name: [] for name in CALLS}
    clock = time.perf_counter_ns
    for _ in range(total // BLOCK):
        for name, message in messages.items():
            out = samples[name]
            call = connection.call_fast
            for _ in range(BLOCK):
                started = clock()
                call(message)
                out.append((clock() - started) / 1000)
    connection.close()
    return samples


def _worker(address: str, name: str, seconds: float, calls: int, barrier: Any, queue: Any) -> None:
    connection = Connection(address)
    connection.sock.settimeout(60)
    message = _message(name)
    connection.call_fast(message)
    barrier.wait()
    done = 0
    if calls:
        for _ in range(calls):
            connection.call_fast(message)
        done = calls
    else:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(50):
                connection.call_fast(message)
            done += 50
    connection.close()
    queue.put(done)


def concurrent(
    address: str, name: str, seconds: float = 0, calls: int = 0, clients: int = CLIENTS
) -> tuple[int, float]:
    """`clients` processes, one call in flight each, for `seconds` (or `calls` each): (calls, seconds)."""
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(clients + 1), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(address, name, seconds, calls, barrier, queue)) for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.monotonic()
    total = sum(queue.get(timeout=600) for _ in workers)
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join()
    return total, elapsed


def throughput(address: str) -> tuple[dict[str, float], int]:
    """calls/s per kind, median of interleaved rounds; and how many calls hostd served."""
    rates: dict[str, list[float]] = {name: [] for name in CALLS}
    hostd_calls = 0
    for _ in range(THROUGHPUT_ROUNDS):
        for name in CALLS:
            calls, elapsed = concurrent(address, name, seconds=THROUGHPUT_SECONDS)
            rates[name].append(calls / elapsed)
            if name in HOSTD_CALLS:
                hostd_calls += calls
    return {name: median(values) for name, values in rates.items()}, hostd_calls


def rss_mib(device: Device, pid: int) -> float:
    return device.side_call("procstat", {"pid": pid})["status"]["VmRSS"] / 1024


def run(device: Device, report: Report) -> None:
    pid = device.hostd_pid()
    rss_boot = rss_mib(device, pid)
    policy = device.tb.root_dir / device_side.ECHO_POLICY.lstrip("/")
    policy.write_text(device_side.echo_policy())  # from the host: the device's root is read-only inside
    device.side_call("echo-start")
    try:
        samples = latency(device.bus_address)
        rates, served = throughput(device.bus_address)
    finally:
        policy.unlink(missing_ok=True)
        device.side_call("echo-stop")
    hostd_calls = sum(len(samples[name]) + 200 for name in HOSTD_CALLS)
    stats = {name: (percentile(values, 50), percentile(values, 99)) for name, values in samples.items()}
    hostd_calls += served
    if hostd_calls < MEMORY_CALLS:  # top up to the memory benchmark's 100k calls, half of each kind
        each = (MEMORY_CALLS - hostd_calls) // (2 * CLIENTS) + 1
        for name in HOSTD_CALLS:
            calls, _ = concurrent(device.bus_address, name, calls=each)
            hostd_calls += calls
    if device.hostd_pid() != pid:
        raise RuntimeError("hostd restarted during the API benchmark")
    rss_after = rss_mib(device, pid)
    floor = device.side_call("floor")["status"]["VmRSS"] / 1024
    report.details["api"] = {
        "latency_us": {name: {"p50": p50, "p99": p99} for name, (p50, p99) in stats.items()},
        "throughput_calls_per_s": rates,
        "hostd_calls": hostd_calls,
    }
    report.details["memory"] = {"rss_boot_mib": rss_boot, "rss_after_mib": rss_after, "floor_mib": floor}

    hn50, hn99 = stats["hostnamed Get"]
    for name in HOSTD_CALLS:
        p50, p99 = stats[name]
        report.add(
            Row(
                "api",
                f"{name} p50 ({LATENCY_CALLS:,} calls)",
                p50,
                "us",
                hn50,
                "hostnamed Get",
                f"<= {P50_RATIO_TARGET}x",
                p50 / hn50 <= P50_RATIO_TARGET,
            )
        )
        report.add(Row("api", f"{name} p99", p99, "us", hn99, "hostnamed Get"))
    echo50 = stats["dbus-fast echo Get"][0]
    report.add(Row("api", "floor: minimal Python dbus-fast server, Get p50", echo50, "us", hn50, "hostnamed Get"))
    report.add(
        Row("api", "floor: bus daemon GetId p50 (no service hop)", stats["bus GetId"][0], "us", hn50, "hostnamed Get")
    )
    for name in HOSTD_CALLS:
        rate = rates[name]
        report.add(
            Row(
                "api",
                f"{name}, {CLIENTS} concurrent clients",
                rate,
                "calls/s",
                rates["hostnamed Get"],
                "hostnamed Get",
                f">= {THROUGHPUT_TARGET:,}/s",
                rate >= THROUGHPUT_TARGET,
            )
        )
    report.add(
        Row(
            "api",
            f"floor: minimal Python dbus-fast server, {CLIENTS} clients",
            rates["dbus-fast echo Get"],
            "calls/s",
            rates["hostnamed Get"],
            "hostnamed Get",
        )
    )
    report.add(
        Row(
            "api",
            f"floor: bus daemon GetId, {CLIENTS} clients (bounds every service)",
            rates["bus GetId"],
            "calls/s",
            rates["hostnamed Get"],
            "hostnamed Get",
        )
    )
    report.add(
        Row(
            "memory",
            "hostd VmRSS after boot",
            rss_boot,
            "MiB",
            floor,
            "floor",
            f"<= {RSS_TARGET_MIB:.0f} MiB",
            rss_boot <= RSS_TARGET_MIB,
        )
    )
    report.add(
        Row(
            "memory",
            f"hostd VmRSS after {hostd_calls:,} API calls",
            rss_after,
            "MiB",
            floor,
            "floor",
            f"<= {RSS_TARGET_MIB:.0f} MiB",
            rss_after <= RSS_TARGET_MIB,
        )
    )
    growth = rss_after - rss_boot
    report.add(
        Row(
            "memory",
            "hostd VmRSS growth over those calls",
            growth,
            "MiB",
            target=f"<= {GROWTH_TARGET_MIB:.0f} MiB",
            met=growth <= GROWTH_TARGET_MIB,
        )
    )
    report.add(Row("memory", "floor: python3 + asyncio + dbus-fast, connected, idle", floor, "MiB"))
