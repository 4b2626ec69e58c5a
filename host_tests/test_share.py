"""Share levels, field by field: what each destination may see of a reading, and when.
Readings are built as dicts, as the decoder makes them (exact decimals as (mantissa, exp))."""

import copy
import json

import pytest

import obis
from hanctl import runtime
from mp import dest_driver
from share import Share, is_hourly

IDENTITY = {"meter_id", "meter_model", "meter_manufacturer", "list_id"}
HEAD = {
    "meter_id": "7359992890497997",
    "meter_model": "6534",
    "meter_manufacturer": "Aidon",
    "list_id": "AIDON_V0001",
    "meter_time": "2025-12-14T16:00:00",
}
POWER = {
    "active_power_import": 4027,
    "active_power_export": 0,
    "reactive_power_import": 0,
    "reactive_power_export": 472,
}
PHASES = {
    "active_power_import_l1": 1200,
    "active_power_export_l2": 5,
    "reactive_power_import_l3": 7,
    "reactive_power_export_l1": 9,
    "current_l1": (5, -1),
    "current_l3": (-168, -1),
    "voltage_l1": 233,
    "voltage_l2": (2334, -1),
    "power_factor_l1": (98, -2),
    "frequency": (4998, -2),
}
ENERGY = {
    "active_energy_import": (10955225, -2),
    "active_energy_export": 0,
    "reactive_energy_import": (13048, -2),
    "reactive_energy_export": (1531972, -2),
}
LIST1 = {"meter_time": "2025-12-14T16:00:02", "active_power_import": 4100}
LIST2 = dict(HEAD, **POWER, **PHASES, **{"1-0:99.97.0": 3})
LIST3 = dict(LIST2, **ENERGY)
# DSMR P1: the registers come in every telegram, tariffs instead of totals, maybe no CRC
P1 = {
    "meter_id": "4530303034303031",
    "meter_time": "2025-12-14T16:00:10",
    "active_energy_import_t1": (123456, -3),
    "active_energy_import_t2": (654321, -3),
    "active_power_import": 1200,
    "unchecked": True,
    "0-1:24.2.1": (12785, -3),
}
READINGS = [LIST1, LIST2, LIST3, P1]


def view(share, reading, now=0, **dest):
    return Share(dict(dest, share=share)).view(reading, now)


def test_full_is_every_field_of_every_message_without_a_copy():
    s = Share({"share": "full"})
    for r in READINGS:
        assert s.view(r, 0) is r
    assert s.view({}, 0) is None
    assert s.fields() == obis.ORDER and not s.withholds_id


def test_live_is_power_with_meter_time_never_the_meter():
    assert view("live", LIST2) == dict(
        POWER,
        meter_time=HEAD["meter_time"],
        active_power_import_l1=1200,
        active_power_export_l2=5,
        reactive_power_import_l3=7,
        reactive_power_export_l1=9,
    )
    for r in READINGS:
        v = view("live", r)
        assert not IDENTITY & v.keys()
        for k in v:
            assert obis.UNIT.get(k) in ("W", "var") or k in ("meter_time", "unchecked"), k
            assert v[k] is r[k]  # the reading's own values, not copies
    assert view("live", {"voltage_l1": 230, "meter_id": "1"}) is None


def test_live_field_by_field_from_the_obis_table():
    s = Share({"share": "live"})
    for field, unit in obis.UNIT.items():
        assert s.allows(field) == (unit in ("W", "var") or field == "meter_time"), field
    assert not s.allows("1-0:99.97.0") and s.withholds_id
    assert s.fields() == ["meter_time"] + [f for f in obis.ORDER if obis.UNIT[f] in ("W", "var")]
    assert len(s.fields()) == 17  # 4 totals, 12 per-phase, meter_time


def test_live_interval():
    s = Share({"share": "live", "interval": 10})
    sent = [s.view(LIST1, ms) is not None for ms in (0, 2000, 9999, 10000, 12000, 20000, 20001)]
    assert sent == [True, False, False, True, False, True, False]
    s = Share({"share": "live"})  # default 10 s
    assert [s.view(LIST1, ms) is not None for ms in (0, 9999, 10000)] == [True, False, True]
    s = Share({"share": "live", "interval": 1})
    assert [s.view(LIST1, ms) is not None for ms in (0, 500, 1000, 1999)] == [1, 0, 1, 0]


def test_live_a_reading_without_power_does_not_use_up_the_interval():
    s = Share({"share": "live", "interval": 10})
    assert s.view({"meter_time": "t", "voltage_l1": 230}, 0) is None
    assert s.view(LIST1, 1000) is not None
    assert s.view(LIST1, 5000) is None


def test_hourly_is_energy_registers_with_meter_time():
    assert view("hourly", LIST3) == dict(ENERGY, meter_time=HEAD["meter_time"])
    assert view("hourly", LIST2) is None
    assert view("hourly", LIST1) is None
    assert view("hourly", P1) == {
        "meter_time": P1["meter_time"],
        "active_energy_import_t1": (123456, -3),
        "active_energy_import_t2": (654321, -3),
        "unchecked": True,
    }
    s = Share({"share": "hourly"})
    counts = ("kWh", "kvarh", "m³", "GJ", "time")  # P1 sub-meters' counts and their times
    for field, unit in obis.UNIT.items():
        assert s.allows(field) == (unit in counts or field == "meter_time"), field
    assert (
        s.withholds_id and s.fields()[0] == "meter_time" and len(s.fields()) == 25
    )  # 18 registers, 3 sub-meter counts and their times


