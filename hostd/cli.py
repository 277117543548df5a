"""hostctl: look at and change the host's configuration.

Offline commands (``config check``, ``plan``, ``apply --offline``) work on the engine directly,
with no daemon and no bus.  Exit codes: 0 success, 1 invalid configuration or a failed step,
2 the input could not be read or the command was misused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hostctl", description="Inspect and change the host's configuration.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config_cmd = commands.add_parser("config", help="work with config.json")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = config_sub.add_parser("check", help="validate a config.json (exit 0 valid, 1 invalid, 2 unreadable)")
    check.add_argument("path", nargs="?", help="file to check (default: the device's /mnt/boot/config.json)")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    plan = commands.add_parser("plan", help="show what applying the configuration would change (writes nothing)")
    plan.add_argument("--root", default="/", help="device root directory (default /)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    apply = commands.add_parser("apply", help="apply the configuration")
    apply.add_argument(
        "--offline",
        action="store_true",
        required=True,
        help="apply the file-level effects with the engine alone, without the daemon",
    )
    apply.add_argument("--root", default="/", help="device root directory (default /)")
    apply.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def config_check(path_arg: str | None, as_json: bool) -> int:
    from hostd import config as config_model
    from hostd.layout import Layout

    path = Path(path_arg) if path_arg else Layout().config_json
    try:
        raw = path.read_bytes()
    except OSError as exc:
        message = f"{path}: cannot be read: {exc.strerror}"
        if as_json:
            _print_json(
                {"path": str(path), "valid": False, "readable": False, "errors": [{"pointer": "", "message": message}]}
            )
        else:
            print(message, file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        config, _ = config_model.parse(raw, path)
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
    values = config.values_by_key()
    if as_json:
        _print_json(
            {
                "path": str(path),
                "valid": True,
                "readable": True,
                "errors": [],
                "config": values,
                "uuid_generated": config.uuid_generated,
            }
        )
    else:
        print(f"{path}: valid")
        if config.uuid_generated:
            print("  uuid is missing: the device will generate one and write it back")
    return EXIT_OK


def run_engine(root: str, *, apply: bool, as_json: bool) -> int:
    from hostd import config as config_model
    from hostd import engine
    from hostd.layout import Layout
    from hostd.steps.base import Context

    layout = Layout(Path(root))
    loaded = config_model.load(layout)
    ctx = Context(loaded.config, layout)
    results = engine.apply_loaded(loaded, ctx) if apply else engine.run(ctx, apply=False)
    failed = any(result.status == "failed" for result in results)
    if as_json:
        _print_json(
            {
                "root": str(layout.root),
                "mode": "apply" if apply else "plan",
                "config": {
                    "source": loaded.source,
                    "errors": []
                    if loaded.error is None
                    else [
                        {"path": loaded.error.path, "pointer": issue.pointer, "message": issue.message}
                        for issue in loaded.error.issues
                    ],
                },
                "steps": [result.as_dict() for result in results],
            }
        )
    else:
        if loaded.error is not None:
            print(f"config: {loaded.error}", file=sys.stderr)
            print(f"config: using {loaded.source}", file=sys.stderr)
        print(format_steps(results))
    return EXIT_INVALID if failed or loaded.error is not None else EXIT_OK


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config":
        return config_check(args.path, args.json)
    if args.command == "plan":
        return run_engine(args.root, apply=False, as_json=args.json)
    if args.command == "apply":
        return run_engine(args.root, apply=True, as_json=args.json)
    return EXIT_UNREADABLE


if __name__ == "__main__":
    sys.exit(main())
