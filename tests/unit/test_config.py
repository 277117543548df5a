from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd import config as cfg
from hostd import generations, keys
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
            "hostname": "-bäd-",
            "persistentLogging": "yes",
            "os": {"dns": {"mode": "sometimes"}, "sshKeys": ["ssh-rsa nope"], "journal": {"systemMaxUse": "lots"}},
        }
    )
    assert "/dnsServers: 'not-an-ip' is not an IPv4 or IPv6 address" in found
    assert any(i.startswith("/hostname: '-bäd-' is not a valid hostname") for i in found)
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


@pytest.mark.parametrize("name", ["ünï", "___", "kitchen\n", "-", 5])
def test_invalid_hostnames(name: object) -> None:
    assert any(i.startswith("/hostname:") for i in issues({"uuid": UUID, "hostname": name}))


@pytest.mark.parametrize(
    ("name", "used"),
    [
        ("My_Device", "my-device"),
        ("dot.ted", "dot-ted"),
        ("spa ce", "spa-ce"),
        ("trailing-", "trailing"),
        ("_lead", "lead"),
        ("a__b", "a-b"),
        ("a" * 64, "a" * 63),
    ],
)
def test_a_name_balenaos_took_is_used_as_the_nearest_label_with_a_warning(name: str, used: str) -> None:
    reading = cfg.read(json.dumps({"uuid": UUID, "hostname": name}).encode())
    assert reading.config.hostname == used and not reading.held_back
    [note] = reading.adjusted
    assert note.pointer == "/hostname" and repr(name) in note.message and repr(used) in note.message


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


def test_non_object_parent_holds_back_every_key_below_it() -> None:
    reading = cfg.read(json.dumps({"uuid": UUID, "os": "x", "hostname": "kept"}).encode())
    below = {key.name for key in keys.TABLE if key.name.startswith("os.")}
    assert {entry.key for entry in reading.held_back} == below
    assert all(entry.message == "/os is 'x', not an object" for entry in reading.held_back)
    assert reading.config.hostname == "kept"


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


def test_with_key_set_rewritten_whole_keeps_a_lone_surrogate_escaped() -> None:
    """A repeated name cannot be spliced: the document is written out whole, and "\\ud800" (valid
    JSON, no UTF-8) stays an escape instead of failing the write (the identity step's uuid)."""
    raw = b'{"note": "\\ud800", "x": 1, "x": 2}'
    new = cfg.with_key_set(raw, "uuid", UUID)
    assert json.loads(new) == {"note": "\ud800", "x": 2, "uuid": UUID}


def keep_as_good(layout: Layout, document: dict) -> None:
    """What the daemon does once a configuration passed its probe."""
    raw = json.dumps(document).encode()
    store = generations.GenerationStore(layout)
    generation = store.save(generations.Inputs(raw))
    assert store.promote(generation, cfg.applied_values(cfg.read(raw).config))
    assert not store.promote(generation, cfg.applied_values(cfg.read(raw).config))  # unchanged: nothing written


def test_load_falls_back_to_the_good_generation(device) -> None:
    layout: Layout = device.layout
    keep_as_good(layout, {"uuid": UUID, "hostname": "good", "dnsServers": "1.1.1.1"})
    device.write_config(b'{"uuid": ')
    broken = cfg.load(layout)
    assert broken.source == "last-known-good"
    assert broken.config.hostname == "good"
    assert broken.error is not None and "not valid JSON" in str(broken.error)
    assert Path(layout.config_json).read_bytes() == b'{"uuid": '  # the user's file is never touched

    device.write_config({"uuid": UUID, "hostname": "new-name", "dnsServers": "1.1.1.1 not-an-ip"})
    loaded = cfg.load(layout)
    assert loaded.source == "config.json" and loaded.error is None
    assert (loaded.config.hostname, loaded.config.dns_servers) == ("new-name", ("1.1.1.1",))
    [held] = loaded.held_back
    assert (held.key, held.pointer, held.fallback) == ("dnsServers", "/dnsServers", "last-known-good")
    assert loaded.problems == (
        f"{layout.config_json}: /dnsServers: 'not-an-ip' is not an IPv4 or IPv6 address; "
        "held back: dnsServers keeps its last-known-good value"
    )


