"""The config watch on a temporary root: real inotify events for each kind of edit, no timer when idle."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hostd import watch as watch_module
from hostd.layout import Layout
from hostd.watch import IN_Q_OVERFLOW, SETTLE_SECONDS, ConfigWatch

QUIET = SETTLE_SECONDS * 20  # long enough for an event to have led to a check, had there been one


class Watched:
    """A ConfigWatch on ``root``, counting the reconciles it asks for."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root)
        (root / "mnt/boot/system-connections").mkdir(parents=True)
        Path(self.layout.config_json).write_text('{"hostname": "one"}\n')
        self.changes = 0
        self._changed = asyncio.Event()
        self.watch = ConfigWatch(self.layout, self._on_change)

    async def _on_change(self) -> None:
        self.changes += 1
        self._changed.set()

    async def changed(self) -> None:
        """The next reconcile the watch asks for (fails after 10 s)."""
        await asyncio.wait_for(self._changed.wait(), 10)
        self._changed.clear()

    async def unchanged(self) -> None:
        await asyncio.sleep(QUIET)
        assert not self._changed.is_set()


def run_watched(tmp_path: Path, body: Callable[[Watched], Awaitable[None]]) -> None:
    async def main() -> None:
        watched = Watched(tmp_path)
        task = asyncio.create_task(watched.watch.run())
        try:
            await watched.changed()  # the first check: nothing was seen before the watch began
            await body(watched)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def write_in_place(path: str, text: str) -> None:
    with open(path, "r+") as file:  # as an editor that does not rename may write it
        file.write(text)
        file.truncate()


