"""timedate1 adapter against its fake."""

from __future__ import annotations

from hostd.bus.timedate1 import Timedate1Adapter

from .fakes.timedate1 import FakeTimedate1
from .support import client_bus, wait_until


async def test_properties_cached_followed_and_refreshed(bus_address: str) -> None:
    fake = FakeTimedate1(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        timedate1 = Timedate1Adapter(bus)
        await timedate1.start()
        assert (timedate1.ntp_synchronized, timedate1.ntp, timedate1.timezone) == (False, True, "UTC")
        calls_before = len(fake.calls)

        fake.timedated.ntp = False
        fake.timedated.timezone = "Europe/Berlin"
        fake.timedated.emit_properties_changed({"NTP": False, "Timezone": "Europe/Berlin"})
        await wait_until(lambda: timedate1.timezone == "Europe/Berlin")
        assert timedate1.ntp is False
        assert len(fake.calls) == calls_before

        # timedated never signals NTPSynchronized: refresh() reads it.
        fake.timedated.ntp_synchronized = True
        assert timedate1.ntp_synchronized is False
        await timedate1.refresh()
        assert timedate1.ntp_synchronized is True
