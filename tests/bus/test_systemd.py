"""systemd adapter against its fake, and unit_name_from_path against systemd-escape."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from hostd.bus import errors, names
from hostd.bus.systemd import ActiveState, JobResult, SystemdAdapter, UnitFileChange, unit_name_from_path

from .fakes.systemd import FakeSystemd
from .support import client_bus


async def test_unit_jobs_wait_for_the_job_result(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.job_results["broken.service"] = "failed"
    fake.manager.job_delay = 0.05
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        assert await systemd.start_unit("a.service") is JobResult.DONE
        assert await systemd.restart_unit("broken.service") is JobResult.FAILED
        assert await systemd.stop_unit("a.service") is JobResult.DONE
        assert await systemd.try_restart_unit("a.service") is JobResult.DONE
        assert [body for body in fake.calls_to("StartUnit")] == [["a.service", "replace"]]
        assert fake.calls_to("RestartUnit") == [["broken.service", "replace"]]
        assert fake.calls_to("TryRestartUnit") == [["a.service", "replace"]]
        assert len(fake.calls_to("Subscribe")) == 1


async def test_job_finishing_before_the_caller_resumes_is_not_missed(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.job_delay = 0  # JobRemoved right behind the reply
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus, job_timeout=1)
        await systemd.start()
        results = await asyncio.gather(*(systemd.start_unit(f"u{i}.service") for i in range(20)))
        assert set(results) == {JobResult.DONE}


async def test_job_that_never_finishes_times_out(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.job_delay = 10
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        with pytest.raises(errors.Timeout):
            await systemd.start_unit("slow.service", job_timeout=0.1)


async def test_systemd_vanishing_fails_a_waiting_job(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.job_delay = 10
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        job = asyncio.ensure_future(systemd.start_unit("slow.service"))
        await asyncio.sleep(0.05)
        await fake.stop()
        with pytest.raises(errors.ServiceUnavailable):
            await job


async def test_unit_state(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.units["NetworkManager.service"] = ("loaded", "active", "running")
    fake.manager.units["odd.service"] = ("loaded", "hibernating", "zzz")
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        state = await systemd.unit_state("NetworkManager.service")
        assert (state.load_state, state.active_state, state.sub_state) == (
            "loaded",
            ActiveState.ACTIVE,
            "running",
        )
        missing = await systemd.unit_state("nope.service")
        assert (missing.load_state, missing.active_state) == ("not-found", ActiveState.INACTIVE)
        odd = await systemd.unit_state("odd.service")
        assert odd.active_state is ActiveState.UNKNOWN


async def test_unknown_job_result_is_tolerated(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.job_results["new.service"] = "result-from-a-future-systemd"
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        assert await systemd.start_unit("new.service") is JobResult.UNKNOWN


async def test_transient_bind_mount(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        result = await systemd.start_transient_mount("/mnt/state/root-overlay/etc/hostname", "/etc/hostname")
        assert result is JobResult.DONE
        unit = fake.manager.transient_units["etc-hostname.mount"]
        assert unit["What"] == "/mnt/state/root-overlay/etc/hostname"
        assert unit["Where"] == "/etc/hostname"
        assert unit["Options"] == "bind"
        assert fake.calls_to("StartTransientUnit")[0][1] == "replace"


async def test_unit_files_and_reload(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        changes = await systemd.enable_unit_files(["x.service"], runtime=True)
        assert changes == [
            UnitFileChange("symlink", "/run/systemd/system/multi-user.target.wants/x.service", "x.service")
        ]
        assert fake.calls_to("EnableUnitFiles") == [[["x.service"], True, False]]
        removed = await systemd.disable_unit_files(["x.service"], runtime=True)
        assert [change.kind for change in removed] == ["unlink"]
        assert fake.calls_to("DisableUnitFiles") == [[["x.service"], True]]
        await systemd.reload()
        assert len(fake.calls_to("Reload")) == 1


async def test_remote_errors_are_typed(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.fail("StopUnit", names.SYSTEMD_ERROR_NO_SUCH_UNIT, "Unit nope.service not loaded.")
    fake.fail("StartUnit", names.ERROR_ACCESS_DENIED)
    fake.fail("StartTransientUnit", names.SYSTEMD_ERROR_UNIT_EXISTS)
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus)
        await systemd.start()
        with pytest.raises(errors.NoSuchObject) as no_unit:
            await systemd.stop_unit("nope.service")
        assert no_unit.value.message == "Unit nope.service not loaded."
        with pytest.raises(errors.AccessDenied):
            await systemd.start_unit("a.service")
        with pytest.raises(errors.RemoteError) as exists:
            await systemd.start_transient_mount("/a", "/b")
        assert exists.value.name == names.SYSTEMD_ERROR_UNIT_EXISTS


ESCAPE_CASES = [
    "/",
    "/mnt/boot",
    "/var/log/journal",
    "/home/root/.ssh",
    "/etc/NetworkManager/system-connections",
    "/a-b/c d",
    "/.dotdir/x",
    "/tmp//x/",
    "/a/./b",
    "/ünï/cøde",
    "/a\\b",
    "/x:y_z.w",
    "/mnt/data/root-overlay/var/log/journal",
]


@pytest.mark.parametrize("path", ESCAPE_CASES)
def test_unit_name_from_path_matches_systemd_escape(path: str) -> None:
    if shutil.which("systemd-escape") is None:
        pytest.skip("systemd-escape not installed")
    expected = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", path], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert unit_name_from_path(path) == expected


@pytest.mark.parametrize("path", ["relative/path", "/a/../b", "/" + "x" * 300])
def test_unit_name_from_path_rejects_what_systemd_cannot_name(path: str) -> None:
    with pytest.raises(ValueError):
        unit_name_from_path(path)


async def test_followed_units_are_read_in_one_call_at_attach(bus_address: str) -> None:
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.units["chrony.service"] = ("loaded", "active", "running")
    fake.manager.units["avahi-daemon.service"] = ("loaded", "inactive", "dead")
    followed = ("chronyd.service", "chrony.service", "avahi-daemon.service")
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus, followed_units=followed)
        await systemd.start()
        assert systemd.followed_unit_state("chrony.service") is ActiveState.ACTIVE
        assert systemd.followed_unit_state("avahi-daemon.service") is ActiveState.INACTIVE
        assert systemd.followed_unit_state("chronyd.service") is None  # not-found: not followed
        # One round trip for all of them, not a LoadUnit and two Gets per unit (hostd's start waits for it).
        assert fake.calls_to("ListUnitsByNames") == [[list(followed)]]


async def test_waiting_for_an_awaited_units_job(bus_address: str) -> None:
    """The network-inputs stage's start job still runs when hostd attaches: the wait ends on its
    JobRemoved, with no call beyond the one ListUnitsByNames at attach; a unit without a job (a
    restart of hostd: the stage is long over) is not waited for."""
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.units["stage.service"] = ("loaded", "activating", "start")
    fake.manager.queue_job("stage.service")
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(
            bus, followed_units=("chrony.service",), awaited_units=("stage.service", "over.service")
        )
        await systemd.start()
        assert await systemd.wait_until_no_job("over.service") is True
        assert systemd.has_job("stage.service")
        wait = asyncio.ensure_future(systemd.wait_until_no_job("stage.service"))
        await asyncio.sleep(0.1)
        assert not wait.done()
        fake.manager.finish_job("stage.service", "failed")  # failed or skipped: over all the same
        assert await asyncio.wait_for(wait, 5) is True
        assert not systemd.has_job("stage.service")
        assert len(fake.calls) == 2, fake.calls  # Subscribe, ListUnitsByNames


async def test_a_wait_for_a_job_ends_when_systemd_cannot_say(bus_address: str) -> None:
    """A stage whose job never ends ends the wait only if systemd leaves the bus (systemd bounds
    the stage with its start timeout); without systemd on the bus there is no wait at all."""
    fake = FakeSystemd(bus_address)
    await fake.start()
    fake.manager.queue_job("stage.service")
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus, awaited_units=("stage.service",))
        await systemd.start()
        wait = asyncio.ensure_future(systemd.wait_until_no_job("stage.service"))
        await asyncio.sleep(0.1)
        assert not wait.done()
        await fake.stop()
        assert await asyncio.wait_for(wait, 5) is False
        assert await systemd.wait_until_no_job("stage.service") is False
    async with client_bus(bus_address) as bus:
        systemd = SystemdAdapter(bus, awaited_units=("stage.service",))
        await systemd.start()
        assert systemd.degraded_reason == "not running"
        assert await systemd.wait_until_no_job("stage.service") is False
