"""config.json -> an immutable, validated model.

Every key hostd owns is validated and all problems are reported at once, each with the JSON
pointer of the value and a message naming it.  Keys hostd does not own are never touched.
A file that cannot be used falls back to the last-known-good copy kept on the state partition;
config.json itself is then left exactly as it is.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hostd import fsutil
from hostd.layout import Layout

MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_DNS_SERVERS = ("8.8.8.8",)
DEFAULT_RUNTIME_MAX_USE = "8M"
DEFAULT_SYSTEM_MAX_USE = "32M"
DEFAULT_CONNECTIVITY_INTERVAL = 3600
DNS_MODES = ("append", "exclusive")
DEFAULT_SAFE_APPLY_TIMEOUT = 60

# \Z, not $: $ also matches before a final newline, and "kitchen\n" is not a hostname.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_UUID = re.compile(r"^[0-9a-f]{32}\Z|^[0-9a-f]{62}\Z")
_SIZE = re.compile(r"^([0-9]+)([KMGT]?)\Z")
_URI = re.compile(r"^https?://[^\s/]+[^\s]*\Z")
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
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
_UDEV_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}\Z")
# ISO 3166-1 alpha-2, or "00": the world regulatory domain (what cfg80211 starts from).
_COUNTRY = re.compile(r"^(?:[A-Za-z]{2}|00)\Z")


@dataclass(frozen=True)
class ConfigIssue:
    pointer: str  # RFC 6901 JSON pointer of the offending value ("" for the whole document)
    message: str

    def __str__(self) -> str:
        return _printable(f"{self.pointer or '/'}: {self.message}")


class ConfigError(Exception):
    """config.json cannot be used; ``issues`` lists every problem found."""

    def __init__(self, path: Path | str, issues: list[ConfigIssue]) -> None:
        self.path = str(path)
        self.issues = issues
        super().__init__("\n".join(_printable(f"{self.path}: {issue}") for issue in issues))


def _printable(text: str) -> str:
    """``text`` with lone surrogates (JSON allows "\\ud800" in keys and values) escaped: it can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Config:
    """The host-setup part of config.json, validated.  Field metadata names the JSON key."""

    uuid: str | None = field(default=None, metadata={"key": "uuid"})
    hostname: str | None = field(default=None, metadata={"key": "hostname"})
    persistent_logging: bool = field(default=False, metadata={"key": "persistentLogging"})
    runtime_max_use: str = field(default=DEFAULT_RUNTIME_MAX_USE, metadata={"key": "os.journal.runtimeMaxUse"})
    system_max_use: str = field(default=DEFAULT_SYSTEM_MAX_USE, metadata={"key": "os.journal.systemMaxUse"})
    dns_servers: tuple[str, ...] = field(default=DEFAULT_DNS_SERVERS, metadata={"key": "dnsServers"})
    dns_mode: str = field(default="append", metadata={"key": "os.dns.mode"})
    ntp_servers: tuple[str, ...] = field(default=(), metadata={"key": "ntpServers"})
    development_mode: bool = field(default=False, metadata={"key": "developmentMode"})
    ssh_keys: tuple[str, ...] = field(default=(), metadata={"key": "os.sshKeys"})
    connectivity_uri: str | None = field(default=None, metadata={"key": "os.network.connectivity.uri"})
    connectivity_interval: int = field(
        default=DEFAULT_CONNECTIVITY_INTERVAL, metadata={"key": "os.network.connectivity.interval"}
    )
    connectivity_response: str | None = field(default=None, metadata={"key": "os.network.connectivity.response"})
    wifi_random_mac_scan: bool | None = field(default=None, metadata={"key": "os.network.wifi.randomMacAddressScan"})
    udev_rules: tuple[tuple[str, str], ...] = field(default=(), metadata={"key": "os.udevRules"})
    country: str | None = field(default=None, metadata={"key": "country"})
    safe_apply_timeout: int = field(default=DEFAULT_SAFE_APPLY_TIMEOUT, metadata={"key": "os.safeApply.timeout"})
    probe_name: str | None = field(default=None, metadata={"key": "os.safeApply.probeName"})
    # True when config.json had no uuid and one was generated: it is written back by the identity step.
    uuid_generated: bool = field(default=False, compare=False)

    @property
    def effective_hostname(self) -> str | None:
        """The name the device goes by: ``hostname``, else the first 7 characters of the uuid."""
        if self.hostname:
            return self.hostname
        return self.uuid[:7] if self.uuid else None

    def values_by_key(self) -> dict[str, Any]:
        return {f.metadata["key"]: getattr(self, f.name) for f in fields(self) if "key" in f.metadata}


