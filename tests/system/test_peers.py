"""hostd among its peers on the real device: services that stop, crash or restart under it,
callers that may not change anything, and sustained load.

Crashing peers: NetworkManager, ModemManager, avahi-daemon, dnsmasq, chrony, systemd-journald and
hostnamed are each stopped (then started), killed (SIGKILL through `systemctl kill -s KILL`; started
again unless systemd restarts it itself) and restarted.  hostd stays up (same MainPID, NRestarts 0,
no watchdog timeout in its journal); a service on the bus shows in Degraded within 1 s of leaving it
and gets what it needs within 2 s of its return, measured on the bus itself (`busctl monitor` from
the host: NameOwnerChanged of the service against hostd's PropertiesChanged/Reconciled signals,
each stamped by the bus).  hostnamed is bus-activated and exits when idle: its absence is routine
and never "degraded" (hostname1 is degraded only when it cannot be activated); what matters is that
hostd survives its death and still sets the hostname.  chrony and journald are not on the bus (hostd
drives them through chronyc and systemd).

Unauthorised callers: as nobody on the device's system bus, every mutating method is refused
(AccessDenied), by the bus policy and by hostd's own check behind it, and nothing changes; reads
work.  A Wi-Fi PSK in the boot partition (in a good profile and in broken ones) never shows in
hostd's journal, its API or any hostctl output.

Sustained load: N clients x M calls of Describe/Get inside the device while config.json flips
between two configs every second (ntpServers: a network key, so each flip runs reconcile, the
generation store and the safe-apply probe) and is rewritten unchanged in between.

Figures are printed (pytest -s).  Longer runs (not in CI):

    HOSTD_PEERS_ROUNDS=20 HOSTD_LOAD_CALLS=10000 HOSTD_LOAD_P99_MS=5 \\
        python3 -m pytest tests/system/test_peers.py -s -k "crash or load"

HOSTD_PEERS_ROUNDS repeats every stop/kill/restart cycle; HOSTD_LOAD_CLIENTS / HOSTD_LOAD_CALLS
size the load test (CI: 1 round, 16 x 500).  Its latencies are figures: CI asserts no timing (on a
shared machine they measure the neighbours).  HOSTD_LOAD_P99_MS=5 (the target) makes the documented
long run check the paced p99 too.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .device import BUS_NAME, INTERFACE, OBJECT_PATH, Hostd
from .test_connections import ABSENT_LINK_PROFILE, entries
from .test_restarts import MANAGED, files_state

pytestmark = pytest.mark.system

ROUNDS = int(os.environ.get("HOSTD_PEERS_ROUNDS") or 1)
LOAD_CLIENTS = int(os.environ.get("HOSTD_LOAD_CLIENTS") or 16)
LOAD_CALLS = int(os.environ.get("HOSTD_LOAD_CALLS") or 500)
# p99 bound of the paced load, checked only when asked for (the documented long run: 5 ms)
LOAD_P99_MS = float(os.environ["HOSTD_LOAD_P99_MS"]) if os.environ.get("HOSTD_LOAD_P99_MS") else None
DETECT_LIMIT = 1.0  # s from the service leaving the bus to Degraded naming it
REAPPLY_LIMIT = 2.0  # s from the service's return to hostd having re-applied what it needs

FIGURES: list[str] = []  # printed at the end of the module


def figure(line: str) -> None:
    FIGURES.append(line)
    print(f"\n[peers] {line}", flush=True)


# -- hostd's health over the whole module ------------------------------------------------------------


@dataclass
class Baseline:
    pid: int
    since: int  # unix time (s) when the module started


def hostd_journal(hostd: Hostd, since: int) -> str:
    """hostd.service's journal since a unix time.  (Not --after-cursor: a cursor taken before journald
    restarts does not find the entries after it.)"""
    return hostd.tb.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "hostd.service", f"--since=@{since}"]).stdout


@pytest.fixture(scope="module")
def baseline(hostd: Hostd) -> Baseline:
    props = hostd.unit_props("hostd.service", "MainPID", "NRestarts")
    assert props["NRestarts"] == "0", props
    return Baseline(int(props["MainPID"]), int(time.time()) - 1)


def assert_hostd_unhurt(hostd: Hostd, base: Baseline) -> None:
    props = hostd.unit_props("hostd.service", "MainPID", "NRestarts", "ActiveState")
    assert props == {"MainPID": str(base.pid), "NRestarts": "0", "ActiveState": "active"}, props
    log = hostd_journal(hostd, base.since)
    assert "Watchdog timeout" not in log and "Traceback" not in log, log[-3000:]


# -- the bus, watched from the host ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: float  # unix time, as the bus stamped the message
    member: str
    data: list[Any]


class BusWatch:
    """`busctl monitor` on the device's bus: every signal of hostd's object, and NameOwnerChanged for
    one bus name, each with the time the bus received it."""

    def __init__(self, hostd: Hostd, name: str | None = None) -> None:
        matches = [f"type='signal',path='{OBJECT_PATH}'"]
        if name:
            matches.append(f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{name}'")
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._proc = subprocess.Popen(
            ["busctl", f"--address={hostd.tb.bus_address}", "monitor", "--json=short"]
            + [f"--match={m}" for m in matches],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(10):
            self.close()
            raise RuntimeError("busctl monitor did not start")

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if "Monitoring" in line:
                self._ready.set()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                msg = json.loads(line)
                event = Event(msg["timestamp-realtime"] / 1e6, msg["member"], msg["payload"]["data"])
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()

    def first(self, predicate: Callable[[Event], bool], after: float = 0.0) -> Event | None:
        with self._cond:
            return next((e for e in self.events if e.at >= after and predicate(e)), None)

    def wait(self, predicate: Callable[[Event], bool], timeout: float, what: str, after: float = 0.0) -> Event:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.events if e.at >= after and predicate(e)), None)
                if found or time.monotonic() > end:
                    break
                self._cond.wait(0.1)
        if found is None:
            raise TimeoutError(f"no {what} within {timeout} s; saw {[(e.member, e.data) for e in self.events]}")
        return found

    def close(self) -> None:
        self._proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)


@contextlib.contextmanager
def bus_watch(hostd: Hostd, name: str | None = None) -> Iterator[BusWatch]:
    watch = BusWatch(hostd, name)
    try:
        yield watch
    finally:
        watch.close()


def owner_gone(e: Event) -> bool:
    return e.member == "NameOwnerChanged" and e.data[2] == ""


def owner_back(e: Event) -> bool:
    return e.member == "NameOwnerChanged" and e.data[2] != ""


def degraded_is(key: str, present: bool) -> Callable[[Event], bool]:
    def check(e: Event) -> bool:
        changed = e.data[1] if e.member == "PropertiesChanged" else {}
        return "Degraded" in changed and (key in changed["Degraded"]["data"]) == present

    return check


def reapplied(steps: tuple[str, ...]) -> Callable[[Event], bool]:
    def check(e: Event) -> bool:
        return e.member == "Reconciled" and e.data[1] == "re-applied" and set(steps) <= {s[0] for s in e.data[0]}

    return check


# -- crashing peers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    unit: str
    bus_name: str
    key: str  # in Degraded
    steps: tuple[str, ...]  # re-applied when it returns


BUS_PEERS = [
    Peer("NetworkManager.service", "org.freedesktop.NetworkManager", "networkmanager", ("connections", "dns")),
    Peer("ModemManager.service", "org.freedesktop.ModemManager1", "modemmanager", ()),
    Peer("avahi-daemon.service", "org.freedesktop.Avahi", "avahi", ("hostname",)),
    Peer("dnsmasq.service", "uk.org.thekelleys.dnsmasq", "dnsmasq", ("dns",)),
]
ACTIONS = ("stop", "kill", "restart")


def disrupt(hostd: Hostd, unit: str, action: str, gone: Callable[[], None]) -> None:
    """Stop, kill or restart unit; `gone()` waits until hostd noticed (it returns once the unit is back
    for kill-with-Restart= and restart).  Leaves the unit running."""
    tb = hostd.tb
    # Many rounds would hit the unit's start rate limit (StartLimitBurst, 5 in 10 s), and systemd would
    # leave it failed: that is systemd's policy, not what is tested here.
    tb.exec(["systemctl", "reset-failed", unit], check=False)
    if action == "restart":
        tb.exec(["systemctl", "restart", unit], timeout=60)
        gone()
        return
    if action == "stop":
        tb.exec(["systemctl", "stop", unit], timeout=60)
    else:
        tb.exec(["systemctl", "kill", "-s", "KILL", unit])
    gone()
    if action == "stop" or hostd.unit_props(unit, "Restart")["Restart"] == "no":
        tb.exec(["systemctl", "start", unit], timeout=60)
    tb.wait_for(lambda: tb.unit_state(unit) == "active", 30, f"{unit} active again")


# mDNS service lookup with python-zeroconf (run in the peer namespace): prints the port of NAME._ssh._tcp.
MDNS_SSH = r"""
import sys
from zeroconf import ServiceInfo, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
try:
    info = ServiceInfo("_ssh._tcp.local.", f"{sys.argv[2]}._ssh._tcp.local.")
    print(info.port if info.request(zc, int(sys.argv[3])) else "")
