"""The exceptions hostd.bus raises, and the one place remote errors are translated into them.

BusError                      base; .name = remote error name (None when raised locally), .message
├── ServiceUnavailable        the peer is not there (not running, vanished, tool missing)
├── AccessDenied              the peer refused the caller
├── InvalidArgs               the peer rejected an argument
├── Timeout                   no answer within the bound
├── RemoteError               any other error reply
│   ├── NoSuchObject          the object or unit does not exist
│   └── NotSupported          the peer's version lacks the method/interface/property
└── CommandFailed             a helper command (chronyc, journalctl) exited non-zero
"""

from hostd.bus import names


class BusError(Exception):
    """Base of every error hostd.bus raises."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(f"{name}: {message}" if name else message)
        self.name = name
        self.message = message


class ServiceUnavailable(BusError):
    """The service is not running, vanished during the call, or its tool is missing."""


class AccessDenied(BusError):
    """The service refused the call for lack of privilege."""


class InvalidArgs(BusError):
    """The service rejected an argument."""


class Timeout(BusError):
    """No answer within the bounded time."""


class RemoteError(BusError):
    """An error reply hostd has no more specific class for; match on .name."""


class NoSuchObject(RemoteError):
    """The object path or unit named in the call does not exist."""


class NotSupported(RemoteError):
    """The running service's version lacks what was called."""


class CommandFailed(BusError):
    """A helper command ran but exited non-zero."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        super().__init__(f"{command!r} exited {returncode}: {stderr.strip()}")
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


_UNAVAILABLE = frozenset({names.ERROR_SERVICE_UNKNOWN, names.ERROR_NAME_HAS_NO_OWNER, names.ERROR_DISCONNECTED})
_ACCESS_DENIED = frozenset(
    {
        names.ERROR_ACCESS_DENIED,
        names.ERROR_AUTH_FAILED,
        names.ERROR_INTERACTIVE_AUTH_REQUIRED,
        names.POLKIT_ERROR_NOT_AUTHORIZED,
        names.NM_ERROR_PERMISSION_DENIED,
        names.NM_SETTINGS_ERROR_PERMISSION_DENIED,
        names.AVAHI_ERROR_NOT_PERMITTED,
    }
)
_INVALID_ARGS = frozenset(
    {names.ERROR_INVALID_ARGS, names.AVAHI_ERROR_INVALID_HOST_NAME, names.AVAHI_ERROR_INVALID_ARGUMENT}
)
_TIMEOUT = frozenset({names.ERROR_TIMEOUT, names.ERROR_TIMED_OUT})
_NO_SUCH_OBJECT = frozenset({names.ERROR_UNKNOWN_OBJECT, names.SYSTEMD_ERROR_NO_SUCH_UNIT})
_NOT_SUPPORTED = frozenset(
    {
        names.ERROR_UNKNOWN_METHOD,
        names.ERROR_UNKNOWN_INTERFACE,
        names.ERROR_UNKNOWN_PROPERTY,
        names.ERROR_NOT_SUPPORTED,
    }
)


def from_error_reply(name: str, message: str, *, peer_vanished: bool) -> BusError:
    """Map a D-Bus error reply to hostd's exception tree.

    NoReply is ambiguous: the bus sends it both when the peer disconnected with the call pending
    and when the peer sat on it past the bus's own reply timeout; the caller says which it was.
    """
    if name in _UNAVAILABLE or name.startswith(names.ERROR_SPAWN_PREFIX):
        return ServiceUnavailable(message, name)
    if name == names.ERROR_NO_REPLY:
        return ServiceUnavailable(message, name) if peer_vanished else Timeout(message, name)
    if name in _ACCESS_DENIED:
        return AccessDenied(message, name)
    if name in _INVALID_ARGS:
        return InvalidArgs(message, name)
    if name in _TIMEOUT:
        return Timeout(message, name)
    if name in _NO_SUCH_OBJECT:
        return NoSuchObject(message, name)
    if name in _NOT_SUPPORTED:
        return NotSupported(message, name)
    return RemoteError(message, name)
