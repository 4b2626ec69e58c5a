"""Home Assistant discovery payloads, field by field, against Home Assistant's documented
schema; unique ids stable and free of the meter id where the share level withholds it."""

import json
import re

import pytest

import destination
import obis
from hanctl import runtime
from mp import dest_driver
from share import Share

# developers.home-assistant.io, docs/core/entity/sensor.md, "Available device classes": the
# units each device class hanport uses accepts.
HA_UNITS = {
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "reactive_power": {"mvar", "var", "kvar"},
    "current": {"A", "mA"},
    "voltage": {"V", "mV", "\u00b5V", "kV", "MV"},
    "frequency": {"mHz", "Hz", "kHz", "MHz", "GHz"},
    "power_factor": {"%", None},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "reactive_energy": {"varh", "kvarh"},
    "gas": {"m\u00b3", "ft\u00b3", "CCF"},
    "water": {"L", "gal", "m\u00b3", "ft\u00b3", "CCF"},
    None: {"kvarh"},  # no device class: reactive_energy is refused before 2025.7
}  # fmt: skip
# Same page, "Available state classes"; the Energy dashboard takes energy sensors with a
# total (long-term statistics, "Entities representing a total amount").
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
# home-assistant.io integrations/sensor.mqtt: the configuration variables hanport may use;
# default_entity_id replaced object_id (deprecated 2025.10, ignored since 2026.4).
SENSOR_KEYS = {
    "availability_topic", "default_entity_id", "device", "device_class", "name", "object_id",
    "origin", "payload_available", "payload_not_available", "state_class", "state_topic",
    "unique_id", "unit_of_measurement", "value_template", "expire_after",
}  # fmt: skip
REQUIRED = {"state_topic", "unique_id", "device", "name"}  # device info needs unique_id
# No serial_number: Home Assistant before 2024.2 refuses the config (test_ha_real, 2024.1).
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model"}
ID_CHARS = re.compile(r"[a-zA-Z0-9_-]+")  # discovery topic node_id and object_id

METER_ID = "7359992890497997"
BASE = "hanport/1a2b3c"
HOST = "hanport-1a2b3c"
NAME = "ha"
NODE = "hanport-1a2b3c_ha"  # one node per destination
TEXT = ["meter_id", "meter_model", "meter_manufacturer", "list_id", "meter_time"]
TIMES = ["gas_time", "water_time", "heat_time"]  # P1 sub-meters' (conftest loads p1)
NUMERIC = [f for f in obis.ORDER if f not in TEXT + TIMES]  # a unit, or a ratio
AIDON = TEXT[:2] + TEXT[3:] + [
    "active_power_import", "active_power_export", "reactive_power_import",
    "reactive_power_export", "current_l1", "current_l2", "current_l3", "voltage_l1",
    "voltage_l2", "voltage_l3", "active_energy_import", "active_energy_export",
    "reactive_energy_import", "reactive_energy_export", "1-0:99.97.0", "unchecked",
]  # fmt: skip


def announce(share, fields=AIDON, meter_id=METER_ID, maker="Aidon", model="6534", salt=None,
             diagnostics=False):  # fmt: skip
    """The sensor configs of the fields (and the diagnostics, if asked) as (topic, dict),
    and as (topic, text)."""
    s = Share({"share": share})
    out = dest_driver.messages(BASE, fields, s, meter_id, maker, model, HOST, NAME, salt)
    if not diagnostics:
        out = [(t, p) for t, p in out if "/stats_" not in t]
    return [(t, json.loads(p)) for t, p in out], out


