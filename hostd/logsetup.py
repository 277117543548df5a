"""Logging to stderr with sd-daemon(3) ``<N>`` priority prefixes, which journald turns into priorities.

The boot stages, which the network waits for, write their lines in the same form without importing
logging (hostd.log; the replay's one line: hostd.stamp).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from hostd.log import PRIORITY, journal_text

JOURNAL_STREAM_SOCKET = "/run/systemd/journal/stdout"


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return journal_text(PRIORITY.get(record.levelno, 6), super().format(record))


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
