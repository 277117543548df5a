"""The connectivity URI's check, as hostd runs it: in a process of its own (hostd.urlcheck), over
http and over https with balenaRootCA, never showing the URI."""

from __future__ import annotations

import asyncio
import http.server
from pathlib import Path

from hostd import probe
from tests.https_date import serve_in_thread, server
from tests.testca import TestCA


def test_https_with_balena_root_ca_passes_and_without_it_fails(tmp_path: Path) -> None:
    ca = TestCA(tmp_path, "hostd test root CA")
    issued = ca.issue("127.0.0.1")
    httpd = server(str(issued.cert), str(issued.key), "127.0.0.1", 0)
    serve_in_thread(httpd)
    uri = f"https://127.0.0.1:{httpd.server_address[1]}/connectivity-check"
    try:
        assert asyncio.run(probe.http_status(uri, ca.pem)) is None  # 204
        untrusted = asyncio.run(probe.http_status(uri))
    finally:
        httpd.shutdown()
    assert untrusted is not None and "CERTIFICATE_VERIFY_FAILED" in untrusted


def test_http_status_and_secrets(tmp_path: Path) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_in_thread(httpd)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert asyncio.run(probe.http_status(f"{base}/ok")) is None
        assert asyncio.run(probe.http_status(f"{base}/down")) == "HTTP 503"
    finally:
        httpd.shutdown()
    # A URI urllib cannot open: its error quotes the URI, the verdict does not.
    assert asyncio.run(probe.http_status("example.com/check?key=hunter2")) == "not a URI that can be fetched"