def test_load_reads_the_copy_kept_before_generations(device) -> None:
    """A device updated from a hostd that kept last-known-good as a file: it is read until a generation is good."""
    layout: Layout = device.layout
    Path(layout.last_known_good).parent.mkdir(parents=True)
    Path(layout.last_known_good).write_text(json.dumps({"uuid": UUID, "hostname": "old-good"}))
    device.write_config({"uuid": UUID, "hostname": "bäd name"})
    assert cfg.load(layout).config.hostname == "old-good"
    keep_as_good(layout, {"uuid": UUID, "hostname": "generation"})
    assert cfg.load(layout).config.hostname == "generation"


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


# -- value forms as balena's tools write them ---------------------------------------------------


def read(document: dict) -> cfg.Reading:
    return cfg.read(json.dumps({"uuid": UUID, **document}).encode(), "/mnt/boot/config.json")


def connectivity(**values: object) -> dict:
    return {"os": {"network": {"connectivity": values}}}


@pytest.mark.parametrize("value", [300, "300", " 300 ", "300.0", 300.0, "+300"])
def test_numbers_as_jq_prints_them(value: object) -> None:
    reading = read(connectivity(interval=value))
    assert reading.config.connectivity_interval == 300 and not reading.held_back


@pytest.mark.parametrize("value", ["5m", "3.5", 3.5, "", True, "0x10", [300], "9" * 5000, float("inf")])
def test_not_a_whole_number(value: object) -> None:
    reading = read({"os": {"safeApply": {"timeout": value}}})
    assert reading.config.safe_apply_timeout == 60
    assert [entry.pointer for entry in reading.held_back] == ([] if value == "" else ["/os/safeApply/timeout"])


def test_interval_zero_disables_the_check_as_in_balenaos() -> None:
    assert read(connectivity(interval="0")).config.connectivity_interval == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("True", True),
        (" TRUE ", True),
        ("on", True),
        ("1", True),
        (1, True),
        (False, False),
        ("false", False),
        ("Off", False),
        ("0", False),
        (0, False),
        (None, False),
        ("null", False),
        ("", False),
    ],
)
def test_booleans_as_the_supervisor_reads_them(value: object, expected: bool) -> None:
    reading = read({"developmentMode": value, "persistentLogging": value})
    assert reading.config.development_mode is expected and reading.config.persistent_logging is expected
    assert not reading.held_back


@pytest.mark.parametrize("value", ["yes", "no", 2, -1, 0.5, [], {}])
def test_not_a_boolean(value: object) -> None:
    reading = read({"developmentMode": value})
    [held] = reading.held_back
    assert held.pointer == "/developmentMode" and held.message.endswith("is not true or false")


def test_null_and_the_string_null_mean_unset() -> None:
    unset = read(
        {
            "hostname": "null",
            "country": None,
            "ntpServers": "null",
            "os": {"dns": {"mode": "null"}, "journal": None, "sshKeys": None, "safeApply": {"timeout": "null"}},
        }
    )
    assert not unset.held_back
    assert unset.config == cfg.Config(uuid=UUID)


@pytest.mark.parametrize(("size", "expected"), [("16m", "16M"), (" 1G ", "1G"), (16777216, "16777216"), ("1M", "1M")])
def test_sizes(size: object, expected: str) -> None:
    assert read({"os": {"journal": {"runtimeMaxUse": size}}}).config.runtime_max_use == expected


@pytest.mark.parametrize("size", ["512K", "65G", "lots", "16 MB", True])
def test_sizes_outside_what_journald_runs(size: object) -> None:
    """journald raises a maximum under 1M to 1M: such a value would not be what it runs."""
    [held] = read({"os": {"journal": {"runtimeMaxUse": size}}}).held_back
    assert held.pointer == "/os/journal/runtimeMaxUse" and held.fallback == "default"


def test_server_lists_as_string_or_array() -> None:
    as_string = read({"ntpServers": "Pool.NTP.org 10.0.0.1", "dnsServers": "1.1.1.1 9.9.9.9"}).config
    as_array = read({"ntpServers": ["pool.ntp.org", "10.0.0.1"], "dnsServers": ["1.1.1.1", "9.9.9.9"]}).config
    assert as_string == as_array
    assert as_array.ntp_servers == ("pool.ntp.org", "10.0.0.1")


