"""hostd: converge a balenaOS-style host to its config.json."""

import sys

__version__ = "0.1.0"


class _AsyncioWithoutTLS:
    """hostd and hostctl never use TLS through asyncio (the probe's HTTPS goes through urllib, which
    imports ssl itself).  While asyncio is being imported, its optional ``import ssl`` fails, so
    asyncio leaves TLS off and OpenSSL's TLS half is not loaded: 1.3 MiB of hostd's resident memory
    and a few ms of every start.  Any later ``import ssl`` works as usual."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "ssl":
            asyncio = sys.modules.get("asyncio")
            if asyncio is not None and getattr(asyncio.__spec__, "_initializing", False):
                raise ImportError("asyncio is imported without TLS (see hostd/__init__.py)")


if "asyncio" not in sys.modules:
    sys.meta_path.insert(0, _AsyncioWithoutTLS())
