"""hostctl's stdlib D-Bus marshalling, held to dbus-fast's (an independent implementation) both ways."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from dbus_fast import Message, Variant
from dbus_fast._private.unmarshaller import Unmarshaller
from hypothesis import given
from hypothesis import strategies as st

from hostd import cli, sync_bus

REPO = Path(__file__).resolve().parents[2]
SIGNATURE = "sua{sv}a(sss)bxdayga{ss}"
VALUES = (
    "héllo",
    7,
    {"a": ("s", "x"), "b": ("u", 3), "c": ("as", ["p", "q"])},
    [("a", "b", "c"), ("d", "", "f")],
    True,
    -5,
    1.5,
    [1, 2, 3],
    "a{sv}",
    {},
)
FIELDS = {"path": "/a/b", "interface": "x.y", "member": "M", "destination": "d.e"}


def _as_dbus_fast(value: object) -> object:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and value[0] in ("s", "u", "as"):
        return Variant(value[0], value[1])
    if isinstance(value, dict):
        return {k: _as_dbus_fast(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_dbus_fast(v) for v in value]
    return value


def test_what_hostctl_sends_is_what_dbus_fast_reads() -> None:
    data = sync_bus.marshal_message(sync_bus.METHOD_CALL, 9, FIELDS, SIGNATURE, VALUES)
    message = Unmarshaller(io.BytesIO(data)).unmarshall()
    assert (message.path, message.interface, message.member, message.destination) == ("/a/b", "x.y", "M", "d.e")
    assert message.serial == 9 and message.signature == SIGNATURE
    body = list(message.body)
    body[2] = {key: (variant.signature, variant.value) for key, variant in body[2].items()}
    body[3] = [tuple(item) for item in body[3]]
    body[7] = list(body[7])
    assert body == list(VALUES)


def test_what_dbus_fast_sends_is_what_hostctl_reads() -> None:
    body = [_as_dbus_fast(value) for value in VALUES]
    body[7] = bytes(VALUES[7])
    message = Message(destination="d.e", path="/a/b", interface="x.y", member="M", signature=SIGNATURE, body=body)
    message.serial = 5
    kind, fields, decoded = sync_bus.unmarshal_message(bytes(message._marshall(False)))
    assert kind == sync_bus.METHOD_CALL
    assert fields == {**FIELDS, "signature": SIGNATURE}
    assert decoded == list(VALUES)


@given(st.lists(st.tuples(st.text(), st.integers(0, 2**32 - 1), st.booleans())), st.text())
def test_round_trip(items: list[tuple[str, int, bool]], text: str) -> None:
    data = sync_bus.marshal_message(sync_bus.METHOD_RETURN, 1, {"reply_serial": 1}, "a(sub)s", (items, text))
    assert sync_bus.unmarshal_message(data)[2] == [items, text]


def test_split_signature() -> None:
    assert list(sync_bus.split_signature("sa{sv}a(s(ii)as)v")) == ["s", "a{sv}", "a(s(ii)as)", "v"]


def test_hostctl_online_commands_load_neither_asyncio_nor_dbus_fast() -> None:
    # What `hostctl` imports before it talks to the bus: not asyncio, not dbus-fast.
    code = (
        "import sys; from hostd import cli, client; cli.build_parser();"
        "print(sorted({'asyncio', 'dbus_fast'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_hostctl_status_starts_without_argparse_typing_or_json() -> None:
    # As the launcher runs it (-IS): the parser, typing and json (with re) are most of what hostctl would import.
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from hostd import cli, client;"
        "print(sorted({'argparse', 'typing', 'asyncio', 'dbus_fast', 'socket', 'json', 're'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_status_read_without_the_parser_as_the_parser_reads_it() -> None:
    for argv, expected in cli.STATUS_ARGS.items():
        assert vars(cli.build_parser().parse_args(list(argv))) == expected