def test_unknown_keys_are_kept_untouched() -> None:
    document = {"uuid": UUID, "apiKey": "k", "deviceApiKeys": {"api.example.com": "k"}, "os": {"future": [1]}}
    reading = cfg.read(json.dumps(document).encode())
    assert reading.document == document


# -- per-key isolation ------------------------------------------------------------------------


def test_one_bad_value_holds_back_only_its_key() -> None:
    reading = read(
        {
            "hostname": "kitchen",
            "dnsServers": ["1.1.1.1", "not-an-ip", 5],
            "ntpServers": "pool.ntp.org",
            "country": "GBR",
            "developmentMode": "true",
        }
    )
    assert [(entry.key, entry.pointer) for entry in reading.held_back] == [
        ("dnsServers", "/dnsServers/1"),
        ("dnsServers", "/dnsServers/2"),
        ("country", "/country"),
    ]
    config = reading.config
    assert (config.hostname, config.ntp_servers, config.development_mode) == ("kitchen", ("pool.ntp.org",), True)
    assert (config.dns_servers, config.country) == (("8.8.8.8",), None)  # the defaults: no last-known-good
    fallback = cfg.Config(uuid=UUID, dns_servers=("9.9.9.9",), country="DE")
    again = cfg.read(json.dumps({"uuid": UUID, "dnsServers": "bad", "country": "GBR"}).encode(), fallback=fallback)
    assert (again.config.dns_servers, again.config.country) == (("9.9.9.9",), "DE")
    assert {entry.fallback for entry in again.held_back} == {"last-known-good"}


def test_parse_is_strict_for_a_configuration_given_to_hostd() -> None:
    assert issues({"uuid": UUID, "dnsServers": "bad"}) == ["/dnsServers: 'bad' is not an IPv4 or IPv6 address"]


def test_an_invalid_uuid_is_held_back_not_replaced() -> None:
    reading = read({"uuid": "NOT-A-UUID"})
    assert reading.config.uuid is None and not reading.config.uuid_generated  # never written over
    assert [entry.key for entry in reading.held_back] == ["uuid"]


def test_applied_values_round_trip() -> None:
    config = parse(
        {
            "uuid": UUID,
            "hostname": "x",
            "dnsServers": "",
            "os": {"udevRules": {"b": "B", "a": "A"}, "sshKeys": [ED25519_KEY], "journal": {"runtimeMaxUse": 2 << 20}},
            "apiEndpoint": "https://api.example.com",
        }
    )
    assert cfg.config_of_applied(cfg.applied_values(config)) == config
    assert cfg.config_of_applied(b'{"uuid": 5}') is None


# -- secrets ----------------------------------------------------------------------------------------

CREDENTIAL = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "uri",
    [f"https://user:{CREDENTIAL}@c.example.com/check x", f"ftp://u:{CREDENTIAL}@x/", f"https://u:{CREDENTIAL}@x/\n"],
)
def test_secret_bearing_values_are_never_echoed(uri: str) -> None:
    document = {"uuid": UUID, "apiKey": CREDENTIAL, "os": {"network": {"connectivity": {"uri": uri}}}}
    reading = cfg.read(json.dumps(document).encode(), "/mnt/boot/config.json")
    [held] = reading.held_back
    assert held.key in keys.SECRET and held.pointer == "/os/network/connectivity/uri"
    with pytest.raises(cfg.ConfigError) as excinfo:
        cfg.parse(json.dumps(document).encode(), "/mnt/boot/config.json")
    texts = [str(excinfo.value), *map(str, excinfo.value.issues), str(held), held.message]
    assert all(CREDENTIAL not in text for text in texts), texts
    assert "withheld" in held.message


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(keys.SECRET)), json_values)
def test_no_value_of_a_secret_key_reaches_a_message(name: str, value: object) -> None:
    document: dict = {}
    node = document
    *parents, last = name.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = [CREDENTIAL, value] if isinstance(value, list) else {"x": CREDENTIAL} if value is None else value
    reading = cfg.read(json.dumps(document).encode())
    assert all(CREDENTIAL not in str(entry) for entry in reading.held_back)


