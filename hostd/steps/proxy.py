"""The system proxy from the boot partition (``system-proxy/``): redsocks and one nftables table.

balenaOS's files, with their meaning: ``redsocks.conf`` names the proxy (its ``redsocks {}``
section; ``base {}`` and ``dnsu2t {}`` are read too), ``no_proxy`` lists the addresses and
subnets not to proxy, one a line.  Unlike balenaOS:

- every outgoing TCP connection of the host and of the containers (the balena bridges, in
  prerouting) that is not exempt goes to redsocks, over IPv4; over IPv6 it is refused with a TCP
  reset, because Debian's redsocks (0.5) carries IPv4 only: nothing bypasses the proxy silently;
- UDP is not proxied (redsocks 0.5 has no ``dnsu2t``): DNS and NTP go direct, and the ``Proxy``
  property says so;
- the rules are one table, ``inet hostd_proxy``, replaced whole by ``nft -f`` (atomic);
- a bad ``redsocks.conf`` is rejected with its file, line and reason and changes nothing (the
  rules in force stay); a bad ``no_proxy`` line is rejected alone.

Never redirected: loopback, private, link-local, multicast and reserved ranges, the proxy itself.
Live: ``hostd-redsocks.service`` (re)started when its file changed, stopped when the directory
goes away; the table loaded when its file changed or the kernel lost it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Iterator

from hostd import keys
from hostd.record import Record
from hostd.steps.base import Context, Event, Outcome, Plan, StepResult, plan_file
from hostd.steps.imports import read_plain_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from hostd.bus.services import Services

NAME = "proxy"
KEYS: frozenset[str] = keys.read_by(NAME)  # none: follows the boot partition's files
TRIGGERS = frozenset({Event.REDSOCKS_RETURNED, Event.SYSTEMD_ATTACHED})

TABLE = "hostd_proxy"
DEFAULT_LOCAL_PORT = 12345
MAX_FILE_BYTES = 64 * 1024
# The balena bridges: the supervisor's and the containers' traffic arrives through them.
BRIDGES = ("balena0", "resin-dns", "supervisor0", "br-*")
UDP_POLICY = "direct: the distribution's redsocks (0.5) carries no UDP (no dnsu2t); DNS and NTP are not proxied"
IPV6_POLICY = "refused (TCP reset): the distribution's redsocks (0.5) carries IPv4 only"

NEVER_PROXIED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",  # unspecified and loopback
        "::ffff:0:0/96",  # IPv4-mapped: the IPv4 rules decide
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

# What redsocks 0.5 knows: proxy types, and the keys of each section.
PROXY_TYPES = ("socks4", "socks5", "http-connect", "http-relay")
SECTIONS: dict[str, frozenset[str]] = {
    "base": frozenset({"log_debug", "log_info", "log", "daemon", "user", "group", "chroot", "redirector"}),
    "redsocks": frozenset(
        {"local_ip", "local_port", "ip", "port", "type", "login", "password", "listenq"}
        | {"min_accept_backoff", "max_accept_backoff"}
    ),
    "redudp": frozenset({"local_ip", "local_port", "ip", "port", "login", "password", "dest_ip", "dest_port"})
    | frozenset({"udp_timeout", "udp_timeout_stream"}),
    "dnsu2t": frozenset({"local_ip", "local_port", "remote_ip", "remote_port", "remote_timeout", "inflight_max"}),
}


class ConfError(ValueError):
    """A redsocks.conf that cannot be used, with the line at fault."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


class ProxyServer(Record):
    __slots__ = ("ignored", "ip", "local_port", "login", "password", "port", "type")

    def __init__(
        self,
        type: str,
        ip: str,
        port: int,
        local_port: int,
        login: str = "",
        password: str = "",
        ignored: tuple[str, ...] = (),
    ) -> None:
        self.type = type
        self.ip = ip
        self.port = port
        self.local_port = local_port
        self.login = login
        self.password = password
        self.ignored = ignored  # sections read but not carried out, with why

    def __repr__(self) -> str:  # the credentials are never shown
        return f"ProxyServer(type={self.type!r}, ip={self.ip!r}, port={self.port!r}, local_port={self.local_port!r})"


