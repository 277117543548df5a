"""Validate NetworkManager keyfiles before hostd imports them from the boot partition.

The checks predict what NetworkManager (1.42, with GLib 2.74) does when it loads a file from
/etc/NetworkManager/system-connections: GLib's GKeyFile syntax, then the connection-level
part of nm_connection_normalize() -- connection.type (given, aliased or inferred from a
type section), connection.id and connection.uuid.  Per-setting checks (a Wi-Fi profile
needs an ssid, MAC addresses must parse, ...) are left to NetworkManager itself.

hostd is stricter than GKeyFile in one way: it rejects bytes that are not UTF-8 and NUL
bytes, which GKeyFile passes through to NetworkManager unchecked.

Error messages never quote a secret's value (psk, passwords, PINs, keys, vpn-secrets, ...).
"""

from __future__ import annotations

import re
import unicodedata

from hostd.record import Record

MAX_KEYFILE_BYTES = 64 * 1024
MAX_NAME_BYTES = 255

# NM's keyfile alias table (nm-keyfile-utils.c): group names and connection.type values.
_ALIASES = {
    "ethernet": "802-3-ethernet",
    "wifi": "802-11-wireless",
    "wifi-security": "802-11-wireless-security",
}

# Settings that can be a connection's base type, with NM's priority (lower wins when the
# type is inferred).  This is the union over NM releases up to 1.5x: rejecting a type that a
# newer NM knows would refuse a profile the device can load.
_HW_BASE, _HW_NON_BASE, _PPPOE = 2, 3, 5
_BASE_TYPES = {
    **dict.fromkeys(
        (
            "6lowpan", "802-11-olpc-mesh", "802-11-wireless", "802-3-ethernet", "adsl", "bond",
            "bridge", "cdma", "dummy", "generic", "geneve", "gsm", "hsr", "infiniband",
            "ip-tunnel", "ipvlan", "loopback", "macsec", "macvlan", "ovs-bridge",
            "ovs-interface", "ovs-port", "team", "tun", "veth", "vlan", "vpn", "vrf", "vxlan",
            "wifi-p2p", "wimax", "wireguard", "wpan",
        ),
        _HW_BASE,
    ),
    "bluetooth": _HW_NON_BASE,
    "pppoe": _PPPOE,
}  # fmt: skip

# GLib's g_ascii_isspace(): note that it leaves out vertical tab.
_WS = " \t\n\f\r"
_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_LOCALE_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No"})  # g_unichar_isalnum
# Patterns compiled at their first use by re's own cache, not at import (as in hostd.keys).
_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_LEGACY_CHARS = frozenset("0123456789abcdefABCDEF-")
# NM hashes pre-1.0 style UUIDs into a v5 UUID in this namespace (nm_uuid_is_valid_nm()).
_UUID_LEGACY_NS = "4e72f709-ca95-4405-9053-1f43294a618c"
_MKSTEMP_SUFFIX_RE = r"\.[A-Za-z0-9]{6}\Z"

# Groups whose malformed lines are never quoted: any of their lines may carry a secret.
_SECRET_GROUPS = frozenset(
    {"802-11-wireless-security", "wifi-security", "802-1x", "vpn", "vpn-secrets", "gsm", "cdma",
     "pppoe", "adsl", "wireguard", "macsec"}
)  # fmt: skip
_SECRET_WORDS = ("psk", "password", "secret", "wep-key", "private-key", "preshared-key", "mka-cak")


class Keyfile(Record):
    """A profile that passed validation."""

    __slots__ = ("id", "name", "type", "uuid")

    def __init__(self, name: str, uuid: str | None, id: str | None, type: str) -> None:
        self.name = name  # file name as in the boot partition
        self.uuid = uuid  # normalised as NM reports it; None when absent (NM derives one from the path)
        self.id = id  # None when absent (NM uses the file name)
        self.type = type  # canonical setting name, e.g. "802-3-ethernet" for "ethernet"


