"""A blocking D-Bus connection on the standard library's socket, for hostctl.

hostctl makes one to three calls and exits: importing asyncio and dbus-fast costs it more than
the calls themselves (tens of ms on a Raspberry Pi-class device).  This speaks just enough of
the protocol: EXTERNAL authentication, little-endian messages, and marshalling of the basic and
container types (arrays, structs, dict entries, variants given as ``(signature, value)``).
"""

from __future__ import annotations

# The C modules: `socket` adds enum and IntEnum wrappers, and `os` (with posixpath, stat and
# collections.abc: 5 M instructions of hostctl's 35 M) wraps posix's environ (as it was when
# the process started) and geteuid().
import _socket
import _struct as struct
import posix

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
SYSTEM_BUS_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
MAX_MESSAGE_BYTES = 128 << 20  # the specification's limit

# header field code -> its signature
_FIELDS = {
    "path": (1, "o"),
    "interface": (2, "s"),
    "member": (3, "s"),
    "error_name": (4, "s"),
    "reply_serial": (5, "u"),
    "destination": (6, "s"),
    "sender": (7, "s"),
    "signature": (8, "g"),
}
_FIELD_NAMES = {code: name for name, (code, _) in _FIELDS.items()}
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d"}
_ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "s": 4, "o": 4, "a": 4}
_ALIGN |= {"x": 8, "t": 8, "d": 8, "(": 8, "{": 8}


