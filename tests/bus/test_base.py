"""The shared pieces: value unwrapping, the property cache's ordering, tolerant enums, match rules."""

from __future__ import annotations

import logging

import pytest
from dbus_fast import Variant

from hostd.bus.base import PropertyCache, TolerantIntEnum, TolerantStrEnum, match_rule, unwrap


class Color(TolerantStrEnum):
    RED = "red"
    UNKNOWN = "unknown"


class Level(TolerantIntEnum):
    UNKNOWN = 0
    HIGH = 1


def test_unwrap_turns_variants_into_plain_data() -> None:
    value = {"a": Variant("as", ["x"]), "b": Variant("a{sv}", {"c": Variant("(ub)", [1, True])})}
    assert unwrap(value) == {"a": ["x"], "b": {"c": [1, True]}}


def test_older_getall_reply_does_not_overwrite_a_newer_signal() -> None:
    cache = PropertyCache()
    assert cache.apply({"State": 70}, serial=10) == {"State"}  # PropertiesChanged, sent after...
    assert cache.apply({"State": 20, "Other": 1}, serial=7) == {"Other"}  # ...the GetAll reply
    assert cache.values == {"State": 70, "Other": 1}
    assert cache.apply({"State": 70}, serial=11) == set()  # same value: no change reported
    cache.forget_serials()
    assert cache.apply({"State": 30}, serial=1) == {"State"}  # a new owner counts from 1


def test_unknown_enum_values_map_to_unknown_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hostd.bus")
    assert Color("purple-from-the-future") is Color.UNKNOWN
    assert Color("purple-from-the-future") is Color.UNKNOWN
    assert Level(123456) is Level.UNKNOWN
    assert Color("red") is Color.RED
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert sum("purple-from-the-future" in message for message in messages) == 1
    assert sum("123456" in message for message in messages) == 1


def test_match_rule() -> None:
    rule = match_rule(type="signal", sender="org.freedesktop.DBus", arg0="org.freedesktop.Avahi")
    assert rule == "type='signal',sender='org.freedesktop.DBus',arg0='org.freedesktop.Avahi'"
