"""An HTTPS server that answers every GET with 204 and a Date header, for the time probe's tests.

    python3 tests/https_date.py CERT KEY ADDRESS PORT [DATE_OFFSET_SECONDS]

DATE_OFFSET_SECONDS shifts the Date it states (a server whose clock is elsewhere).
"""

from __future__ import annotations

import http.server
import ssl
import sys
import threading
import time
from email.utils import formatdate


def server(cert: str, key: str, address: str, port: int, date_offset: float = 0.0) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(time.time() + date_offset, usegmt=True)

        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((address, port), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    return httpd


def serve_in_thread(httpd: http.server.HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    cert, key, address, port, *offset = sys.argv[1:]
    server(cert, key, address, int(port), float(offset[0]) if offset else 0.0).serve_forever()
