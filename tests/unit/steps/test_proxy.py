"""proxy: redsocks' file and the nftables table from the boot partition's ``system-proxy/``."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hostd import generations
from hostd.steps import proxy
from hostd.steps.base import StepStatus
from hostd.watch import ConfigWatch

from ..conftest import UUID
from .fakes import services

CONF = """\
base { log_debug = off; log_info = on; log = "syslog:local7"; daemon = on; redirector = iptables; }
redsocks {
    type = socks5;   // the proxy
    ip = 192.0.2.10;
    port = 1080;
    local_ip = 127.0.0.1;
    local_port = 12345;
    login = "alice";
    password = "s3cret pass";
}
/* balenaOS's DNS over TCP */
dnsu2t { local_ip = 127.0.0.1; local_port = 5313; remote_ip = 1.1.1.1; remote_port = 53; }
"""


def write_proxy(device, conf: str | None, no_proxy: str | None = None) -> None:
    directory = Path(device.layout.boot_proxy)
    directory.mkdir(exist_ok=True)
    for name, content in (("redsocks.conf", conf), ("no_proxy", no_proxy)):
        if content is None:
            (directory / name).unlink(missing_ok=True)
        else:
            (directory / name).write_text(content)


@pytest.fixture
def proxied(device):
    device.write_config({"uuid": UUID})
    write_proxy(device, CONF, "203.0.113.0/24\n2001:db8:1::5\n")
    return device


def test_redsocks_runs_the_named_proxy_with_hostds_base(proxied) -> None:
    result = proxied.run_step(proxy)
    assert result.status == StepStatus.CHANGED and not result.problems
    conf = Path(proxied.layout.redsocks_conf)
    assert os.stat(conf).st_mode & 0o777 == 0o600  # the credentials
    text = conf.read_text()
    assert proxy.parse_redsocks_conf(text) == proxy.ProxyServer(
        "socks5", "192.0.2.10", 1080, 12345, "alice", "s3cret pass"
    )
    assert "daemon = off;" in text and "log = stderr;" in text and "local_ip = 0.0.0.0;" in text
    assert "dnsu2t" not in text  # redsocks 0.5 would refuse the file


def test_what_is_in_force_says_the_policies_and_never_the_credentials(proxied) -> None:
    record = proxied.run_step(proxy).record
    shown = record.as_dict()
    assert shown["server"] == "socks5 192.0.2.10:1080"
    assert shown["noProxy"] == "203.0.113.0/24 2001:db8:1::5/128"
    assert "direct" in shown["udp"] and "dnsu2t" in shown["rejected"] and "refused" in shown["ipv6"]
    assert "alice" not in repr(record) and "s3cret" not in repr(record) and "s3cret" not in str(shown)


def test_rules_exempt_private_ranges_no_proxy_and_the_proxy_itself(proxied) -> None:
    proxied.run_step(proxy)
    rules = Path(proxied.layout.proxy_rules).read_text()
    assert rules.startswith("# Written by hostd") and "delete table inet hostd_proxy" in rules
    exempt4 = rules.split("set exempt4")[1].split("}")[0]
    for net in ("10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.0/24"):
        assert net in exempt4
    assert "192.0.2.10" in exempt4 and "224.0.0.0/3" in exempt4  # the proxy; multicast and reserved merged
    exempt6 = rules.split("set exempt6")[1].split("}")[0]
    assert "fe80::/10" in exempt6 and "fc00::/7" in exempt6 and "ff00::/8" in exempt6 and "2001:db8:1::5" in exempt6
    assert "redirect to :12345" in rules and 'iifname "balena0" jump proxied' in rules


def test_overlapping_exemptions_are_merged_for_the_interval_set() -> None:
    server = proxy.ProxyServer("socks5", "192.0.2.10", 1080, 12345)
    rules = proxy.render_rules(server, [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("192.0.2.0/24")])
    exempt4 = rules.split("set exempt4")[1].split("}")[0]
    assert "10.1.0.0/16" not in exempt4 and "192.0.2.10" not in exempt4 and "192.0.2.0/24" in exempt4


def test_converged_writes_nothing(proxied) -> None:
    proxied.run_step(proxy)
    before = proxied.snapshot()
    result = proxied.run_step(proxy)
    assert result.status == StepStatus.OK and not result.changes and proxied.snapshot() == before


def test_a_bad_no_proxy_line_is_rejected_alone(proxied) -> None:
    write_proxy(proxied, CONF, "203.0.113.0/24\nproxy.example.com\n\n# comment\n198.51.100.7 # the NAS\n")
    result = proxied.run_step(proxy)
    assert result.problems == [
        f"{Path(proxied.layout.boot_proxy) / 'no_proxy'}: line 2: 'proxy.example.com' is not an IP address or subnet; "
        "line ignored"
    ]
    assert result.record.no_proxy == ("203.0.113.0/24", "198.51.100.7/32")
    assert "198.51.100.7" in Path(proxied.layout.proxy_rules).read_text()


@pytest.mark.parametrize(
    ("conf", "line", "reason"),
    [
        ("redsocks { type = socks5; ip = 192.0.2.1; port = 99999; }", 1, "not a port"),
        ("redsocks {\n type = socks6;\n ip = 192.0.2.1; port = 1080; }", 2, "type 'socks6'"),
        ("redsocks {\n ip = proxy.example.com;\n type = socks5; port = 1080; }", 2, "not an IP address"),
        ("redsocks { ip = 2001:db8::1; type = socks5; port = 1080; }", 1, "IPv4 proxies only"),
        ("redsocks { type = socks5; port = 1080; }", 1, "'ip' is missing"),
        ("base { }\n\nredsocks { type = socks5\n ip = 192.0.2.1; port = 1; }", 4, "';' expected"),
        ("redsocks { type = socks5; ip = 192.0.2.1; port = 1; colour = blue; }", 1, "unknown key 'colour'"),
        ("redsock { }", 1, "unknown section"),
        ("base { log = stderr; }", 1, "no 'redsocks { ... }' section"),
        ('redsocks { login = "open; }', 1, "unterminated string"),
    ],
)
def test_a_bad_redsocks_conf_is_rejected_with_its_line_and_what_runs_stays(proxied, conf, line, reason) -> None:
    proxied.run_step(proxy)
    write_proxy(proxied, conf)
    before = proxied.snapshot()
    result = proxied.run_step(proxy)
    [problem] = result.problems
    assert problem.startswith(f"{Path(proxied.layout.boot_proxy) / 'redsocks.conf'}: line {line}: ")
    assert reason in problem and "the proxy in force is left as it is" in problem
    assert not result.changes and result.record is None and proxied.snapshot() == before


def test_no_directory_no_proxy_and_what_ran_is_removed(proxied) -> None:
    proxied.run_step(proxy)
    write_proxy(proxied, None, None)
    Path(proxied.layout.boot_proxy).rmdir()
    result = proxied.run_step(proxy)
    assert {change.kind for change in result.changes} == {"remove"}
    assert not Path(proxied.layout.redsocks_conf).exists() and not Path(proxied.layout.proxy_rules).exists()
    assert result.record.as_dict() == {"state": "off"}


def test_the_proxy_files_are_part_of_a_generation_and_watched(proxied) -> None:
    inputs = generations.read_inputs(proxied.layout, Path(proxied.layout.config_json).read_bytes())
    assert inputs.files["system-proxy/redsocks.conf"] == CONF.encode()
    watch = ConfigWatch(proxied.layout, lambda: asyncio.sleep(0))
    before = watch.stamp()
    write_proxy(proxied, CONF, "203.0.113.0/25\n")
    assert watch.stamp() != before


def test_neither_nft_nor_systemd_is_touched_for_a_root_directory(proxied) -> None:
    result = proxied.run_step(proxy)
    outcome = asyncio.run(proxy.apply_live(services(), proxied.context(), result))
    assert not outcome.problems and not outcome.made


def test_redsocks_is_degraded_only_while_a_proxy_wants_it() -> None:
    from hostd.bus.redsocks import REDSOCKS_UNIT, Redsocks

    redsocks = Redsocks()
    asyncio.run(redsocks.start())
    redsocks.follow_unit(REDSOCKS_UNIT, "inactive")
    assert redsocks.available  # no proxy: not running is no loss
    redsocks.want(True)
    redsocks.follow_unit(REDSOCKS_UNIT, "failed")
    assert redsocks.degraded_reason == f"{REDSOCKS_UNIT} is failed"
    redsocks.follow_unit(REDSOCKS_UNIT, "active")
    assert redsocks.available
    redsocks.follow_unit(REDSOCKS_UNIT, "inactive")
    redsocks.want(False)
    assert redsocks.available


@pytest.mark.skipif(shutil.which("redsocks") is None, reason="redsocks is not installed")
def test_the_distributions_redsocks_accepts_the_file_hostd_writes(proxied) -> None:
    proxied.run_step(proxy)
    checked = subprocess.run(
        ["redsocks", "-t", "-c", str(proxied.layout.redsocks_conf)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft, as root")
def test_nft_accepts_the_table_hostd_writes(proxied) -> None:
    proxied.run_step(proxy)
    checked = subprocess.run(
        ["nft", "--check", "-f", str(proxied.layout.proxy_rules)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
