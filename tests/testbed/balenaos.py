"""The balenaOS image the testbed device models (meta-balena v8.0.2), written into the overlay's
upper layer before the first boot.

Everything here is the *image's*: hostd may change it only through what its own package ships.
Values are balenaOS's own; where the container forces a difference it says why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

DNS_BRIDGE, DNS_BRIDGE_IP = "resin-dns", "10.114.102.1"  # carries container DNS on balenaOS
DEVELOPMENT_FLAG = "/var/volatile/development-features"
SSH_PORT = 22222
ENGINE_DEV_PORT = 2375

# meta-balena-common/recipes-core/chrony/files/chrony.conf: pools, sourcedir /run/chrony, no confdir
CHRONY_CONF = "".join(
    f"pool {n}.resinio.pool.ntp.org iburst minpoll 14 maxpoll 14 maxsources 1\n" for n in range(4)
) + (
    "sourcedir /run/chrony\n"
    "driftfile /var/lib/chrony/drift\n"
    "maxupdateskew 100\n"
    "makestep 1 -1\n"
    "logchange 1\n"
    "maxdistance 16\n"
    "hwtimestamp *\n"
    "rtcsync\n"
    "acquisitionport 1234\n"
)

# recipes-connectivity/networkmanager/balena-files/NetworkManager.conf, less `type:veth` in
# unmanaged-devices: the testbed's only link, host0, is a veth.  (This file is read after every
# /usr/lib and /run snippet, so nothing else could keep host0 managed.)
NETWORKMANAGER_CONF = """[main]
dns=default
plugins=keyfile
autoconnect-retries-default=0
hostname-mode=none

[keyfile]
unmanaged-devices=interface-name:balena*;interface-name:resin*;interface-name:br*

[connection]
ipv4.dhcp-timeout=2147483647
"""
# NETWORKMANAGER_DNS_RC_MANAGER_DEFAULT = "resolvconf" is a build option of balenaOS's
# NetworkManager; here it is a /usr/lib snippet (read before NetworkManager.conf, as a default is).
# no-auto-default=* is the testbed's: host0 has its own profile, no "Wired connection 1" beside it.
NETWORKMANAGER_BUILD_DEFAULTS = "[main]\nrc-manager=resolvconf\nno-auto-default=*\n"
# nm-tmpfiles.conf, and /etc/resolv.dnsmasq -> /var/run/resolvconf/interface/NetworkManager
NM_TMPFILES = (
    "d /run/resolvconf/interface - - - -\n"
    "f /run/resolvconf/interface/NetworkManager - - - - nameserver 8.8.8.8\n"
    "r /var/lib/NetworkManager/{timestamps,seen-bssids}.??????  - - - -\n"
)

# recipes-connectivity/dnsmasq: dnsmasq.conf's effective lines, and the unit's command line
# (balenaOS's drop-in dnsmasq.conf.systemd, on Debian's binary path)
DNSMASQ_CONF = "domain-needed\nbogus-priv\nenable-dbus\n"
DNSMASQ_SERVICE = f"""[Unit]
Description=DNS forwarder and DHCP server
After=network.target balena-net-config.service
Wants=balena-net-config.service

[Service]
Type=simple
OOMScoreAdjust=-1000
ExecStart=/usr/sbin/dnsmasq -x /run/dnsmasq.pid -a "127.0.0.2,{DNS_BRIDGE_IP}" -7 /etc/dnsmasq.d/ \
-r /etc/resolv.dnsmasq -z --servers-file=/run/dnsmasq.servers -k --log-facility=-
ExecReload=/bin/kill -HUP $MAINPID

