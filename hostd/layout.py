"""Where things live on a device, under a root directory (``/`` on a device, a temp dir in tests).

The paths are balenaOS's own, so existing boot partitions work unchanged.  Files that services
read at boot and that need not survive a reboot live under ``/run``: nothing is rewritten on
flash at every boot.

Paths are plain strings, handled with ``os`` and ``os.path`` throughout the engine: pathlib (with
the fnmatch, urllib.parse and ipaddress it imports) would cost the boot stage the network waits
for (hostd.prepare) several milliseconds.
"""

from __future__ import annotations

import os

from hostd.record import Record


def is_within(path: str, directory: str) -> bool:
    """Is ``path`` ``directory`` or inside it, by name (both absolute and normalized)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


class Layout(Record):
    __slots__ = ("boot_dir", "root")

    def __init__(self, root: str | os.PathLike[str] = "/", boot_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = os.path.normpath(os.fspath(root))
        # Where the inputs come from when not the boot partition: a saved generation being restored.
        self.boot_dir = None if boot_dir is None else os.path.normpath(os.fspath(boot_dir))

    def path(self, device_path: str) -> str:
        """The host path of an absolute device path."""
        return os.path.join(self.root, device_path.lstrip("/"))

    def device_path(self, host_path: str) -> str:
        """The device path of a host path under the root (for reports)."""
        relative = os.path.relpath(host_path, self.root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise ValueError(f"{host_path} is not under {self.root}")
        return "/" if relative == os.curdir else "/" + relative

    def symlink_in(self, path: str) -> str | None:
        """The first of ``path`` and its parents below the root that is a symbolic link, or None.

        hostd neither reads its inputs nor writes its targets through one: under a root other
        than ``/``, an absolute link (an image's ``/etc/...``) would lead to the host's files.
        """
        current = self.root
        for part in self.device_path(path).split("/"):
            if part:
                current = os.path.join(current, part)
                if os.path.islink(current):
                    return current
        return None

    @property
    def is_live(self) -> bool:
        """True when the root is the running system: only then may hostd touch processes or mounts."""
        return os.path.realpath(self.root) == "/"

    # boot partition (FAT, user-editable)
    @property
    def boot(self) -> str:
        return self.boot_dir or self.path("/mnt/boot")

    @property
    def config_json(self) -> str:
        return os.path.join(self.boot, "config.json")

    @property
    def boot_connections(self) -> str:
        return os.path.join(self.boot, "system-connections")

    @property
    def boot_dispatcher(self) -> str:
        return os.path.join(self.boot, "dispatcher.d")

    @property
    def boot_proxy(self) -> str:
        return os.path.join(self.boot, "system-proxy")

    # state partition (persistent, small) and data partition (persistent, large)
    @property
    def state(self) -> str:
        return self.path("/mnt/state")

    @property
    def data(self) -> str:
        return self.path("/mnt/data")

    @property
    def hostd_state(self) -> str:
        """hostd's own persistent state: last-known-good config, import manifests."""
        return os.path.join(self.state, "hostd")

    @property
    def last_known_good(self) -> str:
        return os.path.join(self.hostd_state, "config.json")

    @property
    def trial_record(self) -> str:
        """A safe-apply trial in progress (hostd.transaction.TrialRecord), until its verdict."""
        return os.path.join(self.hostd_state, "trial.json")

    @property
    def saved_dnsmasq_servers(self) -> str:
        """dnsServers as dnsmasq lines, copied to /run/dnsmasq.servers at boot by tmpfiles (before
        dnsmasq, hostd or not): a device whose hostd fails still has upstreams to be reached by."""
        return os.path.join(self.hostd_state, "dnsmasq.servers")

    @property
    def saved_clock(self) -> str:
        """The time last saved (seconds since the epoch): the clock's floor at the next boot."""
        return os.path.join(self.hostd_state, "clock")

    @property
    def build_timestamp(self) -> str:
        """The image's build time, YYYYMMDDhhmmss UTC, as OpenEmbedded writes it."""
        return self.path("/etc/timestamp")

    @property
    def clock_bootstrap_record(self) -> str:
        """What the clock stood on after hostd-clock raised it at boot, and the clock before and after."""
        return self.path("/run/hostd/clock-bootstrap.json")

    # targets on the root filesystem
    @property
    def etc_hostname(self) -> str:
        return self.path("/etc/hostname")

    @property
    def nm_connections(self) -> str:
        return self.path("/etc/NetworkManager/system-connections")

    @property
    def nm_dispatcher(self) -> str:
        return self.path("/etc/NetworkManager/dispatcher.d")

    @property
    def udev_rules(self) -> str:
        return self.path("/etc/udev/rules.d")

    @property
    def authorized_keys(self) -> str:
        return self.path("/home/root/.ssh/authorized_keys_local")

    @property
    def journald_defaults(self) -> str:
        """What journald runs with until hostd has read config.json (shipped: units/conf)."""
        return self.path("/usr/lib/systemd/journald.conf.d/50-hostd-defaults.conf")

    # runtime drop-ins (tmpfs)
    @property
    def journald_dropin(self) -> str:
        return self.path("/run/systemd/journald.conf.d/hostd.conf")

    @property
    def nm_dropin(self) -> str:
        return self.path("/run/NetworkManager/conf.d/hostd.conf")

    @property
    def chrony_sources(self) -> str:
        # The sourcedir of balenaOS's chrony.conf, which has no confdir (a drop-in is never read).
        # Debian's unit empties it when chronyd stops: hostd, which follows the unit, writes it
        # again when chronyd runs again.
        return self.path("/run/chrony/hostd.sources")

    @property
    def dnsmasq_servers(self) -> str:
        return self.path("/run/dnsmasq.servers")

    @property
    def modprobe_dropin(self) -> str:
        # kmod reads /run/modprobe.d: a Wi-Fi stack loaded after hostd (a USB dongle) starts in the domain.
        return self.path("/run/modprobe.d/hostd.conf")

    @property
    def devmode_env(self) -> str:
        """balenaOS's development flag, also the environment of the development-feature units."""
        return self.path("/var/volatile/development-features")

    @property
    def network_inputs_generation(self) -> str:
        """The generation whose network inputs hostd.prepare wrote at this boot (tmpfs: one boot's)."""
        return self.path("/run/hostd/network-inputs.generation")

    @property
    def time_probe_request(self) -> str:
        """What the HTTPS time probe (hostd-time-probe.service) is to ask, 0600 (the URL may carry a credential)."""
        return self.path("/run/hostd/time-probe-request.json")

    @property
    def time_probe_result(self) -> str:
        """What the HTTPS time probe found (hostd.timeprobe)."""
        return self.path("/run/hostd/time-probe.json")

    @property
    def redsocks_conf(self) -> str:
        """What hostd-redsocks.service runs with (0600: it may hold the proxy's credentials)."""
        return self.path("/run/hostd/proxy/redsocks.conf")

    @property
    def proxy_rules(self) -> str:
        """The nftables table that redirects to redsocks, as ``nft -f`` loads it."""
        return self.path("/run/hostd/proxy/rules.nft")
