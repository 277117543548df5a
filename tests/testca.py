"""A throw-away certificate authority for TLS tests, made with the openssl command.

``TestCA(directory).issue(name, ...)`` gives a server certificate and key signed by the CA, for a
DNS name or an IP address, valid from ``start`` (unix time, default now) for ``days``.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CA_CONFIG = """\
[ca]
default_ca = test
[test]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "hostd test CA") -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "issued").mkdir(exist_ok=True)
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        (directory / "ca.cnf").write_text(CA_CONFIG.format(dir=directory))
        self.cert, self.key = directory / "ca.pem", directory / "ca.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key, "-out", self.cert, "-days", "3650", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    @property
    def pem(self) -> str:
        return self.cert.read_text()

    def issue(self, name: str, *, start: float | None = None, days: int = 30) -> Issued:
        """A server certificate for name (DNS name or IP address) from start (default: now)."""
        start = time.time() if start is None else start
        stem = self.dir / name.replace(":", "_")
        key, csr, cert = stem.with_suffix(".key"), stem.with_suffix(".csr"), stem.with_suffix(".pem")
        try:
            ipaddress.ip_address(name)
            san = f"IP:{name}"
        except ValueError:
            san = f"DNS:{name}"
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
        )  # fmt: skip
        dates = ["-startdate", _openssl_date(start), "-enddate", _openssl_date(start + days * 86400)]
        _openssl(
            "ca", "-batch", "-config", self.dir / "ca.cnf", "-cert", self.cert, "-keyfile", self.key,
            "-in", csr, "-out", cert, "-notext", *dates,
        )  # fmt: skip
        return Issued(cert, key)


def _openssl_date(unix: float) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(unix))


def _openssl(*args: object) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
