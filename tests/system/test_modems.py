"""ModemManager: hostd follows it on the bus and reports the (empty, in a container) modem list."""

from __future__ import annotations

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

MM = ("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1")


def test_modemmanager_reachable_and_no_modems_reported(hostd: Hostd) -> None:
    """ModemManager answers on the device's bus with no modems, and hostd says the same: the
    Modems property and Describe are empty, `hostctl modems` says so, and it is not degraded."""
    assert hostd.busctl_json("get-property", *MM, "org.freedesktop.ModemManager1", "Version")
    assert hostd.busctl_json("call", *MM, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects") == [{}]
    assert hostd.prop("Modems") == []
    assert "modemmanager" not in hostd.prop("Degraded")
    doc = hostd.describe()
    assert doc["modems"] == [] and "modemmanager" not in doc["degraded"]
    r = hostd.hostctl("modems")
    assert (r.returncode, r.stdout.strip()) == (0, "no modems")


def test_modemmanager_restart_followed(hostd: Hostd) -> None:
    """A ModemManager restart is noticed (degraded while it is gone) and recovered from."""
    hostd.tb.restart_unit("ModemManager.service")
    hostd.tb.wait_for(lambda: hostd.prop("Degraded") == [], 10, "modemmanager attached again")
    assert hostd.prop("Modems") == []