[Install]
WantedBy=multi-user.target
"""
# balena-net-config: of what it does, hostd replaces all but the DNS bridge dnsmasq listens on
NET_CONFIG_SERVICE = f"""[Unit]
Description=balenaOS DNS bridge {DNS_BRIDGE} (the part of balena-net-config hostd does not replace)
DefaultDependencies=no
After=sysinit.target
Before=dnsmasq.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link show {DNS_BRIDGE} >/dev/null 2>&1 || ip link add name {DNS_BRIDGE} type bridge'
ExecStart=/sbin/ip link set {DNS_BRIDGE} up
ExecStart=/sbin/ip address replace {DNS_BRIDGE_IP}/24 dev {DNS_BRIDGE}
"""

NSSWITCH_HOSTS = "hosts:          files myhostname dns mdns4 mdns [NOTFOUND=return]\n"

# openssh: socket-activated on 22222, one sshd -i per connection, options from the flag file
SSHD_SOCKET = f"""[Unit]
Description=OpenSSH server socket
Conflicts=sshd.service

[Socket]
ListenStream={SSH_PORT}
Accept=yes

[Install]
WantedBy=sockets.target
"""
SSHD_SERVICE = f"""[Unit]
Description=OpenSSH per-connection server daemon
Wants=sshdgenkeys.service
After=sshdgenkeys.service

[Service]
Environment="SSHD_OPTS="
EnvironmentFile=-{DEVELOPMENT_FLAG}
ExecStart=-/usr/sbin/sshd -i $SSHD_OPTS
StandardInput=socket
StandardError=journal
# Debian's sshd wants its privilege separation directory
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
"""
# Host keys live on the state partition (/etc/ssh/hostkeys is bound by hostd): generated once.
# ed25519 only: an RSA key costs seconds at every fresh testbed.
SSHDGENKEYS_SERVICE = """[Unit]
Description=OpenSSH key generation
ConditionPathExists=!/etc/ssh/hostkeys/ssh_host_ed25519_key

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/hostkeys/ssh_host_ed25519_key
"""
_SSHD_COMMON = """HostKey /etc/ssh/hostkeys/ssh_host_ed25519_key
AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys_local
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
Subsystem sftp internal-sftp
"""
# production: keys only (the cloud's AuthorizedKeysCommand is left out: no cloud here)
SSHD_CONFIG = _SSHD_COMMON + "PermitRootLogin prohibit-password\nPasswordAuthentication no\nPermitEmptyPasswords no\n"
# development: root with an empty password
SSHD_CONFIG_DEVELOPMENT = _SSHD_COMMON + "PermitRootLogin yes\nPasswordAuthentication yes\nPermitEmptyPasswords yes\n"

DEVELOPMENT_TARGET = """[Unit]
Description=Development features
Wants=console-getty.service

[Install]
WantedBy=multi-user.target
"""
# balenaOS conditions getty@tty1 and serial-getty on the flag; a container has neither a tty1 nor
# a serial port, so its console getty stands for them.
GETTY_DROPIN = f"""[Unit]
ConditionPathExists={DEVELOPMENT_FLAG}
PartOf=development-features.target
"""
ENGINE_STANDIN = f"""#!/bin/sh
# balena-engine stand-in: it serves tcp {ENGINE_DEV_PORT} (no auth) only when started with the
# development flags, as the engine does; otherwise it just runs.  No exec: the main process keeps
# the command line the unit gave it.
case " $* " in
*" -H tcp://0.0.0.0:{ENGINE_DEV_PORT} "*)
    socat TCP-LISTEN:{ENGINE_DEV_PORT},fork,reuseaddr SYSTEM:"echo balena-engine stand-in" ;;
*)
    sleep infinity ;;
esac
"""
ENGINE_SERVICE = f"""[Unit]
Description=balenaEngine (stand-in: its command line shows the development flags)
PartOf=development-features.target

[Service]
EnvironmentFile=-{DEVELOPMENT_FLAG}
ExecStart=/usr/lib/balena-standin/balenad --delta-data-root=/mnt/data/docker $BALENA_DEVELOPMENT_ARGS

