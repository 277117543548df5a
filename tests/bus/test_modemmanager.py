"""ModemManager adapter against its fake."""

from __future__ import annotations

from hostd.bus import names
from hostd.bus.modemmanager import Modem, ModemManagerAdapter, ModemState

from .fakes.modemmanager import FakeModemManager
from .support import Recorder, client_bus, wait_until

MODEM_0 = f"{names.MM_MODEM_PATH_PREFIX}/0"
MODEM_1 = f"{names.MM_MODEM_PATH_PREFIX}/1"


async def test_modems_are_read_at_attach(bus_address: str) -> None:
    fake = FakeModemManager(bus_address)
    fake.add_modem(0)
    await fake.start()
    async with client_bus(bus_address) as bus:
        mm = ModemManagerAdapter(bus)
        await mm.start()
        assert mm.modems == {
            MODEM_0: Modem(
                path=MODEM_0,
                state=ModemState.REGISTERED,
                signal_quality=71,
                signal_recent=True,
                operator_name="Vodafone",
                sim_present=True,
                manufacturer="Quectel",
                model="EC25",
            )
        }
        assert fake.calls_to("GetManagedObjects") == [[]]


async def test_modems_appearing_changing_and_going_are_followed_without_calls(bus_address: str) -> None:
    fake = FakeModemManager(bus_address)
    await fake.start()
    async with client_bus(bus_address) as bus:
        mm = ModemManagerAdapter(bus)
        changed = Recorder()
        mm.on_modems_changed(changed)
        await mm.start()
        assert mm.modems == {}
        calls_before = len(fake.calls)

        modem = fake.add_modem(1)
        await wait_until(lambda: MODEM_1 in mm.modems)
        assert mm.modems[MODEM_1].operator_name == "Vodafone"

        modem.change_state(ModemState.CONNECTED.value)
        await wait_until(lambda: mm.modems[MODEM_1].state is ModemState.CONNECTED)

        fake.remove_modem(1)
        await wait_until(lambda: mm.modems == {})
        assert len(fake.calls) == calls_before
        await wait_until(lambda: changed.count >= 4)  # attach, added, state, removed


async def test_unknown_modem_state_and_missing_sim_are_tolerated(bus_address: str) -> None:
    fake = FakeModemManager(bus_address)
    modem = fake.add_modem(0)
    modem.state = 42
    modem.sim = names.MM_NO_SIM_PATH
    await fake.start()
    async with client_bus(bus_address) as bus:
        mm = ModemManagerAdapter(bus)
        await mm.start()
        assert mm.modems[MODEM_0].state is ModemState.UNKNOWN
        assert mm.modems[MODEM_0].sim_present is False
        modem.change_state(ModemState.FAILED.value)
        await wait_until(lambda: mm.modems[MODEM_0].state is ModemState.FAILED)


async def test_an_interface_going_away_forgets_only_its_properties(bus_address: str) -> None:
    fake = FakeModemManager(bus_address)
    fake.add_modem(0)
    await fake.start()
    async with client_bus(bus_address) as bus:
        mm = ModemManagerAdapter(bus)
        await mm.start()
        assert mm.modems[MODEM_0].operator_name == "Vodafone"
        fake.disable_3gpp(0)
        await wait_until(lambda: mm.modems[MODEM_0].operator_name == "")
        assert mm.modems[MODEM_0].model == "EC25"
