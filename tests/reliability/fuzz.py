"""Hostile config.json and boot-partition files, generated with hypothesis, and the properties they must keep.

One example: a device root (already applied once, with a sentinel directory beside it that
hostd must never touch) gets a generated config.json and generated files in the boot
partition's system-connections/ and dispatcher.d/.  Then ``hostctl config check``, ``plan``,
``apply --offline`` and ``plan`` again run in-process through main(), and:

- every command exits 0, 1 or 2 and prints no traceback (logs included); no step fails;
- ``config check`` and ``plan`` write nothing; ``apply`` writes only its targets, and
  config.json only to add a generated uuid; the sentinel stays as it was;
- every config.json error names the file, the JSON pointer of the value and the value; every
  rejected boot file names the file and the line or key;
- a secret in a profile (a psk, password, ... value) never appears in any output;
- after the apply, a plan has nothing left to do.

The number of examples per property comes from HOSTD_FUZZ_EXAMPLES (see test_fuzz.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hostd import config as config_model
from hostd import keyfile, keys
from hostd.layout import Layout
from tests.unit.conftest import DeviceRoot

from .powercut import BOOT_PROFILES, DISPATCHER_SCRIPTS, first_config
from .support import CliRun, quiet_logs, run_cli, ssh_key, stamps, tree

SECRET = "Zq7SecretMarkerX"

# --- strategies ---------------------------------------------------------------------------------

NASTY_TEXT = (
    "", " ", "null", "\ud800", "a\udfffb", "\x00", "\n", "\r\n", "\t", "../../etc/passwd", "/etc/passwd", "..", ".",
    "\u202eevil", "ÄÖÜ", "🙂", "a" * 300, "%s%n", "${HOME}", "-rf", "1.1.1.1\n", "8.8.8.8 not-an-ip", "16M",
    "9999999999999T", "0x10", "https://", "http://x y", "ssh-ed25519", "ssh-ed25519 AAAA", 'a"b', "~1~0",
)  # fmt: skip
text = st.one_of(st.text(max_size=40), st.sampled_from(NASTY_TEXT))
numbers = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 604800, 604801, 10**400]), st.floats(allow_nan=True)
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)

VALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "uuid": st.sampled_from(["0123456789abcdef0123456789abcdef", "ab" * 31, "0123456789ABCDEF0123456789ABCDEF"]),
    "hostname": st.sampled_from(["kitchen", "KITCHEN", "a", "a-b", "x" * 63, "x" * 64, "-a", "a_b", "_a", "kitchen\n"]),
    "persistentLogging": st.one_of(st.booleans(), st.sampled_from(["true", "False", "on", "1", 0, "yes", "null"])),
    "developmentMode": st.one_of(st.booleans(), st.sampled_from(["TRUE", "false", "off", 1, 2, ""])),
    "os.journal.runtimeMaxUse": st.sampled_from(["8M", "16m", " 1G ", "512K", "64G", "65G", "1T"]),
    "os.journal.systemMaxUse": st.sampled_from(["32M", "2G", "1M"]),
    "dnsServers": st.sampled_from(
        ["1.1.1.1 9.9.9.9", ["8.8.8.8", "::1"], "null", "", "fe80::1%eth0", [1], ["fe80::1%a\nserver=1.2.3.4"]]
    ),
    "os.dns.mode": st.sampled_from(["append", "exclusive", "Exclusive"]),
    "ntpServers": st.sampled_from(
        ["pool.ntp.org 10.0.0.1", ["time.example.com"], "bad_name", "a..b", ["pool.ntp.org\n"]]
    ),
    "os.sshKeys": st.lists(st.sampled_from([ssh_key(1), ssh_key(2, "x y"), "ssh-rsa AAAA", "garbage"]), max_size=3),
    "os.network.connectivity.uri": st.sampled_from(
        ["https://c.example.com/check", "ftp://x", "http://[::1]/", "https://x/\n[main]", "http://a\x00"]
    ),
    "os.network.connectivity.interval": st.sampled_from([0, 60, 604800, 604801, -5, True, 3.5, "300", " 60 ", "1e3"]),
    "os.network.connectivity.response": st.sampled_from(["ok", "a\nb", "", "a\rb", "\x1b[31m"]),
    "os.network.wifi.randomMacAddressScan": st.booleans(),
    "os.udevRules": st.dictionaries(
        st.sampled_from(
            ["99-usb", "../../etc/passwd", "/abs", "..", "a b", "x" * 202, "ok.name", "@x", "\ud800", "99-x\n"]
        ),
        st.one_of(st.sampled_from(['ACTION=="add"', "", 'KERNEL=="sd*"\n']), text),
        max_size=3,
    ),
    "country": st.sampled_from(["GB", "de", "00", "", "GBR", "G\n", "gb\noptions x y=z", "\u00dcK"]),
    "apiEndpoint": st.sampled_from(
        ["https://api.example.com", "https://api.example.com/", "nope", "https://x\n[main]"]
    ),
}


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A document with owned keys (well-formed or hostile values, wrong nesting) and unknown keys."""
    document: dict[str, Any] = draw(st.dictionaries(text, json_values, max_size=3))
    for dotted in draw(st.lists(st.sampled_from(sorted(VALID_VALUES)), unique=True, max_size=8)):
        value = draw(st.one_of(VALID_VALUES[dotted], VALID_VALUES[dotted], json_values))
        node = document
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = draw(st.sampled_from([{}, {}, {}, "not-an-object", []]))
            node = node[part]
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return document


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    """config.json's bytes: mostly JSON in varied styles, sometimes mangled or not JSON at all."""
    kind = draw(st.sampled_from(["json"] * 6 + ["mangled", "binary"]))
    if kind == "binary":
        return draw(st.binary(max_size=200))
    document = draw(config_documents())
    indent = draw(st.sampled_from([None, 2, 4, "\t"]))
    raw = json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    if kind == "mangled":
        mangle = draw(st.sampled_from(["truncate", "bom", "duplicate", "big-number", "garbage", "nan"]))
        if mangle == "truncate":
            raw = raw[: draw(st.integers(0, len(raw)))]
        elif mangle == "bom":
            raw = b"\xef\xbb\xbf" + raw
        elif mangle == "duplicate":
            raw = raw.replace(b"{", b'{"hostname": "first", "hostname": "second",', 1)
        elif mangle == "big-number":
            raw = raw.replace(b"{", b'{"os": {"network": {"connectivity": {"interval": ' + b"9" * 5000 + b"}}},", 1)
        elif mangle == "nan":
            raw = raw.replace(b"{", b'{"persistentLogging": NaN, "x": -Infinity,', 1)
        else:
            raw += draw(st.binary(min_size=1, max_size=20))
    return raw


