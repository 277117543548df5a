"""The programs' entry points (``hostd``, ``hostctl``): what happens before anything else is imported."""

from __future__ import annotations

import sys


class _WithoutOpenSSL:
    """What keeps OpenSSL's libcrypto out of hostd and hostctl (3.4 MiB of resident memory and
    ~5 ms of every start), with a finder that refuses two imports:

    - ``ssl`` while asyncio is being imported: asyncio's optional TLS is left off (hostd never uses
      TLS through asyncio; the probe's HTTPS goes through urllib, which imports ssl itself, and any
      later ``import ssl`` works as usual);
    - ``_hashlib``, OpenSSL's half of hashlib (dbus-fast's introspection imports hashlib): hashlib
      then uses CPython's own SHA-2, SHA-1, MD5, SHA-3 and BLAKE2, all hostd hashes with.

    Only the programs do this, not ``import hostd``: a process that imports hostd's modules keeps
    asyncio's TLS and OpenSSL's hashes."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "_hashlib":
            raise ImportError("hashlib without OpenSSL (see hostd/entry.py)")
        if name == "ssl":
            asyncio = sys.modules.get("asyncio")
            if asyncio is not None and getattr(asyncio.__spec__, "_initializing", False):
                raise ImportError("asyncio is imported without TLS (see hostd/entry.py)")


def _without_openssl() -> None:
    if "asyncio" not in sys.modules and "hashlib" not in sys.modules:
        sys.meta_path.insert(0, _WithoutOpenSSL())


def hostd() -> int:
    _without_openssl()
    if len(sys.argv) == 3 and sys.argv[1] == "--prepare":
        # A boot stage, as its oneshot unit runs it: no asyncio, no D-Bus, no argparse.
        _stage(sys.argv[2])  # exits with the stage's status
    from hostd.daemon import main

    return main()


def _stage(stage: str) -> None:
    """Run a boot stage and exit.  The network waits for this process to end: it runs without the
    cyclic garbage collector (a short run whose objects refcounting frees), and it exits without
    the interpreter's teardown of its modules, once everything it wrote is durable (each write is
    fsynced before its rename) and its log lines are out."""
    import gc
    import os

    gc.disable()
    from hostd import prepare

    status = prepare.main(stage)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def hostctl() -> int:
    _without_openssl()
    from hostd.cli import main

    return main()