finally:
    zc.close()
"""


def ssh_service_port(hostd: Hostd, name: str) -> str:
    """The port <name>._ssh._tcp.local answers with, asked from the peer ("" when nothing answers)."""
    tb = hostd.tb
    return tb.peer_exec([sys.executable, "-c", MDNS_SSH, tb.peer_ip, name, "1500"], check=False).stdout.strip()


def check_peer_works(hostd: Hostd, peer: Peer) -> float:
    """What the peer got from hostd is in effect again; returns the seconds it took from now."""
    tb, started = hostd.tb, time.monotonic()
    if peer.key == "dnsmasq":
        name, path = "uk.org.thekelleys.dnsmasq", "/uk/org/thekelleys/dnsmasq"
        [metrics] = hostd.busctl_json("call", name, path, name, "GetServerMetrics")
        assert [m["address"] for m in metrics] == [tb.peer_ip]
        tb.wait_for(lambda: hostd.probe().ok, 5, f"{tb.probe_name} resolves through 127.0.0.2")
    elif peer.key == "avahi":
        hostd.settle_mdns(timeout=15)  # <hostname>.local answered from the peer
        name = hostd.describe()["hostname"]
        tb.wait_for(lambda: ssh_service_port(hostd, name) == "22222", 10, "_ssh._tcp answered from the peer")
    elif peer.key == "networkmanager":
        assert entries(hostd.describe())["systest-absent.nmconnection"]["nm"] == "loaded"
        tb.wait_for(lambda: hostd.host0_connection() == "100 (connected)\ntestbed-host0", 20, "host0 connected")
    elif peer.key == "modemmanager":
        assert hostd.prop("Modems") == []
    return time.monotonic() - started


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("peer", BUS_PEERS, ids=lambda p: p.unit.split(".")[0])
def test_crash_bus_peer(boot: Hostd, baseline: Baseline, peer: Peer, action: str) -> None:
    """The peer leaves the bus (stop, SIGKILL, restart): Degraded names it within 1 s; back, it gets
    its steps again within 2 s, and works as before; hostd never restarts."""
    hostd, tb = boot, boot.tb
    if peer.key == "networkmanager":  # a boot profile whose verdict must be refreshed
        (tb.boot_dir / "system-connections" / "systest-absent.nmconnection").write_bytes(ABSENT_LINK_PROFILE)
        hostd.wait_describe(lambda d: entries(d).get("systest-absent.nmconnection", {}).get("nm") == "loaded")
    detect, reapply, outage = [], [], []
    for _ in range(ROUNDS):
        hostd.wait_ready()
        with bus_watch(hostd, peer.bus_name) as watch:
            since = time.time()

            def gone(watch: BusWatch = watch, since: float = since) -> None:
                watch.wait(degraded_is(peer.key, True), 10, f"Degraded naming {peer.key}", after=since)

            try:
                disrupt(hostd, peer.unit, action, gone)
            finally:
                tb.exec(["systemctl", "start", peer.unit], check=False, timeout=60)
            left = watch.wait(owner_gone, 10, f"{peer.bus_name} leaving", after=since)
            noticed = watch.wait(degraded_is(peer.key, True), 1, "Degraded", after=left.at)
            back = watch.wait(owner_back, 30, f"{peer.bus_name} back", after=left.at)
            cleared = watch.wait(degraded_is(peer.key, False), 10, "Degraded cleared", after=back.at)
            done = cleared
            if peer.steps:
                done = watch.wait(reapplied(peer.steps), 10, f"{peer.steps} re-applied", after=back.at)
            detect.append(noticed.at - left.at)
            reapply.append(max(done.at, cleared.at) - back.at)
            outage.append(back.at - left.at)
        works_after = check_peer_works(hostd, peer)
        assert_hostd_unhurt(hostd, baseline)
    figure(
        f"{peer.unit} {action} x{ROUNDS}: Degraded after max {max(detect) * 1000:.1f} ms; "
        f"re-applied max {max(reapply) * 1000:.1f} ms after its return (away {statistics.median(outage):.2f} s; "
        f"working {works_after:.2f} s after the check started)"
    )
    assert max(detect) <= DETECT_LIMIT, detect
    assert max(reapply) <= REAPPLY_LIMIT, reapply


def chrony_sources(hostd: Hostd) -> list[str]:
    out = hostd.tb.exec(["chronyc", "-n", "-c", "sources"], check=False).stdout
    return sorted(line.split(",")[2] for line in out.splitlines() if line.count(",") >= 2)


def hostd_logs_reach_journal(hostd: Hostd) -> bool:
    """Touch config.json (same content): hostd logs that it reconciles; is one more such line in the journal?"""

    def count() -> int:
        return hostd_journal(hostd, int(time.time()) - 3600).count("drop-in changed: reconciling")

    before = count()
    os.utime(hostd.tb.config_path)
    try:
        hostd.tb.wait_for(lambda: count() > before, 3, "hostd's log line in the journal")
    except TimeoutError:
        return False
    return True


@contextlib.contextmanager
def chrony_repaired(hostd: Hostd, baseline: Baseline) -> Iterator[None]:
    """Afterwards chronyd runs, with hostd's sources: if a failure left it without them, hostd is
    restarted by hand (a full reconcile writes them again) so that later tests find chrony as configured."""
    try:
        yield
    finally:
        hostd.tb.exec(["systemctl", "start", "chrony.service"], timeout=60)
        if chrony_sources(hostd) != [hostd.tb.peer_ip]:
            hostd.tb.restart_unit("hostd.service")
            hostd.wait_ready()
            baseline.pid = hostd.pid()


@pytest.mark.parametrize("action", ACTIONS)
def test_crash_chrony(hostd: Hostd, baseline: Baseline, action: str) -> None:
    """chronyd stopped, killed or restarted: hostd survives, and chronyd runs with ntpServers again
    within 2 s of its return (hostd's sources live outside chrony's RuntimeDirectory, which systemd
    deletes when chronyd stops or dies)."""
    peer = hostd.tb.peer_ip
    with chrony_repaired(hostd, baseline):
        for _ in range(ROUNDS):
            assert chrony_sources(hostd) == [peer]
            disrupt(hostd, "chrony.service", action, lambda: None)
            assert_hostd_unhurt(hostd, baseline)
            hostd.tb.wait_for(lambda: chrony_sources(hostd) == [peer], REAPPLY_LIMIT, "chrony's sources")


def test_chrony_stopped_shows_degraded(hostd: Hostd, baseline: Baseline) -> None:
    """A stopped chronyd shows in Degraded within 1 s, like the services on the bus."""
    with chrony_repaired(hostd, baseline):
        hostd.tb.exec(["systemctl", "stop", "chrony.service"], timeout=60)
        hostd.tb.wait_for(lambda: "chrony" in hostd.prop("Degraded"), DETECT_LIMIT, "chrony in Degraded")


@pytest.mark.parametrize("action", ["kill", "restart"])
def test_crash_journald(hostd: Hostd, baseline: Baseline, action: str) -> None:
    """journald killed (systemd restarts it) or restarted: hostd survives, and what it logs still
    reaches the journal (systemd keeps hostd's log stream in journald's fdstore)."""
    for _ in range(ROUNDS):
        disrupt(hostd, "systemd-journald.service", action, lambda: None)
        assert_hostd_unhurt(hostd, baseline)
        assert hostd_logs_reach_journal(hostd)


@contextlib.contextmanager
def journald_stopped(hostd: Hostd) -> Iterator[None]:
    tb = hostd.tb
    try:
        tb.exec(["systemctl", "stop", "systemd-journald.service"], timeout=60)
        yield
    finally:
        tb.exec(["systemctl", "start", "systemd-journald.service"], timeout=60)


def test_journald_stopped_shows_degraded(hostd: Hostd, baseline: Baseline) -> None:
    """journald stopped: Degraded names it within 1 s (its unit is followed); started again, it is not."""
    with journald_stopped(hostd):
        hostd.tb.wait_for(lambda: "journald" in hostd.prop("Degraded"), DETECT_LIMIT, "journald degraded")
        hostd.tb.exec(["systemctl", "start", "systemd-journald.service"], timeout=60)
        hostd.tb.wait_for(lambda: "journald" not in hostd.prop("Degraded"), 2, "journald back")


def test_journald_stopped_keeps_hostd_logs(hostd: Hostd, baseline: Baseline) -> None:
    """journald stopped and started again: the streams it held are gone, so hostd opens a new one for
    its stderr; its log lines reach the journal again, under hostd.service, without a restart."""
    with journald_stopped(hostd):
        hostd.tb.exec(["systemctl", "start", "systemd-journald.service"], timeout=60)
        assert hostd_logs_reach_journal(hostd)
        assert "journald is back: logging to a new stream" in hostd_journal(hostd, int(time.time()) - 60)


def set_hostname_everywhere(hostd: Hostd, name: str) -> float:
    """SetHostname (returns once applied); the kernel, /etc/hostname and the API have it.  Returns seconds."""
    started = time.monotonic()
    hostd.call("SetHostname", "s", name)
    took = time.monotonic() - started
    tb = hostd.tb
    assert (tb.hostname(), tb.exec(["cat", "/etc/hostname"]).stdout.strip(), hostd.describe()["hostname"]) == (
        name,
        name,
        name,
    )
    return took


def test_crash_hostnamed_hostname_still_set(boot: Hostd, baseline: Baseline) -> None:
    """hostnamed killed (it is bus-activated and exits when idle anyway): never Degraded, and the next
    SetHostname starts it again and is applied (kernel, hostnamed, API)."""
    hostd, tb = boot, boot.tb
    activate = ["busctl", "call", "org.freedesktop.hostname1", "/org/freedesktop/hostname1"]
    took = []
    for round_ in range(ROUNDS):
        tb.exec(["systemctl", "reset-failed", "systemd-hostnamed.service"], check=False)  # start limit: see disrupt
        tb.exec([*activate, "org.freedesktop.DBus.Peer", "Ping"])
        pid = hostd.main_pid("systemd-hostnamed.service")
        assert pid
        with bus_watch(hostd, "org.freedesktop.hostname1") as watch:
            since = time.time()
            tb.exec(["systemctl", "kill", "-s", "KILL", "systemd-hostnamed.service"])
            watch.wait(owner_gone, 10, "hostnamed leaving", after=since)
            time.sleep(DETECT_LIMIT)
            assert watch.first(degraded_is("hostname1", True), after=since) is None
        assert hostd.prop("Degraded") == []
        tb.exec(["systemctl", "reset-failed", "systemd-hostnamed.service"], check=False)
        took.append(set_hostname_everywhere(hostd, f"systest-hn{round_}-{uuid.uuid4().hex[:6]}"))
        assert tb.exec(["hostnamectl", "hostname", "--static"]).stdout.strip() == hostd.describe()["hostname"]
        assert hostd.main_pid("systemd-hostnamed.service") not in (0, pid)
        assert_hostd_unhurt(hostd, baseline)
    figure(f"hostnamed killed x{ROUNDS}: never degraded; SetHostname after it took max {max(took) * 1000:.0f} ms")


def test_hostnamed_that_cannot_start_hostname_still_set(boot: Hostd, baseline: Baseline) -> None:
    """hostnamed cannot be started (masked here; the same after its start limit is hit by repeated
    crashes): SetHostname still sets the kernel's name (directly) and /etc/hostname, and the hostname
    step says why hostnamed was not used.  This is what "degraded" is for hostnamed, an on-demand
    service: not its absence, but its activation failing, shown in the step that needed it (hostd's
    start does not start hostnamed)."""
    hostd, tb = boot, boot.tb
    tb.exec(["systemctl", "mask", "--runtime", "systemd-hostnamed.service"])
    try:
        tb.exec(["systemctl", "kill", "-s", "KILL", "systemd-hostnamed.service"], check=False)
        tb.wait_for(lambda: tb.unit_state("systemd-hostnamed.service") != "active", 5, "hostnamed gone")
        set_hostname_everywhere(hostd, f"systest-masked-{uuid.uuid4().hex[:6]}")
        problems = hostd.step("hostname")["problems"]
        assert any(p.startswith("hostnamed not used") for p in problems), problems
    finally:
        tb.exec(["systemctl", "unmask", "--runtime", "systemd-hostnamed.service"])
        tb.exec(["systemctl", "reset-failed", "systemd-hostnamed.service"], check=False)
    assert_hostd_unhurt(hostd, baseline)


# -- unauthorised callers ----------------------------------------------------------------------------------

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
BUSCTL = ["busctl", "--system", "--no-pager"]
MUTATING = [
    ("Reload", []),
    ("SetHostname", ["s", "systest-evil"]),
    ("SetPersistentLogging", ["b", "true"]),
    ("Try", ["su", "", "30"]),
    ("Confirm", []),
]
READS = [
    [*BUSCTL, "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Describe"],
    [*BUSCTL, "call", BUS_NAME, OBJECT_PATH, INTERFACE, "Plan"],
    [*BUSCTL, "get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Generation"],
    [*BUSCTL, "call", BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", INTERFACE],
    [*BUSCTL, "introspect", BUS_NAME, OBJECT_PATH],
    [*BUSCTL, "call", BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Peer", "Ping"],
]
OPEN_POLICY = "/etc/dbus-1/system.d/zz-systest-open-hostd.conf"


def device_state(hostd: Hostd) -> dict[str, Any]:
    doc = hostd.describe()
    return {
        "config": hostd.tb.config_path.read_bytes(),
        "hostname": hostd.tb.hostname(),
        "steps": [(s["name"], s["finished_at"]) for s in doc["steps"]],
        "generations": doc["generations"],
        "logging": doc["logging"]["persistent"],
    }


def dbus_send(method: str, args: list[str]) -> list[str]:
    send = ["dbus-send", "--system", "--print-reply", f"--dest={BUS_NAME}", OBJECT_PATH, f"{INTERFACE}.{method}"]
    kinds = {"s": "string", "b": "boolean", "u": "uint32"}
    if args:  # [signature, value per type], e.g. ["su", "", "30"]
        send += [f"{kinds[kind]}:{value}" for kind, value in zip(args[0], args[1:], strict=True)]
    return send


def call_as_nobody(hostd: Hostd, method: str, args: list[str]) -> subprocess.CompletedProcess:
    return hostd.tb.exec([*AS_NOBODY, *BUSCTL, "call", BUS_NAME, OBJECT_PATH, INTERFACE, method, *args], check=False)


def test_unprivileged_callers_cannot_change_anything(hostd: Hostd, baseline: Baseline) -> None:
    """As nobody on the device's system bus: each mutating method (busctl and dbus-send) gets
    AccessDenied from the bus policy; with the policy opened up, from hostd's own check; reads work;
    hostctl exits 4; config.json, the hostname and hostd's state are unchanged."""
    tb = hostd.tb
    before = device_state(hostd)
    for method, args in MUTATING:
        r = call_as_nobody(hostd, method, args)
        assert r.returncode != 0 and "Access denied" in r.stderr, (method, r.stderr)
        r = tb.exec([*AS_NOBODY, *dbus_send(method, args)], check=False)
        assert r.returncode != 0 and "org.freedesktop.DBus.Error.AccessDenied" in r.stderr, (method, r.stderr)
        assert "Rejected send message" in r.stderr, r.stderr  # the bus policy said no
    for argv in READS:
        r = tb.exec([*AS_NOBODY, *argv], check=False)
        assert r.returncode == 0, (argv, r.stderr)
    r = tb.exec([*AS_NOBODY, "hostctl", "status"], check=False)
    assert r.returncode == 0, r.stderr
    r = tb.exec([*AS_NOBODY, "hostctl", "hostname", "systest-evil"], check=False)
    assert r.returncode == 4 and "not allowed" in r.stderr, (r.returncode, r.stderr)

    # hostd's own check, with a bus policy that lets anyone send to it
    policy = tb.root_dir / OPEN_POLICY.lstrip("/")
    policy.write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f'<busconfig><policy context="mandatory"><allow send_destination="{BUS_NAME}"/></policy></busconfig>\n'
    )
    reload_bus = [*BUSCTL, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus"]
    try:
        tb.exec([*reload_bus, "ReloadConfig"])
        for method, args in MUTATING:
            r = tb.exec([*AS_NOBODY, *dbus_send(method, args)], check=False)
            assert r.returncode != 0 and f"{method} needs root (caller uid 65534)" in r.stderr, (method, r.stderr)
    finally:
        policy.unlink()
        tb.exec([*reload_bus, "ReloadConfig"])
    assert device_state(hostd) == before
    assert_hostd_unhurt(hostd, baseline)


PSK_MARKER = f"SysTestPsk{uuid.uuid4().hex}"


def wifi_profile(name: str, security: str) -> bytes:
    return (
        f"[connection]\nid={name}\nuuid={uuid.uuid4()}\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid={name}\n\n"
        f"[wifi-security]\nkey-mgmt=wpa-psk\n{security}\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n"
    ).encode()


PSK_PROFILES = {
    "systest-psk-good.nmconnection": wifi_profile("systest-psk-good", f"psk={PSK_MARKER}a"),
    # errors on the psk line: no '=', invalid UTF-8, a NUL byte, a psk before any group, a bad key name
    "systest-psk-noeq.nmconnection": wifi_profile("systest-psk-noeq", f"psk {PSK_MARKER}b"),
    "systest-psk-utf8.nmconnection": wifi_profile("systest-psk-utf8", f"psk={PSK_MARKER}c").replace(
        f"{PSK_MARKER}c".encode(), f"{PSK_MARKER}c".encode() + b"\xff"
    ),
    "systest-psk-nul.nmconnection": wifi_profile("systest-psk-nul", f"psk={PSK_MARKER}d\0x"),
    "systest-psk-nogroup.nmconnection": f"psk={PSK_MARKER}e\n".encode() + wifi_profile("systest-psk-nogroup", ""),
    "systest-psk-key.nmconnection": wifi_profile("systest-psk-key", f"psk[0={PSK_MARKER}f"),
}
HOSTCTL_OUTPUTS = [
    ["status"],
    ["status", "--json"],
    ["connections"],
    ["dns"],
    ["time"],
    ["modems"],
    ["hostname"],
    ["reload"],
    ["confirm"],
    ["plan"],
    ["plan", "--json"],
    ["config", "check"],
    ["config", "check", "--json"],
    ["apply", "--offline", "--json"],
]


def test_psk_never_shown(boot: Hostd, baseline: Baseline) -> None:
    """A Wi-Fi PSK in the boot partition (a good profile, and broken ones with the error on the psk
    line) is in none of: hostd's journal, Describe, Plan, the properties, any hostctl command's output."""
    hostd, tb = boot, boot.tb
    since = int(time.time()) - 1
    for name, content in PSK_PROFILES.items():
        (tb.boot_dir / "system-connections" / name).write_bytes(content)
    doc = hostd.wait_describe(lambda d: set(PSK_PROFILES) <= entries(d).keys(), what="every profile reported")
    report = entries(doc)
    assert (report["systest-psk-good.nmconnection"]["status"], report["systest-psk-good.nmconnection"]["nm"]) == (
        "imported",
        "loaded",
    )
    assert all(report[n]["status"] == "rejected" for n in PSK_PROFILES if n != "systest-psk-good.nmconnection"), report
    outputs = {
        "journal": hostd_journal(hostd, since),
        "journal (whole boot, hostd's PID)": tb.exec(
            ["journalctl", "--no-pager", "-o", "cat", f"_PID={baseline.pid}"]
        ).stdout,
        "Describe": json.dumps(doc),
        "Plan": json.dumps(hostd.busctl_json("call", BUS_NAME, OBJECT_PATH, INTERFACE, "Plan")),
        "GetAll": json.dumps(
            hostd.busctl_json(
                "call", BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties", "GetAll", "s", INTERFACE
            )
        ),
    }
    for argv in HOSTCTL_OUTPUTS:
        r = hostd.hostctl(*argv)
        outputs[f"hostctl {' '.join(argv)}"] = r.stdout + r.stderr
    assert "systest-psk-noeq.nmconnection" in outputs["hostctl connections"]
    leaks = [where for where, text in outputs.items() if PSK_MARKER in text]
    assert leaks == [], {where: outputs[where] for where in leaks}
    figure(f"PSK marker absent from {len(outputs)} outputs ({len(PSK_PROFILES)} profiles, 5 with a broken psk line)")


# -- sustained load -------------------------------------------------------------------------------------------

# N connections in one process inside the device, each making M calls in turn (Describe, Get), timed
# per call; paced (one call per INTERVAL ms per connection, starts staggered) or back to back
# (INTERVAL 0: saturation, a throughput figure).  Prints {"latencies_ms", "errors", "seconds"}.
LOAD_SCRIPT = r"""
import asyncio, json, sys, time
sys.path.insert(0, "/usr/lib/hostd/python")
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

N, M, INTERVAL = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
DEST, PATH, IFACE = "io.hostd1", "/io/hostd1", "io.hostd1.Manager"

async def client(k, bus, latencies, errors):
    due = time.perf_counter() + INTERVAL * k / N
    for i in range(M):
        if INTERVAL:
            due += INTERVAL
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if i % 2:
            msg = Message(destination=DEST, path=PATH, interface="org.freedesktop.DBus.Properties",
                          member="Get", signature="ss", body=[IFACE, "Generation"])
        else:
            msg = Message(destination=DEST, path=PATH, interface=IFACE, member="Describe")
        started = time.perf_counter()
        reply = await bus.call(msg)
        latencies.append((time.perf_counter() - started) * 1000)
        if reply.message_type != MessageType.METHOD_RETURN:
            errors.append(f"{msg.member}: {reply.error_name}: {reply.body}")
        elif msg.member == "Describe" and not reply.body[0].startswith("{"):
            errors.append(f"Describe: {reply.body[0][:80]!r}")

async def main():
    buses = [await MessageBus(bus_type=BusType.SYSTEM).connect() for _ in range(N)]
    latencies, errors = [], []
    started = time.perf_counter()
    await asyncio.gather(*(client(k, bus, latencies, errors) for k, bus in enumerate(buses)))
    seconds = time.perf_counter() - started
    for bus in buses:
        bus.disconnect()
    print(json.dumps({"latencies_ms": latencies, "errors": errors[:20], "error_count": len(errors),
                      "seconds": seconds}))

asyncio.run(main())
"""
LOAD_INTERVAL_MS = 8  # per connection: 16 connections -> 2000 calls/s offered


def hostd_rss_kib(hostd: Hostd, pid: int) -> int:
    status = hostd.tb.exec(["cat", f"/proc/{pid}/status"]).stdout
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def hostd_io(hostd: Hostd, pid: int) -> dict[str, int]:
    out = hostd.tb.exec(["cat", f"/proc/{pid}/io"]).stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


def write_same(tb: Any, data: bytes) -> None:
    """Rewrite config.json with the same bytes (a new inode, as an editor's save does)."""
    tmp = tb.config_path.with_name(".config.json.systest")
    tmp.write_bytes(data)
    os.replace(tmp, tb.config_path)


STATE_TREES = ["/mnt/state", "/mnt/data"]


def test_noop_writes_write_nothing(boot: Hostd, baseline: Baseline) -> None:
    """config.json rewritten with the same bytes, again and again: hostd reconciles and finds nothing
    to do; no file under the state and data partitions or among hostd's managed files is written
    (inode, size, mtime, ctime), no step runs, and hostd writes no byte to storage (/proc/PID/io)."""
    hostd, tb = boot, boot.tb
    data = tb.config_path.read_bytes()
    paths = [p for p in MANAGED if p != "/mnt/boot/config.json"] + STATE_TREES
    since = int(time.time()) - 1
    before = (files_state(hostd, paths), device_state(hostd)["steps"], hostd_io(hostd, baseline.pid))
    for _ in range(5):
        write_same(tb, data)
        time.sleep(1.2)  # one watcher tick each
    log = hostd_journal(hostd, since)
    assert log.count("reconciling") >= 4, log
    after = (files_state(hostd, paths), device_state(hostd)["steps"], hostd_io(hostd, baseline.pid))
    assert after[0] == before[0]
    assert after[1] == before[1], "a step ran"
    assert after[2]["write_bytes"] == before[2]["write_bytes"], (before[2], after[2])
    figure(
        f"5 no-op config.json writes: 0 files changed, write_bytes +0, "
        f"syscw +{after[2]['syscw'] - before[2]['syscw']} (D-Bus replies and log lines)"
    )


def test_sustained_load(boot: Hostd, baseline: Baseline) -> None:
    """LOAD_CLIENTS x LOAD_CALLS calls of Describe/Get (paced, 2000/s offered) while config.json flips
    between two configs every second (ntpServers: reconcile, generation store, probe) and is rewritten
    unchanged in between: no error, hostd's RSS flat (<= 1 MiB over a warmed-up baseline), hostd
    unhurt, the last config applied and kept; the p99 is printed, and checked when HOSTD_LOAD_P99_MS is
    set.  Then the same calls back to back (saturation): no error; its throughput and latencies are
    figures only (they measure queueing at 16 in flight)."""
    hostd, tb = boot, boot.tb
    cfg = tb.read_config()
    configs = [
        json.dumps({**cfg, "ntpServers": tb.peer_ip}, indent=2).encode() + b"\n",
        json.dumps({**cfg, "ntpServers": f"{tb.peer_ip} {tb.peer_ip.rsplit('.', 1)[0]}.254"}, indent=2).encode()
        + b"\n",
    ]
    stop = threading.Event()
    flips = [0]

    def churn() -> None:
        while not stop.is_set():
            write_same(tb, configs[flips[0] % 2])
            flips[0] += 1
            if stop.wait(0.5):
                break
            write_same(tb, configs[(flips[0] - 1) % 2])  # the same bytes again: nothing to do
            stop.wait(0.5)

    def load(calls: int, interval_ms: float) -> dict[str, Any]:
        argv = ["python3", "-c", LOAD_SCRIPT, str(LOAD_CLIENTS), str(calls), str(interval_ms)]
        result = json.loads(tb.exec(argv, timeout=7200).stdout)
        latencies = sorted(result["latencies_ms"])
        result.update(
            calls=len(latencies),
            p50=latencies[len(latencies) // 2],
            p99=latencies[int(len(latencies) * 0.99) - 1],
            max=latencies[-1],
        )
        return result

    def line(what: str, r: dict[str, Any]) -> str:
        return (
            f"{what}: {r['calls']} calls in {r['seconds']:.1f} s ({r['calls'] / r['seconds']:.0f}/s), "
            f"errors {r['error_count']}, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.1f} ms"
        )

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    try:
        load(100, 0)  # warm-up: allocator arenas, caches, both generations saved
        rss_before = hostd_rss_kib(hostd, baseline.pid)
        paced = load(LOAD_CALLS, LOAD_INTERVAL_MS)
        saturated = load(LOAD_CALLS, 0)
        rss_after = hostd_rss_kib(hostd, baseline.pid)
    finally:
        stop.set()
        churner.join()
    figure(line(f"load {LOAD_CLIENTS} x {LOAD_CALLS} paced", paced))
    figure(line(f"load {LOAD_CLIENTS} x {LOAD_CALLS} back to back", saturated))
    figure(
        f"load: config.json flipped {flips[0]} times; hostd RSS {rss_before / 1024:.1f} -> "
        f"{rss_after / 1024:.1f} MiB ({rss_after - rss_before:+d} KiB)"
    )
    assert paced["error_count"] == saturated["error_count"] == 0, paced["errors"] + saturated["errors"]
    assert paced["calls"] == saturated["calls"] == LOAD_CLIENTS * LOAD_CALLS
    if LOAD_P99_MS is not None:
        assert paced["p99"] <= LOAD_P99_MS
    assert rss_after - rss_before <= 1024
    final = json.loads(configs[(flips[0] - 1) % 2])["ntpServers"].split()
    doc = hostd.wait_describe(
        lambda d: d["time"]["ntpServers"] == final and d["generations"]["transaction"] == "",
        what="the last config applied",
    )
    assert doc["generations"]["current"] == doc["generations"]["good"]
    assert_hostd_unhurt(hostd, baseline)


def test_zz_hostd_never_restarted(hostd: Hostd, baseline: Baseline) -> None:
    """After everything above: same MainPID, NRestarts 0, no watchdog timeout in hostd's journal."""
    assert_hostd_unhurt(hostd, baseline)
    for line in FIGURES:
        print(f"[peers] {line}")
