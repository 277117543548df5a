"""The HTTPS time probe against a real TLS server on loopback, with a test CA: what it trusts,
what it refuses, when it would step the clock (never stepped here: this machine's clock)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostd import timeprobe
from hostd.timeprobe import ProbeError, Sample
from tests.https_date import serve_in_thread, server
from tests.testca import TestCA

DAY = 86400.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("other-ca"), "another CA")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Https:
    def __init__(self, ca: TestCA, name: str = "127.0.0.1", *, start: float | None = None, date_offset: float = 0.0):
        issued = ca.issue(name, start=start)
        self.port = free_port()
        self.httpd = server(str(issued.cert), str(issued.key), "127.0.0.1", self.port, date_offset)
        serve_in_thread(self.httpd)
        self.url = f"https://127.0.0.1:{self.port}/connectivity-check"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https(ca: TestCA) -> Iterator[Https]:
    served = Https(ca)
    yield served
    served.close()


def test_a_verified_server_gives_its_time(https: Https, ca: TestCA) -> None:
    sample = timeprobe.probe(https.url, ca.pem, build_time=time.time() - DAY)
    assert abs(sample.offset) < 2 and not sample.no_check_time
    assert not timeprobe.should_step(sample)


def test_an_unknown_ca_is_refused(https: Https, other_ca: TestCA) -> None:
    with pytest.raises(ProbeError, match="certificate not verified: unable to get local issuer"):
        timeprobe.probe(https.url, other_ca.pem, build_time=0)


def test_no_extra_ca_means_the_system_store_only(https: Https) -> None:
    with pytest.raises(ProbeError, match="certificate not verified"):
        timeprobe.probe(https.url, "", build_time=0)


def test_another_name_is_refused(ca: TestCA) -> None:
    served = Https(ca, "other.test")
    try:
        with pytest.raises(ProbeError, match=r"certificate not verified: .*mismatch"):
            timeprobe.probe(served.url, ca.pem, build_time=0)
    finally:
        served.close()


def test_a_time_before_the_build_is_refused(https: Https, ca: TestCA) -> None:
    with pytest.raises(ProbeError, match="before this build"):
        timeprobe.probe(https.url, ca.pem, build_time=time.time() + DAY)


def test_clock_behind_the_certificate_is_verified_without_dates(ca: TestCA) -> None:
    """The clock (this machine's) is 10 days before the certificate's start, as a device's clock
    in the past is: verified without dates, the server's time inside the leaf's validity is taken."""
    served = Https(ca, start=time.time() + 10 * DAY, date_offset=11 * DAY)
    try:
        sample = timeprobe.probe(served.url, ca.pem, build_time=time.time())
    finally:
        served.close()
    assert sample.no_check_time
    assert 11 * DAY - 2 < sample.offset < 11 * DAY + 2
    assert timeprobe.should_step(sample)


def test_without_dates_the_stated_time_must_be_inside_the_validity(ca: TestCA) -> None:
    """Verified without dates, a server stating a time before its certificate's start is refused."""
    served = Https(ca, start=time.time() + 10 * DAY)
    try:
        with pytest.raises(ProbeError, match="outside its certificate's validity"):
            timeprobe.probe(served.url, ca.pem, build_time=0)
    finally:
        served.close()


def test_an_expired_certificate_is_refused(ca: TestCA) -> None:
    served = Https(ca, start=time.time() - 40 * DAY)  # 30 days: ended 10 days ago
    try:
        with pytest.raises(ProbeError, match="certificate has expired"):
            timeprobe.probe(served.url, ca.pem, build_time=0)
    finally:
        served.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),  # RFC 850, obsolete
        ("Sun Nov  6 08:49:37 1994", None),  # asctime: no zone, refused
        ("Sun, 06 Nov 1994 08:49:37 +0100", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_date_headers(header: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ProbeError):
            timeprobe.parse_http_date(header)
    else:
        assert timeprobe.parse_http_date(header) == expected


def test_judge_date() -> None:
    timeprobe.judge_date(100.0, 50.0, 200.0, 90.0)
    with pytest.raises(ProbeError, match="before this build"):
        timeprobe.judge_date(100.0, 50.0, 200.0, 101.0)
    with pytest.raises(ProbeError, match="outside"):
        timeprobe.judge_date(201.0, 50.0, 200.0, 0.0)


def sample(offset: float) -> Sample:
    now = time.time()
    return Sample(now + offset - 0.5, now, now - DAY, now + DAY, False)


def test_only_a_clock_behind_is_stepped() -> None:
    assert timeprobe.should_step(sample(3.0))
    assert not timeprobe.should_step(sample(1.5))
    assert not timeprobe.should_step(sample(-3600.0))  # ahead: chrony's to slew or step


def test_run_steps_a_clock_behind_and_reports(https: Https, ca: TestCA) -> None:
    stepped: list[Sample] = []
    request = {"url": https.url, "ca": ca.pem, "buildTime": 0, "label": "connectivity URI"}
    result = timeprobe.run(request, step=lambda s: stepped.append(s) or "")
    assert result["ok"] and not result["stepped"] and stepped == []
    assert result["url"] == "connectivity URI" and https.url not in json.dumps(result)


def test_run_reports_the_last_failure_after_its_tries(ca: TestCA) -> None:
    result = timeprobe.run(
        {"url": f"https://127.0.0.1:{free_port()}/", "ca": ca.pem, "buildTime": 0}, tries=3, first_delay=0.01
    )
    assert result == {"url": "", "tries": 3, "ok": False, "error": "cannot connect: Connection refused"}


def test_a_clock_that_cannot_be_set_is_not_trusted(ca: TestCA) -> None:
    served = Https(ca, date_offset=3600)
    try:
        result = timeprobe.run({"url": served.url, "ca": ca.pem, "buildTime": 0}, step=lambda s: "not permitted")
    finally:
        served.close()
    assert not result["ok"] and result["error"] == "not permitted" and 3598 < result["offset"] < 3602


def test_the_probe_process_keeps_ssl_out_of_hostd(tmp_path: Path, https: Https, ca: TestCA) -> None:
    """`hostd --time-probe`'s own interpreter (-IS, the launchers' flags) writes the result file."""
    request, result = tmp_path / "request.json", tmp_path / "result.json"
    request.write_text(json.dumps({"url": https.url, "ca": ca.pem, "buildTime": 0}))
    code = f"import sys; from hostd import timeprobe; sys.exit(timeprobe.main({str(request)!r}, {str(result)!r}))"
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); " + code])
    assert done.returncode == 0
    assert json.loads(result.read_text())["ok"] is True
