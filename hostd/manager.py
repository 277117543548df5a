"""io.hostd1's methods (``api.Host``): reads answered from the view, changes made through the reconciler.

The changes that edit config.json (SetHostname, SetPersistentLogging, Try) write it power-safely,
under the reconciler's lock, and tell the watch that hostd itself made the change.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from hostd import boot_profiles, engine, fsutil, generations, keys
from hostd import config as config_model
from hostd.api import ApiError, InvalidArgument
from hostd.bus import errors
from hostd.discovery import Discovery
from hostd.reconciler import Reconciler
from hostd.steps import proxy
from hostd.steps.base import Context
from hostd.view import View
from hostd.watch import ConfigWatch


class Manager:
    def __init__(
        self,
        reconciler: Reconciler,
        view: View,
        watch: ConfigWatch,
        discovery: Discovery,
        publish: Callable[[], None],
    ) -> None:
        self.reconciler = reconciler
        self.view = view
        self.watch = watch
        self.discovery = discovery
        self.publish = publish  # the properties and signals, after a change the reconciler does not make
        # generation on trial -> the boot profile it changed as it was, put back if it is rolled back
        self._profile_undo: dict[str, boot_profiles.Undo] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.layout = reconciler.layout

    def describe(self) -> dict[str, Any]:
        return self.view.describe()

    def plan(self) -> dict[str, Any]:
        loaded = config_model.load(self.layout)
        if loaded.error is not None:
            raise ApiError("ConfigInvalid", str(loaded.error))
        ctx = Context(loaded.config, self.layout, self.reconciler.facts())
        return {"steps": [result.as_dict() for result in engine.run(ctx, apply=False)]}

    async def reload(self) -> None:
        await self.reconciler.reconcile()

    async def set_hostname(self, name: str) -> None:
        folded = name.lower()
        if name and not config_model.is_hostname_label(folded):
            raise InvalidArgument(
                f"{name!r} is not a valid hostname (1-63 of a-z, 0-9 and '-', not starting or ending with '-')"
            )
        await self._write_config({"hostname": folded})

    async def set_persistent_logging(self, enabled: bool) -> None:
        await self._write_config({"persistentLogging": bool(enabled)})

    async def set_config(self, changes: dict[str, Any]) -> None:
        """Set owned keys (dotted names, values in their config.json forms), all or none: each is
        validated through the keys table, then config.json is written once and reconciled (a risky
        key through safe apply)."""
        if not changes:
            raise InvalidArgument("no keys given")
        unknown = sorted(set(changes) - set(keys.BY_NAME))
        if unknown:
            raise InvalidArgument(f"not a key hostd owns: {', '.join(unknown)}; it owns {', '.join(keys.BY_NAME)}")
        await self._write_config(changes)

    async def set_discoverable(self, discoverable: bool) -> None:
        try:
            await self.discovery.set(bool(discoverable))
        except errors.BusError as exc:
            action = "started" if discoverable else "stopped"
            raise ApiError("Failed", f"avahi-daemon could not be {action}: {exc}") from None
        self.publish()

    def list_connections(self) -> list[boot_profiles.ProfileTuple]:
        return boot_profiles.listing(self.layout.boot_connections)

    async def set_connection(self, name: str, keyfile: str | None, *, exists: bool) -> None:
        """Add (``exists`` False), replace or remove (``keyfile`` None) a boot-partition profile, then
        apply it through safe apply; a change rolled back puts the file back as it was."""
        try:
            data = boot_profiles.check(name, keyfile)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        directory = self.layout.boot_connections
        async with self.reconciler.lock:
            path = os.path.join(directory, name)
            present = os.path.isfile(path)
            if present != exists:
                raise ApiError(
                    "NoSuchConnection" if exists else "ConnectionExists",
                    f"{path} {'does not exist' if exists else 'exists already'}",
                )
            undo = boot_profiles.write(directory, name, data)
        self.watch.mark_seen()
        await self.reconciler.reconcile()
        if self.reconciler.transaction.state:
            self._profile_undo[self.reconciler.applied_id] = undo

    def rolled_back(self, generation: str) -> None:
        """A generation was rolled back: a boot profile changed through the API for it goes back too,
        so the boot partition says again what the device runs."""
        undo = self._profile_undo.pop(generation, None)
        if undo is None:
            return

        async def put_back() -> None:
            async with self.reconciler.lock:
                undo.apply()
            self.watch.mark_seen()
            await self.reconciler.reconcile()

        task = asyncio.get_running_loop().create_task(put_back())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def confirm(self) -> None:
        if not self.reconciler.transaction.confirm():
            raise ApiError("NothingToConfirm", "no change is waiting for confirmation")

    async def try_apply(self, config: str, timeout: int) -> None:
        """Apply ``config`` (written as config.json first; "" = config.json as it is), and roll it back
        unless Confirm() comes within ``timeout`` seconds.  Taking the new file here, under the
        lock, means the config.json watcher cannot apply and keep it before the trial starts."""
        if not 5 <= timeout <= 3600:
            raise InvalidArgument(f"timeout {timeout} is outside 5..3600 seconds")
        reconciler = self.reconciler
        async with reconciler.lock:
            if config:
                path = self.layout.config_json
                raw = config.encode()
                try:
                    config_model.parse(raw, "the config given to Try")
                except config_model.ConfigError as exc:
                    raise InvalidArgument(str(exc)) from None
                mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
                if fsutil.read_bytes(path) != raw:
                    fsutil.atomic_write(path, raw, mode)
                self.watch.mark_seen()
            loaded, good = config_model.load(self.layout), reconciler.store.good()
            if (
                loaded.raw is not None
                and good is not None
                and reconciler.applied_id == good
                and generations.read_inputs(self.layout, loaded.raw).id == good
            ):
                # Already kept (the config.json watcher probed it first): a trial would have nothing to
                # roll back to, and would record the last-known-good generation as rejected.
                raise ApiError(
                    "NothingToTry", f"config.json (generation {good}) is applied and kept already; nothing to try"
                )
            await reconciler.try_locked(timeout)

    async def set_proxy(self, redsocks_conf: str, no_proxy: list[str]) -> None:
        """Write ``system-proxy/`` power-safely ("" = no proxy: both files removed), then reconcile: a
        changed proxy can cut the device off, so it is applied through safe apply (probed)."""
        try:
            if redsocks_conf:
                proxy.parse_redsocks_conf(redsocks_conf)
        except proxy.ConfError as exc:
            raise InvalidArgument(f"redsocks_conf: {exc}") from None
        no_proxy_text = "".join(f"{entry}\n" for entry in no_proxy)
        _, problems = proxy.parse_no_proxy(no_proxy_text, "no_proxy")
        if problems:
            raise InvalidArgument("; ".join(problems))
        directory = self.layout.boot_proxy
        async with self.reconciler.lock:
            with fsutil.batch():  # one flush for both files
                for name, content in (("redsocks.conf", redsocks_conf), ("no_proxy", no_proxy_text)):
                    path = os.path.join(directory, name)
                    if not (redsocks_conf and content):
                        fsutil.remove_file(path)
                    elif fsutil.read_bytes(path) != content.encode():
                        fsutil.atomic_write(path, content.encode(), 0o600)  # it may hold credentials
        self.watch.mark_seen()
        await self.reconciler.reconcile()

    async def _write_config(self, changes: dict[str, Any]) -> None:
        """Write ``changes`` into config.json power-safely (every other byte kept), then reconcile.
        Refused unless every key of the result applies: a changed key's bad value is InvalidArgs
        (naming key and value, a secret withheld); another key held back is ConfigInvalid."""
        path = self.layout.config_json
        async with self.reconciler.lock:
            try:
                with open(path, "rb") as file:
                    raw = file.read()
                config_model.read(raw, path)
            except OSError as exc:
                raise ApiError("ConfigUnreadable", f"{path}: cannot be read: {exc.strerror}") from None
            except config_model.ConfigError as exc:
                raise ApiError("ConfigInvalid", f"fix config.json first: {exc}") from None
            new = config_model.with_keys_set(raw, changes)
            held_back = config_model.read(new, path).held_back
            bad = [entry for entry in held_back if entry.key in changes]
            if bad:
                raise InvalidArgument("; ".join(f"{entry.key}: {entry.message}" for entry in bad))
            if held_back:
                raise ApiError("ConfigInvalid", "fix config.json first: " + "; ".join(map(str, held_back)))
            if new != raw:
                fsutil.atomic_write(path, new, os.stat(path).st_mode & 0o777)
        self.watch.mark_seen()
        await self.reconciler.reconcile()