def changed_keys(old: Config | None, new: Config) -> frozenset[str]:
    """The config.json keys whose effective value differs between two configs."""
    new_values = new.values_by_key()
    if old is None:
        return frozenset(new_values)
    old_values = old.values_by_key()
    return frozenset(key for key, value in new_values.items() if old_values[key] != value)


# ---------------------------------------------------------------------------------------------
# validation


class _Validator:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.issues: list[ConfigIssue] = []

    def error(self, pointer: str, message: str) -> None:
        self.issues.append(ConfigIssue(pointer, message))

    def lookup(self, dotted_key: str) -> tuple[bool, Any, str]:
        """(present, value, pointer) of a dotted key such as ``os.network.wifi.randomMacAddressScan``."""
        node: Any = self.document
        pointer = ""
        for part in dotted_key.split("."):
            pointer += "/" + part.replace("~", "~0").replace("/", "~1")
            if not isinstance(node, dict):
                return False, None, pointer
            if part not in node:
                return False, None, pointer
            node = node[part]
        return True, node, pointer

    def optional(self, dotted_key: str, expected: type | tuple[type, ...], type_name: str) -> tuple[Any, str]:
        present, value, pointer = self.lookup(dotted_key)
        if not present or value is None:
            return None, pointer
        # bool is an int in Python; an int key must not accept true/false.
        if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
            self.error(pointer, f"{_show(value)} is not {type_name}")
            return None, pointer
        if not isinstance(value, expected):
            self.error(pointer, f"{_show(value)} is not {type_name}")
            return None, pointer
        return value, pointer

    def check_parents(self) -> None:
        # A non-object where an object of owned keys must be (e.g. "os": "x") is itself an error.
        for dotted in (
            "os",
            "os.network",
            "os.network.connectivity",
            "os.network.wifi",
            "os.dns",
            "os.journal",
            "os.safeApply",
        ):
            present, value, pointer = self.lookup(dotted)
            if present and not isinstance(value, dict):
                self.error(pointer, f"{_show(value)} is not an object")


