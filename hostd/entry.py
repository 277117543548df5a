"""The programs' entry points (``hostd``, ``hostctl``): what happens before anything else is imported."""

from __future__ import annotations

import sys


class _AsyncioWithoutTLS:
    """hostd and hostctl never use TLS through asyncio (the probe's HTTPS goes through urllib, which
    imports ssl itself).  While asyncio is being imported, its optional ``import ssl`` fails, so
    asyncio leaves TLS off and OpenSSL's TLS half is not loaded: 1.3 MiB of hostd's resident memory
    and a few ms of every start.  Any later ``import ssl`` works as usual.  Only the programs do
    this, not ``import hostd``: a process that imports hostd's modules keeps asyncio's TLS."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "ssl":
            asyncio = sys.modules.get("asyncio")
            if asyncio is not None and getattr(asyncio.__spec__, "_initializing", False):
                raise ImportError("asyncio is imported without TLS (see hostd/entry.py)")


def _asyncio_without_tls() -> None:
    if "asyncio" not in sys.modules:
        sys.meta_path.insert(0, _AsyncioWithoutTLS())


def hostd() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--prepare":
        # A boot stage, as its oneshot unit runs it: no asyncio, no D-Bus, no argparse.
        from hostd import prepare

        return prepare.main(sys.argv[2])
    _asyncio_without_tls()
    from hostd.daemon import main

    return main()


def hostctl() -> int:
    _asyncio_without_tls()
    from hostd.cli import main

    return main()
