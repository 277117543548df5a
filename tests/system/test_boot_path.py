"""The boot path: the network starts on its inputs (hostd-network-inputs.service), not on hostd's
READY; the profiles it reads are in place before it starts; first boot and reset (the state
partition's flag) are handled before the bind mounts, by hostd-bind-sources.service."""

from __future__ import annotations

import pytest

from .device import Hostd

pytestmark = pytest.mark.system

INPUTS = "hostd-network-inputs.service"
NETWORK = ("NetworkManager.service", "dnsmasq.service", "chrony.service")
DUMMY = (
    "[connection]\nid=boot-dummy\ntype=dummy\ninterface-name=bootdum0\nautoconnect=false\n\n"
    "[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=ignore\n"
)


def mono(hostd: Hostd, unit: str, prop: str) -> int:
    return int(hostd.unit_props(unit, prop)[prop])


def test_the_network_starts_on_its_inputs_not_on_hostds_ready(boot: Hostd) -> None:
    """A boot profile new on the boot partition: after a reboot NetworkManager has it loaded,
    although hostd neither wrote it (its report: `unchanged`, found imported) nor asked
    NetworkManager to load it (hostd loads only the files it wrote): NetworkManager read it when it
    started.  systemd's timestamps: NetworkManager, dnsmasq and chrony started after the inputs
    were written; systemd's dependencies: none of them waits for hostd (whether hostd is ready
    before or after they start is a race hostd's own speed decides)."""
    tb = boot.tb
    tb.systemctl("stop", "hostd.service")  # the profile arrives while the device is off: hostd's watch is not running
    (tb.boot_dir / "system-connections/boot-dummy.nmconnection").write_text(DUMMY)
    tb.reboot()
    boot.wait_ready()
    inputs_done = mono(boot, INPUTS, "ActiveEnterTimestampMonotonic")
    for unit in NETWORK:
        started = mono(boot, unit, "InactiveExitTimestampMonotonic")
        assert 0 < inputs_done <= started, (unit, inputs_done, started)
        assert "hostd.service" not in boot.unit_props(unit, "After")["After"].split(), unit

    def dummy(doc: dict) -> dict:
        [steps] = [s for s in doc["steps"] if s["name"] == "connections"]
        return next((e for e in steps["report"] if e["name"] == "boot-dummy.nmconnection"), {})

    # NetworkManager may come on the bus after hostd's READY (neither waits for the other): hostd
    # re-runs the step when it attaches, and the verdict follows.
    entry = dummy(boot.wait_describe(lambda d: dummy(d).get("nm") == "loaded", what="NetworkManager's verdict"))
    assert entry["status"] == "unchanged", entry
    profiles = boot.nm_profiles()  # NetworkManager's own D-Bus API (nmcli)
    assert profiles.get("/etc/NetworkManager/system-connections/boot-dummy.nmconnection") == "boot-dummy", profiles
    journal = tb.exec(["journalctl", "-b", "-u", INPUTS, "-o", "cat", "--no-pager"]).stdout
    assert "connections: write /etc/NetworkManager/system-connections/boot-dummy.nmconnection" in journal, journal


def test_the_kernel_hostname_is_set_before_the_network_starts(boot: Hostd) -> None:
    """NetworkManager sends the hostname with DHCP: the stage sets it from config.json (or the
    uuid) before NetworkManager starts, so hostd's own hostname step finds it set."""
    tb = boot.tb
    name = boot.describe()["hostname"]
    tb.exec(["hostname", "not-yet"])
    tb.reboot()
    boot.wait_ready()
    journal = tb.exec(["journalctl", "-b", "-u", "NetworkManager.service", "-o", "short-monotonic", "--no-pager"])
    assert f" {name} " in journal.stdout.splitlines()[0], journal.stdout.splitlines()[:1]
    assert tb.exec(["hostname"]).stdout.strip() == name


