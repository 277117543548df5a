"""A minimal blocking D-Bus client on a raw socket (standard library only).

The API benchmarks measure the *server* (hostd, hostnamed, the bus daemon), so the client must
cost as little as possible and exactly the same for every server: a call is a pre-marshalled
message whose serial is patched in place, sent with one ``sendall``; the reply is read with a
length computed from its fixed header and not decoded beyond its type (one call is in flight at
a time, so the reply to it is the next method reply or error).  Only what the benchmarks send is
marshalled: string, object path and signature arguments.
"""

from __future__ import annotations

import os
import socket
import struct

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_FIELD_CODES = {
    "path": (1, "o"),
    "interface": (2, "s"),
    "member": (3, "s"),
    "destination": (6, "s"),
    "signature": (8, "g"),
}


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def _put(buf: bytearray, sig: str, value: object) -> None:
    if sig in ("s", "o"):
        data = str(value).encode()
        _pad(buf, 4)
        buf.extend(struct.pack("<I", len(data)) + data + b"\0")
    elif sig == "g":
        data = str(value).encode()
        buf.extend(bytes([len(data)]) + data + b"\0")
    elif sig == "u":
        _pad(buf, 4)
        buf.extend(struct.pack("<I", int(value)))  # type: ignore[call-overload]
    elif sig == "b":
        _pad(buf, 4)
        buf.extend(struct.pack("<I", 1 if value else 0))
    else:
        raise ValueError(f"unsupported signature {sig!r}")


def marshal_call(
    destination: str, path: str, interface: str, member: str, signature: str = "", args: tuple = (), serial: int = 1
) -> bytearray:
    """A complete METHOD_CALL message (little endian); its serial is at offset 8."""
    body = bytearray()
    for sig, arg in zip(signature, args, strict=True):
        _put(body, sig, arg)
    fields = bytearray()
    values = {"path": path, "interface": interface, "member": member, "destination": destination}
    if signature:
        values["signature"] = signature
    for name, value in values.items():
        code, sig = _FIELD_CODES[name]
        _pad(fields, 8)
        fields.extend(bytes([code, 1]) + sig.encode() + b"\0")
        _put(fields, sig, value)
    header = bytearray(b"l" + bytes([METHOD_CALL, 0, 1]) + struct.pack("<III", len(body), serial, len(fields)))
    message = header + fields
    _pad(message, 8)
    return message + body


class Connection:
    """One authenticated connection to a bus (``unix:path=...`` address or a socket path)."""

    def __init__(self, address: str) -> None:
        path = address.split("unix:path=", 1)[-1].split(",", 1)[0]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        line = self._read_line()
        if not line.startswith(b"OK"):
            raise ConnectionError(f"D-Bus authentication refused: {line!r}")
        self.sock.sendall(b"BEGIN\r\n")
        self._buf = bytearray()
        self._serial = 0
        self.unique_name = self.call(
            marshal_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
        )[1]

    def _read_line(self) -> bytes:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("bus closed the connection during authentication")
            data += chunk
        return data

    def _read_message(self) -> tuple[int, bytes]:
        buf = self._buf
        while True:
            if len(buf) >= 16:
                body_len, _serial, fields_len = struct.unpack_from("<III", buf, 4)
                total = 16 + fields_len + (-fields_len % 8) + body_len
                if len(buf) >= total:
                    message = bytes(buf[:total])
                    del buf[:total]
                    return message[1], message
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("bus closed the connection")
            buf.extend(chunk)

    def call(self, message: bytearray) -> tuple[int, str]:
        """Send one call, wait for its reply; returns (reply type, first string of the body or '')."""
        self._serial += 1
        struct.pack_into("<I", message, 8, self._serial)
        self.sock.sendall(message)
        while True:
            kind, reply = self._read_message()
            if kind in (METHOD_RETURN, ERROR):
                break
        first = ""
        fields_len = struct.unpack_from("<I", reply, 12)[0]
        body_at = 16 + fields_len + (-fields_len % 8)
        if len(reply) >= body_at + 4:
            (length,) = struct.unpack_from("<I", reply, body_at)
            if body_at + 4 + length <= len(reply):
                first = reply[body_at + 4 : body_at + 4 + length].decode(errors="replace")
        if kind == ERROR:
            raise RuntimeError(f"D-Bus error reply: {first}")
        return kind, first

    def call_fast(self, message: bytearray) -> None:
        """call() without decoding anything: the timed loop of the benchmarks."""
        self._serial += 1
        struct.pack_into("<I", message, 8, self._serial)
        self.sock.sendall(message)
        buf = self._buf
        recv = self.sock.recv
        while True:
            if len(buf) >= 16:
                body_len, _serial, fields_len = struct.unpack_from("<III", buf, 4)
                total = 16 + fields_len + (-fields_len % 8) + body_len
                if len(buf) >= total:
                    kind = buf[1]
                    del buf[:total]
                    if kind == METHOD_RETURN:
                        return
                    if kind == ERROR:
                        raise RuntimeError("D-Bus error reply")
                    continue
            chunk = recv(262144)
            if not chunk:
                raise ConnectionError("bus closed the connection")
            buf.extend(chunk)

    def close(self) -> None:
        self.sock.close()
