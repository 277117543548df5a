"""config.json -> an immutable, validated model.

Every key hostd owns (hostd.keys.TABLE) is read once, in any form balena's tools write it.  A key
whose value is not usable is *held back*: it keeps its last-known-good value (or its default when
there is none) and is reported with the file, its JSON pointer and the value (a secret-bearing
value is named, never shown); every other key applies.  Only a file that cannot be read as a JSON
object falls back as a whole, to the last-known-good generation's configuration.  Keys hostd does
not own are never touched, and config.json itself is never rewritten by a fallback.
"""

from __future__ import annotations

import errno
import json
import os
import stat

from hostd import fsutil, keys
from hostd.keys import is_hostname_label  # noqa: F401  (SetHostname checks a name with it)
from hostd.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from hostd.layout import Layout

MAX_CONFIG_BYTES = 1024 * 1024
LAST_KNOWN_GOOD = "last-known-good"
DEFAULT = "default"


class ConfigIssue(Record):
    __slots__ = ("message", "pointer")

    def __init__(self, pointer: str, message: str) -> None:
        self.pointer = pointer  # RFC 6901 JSON pointer of the offending value ("" for the whole document)
        self.message = message

    def __str__(self) -> str:
        return _printable(f"{self.pointer or '/'}: {self.message}")


class ConfigError(Exception):
    """config.json cannot be used as it is; ``issues`` lists every problem found."""

    def __init__(self, path: str, issues: list[ConfigIssue]) -> None:
        self.path = str(path)
        self.issues = issues
        super().__init__("\n".join(_printable(f"{self.path}: {issue}") for issue in issues))


class HeldBack(Record):
    """A key whose value in config.json is not usable: it keeps its ``fallback`` value."""

    __slots__ = ("fallback", "key", "message", "pointer")

    def __init__(self, key: str, pointer: str, message: str, fallback: str) -> None:
        self.key = key  # dotted name
        self.pointer = pointer  # of the offending value (an array's item: "/dnsServers/1")
        self.message = message  # names the value; a secret-bearing one is withheld
        self.fallback = fallback  # LAST_KNOWN_GOOD or DEFAULT

    def __str__(self) -> str:
        return _printable(f"{self.pointer}: {self.message}; held back: {self.key} keeps its {self.fallback} value")


def _printable(text: str) -> str:
    """``text`` with lone surrogates (JSON allows "\\ud800" in keys and values) escaped: it can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Config(Record):
    """The host-setup part of config.json, validated: one attribute per row of keys.TABLE (named
    there, with its default), so a key is declared once, in the table.  ``uuid_generated``:
    config.json had no uuid and one was generated (the identity step writes it back); it is not
    part of the configuration's value."""

    __slots__ = (*(key.attribute for key in keys.TABLE), "uuid_generated")

    def __init__(self, **values: Any) -> None:
        for key in keys.TABLE:
            setattr(self, key.attribute, values.pop(key.attribute, key.default))
        self.uuid_generated: bool = values.pop("uuid_generated", False)
        if values:
            raise TypeError(f"Config has no attribute {', '.join(values)}")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, key.attribute) for key in keys.TABLE)

    @property
    def effective_hostname(self) -> str | None:
        """The name the device goes by: ``hostname``, else the first 7 characters of the uuid."""
        hostname: str | None = self.hostname  # type: ignore[attr-defined]
        uuid: str | None = self.uuid  # type: ignore[attr-defined]
        if hostname:
            return hostname
        return uuid[:7] if uuid else None

    def values_by_key(self) -> dict[str, Any]:
        return {key.name: getattr(self, key.attribute) for key in keys.TABLE}


def changed_keys(old: Config | None, new: Config) -> frozenset[str]:
    """The config.json keys whose effective value differs between two configs."""
    new_values = new.values_by_key()
    if old is None:
        return frozenset(new_values)
    old_values = old.values_by_key()
    return frozenset(key for key, value in new_values.items() if old_values[key] != value)