class BusError(Exception):
    """The bus or the callee answered with an error."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name
        self.text = message


def split_signature(signature: str) -> Iterator[str]:
    """The single complete types of a signature, in order."""
    index = 0
    while index < len(signature):
        end = _complete_type_end(signature, index)
        yield signature[index:end]
        index = end


def _complete_type_end(signature: str, index: int) -> int:
    char = signature[index]
    if char == "a":
        return _complete_type_end(signature, index + 1)
    if char in "({":
        close = ")" if char == "(" else "}"
        index += 1
        while signature[index] != close:
            index = _complete_type_end(signature, index)
        return index + 1
    return index + 1


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def marshal(buf: bytearray, signature: str, value: Any) -> None:
    """Append ``value`` of one complete type to ``buf`` (offsets relative to the message start)."""
    code = signature[0]
    _pad(buf, _ALIGN[code])
    if code in _FIXED:
        buf.extend(struct.pack("<" + _FIXED[code], int(value) if code == "b" else value))
    elif code in "so":
        data = value.encode()
        buf.extend(struct.pack("<I", len(data)) + data + b"\0")
    elif code == "g":
        data = value.encode()
        buf.extend(bytes([len(data)]) + data + b"\0")
    elif code == "v":
        inner, inner_value = value
        marshal(buf, "g", inner)
        marshal(buf, inner, inner_value)
    elif code == "a":
        item = signature[1:]
        length_at = len(buf)
        buf.extend(b"\0\0\0\0")
        _pad(buf, _ALIGN[item[0]])  # the padding before the first item is not counted
        start = len(buf)
        items = value.items() if item[0] == "{" else value
        for element in items:
            marshal(buf, item, element)
        struct.pack_into("<I", buf, length_at, len(buf) - start)
    else:  # struct or dict entry
        for member_signature, member in zip(split_signature(signature[1:-1]), value, strict=True):
            marshal(buf, member_signature, member)


def unmarshal(data: bytes, offset: int, signature: str) -> tuple[Any, int]:
    """(value, offset after it) of one complete type at ``offset``."""
    code = signature[0]
    offset += -offset % _ALIGN[code]
    if code in _FIXED:
        fmt = "<" + _FIXED[code]
        (value,) = struct.unpack_from(fmt, data, offset)
        return (bool(value) if code == "b" else value), offset + struct.calcsize(fmt)
    if code in "so":
        (length,) = struct.unpack_from("<I", data, offset)
        return data[offset + 4 : offset + 4 + length].decode(), offset + 5 + length
    if code == "g":
        length = data[offset]
        return data[offset + 1 : offset + 1 + length].decode(), offset + 2 + length
    if code == "v":
        inner, offset = unmarshal(data, offset, "g")
        value, offset = unmarshal(data, offset, inner)
        return (inner, value), offset
    if code == "a":
        item = signature[1:]
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        offset += -offset % _ALIGN[item[0]]
        end = offset + length
        items = []
        while offset < end:
            element, offset = unmarshal(data, offset, item)
            items.append(element)
        return (dict(items) if item[0] == "{" else items), offset
    members = []
    for member_signature in split_signature(signature[1:-1]):
        member, offset = unmarshal(data, offset, member_signature)
        members.append(member)
    return (tuple(members) if code == "(" else members), offset


def marshal_message(kind: int, serial: int, fields: dict[str, Any], signature: str = "", body: tuple = ()) -> bytes:
    """A whole little-endian message."""
    payload = bytearray()
    for item_signature, value in zip(split_signature(signature), body, strict=True):
        marshal(payload, item_signature, value)
    if signature:
        fields = {**fields, "signature": signature}
    header = bytearray(b"l" + bytes([kind, 0, 1]) + struct.pack("<II", len(payload), serial))
    marshal(header, "a(yv)", [(_FIELDS[name][0], (_FIELDS[name][1], value)) for name, value in fields.items()])
    _pad(header, 8)
    return bytes(header + payload)


def unmarshal_message(data: bytes) -> tuple[int, dict[str, Any], list[Any]]:
    """(type, header fields by name, body) of a whole little-endian message."""
    if data[:1] != b"l":
        raise BusError("org.freedesktop.DBus.Error.NotSupported", "big-endian message")
    raw_fields, offset = unmarshal(data, 12, "a(yv)")
    fields = {_FIELD_NAMES[code]: value for code, (_, value) in raw_fields if code in _FIELD_NAMES}
    offset += -offset % 8
    body = []
    for item_signature in split_signature(fields.get("signature", "")):
        value, offset = unmarshal(data, offset, item_signature)
        body.append(value)
    return data[1], fields, body


def _socket_address(address: str) -> str | bytes:
    for part in address.split(";"):
        transport, _, options = part.partition(":")
        if transport != "unix":
            continue
        keys = dict(option.split("=", 1) for option in options.split(",") if "=" in option)
        if "path" in keys:
            return keys["path"]
        if "abstract" in keys:
            return b"\0" + keys["abstract"].encode()
    raise BusError("org.freedesktop.DBus.Error.BadAddress", f"no unix socket in {address!r}")


class Connection:
    """One authenticated connection to a bus; ``call`` blocks until the reply (or ``timeout``)."""

    def __init__(self, address: str | None = None, timeout: float = 25.0) -> None:
        address = address or posix.environ.get(b"DBUS_SYSTEM_BUS_ADDRESS", b"").decode() or SYSTEM_BUS_ADDRESS
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        self._serial = 0
        try:
            self.sock.connect(_socket_address(address))
            self.sock.sendall(b"\0AUTH EXTERNAL " + str(posix.geteuid()).encode().hex().encode() + b"\r\n")
            if not self._read_line().startswith(b"OK "):
                raise ConnectionError("the bus refused EXTERNAL authentication")
            self.sock.sendall(b"BEGIN\r\n")
            [self.unique_name] = self.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"
            )
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._receive()
        line, _, rest = bytes(self._buf).partition(b"\r\n")
        self._buf[:] = rest
        return line

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the bus closed the connection")
        self._buf.extend(chunk)

    def _read_message(self) -> bytes:
        while True:
            if len(self._buf) >= 16:
                body_length, _, fields_length = struct.unpack_from("<III", self._buf, 4)
                total = 16 + fields_length + (-fields_length % 8) + body_length
                if total > MAX_MESSAGE_BYTES:
                    raise ConnectionError("the bus sent a message over the size limit")
                if len(self._buf) >= total:
                    message = bytes(self._buf[:total])
                    del self._buf[:total]
                    return message
            self._receive()

    def call(
        self, destination: str, path: str, interface: str, member: str, signature: str = "", *args: Any
    ) -> list[Any]:
        """Call a method; its reply's body, or BusError for an error reply."""
        self._serial += 1
        fields = {"path": path, "interface": interface, "member": member, "destination": destination}
        self.sock.sendall(marshal_message(METHOD_CALL, self._serial, fields, signature, args))
        while True:
            kind, reply_fields, body = unmarshal_message(self._read_message())
            if kind not in (METHOD_RETURN, ERROR) or reply_fields.get("reply_serial") != self._serial:
                continue  # a signal (NameAcquired) or another reply
            if kind == ERROR:
                raise BusError(reply_fields.get("error_name", ""), body[0] if body and isinstance(body[0], str) else "")
            return body

    def close(self) -> None:
        self.sock.close()