class InForce(Record):
    """What the proxy step put in force (the ``Proxy`` property); no credentials."""

    __slots__ = ("no_proxy", "problems", "server")

    def __init__(self, server: str = "", no_proxy: tuple[str, ...] = (), problems: tuple[str, ...] = ()) -> None:
        self.server = server  # "type ip:port"; "" = no proxy
        self.no_proxy = no_proxy  # the user's exempt addresses and subnets
        self.problems = problems

    def as_dict(self) -> dict[str, str]:
        if not self.server:
            return {"state": "off"}
        return {
            "state": "on",
            "server": self.server,
            "noProxy": " ".join(self.no_proxy),
            "ipv6": IPV6_POLICY,
            "udp": UDP_POLICY,
            "rejected": "; ".join(self.problems),
        }


_TOKEN = re.compile(r'\s+|//[^\n]*|#[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|[{};=]|[^\s{};="]+', re.S)


def _tokens(text: str) -> Iterator[tuple[int, str]]:
    """(line, token) pairs of redsocks' config syntax, comments and blanks dropped."""
    line, position = 1, 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:  # only an opening quote without its closing one matches nothing
            raise ConfError(line, "unterminated string")
        token = found.group()
        if not token.isspace() and not token.startswith(("//", "#", "/*")):
            yield line, token
        line += token.count("\n")
        position = found.end()


class Section(Record):
    __slots__ = ("entries", "line")

    def __init__(self, line: int, entries: dict[str, tuple[int, str]]) -> None:
        self.line = line  # where its name is
        self.entries = entries  # key -> (line, value)


def parse_sections(text: str) -> dict[str, Section]:
    """The sections, as redsocks reads ``name { key = value; ... }``."""
    sections: dict[str, Section] = {}
    tokens = list(_tokens(text))
    index = 0

    def take(what: str) -> tuple[int, str]:
        nonlocal index
        if index >= len(tokens):
            raise ConfError(tokens[-1][0] if tokens else 1, f"file ends where {what} was expected")
        index += 1
        return tokens[index - 1]

    while index < len(tokens):
        section_line, name = take("a section name")
        if name not in SECTIONS:
            raise ConfError(section_line, f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
        if name in sections:
            raise ConfError(section_line, f"a second {name!r} section; hostd runs one proxy")
        brace_line, brace = take("'{'")
        if brace != "{":
            raise ConfError(brace_line, f"'{{' expected after {name!r}")
        entries: dict[str, tuple[int, str]] = {}
        while True:
            line, key = take(f"a key or '}}' in {name!r}")
            if key == "}":
                break
            if key not in SECTIONS[name]:
                raise ConfError(line, f"{name}: unknown key {key!r}")
            equals_line, equals = take("'='")
            if equals != "=":
                raise ConfError(equals_line, f"{name}: '=' expected after {key!r}")
            value_line, value = take(f"the value of {key!r}")
            if value in "{};=":
                raise ConfError(value_line, f"{name}: {key!r} has no value")
            end_line, end = take("';'")
            if end != ";":
                raise ConfError(end_line, f"{name}: ';' expected after the value of {key!r}")
            entries[key] = (line, value.removeprefix('"').removesuffix('"') if value.startswith('"') else value)
        sections[name] = Section(section_line, entries)
    return sections


def _port(section: str, key: str, entry: tuple[int, str]) -> int:
    line, value = entry
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfError(line, f"{section}: {key} {value!r} is not a port (1-65535)")
    return int(value)


def parse_redsocks_conf(text: str) -> ProxyServer:
    """The proxy a redsocks.conf names; ConfError (with its line) when redsocks could not use it."""
    sections = parse_sections(text)
    section = sections.get("redsocks")
    if section is None:
        raise ConfError(1, "no 'redsocks { ... }' section: it names the proxy")
    proxy = section.entries
    if "type" in proxy and proxy["type"][1] not in PROXY_TYPES:
        line, kind = proxy["type"]
        raise ConfError(line, f"redsocks: type {kind!r} is not one of {', '.join(PROXY_TYPES)}")
    for required in ("ip", "port", "type"):
        if required not in proxy:
            raise ConfError(section.line, f"redsocks: {required!r} is missing")
    line, address = proxy["ip"]
    try:
        server_ip = ipaddress.ip_address(address)
    except ValueError:
        raise ConfError(line, f"redsocks: ip {address!r} is not an IP address (redsocks takes no host name)") from None
    if server_ip.version != 4:
        raise ConfError(line, f"redsocks: ip {address}: the distribution's redsocks (0.5) reaches IPv4 proxies only")
    ignored = []
    if "dnsu2t" in sections:
        ignored.append("dnsu2t: the distribution's redsocks (0.5) has no dnsu2t; DNS goes direct")
    if "redudp" in sections:
        ignored.append("redudp: not used (UDP goes direct)")
    return ProxyServer(
        type=proxy["type"][1],
        ip=str(server_ip),
        port=_port("redsocks", "port", proxy["port"]),
        local_port=_port("redsocks", "local_port", proxy["local_port"])
        if "local_port" in proxy
        else DEFAULT_LOCAL_PORT,
        login=proxy.get("login", (0, ""))[1],
        password=proxy.get("password", (0, ""))[1],
        ignored=tuple(ignored),
    )


def parse_no_proxy(text: str, path: str) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], list[str]]:
    """The exempt networks, and one problem per line that is not an address or subnet."""
    networks, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            problems.append(f"{path}: line {number}: {entry!r} is not an IP address or subnet; line ignored")
    return networks, problems