def check(topic, p):
    """One config message against Home Assistant's documented schema."""
    prefix, component, node, object_id, last = topic.split("/")
    assert (prefix, component, node, last) == ("homeassistant", "sensor", NODE, "config")
    assert ID_CHARS.fullmatch(node) and ID_CHARS.fullmatch(object_id)
    field = object_id
    assert set(p) <= SENSOR_KEYS and REQUIRED <= set(p), set(p) ^ SENSOR_KEYS
    assert set(p["device"]) <= DEVICE_KEYS and p["device"]["identifiers"] and p["device"]["name"]
    unit = p.get("unit_of_measurement")
    assert unit in HA_UNITS[p.get("device_class")], (field, unit)
    assert unit == (obis.UNIT[field] or None)
    assert p["state_class"] in STATE_CLASSES
    if unit in ("kWh", "kvarh", "m\u00b3", "GJ"):
        # the Energy dashboard: device class energy (gas, water), a total, its unit
        assert p["state_class"] == "total_increasing"
        assert p["state_topic"] == BASE + "/energy"  # the retained hourly message
        assert p["expire_after"] == 7200  # two hours: one hourly message may be missed
    else:
        assert p["state_class"] == "measurement"
        assert p["state_topic"] == BASE + "/reading"
        assert p["expire_after"] in (30, 60)  # 3 x 10 s; live: 3 x 2 x interval
    if unit == "kWh":
        assert p["device_class"] == "energy"
    assert p["value_template"] == "{{ value_json." + field + " | default('') }}"
    assert p["availability_topic"] == BASE + "/status"
    assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
    assert re.fullmatch(r"[a-z0-9_]+", p["object_id"])
    assert p["default_entity_id"] == "sensor." + p["object_id"]
    assert p["object_id"] == "hanport_1a2b3c_ha_" + field
    assert p["unique_id"].endswith("_" + field)
    assert isinstance(p["name"], str) and p["name"][0].isupper()
    return field


def test_full_announces_each_numeric_field_the_meter_sends():
    msgs, raw = announce("full")
    fields = [check(t, p) for t, p in msgs]
    assert fields == [f for f in AIDON if f in NUMERIC]  # no ids, time, codes or flags
    assert len({p["unique_id"] for _, p in msgs}) == len(msgs)
    for t, p in msgs:
        assert p["unique_id"] == f"hanport_{METER_ID}_{NODE}_{t.split('/')[3]}"
        assert p["device"] == {
            "identifiers": [f"hanport_{METER_ID}_{NODE}"],
            "name": "hanport-1a2b3c ha",
            "manufacturer": "Aidon",
            "model": "6534",
        }
    for _, text in raw:
        assert len(text) < 800  # built and published one at a time (iter_messages)
        assert ", " not in text and '": ' not in text  # compact JSON


def test_every_field_of_the_obis_table_maps_to_a_documented_class():
    msgs, _ = announce("full", fields=obis.ORDER + ["1-0:99.97.0"])
    by_field = {check(t, p): p for t, p in msgs}
    assert list(by_field) == NUMERIC
    classes = {
        f: (p.get("device_class"), p.get("unit_of_measurement")) for f, p in by_field.items()
    }
    assert classes["active_power_import_l2"] == ("power", "W")
    assert classes["reactive_power_export"] == ("reactive_power", "var")
    assert classes["current_l1"] == ("current", "A")
    assert classes["voltage_l3"] == ("voltage", "V")
    assert classes["frequency"] == ("frequency", "Hz")
    assert classes["power_factor_l1"] == ("power_factor", None)  # a ratio 0..1, not %
    assert classes["active_energy_export_t3"] == ("energy", "kWh")
    # Unit and state class, no device class: reactive_energy came in 2025.7 and an older
    # Home Assistant refuses the whole config for it.
    assert classes["gas_volume"] == ("gas", "m³")  # a P1 sub-meter's
    assert classes["water_volume"] == ("water", "m³")
    assert classes["heat_energy"] == ("energy", "GJ")
    assert classes["reactive_energy_import"] == (None, "kvarh")
    assert "device_class" not in by_field["reactive_energy_export"]
    assert by_field["reactive_energy_export"]["state_class"] == "total_increasing"


def test_names_read_as_words():
    msgs, _ = announce("full", fields=obis.ORDER)
    names = {t.split("/")[3]: p["name"] for t, p in msgs}
    assert names["active_power_import_l1"] == "Active power import L1"
    assert names["active_energy_import_t2"] == "Active energy import T2"
    assert names["power_factor"] == "Power factor"


