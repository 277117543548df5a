"""A balenaOS-style device in a qemu VM, for what the nspawn testbed cannot do: set the clock, and
run a udevd on kernel devices.

The testbed's container shares this machine's clock and must never get CAP_SYS_TIME, and has no
udevd (its /sys is read-only; the kernel's uevents do not reach a container).  This device has a
clock of its own, an emulated RTC that qemu starts wherever a test says (``-rtc base=``), and its
own kernel, udevd and disks.

The device is a Debian 12 root (mmdebstrap, with Debian's kernel and an initramfs that only has
to find an ext4 root on virtio) with hostd's Debian package installed as an image build installs
it, laid out as balenaOS lays out its disk: a read-only root filesystem, a FAT boot partition
(``resin-boot``), ext4 state and data partitions (``resin-state``, ``resin-data``) mounted on
/mnt/boot, /mnt/state and /mnt/data by mount units, tmpfs on /tmp and /var/volatile, balenaOS's
chrony.conf and ``/etc/timestamp`` (the image's build time, as OpenEmbedded writes it).  Of the
services hostd drives it has chrony, dbus, NetworkManager (balenaOS's NetworkManager.conf: its
automatic DHCP profile brings the NIC up), dnsmasq and avahi-daemon; hostd runs without the others
(ModemManager, the engine), as it must when a peer is missing.

Its network is qemu's user-mode network, restricted: DHCP, and nothing reachable but what a test
forwards (an HTTPS server on this machine at ``SERVER``:443).  No NTP server: nothing but hostd
can correct its clock.

A test-only script reports on a second serial port once hostd is up and has logged what the test
awaits (the clock, the bootstrap record, the time probe's result, io.hostd1's time properties
read with busctl, NetworkManager's device as nmcli sees it, systemd's order of the bind mounts and
their early readers, the links udev made under /dev/disk, before and after the live config.json
edits the test staged) and powers the device off; its console goes to a file.

Images are cached under $HOSTD_TESTBED_CACHE/vm (default /var/cache/hostd-testbed/vm): the
Debian root (about 2.5 min to build, once) and the device's root filesystem per hostd package.
qemu uses KVM when /dev/kvm works and falls back to TCG (slower; the bound allows for it).
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTBED = HERE.parent / "testbed"
sys.path.insert(0, str(TESTBED))

import balenaos  # noqa: E402

from hostd.steps.state import DATA_BIND_PATHS, FILE_TARGET_MODES, STATE_BIND_PATHS  # noqa: E402

CACHE = Path(os.environ.get("HOSTD_TESTBED_CACHE", "/var/cache/hostd-testbed")) / "vm"
SUITE = "bookworm"
# hostd's Depends (dbus nftables python3 redsocks), the services it drives that balenaOS runs
# (chrony, NetworkManager, dnsmasq, avahi-daemon; iproute2 for balenaOS's DNS bridge), the system's
# CAs (balenaOS's /etc/ssl/certs, which hostd binds from the state partition), and what a
# booting device needs: systemd as init, udev (partitions by label), kmod, Debian's kernel
PACKAGES = (
    "systemd,systemd-sysv,udev,dbus,kmod,python3,nftables,redsocks,chrony,network-manager,dnsmasq,avahi-daemon,"
    "iproute2,ca-certificates,linux-image-amd64"
)
# the initramfs only mounts an ext4 root from a virtio disk; the rest of the kernel's modules that
# this device has no hardware for are left out of the image (of the network drivers, virtio's stays)
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")
UNUSED_MODULES = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/scsi",
    "drivers/usb",
    "drivers/bluetooth",
    "drivers/iio",
    "drivers/mtd",
    "drivers/isdn",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
)
BASE_HOOK = (
    'set -e; cd "$1"; '
    f"printf '{chr(92)}n%s' {' '.join(INITRAMFS_MODULES)} >> etc/initramfs-tools/modules; "
    "echo MODULES=list > etc/initramfs-tools/conf.d/hostd-vm.conf; "
    "for v in usr/lib/modules/*; do (cd $v/kernel && rm -rf " + " ".join(UNUSED_MODULES) + " && "
    "find drivers/net -type f ! -name 'virtio_net.ko*' ! -name 'net_failover.ko*' -delete); done; "
    "chroot \"$1\" sh -c 'for v in $(ls /usr/lib/modules); do depmod -a $v; done; update-initramfs -u -k all'"
)
BASE_KEY = hashlib.sha256(f"{SUITE}\0{PACKAGES}\0{BASE_HOOK}".encode()).hexdigest()[:16]

# balenaOS's NetworkManager.conf as it is (the testbed's leaves out type:veth: its link is one), and
# its build default rc-manager=resolvconf without the testbed's no-auto-default
NETWORKMANAGER_CONF = balenaos.NETWORKMANAGER_CONF.replace("interface-name:br*\n", "interface-name:br*;type:veth\n")
NETWORKMANAGER_BUILD_DEFAULTS = "[main]\nrc-manager=resolvconf\n"

PARTITION_MIB = {"boot": 32, "state": 64, "data": 64}
LABELS = {"boot": "resin-boot", "state": "resin-state", "data": "resin-data"}
REPORT_END = "hostd-vm-report-end"
# the state partition's bind mounts and what reads them before the bus is up, each with whether its
# condition held and when it was checked, when its process started and exited, and when it was
# active (systemd's monotonic clock, µs; "-" where a unit has no process)
BOOT_ORDER_UNITS = (
    "var-lib-systemd.mount",
    "systemd-random-seed.service",
    "systemd-udev-trigger.service",
    "etc-udev-rules.d.mount",
    "hostd-udev-replay.service",
)
# on the boot partition: config.json files the reporter puts in place one by one, in name order
LIVE_DIR = "hostd-vm-live"
UDEV_LINK_PREFIX = "hostd-vm-"  # the links under /dev/disk the reporter lists: what the tests' udev rules make
SERVER = "10.0.2.100"  # where the device finds the test's HTTPS server (user-mode network)
AWAITABLE = re.compile(r"[A-Za-z0-9.:_*-]*")
AWAIT_SECONDS = 180  # the reporter's bound on what it awaits: a failed probe's retry comes 60 s later

# balenaOS mounts its partitions by unit, the state and data partitions before local-fs.target
MOUNT_UNIT = """[Unit]
Description={label} partition
DefaultDependencies=no
Before=local-fs.target umount.target
Conflicts=umount.target