# ---------------------------------------------------------------------------------------------
# reading the keys


def _show(value: Any, limit: int = 60) -> str:
    text = _printable(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lookup(document: dict[str, Any], key: keys.Key) -> tuple[Any, str | None]:
    """(value or keys.UNSET, why the key cannot be reached) for a dotted key: "os": "x" hides "os.dns.mode"."""
    node: Any = document
    parts = key.name.split(".")
    for depth, part in enumerate(parts):
        if node is None:
            return keys.UNSET, None
        if not isinstance(node, dict):
            parent = "/" + "/".join(parts[:depth])
            return keys.UNSET, f"{parent} is {_show(node)}, not an object"
        if part not in node:
            return keys.UNSET, None
        node = node[part]
    return node, None


def _problem_text(key: keys.Key, value: Any, problem: str) -> str:
    # A credential in a URI must not reach a log, the API or a terminal: name the key instead.
    if key.secret:
        shown = "the value (withheld: it may carry a credential)"
    else:
        shown = _show(value, 40 if key.name == "os.sshKeys" else 60)  # a key line is long: its start says which
    return f"{shown} {problem}"


def _read_key(key: keys.Key, document: dict[str, Any]) -> tuple[Any, list[ConfigIssue], ConfigIssue | None]:
    """(model value or keys.UNSET, problems, adjustment note) of one key."""
    value, unreachable = _lookup(document, key)
    if unreachable is not None:
        return keys.UNSET, [ConfigIssue(key.pointer, unreachable)], None
    if value is None or value is keys.UNSET:
        return keys.UNSET, [], None
    if isinstance(value, str) and value.strip() in ("", "null"):  # what jq -r prints for unset and null
        return key.form.empty, [], None
    try:
        parsed = key.form.parse(value)
    except keys.Invalid as invalid:
        return (
            keys.UNSET,
            [
                ConfigIssue(key.pointer + at, _problem_text(key, item, problem))
                for at, item, problem in invalid.problems
            ],
            None,
        )
    if isinstance(parsed, keys.Adjusted):
        return parsed.value, [], ConfigIssue(key.pointer, parsed.why)
    return parsed, [], None


class Reading(Record):
    """config.json, read key by key."""

    __slots__ = ("adjusted", "config", "document", "from_file", "held_back")

    def __init__(
        self,
        config: Config,
        document: dict[str, Any],
        held_back: tuple[HeldBack, ...] = (),
        adjusted: tuple[ConfigIssue, ...] = (),
        from_file: frozenset[str] = frozenset(),
    ) -> None:
        self.config = config
        self.document = document
        self.held_back = held_back
        self.adjusted = adjusted  # values used in the nearest valid form, e.g. "my_device"
        self.from_file = from_file  # keys whose value config.json sets (the others: defaults)


def _read_document(document: dict[str, Any], fallback: Config | None) -> Reading:
    values: dict[str, Any] = {}
    held_back: list[HeldBack] = []
    adjusted: list[ConfigIssue] = []
    from_file: set[str] = set()
    for key in keys.TABLE:
        value, problems, note = _read_key(key, document)
        if problems:
            if fallback is not None:
                value, source = getattr(fallback, key.attribute), LAST_KNOWN_GOOD
            else:
                value, source = key.default_for(document), DEFAULT
            held_back += [HeldBack(key.name, issue.pointer, issue.message, source) for issue in problems]
        elif value is keys.UNSET:
            value = key.default_for(document)
        else:
            from_file.add(key.name)
        if note is not None:
            adjusted.append(note)
        values[key.attribute] = value
    if values["uuid"] is None and not any(entry.key == "uuid" for entry in held_back):
        import secrets  # first boot only

        values |= {"uuid": secrets.token_hex(16), "uuid_generated": True}
    return Reading(Config(**values), document, tuple(held_back), tuple(adjusted), frozenset(from_file))


# ---------------------------------------------------------------------------------------------
# loading


class LoadedConfig(Record):
    __slots__ = ("adjusted", "config", "document", "error", "held_back", "path", "raw", "source")

    def __init__(
        self,
        config: Config,
        source: str,
        document: dict[str, Any] | None,
        raw: bytes | None,
        error: ConfigError | None,
        held_back: tuple[HeldBack, ...] = (),
        adjusted: tuple[ConfigIssue, ...] = (),
        path: str = "config.json",
    ) -> None:
        self.config = config
        self.source = source  # "config.json", "last-known-good" or "defaults"
        self.document = document  # the parsed config.json (None when it could not be used)
        self.raw = raw  # config.json's bytes, as read
        self.error = error  # why config.json could not be used at all
        self.held_back = held_back  # keys of config.json not applied, each at its fallback value
        self.adjusted = adjusted  # values applied in the nearest valid form
        self.path = str(path)

    @property
    def problems(self) -> str:
        """Every problem with config.json, one a line, naming the file; empty when every key applies."""
        if self.error is not None:
            return str(self.error)
        return "\n".join(_printable(f"{self.path}: {entry}") for entry in self.held_back)


def _document(raw: bytes, path: str) -> dict[str, Any]:
    """config.json's bytes as a JSON object; ConfigError when they are not one."""
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
    return document


def read(raw: bytes, path: str = "config.json", fallback: Config | None = None) -> Reading:
    """config.json key by key: an unusable value holds its key back at ``fallback``'s value (the
    last-known-good configuration; the key's default without one).  ConfigError only when the file
    is not a readable JSON object."""
    return _read_document(_document(raw, path), fallback)


def parse(raw: bytes, path: str = "config.json") -> tuple[Config, dict[str, Any]]:
    """Validate config.json bytes strictly (a configuration given to hostd to write): ConfigError
    naming every problem, whether the file is unreadable or any key would be held back."""
    reading = read(raw, path)
    if reading.held_back:
        raise ConfigError(path, [ConfigIssue(entry.pointer, entry.message) for entry in reading.held_back])
    return reading.config, reading.document


def applied_values(config: Config) -> bytes:
    """The owned keys' values a configuration runs with, as JSON in their config.json forms."""
    values = {}
    for key in keys.TABLE:
        value = getattr(config, key.attribute)
        values[key.name] = None if value is None else key.form.to_json(value)
    return (json.dumps(values, indent=1, ensure_ascii=False) + "\n").encode()


def config_of_applied(raw: bytes) -> Config | None:
    """A configuration from applied_values(); None when it is not one (each value is checked again)."""
    try:
        stored = json.loads(raw)
        values = {}
        for key in keys.TABLE:
            value = stored[key.name]
            parsed = key.form.parse(value) if value is not None else None
            values[key.attribute] = parsed.value if isinstance(parsed, keys.Adjusted) else parsed
    except (ValueError, TypeError, KeyError):  # keys.Invalid is a ValueError
        return None
    return Config(**values)


def last_known_good(layout: Layout) -> Config | None:
    """What the device ran when it was last known to work: the good generation's applied values (or
    its config.json, read key by key); before generations, the copy hostd kept on the state partition."""
    from hostd import generations  # not at the top: it reads the boot partition through the steps, which read this

    good = generations.GenerationStore(layout).good_config()
    if good is not None:
        raw, applied = good
        if applied is not None and (config := config_of_applied(applied)) is not None:
            return config
    else:
        raw = fsutil.read_bytes(layout.last_known_good)  # written by hostd before generations; read, never written
    if raw is None:
        return None
    try:
        return read(raw, "last-known-good").config
    except ConfigError:
        return None


def read_config_bytes(path: str, *, follow_symlinks: bool = False) -> bytes:
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
    flags = os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    with os.fdopen(fsutil.open_to_read(path, flags), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # swapped since the check
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        return file.read(MAX_CONFIG_BYTES + 1)


def load(layout: Layout) -> LoadedConfig:
    """config.json key by key, each unusable key at its last-known-good value; the last-known-good
    configuration when config.json cannot be read at all; else the defaults."""
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
            reading = read(raw, path)
        except ConfigError as exc:
            error = exc
        else:
            if reading.held_back:  # only then is the last-known-good configuration read
                reading = read(raw, path, last_known_good(layout))
            return LoadedConfig(
                reading.config,
                "config.json",
                reading.document,
                raw,
                None,
                reading.held_back,
                reading.adjusted,
                str(path),
            )
    good = last_known_good(layout)
    if good is not None:
        return LoadedConfig(good, LAST_KNOWN_GOOD, None, raw, error, path=str(path))
    return LoadedConfig(Config(), "defaults", None, raw, error, path=str(path))


def with_key_set(raw: bytes, key: str, value: Any) -> bytes:
    """config.json bytes with one key set (dotted for nested: "os.dns.mode"); see with_keys_set."""
    return with_keys_set(raw, {key: value})


def with_keys_set(raw: bytes, changes: Mapping[str, Any]) -> bytes:
    """config.json bytes with keys set, every other byte kept where possible.

    A key is dotted for nested objects ("os.dns.mode").  An existing member's value is replaced
    in place; a new member is inserted right after its object's opening brace, in the file's own
    indentation style (a missing parent object is created with it).  The result is checked to
    parse to exactly the intended document; otherwise the document is written out whole.
    """
    text = raw.decode("utf-8")
    expected = json.loads(text)
    for key, value in changes.items():
        _set_in(expected, key.split("."), value)
    new_text: str | None = text
    for key, value in changes.items():
        new_text = _splice(new_text, key.split("."), value) if new_text is not None else None
    if new_text is None or json.loads(new_text) != expected:
        new_text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    try:
        return new_text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" is valid JSON, not UTF-8): kept escaped
        return (json.dumps(expected, indent=2) + "\n").encode()


def _set_in(document: dict[str, Any], parts: list[str], value: Any) -> None:
    node = document
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _members(text: str, start: int) -> dict[str, tuple[int, int]] | None:
    """Member name -> (value start, value end) of the object whose "{" is at ``start``; None when a
    name repeats (which one counts is then the parser's business, not a splice's)."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    index = _skip_space(text, start + 1)
    if text[index] == "}":
        return spans
    while True:
        name, index = json.decoder.scanstring(text, index + 1)
        index = _skip_space(text, _skip_space(text, index) + 1)  # past ":"
        _, end = decoder.raw_decode(text, index)
        if name in spans:
            return None
        spans[name] = (index, end)
        index = _skip_space(text, end)
        if text[index] == "}":
            return spans
        index = _skip_space(text, index + 1)  # past ","


def _skip_space(text: str, index: int) -> int:
    while text[index] in " \t\r\n":
        index += 1
    return index


def _splice(text: str, parts: list[str], value: Any) -> str | None:
    """``text`` with the member at ``parts`` set to ``value``, touching nothing else; None when it
    cannot be done in place (a repeated name, a parent that is not an object)."""
    start = _skip_space(text, 0)
    for depth, part in enumerate(parts):
        if text[start] != "{":
            return None
        members = _members(text, start)
        if members is None:
            return None
        if part not in members:
            new_value: Any = value
            for outer in reversed(parts[depth + 1 :]):
                new_value = {outer: new_value}
            return _insert_member(text, start, part, new_value, empty=not members)
        if depth == len(parts) - 1:
            begin, end = members[part]
            return text[:begin] + json.dumps(value, ensure_ascii=False) + text[end:]
        start = members[part][0]
    return None


def _insert_member(text: str, brace: int, name: str, value: Any, *, empty: bool) -> str:
    after = text[brace + 1 :]
    leading = after[: len(after) - len(after.lstrip())]
    encoded = json.dumps(value, ensure_ascii=False)
    member = f'"{name}": {encoded}' if leading else f'"{name}":{encoded}'
    separator = "" if empty else ","
    if "\n" in leading:
        return text[: brace + 1] + leading + member + separator + after
    return text[: brace + 1] + member + separator + after