[Install]
WantedBy=multi-user.target
"""

# units of the image, enabled as its build does
IMAGE_UNITS = {
    "dnsmasq.service": (DNSMASQ_SERVICE, "multi-user.target"),
    "balena-net-config.service": (NET_CONFIG_SERVICE, None),
    "sshd.socket": (SSHD_SOCKET, "sockets.target"),
    "sshd@.service": (SSHD_SERVICE, None),
    "sshdgenkeys.service": (SSHDGENKEYS_SERVICE, None),
    "development-features.target": (DEVELOPMENT_TARGET, "multi-user.target"),
    "balena.service": (ENGINE_SERVICE, "multi-user.target"),
}
# writable on a device: tmpfs (besides /run and /tmp, which nspawn mounts) and the bind mounts
VOLATILE_DIRS = ("/var/volatile",)
# units of this machine the image replaces (Debian's dnsmasq helper, ssh on port 22)
REPLACED_UNITS = ("ssh.service", "ssh.socket", "ssh@.service")


def lay_down(upper: Path, write: Callable[..., None], symlink: Callable[[Path, str], None]) -> None:
    """Write the image's files into the overlay's upper layer."""
    etc, lib = upper / "etc", upper / "usr/lib/systemd/system"
    # OpenEmbedded's rootfs_update_timestamp: the image's build time, UTC (the clock's floor at boot)
    write(etc / "timestamp", time.strftime("%Y%m%d%H%M%S\n", time.gmtime()))
    write(etc / "chrony/chrony.conf", CHRONY_CONF)
    write(etc / "NetworkManager/NetworkManager.conf", NETWORKMANAGER_CONF)
    write(upper / "usr/lib/NetworkManager/conf.d/00-balenaos-build-defaults.conf", NETWORKMANAGER_BUILD_DEFAULTS)
    write(etc / "tmpfiles.d/nm-tmpfiles.conf", NM_TMPFILES)
    symlink(etc / "resolv.dnsmasq", "/var/run/resolvconf/interface/NetworkManager")
    write(etc / "dnsmasq.conf", DNSMASQ_CONF)
    write(etc / "resolv.conf", "nameserver 127.0.0.2\n")  # dnsmasq; 127.0.0.1 is left to containers
    nsswitch = Path("/etc/nsswitch.conf").read_text().splitlines(keepends=True)
    write(etc / "nsswitch.conf", "".join(NSSWITCH_HOSTS if x.startswith("hosts:") else x for x in nsswitch))
    write(etc / "ssh/sshd_config", SSHD_CONFIG)
    write(etc / "ssh/sshd_config_development", SSHD_CONFIG_DEVELOPMENT)
    write(upper / "usr/lib/balena-standin/balenad", ENGINE_STANDIN, 0o755)
    write(etc / "systemd/system/console-getty.service.d/balenaos.conf", GETTY_DROPIN)
    for name, (text, wanted_by) in IMAGE_UNITS.items():
        write(lib / name, text)
        if wanted_by:
            symlink(etc / f"systemd/system/{wanted_by}.wants/{name}", f"/usr/lib/systemd/system/{name}")
    # root as on balenaOS: home /home/root, an empty password (usable only where sshd allows it)
    passwd = [
        "root:x:0:0:root:/home/root:/bin/sh\n" if x.startswith("root:") else x
        for x in Path("/etc/passwd").read_text().splitlines(keepends=True)
    ]
    write(etc / "passwd", "".join(passwd))
    shadow = [
        "root::19000:0:99999:7:::\n" if x.startswith("root:") else x
        for x in Path("/etc/shadow").read_text().splitlines(keepends=True)
    ]
    write(etc / "shadow", "".join(shadow), 0o640)
    os.chown(etc / "shadow", 0, Path("/etc/shadow").stat().st_gid)
    (upper / "home/root").mkdir(parents=True, exist_ok=True)
    (upper / "home/root").chmod(0o700)
    for d in VOLATILE_DIRS:
        (upper / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