GROUPS = [
    "connection", "wifi", "802-11-wireless", "wifi-security", "802-11-wireless-security", "ethernet", "vpn",
    "vpn-secrets", "ipv4", "802-1x", "gsm", "wireguard-peer.abc", "", "a[b", "wifi\x01", " connection",
]  # fmt: skip
KEYS = [
    "type", "id", "uuid", "ssid", "key-mgmt", "method", "interface-name", "Encoding", "ke y", "name[en]", "name[",
    "a]b", " id", "autoconnect", "dns",
]  # fmt: skip
SECRET_KEYS = ["psk", "password", "wep-key0", "pin", "private-key-password", "secret", "PSK", "psk[en]"]
VALUES = [
    "wifi", "ethernet", "802-3-ethernet", "vpn", "bond", "bogus", "", "home", "\\s\\n\\t", "bad\\escape", "trail\\",
    "5f0c4b8e-8a3b-4a36-9d57-b5a1c0c6a001", "5F0C4B8E-8A3B-4A36-9D57-B5A1C0C6A001", "5f0c4b8e8a3b4a369d57b5a1c0c6a001",
    "0123456789012345678901234567890123456789", "not-a-uuid", "utf-8", "latin1", "auto", "wpa-psk",
]  # fmt: skip
BAD_BYTES = [b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b"\xef\xbb\xbf"]


