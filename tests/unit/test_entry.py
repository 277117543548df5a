"""The programs load no OpenSSL (asyncio without TLS, hashlib without _hashlib); importing hostd keeps both."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = "import hostd.entry as e; e._without_openssl(); "
CHECK = "import sys, asyncio.sslproto as p; print(p.ssl is not None, 'ssl' in sys.modules)"


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_programs_load_asyncio_without_tls() -> None:
    assert python(f"{PROGRAM}import hostd.daemon; {CHECK}") == "False False"


def test_importing_hostd_leaves_asyncio_its_tls() -> None:
    assert python(f"import hostd.daemon, hostd.client; {CHECK}") == "True True"


def test_later_imports_of_ssl_work() -> None:
    assert python(f"{PROGRAM}import hostd.daemon, ssl; print(bool(ssl.OPENSSL_VERSION))") == "True"


def test_the_programs_hash_without_openssl() -> None:
    hashed = "import hashlib; print(hashlib.sha256(b'hostd').hexdigest()[:8], '_hashlib' in sys.modules)"
    assert python(f"{PROGRAM}import hostd.daemon, hostd.api, sys; {hashed}") == "f101f53e False"
    assert python(f"import hostd.daemon, sys; {hashed}") == "f101f53e True"
