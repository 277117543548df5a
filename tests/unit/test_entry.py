"""The programs import asyncio without TLS; a process that only imports hostd's modules keeps it."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = "import hostd.entry as e; e._asyncio_without_tls(); "
CHECK = "import sys, asyncio.sslproto as p; print(p.ssl is not None, 'ssl' in sys.modules)"


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_programs_load_asyncio_without_tls() -> None:
    assert python(f"{PROGRAM}import hostd.daemon; {CHECK}") == "False False"


def test_importing_hostd_leaves_asyncio_its_tls() -> None:
    assert python(f"import hostd.daemon, hostd.client; {CHECK}") == "True True"


def test_later_imports_of_ssl_work() -> None:
    assert python(f"{PROGRAM}import hostd.daemon, ssl; print(bool(ssl.OPENSSL_VERSION))") == "True"
