SUMMARY = "hostd: host-services control plane for balenaOS-style devices"
DESCRIPTION = "A daemon, started early at boot, that reads config.json from the boot partition \
and converges the host to it (persistent bind mounts, NetworkManager profiles, hostname and mDNS, \
dnsmasq upstreams, chrony sources, journald storage, SSH keys, development mode) and reports what \
it did on D-Bus (io.hostd1); hostctl is its command-line tool."
# No public home is decided yet: a placeholder in the reserved .invalid domain, like HOSTD_GIT_URI's
# default (so the linter's reachability check is off for it).
# nooelint: oelint.vars.homepageping
HOMEPAGE = "https://hostd.invalid/"
SECTION = "admin"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# Where to fetch hostd from, and which commit: set both in your layer (see README.md), e.g.
#   HOSTD_GIT_URI = "git://git.example.com/hostd.git;protocol=https"
#   SRCREV:pn-hostd = "<40-hex commit id>"
# The placeholder SRCREV makes an unconfigured build stop at do_fetch instead of building an
# unknown revision.
HOSTD_GIT_URI ??= "git://git.invalid/hostd.git;protocol=https"
HOSTD_GIT_BRANCH ??= "main"
SRC_URI = "${HOSTD_GIT_URI};branch=${HOSTD_GIT_BRANCH};destsuffix=hostd-git"
SRCREV ??= "INVALID"
# UNPACKDIR exists from Yocto 5.1 (styhead) on; before, sources are unpacked into WORKDIR
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/hostd-git"

inherit python_setuptools_build_meta systemd useradd

# The bus policy's admin group (units/sysusers.d/hostd.conf), made at image build: the root is read-only.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system hostd-admin"

# hostd, its boot stages (before the bind mounts and before the network), the udev replay after
# the bind mounts, the clock and its save timer
SYSTEMD_SERVICE:${PN} = "hostd.service hostd-bind-sources.service hostd-network-inputs.service hostd-udev-replay.service hostd-clock.service hostd-clock-save.timer"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# Every row of packaging/install-map, through the same script the Debian package uses; the
# python_setuptools_build_meta class has already installed the Python package and the hostd,
# hostctl and hostd-clock console scripts.
do_install:append() {
    ${S}/packaging/install-files ${D}
}

FILES:${PN} += "\
    ${PYTHON_SITEPACKAGES_DIR}/hostd \
    ${PYTHON_SITEPACKAGES_DIR}/hostd-${PV}.dist-info \
    ${systemd_system_unitdir}/hostd.service \
    ${systemd_system_unitdir}/hostd-bind-sources.service \
    ${systemd_system_unitdir}/hostd-network-inputs.service \
    ${systemd_system_unitdir}/hostd-udev-replay.service \
    ${systemd_system_unitdir}/*.mount \
    ${systemd_system_unitdir}/balena-hostname.service \
    ${systemd_system_unitdir}/resin-hostname.service \
    ${systemd_system_unitdir}/hostd-redsocks.service \
    ${systemd_system_unitdir}/hostd-clock.service \
    ${systemd_system_unitdir}/hostd-clock-save.service \
    ${systemd_system_unitdir}/hostd-clock-save.timer \
    ${systemd_system_unitdir}/hostd-time-probe.service \
    ${datadir}/dbus-1/system.d/io.hostd1.conf \
    ${datadir}/dbus-1/system-services/io.hostd1.service \
    ${datadir}/dbus-1/interfaces/io.hostd1.Manager.xml \
    ${nonarch_libdir}/tmpfiles.d/hostd.conf \
    ${nonarch_libdir}/sysusers.d/hostd.conf \
    ${nonarch_libdir}/systemd/journald.conf.d/50-hostd-defaults.conf \
    ${nonarch_libdir}/NetworkManager/conf.d/50-hostd.conf \
    ${sysconfdir}/dnsmasq.d/50-hostd.conf \
    ${datadir}/hostd/nm_connections \
"

# The standard-library parts hostd imports (OE splits python3 into packages; the unit tests map
# each import to one of these), dbus-fast from meta-python, and the services hostd drives;
# nftables and redsocks (meta-networking) for the system proxy.
RDEPENDS:${PN} += "\
    nftables \
    python3-asyncio \
    python3-core \
    python3-crypt \
    python3-ctypes \
    python3-datetime \
    python3-dbus-fast \
    python3-email \
    python3-io \
    python3-json \
    python3-logging \
    python3-math \
    python3-netclient \
    python3-shell \
    python3-stringold \
    redsocks \
"

RRECOMMENDS:${PN} += "avahi-daemon chrony dnsmasq modemmanager networkmanager"
CONFFILES:${PN} += "${sysconfdir}/dnsmasq.d/50-hostd.conf"
