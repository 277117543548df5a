"""The connectivity URI's check, in a process of its own: `python3 -I -S -c <URLCHECK_MAIN>`, the
request (a JSON object: uri, ca_pem) on stdin, the verdict on stdout (empty: 2xx).

hostd (``hostd.probe``) runs it for every attempt of a safe-apply probe instead of doing HTTPS
itself: ``import ssl`` and a context with the system's CAs would stay in the daemon for its whole
life (about 8 MiB of resident memory).  The URI may carry credentials: it goes on stdin, never on
the command line, which every user can read.  Standard library only, nothing of hostd's imported.
"""

from __future__ import annotations

import json
import sys
import time

HTTP_TIMEOUT = 5.0


def http_status(uri: str, ca_pem: str = "") -> str | None:
    """None when ``uri`` answers 2xx, else why not (never the URI itself: it may carry a secret)."""
    import urllib.error
    import urllib.request

    context = None
    if ca_pem and uri.lower().startswith("https:"):
        import ssl

        context = ssl.create_default_context(cadata=ca_pem)
        context.load_default_certs()
    started = time.monotonic()
    try:
        with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return f"unreachable after {time.monotonic() - started:.1f} s ({getattr(exc, 'reason', exc)})"
    except ValueError:  # its message quotes the URI
        return "not a URI that can be fetched"
    return None if 200 <= status < 300 else f"HTTP {status}"


def main() -> None:
    request = json.loads(sys.stdin.read())
    sys.stdout.write(http_status(request["uri"], request.get("ca_pem", "")) or "")
