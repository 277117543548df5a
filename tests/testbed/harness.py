"""Python handle on the testbed device (tests/testbed/testbed), for system tests.

    tb = Testbed.up()            # boots the device (runs `testbed up`); Testbed.attach() if it runs
    tb.exec(["hostctl", "status"]).stdout
    tb.busctl("call", "org.freedesktop.hostname1", ...)   # the device's system bus, from the host
    tb.down()

Everything the testbed command writes to $HOSTD_TESTBED_DIR/env is read back here; paths are
host paths.  Needs root, like the command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
COMMAND = HERE / "testbed"
INSTANCE = int(os.environ.get("HOSTD_TESTBED_INSTANCE") or 0)  # see the testbed command
DEFAULT_DIR = f"/run/hostd-testbed{INSTANCE or ''}"
DEVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T = TypeVar("T")


def testbed_dir() -> Path:
    return Path(os.environ.get("HOSTD_TESTBED_DIR", DEFAULT_DIR))


def unavailable_reason() -> str | None:
    """Why the testbed cannot run on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "the system testbed needs root (systemd-nspawn, mounts, network namespaces)"
    if not shutil.which("systemd-nspawn") and not shutil.which("apt-get"):
        return "systemd-nspawn is not installed and apt-get is not available to install it"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay filesystem"
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot create namespaces here (unshare: {probe.stderr.strip()})"
    return None


def run_command(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the testbed command; its output is kept in the result (and raised on failure)."""
    r = subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"testbed {' '.join(args)} failed (rc={r.returncode}):\n{r.stdout}{r.stderr}")
    return r


class Testbed:
    """A running testbed device.  Build it with Testbed.up() or Testbed.attach()."""

    def __init__(self, env: dict[str, str], up_output: str = ""):
        self.env = env
        self.up_output = up_output
        self.dir = Path(env["HOSTD_TESTBED_DIR"])
        self.machine = env["HOSTD_TESTBED_MACHINE"]
        self.root_dir = Path(env["HOSTD_TESTBED_ROOT"])  # the device's "/" (merged overlay)
        self.boot_dir = Path(env["HOSTD_TESTBED_BOOT_DIR"])  # /mnt/boot inside
        self.state_dir = Path(env["HOSTD_TESTBED_STATE_DIR"])  # /mnt/state inside
        self.data_dir = Path(env["HOSTD_TESTBED_DATA_DIR"])  # /mnt/data inside
        self.bus_address = env["DBUS_SYSTEM_BUS_ADDRESS"]  # the device's system bus, from the host
        self.netns = env["HOSTD_TESTBED_NETNS"]
        self.peer_ip = env["HOSTD_TESTBED_PEER_IP"]
        self.device_ip = env["HOSTD_TESTBED_DEVICE_IP"]
        self.device_if = env["HOSTD_TESTBED_DEVICE_IF"]
        self.probe_name = env["HOSTD_TESTBED_PROBE_NAME"]  # the peer resolver answers this name
        self.probe_addr = env["HOSTD_TESTBED_PROBE_ADDR"]
        self._leader_file = Path(env["HOSTD_TESTBED_LEADER_PID_FILE"])

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def up(cls, boot: Path | None = None) -> Testbed:
        r = run_command("up", *(["--boot", str(boot)] if boot else []))
        tb = cls.attach()
        tb.up_output = r.stdout
        return tb

    @classmethod
    def attach(cls) -> Testbed:
        env_file = testbed_dir() / "env"
        env = {}
        for line in env_file.read_text().splitlines():
            k, _, v = line.partition("=")
            env[k] = v
        return cls(env)

    @staticmethod
    def down() -> str:
        return run_command("down", timeout=120).stdout

    def reboot(self, timeout: float = 120) -> str:
        """Reboot the device and wait until it runs again with all its bus names."""
        return run_command("reboot", timeout=timeout).stdout

    @property
    def leader(self) -> int:
        """PID (host view) of the device's systemd; changes at every reboot."""
        return int(self._leader_file.read_text())

    # -- running things --------------------------------------------------------------------------
    def exec(
        self,
        cmd: Sequence[str],
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run cmd inside the device (all its namespaces, root, clean environment); text output."""
        envv = [f"{k}={v}" for k, v in {"PATH": DEVICE_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}.items()]
        argv = ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i", *envv, *cmd]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout, input=input)

    def run_unit(self, cmd: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run cmd as a transient service inside the device (its own cgroup, the unit environment)."""
        argv = ["systemd-run", "-M", self.machine, "--wait", "--pipe", "--collect", "--quiet", "--", *cmd]
        return subprocess.run(
            argv, capture_output=True, text=True, check=check, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def peer_exec(self, cmd: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run cmd on this machine inside the peer network namespace (the far end of the device's link)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *cmd],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def busctl(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """busctl on the device's system bus (from the host: callers outside the device's PID namespace)."""
        return subprocess.run(
            ["busctl", f"--address={self.bus_address}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.exec(["systemctl", "--no-pager", *args], check=check)

    def unit_state(self, name: str) -> str:
        return self.systemctl("is-active", name).stdout.strip()

    def restart_unit(self, name: str, timeout: float = 30) -> None:
        """Restart a unit inside the device and wait until it is active again."""
        self.exec(["systemctl", "restart", name], timeout=timeout)
        self.wait_for(lambda: self.unit_state(name) == "active", timeout, f"{name} active")

    def journal(self, unit: str | None = None, lines: int = 50) -> str:
        args = ["journalctl", "--no-pager", "-n", str(lines), "-o", "short-monotonic"]
        return self.exec([*args, *(["-u", unit] if unit else [])], check=False).stdout

    def bus_names(self) -> list[str]:
        r = self.busctl("list", "--no-legend", "--acquired", check=False)
        return sorted(line.split()[0] for line in r.stdout.splitlines() if line and not line.startswith(":"))

    def hostname(self) -> str:
        return self.exec(["hostname"]).stdout.strip()

    # -- boot partition ----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.boot_dir / "config.json"

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def write_config(self, cfg: dict[str, Any]) -> None:
        """Replace /mnt/boot/config.json atomically (as a user editing the boot partition would)."""
        tmp = self.config_path.with_name(".config.json.tmp")
        tmp.write_text(json.dumps(cfg, indent=2) + "\n")
        os.replace(tmp, self.config_path)

    # -- waiting -------------------------------------------------------------------------------
    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 30, what: str = "", interval: float = 0.1) -> T:
        """Poll predicate until it returns something truthy (returned); TimeoutError after timeout s."""
        end = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = predicate()
            except Exception as e:  # a probe that fails is "not yet"
                last = e
            if last and not isinstance(last, Exception):
                return last
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r} (last: {last!r})")
            time.sleep(interval)