class KeyfileError(ValueError):
    """A file hostd will not import; str() is one sentence that names the file."""

    def __init__(self, name: str, problem: str, *, line: int | None = None, key: str | None = None):
        where = f"keyfile {_quote(name)}" + (f" line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")
        self.name = name
        self.line = line
        self.key = key  # "group.key" when the problem is in one key


def check_name(name: str) -> None:
    """Accept a plain file name (what may be created in a flat directory), else raise KeyfileError."""
    problem = None
    if not name:
        problem = "it is empty"
    elif "/" in name:
        problem = "it contains '/'"
    elif "\0" in name:
        problem = "it contains a NUL character"
    elif name.startswith("."):
        problem = "it starts with '.'"
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            problem = "it is not valid UTF-8"
        else:
            if size > MAX_NAME_BYTES:
                problem = f"it is {size} bytes long, over the {MAX_NAME_BYTES}-byte limit"
    if problem:
        raise KeyfileError(name, f"the name is not a plain file name: {problem}")


def nm_ignores_name(name: str) -> bool:
    """True when NM's keyfile plugin skips a file of this name in /etc (nm_keyfile_utils_ignore_filename()).

    Hidden files, backups ("~"), names that look like mkstemp() temporaries (a dot and six
    letters or digits at the end, e.g. "balena-sample.ignore" or "office.config") and
    certificates (".pem", ".der") are never loaded, however valid their content.
    """
    suffix = name[-4:]
    return (
        not name
        or name.startswith(".")
        or name.endswith("~")
        or re.search(_MKSTEMP_SUFFIX_RE, name) is not None
        or (len(name) > 4 and suffix.isascii() and suffix.lower() in (".pem", ".der"))
    )


def parse_keyfile(name: str, data: bytes) -> Keyfile:
    """Validate one keyfile's name and content; raise KeyfileError when NM would not load it."""
    check_name(name)
    if len(data) > MAX_KEYFILE_BYTES:
        raise KeyfileError(name, f"it is {len(data)} bytes, over the {MAX_KEYFILE_BYTES}-byte limit")
    if data.startswith(b"\xef\xbb\xbf"):
        raise KeyfileError(
            name,
            "it starts with a UTF-8 byte order mark, which NetworkManager rejects; save it without one",
            line=1,
        )
    # surrogateescape keeps bad bytes so that the parser can say where they are
    groups = _parse_gkeyfile(name, data.decode("utf-8", "surrogateescape"))
    return _connection(name, groups)


# --- GKeyFile -------------------------------------------------------------------------------

# group -> key -> (raw value, line number); later duplicates win and repeated groups merge,
# as in GKeyFile.
_Groups = dict[str, dict[str, tuple[str, int]]]


def _parse_gkeyfile(name: str, text: str) -> _Groups:
    """Parse like g_key_file_load_from_data(); raise KeyfileError where it fails."""
    groups: _Groups = {}
    group: str | None = None
    first_group: str | None = None
    segments = text.split("\n")
    for number, segment in enumerate(segments, 1):
        # GLib drops one '\r' before each '\n'; an unterminated last line keeps its '\r'.
        line = segment[:-1] if number < len(segments) and segment.endswith("\r") else segment
        _check_encoding(name, group, line, number)
        start = line.lstrip(_WS)
        if not start or start[0] == "#":
            continue
        close = start.find("]")
        if start[0] == "[" and close > 0 and not start[close + 1 :].strip(" \t"):
            group = start[1:close]
            if not group or "[" in group or any(_is_cntrl(c) for c in group):
                raise KeyfileError(
                    name,
                    f"group name {_quote(group)} is invalid (it must be non-empty, "
                    "without brackets or control characters)",
                    line=number,
                )
            groups.setdefault(group, {})
            first_group = first_group or group
            continue
        eq = start.find("=")
        if eq < 0:
            hint = " (';' does not start a comment in a keyfile, '#' does)" if start[0] == ";" else ""
            shown = "<secret>" if _secret_context(group, start) else _quote(start)
            raise KeyfileError(
                name, f"{shown} is not a [group] header, a key=value pair or a # comment{hint}", line=number
            )
        if eq == 0:
            raise KeyfileError(name, "there is a value but no key name before '='", line=number)
        key = start[:eq].rstrip(_WS)
        if group is None:
            raise KeyfileError(name, f"key {_quote(key)} comes before any [group] header", line=number)
        if not _is_key_name(key):
            raise KeyfileError(
                name, f"{_quote(key)} in [{group}] is not a valid key name", line=number, key=f"{group}.{key}"
            )
        value = start[eq + 1 :].lstrip(_WS)
        if group == first_group and key == "Encoding" and not (value.isascii() and value.lower() == "utf-8"):
            raise KeyfileError(
                name, f"[{group}] Encoding {_quote(value)} is not UTF-8", line=number, key=f"{group}.{key}"
            )
        groups[group][key] = (value, number)
    return groups


