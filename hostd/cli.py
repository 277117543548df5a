"""hostctl: look at and change the host's configuration.

Offline commands (``config check``, ``plan``, ``apply --offline``) work on the engine directly,
with no daemon and no bus; the others are thin calls to the hostd daemon's io.hostd1 API.
Exit codes: 0 success; 1 invalid configuration, a failed step or an error from hostd;
2 the input could not be read or the command was misused; 3 hostd is not running;
4 hostd refused the change (not root).

``balena-hostname.service`` (installed as ``resin-hostname.service`` too), which the balena
supervisor restarts after editing config.json's hostname, runs ``hostctl hostname --from-config``:
hostd reloads config.json and the command succeeds once the kernel carries the hostname.
"""

from __future__ import annotations

import sys
import time

from hostd import jsontext  # not json: `hostctl status` starts without re

# typing.TYPE_CHECKING without importing typing: `hostctl status` starts without typing and argparse.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from hostd.config import Reading

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2
EXIT_NOT_RUNNING = 3
EXIT_DENIED = 4


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="hostctl", description="Inspect and change the host's configuration.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config_cmd = commands.add_parser("config", help="work with config.json")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = config_sub.add_parser(
        "check", help="validate a config.json, key by key (exit 0 valid, 1 a key held back, 2 unreadable)"
    )
    check.add_argument("path", nargs="?", help="file to check (default: the device's /mnt/boot/config.json)")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    plan = commands.add_parser("plan", help="show what applying the configuration would change (writes nothing)")
    plan.add_argument("--root", default="/", help="device root directory (default /)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    apply = commands.add_parser("apply", help="apply the configuration (--offline, or --try through hostd)")
    how = apply.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--offline", action="store_true", help="apply the file-level effects with the engine alone, without the daemon"
    )
    how.add_argument(
        "--try",
        dest="try_",
        action="store_true",
        help="have hostd apply config.json now and roll it back unless `hostctl confirm` follows within --timeout",
    )
    apply.add_argument("--timeout", type=int, default=120, help="seconds to wait for `hostctl confirm` (default 120)")
    apply.add_argument(
        "config",
        nargs="?",
        help="with --try: the new config.json (hostd validates it and writes it itself); default: config.json as it is",
    )
    apply.add_argument("--root", default="/", help="device root directory (default /)")
    apply.add_argument("--json", action="store_true", help="machine-readable output")

    parser.add_argument("--bus", metavar="ADDRESS", help="D-Bus address of hostd's bus (default: the system bus)")
    status = commands.add_parser("status", help="the host's state: hostname, steps, degraded services, config errors")
    status.add_argument("--json", action="store_true", help="the daemon's Describe() document")
    commands.add_parser("reload", help="re-read config.json and apply what changed")
    commands.add_parser("confirm", help="keep the change applied by `hostctl apply --try`")
    hostname = commands.add_parser("hostname", help="show the hostname, or set it in config.json and apply it")
    hostname.add_argument("name", nargs="?", help="new hostname ('' returns to the uuid-derived name)")
    hostname.add_argument(
        "--from-config",
        action="store_true",
        help="have hostd apply config.json's hostname now; exit 0 once the kernel carries it "
        "(what balena-hostname.service runs)",
    )
    set_cmd = commands.add_parser(
        "set", help="set config.json keys through hostd (validated; risky keys through safe apply)"
    )
    set_cmd.add_argument(
        "assignments",
        nargs="+",
        metavar="KEY=JSON",
        help='a key of the table and its value as JSON (`dnsServers=["1.1.1.1"]`); a bare word is a string',
    )
    connection = commands.add_parser(
        "connection", help="change the boot partition's NetworkManager profiles through hostd (safe apply)"
    )
    connection_sub = connection.add_subparsers(dest="connection_command", required=True, metavar="SUBCOMMAND")
    connection_sub.add_parser("list", help="the profiles, secrets left out")
    for verb, text in (("add", "add a new profile"), ("update", "replace a profile")):
        change = connection_sub.add_parser(
            verb, help=f"{text} (validated as an import; rolled back if it cuts the device off)"
        )
        change.add_argument("name", help="file name in /mnt/boot/system-connections")
        change.add_argument("keyfile", help="the NetworkManager keyfile to write")
    remove = connection_sub.add_parser("remove", help="remove a profile (rolled back if it cuts the device off)")
    remove.add_argument("name", help="file name in /mnt/boot/system-connections")
    discoverable = commands.add_parser("discoverable", help="announce the device over mDNS, or withdraw it")
    discoverable.add_argument("state", nargs="?", choices=("on", "off"), help="show the setting when omitted")
    logs = commands.add_parser("logs", help="journal storage")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True, metavar="SUBCOMMAND")
    persistent = logs_sub.add_parser("persistent", help="keep the journal on the data partition, or in RAM")
    persistent.add_argument("state", choices=("on", "off"))
    for name, text in (
        ("connections", "the boot-partition profiles: per-file import report and NetworkManager's verdict"),
        ("dns", "the effective upstream DNS servers and mode"),
        ("time", "NTP servers and synchronisation"),
        ("modems", "modems ModemManager sees"),
    ):
        commands.add_parser(name, help=text)
    return parser


