"""The benchmarks' D-Bus client: hostctl's own (hostd/sync_bus.py) plus an undecoded fast call.

The API benchmarks measure the *server* (hostd, hostnamed, the bus daemon), so the timed loop
must cost as little as possible and exactly the same for every server: a call is a
pre-marshalled message whose serial is patched in place, sent with one ``sendall``; the reply
is read with a length computed from its fixed header and not decoded beyond its type (one call
is in flight at a time, so the reply to it is the next method reply or error).
"""

from __future__ import annotations

import struct

from hostd import sync_bus


def marshal_call(
    destination: str, path: str, interface: str, member: str, signature: str = "", args: tuple = ()
) -> bytearray:
    """A complete METHOD_CALL message (little endian); its serial is at offset 8."""
    fields = {"path": path, "interface": interface, "member": member, "destination": destination}
    return bytearray(sync_bus.marshal_message(sync_bus.METHOD_CALL, 1, fields, signature, args))


class Connection(sync_bus.Connection):
    def call_fast(self, message: bytearray) -> None:
        """One call of a pre-marshalled message, its reply not decoded: the timed loop."""
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
                    if kind == sync_bus.METHOD_RETURN:
                        return
                    if kind == sync_bus.ERROR:
                        raise RuntimeError("D-Bus error reply")
                    continue
            chunk = recv(262144)
            if not chunk:
                raise ConnectionError("bus closed the connection")
            buf.extend(chunk)