@st.composite
def keyfile_lines(draw: st.DrawFn) -> bytes:
    """One line of a would-be keyfile.  A secret is only ever the value of a key named as secret."""
    kind = draw(st.sampled_from(["group", "key", "key", "key", "secret", "secret", "other"]))
    if kind == "group":
        return f"[{draw(st.sampled_from(GROUPS))}]".encode() + draw(st.sampled_from([b"", b" ", b"x", b"]"]))
    if kind == "key":
        key = draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=8).filter(lambda k: "=" not in k))
        value = draw(st.sampled_from(VALUES) | st.text(max_size=12))
        if SECRET.lower() in value.lower() or keyfile._is_secret_key(None, key):
            value = ""
        line = f"{key}{draw(st.sampled_from(['=', ' = ', '=', ':']))}{value}".encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 9)) == 0:
            line += draw(st.sampled_from(BAD_BYTES))
        return line
    if kind == "secret":
        key = draw(st.sampled_from(SECRET_KEYS)).encode()
        if draw(st.integers(0, 5)) == 0:  # a corrupted byte inside the key's name
            cut = draw(st.integers(0, len(key)))
            key = key[:cut] + draw(st.sampled_from(BAD_BYTES)) + key[cut:]
        separator = draw(st.sampled_from([b"=", b" = ", b" ", b"==", b"=\\"]))
        value = SECRET.encode() + draw(st.sampled_from([b"", b"", b"\xff", b"\x00", b"\\", b" x", b"\\q"]))
        return key + separator + value
    return draw(
        st.sampled_from([b"", b"# comment", b"; not a comment", b"=value", b"  ", b"[", b"]"])
        | st.binary(max_size=12).filter(lambda b: b"\n" not in b)
    )


@st.composite
def keyfiles(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=100))
    lines = draw(st.lists(keyfile_lines(), max_size=12))
    if draw(st.booleans()):  # most real profiles start with [connection] and a type
        lines = [b"[connection]", b"type=" + draw(st.sampled_from([b"wifi", b"ethernet", b"vpn"])), *lines]
    content = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)
    if draw(st.booleans()):
        content += b"\n"
    return draw(st.sampled_from([b"", b"", b"", b"\xef\xbb\xbf"])) + content


NAMES = [
    b"home", b"home.nmconnection", b"wired", b"office", b"x.ignore", b".hidden", b"a~", b"c.pem", b"...", b"..x",
    b"bad\xffname", b"-rf", b"a b", b"new\nline", b"x" * 255, b"office.config", b"\xc3\xa9t\xc3\xa9",
]  # fmt: skip
file_names = st.one_of(
    st.sampled_from(NAMES),
    st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")),
)


@dataclass
class BootInput:
    config: bytes
    connections: dict[bytes, bytes]
    dispatcher: dict[bytes, bytes]


def config_inputs() -> st.SearchStrategy[BootInput]:
    """A generated config.json beside the usual boot files."""
    connections = {name.encode(): content.encode() for name, content in BOOT_PROFILES.items()}
    dispatcher = {name.encode(): content.encode() for name, content in DISPATCHER_SCRIPTS.items()}
    return st.builds(BootInput, config_bytes(), st.just(connections), st.just(dispatcher))


def boot_file_inputs() -> st.SearchStrategy[BootInput]:
    """Generated boot files beside a valid config.json (without a uuid half the time)."""
    document = first_config()
    return st.builds(
        BootInput,
        st.sampled_from([json.dumps(document).encode(), json.dumps({**document, "uuid": None}).encode()]),
        st.dictionaries(file_names, keyfiles(), max_size=5),
        st.dictionaries(file_names, st.binary(max_size=50), max_size=2),
    )


# --- the device and the properties ---------------------------------------------------------------

# Paths (relative to the root) apply may write; a directory may change when an entry in it does.
DEVICE = Layout("/")


def _relative(*paths: str) -> tuple[str, ...]:
    return tuple(os.path.relpath(path, "/") for path in paths)