@pytest.mark.parametrize("share", ["live", "hourly", ["meter_model", "voltage_l1", "meter_time"]])
def test_a_withheld_meter_id_never_appears(share):
    msgs, raw = announce(share)
    assert msgs
    for topic, text in raw:
        assert METER_ID not in topic and METER_ID not in text
        assert METER_ID[-8:] not in text  # not even a part of it
    for t, p in msgs:
        check(t, p)
        assert "serial_number" not in p["device"]
        assert "manufacturer" not in p["device"]
    again, _ = announce(share)
    assert again == msgs  # stable
    other, _ = announce(share, meter_id="7359992890497998")
    assert {p["unique_id"] for _, p in other}.isdisjoint(p["unique_id"] for _, p in msgs)
    salted, _ = announce(share, salt="a per-dongle secret")
    assert {p["unique_id"] for _, p in salted}.isdisjoint(p["unique_id"] for _, p in msgs)


def test_share_levels_decide_what_is_announced():
    live = [t.split("/")[3] for t, _ in announce("live")[0]]
    assert live == AIDON[4:8]  # the four power totals the meter sends
    hourly = [t.split("/")[3] for t, _ in announce("hourly")[0]]
    assert hourly == AIDON[14:18]
    listed, _ = announce(["meter_model", "voltage_l1", "meter_time", "frequency"])
    assert [t.split("/")[3] for t, _ in listed] == ["voltage_l1"]  # no frequency sent
    assert listed[0][1]["device"]["model"] == "6534"  # the owner shares the model
    first = announce("live")[0][0][1]
    key = first["unique_id"][: -len("_active_power_import")]
    assert first["device"] == {"identifiers": [key], "name": "hanport-1a2b3c ha"}  # no maker...


def test_without_a_meter_id_the_ids_follow_the_node_never_the_salt():
    msgs, raw = announce("full", meter_id=None, maker=None, model=None, salt="s3cret-salt")
    p = msgs[0][1]
    assert p["unique_id"] == f"hanport_{NODE}_active_power_import"
    assert p["device"] == {"identifiers": [f"hanport_{NODE}"], "name": "hanport-1a2b3c ha"}
    assert not any("s3cret" in text for _, text in raw)  # the dongle's secret stays in it


def test_constants():
    assert destination._HA_STATUS == "homeassistant/status"


@pytest.mark.parametrize("which", ["cpython", "micropython"])
def test_same_messages_on_micropython(which):
    cases = []
    for share in ("full", "live", "hourly", ["meter_id", "voltage_l2"]):
        for salt in (None, "secret"):
            dest = {"share": share}
            cases.append(
                ["discovery", BASE, AIDON, dest, METER_ID, "Aidon", "6534", HOST, NAME, salt]
            )
    # The driver holds a case's whole set of configs (~25 KB) and prints it as one JSON
    # line; the dongle holds one config at a time (iter_messages into its own buffer).
    got = dest_driver.run(cases, which, heap="512K")
    for case, messages in zip(cases, got, strict=True):
        expected = dest_driver.messages(BASE, AIDON, Share(case[3]), *case[4:])
        assert [t for t, _ in messages] == [t for t, _ in expected]
        assert [json.loads(p) for _, p in messages] == [json.loads(p) for _, p in expected]


def test_import_cost_on_micropython():
    """Measured at -X heapsize=96K, -O3 .mpy, once obis, reading and share are loaded (as
    destination has them): 8.4 KB (5.8 KB before the diagnostics' table and the record of
    what was announced). Loaded only while a round is sent (one destination at a
    time, after a gc.collect()), then dropped."""
    cases = [["heap", "obis", "json", "reading", "share", "discovery"]]
    [(_, _, _, _, imported, stays)] = dest_driver.run(cases, "micropython")
    assert imported <= 9.5 * 1024
    assert stays <= 2 * 1024  # its interned names, once: the same at every round
    # the -O3 bytecode the dongle loads (runtime.compile_firmware, as hanctl installs it)
    # 6,160 B since its energy sensors read <base>/energy_now (energynow.py's rule held here)
    assert (runtime.compile_firmware() / "discovery.mpy").stat().st_size <= 6.25 * 1024