def _print_json(document: Any) -> None:
    sys.stdout.write(jsontext.dumps_indented(document) + "\n")


def config_check(path_arg: str | None, as_json: bool) -> int:
    from hostd import config as config_model
    from hostd.layout import Layout

    path = path_arg or Layout().config_json
    try:
        raw = config_model.read_config_bytes(path, follow_symlinks=True)
    except OSError as exc:
        message = f"{path}: cannot be read: {exc.strerror}"
        if as_json:
            _print_json(
                {"path": str(path), "valid": False, "readable": False, "errors": [{"pointer": "", "message": message}]}
            )
        else:
            print(message, file=sys.stderr)
        return EXIT_UNREADABLE
    # The device's own file falls back to what the device last ran well; any other file to the defaults.
    fallback = config_model.last_known_good(Layout()) if path_arg is None else None
    try:
        reading = config_model.read(raw, path, fallback)
    except config_model.ConfigError as exc:
        if as_json:
            _print_json(
                {
                    "path": str(path),
                    "valid": False,
                    "readable": True,
                    "errors": [{"pointer": issue.pointer, "message": issue.message} for issue in exc.issues],
                }
            )
        else:
            print(exc, file=sys.stderr)
        return EXIT_INVALID
    rows = key_rows(reading)
    valid = not reading.held_back
    if as_json:
        _print_json(
            {
                "path": str(path),
                "valid": valid,
                "readable": True,
                "errors": [{"pointer": entry.pointer, "message": entry.message} for entry in reading.held_back],
                "config": {row["key"]: row["value"] for row in rows},
                "uuid_generated": reading.config.uuid_generated,
                "keys": rows,
                "heldBack": [
                    {"key": e.key, "pointer": e.pointer, "message": e.message, "fallback": e.fallback}
                    for e in reading.held_back
                ],
                "warnings": [{"pointer": note.pointer, "message": note.message} for note in reading.adjusted],
            }
        )
    else:
        count = len({entry.key for entry in reading.held_back})
        print(f"{path}: " + ("valid" if valid else f"{count} key{'s' * (count != 1)} held back"))
        print(format_rows(rows))
        for entry in reading.held_back:
            print(f"{path}: {entry}", file=sys.stderr)
        for note in reading.adjusted:
            print(f"{path}: warning: {note}", file=sys.stderr)
        if reading.config.uuid_generated:
            print("  uuid is missing: the device will generate one and write it back")
    return EXIT_OK if valid else EXIT_INVALID


def key_rows(reading: Reading) -> list[dict[str, Any]]:
    """Per owned key: what applies ("set", "default" or "held-back"), and its value (a secret one withheld)."""
    from hostd import keys

    held = {entry.key: entry.fallback for entry in reading.held_back}
    rows = []
    for key in keys.TABLE:
        value = getattr(reading.config, key.attribute)
        shown = None if value is None else key.form.to_json(value)
        if key.secret and value is not None:
            shown = "(withheld: it may carry a credential)"
        status = "held-back" if key.name in held else "set" if key.name in reading.from_file else "default"
        row = {"key": key.name, "status": status, "value": shown}
        if key.name in held:
            row["fallback"] = held[key.name]
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    import json

    table = [("KEY", "STATUS", "VALUE")]
    for row in rows:
        status = row["status"] + (f" ({row['fallback']})" if "fallback" in row else "")
        table.append((row["key"], status, json.dumps(row["value"], ensure_ascii=False)))
    widths = [max(len(line[i]) for line in table) for i in range(2)]
    return "\n".join(f"  {k:<{widths[0]}}  {s:<{widths[1]}}  {v}" for k, s, v in table)


