"""Logging to stderr with sd-daemon(3) ``<N>`` priority prefixes, which journald turns into priorities.

One exception: the network-inputs stage's replay (hostd.stamp), which the network waits for,
writes its one line in the same form without importing logging.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
JOURNAL_STREAM_SOCKET = "/run/systemd/journal/stdout"


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # One journal entry per line: continuation lines carry the same priority.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def setup(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to stderr's device:inode when stderr is a stream to journald."""
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}"


def reconnect_journal_stream(unit: str, socket_path: str = JOURNAL_STREAM_SOCKET) -> None:
    """Give stderr a new stream to journald, opened as systemd opens one for a service.

    ``systemctl stop systemd-journald`` drops the streams it held, so everything hostd logs after
    journald is started again would be lost until hostd restarts.
    """
    import socket  # not at the top: the boot stages log through this module and never reconnect

    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stream.connect(socket_path)
        stream.shutdown(socket.SHUT_RD)
        # identifier, unit, default priority, <N> prefixes read, no forwarding to syslog, kmsg, console
        stream.sendall(f"hostd\n{unit}\n6\n1\n0\n0\n0\n".encode())
        os.dup2(stream.fileno(), 2)
    finally:
        stream.close()
    st = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    sys.stderr.flush()  # what the broken stream did not take goes to the new one
