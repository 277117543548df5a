from __future__ import annotations

import contextlib
import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd import config as cfg
from hostd.layout import Layout

from .conftest import ED25519_KEY, UUID


def parse(document: object) -> cfg.Config:
    return cfg.parse(json.dumps(document).encode(), "/mnt/boot/config.json")[0]


def issues(document: object) -> list[str]:
    with pytest.raises(cfg.ConfigError) as excinfo:
        cfg.parse(json.dumps(document).encode() if not isinstance(document, bytes) else document, "config.json")
    return [str(issue) for issue in excinfo.value.issues]


def test_defaults_match_balenaos() -> None:
    config = parse({"uuid": UUID})
    assert config.dns_servers == ("8.8.8.8",)
    assert config.dns_mode == "append"
    assert config.ntp_servers == ()
    assert config.persistent_logging is False
    assert config.development_mode is False
    assert config.runtime_max_use == "8M"
    assert config.system_max_use == "32M"
    assert config.effective_hostname == UUID[:7]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("8.8.8.8",)),
        ("null", ()),
        ("", ()),
        ("1.1.1.1 9.9.9.9", ("1.1.1.1", "9.9.9.9")),
        (["1.1.1.1", "2606:4700:4700::1111"], ("1.1.1.1", "2606:4700:4700::1111")),
        ("1.1.1.1 1.1.1.1", ("1.1.1.1",)),
    ],
)
def test_dns_servers_balenaos_semantics(value: object, expected: tuple[str, ...]) -> None:
    assert parse({"uuid": UUID, "dnsServers": value}).dns_servers == expected


def test_absent_dns_servers_means_google() -> None:
    assert parse({"uuid": UUID}).dns_servers == ("8.8.8.8",)


def test_every_error_reported_at_once_with_pointer_and_value() -> None:
    found = issues(
        {
            "uuid": UUID,
            "dnsServers": "1.1.1.1 not-an-ip",
            "hostname": "-bad-",
            "persistentLogging": "yes",
            "os": {"dns": {"mode": "sometimes"}, "sshKeys": ["ssh-rsa nope"], "journal": {"systemMaxUse": "lots"}},
        }
    )
    assert "/dnsServers: 'not-an-ip' is not an IPv4 or IPv6 address" in found
    assert any(i.startswith("/hostname: '-bad-' is not a valid hostname") for i in found)
    assert "/persistentLogging: 'yes' is not true or false" in found
    assert any(i.startswith("/os/dns/mode: 'sometimes'") for i in found)
    assert any(i.startswith("/os/sshKeys/0: ") for i in found)
    assert any(i.startswith("/os/journal/systemMaxUse: 'lots'") for i in found)  # as written
    assert len(found) == 6


def test_error_message_names_the_file() -> None:
    with pytest.raises(cfg.ConfigError) as excinfo:
        cfg.parse(b'{"ntpServers": 5}', "/mnt/boot/config.json")
    assert str(excinfo.value) == (
        "/mnt/boot/config.json: /ntpServers: 5 is not a space-separated string or an array of strings"
    )


def test_hostname_folded_to_lowercase() -> None:
    assert parse({"uuid": UUID, "hostname": "MyDevice"}).hostname == "mydevice"


@pytest.mark.parametrize("name", ["a" * 64, "has_underscore", "dot.ted", "trailing-", "spa ce", "ünï"])
def test_invalid_hostnames(name: str) -> None:
    assert any(i.startswith("/hostname:") for i in issues({"uuid": UUID, "hostname": name}))


def test_empty_hostname_falls_back_to_uuid() -> None:
    assert parse({"uuid": UUID, "hostname": ""}).effective_hostname == UUID[:7]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "file is empty"),
        (b"   \n", "file is empty"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "top level is list, not an object"),
        (b'"text"', "top level is str, not an object"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b" " * (cfg.MAX_CONFIG_BYTES + 1), "more than"),
    ],
)
def test_unusable_files(raw: bytes, fragment: str) -> None:
    found = issues(raw)
    assert len(found) == 1 and fragment in found[0]


@pytest.mark.parametrize(("value", "expected"), [("GB", "GB"), ("de", "DE"), ("00", "00"), ("", None), (None, None)])
def test_country_is_an_alpha2_code(value: object, expected: str | None) -> None:
    assert parse({"uuid": UUID, "country": value}).country == expected


@pytest.mark.parametrize("value", ["GBR", "G", "G1", "gb\n", " GB", "ÜK", "01", 44])
def test_invalid_country_names_the_value(value: object) -> None:
    (found,) = issues({"uuid": UUID, "country": value})
    assert found.startswith(f"/country: {value!r} is not "), found