def run_engine(root: str, *, apply: bool, as_json: bool) -> int:
    from hostd import config as config_model
    from hostd import engine
    from hostd.layout import Layout
    from hostd.steps.base import Context

    layout = Layout(root)
    loaded = config_model.load(layout)
    ctx = Context(loaded.config, layout)
    results = engine.apply_loaded(loaded, ctx) if apply else engine.run(ctx, apply=False)
    failed = any(result.status == "failed" for result in results)
    if as_json:
        _print_json(
            {
                "root": layout.root,
                "mode": "apply" if apply else "plan",
                "config": {
                    "source": loaded.source,
                    "errors": [
                        {"path": loaded.error.path, "pointer": issue.pointer, "message": issue.message}
                        for issue in loaded.error.issues
                    ]
                    if loaded.error is not None
                    else [
                        {"path": loaded.path, "pointer": entry.pointer, "message": entry.message}
                        for entry in loaded.held_back
                    ],
                    "heldBack": [
                        {"key": e.key, "pointer": e.pointer, "message": e.message, "fallback": e.fallback}
                        for e in loaded.held_back
                    ],
                },
                "steps": [result.as_dict() for result in results],
            }
        )
    else:
        if loaded.problems:
            print(f"config: {loaded.problems}", file=sys.stderr)
            print(f"config: using {loaded.source}", file=sys.stderr)
        print(format_steps(results))
    return EXIT_INVALID if failed or loaded.problems else EXIT_OK


def format_steps(results: list[Any]) -> str:
    rows = [("STEP", "STATUS", "CHANGES", "MESSAGE")]
    for result in results:
        count = str(len(result.changes)) + (f"+{len(result.pending)} pending" if result.pending else "")
        rows.append((result.name, result.status, count, result.message))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    for result in results:
        for change in result.changes + result.pending:
            detail = f" ({change.detail})" if change.detail else ""
            lines.append(f"  {result.name}: {change.kind} {change.path}{detail}")
    return "\n".join(lines)


# `hostctl status [--json]`, the command run most, is read without building the parser: argparse
# is most of what hostctl imports.  A unit test holds these equal to the parser's result.
STATUS_ARGS = {
    ("status",): {"bus": None, "command": "status", "json": False},
    ("status", "--json"): {"bus": None, "command": "status", "json": True},
}


