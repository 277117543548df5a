"""The HTTPS time probe: the time a verified server states (its Date header), before NTP works.

Run by ``hostd-time-probe.service`` (``hostd --time-probe``), never inside hostd: it imports ssl
(OpenSSL, several MiB resident) and runs with CAP_SYS_TIME, which hostd's unit drops.  It reads
the request hostd wrote (the URL, the extra CA, the build time),
tries a few times with backoff, raises the clock when the verified time is ahead of it, and writes
the result for hostd.  Standard library only, but for the build time (``hostd.clock``: the image's
``/etc/timestamp``, the floor the clock was raised to at boot).

Trust: the Date header is taken only from a connection whose certificate chain and host name
were verified.  A clock in the past makes a valid certificate look "not yet valid": the
connection is then verified again with OpenSSL's X509_V_FLAG_NO_CHECK_TIME (chain, signatures
and host name, but no dates), and the stated time is accepted only inside the leaf's validity
and not before the build time.  An attacker then still needs a certificate for the server's
name from a trusted CA, valid at the time it claims and issued after the build: what verifying
against a clock at the build time trusts.  What it cannot judge, no clock in the past can either:
a certificate revoked (or, from a later time's view, expired) since, and the intermediates' own
dates (their validity spans the leaf's in practice).  A certificate expired at the clock's time
is never tried without dates: an expired leaf means the clock is ahead, and a clock ahead is
chrony's to correct (``makestep 1 -1``), not the probe's.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

REQUEST = "/run/hostd/time-probe-request.json"
RESULT = "/run/hostd/time-probe.json"

NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (OpenSSL >= 1.1.0); ssl has no constant for it
CERT_NOT_YET_VALID = 9  # X509_V_ERR_CERT_NOT_YET_VALID
TRIES = 4
FIRST_DELAY = 2.0  # seconds before the 2nd try; doubled for each next one: 2 + 4 + 8
CONNECT_TIMEOUT = 5.0  # per try: at most TRIES * 5 s + 14 s of waits = 34 s in all
STEP_THRESHOLD = 2.0
"""Seconds the verified time must be ahead of the clock for the probe to step it: the Date header
has a resolution of 1 s, and chrony slews smaller offsets away once it has a source."""
USEC = 1_000_000


class ProbeError(Exception):
    """This try failed; the message says why (never the URL: it may carry a credential)."""


@dataclass(frozen=True)
class Sample:
    date: float  # the Date header, unix time
    local_time: float  # the clock when the answer arrived
    not_before: float  # the leaf certificate's validity
    not_after: float
    no_check_time: bool  # verified without dates (the clock was behind the certificate)

    @property
    def server_time(self) -> float:
        """The Date header is truncated to the second: the server's time lies in [date, date + 1)."""
        return self.date + 0.5

    @property
    def offset(self) -> float:
        """Seconds the clock is behind the server (negative: ahead)."""
        return self.server_time - self.local_time


def parse_http_date(value: str | None) -> float:
    """An HTTP Date header (RFC 9110 IMF-fixdate, or the obsolete forms) as unix time."""
    if not value:
        raise ProbeError("the answer has no Date header")
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise ProbeError(f"the Date header {value!r} is not an HTTP date") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None or parsed.utcoffset().total_seconds() != 0:
        raise ProbeError(f"the Date header {value!r} is not in GMT")
    return parsed.timestamp()


def judge_date(date: float, not_before: float, not_after: float, build_time: float) -> None:
    """Raise ProbeError unless the stated time could be true: inside the leaf certificate's
    validity (which a verification without dates did not check) and not before the build."""
    if date < build_time:
        raise ProbeError(f"the server's time {_iso(date)} is before this build ({_iso(build_time)})")
    if not not_before <= date <= not_after:
        raise ProbeError(
            f"the server's time {_iso(date)} is outside its certificate's validity "
            f"({_iso(not_before)} to {_iso(not_after)})"
        )


def context(ca_pem: str, *, no_check_time: bool) -> ssl.SSLContext:
    """The system's trust store (and balenaRootCA), chain and host name verified."""
    ctx = ssl.create_default_context(cadata=ca_pem or None)
    if ca_pem:
        ctx.load_default_certs()
    if no_check_time:
        ctx.verify_flags |= NO_CHECK_TIME
    return ctx