def _check_encoding(name: str, group: str | None, line: str, number: int) -> None:
    problem = None
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        problem = "is not valid UTF-8"
    if "\0" in line:
        problem = "contains a NUL byte"
    if not problem:
        return
    key, eq, value = line.lstrip(_WS).partition("=")
    key = key.rstrip(_WS)
    if eq and key and _is_clean(key):
        shown = "<secret>" if _is_secret_key(group, key) else _quote(value.lstrip(_WS))
        where = f"key {_quote(key)}" + (f" in [{group}]" if group else "")
        raise KeyfileError(name, f"{where} has a value that {problem}: {shown}", line=number)
    # The bad byte may sit in what named a secret ("p\xffsk=..."): quote nothing, say where it is.
    column = next(index for index, char in enumerate(line, 1) if not _is_clean(char))
    raise KeyfileError(name, f"the line {problem} (at character {column})", line=number)


def _is_clean(text: str) -> bool:
    """No NUL and no byte that is not UTF-8 (decoded with surrogateescape)."""
    return not any(char == "\0" or "\udc80" <= char <= "\udcff" for char in text)


def _is_cntrl(char: str) -> bool:
    return char < " " or char == "\x7f"


def _is_key_name(key: str) -> bool:
    """g_key_file_is_key_name(): a name, then optionally a [locale] suffix, and nothing else."""
    end = 0
    while end < len(key) and key[end] not in "[]":
        end += 1
    if end == 0 or key[0] == " " or key[end - 1] == " ":
        return False
    if end < len(key) and key[end] == "[":
        end += 1
        while end < len(key) and (key[end] in "-_.@" or unicodedata.category(key[end]) in _LOCALE_CATEGORIES):
            end += 1
        if end >= len(key) or key[end] != "]":
            return False
        end += 1
    return end == len(key)


# --- connection setting -----------------------------------------------------------------------


def _connection(name: str, groups: _Groups) -> Keyfile:
    """Read connection.id, .uuid and .type as nm_keyfile_read() and verify them as NM's normalize does."""
    connection = groups.get("connection", {})

    id_ = None
    if "id" in connection:
        raw, line = connection["id"]
        value, ok = _unescape(raw)
        id_ = value if ok else None
        if id_ == "":
            raise KeyfileError(name, "connection.id '' is empty", line=line, key="connection.id")

    uuid = None
    if "uuid" in connection:
        raw, line = connection["uuid"]
        given, ok = _unescape(raw)
        if ok:
            uuid = _normalise_uuid(given)
            if uuid is None:
                raise KeyfileError(
                    name,
                    f"connection.uuid {_quote(given)} is not a valid UUID",
                    line=line,
                    key="connection.uuid",
                )

    if "type" in connection:
        raw, line = connection["type"]
        given, _ = _unescape(raw)
        type_ = _ALIASES.get(given, given)
        if type_ not in _BASE_TYPES:
            problem = "is empty" if not given else "is not a NetworkManager connection type"
            raise KeyfileError(name, f"connection.type {_quote(given)} {problem}", line=line, key="connection.type")
    else:
        type_ = _infer_type(name, groups)
    return Keyfile(name=name, uuid=uuid, id=id_, type=type_)