class _StatusArgs:
    """STATUS_ARGS as attributes, as the parser gives them (types.SimpleNamespace would import types)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    known = STATUS_ARGS.get(tuple(argv))
    args = _StatusArgs(known) if known else build_parser().parse_args(argv)
    if args.command == "config":
        return config_check(args.path, args.json)
    if args.command == "plan":
        return run_engine(args.root, apply=False, as_json=args.json)
    if args.command == "apply" and args.offline:
        return run_engine(args.root, apply=True, as_json=args.json)
    from hostd import client

    try:
        return online(args)
    except client.NotRunning as exc:
        print(f"hostctl: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except client.Denied as exc:
        print(f"hostctl: {exc}", file=sys.stderr)
        return EXIT_DENIED
    except client.Failed as exc:
        print(f"hostctl: {exc}", file=sys.stderr)
        return EXIT_INVALID


def online(args: argparse.Namespace) -> int:
    from hostd import client

    with client.Hostd(args.bus) as hostd:
        command = args.command
        if command == "reload":
            hostd.call("Reload")
            command = "status"
        elif command == "hostname" and args.from_config:
            hostd.call("Reload")
            return hostname_applied(jsontext.loads(hostd.call("Describe")[0]))
        elif command == "hostname" and args.name is not None:
            hostd.call("SetHostname", "s", args.name)
        elif command == "set":
            hostd.call("SetConfig", "a{sv}", parse_assignments(args.assignments))
            command = "status"
        elif command == "connection":
            return connection_command(hostd, args)
        elif command == "discoverable" and args.state is not None:
            hostd.call("SetDiscoverable", "b", args.state == "on")
        elif command == "logs":
            hostd.call("SetPersistentLogging", "b", args.state == "on")
            command = "status"
        elif command == "apply":
            new_config = ""
            if args.config:
                try:
                    with open(args.config, encoding="utf-8") as file:
                        new_config = file.read()
                except (OSError, UnicodeDecodeError) as exc:
                    raise client.Failed(f"{args.config}: cannot be read: {exc}") from None
            hostd.call("Try", "su", new_config, args.timeout)
            print(f"applied; run `hostctl confirm` within {args.timeout} s to keep it, or it is rolled back")
            command = "status"
        elif command == "confirm":
            hostd.call("Confirm")
            print("confirmed: the change is kept")
            command = "status"
        state = jsontext.loads(hostd.call("Describe")[0])
    if command == "status" and getattr(args, "json", False):
        _print_json(state)
    else:
        print(RENDERERS[command](state))
    failed = any(step["status"] == "failed" for step in state["steps"])
    not_applied = (state.get("generations") or {}).get("notApplied")
    return EXIT_INVALID if failed or state["config"]["error"] or not_applied else EXIT_OK


def connection_command(hostd: Any, args: argparse.Namespace) -> int:
    from hostd import client

    verb = args.connection_command
    if verb == "list":
        [profiles] = hostd.call("ListConnections")
        rows = [("FILE", "ID", "TYPE", "UUID")] + [(name, id_, type_, uuid) for name, id_, uuid, type_, _ in profiles]
        print(_table(rows) if profiles else "no profiles in the boot partition")
        return EXIT_OK
    if verb == "remove":
        hostd.call("RemoveConnection", "s", args.name)
    else:
        try:
            with open(args.keyfile, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise client.Failed(f"{args.keyfile}: cannot be read: {exc}") from None
        hostd.call("AddConnection" if verb == "add" else "UpdateConnection", "ss", args.name, text)
    state = jsontext.loads(hostd.call("Describe")[0])
    print(render_generations(state.get("generations") or {}))
    return EXIT_INVALID if (state.get("generations") or {}).get("notApplied") else EXIT_OK


def hostname_applied(state: dict[str, Any]) -> int:
    """Exit 0 when the kernel carries config.json's hostname; other keys' problems are not this job's."""
    held = [entry for entry in state["config"]["heldBack"] if entry["pointer"] == "/hostname"]
    if held:
        print(f"hostctl: config.json's hostname is not applied: {held[0]['message']}", file=sys.stderr)
        return EXIT_INVALID
    if state["hostname"] != state["staticHostname"]:
        print(
            f"hostctl: the kernel's hostname is {state['hostname']!r}, not {state['staticHostname']!r}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    print(state["hostname"])
    return EXIT_OK


def parse_assignments(assignments: list[str]) -> dict[str, tuple[str, Any]]:
    """KEY=JSON words as SetConfig's a{sv}: each value a (signature, value) variant."""
    import json

    from hostd import client

    changes = {}
    for word in assignments:
        key, equals, text = word.partition("=")
        if not equals or not key:
            raise client.Failed(f"{word!r} is not KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare word: a string, as a shell user means it
        try:
            changes[key] = client.variant(value)
        except ValueError as exc:
            raise client.Failed(f"{key}: {exc}") from None
    return changes


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows
    ).rstrip()


def render_status(state: dict[str, Any]) -> str:
    config = state["config"]
    logging_state = state["logging"]
    degraded = state["degraded"]
    lines = [
        f"       Hostname: {state['hostname']}",
        f"Static hostname: {state['staticHostname']}",
        f"           mDNS: {render_mdns(state)}",
        f"        Variant: {state['variant']}",
        f"         Config: {config['path']} "
        + (f"INVALID, using {config['source']}:\n                 {config['error']}" if config["error"] else "(valid)"),
        f"        Logging: {'persistent' if logging_state['persistent'] else 'volatile'}, "
        f"{logging_state['journalUsage'] / 1048576:.1f} MiB used",
        f"            DNS: {state['dns']['mode']}: {' '.join(state['dns']['servers']) or '(none)'}",
        f"            NTP: {' '.join(state['time']['ntpServers']) or '(none)'}; "
        f"synchronized: {'yes' if state['time']['synchronized'] else 'no'}",
        render_proxy(state.get("proxy") or {}),
        f"       Degraded: {', '.join(f'{name} ({why})' for name, why in sorted(degraded.items())) or 'none'}",
        render_generations(state.get("generations") or {}),
        f"        Version: {state['version']}",
        "",
    ]
    rows = [("STEP", "STATUS", "MS", "MESSAGE")]
    rows += [(s["name"], s["status"], f"{s['duration_ms']:.1f}", s["message"]) for s in state["steps"]]
    return "\n".join(lines) + _table(rows)


def render_mdns(state: dict[str, Any]) -> str:
    mdns = state.get("mdns") or {}
    if mdns:
        return f"{mdns.get('hostname', '?')}.local" + (" (name taken by another host)" if mdns.get("collision") else "")
    if not (state.get("discovery") or {}).get("discoverable", True):
        return "not discoverable: " + render_discoverable(state)
    return "avahi-daemon not running"


def render_proxy(proxy: dict[str, str]) -> str:
    if proxy.get("state") != "on":
        return "          Proxy: off"
    exempt = ", ".join(["private ranges", *proxy["noProxy"].split()])
    line = f"          Proxy: {proxy['server']}; not proxied: {exempt}"
    line += f"\n                 IPv6: {proxy['ipv6']}\n                 UDP: {proxy['udp']}"
    if proxy.get("rejected"):
        line += f"\n                 rejected: {proxy['rejected']}"
    return line


def render_generations(generations: dict[str, Any]) -> str:
    current, good = generations.get("current", ""), generations.get("good", "")
    line = f"     Generation: {current or '-'}" + (" (last-known-good)" if current and current == good else "")
    if generations.get("transaction"):
        line += f", {generations['transaction']}; last-known-good is {good or '-'}"
    if generations.get("notApplied"):
        line += f"\n    NOT APPLIED: {generations['notApplied']}"
    rollback = generations.get("lastRollback")
    if rollback:
        line += f"\n  Last rollback: {rollback['generation']}: {rollback['reason']}"
        if rollback.get("evidence"):
            line += f"\n                 {rollback['evidence']}"
    return line


def render_connections(state: dict[str, Any]) -> str:
    rows = [("FILE", "STATUS", "NETWORKMANAGER", "REASON")]
    rows += [(c["name"], c["status"], c.get("nm", ""), c.get("reason", "")) for c in state["connections"]]
    return _table(rows) if len(rows) > 1 else "no profiles in the boot partition"


def render_discoverable(state: dict[str, Any]) -> str:
    discovery = state.get("discovery") or {}
    return "on" if discovery.get("discoverable") else f"off ({discovery.get('why', '')})"


def render_hostname(state: dict[str, Any]) -> str:
    return state["hostname"]


def render_dns(state: dict[str, Any]) -> str:
    return f"mode: {state['dns']['mode']}\n" + "".join(f"server: {s}\n" for s in state["dns"]["servers"]).rstrip()


def render_time(state: dict[str, Any]) -> str:
    time_state = state["time"]
    tracking = time_state.get("tracking") or {}
    last_sync = time_state.get("lastSync") or 0
    lines = [
        f"NTP servers: {' '.join(time_state['ntpServers']) or '(none)'}",
        f"network's NTP servers: {' '.join(time_state.get('networkServers', [])) or '(none)'} "
        f"({time_state.get('mode', 'append')})",
        f"synchronized: {'yes' if time_state['synchronized'] else 'no'}",
        f"trusted: {'yes' if time_state.get('trusted') else 'no'} (source: {time_state.get('source', '')})",
        "last sync: "
        + (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last_sync / 1_000_000)) if last_sync else "never"),
    ]
    if time_state.get("problem"):
        lines.append(f"why not trusted: {time_state['problem']}")
    if tracking.get("leapStatus"):
        lines.append(
            f"chrony: reference {tracking.get('reference') or '-'} stratum {tracking.get('stratum')} "
            f"leap {tracking.get('leapStatus')} offset {tracking.get('offset', 0.0):+.6f} s"
        )
    return "\n".join(lines)


def render_modems(state: dict[str, Any]) -> str:
    rows = [("MODEM", "STATE", "SIGNAL", "SIM", "OPERATOR")]
    rows += [
        (
            m["path"].rsplit("/", 1)[-1],
            m["state"],
            f"{m['signal_quality']}%",
            "yes" if m["sim_present"] else "no",
            m["operator"],
        )
        for m in state["modems"]
    ]
    return _table(rows) if len(rows) > 1 else "no modems"


RENDERERS = {
    "status": render_status,
    "connections": render_connections,
    "hostname": render_hostname,
    "discoverable": render_discoverable,
    "dns": render_dns,
    "time": render_time,
    "modems": render_modems,
}


if __name__ == "__main__":
    sys.exit(main())