def test_booleans_are_not_integers() -> None:
    assert any(
        "/os/network/connectivity/interval" in i
        for i in issues({"uuid": UUID, "os": {"network": {"connectivity": {"interval": True}}}})
    )


def test_non_object_parent_is_reported() -> None:
    assert "/os: 'x' is not an object" in issues({"uuid": UUID, "os": "x"})


def test_connectivity_uri_defaults_from_api_endpoint() -> None:
    config = parse({"uuid": UUID, "apiEndpoint": "https://api.example.com/"})
    assert config.connectivity_uri == "https://api.example.com/connectivity-check"
    assert config.connectivity_interval == 3600


def test_ssh_keys_validated() -> None:
    assert parse({"uuid": UUID, "os": {"sshKeys": [ED25519_KEY]}}).ssh_keys == (ED25519_KEY,)
    options_key = 'from="10.0.0.0/8",no-pty ' + ED25519_KEY
    assert parse({"uuid": UUID, "os": {"sshKeys": [options_key]}}).ssh_keys == (options_key,)
    mismatched = ED25519_KEY.replace("ssh-ed25519", "ssh-rsa", 1)
    assert any("does not match its key type" in i for i in issues({"uuid": UUID, "os": {"sshKeys": [mismatched]}}))


def test_missing_uuid_is_generated() -> None:
    config = parse({"hostname": "x"})
    assert config.uuid_generated and config.uuid and len(config.uuid) == 32
    assert all(c in string.hexdigits for c in config.uuid)


def test_changed_keys() -> None:
    old = parse({"uuid": UUID})
    new = parse({"uuid": UUID, "dnsServers": "1.1.1.1", "unowned": 1})
    assert cfg.changed_keys(old, new) == {"dnsServers"}
    assert cfg.changed_keys(old, old) == frozenset()


def test_with_key_set_keeps_every_other_byte() -> None:
    raw = b'{\n    "apiKey": "k",\n    "z": [1, 2],\n    "a": {"b": 1}\n}\n'
    new = cfg.with_key_set(raw, "uuid", UUID)
    assert (
        new == b'{\n    "uuid": "' + UUID.encode() + b'",\n    "apiKey": "k",\n    "z": [1, 2],\n    "a": {"b": 1}\n}\n'
    )
    replaced = cfg.with_key_set(new, "uuid", "f" * 32)
    assert replaced == new.replace(UUID.encode(), b"f" * 32)
    assert json.loads(cfg.with_key_set(b"{}", "uuid", UUID)) == {"uuid": UUID}


def test_load_falls_back_to_last_known_good(device) -> None:
    layout: Layout = device.layout
    device.write_config({"uuid": UUID, "hostname": "good"})
    loaded = cfg.load(layout)
    assert loaded.source == "config.json"
    assert cfg.save_last_known_good(layout, loaded.raw)
    assert not cfg.save_last_known_good(layout, loaded.raw)  # unchanged: nothing written
    device.write_config(b'{"uuid": ')
    broken = cfg.load(layout)
    assert broken.source == "last-known-good"
    assert broken.config.hostname == "good"
    assert broken.error is not None and "not valid JSON" in str(broken.error)
    assert layout.config_json.read_bytes() == b'{"uuid": '  # the user's file is never touched


def test_load_without_any_config_uses_defaults(device) -> None:
    loaded = cfg.load(device.layout)
    assert loaded.source == "defaults"
    assert loaded.error is not None and "file is missing" in str(loaded.error)


# -- property-based ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
owned_keys = st.sampled_from(
    ["uuid", "hostname", "dnsServers", "ntpServers", "persistentLogging", "developmentMode", "os", "apiEndpoint"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(owned_keys | st.text(max_size=8), json_values, max_size=8))
def test_any_json_object_parses_or_raises_config_error(document: dict) -> None:
    try:
        config, kept = cfg.parse(json.dumps(document).encode())
    except cfg.ConfigError as exc:
        assert exc.issues and all(issue.message for issue in exc.issues)
        return
    assert kept == document  # nothing is dropped or changed in the document
    assert config.effective_hostname is None or cfg.is_hostname_label(config.effective_hostname)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_config_error(raw: bytes) -> None:
    with contextlib.suppress(cfg.ConfigError):
        cfg.parse(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), json_values, max_size=6),
    st.sampled_from([0, 2, 4]),
)
def test_with_key_set_preserves_document(document: dict, indent: int) -> None:
    raw = json.dumps(document, indent=indent or None).encode()
    new = cfg.with_key_set(raw, "uuid", UUID)
    assert json.loads(new) == {**document, "uuid": UUID}
    if "uuid" not in document:
        assert raw.replace(b" ", b"").replace(b"\n", b"")[1:] in new.replace(b" ", b"").replace(b"\n", b"")
