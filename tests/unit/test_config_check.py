"""`hostctl config check`: per key what applies and what is held back; exit 1 when a key is held back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostd import cli, engine, layout
from hostd import config as cfg
from hostd.steps.base import Context

from .conftest import UUID


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "config.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    code = cli.main(["config", "check", str(path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, {"uuid": UUID, "developmentMode": "true"}, "--json")
    document = json.loads(out)
    assert code == 0 and document["valid"] and document["errors"] == [] and document["heldBack"] == []
    assert document["config"]["developmentMode"] is True and not document["uuid_generated"]
    rows = {row["key"]: row for row in document["keys"]}
    assert rows["developmentMode"] == {"key": "developmentMode", "status": "set", "value": True}
    assert rows["dnsServers"] == {"key": "dnsServers", "status": "default", "value": ["8.8.8.8"]}


def test_held_back_key_per_key_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    credential = "hunter2"
    document = {
        "uuid": UUID,
        "hostname": "my_device",
        "dnsServers": "1.1.1.1 nope",
        "os": {"network": {"connectivity": {"uri": f"https://me:{credential}@c.example.com/", "interval": "300"}}},
    }
    code, out, err = check(tmp_path, capsys, document, "--json")
    result = json.loads(out)
    assert code == 1 and not result["valid"] and result["readable"]
    assert result["errors"] == [{"pointer": "/dnsServers", "message": "'nope' is not an IPv4 or IPv6 address"}]
    assert result["heldBack"] == [
        {
            "key": "dnsServers",
            "pointer": "/dnsServers",
            "message": "'nope' is not an IPv4 or IPv6 address",
            "fallback": "default",
        }
    ]
    rows = {row["key"]: row for row in result["keys"]}
    assert rows["dnsServers"] == {
        "key": "dnsServers",
        "status": "held-back",
        "value": ["8.8.8.8"],
        "fallback": "default",
    }
    assert rows["hostname"]["value"] == "my-device" and rows["os.network.connectivity.interval"]["value"] == 300
    assert result["warnings"][0]["pointer"] == "/hostname"
    assert credential not in out + err

    code, out, err = check(tmp_path, capsys, document)
    assert code == 1 and out.startswith(f"{tmp_path / 'config.json'}: 1 key held back\n")
    assert any(line.split()[:2] == ["dnsServers", "held-back"] for line in out.splitlines())
    assert "/dnsServers: 'nope' is not an IPv4 or IPv6 address" in err and "warning: /hostname:" in err
    assert credential not in out + err


def test_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, "{", "--json")
    result = json.loads(out)
    assert (
        code == 1 and result["readable"] and not result["valid"] and "not valid JSON" in result["errors"][0]["message"]
    )
    assert "config" not in result


def test_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "check", str(tmp_path / "missing.json")]) == 2


def test_the_devices_own_file_falls_back_to_its_last_known_good(
    device, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    device.write_config({"uuid": UUID, "dnsServers": "1.1.1.1"})
    loaded = cfg.load(device.layout)
    engine.apply_loaded(loaded, Context(loaded.config, device.layout))  # kept as the good generation
    device.write_config({"uuid": UUID, "dnsServers": "nope"})
    monkeypatch.setattr(layout, "Layout", lambda: device.layout)
    assert cli.main(["config", "check", "--json"]) == 1
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)["keys"]}
    assert rows["dnsServers"] == {
        "key": "dnsServers",
        "status": "held-back",
        "value": ["1.1.1.1"],
        "fallback": "last-known-good",
    }
