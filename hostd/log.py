"""The log of the modules the boot stages share with the daemon (the stages themselves, the engine,
the trial record's module, the steps they run).

The network waits for the network-inputs stage (hostd.prepare), and importing logging would cost
it about 10 ms.  A ``Logger`` here is ``logging.getLogger(name)`` in the daemon and in any other
program; in a boot stage (after ``to_stderr()``) it writes the same lines to stderr itself, in
hostd.logsetup's form (``journal_text``), which journald stores with their priority.
"""

from __future__ import annotations

import sys

INFO, WARNING, ERROR = 20, 30, 40  # logging's levels
# logging's levels -> sd-daemon(3) priorities
PRIORITY = {10: 7, INFO: 6, WARNING: 4, ERROR: 3, 50: 2}
_to_stderr = False


def journal_text(priority: int, text: str) -> str:
    """One journal entry per line: continuation lines carry the same priority."""
    return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def to_stderr() -> None:
    """This process (a boot stage) writes its log lines itself; logging is never imported."""
    global _to_stderr
    _to_stderr = True


class Logger:
    """A named logger with the levels these modules use."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def info(self, message: str, *args: object) -> None:
        self._log(INFO, message, args)

    def warning(self, message: str, *args: object) -> None:
        self._log(WARNING, message, args)

    def error(self, message: str, *args: object) -> None:
        self._log(ERROR, message, args)

    def exception(self, message: str, *args: object) -> None:
        """An error, with the traceback of the exception being handled."""
        self._log(ERROR, message, args, with_traceback=True)

    def _log(self, level: int, message: str, args: tuple[object, ...], with_traceback: bool = False) -> None:
        if not _to_stderr:
            import logging

            logging.getLogger(self.name).log(level, message, *args, exc_info=with_traceback)
            return
        text = f"{self.name}: {message % args if args else message}"
        if with_traceback:  # a bug: the stage goes on with its other steps
            import traceback

            text += "\n" + traceback.format_exc().rstrip("\n")
        sys.stderr.write(journal_text(PRIORITY[level], text) + "\n")
        sys.stderr.flush()