[Mount]
What=/dev/disk/by-label/{label}
Where=/mnt/{name}
Type={fstype}
Options={options}

[Install]
WantedBy=local-fs.target
"""
TMPFS_UNIT = """[Unit]
Description=tmpfs on {where}
DefaultDependencies=no
Before=local-fs.target umount.target
Conflicts=umount.target

[Mount]
What=tmpfs
Where={where}
Type=tmpfs
Options=mode=1777,nosuid,nodev

[Install]
WantedBy=local-fs.target
"""
# The test-only reporter: once hostd is up (or has failed) and has logged what the kernel command
# line's hostd_vm.await= names (a pattern, bounded wait), what the tests read; then power off.
REPORT_SCRIPT = f"""#!/bin/sh
awaited=$(sed -n 's/.*hostd_vm[.]await=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
generation() {{ busctl get-property io.hostd1 /io/hostd1 io.hostd1.Manager Generation; }}
udev_links() {{
  links=""
  for link in /dev/disk/{UDEV_LINK_PREFIX}*; do
    [ -L "$link" ] && links="$links ${{link#/dev/disk/}}:$(readlink -e "$link")"
  done
  echo "udev-$1=$links"
}}
if [ -n "$awaited" ]; then
  for _ in $(seq {AWAIT_SECONDS // 2}); do
    journalctl -b -o cat -u hostd.service | grep -q "$awaited" && break
    sleep 2
  done
fi
{{
  echo "now=$(date +%s)"
  echo "record=$(cat /run/hostd/clock-bootstrap.json)"
  echo "hostd-clock=$(systemctl is-active hostd-clock.service)"
  echo "hostd=$(systemctl is-active hostd.service)"
  journalctl -b -o cat -u hostd-clock.service | sed "s/^/journal=/"
  [ -z "$awaited" ] || echo "awaited=$(journalctl -b -o cat -u hostd.service | grep "$awaited" | head -1)"
  echo "probe=$(cat /run/hostd/time-probe.json)"
  journalctl -b -o cat -u hostd-time-probe.service | sed "s/^/probe-journal=/"
  for property in TimeTrusted TimeSource LastSync; do
    echo "$property=$(busctl get-property io.hostd1 /io/hostd1 io.hostd1.Manager $property)"
  done
  hostctl time | sed "s/^/hostctl=/"
  nmcli -t -f DEVICE,TYPE,STATE,CONNECTION device | sed "s/^/nm-device=/"
  nmcli -t -f DHCP4.OPTION device show | grep -e ip_address -e server_identifier | sed "s/^/nm-dhcp4=/"
  for unit in hostd NetworkManager dnsmasq avahi-daemon chrony; do
    echo "unit=$unit $(systemctl is-active $unit) $(systemctl show -P ActiveEnterTimestampMonotonic $unit)"
  done
  systemctl --failed --plain --no-legend | sed "s/^/failed=/"
  for unit in {" ".join(BOOT_ORDER_UNITS)}; do
    line="boot-order=$unit"
    for property in ConditionResult ConditionTimestampMonotonic ExecMainStartTimestampMonotonic \\
        ExecMainExitTimestampMonotonic ActiveEnterTimestampMonotonic; do
      value=$(systemctl show -P $property $unit)
      line="$line ${{value:--}}"
    done
    echo "$line"
  done
  # os.udevRules: hostd's udev step as the boot left it (ok: it changed no rule, so replayed
  # nothing) and the links udev made for devices present since boot, then again after each
  # config.json the test staged (/mnt/boot/{LIVE_DIR}/N.json), put in place as the supervisor
  # puts it (a temporary file renamed over it), once hostd has run the change's live effects
  udevadm settle
  echo "udev-step=$(hostctl status --json | python3 -c 'import json, sys
print(next(step["status"] for step in json.load(sys.stdin)["steps"] if step["name"] == "udev"))')"
  udev_links boot
  for live in /mnt/boot/{LIVE_DIR}/*.json; do
    [ -f "$live" ] || continue
    before=$(generation)
    cp "$live" /mnt/boot/config.json.tmp && sync /mnt/boot/config.json.tmp
    mv /mnt/boot/config.json.tmp /mnt/boot/config.json
    for _ in $(seq 120); do [ "$(generation)" != "$before" ] && break; sleep 0.5; done
    [ "$(generation)" != "$before" ] || echo "udev-timeout=hostd did not apply $live in 60 s"
    udev_links "live-$(basename "$live" .json)"
  done
  echo {REPORT_END}
}} > /dev/ttyS1
"""
REPORT_UNIT = """[Unit]
Description=testbed VM: report the clock after hostd-clock and hostd, then power off
After=hostd-clock.service hostd.service multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/lib/hostd-vm/report
ExecStartPost=/usr/bin/systemctl poweroff --no-block

[Install]
WantedBy=multi-user.target
"""


def log(message: str) -> None:
    print(f"vm: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], text: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=text, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({result.returncode}): {result.stdout!r}{result.stderr!r}")
    return result


HOST_TOOLS = (
    "qemu-system-x86_64",
    "mmdebstrap",
    "mkfs.ext4",
    "mkfs.vfat",
    "mcopy",
    "debugfs",
    "systemd-nspawn",
    "socat",
)


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the VM device needs root (image building)"
    for tool in HOST_TOOLS:
        if not shutil.which(tool):
            return f"{tool} is missing (tests/bootstrap installs it)"
    return None


def base_tarball() -> Path:
    """The Debian root with the kernel and initramfs, built once (about 2.5 min)."""
    tarball = CACHE / f"base-{BASE_KEY}.tar"
    if tarball.exists():
        os.utime(tarball)  # in use: kept from remove_unused
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    remove_unused("base-*.tar")
    log(f"building the device's Debian root ({SUITE}, Debian's kernel): a few minutes, once")
    tmp = CACHE / f".base-{BASE_KEY}.{os.getpid()}.tar"  # mmdebstrap writes a tarball for a .tar name
    # no mirror named: mmdebstrap takes this machine's apt sources
    run(
        ["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", f"--customize-hook={BASE_HOOK}", SUITE, str(tmp)],
        timeout=1800,
    )
    tmp.rename(tarball)
    return tarball


UNUSED_FOR = 3600.0  # seconds: images of other trees (another package, another base) kept meanwhile


def remove_unused(pattern: str) -> None:
    """Cached images not used for UNUSED_FOR; those of trees being tested beside this one stay."""
    for old in CACHE.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - old.stat().st_mtime <= UNUSED_FOR:
                continue
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()


def hostd_deb(into: Path) -> Path:
    """hostd's Debian package, as the testbed builds and caches it, copied into ``into``."""
    loader = importlib.machinery.SourceFileLoader("testbed_command", str(TESTBED / "testbed"))
    spec = importlib.util.spec_from_loader(loader.name, loader)  # the command is a script without .py
    testbed = importlib.util.module_from_spec(spec)
    loader.exec_module(testbed)
    into.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a testbed built from another tree may replace the cached package meanwhile
        with contextlib.suppress(FileNotFoundError):
            return Path(shutil.copy(testbed.hostd_deb()[0], into))
    raise RuntimeError("the cached hostd package kept disappearing (other trees building theirs)")


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.symlink_to(target)


def lay_down(root: Path) -> None:
    """What the image adds to the Debian root: balenaOS's layout, and the test's reporter."""
    etc, system = root / "etc", root / "etc/systemd/system"
    write(etc / "hostname", "hostd-vm\n")
    write(etc / "timestamp", time.strftime("%Y%m%d%H%M%S\n", time.gmtime()))  # OE's rootfs_update_timestamp
    write(etc / "chrony/chrony.conf", balenaos.CHRONY_CONF)
    # Debian's chrony unit wants /var/log/chrony, which a read-only root cannot make
    write(system / "chrony.service.d/balenaos.conf", "[Service]\nLogsDirectory=\n")
    # NetworkManager, dnsmasq and their DNS plumbing as the testbed device has them, but where the
    # testbed must differ from balenaOS: here the NIC comes up with NetworkManager's automatic profile
    write(etc / "NetworkManager/NetworkManager.conf", NETWORKMANAGER_CONF)
    write(root / "usr/lib/NetworkManager/conf.d/00-balenaos-build-defaults.conf", NETWORKMANAGER_BUILD_DEFAULTS)
    write(etc / "tmpfiles.d/nm-tmpfiles.conf", balenaos.NM_TMPFILES)
    symlink(etc / "resolv.dnsmasq", "/var/run/resolvconf/interface/NetworkManager")
    write(etc / "dnsmasq.conf", balenaos.DNSMASQ_CONF)
    write(etc / "resolv.conf", "nameserver 127.0.0.2\n")
    for unit in ("dnsmasq.service", "balena-net-config.service"):
        write(root / "usr/lib/systemd/system" / unit, balenaos.IMAGE_UNITS[unit][0])
    for name, label in LABELS.items():
        fstype, options = ("vfat", "umask=0022") if name == "boot" else ("ext4", "noatime")
        write(system / f"mnt-{name}.mount", MOUNT_UNIT.format(label=label, name=name, fstype=fstype, options=options))
        symlink(system / f"local-fs.target.wants/mnt-{name}.mount", f"../mnt-{name}.mount")
        (root / "mnt" / name).mkdir(parents=True, exist_ok=True)
    for where, unit in (("/tmp", "tmp.mount"), ("/var/volatile", "var-volatile.mount")):
        write(system / unit, TMPFS_UNIT.format(where=where))
        symlink(system / f"local-fs.target.wants/{unit}", f"../{unit}")
        (root / where.lstrip("/")).mkdir(parents=True, exist_ok=True)
    # balenaOS's image has every path hostd binds from its partitions; a Debian root lacks some
    for path in (*STATE_BIND_PATHS, *DATA_BIND_PATHS):
        target = root / path.lstrip("/")
        if path in FILE_TARGET_MODES:
            if not target.exists():
                write(target, "", FILE_TARGET_MODES[path])
        else:
            target.mkdir(parents=True, exist_ok=True)
    # consoles and timers that a device without a screen, up for two minutes, has no use for
    for unit in (
        "getty@tty1.service",
        "serial-getty@ttyS0.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "dpkg-db-backup.timer",
        "fstrim.timer",
    ):
        symlink(system / unit, "/dev/null")
    write(root / "usr/lib/hostd-vm/report", REPORT_SCRIPT, 0o755)
    write(system / "hostd-vm-report.service", REPORT_UNIT)
    symlink(system / "multi-user.target.wants/hostd-vm-report.service", "../hostd-vm-report.service")


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path
    root: Path  # ext4 image of the read-only root
    build_time: int  # /etc/timestamp, seconds since the epoch


def device_image() -> Image:
    """The device's root filesystem with hostd's package installed, cached per package."""
    packages = CACHE / f".deb.{os.getpid()}"
    deb = hostd_deb(packages)
    # this file lays the image out: a change to it makes a new image
    digest = hashlib.sha256(deb.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]
    cached = CACHE / f"device-{BASE_KEY}-{digest}"
    if not (cached / "root.img").exists():
        base = base_tarball()
        log("laying out the device's root filesystem")
        remove_unused("device-*")
        work = CACHE / f".device.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        root = work / "root"
        root.mkdir(parents=True)
        run(["tar", "-C", str(root), "-xf", str(base)])
        machine = f"hostd-vm-install-{os.getpid()}"
        # as an image build installs it: dpkg inside the root, its maintainer scripts enabling the units
        run(
            [
                "systemd-nspawn", "--quiet", f"--directory={root}", f"--machine={machine}", "--register=no",
                "--keep-unit", "--private-network", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
                "--console=pipe", "--setenv=DEBIAN_FRONTEND=noninteractive", f"--bind-ro={deb}:/tmp/{deb.name}",
                "dpkg", "--install", "--no-triggers", f"/tmp/{deb.name}",
            ],
            timeout=300,
        )  # fmt: skip
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / machine, ignore_errors=True)
        lay_down(root)
        boot = root / "boot"
        shutil.copy(next(boot.glob("vmlinuz-*")), work / "vmlinuz")
        shutil.copy(next(boot.glob("initrd.img-*")), work / "initrd.img")
        size_mib = int(run(["du", "-sm", str(root)]).stdout.split()[0]) * 3 // 2 + 64
        run(["mkfs.ext4", "-q", "-F", "-L", "resin-rootA", "-d", str(root), str(work / "root.img"), f"{size_mib}M"])
        stamp = (root / "etc/timestamp").read_text().strip()
        (work / "build-time").write_text(stamp + "\n")
        shutil.rmtree(root)
        work.rename(cached)
    shutil.rmtree(packages)
    os.utime(cached)
    stamp = (cached / "build-time").read_text().strip()
    build_time = calendar.timegm(time.strptime(stamp, "%Y%m%d%H%M%S"))
    return Image(cached / "vmlinuz", cached / "initrd.img", cached / "root.img", build_time)


def partition(directory: Path, name: str, out: Path) -> Path:
    """A partition image of ``directory``'s content (FAT for boot, ext4 otherwise)."""
    image = out / f"{name}.img"
    if name == "boot":
        run(["mkfs.vfat", "-C", "-n", LABELS[name], str(image), str(PARTITION_MIB[name] * 1024)])
        entries = [str(p) for p in directory.iterdir()]
        if entries:
            run(["mcopy", "-s", "-i", str(image), *entries, "::/"])
    else:
        mib = PARTITION_MIB[name]
        run(["mkfs.ext4", "-q", "-F", "-L", LABELS[name], "-d", str(directory), str(image), f"{mib}M"])
    return image


KVM_SIGN_OF_LIFE_SECONDS = 30  # the kernel's first console line; it comes in well under 1 s with KVM


def kvm_verdict() -> Path:
    """Where a KVM that did not boot the kernel is remembered, per host kernel (nested KVM under
    some hypervisors accepts the VM and then never gets the guest kernel past its boot stub)."""
    return CACHE / f"kvm-does-not-boot-{os.uname().release}"


def accelerators() -> list[str]:
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK) and not kvm_verdict().exists()
    return ["kvm", "tcg"] if usable else ["tcg"]


def run_qemu(cmd: list[str], console: Path, accel: str, timeout: float) -> bool:
    """Run qemu until the device powers off; False when KVM showed no sign of life (try TCG)."""
    console.unlink(missing_ok=True)
    started = time.monotonic()
    with subprocess.Popen([*cmd, "-accel", accel], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as qemu:
        while qemu.poll() is None:
            elapsed = time.monotonic() - started
            alive = console.exists() and b"Linux version" in console.read_bytes()[:65536]
            if (accel == "kvm" and elapsed > KVM_SIGN_OF_LIFE_SECONDS and not alive) or elapsed > timeout:
                qemu.kill()
                qemu.wait()
                if accel == "kvm" and not alive:
                    kvm_verdict().write_text(f"no kernel output after {elapsed:.0f} s with -accel kvm\n")
                    log(f"KVM did not boot the kernel in {elapsed:.0f} s: TCG from now on ({kvm_verdict()})")
                    return False
                tail = console.read_text(errors="replace")[-3000:] if console.exists() else ""
                raise RuntimeError(f"the VM did not power off in {timeout:.0f} s\n--- console (tail) ---\n{tail}")
            time.sleep(0.5)
        output = qemu.stdout.read() if qemu.stdout else ""
    if qemu.returncode != 0:
        raise RuntimeError(f"qemu failed ({qemu.returncode}): {output}")
    return True


def netdev(https_port: int | None) -> str:
    """qemu's user-mode network: DHCP from qemu (10.0.2.15 for the device), nothing beyond qemu
    reachable (restrict=on: no NTP server) but the test's HTTPS server, if any, at SERVER:443, one
    socat per connection to it."""
    forward = f",guestfwd=tcp:{SERVER}:443-cmd:socat - TCP:127.0.0.1:{https_port}" if https_port else ""
    return f"user,id=net,restrict=on{forward}"


@dataclass
class Boot:
    report: dict[str, list[str]]  # key -> values, in order
    console: str
    seconds: float
    state_image: Path

    def one(self, key: str) -> str:
        return self.report[key][0]

    def state_file(self, path: str) -> str:
        """A file on the state partition after the device powered off (read without mounting)."""
        return self.state_bytes(path).decode()

    def state_bytes(self, path: str) -> bytes:
        return run(["debugfs", "-R", f"cat {path}", str(self.state_image)], text=False).stdout


def boot(
    image: Image,
    out: Path,
    rtc: str,
    state: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    boot_files: dict[str, str] | None = None,
    https_port: int | None = None,
    awaited: str = "",
    timeout: float = 600,
) -> Boot:
    """Boot the device once with its RTC at ``rtc`` (qemu's -rtc base=, UTC) until it powers off.

    ``state``, ``data`` and ``boot_files``: relative path -> content on the state, data and boot
    partitions.
    ``https_port``: a port on this machine's 127.0.0.1 the device reaches as ``SERVER`` port 443
    (its only destination).  ``awaited``: a pattern (no spaces) the report waits for in hostd's
    journal, at most AWAIT_SECONDS."""
    if not AWAITABLE.fullmatch(awaited):
        raise ValueError(f"{awaited!r}: the kernel command line carries it, so no spaces or quotes")
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    with tempfile.TemporaryDirectory(dir=out) as staging:
        partitions = (("boot", boot_files or {"config.json": "{}\n"}), ("state", state or {}), ("data", data or {}))
        for name, files in partitions:
            content = Path(staging) / name
            content.mkdir()
            for rel, text in files.items():
                write(content / rel, text)
            images[name] = partition(content, name, out)
    console, report = out / "console.log", out / "report.log"
    cmd = [
        "qemu-system-x86_64", "-m", "512", "-smp", "1", "-nodefaults", "-no-reboot",
        "-display", "none", "-monitor", "none",
        "-netdev", netdev(https_port), "-device", "virtio-net-pci,netdev=net,romfile=",
        "-rtc", f"base={rtc}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"root=/dev/vda ro console=ttyS0 panic=-1 systemd.show_status=0 hostd_vm.await={awaited}",
        "-drive", f"file={image.root},format=raw,if=virtio,readonly=on",
        *(a for name in ("boot", "state", "data") for a in ("-drive", f"file={images[name]},format=raw,if=virtio")),
        "-serial", f"file:{console}", "-serial", f"file:{report}",
    ]  # fmt: skip
    started = time.monotonic()
    for accel in accelerators():
        if run_qemu(cmd, console, accel, timeout):
            break
    seconds = time.monotonic() - started
    log(f"{out.name}: booted, reported and powered off in {seconds:.0f} s ({accel})")
    values: dict[str, list[str]] = {}
    text = report.read_text(errors="replace")
    if REPORT_END not in text:
        raise RuntimeError(f"no report from the device:\n{console.read_text(errors='replace')[-3000:]}")
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    return Boot(values, console.read_text(errors="replace"), seconds, images["state"])


def record(result: Boot) -> dict[str, object]:
    return json.loads(result.one("record"))