TARGET_FILES = _relative(
    DEVICE.etc_hostname,
    DEVICE.authorized_keys,
    DEVICE.journald_dropin,
    DEVICE.nm_dropin,
    DEVICE.chrony_sources,
    DEVICE.dnsmasq_servers,
    DEVICE.modprobe_dropin,
    DEVICE.devmode_env,
    os.path.join(DEVICE.state, "remove_me_to_reset"),
    os.path.join(DEVICE.data, "remove_me_to_reset"),
    DEVICE.config_json,
)
TARGET_DIRS = _relative(
    DEVICE.nm_connections,
    DEVICE.nm_dispatcher,
    DEVICE.udev_rules,
    DEVICE.hostd_state,
    os.path.join(DEVICE.state, "root-overlay"),
    os.path.join(DEVICE.data, "root-overlay"),
)

# What each line of a file rendered from config.json must look like: no value can break out of its line.
_VALUE = r"[^\x00-\x1f\x7f]*"
_WORD = r"[!-~]+"
RENDERED = dict(
    zip(
        _relative(
            DEVICE.etc_hostname,
            DEVICE.dnsmasq_servers,
            DEVICE.chrony_sources,
            DEVICE.nm_dropin,
            DEVICE.journald_dropin,
            DEVICE.authorized_keys,
            DEVICE.modprobe_dropin,
        ),
        (
            r"[a-z0-9-]{1,63}",
            rf"server={_WORD}",
            rf"pool {_WORD} iburst",
            rf"#{_VALUE}|\[[a-z]+\]|[a-z.-]+={_WORD}|response={_VALUE}",
            rf"#{_VALUE}|\[Journal\]|[A-Za-z]+={_WORD}",
            _VALUE,
            r"options cfg80211 ieee80211_regdom=(?:[A-Z]{2}|00)",
        ),
        strict=True,
    )
)


def is_target(path: str) -> bool:
    if path in TARGET_FILES or any(path == d or path.startswith(d + "/") for d in TARGET_DIRS):
        return True
    return any(target.startswith(path + "/") for target in TARGET_FILES + TARGET_DIRS)  # a parent