def _infer_type(name: str, groups: _Groups) -> str:
    """No connection.type: NM takes the one type section of highest priority (nm-connection.c)."""
    sections = {_ALIASES.get(group, group) for group in groups} & _BASE_TYPES.keys()
    if not sections:
        raise KeyfileError(
            name,
            "connection.type is missing and no type section such as [ethernet] or [wifi] implies one",
            key="connection.type",
        )
    best = min(_BASE_TYPES[s] for s in sections)
    candidates = sorted(s for s in sections if _BASE_TYPES[s] == best)
    if len(candidates) > 1:
        listed = " and ".join(f"[{s}]" for s in candidates)
        raise KeyfileError(
            name, f"connection.type is missing and sections {listed} make it ambiguous", key="connection.type"
        )
    return candidates[0]


def _unescape(raw: str) -> tuple[str, bool]:
    """g_key_file_get_string() as in GLib 2.74: the value, and False if an escape was bad.

    On a bad escape GLib < 2.76 still returns its partial result (the bad escape verbatim, a
    trailing backslash dropped): NM 1.42 drops such an id or uuid but uses such a type.
    """
    out = []
    ok = True
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escaped = raw[i + 1 : i + 2]
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
        else:
            ok = False
            out.append("\\" + escaped if escaped else "")
        i += 2
    return "".join(out), ok


def _normalise_uuid(value: str) -> str | None:
    """The UUID NM stores for connection.uuid = value, or None when NM rejects it."""
    if re.fullmatch(_UUID_RE, value):
        return value.lower()
    dashes = value.count("-")
    if set(value) <= _UUID_LEGACY_CHARS and (dashes, len(value)) in ((4, 36), (0, 40)):
        import uuid  # rare: not imported (half a MiB with its platform module) unless needed

        return str(uuid.uuid5(uuid.UUID(_UUID_LEGACY_NS), value.lower()))
    return None


# --- messages ---------------------------------------------------------------------------------


def _quote(text: str, limit: int = 80) -> str:
    """text quoted for a message: cut to limit, unprintables escaped, stray bytes as \\xNN."""
    shown = "".join(_show_char(char) for char in text[:limit])
    return f"'{shown}'" if len(text) <= limit else f"'{shown}...'"


def _show_char(char: str) -> str:
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char if char.isprintable() else repr(char)[1:-1]


def _visible(text: str) -> str:
    # An invisible character (a stray byte order mark, a zero-width space) must not hide "psk".
    return "".join(char for char in text if char.isprintable())


def _is_secret_key(group: str | None, key: str) -> bool:
    base = _visible(key.partition("[")[0]).strip(_WS).lower()
    if group == "vpn-secrets":
        return True
    if base.endswith("-flags"):
        return False
    return base == "pin" or any(word in base for word in _SECRET_WORDS)


def _secret_context(group: str | None, line: str) -> bool:
    """Whether a malformed line might hold a secret, so that it must not be quoted."""
    lower = _visible(line).lower()
    return (
        group in _SECRET_GROUPS
        or (group or "").startswith("wireguard-peer.")
        or any(word in lower for word in _SECRET_WORDS)
        or _is_secret_key(group, line.split("=", 1)[0])
        or _is_secret_key(group, (line.split() or [""])[0])  # "pin 1234"
    )


def without_secrets(text: str) -> str:
    """A keyfile's text with every secret-bearing line left out (psk, passwords, PINs, vpn-secrets, ...):
    what may be shown to a client."""
    group: str | None = None
    kept = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip(_WS)
        if stripped.startswith("[") and stripped.endswith("]"):
            group = _ALIASES.get(stripped[1:-1], stripped[1:-1])
        elif "=" in stripped and not stripped.startswith("#") and _is_secret_key(group, stripped.split("=", 1)[0]):
            continue
        kept.append(line)
    return "".join(kept)