def test_bind_sources_only_at_first_boot_or_reset(boot: Hostd) -> None:
    """The stage ran at this device's first boot (or not, at a plain reboot: its condition), and
    runs again when the reset flag is gone at boot, before every state-partition mount."""
    tb = boot.tb
    tb.reboot()
    boot.wait_ready()
    assert boot.unit_props("hostd-bind-sources.service", "ConditionResult")["ConditionResult"] == "no"
    (tb.state_dir / "remove_me_to_reset").unlink()
    tb.reboot()
    boot.wait_ready()
    props = boot.unit_props("hostd-bind-sources.service", "ConditionResult", "ActiveEnterTimestampMonotonic")
    assert props["ConditionResult"] == "yes", props
    mounted = mono(boot, "etc-NetworkManager-system\\x2dconnections.mount", "ActiveEnterTimestampMonotonic")
    assert 0 < int(props["ActiveEnterTimestampMonotonic"]) <= mounted, (props, mounted)
    assert (tb.state_dir / "remove_me_to_reset").exists()


def test_an_unchanged_reboot_replays_the_stage(boot: Hostd) -> None:
    """Nothing changed since the last boot: the stage replays the last full run (hostd.stamp)
    instead of running the steps, and the network still starts on its inputs: the kernel's name
    set and the generation recorded before NetworkManager starts."""
    tb = boot.tb
    tb.reboot()  # recorded by a full run at this boot, or replayed already
    boot.wait_ready()
    # A full run leaves its stamp in /run; hostd keeps it on the state partition once ready.
    tb.wait_for(lambda: tb.exec(["test", "!", "-e", "/run/hostd/network-inputs.stamp"], check=False).returncode == 0)
    assert tb.exec(["test", "-s", "/mnt/state/hostd/network-inputs.stamp"], check=False).returncode == 0
    name = boot.describe()["hostname"]
    tb.reboot()
    boot.wait_ready()
    journal = tb.exec(["journalctl", "-b", "-u", INPUTS, "-o", "cat", "--no-pager"]).stdout
    assert "network inputs unchanged since the last full run" in journal, journal
    inputs_done = mono(boot, INPUTS, "ActiveEnterTimestampMonotonic")
    for unit in NETWORK:
        assert 0 < inputs_done <= mono(boot, unit, "InactiveExitTimestampMonotonic"), unit
    assert tb.exec(["hostname"]).stdout.strip() == name
    generation = tb.exec(["cat", "/run/hostd/network-inputs.generation"]).stdout.strip()
    assert generation == boot.describe()["generations"]["current"], generation


def test_hostd_starts_beside_the_stage_and_writes_after_it(boot: Hostd) -> None:
    """hostd is not ordered after the stage: at a reboot its process starts while the stage has
    not even run (a drop-in holds the stage back 3 s), and its first reconcile waits for the
    stage's job: the udev rule config.json gained while the device was off (no stage step writes
    it) is written after the stage's exit, by the file's own mtime against systemd's timestamp."""
    tb = boot.tb
    drop_in = tb.root_dir / f"etc/systemd/system/{INPUTS}.d/zz-slow-stage-test.conf"  # the root is read-only inside
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text("[Service]\nExecStartPre=/bin/sleep 3\n")
    try:
        tb.systemctl("stop", "hostd.service")
        boot.edit_config(os={"udevRules": {"99-hostd-beside-test": "# written by hostd's first reconcile\n"}})
        tb.reboot()
        boot.wait_ready()
    finally:
        drop_in.unlink()
        tb.systemctl("daemon-reload")
    hostd_start = mono(boot, "hostd.service", "ExecMainStartTimestampMonotonic")
    assert 0 < hostd_start < mono(boot, INPUTS, "ExecMainStartTimestampMonotonic")
    stage_done = realtime_us(boot, INPUTS, "ActiveEnterTimestamp")  # its job over, after its exit
    rule = "/etc/udev/rules.d/99-hostd-beside-test.rules"
    written = int(tb.exec(["stat", "--format=%.6Y", rule]).stdout.strip().replace(".", ""))
    assert stage_done <= written, (stage_done, written)
    journal = tb.exec(["journalctl", "-b", "-u", "hostd.service", "-o", "cat", "--no-pager"]).stdout
    assert f"waiting for {INPUTS} to finish before applying config.json" in journal, journal


def realtime_us(hostd: Hostd, unit: str, prop: str) -> int:
    """A unit's realtime timestamp in microseconds (systemctl show prints it to the second)."""
    path = "/org/freedesktop/systemd1/unit/" + "".join(c if c.isalnum() else f"_{ord(c):02x}" for c in unit)
    out = hostd.tb.busctl("get-property", "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit", prop)
    return int(out.stdout.split()[1])
