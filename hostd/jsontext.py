"""JSON for hostctl's status path, without the json package.

``import json`` loads ``re`` (and through it enum, functools and collections): 28 M of the 59 M
instructions `hostctl status` ran.  Here json's own C half (``_json``, part of CPython) reads and
quotes, and the layout is json.dumps(indent=2)'s, byte for byte (a unit test holds them equal).
Everything else in hostd uses json.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see hostd.cli)
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # an interpreter without json's C half
    _json = None

_WHITESPACE = " \t\n\r"


class _DecoderOptions:
    """What json's C scanner reads from a json.JSONDecoder: the defaults of json.loads."""

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = float  # NaN, Infinity, -Infinity
        self.memo: dict[str, str] = {}


def loads(text: str) -> Any:
    """json.loads(text)."""
    if _json is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _json.make_scanner(_DecoderOptions())(text, start)
    except StopIteration as exc:
        raise ValueError(f"not JSON: nothing to read at character {exc.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def dumps_indented(value: Any) -> str:
    """json.dumps(value, indent=2)."""
    if _json is None:
        import json

        return json.dumps(value, indent=2)
    return _dumps(value, "\n")


def _dumps(value: Any, newline: str) -> str:
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is None or isinstance(value, bool):
        return _CONSTANTS[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    inner = newline + "  "
    if isinstance(value, dict):
        items = [f"{_key(key)}: {_dumps(item, inner)}" for key, item in value.items()]
        return "{" + inner + ("," + inner).join(items) + newline + "}" if items else "{}"
    if isinstance(value, list | tuple):
        items = [_dumps(item, inner) for item in value]
        return "[" + inner + ("," + inner).join(items) + newline + "]" if items else "[]"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_CONSTANTS = {None: "null", True: "true", False: "false"}


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key(key: object) -> str:
    """A dict key as json writes it: strings quoted, numbers and constants as their text."""
    if isinstance(key, str):
        return _json.encode_basestring_ascii(key)
    if key is None or isinstance(key, bool):
        return f'"{_CONSTANTS[key]}"'
    if isinstance(key, int):
        return f'"{int.__repr__(key)}"'
    if isinstance(key, float):
        return f'"{_float(key)}"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
