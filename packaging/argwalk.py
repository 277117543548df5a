"""The command lines the man pages and the bash completion are generated from.

Both generators read the same argparse parsers the programs parse their arguments with, so a new
subcommand or option appears in the documentation and the completion without anyone editing them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Program:
    name: str
    section: str  # manual section: 1 user commands, 8 system administration
    module: str  # has build_parser() and a docstring that describes the program


PROGRAMS = (
    Program("hostctl", "1", "hostd.cli"),
    Program("hostd", "8", "hostd.daemon"),
    Program("hostd-clock", "8", "hostd.clock"),
)


@dataclass
class Command:
    """One parser of the tree: the program itself or a (nested) subcommand."""

    path: tuple[str, ...]  # subcommand names after the program name; () for the program
    parser: argparse.ArgumentParser
    help: str
    options: list[argparse.Action] = field(default_factory=list)
    positionals: list[argparse.Action] = field(default_factory=list)
    subcommands: list[Command] = field(default_factory=list)


def load(program: Program) -> tuple[ModuleType, argparse.ArgumentParser]:
    # the repository's own hostd wins over an installed one: the pages describe this source
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    module = importlib.import_module(program.module)
    return module, module.build_parser()


def docstring(module: ModuleType) -> str:
    return inspect.getdoc(module) or ""


def _visible(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS


def command_tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help_text: str = "") -> Command:
    command = Command(path, parser, help_text or parser.description or "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a subcommand already listed
                    continue
                seen.add(id(sub))
                command.subcommands.append(command_tree(sub, (*path, name), helps.get(name, "")))
        elif not _visible(action):
            continue
        elif action.option_strings:
            command.options.append(action)
        else:
            command.positionals.append(action)
    return command


def walk(command: Command) -> Iterator[Command]:
    yield command
    for sub in command.subcommands:
        yield from walk(sub)


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """How the action is written on a command line, e.g. "-h, --help" or "--root ROOT"."""
    return parser._get_formatter()._format_action_invocation(action)


def action_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    if action.choices and not action.option_strings:
        text = (text + " " if text else "") + "(one of: " + ", ".join(map(str, action.choices)) + ")"
    if action.required and action.option_strings:
        text += " (required)"
    return text


def usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage:").split())
