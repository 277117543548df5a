"""Measure what the adapters cost: call round trips, attach, Services.start(), vs. introspection.

    python3 -m tests.bus.bench_attach

The fakes run in a child process on a private dbus-daemon, so the numbers include real socket
hops both ways. Real services' introspection data is several times larger than the fakes', so the
introspection figures here are a lower bound.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dbus_fast import introspection
from dbus_fast.aio import MessageBus

from hostd.bus import names
from hostd.bus.dnsmasq import DnsmasqAdapter
from hostd.bus.networkmanager import NetworkManagerAdapter
from hostd.bus.services import Services

from .fakes.avahi import FakeAvahi
from .fakes.dnsmasq import FakeDnsmasq
from .fakes.hostname1 import FakeHostname1
from .fakes.modemmanager import FakeModemManager
from .fakes.networkmanager import FakeNetworkManager
from .fakes.systemd import FakeSystemd
from .support import private_dbus_daemon

REAL_INTROSPECTION = Path("/usr/share/dbus-1/interfaces/org.freedesktop.Avahi.Server.xml")
FAKES = (FakeSystemd, FakeNetworkManager, FakeModemManager, FakeHostname1, FakeAvahi, FakeDnsmasq)


async def serve(address: str) -> None:
    for fake_type in FAKES:
        fake = fake_type(address)
        if isinstance(fake, FakeModemManager):
            fake.add_modem(0)
        await fake.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def timed(repeat: int, operation: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{label:68s} median {statistics.median(samples):7.3f} ms   p99 {p99:7.3f} ms   n={len(samples)}")


async def measure(address: str) -> None:
    bus = await MessageBus(bus_address=address).connect()

    dnsmasq = DnsmasqAdapter(bus)
    await dnsmasq.start()
    summary("one method call (dnsmasq.get_version)", await timed(2000, dnsmasq.get_version))

    async def attach_hand_written() -> float:
        nm = NetworkManagerAdapter(bus)
        started = time.perf_counter()
        await nm.start()  # 3 AddMatch, GetNameOwner, 2 GetAll
        elapsed = (time.perf_counter() - started) * 1000
        await nm.close()
        return elapsed

    async def attach_by_introspection() -> float:
        started = time.perf_counter()
        for path, interface in (
            (names.NM_PATH, names.NM_INTERFACE),
            (names.NM_DNS_MANAGER_PATH, names.NM_DNS_MANAGER_INTERFACE),
        ):
            node = await bus.introspect(names.NM_NAME, path)
            proxy = bus.get_proxy_object(names.NM_NAME, path, node)
            await proxy.get_interface(names.PROPERTIES_INTERFACE).call_get_all(interface)
        return (time.perf_counter() - started) * 1000

    summary(
        "NetworkManager attach: hand-written start()",
        [await attach_hand_written() for _ in range(300)],
    )
    summary(
        "NetworkManager attach: 2x Introspect + proxy + GetAll (no matches)",
        [await attach_by_introspection() for _ in range(300)],
    )
    if REAL_INTROSPECTION.exists():
        xml = REAL_INTROSPECTION.read_text()
        samples = []
        for attempt in range(300):
            unique = f"{xml}<!-- {attempt} -->"  # dbus-fast caches parses of identical text
            started = time.perf_counter()
            introspection.Node.parse(unique)
            samples.append((time.perf_counter() - started) * 1000)
        summary(f"parsing a real service's introspection ({len(xml) // 1024} KiB)", samples)

    async def services_start() -> None:
        services = Services(bus)
        await services.start()
        assert not {"systemd", "networkmanager", "avahi", "dnsmasq"} & set(services.degraded())
        await services.close()

    summary("Services.start() with all seven services up (+close)", await timed(50, services_start))

    bus.disconnect()


def import_cost() -> None:
    """Import time with bytecode cached, as on a device (the second of two runs)."""
    with tempfile.TemporaryDirectory() as pycache:
        environment = {**os.environ, "PYTHONPYCACHEPREFIX": pycache}
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(2):
            output = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import hostd.bus.services"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
                env=environment,
                check=True,
            ).stderr
    own = total = 0
    for line in output.splitlines():
        if "|" not in line or "imported package" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if name.startswith("hostd"):
            own += int(self_us)
        if name == "hostd.bus.services":
            total = int(cumulative_us)
    print(f"import hostd.bus.services: {total / 1000:.1f} ms in all, {own / 1000:.1f} ms in hostd's own modules")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, private_dbus_daemon(Path(directory), Path(directory)) as address:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.bus.bench_attach", "--serve", address],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            asyncio.run(measure(address))
        finally:
            server.terminate()
            server.wait()
    import_cost()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2]))
    else:
        main()