class Workspace:
    """A device root applied once (built once, copied per example) with a sentinel directory beside it."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hostd-fuzz-"))
        self.template = self.tmp / "template"
        device = DeviceRoot(self.template)
        device.write_config(first_config())
        for name, content in BOOT_PROFILES.items():
            device.boot_profile(name, content)
        Path(device.layout.boot_dispatcher).mkdir()
        for name, content in DISPATCHER_SCRIPTS.items():
            (Path(device.layout.boot_dispatcher) / name).write_text(content)
        with quiet_logs():
            if run_cli(["apply", "--offline", "--root", str(self.template)]).code != 0:
                raise RuntimeError("the template device does not apply cleanly")
        self.root = self.tmp / "root"
        self.sentinel = self.tmp / "sentinel"
        self.sentinel.mkdir()
        (self.sentinel / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (self.sentinel / "dir").mkdir()
        self.sentinel_stamps = stamps(self.sentinel)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def device(self, given: BootInput) -> Layout:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.template, self.root, symlinks=True)
        layout = Layout(self.root)
        Path(layout.config_json).write_bytes(given.config)
        for directory, files in (
            (layout.boot_connections, given.connections),
            (layout.boot_dispatcher, given.dispatcher),
        ):
            shutil.rmtree(directory)
            os.mkdir(directory)
            for name, content in files.items():
                with open(os.path.join(os.fsencode(directory), name), "wb") as file:
                    file.write(content)
        return layout


def check_example(workspace: Workspace, given: BootInput) -> None:
    """Run hostctl on one generated device and assert every property (AssertionError says which)."""
    layout = workspace.device(given)
    root = str(layout.root)
    runs: list[CliRun] = []

    before = stamps(layout.root)
    runs.append(check := run_cli(["config", "check", str(layout.config_json), "--json"]))
    runs.append(planned := run_cli(["plan", "--root", root, "--json"]))
    assert stamps(layout.root) == before, "config check or plan wrote something"
    before_tree = tree(layout.root)
    as_json = bool(len(given.config) % 2)  # both output styles, without another draw
    runs.append(applied := run_cli(["apply", "--offline", "--root", root] + (["--json"] if as_json else [])))
    runs.append(replanned := run_cli(["plan", "--root", root, "--json"]))

    for run in runs:
        assert run.code in (0, 1, 2), run
        assert "Traceback" not in run.stdout + run.stderr, run.stderr
        assert SECRET not in run.stdout + run.stderr, "a secret leaked"
    assert check.code == (0 if json.loads(check.stdout)["valid"] else 1)
    plan_document = json.loads(planned.stdout)
    assert not [s["name"] for s in plan_document["steps"] if s["status"] == "failed"], plan_document
    check_config_errors(plan_document["config"]["errors"], given.config, str(layout.config_json))
    check_rejections(plan_document)
    if as_json:
        applied_document = json.loads(applied.stdout)
        assert not [s for s in applied_document["steps"] if s["status"] == "failed"], applied_document
    assert not [s["changes"] for s in json.loads(replanned.stdout)["steps"] if s["changes"]], "apply did not converge"
    check_writes(before_tree, tree(layout.root), given.config)
    assert stamps(workspace.sentinel) == workspace.sentinel_stamps, "the sentinel outside the root changed"


def check_writes(before: dict[str, Any], after: dict[str, Any], config: bytes) -> None:
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    for path in changed:
        entry = after.get(path)
        if entry is not None and entry[0] == "dir" and before.get(path) is not None:
            continue
        assert is_target(path), f"apply wrote {path}, which is not one of its targets"
    for path, pattern in RENDERED.items():
        entry = after.get(path)
        if entry is not None and path in changed:
            for line in entry[1].decode().splitlines():
                assert re.fullmatch(pattern, line), f"{path}: line {line!r} is not what its reader expects"
    [config_path] = _relative(DEVICE.config_json)
    if config_path in changed:
        written = after[config_path][1]
        uuid = json.loads(written)["uuid"]
        assert json.loads(config).get("uuid") is None and written == config_model.with_key_set(config, "uuid", uuid)


def check_config_errors(errors: list[dict[str, str]], raw: bytes, path: str) -> None:
    """Each error names the file, the JSON pointer of the value and the value itself."""
    document = None
    if errors and all(error["pointer"] for error in errors):
        document = json.loads(raw)
    for error in errors:
        assert error["path"] == path, error
        if not error["pointer"]:
            continue  # the whole file: unreadable, not JSON, ...
        assert document is not None
        present, value = resolve(document, error["pointer"])
        assert present or error["message"].endswith("not an object"), error
        secret = any(error["pointer"].startswith(keys.BY_NAME[name].pointer) for name in keys.SECRET)
        if present and secret:
            assert "withheld" in error["message"] and (not value or _shown(value) not in error["message"]), error
        elif present:
            assert names_value(error["message"], value, error["pointer"]), error


def _shown(value: Any) -> str:
    return config_model._show(value).strip("'")


def resolve(document: Any, pointer: str) -> tuple[bool, Any]:
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def names_value(message: str, value: Any, pointer: str) -> bool:
    candidates = [
        config_model._show(value),
        config_model._show(value, 40),  # an ssh key line is cut shorter
        config_model._show(pointer.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")),
    ]
    if isinstance(value, str):  # a server list's bad item, quoted alone
        candidates += [config_model._show(item) for item in value.split()]
    elif isinstance(value, dict):  # a udev rule's name is the last token of its pointer
        candidates += [config_model._show(key) for key in value]
    return any(candidate in message for candidate in candidates)


def check_rejections(plan_document: dict[str, Any]) -> None:
    """Each rejected boot file is named, with the line or key of the problem when it is in the content."""
    for step in plan_document["steps"]:
        for entry in step["report"]:
            if entry["status"] != "rejected":
                continue
            reason = entry["reason"]
            assert keyfile._quote(entry["name"]) in reason or entry["name"] in reason, entry
            about_content = reason.startswith("keyfile") and not re.search(
                r"the name is not|byte limit|byte order mark", reason
            )
            if about_content:
                assert re.search(r" line \d+|connection\.(type|uuid|id)", reason), entry