def test_an_edit_in_place_is_one_change(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        write_in_place(w.layout.config_json, '{"hostname": "two"}\n')
        await w.changed()
        await w.unchanged()
        assert w.changes == 2

    run_watched(tmp_path, body)


def test_a_rename_over_is_seen_and_the_editors_temporary_file_is_not(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        temporary = Path(w.layout.boot) / ".config.json.swp"
        temporary.write_text('{"hostname": "three"}\n')
        await w.unchanged()
        os.replace(temporary, w.layout.config_json)
        await w.changed()
        assert w.changes == 2

    run_watched(tmp_path, body)


def test_config_json_deleted_then_created_again(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        Path(w.layout.config_json).unlink()
        await w.changed()
        Path(w.layout.config_json).write_text('{"hostname": "back"}\n')
        await w.changed()

    run_watched(tmp_path, body)


def test_a_write_of_hostd_itself_is_not_a_change(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        Path(w.layout.config_json).write_text('{"hostname": "by-hostd"}\n')
        w.watch.mark_seen()
        await w.unchanged()

    run_watched(tmp_path, body)


def test_drop_in_files_written_renamed_chmoded_and_removed(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        profile = Path(w.layout.boot_connections) / "wired.nmconnection"
        profile.write_text("[connection]\nid=wired\ntype=ethernet\n")
        await w.changed()
        write_in_place(profile, "[connection]\nid=wire2\ntype=ethernet\n")
        await w.changed()
        aside = Path(w.layout.boot_connections) / ".wired.tmp"
        aside.write_text("[connection]\nid=wire3\ntype=ethernet\n")
        os.replace(aside, profile)
        await w.changed()
        profile.chmod(0o600)
        await w.changed()
        profile.unlink()
        await w.changed()

    run_watched(tmp_path, body)


def test_drop_in_directories_created_removed_and_replaced_later(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        proxy = Path(w.layout.boot_proxy)  # did not exist when the watch began
        proxy.mkdir()
        await w.changed()
        (proxy / "no_proxy").write_text("10.0.0.0/8\n")  # seen through the directory's new watch
        await w.changed()

        (proxy / "no_proxy").unlink()
        proxy.rmdir()
        await w.changed()
        proxy.mkdir()
        await w.changed()
        (proxy / "no_proxy").write_text("10.0.0.0/8\n")
        await w.changed()

        connections = Path(w.layout.boot_connections)
        replacement = Path(w.layout.boot) / "connections.new"
        replacement.mkdir()
        (replacement / "a.nmconnection").write_text("[connection]\nid=a\n")
        await w.unchanged()  # not a drop-in directory (yet)
        old = Path(w.layout.boot) / "connections.old"
        connections.rename(old)
        replacement.rename(connections)
        await w.changed()
        (old / "b.nmconnection").write_text("[connection]\nid=b\n")
        await w.unchanged()  # renamed away: no longer watched
        (connections / "b.nmconnection").write_text("[connection]\nid=b\n")
        await w.changed()

    run_watched(tmp_path, body)


def test_a_boot_directory_that_appears_later_is_watched(tmp_path: Path) -> None:
    async def main() -> None:
        layout = Layout(tmp_path)
        (tmp_path / "mnt").mkdir()
        changed = asyncio.Event()

        async def on_change() -> None:
            changed.set()

        watch = ConfigWatch(layout, on_change)
        watch.mark_seen()
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(QUIET)
        Path(layout.boot).mkdir()
        await asyncio.sleep(QUIET)  # its watch is set up from the parent's event
        Path(layout.config_json).write_text("{}\n")
        await asyncio.wait_for(changed.wait(), 10)
        task.cancel()

    asyncio.run(main())


def test_an_event_queue_overflow_rescans(tmp_path: Path) -> None:
    """More events than the kernel queues (fs.inotify.max_queued_events) while the loop is busy:
    the watch gets IN_Q_OVERFLOW, compares the stamp and keeps watching."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 65536:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many files to overflow it here")

    async def body(w: Watched) -> None:
        seen: list[int] = []
        inotify = w.watch._inotify
        assert inotify is not None
        read = inotify.read

        def recording_read() -> list[tuple[int, int, str]]:
            events = read()
            seen.extend(mask for _, mask, _ in events)
            return events

        inotify.read = recording_read  # type: ignore[method-assign]
        for index in range(limit // 3 + 64):  # IN_CREATE, IN_CLOSE_WRITE, IN_DELETE each, without yielding
            burst = Path(w.layout.boot_connections) / f"{index}.ignore"
            burst.touch()
            burst.unlink()
        (Path(w.layout.boot_connections) / "kept.nmconnection").touch()  # its events are lost in the overflow
        await w.changed()
        assert any(mask & IN_Q_OVERFLOW for mask in seen)
        (Path(w.layout.boot_connections) / "after.nmconnection").write_text("[connection]\nid=after\n")
        await w.changed()

    run_watched(tmp_path, body)


def test_idle_the_watch_arms_no_timer(tmp_path: Path) -> None:
    async def body(w: Watched) -> None:
        write_in_place(w.layout.config_json, '{"hostname": "two"}\n')
        await w.changed()
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        assert [handle for handle in loop._scheduled if not handle.cancelled()] == []  # type: ignore[attr-defined]

    run_watched(tmp_path, body)


def test_without_inotify_the_watch_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inotify() -> None:
        raise OSError(errno.EMFILE, "inotify_init1: Too many open files")

    monkeypatch.setattr(watch_module, "Inotify", no_inotify)
    monkeypatch.setattr(watch_module, "POLL_SECONDS", 0.01)

    async def body(w: Watched) -> None:
        Path(w.layout.config_json).write_text('{"hostname": "polled"}\n')
        await w.changed()

    run_watched(tmp_path, body)


def test_filesystems_that_give_no_events() -> None:
    assert watch_module.gives_no_events("nfs4")
    assert watch_module.gives_no_events("fuse.sshfs")
    assert not watch_module.gives_no_events("vfat")
    assert not watch_module.gives_no_events("ext4")
    assert watch_module.filesystem_type(Path("/proc/self")) == "proc"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem needs root")
def test_the_boot_partition_unmounted_is_watched_again(tmp_path: Path) -> None:
    """IN_UNMOUNT: the watch moves to the directory under the mount point, and still sees edits."""
    import subprocess

    boot = tmp_path / "mnt/boot"
    boot.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostd-test-boot", str(boot)], check=True)
    try:

        async def body(w: Watched) -> None:
            subprocess.run(["umount", str(boot)], check=True)
            await w.changed()  # config.json is gone with the partition
            Path(w.layout.config_json).write_text('{"hostname": "under"}\n')
            await w.changed()

        run_watched(tmp_path, body)
    finally:
        subprocess.run(["umount", str(boot)], check=False, capture_output=True)