def _quote(value: str) -> str:
    # The value as it stood between quotes in the boot file: redsocks reads it the same way again.
    return f'"{value}"'


def render_redsocks_conf(server: ProxyServer) -> str:
    """The file redsocks runs with: hostd's base (foreground, to the journal, unprivileged), the proxy."""
    credentials = "".join(
        f"    {key} = {_quote(value)};\n"
        for key, value in (("login", server.login), ("password", server.password))
        if value
    )
    return (
        "// Written by hostd from /mnt/boot/system-proxy/redsocks.conf; edits here are replaced.\n"
        "base {\n    log_debug = off;\n    log_info = on;\n    log = stderr;\n    daemon = off;\n"
        "    user = redsocks;\n    group = redsocks;\n    redirector = iptables;\n}\n"
        # Every address: prerouting's redirect (the bridges) lands on the bridge's own address.
        f"redsocks {{\n    local_ip = 0.0.0.0;\n    local_port = {server.local_port};\n"
        f"    ip = {server.ip};\n    port = {server.port};\n    type = {server.type};\n{credentials}}}\n"
    )


def _elements(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network], version: int) -> str:
    # Merged first: an interval set refuses overlapping elements.
    merged = ipaddress.collapse_addresses(net for net in networks if net.version == version)  # type: ignore[misc]
    return ", ".join(str(net) for net in merged)


