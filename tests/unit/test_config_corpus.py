"""The compatibility corpus: config.json as balena's tools write it, and its effect key by key.

Each document in tests/data/config-corpus/ (see its README.md for what each is shaped as) is read
as hostd reads the device's file.  Every owned key either has the value listed here, or — when
not listed — its default; the keys listed as held back, and only they, are held back.  Unknown
keys are left as they are, and the only byte hostd writes into such a file is a missing uuid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hostd import config as cfg
from hostd import keys

CORPUS = Path(__file__).parents[1] / "data" / "config-corpus"
KEY_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm user@laptop"
KEY_2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywt user@desktop"
DOCS_SAMPLE = {
    "hostname": "my-custom-hostname",
    "persistentLogging": True,
    "country": "GB",
    "ntpServers": ("ntp-wwv.nist.gov", "resinio.pool.ntp.org"),
    "dnsServers": ("208.67.222.222", "8.8.8.8"),
    "os.network.connectivity.uri": "https://api.balena-cloud.com/connectivity-check",
    "os.network.connectivity.interval": 300,
    "os.network.connectivity.response": "optional value in the response",
    "os.network.wifi.randomMacAddressScan": False,
    "os.udevRules": (
        ("56", 'ENV{ID_FS_LABEL_ENC}=="resin-root*", SYMLINK+="disk/by-state/active"'),
        ("64", 'ACTION!="add|change", GOTO="rules_end"\nKERNEL=="ttyACM*", TAG+="systemd"\nLABEL="rules_end"\n'),
    ),
}
API = {
    "os.network.connectivity.uri": "https://api.balena-cloud.com/connectivity-check",
    "os.safeApply.probeName": "api.balena-cloud.com",
}

# file -> (values differing from the defaults, keys held back, pointers of values adjusted)
EXPECTED: dict[str, tuple[dict[str, Any], set[str], set[str]]] = {
    "docs-sample.json": ({**DOCS_SAMPLE, "os.sshKeys": (KEY_1, KEY_2)}, set(), set()),
    "docs-sample-placeholder-keys.json": (DOCS_SAMPLE, {"os.sshKeys"}, set()),
    "docs-provisioned-device.json": (
        {**API, "uuid": "f220105b5a8aa79b6359d2df76a73954", "hostname": "debug-device", "developmentMode": True},
        set(),
        set(),
    ),
    "cli-config-generate.json": ({**API, "developmentMode": True, "os.sshKeys": (KEY_1,)}, set(), set()),
    "cli-os-configure-device.json": (
        {**API, "uuid": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"},
        set(),
        set(),
    ),
    "supervisor-written.json": (
        {
            **API,
            "uuid": "5f0c4b8e8a3b4a369d57b5a1c0c6a001",
            "hostname": "my-device",
            "persistentLogging": True,
            "os.network.connectivity.interval": 600,
        },
        set(),
        {"/hostname"},
    ),
    "balenaos-null-forms.json": (
        {"uuid": "0123456789abcdef0123456789abcdef", "dnsServers": (), "os.network.connectivity.interval": 0},
        set(),
        set(),
    ),
}


def test_the_corpus_is_covered() -> None:
    assert {path.name for path in CORPUS.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_effect_key_by_key(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    reading = cfg.read(raw, name)
    values, held_back, adjusted = EXPECTED[name]
    assert {entry.key for entry in reading.held_back} == held_back
    assert {note.pointer for note in reading.adjusted} == adjusted
    assert set(values) <= set(keys.BY_NAME)
    for key in keys.TABLE:
        actual = getattr(reading.config, key.attribute)
        if key.name == "uuid" and key.name not in values:
            assert reading.config.uuid_generated and len(actual) == 32  # generated, written back
        else:
            assert actual == values.get(key.name, key.default), key.name
    assert reading.document == json.loads(raw)  # unknown keys as they are


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_a_missing_uuid_is_ever_written(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    config = cfg.read(raw, name).config
    if config.uuid_generated:
        written = cfg.with_key_set(raw, "uuid", config.uuid)
        assert json.loads(written) == {**json.loads(raw), "uuid": config.uuid}
        assert cfg.read(written, name).config.uuid == config.uuid