def test_hourly_sends_one_view_per_meter_hour():
    """P1 meters send the registers in every telegram; an hourly destination gets the first
    of each hour, as from a DLMS meter's List 3."""
    s = Share({"share": "hourly"})
    times = ["16:00:10", "16:00:20", "16:59:50", "17:00:00", "17:00:10", "18:00:00"]
    sent = [s.view(dict(P1, meter_time="2025-12-14T" + t), 0) is not None for t in times]
    assert sent == [True, False, False, True, False, True]
    # a List 2 in between changes nothing; without meter_time every view goes
    assert s.view(LIST2, 0) is None
    no_time = {"active_energy_import": 1}
    assert s.view(no_time, 0) == no_time and s.view(no_time, 0) == no_time


def test_field_list_is_exactly_the_fields_present():
    fields = ["meter_time", "voltage_l1", "active_energy_import", "1-0:99.97.0", "meter_model"]
    s = Share({"share": fields})
    assert s.view(LIST3, 0) == {
        "meter_time": HEAD["meter_time"],
        "voltage_l1": 233,
        "active_energy_import": ENERGY["active_energy_import"],
        "1-0:99.97.0": 3,
        "meter_model": "6534",
    }
    assert s.view(LIST1, 0) == {"meter_time": LIST1["meter_time"]}
    assert s.view({"active_power_import": 1}, 0) is None
    assert s.withholds_id
    assert s.fields() == ["meter_model", "meter_time", "voltage_l1", "active_energy_import"]
    assert not Share({"share": ["meter_id"]}).withholds_id


def test_views_leave_the_reading_alone():
    before = copy.deepcopy(READINGS)
    for level in ("full", "live", "hourly", ["meter_id", "voltage_l1"]):
        s = Share({"share": level, "interval": 1})
        for i, r in enumerate(READINGS):
            s.view(r, i * 1000)
    assert READINGS == before


def test_is_hourly():
    assert [is_hourly(r) for r in READINGS] == [False, False, True, True]
    assert not is_hourly({})


def test_who_gets_the_tariff_message():
    """2: at each register and once a minute between; 1: at each register; 0: never."""
    levels = {"full": 2, "hourly": 1, "live": 0}
    for share, want in levels.items():
        assert Share({"share": share}, tariff=True).tariff == want
        assert Share({"share": share}).tariff == 0  # no "tariff" in the config
    assert Share({"share": ["tariff", "meter_time"]}, tariff=True).tariff == 2
    assert Share({"share": ["active_energy_import"]}, tariff=True).tariff == 0


def test_a_share_config_validate_would_reject_is_refused():
    for bad in ("fulll", None, 5):
        with pytest.raises(ValueError):
            Share({"share": bad})


def _plain(x):
    return json.loads(json.dumps(x))


@pytest.mark.parametrize("which", ["cpython", "micropython"])
def test_same_views_on_micropython(which):
    seq = [
        [ms, r] for ms, r in zip((0, 3000, 10000, 10500, 25000), READINGS + [LIST2], strict=True)
    ]
    dests = [{"share": "full"}, {"share": "live", "interval": 10}, {"share": "hourly"},
             {"share": ["meter_time", "1-0:99.97.0", "voltage_l2"]}]  # fmt: skip
    cases = [["share", d, seq] for d in dests]
    cases += [["allows", d] for d in dests]
    cases += [["is_hourly", r] for r in READINGS]
    # time.ticks_ms() wraps; MicroPython's ticks_diff sees through it, CPython's ints never wrap
    cases.append(["share_wrap", {"share": "live", "interval": 10}, LIST1, [0, 5000, 9999, 10000]])
    got = dest_driver.run(_plain(cases), which)
    expected = []
    for d in dests:
        s = Share(d)
        expected.append([s.view(r, ms) for ms, r in seq])
    for d in dests:
        s = Share(d)
        expected.append([s.fields(), s.withholds_id])
    expected += [is_hourly(r) for r in READINGS]
    expected.append([LIST1, None, None, LIST1])
    assert got == _plain(expected)


def test_import_cost_on_micropython():
    """Measured at -X heapsize=96K, -O3 .mpy: 2,256-2,368 B once obis is loaded (the
    decoder's), by where the heap's blocks lie before it (each qstr chunk grows in place
    or anew). 2,576 B in CI before module paths were short (runtime.short_alias)."""
    [(_, _, imported, _)] = dest_driver.run([["heap", "obis", "json", "share"]], "micropython")
    assert imported <= 2.5 * 1024
    # the -O3 bytecode the dongle loads (runtime.compile_firmware, as hanctl installs it)
    assert (runtime.compile_firmware() / "share.mpy").stat().st_size <= 1.5 * 1024
