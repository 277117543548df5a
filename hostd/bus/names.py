"""Every D-Bus name hostd uses: bus names, object paths, interfaces, error names.

Nothing else in hostd spells these strings; tests and fakes import them from here too.
"""

# hostd's own API (exported by hostd.api, called by hostctl)
HOSTD_NAME = "io.hostd1"
HOSTD_PATH = "/io/hostd1"
HOSTD_INTERFACE = "io.hostd1.Manager"

# The bus itself
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
DBUS_INTERFACE = "org.freedesktop.DBus"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER_INTERFACE = "org.freedesktop.DBus.ObjectManager"

# systemd (PID 1)
SYSTEMD_NAME = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
SYSTEMD_MANAGER_INTERFACE = "org.freedesktop.systemd1.Manager"

# NetworkManager
NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
NM_SETTINGS_PATH = "/org/freedesktop/NetworkManager/Settings"
NM_SETTINGS_INTERFACE = "org.freedesktop.NetworkManager.Settings"
NM_CONNECTION_INTERFACE = "org.freedesktop.NetworkManager.Settings.Connection"
NM_DNS_MANAGER_PATH = "/org/freedesktop/NetworkManager/DnsManager"
NM_DNS_MANAGER_INTERFACE = "org.freedesktop.NetworkManager.DnsManager"
NM_ACTIVE_CONNECTION_INTERFACE = "org.freedesktop.NetworkManager.Connection.Active"
NM_DHCP4_CONFIG_PATH = "/org/freedesktop/NetworkManager/DHCP4Config"
NM_DHCP4_CONFIG_INTERFACE = "org.freedesktop.NetworkManager.DHCP4Config"
NM_DHCP6_CONFIG_PATH = "/org/freedesktop/NetworkManager/DHCP6Config"
NM_DHCP6_CONFIG_INTERFACE = "org.freedesktop.NetworkManager.DHCP6Config"

# ModemManager
MM_NAME = "org.freedesktop.ModemManager1"
MM_PATH = "/org/freedesktop/ModemManager1"
MM_MODEM_PATH_PREFIX = "/org/freedesktop/ModemManager1/Modem"
MM_MODEM_INTERFACE = "org.freedesktop.ModemManager1.Modem"
MM_MODEM_3GPP_INTERFACE = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
MM_NO_SIM_PATH = "/"

# systemd-hostnamed
HOSTNAME1_NAME = "org.freedesktop.hostname1"
HOSTNAME1_PATH = "/org/freedesktop/hostname1"
HOSTNAME1_INTERFACE = "org.freedesktop.hostname1"

# Avahi
AVAHI_NAME = "org.freedesktop.Avahi"
AVAHI_SERVER_PATH = "/"
AVAHI_SERVER_INTERFACE = "org.freedesktop.Avahi.Server"
AVAHI_ENTRY_GROUP_INTERFACE = "org.freedesktop.Avahi.EntryGroup"

# dnsmasq (built with D-Bus support and run with --enable-dbus); the interface is named like the bus name
DNSMASQ_NAME = "uk.org.thekelleys.dnsmasq"
DNSMASQ_PATH = "/uk/org/thekelleys/dnsmasq"
DNSMASQ_INTERFACE = "uk.org.thekelleys.dnsmasq"

# Error names that hostd translates or tests for
ERROR_SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"
ERROR_NAME_HAS_NO_OWNER = "org.freedesktop.DBus.Error.NameHasNoOwner"
ERROR_NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
ERROR_DISCONNECTED = "org.freedesktop.DBus.Error.Disconnected"
ERROR_SPAWN_PREFIX = "org.freedesktop.DBus.Error.Spawn."
ERROR_ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
ERROR_AUTH_FAILED = "org.freedesktop.DBus.Error.AuthFailed"
ERROR_INTERACTIVE_AUTH_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
ERROR_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ERROR_TIMEOUT = "org.freedesktop.DBus.Error.Timeout"
ERROR_TIMED_OUT = "org.freedesktop.DBus.Error.TimedOut"
ERROR_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
ERROR_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
ERROR_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
ERROR_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
ERROR_NOT_SUPPORTED = "org.freedesktop.DBus.Error.NotSupported"
ERROR_FAILED = "org.freedesktop.DBus.Error.Failed"
SYSTEMD_ERROR_NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
SYSTEMD_ERROR_UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"
NM_ERROR_PERMISSION_DENIED = "org.freedesktop.NetworkManager.PermissionDenied"
NM_SETTINGS_ERROR_PERMISSION_DENIED = "org.freedesktop.NetworkManager.Settings.PermissionDenied"
POLKIT_ERROR_NOT_AUTHORIZED = "org.freedesktop.PolicyKit1.Error.NotAuthorized"
AVAHI_ERROR_NO_CHANGE = "org.freedesktop.Avahi.NoChangeError"
AVAHI_ERROR_NOT_PERMITTED = "org.freedesktop.Avahi.NotPermittedError"
AVAHI_ERROR_INVALID_HOST_NAME = "org.freedesktop.Avahi.InvalidHostNameError"
AVAHI_ERROR_INVALID_ARGUMENT = "org.freedesktop.Avahi.InvalidArgumentError"