def fetch(url: str, ca_pem: str, *, no_check_time: bool, timeout: float = CONNECT_TIMEOUT) -> Sample:
    """One GET over a verified connection; the Date header and the leaf's validity."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ProbeError("not an https URL: its time cannot be verified")
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout, context=context(ca_pem, no_check_time=no_check_time)
    )
    try:
        connection.connect()  # the handshake: verification fails here, with the reason
        certificate = connection.sock.getpeercert()
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        local_time = time.time()
        date = parse_http_date(response.getheader("Date"))
    finally:
        connection.close()
    if not certificate:
        raise ProbeError("the server's certificate was not verified")
    not_before = ssl.cert_time_to_seconds(certificate["notBefore"])
    not_after = ssl.cert_time_to_seconds(certificate["notAfter"])
    return Sample(date, local_time, not_before, not_after, no_check_time)


def probe(url: str, ca_pem: str, build_time: float, *, timeout: float = CONNECT_TIMEOUT) -> Sample:
    """One try: verified at the clock; if the certificate is only not yet valid at it, verified
    without dates.  Either way the time must be after the build."""
    try:
        sample = fetch(url, ca_pem, no_check_time=False, timeout=timeout)
    except ssl.SSLCertVerificationError as err:
        if err.verify_code != CERT_NOT_YET_VALID:
            raise ProbeError(f"certificate not verified: {err.verify_message}") from None
        try:
            sample = fetch(url, ca_pem, no_check_time=True, timeout=timeout)
        except ssl.SSLCertVerificationError as again:
            raise ProbeError(f"certificate not verified: {again.verify_message}") from None
    judge_date(sample.date, sample.not_before, sample.not_after, build_time)
    return sample


def probe_with_retries(
    url: str, ca_pem: str, build_time: float, *, tries: int = TRIES, first_delay: float = FIRST_DELAY
) -> tuple[Sample | None, list[str]]:
    """The first good sample, and why each failed try failed."""
    failures: list[str] = []
    delay = first_delay
    for attempt in range(tries):
        if attempt:
            time.sleep(delay)
            delay *= 2
        try:
            return probe(url, ca_pem, build_time), failures
        except ProbeError as err:
            failures.append(str(err))
        except (OSError, http.client.HTTPException) as err:
            failures.append(_network_error(err))
    return None, failures


def should_step(sample: Sample) -> bool:
    """Only forward: a verified time ahead of the clock by more than the Date header's resolution."""
    return sample.offset > STEP_THRESHOLD


def step_clock(sample: Sample) -> str:
    """Set the clock to the verified time; returns why it was not set ("" when it was)."""
    try:
        time.clock_settime(time.CLOCK_REALTIME, time.time() + sample.offset)
    except OSError as err:
        return f"the clock could not be set: {err.strerror}"
    return ""


def run(
    request: dict[str, object],
    *,
    step: Callable[[Sample], str] = step_clock,
    tries: int = TRIES,
    first_delay: float = FIRST_DELAY,
) -> dict[str, object]:
    """The request hostd wrote -> the result it reads: ok (the clock now agrees with a verified
    server), the server's time (µs), the offset found, whether the clock was stepped, and why not."""
    url, ca_pem = str(request["url"]), str(request.get("ca") or "")
    build_time = int(str(request.get("buildTime") or 0)) / USEC
    sample, failures = probe_with_retries(url, ca_pem, build_time, tries=tries, first_delay=first_delay)
    result: dict[str, object] = {"url": request.get("label", ""), "tries": len(failures) + (sample is not None)}
    if sample is None:
        result.update(ok=False, error=failures[-1] if failures else "not tried")
        return result
    stepped, not_set = False, ""
    if should_step(sample):
        not_set = step(sample)
        stepped = not not_set
    offset = 0.0 if stepped else sample.offset
    result.update(
        ok=abs(offset) <= STEP_THRESHOLD,
        time=int(sample.server_time * USEC),
        offset=round(sample.offset, 3),
        stepped=stepped,
        verifiedWithoutDates=sample.no_check_time,
        error=not_set or ("" if abs(offset) <= STEP_THRESHOLD else f"the clock is {-offset:.0f} s ahead"),
    )
    return result


def main(request_path: str = REQUEST, result_path: str = RESULT) -> int:
    with open(request_path, encoding="utf-8") as file:
        request = json.load(file)
    if "buildTime" not in request:
        # Here, not in hostd: hostd.clock's imports would stay in hostd's memory for good.
        from hostd.clock import build_time
        from hostd.layout import Layout

        request["buildTime"] = build_time(Layout()) or 0
    result = run(request)
    result["at"] = int(time.time() * USEC)
    temporary = result_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(result, file)
    os.replace(temporary, result_path)
    print(("time verified: " if result["ok"] else "time not verified: ") + json.dumps(result), file=sys.stderr)
    return 0  # an unverified time is a result too, for hostd to report: not a failed unit


def _network_error(err: BaseException) -> str:
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {err.reason or err}"
    if isinstance(err, TimeoutError):
        return "no answer in time"
    if isinstance(err, OSError) and err.strerror:
        return f"cannot connect: {err.strerror}"
    return f"cannot connect: {type(err).__name__}"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
