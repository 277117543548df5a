"""The kernel's Wi-Fi regulatory domain over nl80211 (generic netlink), as ``iw reg get/set`` do it.

Standard library only: a few fixed-layout messages do not earn a netlink dependency, and
balenaOS's ``iw`` need not be on the image.  Blocking; a reply comes within microseconds, and
the socket gives up after ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

TIMEOUT = 2.0
NETLINK_GENERIC = 16
GENL_ID_CTRL = 16
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NL80211_CMD_GET_REG = 31
NL80211_CMD_REQ_SET_REG = 27
NL80211_ATTR_REG_ALPHA2 = 33

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_GENLMSGHDR = struct.Struct("=BBH")  # command, version, reserved
_NLATTR = struct.Struct("=HH")  # length, type


class Unavailable(Exception):
    """The kernel has no such generic netlink family (for nl80211: no Wi-Fi stack, cfg80211, loaded)."""


def _align(length: int) -> int:
    return (length + 3) & ~3


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def _attributes(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _NLATTR.size : offset + length]  # without the nested/byte-order flags
        offset += _align(length)
    return found


class GenericNetlink:
    """One request at a time over a generic netlink socket."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self._socket.settimeout(TIMEOUT)
        self._socket.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> GenericNetlink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, family: int, command: int, attributes: bytes = b"", *, ack: bool = False) -> dict[int, bytes]:
        """Send one command; the attributes of the reply ({} for an acknowledgement).  OSError on an error reply."""
        self._sequence += 1
        body = _GENLMSGHDR.pack(command, 0, 0) + attributes
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        self._socket.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), family, flags, self._sequence, 0) + body)
        while True:
            data = self._socket.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, sequence, _ = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += _align(max(length, _NLMSGHDR.size))
                if sequence != self._sequence:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return {}
                return _attributes(payload[_GENLMSGHDR.size :])

    def family_id(self, name: str) -> int:
        """The id of a generic netlink family; Unavailable when the kernel has none by that name."""
        try:
            name_attribute = _attribute(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
            reply = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, name_attribute)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise Unavailable(f"the kernel has no generic netlink family {name!r}") from None
            raise
        (family,) = struct.unpack_from("=H", reply[CTRL_ATTR_FAMILY_ID])
        return family


def regulatory_domain() -> str:
    """The kernel's current regulatory domain (``00`` is the world domain)."""
    with GenericNetlink() as netlink:
        reply = netlink.request(netlink.family_id("nl80211"), NL80211_CMD_GET_REG)
    return reply.get(NL80211_ATTR_REG_ALPHA2, b"").rstrip(b"\0").decode("ascii", "replace")


def request_regulatory_domain(country: str) -> None:
    """Ask the kernel for a regulatory domain, as the user's hint; it applies it from its database."""
    with GenericNetlink() as netlink:
        family = netlink.family_id("nl80211")
        netlink.request(
            family, NL80211_CMD_REQ_SET_REG, _attribute(NL80211_ATTR_REG_ALPHA2, country.encode() + b"\0"), ack=True
        )