def render_rules(server: ProxyServer, exempt: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """One table, replaced whole in one ``nft -f`` transaction."""
    exempt = [*NEVER_PROXIED, *exempt, ipaddress.ip_network(server.ip)]
    bridges = "\n".join(f'        iifname "{bridge}" jump proxied' for bridge in BRIDGES)
    port = server.local_port
    return f"""# Written by hostd from /mnt/boot/system-proxy; loaded with nft -f (the table is replaced whole).
table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
    set exempt4 {{
        type ipv4_addr; flags interval;
        elements = {{ {_elements(exempt, 4)} }}
    }}
    set exempt6 {{
        type ipv6_addr; flags interval;
        elements = {{ {_elements(exempt, 6)} }}
    }}
    chain proxied {{
        ip daddr @exempt4 return
        meta nfproto ipv4 meta l4proto tcp redirect to :{port}
    }}
    chain refused {{
        ip6 daddr @exempt6 return
        meta l4proto tcp reject with tcp reset
    }}
    chain nat_output {{
        type nat hook output priority -100; policy accept;
        jump proxied
    }}
    chain nat_prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
{bridges}
    }}
    chain filter_output {{
        type filter hook output priority filter; policy accept;
        meta nfproto ipv6 jump refused
    }}
    chain filter_forward {{
        type filter hook forward priority filter; policy accept;
        meta nfproto ipv6 jump refused
    }}
    chain filter_input {{
        type filter hook input priority filter; policy accept;
        # redsocks listens on every address: only redirected connections may reach it.
        tcp dport {port} ct status dnat accept
        tcp dport {port} reject with tcp reset
    }}
}}
"""


def _read(path: str) -> str | None:
    """The file's text; None when it is absent."""
    if not os.path.lexists(path):
        return None
    return read_plain_file(path, MAX_FILE_BYTES).decode()


def plan(ctx: Context) -> Plan:
    result = Plan()
    layout = ctx.layout
    conf_path = os.path.join(layout.boot_proxy, "redsocks.conf")
    no_proxy_path = os.path.join(layout.boot_proxy, "no_proxy")
    if not os.path.isfile(layout.config_json):
        result.problems.append(f"{layout.boot}: no config.json (not mounted?); the proxy is left as it is")
        return result
    try:
        conf = _read(conf_path)
        if conf is None:
            plan_file(result, layout, layout.redsocks_conf, None)
            plan_file(result, layout, layout.proxy_rules, None)
            result.record = InForce()
            return result
        server = parse_redsocks_conf(conf)
        no_proxy = _read(no_proxy_path) or ""
    except (ValueError, UnicodeDecodeError) as exc:
        where = conf_path if isinstance(exc, ConfError) else ""
        result.problems.append(f"{where}{': ' if where else ''}{exc}; rejected, the proxy in force is left as it is")
        return result
    exempt, problems = parse_no_proxy(no_proxy, no_proxy_path)
    result.problems += problems
    plan_file(result, layout, layout.redsocks_conf, render_redsocks_conf(server).encode(), mode=0o600)
    plan_file(result, layout, layout.proxy_rules, render_rules(server, exempt).encode(), mode=0o600)
    result.record = InForce(
        f"{server.type} {server.ip}:{server.port}",
        tuple(str(net) for net in exempt),
        tuple(problems) + server.ignored,
    )
    return result


async def apply_live(services: Services, ctx: Context, result: StepResult) -> Outcome:
    outcome = Outcome()
    if not ctx.layout.is_live:
        return outcome  # the kernel's rules and the unit are the running system's, not a root directory's
    if result.record is None:
        return outcome  # rejected (or no boot partition): what is in force stays
    from hostd.bus.errors import CommandFailed
    from hostd.bus.redsocks import REDSOCKS_UNIT
    from hostd.bus.systemd import ActiveState

    systemd, nftables = services.systemd, services.nftables
    layout = ctx.layout
    changed = {change.path for change in result.changes}
    on = os.path.exists(layout.redsocks_conf)
    services.redsocks.want(on)
    if not on:
        if changed:  # the proxy was taken away; a device that had none has nothing to undo
            if (await systemd.unit_state(REDSOCKS_UNIT)).load_state == "loaded":
                await systemd.stop_unit(REDSOCKS_UNIT)
            await nftables.delete_table(TABLE)
        return outcome
    if layout.device_path(layout.redsocks_conf) in changed:
        if (await systemd.unit_state(REDSOCKS_UNIT)).active_state == ActiveState.FAILED:
            await systemd.reset_failed_unit(REDSOCKS_UNIT)  # a deliberate restart is not refused by its start limit
        job = await systemd.restart_unit(REDSOCKS_UNIT)
    else:
        job = await systemd.start_unit(REDSOCKS_UNIT)  # nothing to do while it runs
    if job.value != "done":
        outcome.problems.append(f"{REDSOCKS_UNIT}: start job {job.value}")
    if layout.device_path(layout.proxy_rules) in changed or not await nftables.has_table(TABLE):
        try:
            await nftables.load(layout.proxy_rules)
        except CommandFailed as exc:
            outcome.problems.append(f"nftables rules not loaded, the rules in force stay: {exc.stderr.strip()}")
    return outcome
