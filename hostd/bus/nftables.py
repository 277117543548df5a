"""The kernel's nftables rules, through ``nft``: load a file (one transaction), look a table up, delete it."""

from __future__ import annotations

from hostd.bus import errors
from hostd.bus.base import DEFAULT_TIMEOUT, CommandFeature


class Nftables(CommandFeature):
    key = "nftables"

    def __init__(self, *, nft: str = "nft", timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(nft, timeout=timeout)

    async def start(self) -> None:
        """Used only while a proxy is configured: a missing nft shows when it is needed, not before."""
        self._recover()

    async def load(self, path: str) -> None:
        """Apply a rules file: all of it or, when nft refuses any of it, none (CommandFailed)."""
        await self._run("-f", path)

    async def has_table(self, table: str, family: str = "inet") -> bool:
        try:
            await self._run("list", "table", family, table)
        except errors.CommandFailed:
            return False
        return True

    async def delete_table(self, table: str, family: str = "inet") -> None:
        """Delete the table if it exists."""
        if await self.has_table(table, family):
            await self._run("delete", "table", family, table)
