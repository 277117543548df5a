"""hostd's log lines: <N> priority prefixes on stderr, and a new journal stream when journald returns."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

from hostd import logsetup

CHILD = """
import logging, os, sys
from hostd import logsetup
logsetup.setup()
st = os.fstat(2)
os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # as systemd sets it
assert logsetup.stderr_is_journal()
logsetup.reconnect_journal_stream("hostd.service", sys.argv[1])
assert logsetup.stderr_is_journal()
logging.getLogger("hostd").warning("first line\\nsecond line")
"""


def test_lines_carry_their_priority() -> None:
    formatter = logsetup.JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("hostd", logging.ERROR, __file__, 1, "a\nb", None, None)
    assert formatter.format(record) == "<3>hostd: a\n<3>b"


def test_stderr_that_is_not_the_journal_is_left_alone() -> None:
    assert not logsetup.stderr_is_journal()  # pytest's stderr; JOURNAL_STREAM unset or another file


def test_reconnect_opens_a_journal_stream_with_systemds_header(tmp_path: Path) -> None:
    path = str(tmp_path / "stdout")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        child = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, timeout=30)
        assert child.returncode == 0, child.stderr
        assert child.stderr == ""  # the lines went to the new stream
        connection, _ = listener.accept()
        with connection:
            received = b""
            while chunk := connection.recv(4096):
                received += chunk
    assert received.decode() == "hostd\nhostd.service\n6\n1\n0\n0\n0\n<4>hostd: first line\n<4>second line\n"
