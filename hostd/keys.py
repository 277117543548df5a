"""The one table of config.json keys hostd owns.

Each key: its dotted name (how the rest of hostd names it), its JSON pointer, the `Config`
attribute holding its validated value, the steps that read it, whether a change to it can cut
the device off its network (such a change goes through safe apply), and whether its value can
carry a secret (never echoed in errors, logs or the API).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    name: str  # dotted: "os.dns.mode"
    attribute: str  # Config attribute
    steps: tuple[str, ...]  # steps that read it
    risky: bool = False  # can cut the device off: applied through safe apply
    secret: bool = False  # may carry a credential: never echoed

    @property
    def pointer(self) -> str:
        """RFC 6901 JSON pointer ("/os/dns/mode")."""
        return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in self.name.split("."))


TABLE: tuple[Key, ...] = (
    Key("uuid", "uuid", ("identity", "hostname")),
    # A new name changes what the device answers to (<name>.local): judged like a network change.
    Key("hostname", "hostname", ("hostname",), risky=True),
    Key("persistentLogging", "persistent_logging", ("logging",)),
    Key("os.journal.runtimeMaxUse", "runtime_max_use", ("logging",)),
    Key("os.journal.systemMaxUse", "system_max_use", ("logging",)),
    Key("dnsServers", "dns_servers", ("dns",), risky=True),
    Key("os.dns.mode", "dns_mode", ("dns",), risky=True),
    Key("ntpServers", "ntp_servers", ("ntp",), risky=True),
    Key("developmentMode", "development_mode", ("devmode",)),
    Key("os.sshKeys", "ssh_keys", ("ssh",)),
    Key("os.network.connectivity.uri", "connectivity_uri", ("network-config",), risky=True, secret=True),
    Key("os.network.connectivity.interval", "connectivity_interval", ("network-config",), risky=True),
    Key("os.network.connectivity.response", "connectivity_response", ("network-config",), risky=True),
    Key("os.network.wifi.randomMacAddressScan", "wifi_random_mac_scan", ("network-config",), risky=True),
    Key("os.udevRules", "udev_rules", ("udev",)),
    # A Wi-Fi domain without the access point's channels cuts the device off.
    Key("country", "country", ("regulatory-domain",), risky=True),
    Key("os.safeApply.timeout", "safe_apply_timeout", ()),
    Key("os.safeApply.probeName", "probe_name", ()),
)

BY_NAME: dict[str, Key] = {key.name: key for key in TABLE}
RISKY: frozenset[str] = frozenset(key.name for key in TABLE if key.risky)
SECRET: frozenset[str] = frozenset(key.name for key in TABLE if key.secret)


def read_by(step: str) -> frozenset[str]:
    """The keys a step reads: a change to one of them re-runs the step."""
    return frozenset(key.name for key in TABLE if step in key.steps)
