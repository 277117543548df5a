#!/bin/bash
# The baseline for the boot benchmark: the setup hostd does, done the balenaOS way — one shell
# process per step, each parsing config.json with jq (balenaOS: balena-hostname, balena-net-config,
# os-networkmanager, os-sshkeys, the chrony and journald helpers ...), then plain writes, and the
# profile copy followed by chmod and sync.
#
# Lenient to the shell: one jq per step (balenaOS's scripts also source balena-config-vars, which
# runs jq again), no live effects (no D-Bus, no service restarts, no bind mounts, no validation),
# and `sync -f` on the target's file system instead of a global `sync` (which in the testbed would
# flush this machine's disks, not the device's).
#
# Targets go under $ROOT (a scratch directory), so hostd's own files are left alone.
set -eu
export CONFIG=${CONFIG:-/mnt/boot/config.json}
export BOOT=${BOOT:-/mnt/boot}
export ROOT=${ROOT:?set ROOT to a scratch directory}

# hostname: `hostname`, else the first 7 characters of the uuid
bash -c '
    name=$(jq -r ".hostname // (.uuid // \"\" | .[0:7])" "$CONFIG")
    mkdir -p "$ROOT/etc"
    echo "$name" > "$ROOT/etc/hostname"
'

# dnsmasq upstreams: dnsServers (string or array; absent = 8.8.8.8; "null" = none)
bash -c '
    servers=$(jq -r "if .dnsServers == null then \"8.8.8.8\"
                     elif (.dnsServers | type) == \"array\" then .dnsServers | join(\" \")
                     else .dnsServers end" "$CONFIG")
    mkdir -p "$ROOT/run"
    : > "$ROOT/run/dnsmasq.servers"
    for server in $servers; do
        [ "$server" = null ] || echo "server=$server" >> "$ROOT/run/dnsmasq.servers"
    done
'

# chrony sources: ntpServers
bash -c '
    servers=$(jq -r ".ntpServers // empty | if type == \"array\" then join(\" \") else . end" "$CONFIG")
    mkdir -p "$ROOT/run/chrony"
    : > "$ROOT/run/chrony/added_config.sources"
    for server in $servers; do
        echo "pool $server iburst" >> "$ROOT/run/chrony/added_config.sources"
    done
'

# journald storage: persistentLogging, os.journal.*
bash -c '
    eval "$(jq -r "@sh \"persistent=\(.persistentLogging // false)
                        runtime=\(.os.journal.runtimeMaxUse // \"8M\")
                        system=\(.os.journal.systemMaxUse // \"32M\")\"" "$CONFIG")"
    mkdir -p "$ROOT/run/systemd/journald.conf.d"
    {
        echo "[Journal]"
        if [ "$persistent" = true ]; then
            echo "Storage=persistent"
            echo "SystemMaxUse=$system"
        else
            echo "Storage=volatile"
        fi
        echo "RuntimeMaxUse=$runtime"
    } > "$ROOT/run/systemd/journald.conf.d/balena.conf"
'

# root's extra SSH keys: os.sshKeys
bash -c '
    mkdir -p "$ROOT/home/root/.ssh"
    chmod 700 "$ROOT/home/root/.ssh"
    jq -r ".os.sshKeys // [] | .[]" "$CONFIG" > "$ROOT/home/root/.ssh/authorized_keys_local"
    chmod 600 "$ROOT/home/root/.ssh/authorized_keys_local"
'

# NetworkManager settings: connectivity check, Wi-Fi scan MAC randomisation
bash -c '
    eval "$(jq -r "@sh \"uri=\(.os.network.connectivity.uri // \"\")
                        interval=\(.os.network.connectivity.interval // 3600)
                        randmac=\(.os.network.wifi.randomMacAddressScan | if . == null then \"\" else tostring end)\"" "$CONFIG")"
    mkdir -p "$ROOT/run/NetworkManager/conf.d"
    {
        if [ -n "$uri" ]; then
            echo "[connectivity]"
            echo "uri=$uri"
            echo "interval=$interval"
        fi
        if [ -n "$randmac" ]; then
            echo "[device]"
            if [ "$randmac" = true ]; then echo "wifi.scan-rand-mac-address=yes"; else echo "wifi.scan-rand-mac-address=no"; fi
        fi
    } > "$ROOT/run/NetworkManager/conf.d/os-networkmanager.conf"
'

# NetworkManager profiles from the boot partition: copy, chmod, sync
bash -c '
    target="$ROOT/etc/NetworkManager/system-connections"
    mkdir -p "$target"
    for profile in "$BOOT"/system-connections/*; do
        [ -f "$profile" ] || continue
        case "$profile" in *.ignore) continue ;; esac
        cp "$profile" "$target/"
        chmod 600 "$target/$(basename "$profile")"
    done
    sync -f "$target"
'