# -- property: any mix of valid and invalid values applies exactly the valid ones -------------------

ROOT_CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="  # base64 of PEM

VALID = {
    "hostname": ("kitchen", "kitchen"),
    "persistentLogging": ("true", True),
    "os.journal.runtimeMaxUse": ("16m", "16M"),
    "os.journal.systemMaxUse": (64 << 20, str(64 << 20)),
    "dnsServers": (["1.1.1.1"], ("1.1.1.1",)),
    "os.dns.mode": ("exclusive", "exclusive"),
    "os.ntp.mode": ("EXCLUSIVE", "exclusive"),
    "balenaRootCA": (ROOT_CA, ROOT_CA),
    "ntpServers": ("time.example.com", ("time.example.com",)),
    "developmentMode": (1, True),
    "os.sshKeys": ([ED25519_KEY], (ED25519_KEY,)),
    "os.network.connectivity.uri": ("https://c.example.com/", "https://c.example.com/"),
    "os.network.connectivity.interval": ("300", 300),
    "os.network.connectivity.response": ("ok", "ok"),
    "os.network.wifi.randomMacAddressScan": ("off", False),
    "os.udevRules": ({"99-x": "A"}, (("99-x", "A"),)),
    "country": ("gb", "GB"),
    "os.safeApply.timeout": (30.0, 30),
    "os.safeApply.probeName": ("Api.Example.com.", "api.example.com"),
}
INVALID = {
    "hostname": "-ẋ-",
    "persistentLogging": "yes",
    "os.journal.runtimeMaxUse": "1K",
    "os.journal.systemMaxUse": "65G",
    "dnsServers": "1.1.1.1 x",
    "os.dns.mode": "sometimes",
    "os.ntp.mode": "both",
    "balenaRootCA": "bm90IGEgY2VydGlmaWNhdGU=",  # base64, of text without a certificate
    "ntpServers": ["a..b"],
    "developmentMode": 2,
    "os.sshKeys": ["ssh-rsa nope"],
    "os.network.connectivity.uri": "gopher://x",
    "os.network.connectivity.interval": -1,
    "os.network.connectivity.response": "a\nb",
    "os.network.wifi.randomMacAddressScan": "sometimes",
    "os.udevRules": {"../x": "A"},
    "country": "GBR",
    "os.safeApply.timeout": 1,
    "os.safeApply.probeName": "not a name",
}
LAST_KNOWN_GOOD = cfg.Config(
    uuid=UUID,
    hostname="before",
    persistent_logging=False,
    runtime_max_use="2M",
    system_max_use="3M",
    dns_servers=("9.9.9.9",),
    ntp_servers=("old.example.com",),
    ssh_keys=(),
    connectivity_uri="https://old.example.com/",
    connectivity_interval=60,
    connectivity_response="old",
    wifi_random_mac_scan=True,
    udev_rules=(("old", "B"),),
    country="DE",
    safe_apply_timeout=90,
    probe_name="old.example.com",
)


def test_the_property_tables_cover_every_key() -> None:
    assert set(VALID) == set(INVALID) == {key.name for key in keys.TABLE} - {"uuid"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(VALID)), st.booleans()), st.booleans())
def test_any_mix_applies_exactly_the_valid_values(choices: dict[str, bool], with_fallback: bool) -> None:
    document: dict = {"uuid": UUID, "apiKey": "k"}
    for name, valid in choices.items():
        node = document
        *parents, last = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = VALID[name][0] if valid else INVALID[name]
    fallback = LAST_KNOWN_GOOD if with_fallback else None
    reading = cfg.read(json.dumps(document).encode(), fallback=fallback)
    assert {entry.key for entry in reading.held_back} == {name for name, valid in choices.items() if not valid}
    for key in (key for key in keys.TABLE if key.name != "uuid"):
        value = getattr(reading.config, key.attribute)
        if key.name not in choices:
            assert value == key.default_for(document), key.name
        elif choices[key.name]:
            assert value == VALID[key.name][1], key.name
        else:
            expected = getattr(fallback, key.attribute) if fallback else key.default_for(document)
            assert value == expected, key.name
