"""Is the device still reachable?  The checks a network change must pass to be kept.

- NetworkManager has a connection (state CONNECTED_LOCAL or better) — when it is running;
- a configured name resolves through the device's own resolver (dnsmasq);
- the connectivity URI balenaOS already uses answers 2xx — when one is configured (checked in a
  process of its own, ``hostd.urlcheck``: no OpenSSL in hostd).
All checks pass at the same moment, or the probe retries until its deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import hostd
from hostd import children
from hostd.urlcheck import HTTP_TIMEOUT

if TYPE_CHECKING:
    from hostd.bus.networkmanager import NetworkManagerAdapter

NM_CONNECTED_LOCAL = 50
RETRY_SECONDS = 1.0
DNS_TIMEOUT = 2.0
URLCHECK_SLACK = 5.0  # the check's own interpreter start, on top of its HTTP timeout
# The check's program: the interpreter isolated (-I -S) and nothing but the directory holding hostd.
URLCHECK_MAIN = "import sys; sys.path.insert(0, {!r}); from hostd import urlcheck; urlcheck.main()"


@dataclass
class ProbeResult:
    ok: bool
    evidence: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ProbeSettings:
    name: str | None  # resolved through the device's resolver
    resolver: tuple[str, int]
    uri: str | None
    ca_pem: str = ""  # balenaRootCA: trusted beside the system's CAs, as on balenaOS


async def probe(nm: NetworkManagerAdapter, settings: ProbeSettings, timeout: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = ProbeResult(False)
    while True:
        result.attempts += 1
        result.evidence = await check_once(nm, settings)
        result.seconds = loop.time() - started
        if not result.evidence:
            result.ok = True
            return result
        if result.seconds + RETRY_SECONDS > timeout:
            return result
        await asyncio.sleep(RETRY_SECONDS)


async def check_once(nm: NetworkManagerAdapter, settings: ProbeSettings) -> list[str]:
    failures: list[str] = []
    if nm.attached and nm.state.value < NM_CONNECTED_LOCAL:
        failures.append(f"NetworkManager state is {nm.state.name.lower()} ({nm.state.value})")
    if settings.name:
        answer = await resolve(settings.name, settings.resolver)
        if answer is not None:
            failures.append(f"{settings.name} does not resolve through {settings.resolver[0]}: {answer}")
    if settings.uri:
        answer = await http_status(settings.uri, settings.ca_pem)
        if answer is not None:
            # The URI may carry credentials (keys.SECRET): evidence names it, never shows it.
            failures.append(f"the connectivity URI: {answer}")
    return failures


async def resolve(name: str, resolver: tuple[str, int]) -> str | None:
    """None when ``name`` has an A or AAAA record through ``resolver``, else why not."""
    query_id = random.randrange(1 << 16)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    loop = asyncio.get_running_loop()
    answers: list[str] = []
    for qtype in (1, 28):  # A, AAAA
        packet = struct.pack("!6H", query_id, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!2H", qtype, 1)
        with socket.socket(socket.AF_INET6 if ":" in resolver[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, resolver)
                await loop.sock_sendall(sock, packet)
                reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), DNS_TIMEOUT)
            except TimeoutError:
                answers.append("no answer")
                continue
            except OSError as exc:
                answers.append(exc.strerror or str(exc))
                continue
        if len(reply) < 12 or struct.unpack("!H", reply[:2])[0] != query_id:
            answers.append("malformed answer")
            continue
        flags, _, answer_count = struct.unpack("!3H", reply[2:8])
        rcode = flags & 0xF
        if rcode == 0 and answer_count:
            return None
        answers.append({0: "no record", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(rcode, f"rcode {rcode}"))
    return ", ".join(dict.fromkeys(answers))


async def http_status(uri: str, ca_pem: str = "") -> str | None:
    """``hostd.urlcheck``'s verdict on ``uri``, from a process of its own (see there why)."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(hostd.__file__)))
    request = json.dumps({"uri": uri, "ca_pem": ca_pem}).encode()
    argv = (sys.executable, "-I", "-S", "-c", URLCHECK_MAIN.format(package_dir))
    try:
        returncode, stdout, _ = await children.run(argv, HTTP_TIMEOUT + URLCHECK_SLACK, stdin=request, stderr=False)
    except TimeoutError:
        return f"no verdict within {HTTP_TIMEOUT + URLCHECK_SLACK:g} s"
    if returncode != 0:  # its traceback is not shown: it may quote the URI
        return f"the check failed (exit status {returncode})"
    return stdout.decode(errors="replace") or None