def _show(value: Any, limit: int = 60) -> str:
    text = _printable(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_plain_text(text: str) -> bool:
    """No control characters and no lone surrogates: safe to write into a line of a config file."""
    return text.isprintable()


def _has_lone_surrogate(text: str) -> bool:
    # JSON allows "\ud800"; such a string cannot be written as UTF-8.
    return any("\ud800" <= char <= "\udfff" for char in text)


def _server_list(v: _Validator, key: str, valid: Callable[[str], bool], what: str) -> tuple[str, ...] | None:
    """balenaOS's server lists: a space-separated string (the string "null" or "" = none) or an array.

    None when absent or when an item is bad (each reported with its own pointer in an array).
    """
    present, value, pointer = v.lookup(key)
    if not present or value is None:
        return None
    if isinstance(value, str):
        if value.strip() in ("", "null"):
            return ()
        items = [(f"{pointer}", item) for item in value.split()]
    elif isinstance(value, list):
        items = [(f"{pointer}/{index}", item) for index, item in enumerate(value)]
    else:
        v.error(pointer, f"{_show(value)} is not a space-separated string or an array of strings")
        return None
    result: list[str] = []
    for item_pointer, item in items:
        if not isinstance(item, str):
            v.error(item_pointer, f"{_show(item)} is not a string")
        elif not valid(item):
            v.error(item_pointer, f"{_show(item)} is not {what}")
        else:
            result.append(item)
    if len(result) < len(items):
        return None
    return tuple(dict.fromkeys(result))  # keep order, drop repeats


def _is_ip(text: str) -> bool:
    # ip_address() takes any IPv6 scope id ("fe80::1%a\nserver=x"): only an interface name will do.
    if not (text.isascii() and text.isprintable()) or " " in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_hostname_label(name: str) -> bool:
    return bool(_LABEL.match(name))


def _is_fqdn(name: str) -> bool:
    labels = name.rstrip(".").lower().split(".")
    return len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def size_in_bytes(size: str) -> int:
    match = _SIZE.match(size)
    if not match:
        raise ValueError(size)
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def ssh_key_problem(line: str) -> str | None:
    """Why ``line`` is not an OpenSSH authorized_keys line, or None when it is one."""
    import base64
    import binascii
    import shlex

    if "\n" in line or "\r" in line:
        return "contains a line break"
    if _has_lone_surrogate(line):
        return "is not valid Unicode (a lone surrogate)"
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


def _validate(document: dict[str, Any]) -> tuple[Config, list[ConfigIssue]]:
    v = _Validator(document)
    v.check_parents()
    values: dict[str, Any] = {}

    uuid, pointer = v.optional("uuid", str, "a string")
    if uuid is not None:
        if _UUID.match(uuid):
            values["uuid"] = uuid
        else:
            v.error(pointer, f"{_show(uuid)} is not a 32- or 62-character lowercase hex uuid")

    hostname, pointer = v.optional("hostname", str, "a string")
    if hostname:
        folded = hostname.lower()
        if is_hostname_label(folded):
            values["hostname"] = folded
        else:
            v.error(
                pointer,
                f"{_show(hostname)} is not a valid hostname (1-63 of a-z, 0-9 and '-', "
                "not starting or ending with '-')",
            )

    for attribute, key in (("persistent_logging", "persistentLogging"), ("development_mode", "developmentMode")):
        flag, pointer = v.optional(key, bool, "true or false")
        if flag is not None:
            values[attribute] = flag

    for attribute, key in (
        ("runtime_max_use", "os.journal.runtimeMaxUse"),
        ("system_max_use", "os.journal.systemMaxUse"),
    ):
        size, pointer = v.optional(key, str, 'a size string such as "16M"')
        if size is None:
            continue
        given, size = size, size.strip().upper()
        try:
            size_bytes = size_in_bytes(size)
        except ValueError:
            v.error(pointer, f'{_show(given)} is not a size such as "512K", "16M" or "1G"')
            continue
        if not (1 << 20) <= size_bytes <= (64 << 30):
            v.error(pointer, f"{_show(given)} is outside 1M..64G")
            continue
        values[attribute] = size

    dns = _server_list(v, "dnsServers", _is_ip, "an IPv4 or IPv6 address")
    if dns is not None:
        values["dns_servers"] = dns

    mode, pointer = v.optional("os.dns.mode", str, "a string")
    if mode is not None:
        if mode in DNS_MODES:
            values["dns_mode"] = mode
        else:
            v.error(pointer, f"{_show(mode)} is not one of {', '.join(DNS_MODES)}")

    ntp = _server_list(
        v, "ntpServers", lambda server: _is_ip(server) or _is_fqdn(server), "a host name or an IP address"
    )
    if ntp is not None:
        values["ntp_servers"] = tuple(server.lower() for server in ntp)

    keys, pointer = v.optional("os.sshKeys", list, "an array of strings")
    if keys is not None:
        good: list[str] = []
        for index, line in enumerate(keys):
            if not isinstance(line, str):
                v.error(f"{pointer}/{index}", f"{_show(line)} is not a string")
                continue
            problem = ssh_key_problem(line.strip())
            if problem:
                v.error(f"{pointer}/{index}", f"{_show(line, 40)} is not an OpenSSH public key: {problem}")
            else:
                good.append(line.strip())
        values["ssh_keys"] = tuple(good)

    uri, pointer = v.optional("os.network.connectivity.uri", str, "a string")
    if uri is not None:
        if _URI.match(uri) and _is_plain_text(uri):
            values["connectivity_uri"] = uri
        else:
            v.error(pointer, f"{_show(uri)} is not an http:// or https:// URI")
    elif (api := document.get("apiEndpoint")) and isinstance(api, str) and _URI.match(api) and _is_plain_text(api):
        values["connectivity_uri"] = api.rstrip("/") + "/connectivity-check"

    interval, pointer = v.optional("os.network.connectivity.interval", int, "a whole number of seconds")
    if interval is not None:
        if 0 <= interval <= 7 * 24 * 3600:
            values["connectivity_interval"] = interval
        else:
            v.error(pointer, f"{_show(interval)} is outside 0..604800 seconds")

    response, pointer = v.optional("os.network.connectivity.response", str, "a string")
    if response is not None:
        if not _is_plain_text(response):
            v.error(pointer, f"{_show(response)} contains a line break or another control character")
        else:
            values["connectivity_response"] = response

    scan, pointer = v.optional("os.network.wifi.randomMacAddressScan", bool, "true or false")
    if scan is not None:
        values["wifi_random_mac_scan"] = scan

    timeout, pointer = v.optional("os.safeApply.timeout", int, "a whole number of seconds")
    if timeout is not None:
        if 5 <= timeout <= 3600:
            values["safe_apply_timeout"] = timeout
        else:
            v.error(pointer, f"{_show(timeout)} is outside 5..3600 seconds")

    probe_name, pointer = v.optional("os.safeApply.probeName", str, "a host name")
    if probe_name is not None:
        if _is_fqdn(probe_name):
            values["probe_name"] = probe_name.lower().rstrip(".")
        else:
            v.error(pointer, f"{_show(probe_name)} is not a host name")
    elif (api := document.get("apiEndpoint")) and isinstance(api, str):
        # The cloud the device must reach: the natural name to prove DNS still works.
        host = re.sub(r"^https?://", "", api).split("/")[0].split(":")[0]
        if _is_fqdn(host):
            values["probe_name"] = host.lower()

    rules, pointer = v.optional("os.udevRules", dict, "an object of rule name -> rule text")
    if rules is not None:
        good_rules: list[tuple[str, str]] = []
        for name, text in rules.items():
            rule_pointer = f"{pointer}/{name.replace('~', '~0').replace('/', '~1')}"
            if not _UDEV_RULE_NAME.match(name):
                v.error(rule_pointer, f"{_show(name)} is not a plain file name for a udev rule")
            elif not isinstance(text, str):
                v.error(rule_pointer, f"{_show(text)} is not a string")
            elif _has_lone_surrogate(text):
                v.error(rule_pointer, f"{_show(text)} is not valid Unicode (a lone surrogate)")
            else:
                good_rules.append((name, text))
        values["udev_rules"] = tuple(sorted(good_rules))

    country, pointer = v.optional("country", str, "a string")
    if country:  # "" is unset, as in balenaOS
        if _COUNTRY.match(country):
            values["country"] = country.upper()
        else:
            v.error(pointer, f'{_show(country)} is not an ISO 3166-1 alpha-2 country code such as "GB" (or "00")')

    return Config(**values), v.issues


# ---------------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    source: str  # "config.json", "last-known-good" or "defaults"
    document: dict[str, Any] | None  # the parsed config.json (None when it could not be used)
    raw: bytes | None  # config.json's bytes, as read
    error: ConfigError | None  # why config.json could not be used


def parse(raw: bytes, path: Path | str = "config.json") -> tuple[Config, dict[str, Any]]:
    """Parse and validate config.json bytes; raises ConfigError naming every problem."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, [ConfigIssue("", f"file is more than {MAX_CONFIG_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [ConfigIssue("", f"not UTF-8 (byte {exc.start})")]) from None
    if not text.strip():
        raise ConfigError(path, [ConfigIssue("", "file is empty")])
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            path, [ConfigIssue("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None
    except RecursionError:
        raise ConfigError(path, [ConfigIssue("", "nested too deeply")]) from None
    except ValueError:  # an integer of more than 4300 digits (sys.get_int_max_str_digits())
        raise ConfigError(path, [ConfigIssue("", "a number in it is too long")]) from None
    if not isinstance(document, dict):
        raise ConfigError(path, [ConfigIssue("", f"top level is {type(document).__name__}, not an object")])
    config, issues = _validate(document)
    if issues:
        raise ConfigError(path, issues)
    if config.uuid is None:
        import secrets  # first boot only

        config = Config(**{**_init_values(config), "uuid": secrets.token_hex(16), "uuid_generated": True})
    return config, document


def _init_values(config: Config) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def read_config_bytes(path: Path, *, follow_symlinks: bool = False) -> bytes:
    """The bytes of a config file, at most one over the size limit; OSError when it is not a regular file.

    The type is checked before opening: a FIFO would hang the boot and opening a device can
    have effects of its own (a watchdog starts ticking).
    """
    st = os.stat(path, follow_symlinks=follow_symlinks)
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "is a symbolic link, not a file", str(path))
    if not stat.S_ISREG(st.st_mode):
        kind = "is a directory" if stat.S_ISDIR(st.st_mode) else "is not a regular file"
        raise OSError(errno.EINVAL, kind, str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    with os.fdopen(os.open(path, flags), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # swapped since the check
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        return file.read(MAX_CONFIG_BYTES + 1)


def load(layout: Layout) -> LoadedConfig:
    """config.json, or the last-known-good copy when it cannot be used, or the defaults."""
    path = layout.config_json
    error: ConfigError | None = None
    raw: bytes | None = None
    try:
        if link := layout.symlink_in(path):
            raise OSError(errno.ELOOP, f"{link} is a symbolic link; hostd does not read through it", str(path))
        raw = read_config_bytes(path)
    except FileNotFoundError:
        error = ConfigError(path, [ConfigIssue("", "file is missing")])
    except OSError as exc:
        error = ConfigError(path, [ConfigIssue("", f"cannot be read: {exc.strerror}")])
    if raw is not None:
        try:
            config, document = parse(raw, path)
            return LoadedConfig(config, "config.json", document, raw, None)
        except ConfigError as exc:
            error = exc
    assert error is not None
    good = fsutil.read_bytes(layout.last_known_good)
    if good is not None:
        try:
            config, _ = parse(good, layout.last_known_good)
            return LoadedConfig(config, "last-known-good", None, raw, error)
        except ConfigError:
            pass
    return LoadedConfig(Config(), "defaults", None, raw, error)


def save_last_known_good(layout: Layout, raw: bytes) -> bool:
    """Keep a copy of a config that was applied; True when written (nothing is written if unchanged)."""
    if fsutil.file_differs(layout.last_known_good, raw, 0o600) is None:
        return False
    fsutil.atomic_write(layout.last_known_good, raw, 0o600)
    return True


def with_key_set(raw: bytes, key: str, value: Any) -> bytes:
    """config.json bytes with a top-level key set, every other byte kept where possible.

    An existing key is replaced in place; a new key is inserted right after the opening brace
    in the file's own indentation style.  The result is checked to parse to exactly the
    intended document.
    """
    text = raw.decode("utf-8")
    document = json.loads(text)
    expected = dict(document)
    expected[key] = value
    encoded = json.dumps(value, ensure_ascii=False)
    new_text: str | None = None
    if key in document:
        # Re-serialise only when the key cannot be found unambiguously as a top-level member.
        pattern = re.compile(r'("' + re.escape(key) + r'"\s*:\s*)')
        matches = list(pattern.finditer(text))
        if len(matches) == 1:
            start = matches[0].end()
            decoder = json.JSONDecoder()
            _, end = decoder.raw_decode(text, start)
            new_text = text[:start] + encoded + text[end:]
    else:
        brace = text.index("{")
        after = text[brace + 1 :]
        indent_match = re.match(r"(\s*)", after)
        leading = indent_match.group(1) if indent_match else ""
        member = f'"{key}": {encoded}' if leading else f'"{key}":{encoded}'
        separator = "" if not document else ","
        if "\n" in leading:
            new_text = text[: brace + 1] + leading + member + separator + after
        else:
            new_text = text[: brace + 1] + member + separator + after
    if new_text is None or json.loads(new_text) != expected:
        new_text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    return new_text.encode("utf-8")
