"""The one table of config.json keys hostd owns, and the forms their values may take.

Each key: its dotted name (how the rest of hostd names it), its JSON pointer, the `Config`
attribute holding its validated value, the steps that read it, whether a change to it can cut
the device off its network (such a change goes through safe apply), whether its value can carry
a secret (never echoed in errors, logs or the API), the form its value takes, its default, and
its effect.  Validation (hostd.config), the model and the README's key table all come from here.

Value forms follow what balena's tools write and read: balenaOS's scripts read values with
`jq -r`, and the supervisor reads its settings "permissively" (io-ts PermissiveBoolean /
PermissiveNumber), so `"300"` means 300 and `"true"`, `"on"` or `"1"` mean true.  `null`, the
string `"null"` (what `jq -r` prints for null) and `""` mean "not set" for every key, except
`dnsServers`, where balenaOS takes `"null"` and `""` to mean "no servers".
"""

from __future__ import annotations

import json
import re

from hostd.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "not set": the key's default applies


class Invalid(ValueError):
    """A value not of its key's form.  ``problems``: (pointer below the key's, offending value, what
    it is not), e.g. ("/1", "not-an-ip", "is not an IPv4 or IPv6 address") for an array's item."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        super().__init__("; ".join(problem for _, _, problem in problems))
        self.problems = problems


def _invalid(value: Any, problem: str, at: str = "") -> Invalid:
    return Invalid([(at, value, problem)])


class Adjusted(Record):
    """A value used in the nearest valid form (``why`` is shown as a warning naming both)."""

    __slots__ = ("value", "why")

    def __init__(self, value: Any, why: str) -> None:
        self.value = value
        self.why = why


def _as_array(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class Form(Record):
    __slots__ = ("empty", "parse", "text", "to_json")

    def __init__(
        self,
        text: str,
        parse: Callable[[Any], Any],
        empty: Any = UNSET,
        to_json: Callable[[Any], Any] = _as_array,
    ) -> None:
        self.text = text  # the README's "type" column
        self.parse = parse  # a present JSON value -> the model value (or Adjusted); raises Invalid
        self.empty = empty  # what `""` and `"null"` mean
        self.to_json = to_json  # the model value back in a form ``parse`` takes (a tuple as an array)


# ---------------------------------------------------------------------------------------------
# the forms

# The supervisor's booleanish strings (lib/validation.ts checkTruthy/checkFalsey), in any case.
_TRUE = frozenset({"true", "on", "1"})
_FALSE = frozenset({"false", "off", "0"})
# Patterns, compiled at their first use by re's own cache (not at import: the network waits for
# the boot stage that imports this table, and most values are never checked against most patterns).
_WHOLE = r"^[+-]?[0-9]{1,18}(\.0*)?\Z"  # "300", "300.0": what jq -r prints for 300
_SIZE = r"^([0-9]+)([KMGT]?)\Z"
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# \Z, not $: $ also matches before a final newline, and "kitchen\n" is not a hostname.
_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
_LABEL_RULE = "1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
_NOT_IN_LABEL = r"[^a-z0-9]+"
_UUID = r"^[0-9a-f]{32}\Z|^[0-9a-f]{62}\Z"
_URI = r"^https?://[^\s/]+[^\s]*\Z"
_UDEV_RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}\Z"
# ISO 3166-1 alpha-2, or "00": the world regulatory domain (what cfg80211 starts from).
_COUNTRY = r"^(?:[A-Za-z]{2}|00)\Z"
_SSH_KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(value, "is not a string")
    return value


def _has_lone_surrogate(text: str) -> bool:
    # JSON allows "\ud800"; such a string cannot be written as UTF-8.
    return any("\ud800" <= char <= "\udfff" for char in text)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().lower()
    elif isinstance(value, int):  # 1 and 0 are booleanish for the supervisor too
        folded = str(value)
    else:
        raise _invalid(value, "is not true or false")
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise _invalid(value, "is not true or false")


FLAG = Form('bool (or `"true"`/`"false"`, `"on"`/`"off"`, `"1"`/`"0"`)', _flag)


def whole_number(low: int, high: int, unit: str) -> Form:
    def parse(value: Any) -> int:
        if isinstance(value, bool):  # bool is an int in Python; true is not 1 second
            raise _invalid(value, f"is not a whole number of {unit}")
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.match(_WHOLE, value.strip()):
            number = int(value.strip().split(".")[0])
        else:
            raise _invalid(value, f"is not a whole number of {unit}")
        if not low <= number <= high:
            raise _invalid(value, f"is outside {low}..{high} {unit}")
        return number

    return Form(f'int {unit}, {low}..{high} (or a string: `"{high}"`)', parse)


def size_in_bytes(size: str) -> int:
    match = re.match(_SIZE, size)
    if not match:
        raise ValueError(size)
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def size(low: str, high: str) -> Form:
    low_bytes, high_bytes = size_in_bytes(low), size_in_bytes(high)

    def parse(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)  # bytes, as journald takes them
        elif isinstance(value, str):
            text = value.strip().upper()
        else:
            raise _invalid(value, 'is not a size such as "16M"')
        try:
            count = size_in_bytes(text)
        except ValueError:
            raise _invalid(value, 'is not a size such as "16M", "512M" or "1G"') from None
        if not low_bytes <= count <= high_bytes:
            raise _invalid(value, f"is outside {low}..{high}")
        return text

    # journald raises anything under 1M to 1M (journal-file.c): a smaller value would not be what it runs.
    return Form(f"size, `{low}`…`{high}` (K/M/G/T suffix, any case; or a number of bytes)", parse)


def choice(*options: str) -> Form:
    def parse(value: Any) -> str:
        folded = _string(value).strip().lower()
        if folded not in options:
            raise _invalid(value, f"is not one of {', '.join(options)}")
        return folded

    return Form(" or ".join(f'`"{option}"`' for option in options), parse)


def is_ip(text: str) -> bool:
    # ip_address() takes any IPv6 scope id ("fe80::1%a\nserver=x"): only an interface name will do.
    if not (text.isascii() and text.isprintable()) or " " in text:
        return False
    import ipaddress  # only when config.json sets a server list

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_hostname_label(name: str) -> bool:
    return bool(re.match(_LABEL, name))


def is_fqdn(name: str) -> bool:
    labels = name.rstrip(".").lower().split(".")
    return len(name) <= 253 and all(re.match(_LABEL, label) for label in labels)


def server_list(
    valid: Callable[[str], bool], what: str, plural: str, *, empty: Any = UNSET, fold: bool = False
) -> Form:
    """balenaOS's server lists: a space-separated string, or (hostd) an array of strings."""

    def parse(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            items = [("", item) for item in value.split()]
        elif isinstance(value, list):
            items = [(f"/{index}", item) for index, item in enumerate(value)]
        else:
            raise _invalid(value, "is not a space-separated string or an array of strings")
        problems = []
        for at, item in items:
            if not isinstance(item, str):
                problems.append((at, item, "is not a string"))
            elif not valid(item):
                problems.append((at, item, f"is not {what}"))
        if problems:
            raise Invalid(problems)
        servers = (item.lower() if fold else item for _, item in items)
        return tuple(dict.fromkeys(servers))  # keep order, drop repeats

    return Form(f"space-separated string or array of {plural}", parse, empty)


def _uuid(value: Any) -> str:
    if not re.match(_UUID, _string(value)):
        raise _invalid(value, "is not a 32- or 62-character lowercase hex uuid")
    return value


def _hostname(value: Any) -> str | Adjusted:
    text = _string(value)
    folded = text.lower()
    if is_hostname_label(folded):
        return folded
    # balenaOS set any name as is; hostnamed and Avahi take only a label: the nearest one is used.
    if text.isascii() and text.isprintable():
        nearest = re.sub(_NOT_IN_LABEL, "-", folded).strip("-")[:63].rstrip("-")
        if is_hostname_label(nearest):
            return Adjusted(nearest, f"{text!r} is used as {nearest!r}: a hostname is {_LABEL_RULE}")
    raise _invalid(value, f"is not a valid hostname ({_LABEL_RULE})")


def ssh_key_problem(line: str) -> str | None:
    """Why ``line`` is not an OpenSSH authorized_keys line, or None when it is one."""
    if "\n" in line or "\r" in line:
        return "contains a line break"
    if _has_lone_surrogate(line):
        return "is not valid Unicode (a lone surrogate)"
    import base64  # only when config.json sets SSH keys
    import binascii
    import shlex

    try:
        tokens = shlex.split(line, posix=True)
    except ValueError:
        return "has unbalanced quotes"
    # An options prefix (from="...",command="...") may come before the key type.
    for index, token in enumerate(tokens[:2]):
        if token in _SSH_KEY_TYPES:
            if index + 1 >= len(tokens):
                return "has no key data after the key type"
            try:
                blob = base64.b64decode(tokens[index + 1], validate=True)
            except (binascii.Error, ValueError):
                return "key data is not base64"
            if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != token.encode():
                return "key data does not match its key type"
            return None
    return "does not name a known key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-*, ...)"


def _ssh_keys(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _invalid(value, "is not an array of strings")
    problems = []
    for index, line in enumerate(value):
        if not isinstance(line, str):
            problems.append((f"/{index}", line, "is not a string"))
        elif problem := ssh_key_problem(line.strip()):
            problems.append((f"/{index}", line, f"is not an OpenSSH public key: {problem}"))
    if problems:
        raise Invalid(problems)
    return tuple(line.strip() for line in value)


def _uri(value: Any) -> str:
    if not (re.match(_URI, _string(value)) and value.isprintable()):
        raise _invalid(value, "is not an http:// or https:// URI")
    return value


def _response(value: Any) -> str:
    if not _string(value).isprintable():
        raise _invalid(value, "contains a line break or another control character")
    return value


def _udev_rules(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _invalid(value, "is not an object of rule name -> rule text")
    problems = []
    for name, text in value.items():
        at = "/" + name.replace("~", "~0").replace("/", "~1")
        if not re.match(_UDEV_RULE_NAME, name):
            problems.append((at, name, "is not a plain file name for a udev rule"))
        elif not isinstance(text, str):
            problems.append((at, text, "is not a string"))
        elif _has_lone_surrogate(text):
            problems.append((at, text, "is not valid Unicode (a lone surrogate)"))
    if problems:
        raise Invalid(problems)
    return tuple(sorted(value.items()))


def _country(value: Any) -> str:
    if not re.match(_COUNTRY, _string(value)):
        raise _invalid(value, 'is not an ISO 3166-1 alpha-2 country code such as "GB" (or "00")')
    return value.upper()


def root_ca_pem(value: str) -> str:
    """balenaRootCA's certificates, as PEM text (the model keeps config.json's base64)."""
    import base64  # only when config.json sets a root CA

    return base64.b64decode(value, validate=True).decode("ascii")


def _root_ca(value: Any) -> str:
    import binascii

    text = _string(value).strip()
    try:
        pem = root_ca_pem(text)
    except (binascii.Error, ValueError):
        raise _invalid(value, "is not base64 of PEM text") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise _invalid(value, "holds no PEM certificate")
    return text


def _host_name(value: Any) -> str:
    if not is_fqdn(_string(value)):
        raise _invalid(value, "is not a host name")
    return value.lower().rstrip(".")


# ---------------------------------------------------------------------------------------------
# defaults drawn from another key


def _api_host(document: Mapping[str, Any]) -> str | None:
    api = document.get("apiEndpoint")
    if not isinstance(api, str):
        return None
    host = re.sub(r"^https?://", "", api).split("/")[0].split(":")[0]
    return host.lower() if is_fqdn(host) else None


def _connectivity_check_of_api(document: Mapping[str, Any]) -> str | None:
    api = document.get("apiEndpoint")
    if isinstance(api, str) and re.match(_URI, api) and api.isprintable():
        return api.rstrip("/") + "/connectivity-check"
    return None


# ---------------------------------------------------------------------------------------------
# the table


class Key(Record):
    __slots__ = ("attribute", "default", "default_text", "derive", "effect", "form", "name", "risky", "secret", "steps")

    def __init__(
        self,
        name: str,
        attribute: str,
        steps: tuple[str, ...],
        risky: bool = False,
        secret: bool = False,
        *,
        form: Form,
        default: Any = None,
        derive: Callable[[Mapping[str, Any]], Any] | None = None,
        default_text: str = "",
        effect: str,
    ) -> None:
        self.name = name  # dotted: "os.dns.mode"
        self.attribute = attribute  # Config attribute
        self.steps = steps  # steps that read it
        self.risky = risky  # can cut the device off: applied through safe apply
        self.secret = secret  # may carry a credential: never echoed
        self.form = form
        self.default = default  # the model value when not set
        self.derive = derive  # default from other keys
        self.default_text = default_text  # the README's "default" column, when not just `default`
        self.effect = effect  # the README's "effect" column

    @property
    def pointer(self) -> str:
        """RFC 6901 JSON pointer ("/os/dns/mode")."""
        return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in self.name.split("."))

    @property
    def default_column(self) -> str:
        if self.default_text:
            return self.default_text
        if self.default in ((), None):
            return "none"
        return f"`{json.dumps(self.form.to_json(self.default))}`"

    def default_for(self, document: Mapping[str, Any]) -> Any:
        """The value when config.json does not set the key (or sets it to something unusable)."""
        if self.derive is not None and (derived := self.derive(document)) is not None:
            return derived
        return self.default


TABLE: tuple[Key, ...] = (
    Key(
        "uuid",
        "uuid",
        ("identity", "hostname"),
        form=Form("32 (or 62) lowercase hex chars", _uuid),
        default_text="generated and written back power-safely",
        effect="device identity",
    ),
    # A new name changes only what the device answers to over mDNS (<name>.local); its address,
    # routes and resolver stay as they are, so it cannot cut the device off: applied at once.
    Key(
        "hostname",
        "hostname",
        ("hostname",),
        form=Form(
            "RFC 1123 label, folded to lowercase; another ASCII name is used as the nearest label "
            "(`my_device` as `my-device`, with a warning)",
            _hostname,
        ),
        default_text="first 7 chars of `uuid`",
        effect="static hostname, `<name>.local` over Avahi",
    ),
    Key(
        "persistentLogging",
        "persistent_logging",
        ("logging",),
        form=FLAG,
        default=False,
        effect="journal on the data partition",
    ),
    Key(
        "os.journal.runtimeMaxUse",
        "runtime_max_use",
        ("logging",),
        form=size("1M", "64G"),
        default="8M",
        effect="journald RuntimeMaxUse",
    ),
    Key(
        "os.journal.systemMaxUse",
        "system_max_use",
        ("logging",),
        form=size("1M", "64G"),
        default="32M",
        effect="journald SystemMaxUse when persistent",
    ),
    Key(
        "dnsServers",
        "dns_servers",
        ("dns",),
        risky=True,
        form=server_list(is_ip, "an IPv4 or IPv6 address", "IPs", empty=()),
        default=("8.8.8.8",),
        default_text='`"8.8.8.8"` when absent or `null`; `"null"` or `""` = none',
        effect="dnsmasq upstreams",
    ),
    Key(
        "os.dns.mode",
        "dns_mode",
        ("dns",),
        risky=True,
        form=choice("append", "exclusive"),
        default="append",
        effect="append: after the network's servers; exclusive: only these",
    ),
    Key(
        "ntpServers",
        "ntp_servers",
        ("ntp",),
        risky=True,
        form=server_list(
            lambda server: is_ip(server) or is_fqdn(server), "a host name or an IP address", "host names/IPs", fold=True
        ),
        default=(),
        effect="`pool X iburst` in chrony's sourcedir",
    ),
    Key(
        "os.ntp.mode",
        "ntp_mode",
        ("ntp",),
        risky=True,
        form=choice("append", "exclusive"),
        default="append",
        effect="append: the network's (DHCP) NTP servers are chrony sources beside these; exclusive: only these",
    ),
    Key(
        "developmentMode",
        "development_mode",
        ("devmode",),
        form=FLAG,
        default=False,
        effect="development features (root SSH without password, engine on tcp 2375, getty)",
    ),
    Key(
        "os.sshKeys",
        "ssh_keys",
        ("ssh", "devmode"),  # with keys, development mode requires them (its sshd options)
        form=Form("array of OpenSSH public key lines", _ssh_keys),
        default=(),
        effect="authorized_keys_local",
    ),
    Key(
        "os.network.connectivity.uri",
        "connectivity_uri",
        ("network-config",),
        risky=True,
        secret=True,
        form=Form("http(s) URI", _uri),
        derive=_connectivity_check_of_api,
        default_text="`<apiEndpoint>/connectivity-check` when `apiEndpoint` is set",
        effect="NetworkManager connectivity check",
    ),
    Key(
        "os.network.connectivity.interval",
        "connectivity_interval",
        ("network-config",),
        risky=True,
        form=whole_number(0, 7 * 24 * 3600, "seconds"),
        default=3600,
        effect="check interval (`0`: no check)",
    ),
    Key(
        "os.network.connectivity.response",
        "connectivity_response",
        ("network-config",),
        risky=True,
        form=Form("string (one line)", _response),
        default_text="NetworkManager's default",
        effect="expected response",
    ),
    Key(
        "os.network.wifi.randomMacAddressScan",
        "wifi_random_mac_scan",
        ("network-config",),
        risky=True,
        form=FLAG,
        default_text="absent = NetworkManager's default",
        effect="`wifi.scan-rand-mac-address`",
    ),
    Key(
        "os.udevRules",
        "udev_rules",
        ("udev",),
        form=Form("object: name -> rule text", _udev_rules, to_json=dict),
        default=(),
        effect="`/etc/udev/rules.d/<name>.rules`",
    ),
    # A Wi-Fi domain without the access point's channels cuts the device off.
    Key(
        "country",
        "country",
        ("regulatory-domain",),
        risky=True,
        form=Form('ISO 3166-1 alpha-2 (`"GB"`, any case) or `"00"` (world)', _country),
        default_text="none (the kernel's default)",
        effect="Wi-Fi regulatory domain: set live over nl80211 (as `iw reg set`) and as cfg80211's module option; "
        "removing it returns to `00`",
    ),
    # balenaOS adds it to the device's trust store (openBalena, a private API's CA).
    Key(
        "balenaRootCA",
        "root_ca",
        (),
        form=Form("base64 of PEM certificates", _root_ca),
        default_text="none (the system's CAs only)",
        effect="also trusted by the HTTPS time probe",
    ),
    Key(
        "os.safeApply.timeout",
        "safe_apply_timeout",
        (),
        form=whole_number(5, 3600, "seconds"),
        default=60,
        effect="how long a risky change is probed before it is rolled back",
    ),
    Key(
        "os.safeApply.probeName",
        "probe_name",
        (),
        form=Form("host name", _host_name),
        derive=_api_host,
        default_text="host of `apiEndpoint`, else no DNS probe",
        effect="the name the probe resolves through dnsmasq",
    ),
)

BY_NAME: dict[str, Key] = {key.name: key for key in TABLE}
RISKY: frozenset[str] = frozenset(key.name for key in TABLE if key.risky)
SECRET: frozenset[str] = frozenset(key.name for key in TABLE if key.secret)


def read_by(step: str) -> frozenset[str]:
    """The keys a step reads: a change to one of them re-runs the step."""
    return frozenset(key.name for key in TABLE if step in key.steps)


def readme_table() -> str:
    """The README's table of keys (tests/unit/test_keys.py holds the README to it)."""
    rows = ["| key | type | default | effect | safe apply |", "|---|---|---|---|---|"]
    for key in TABLE:
        probed = "probed" if key.risky else ""
        rows.append(f"| `{key.name}` | {key.form.text} | {key.default_column} | {key.effect} | {probed} |")
    return "\n".join(rows) + "\n"
