"""The pure parts of the supervisor's API: config.json keys set in place (nested too), and profiles
shown without their secrets."""

from __future__ import annotations

import json

from hostd import boot_profiles, config, keyfile

BALENA = b'{\n  "apiKey": "k",\n  "os": {"sshKeys": [ ],  "dns" : {"mode": "append"}},\n  "applicationId": 7\n}\n'


def test_nested_key_replaced_in_place_every_other_byte_kept() -> None:
    new = config.with_keys_set(BALENA, {"os.dns.mode": "exclusive"})
    assert new == BALENA.replace(b'"mode": "append"', b'"mode": "exclusive"')


def test_missing_parents_are_created_inside_the_existing_object() -> None:
    new = config.with_keys_set(BALENA, {"os.network.connectivity.interval": 0, "dnsServers": ["1.1.1.1"]})
    assert json.loads(new) == {
        "dnsServers": ["1.1.1.1"],
        "apiKey": "k",
        "os": {"network": {"connectivity": {"interval": 0}}, "sshKeys": [], "dns": {"mode": "append"}},
        "applicationId": 7,
    }
    assert (
        b'"apiKey": "k",\n' in new
        and b'"sshKeys": [ ],  "dns" : {"mode": "append"}},\n  "applicationId": 7\n}\n' in new
    )


def test_a_parent_that_is_not_an_object_or_a_repeated_name_is_written_whole() -> None:
    assert json.loads(config.with_keys_set(b'{"os": "x"}', {"os.dns.mode": "append"})) == {
        "os": {"dns": {"mode": "append"}}
    }
    repeated = b'{"hostname": "a", "hostname": "b"}'
    assert json.loads(config.with_keys_set(repeated, {"hostname": "c"})) == {"hostname": "c"}


def test_secrets_are_left_out_of_a_listed_profile() -> None:
    text = (
        "[connection]\nid=x\ntype=wifi\n[wifi]\nssid=s\n[wifi-security]\npsk=secret1\n[vpn-secrets]\nanything=secret2\n"
    )
    shown = keyfile.without_secrets(text)
    assert "secret1" not in shown and "secret2" not in shown and "ssid=s" in shown


def test_names_the_import_would_skip_are_refused() -> None:
    for name in ("x.ignore", ".hidden", "office.config", "a/b"):
        try:
            boot_profiles.check(name, "[connection]\ntype=ethernet\n")
        except ValueError:
            continue
        raise AssertionError(name)
    assert boot_profiles.check("wired", None) is None
