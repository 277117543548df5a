"""The one translation of D-Bus error names into hostd's exception tree."""

from __future__ import annotations

import pytest

from hostd.bus import errors, names


@pytest.mark.parametrize(
    ("error_name", "expected"),
    [
        (names.ERROR_SERVICE_UNKNOWN, errors.ServiceUnavailable),
        (names.ERROR_NAME_HAS_NO_OWNER, errors.ServiceUnavailable),
        (names.ERROR_DISCONNECTED, errors.ServiceUnavailable),
        ("org.freedesktop.DBus.Error.Spawn.ChildExited", errors.ServiceUnavailable),
        (names.ERROR_ACCESS_DENIED, errors.AccessDenied),
        (names.ERROR_INTERACTIVE_AUTH_REQUIRED, errors.AccessDenied),
        (names.POLKIT_ERROR_NOT_AUTHORIZED, errors.AccessDenied),
        (names.NM_ERROR_PERMISSION_DENIED, errors.AccessDenied),
        (names.AVAHI_ERROR_NOT_PERMITTED, errors.AccessDenied),
        (names.ERROR_INVALID_ARGS, errors.InvalidArgs),
        (names.AVAHI_ERROR_INVALID_HOST_NAME, errors.InvalidArgs),
        (names.ERROR_TIMEOUT, errors.Timeout),
        (names.ERROR_TIMED_OUT, errors.Timeout),
        (names.ERROR_UNKNOWN_OBJECT, errors.NoSuchObject),
        (names.SYSTEMD_ERROR_NO_SUCH_UNIT, errors.NoSuchObject),
        (names.ERROR_UNKNOWN_METHOD, errors.NotSupported),
        (names.ERROR_UNKNOWN_PROPERTY, errors.NotSupported),
        (names.SYSTEMD_ERROR_UNIT_EXISTS, errors.RemoteError),
        ("com.example.Anything", errors.RemoteError),
    ],
)
def test_error_names_map_to_types(error_name: str, expected: type[errors.BusError]) -> None:
    error = errors.from_error_reply(error_name, "text", peer_vanished=False)
    assert type(error) is expected
    assert (error.name, error.message) == (error_name, "text")
    assert isinstance(error, errors.BusError)


def test_no_reply_depends_on_whether_the_peer_vanished() -> None:
    assert type(errors.from_error_reply(names.ERROR_NO_REPLY, "", peer_vanished=True)) is errors.ServiceUnavailable
    assert type(errors.from_error_reply(names.ERROR_NO_REPLY, "", peer_vanished=False)) is errors.Timeout


def test_command_failed_carries_the_details() -> None:
    error = errors.CommandFailed("chronyc reload sources", 1, "501 Not authorised\n")
    assert (error.command, error.returncode, error.stderr) == ("chronyc reload sources", 1, "501 Not authorised\n")
    assert str(error) == "'chronyc reload sources' exited 1: 501 Not authorised"
