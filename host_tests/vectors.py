"""The shared real-meter captures (../shared/vectors) as test cases, and their oracles'
values translated into the canonical reading's names and units.

The folder is found through HANPORT_VECTORS (default: ../shared/vectors beside the repo).
It is never copied into the repo; tests that need it skip with the reason when it is absent.
"""

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]


def vectors_dir():
    return Path(os.environ.get("HANPORT_VECTORS", REPO.parent / "shared" / "vectors"))


def missing_reason():
    d = vectors_dir()
    if not (d / "README.md").is_file():
        return (
            f"real meter captures not found at {d}: set HANPORT_VECTORS to the shared "
            "vectors folder (CI has it beside the repo as ../shared/vectors)"
        )
    return None


class Case:
    def __init__(self, path, index, frame, chunks):
        self.file = path
        self.index = index
        self.frame = frame
        self.id = f"{path}#{index}"
        self.framing = frame["framing"]
        self.chunks = chunks  # bytes fed as one stream (a whole GBT push for its last block)

    def line(self):
        return f"{self.id} {self.framing} {','.join(c.hex() for c in self.chunks)}"


def _bytes(frame):
    if "text" in frame:
        return frame["text"].encode("latin-1")
    return bytes.fromhex(frame["hex"])


def load_cases():
    """Every frame of every file, in file order. The frame that carries `expected` for a
    push split over several frames (expected_scope) is fed together with those frames."""
    cases = []
    root = vectors_dir()
    for path in sorted(root.glob("*/*.json")):
        rel = str(path.relative_to(root))
        doc = json.loads(path.read_text())
        frames = doc["frames"]
        for i, frame in enumerate(frames):
            chunks = [_bytes(frame)]
            scope = frame.get("expected_scope", "")
            if "frames [" in scope:
                idx = [int(x) for x in scope.split("frames [")[1].split("]")[0].split(",")]
                chunks = [_bytes(frames[k]) for k in idx]
            cases.append(Case(rel, i, frame, chunks))
    return cases


# -- oracle translation --------------------------------------------------------------------

_AMSHAN = {
    "list_ver_id": "list_id",
    "meter_type": "meter_model",
    "meter_datetime": "meter_time",
    "active_power_import_total": "active_energy_import",
    "active_power_export_total": "active_energy_export",
    "reactive_power_import_total": "reactive_energy_import",
    "reactive_power_export_total": "reactive_energy_export",
}
_KILO = Decimal(1000)
_AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def amshan_expected(exp):
    """amshan 2.1.1 output -> {canonical field: str | Decimal}."""
    out = {}
    units = exp.get("_units", {})
    for k, v in exp.items():
        if k.startswith("_"):
            continue
        name = _AMSHAN.get(k, k)
        if name == "meter_time":
            out[name] = v[:19]
        elif isinstance(v, str):
            out[name] = v.rstrip("\x00")
        else:
            d = Decimal(repr(v))
            if units.get(k) in ("Wh", "varh"):
                d = d / _KILO
            out[name] = d
    return out


# dsmr-parser object name -> (canonical field, factor to the canonical unit from its unit)
_DSMR = {
    "ELECTRICITY_USED_TARIFF_1": "active_energy_import_t1",
    "ELECTRICITY_USED_TARIFF_2": "active_energy_import_t2",
    "ELECTRICITY_USED_TARIFF_3": "active_energy_import_t3",
    "ELECTRICITY_USED_TARIFF_4": "active_energy_import_t4",
    "ELECTRICITY_DELIVERED_TARIFF_1": "active_energy_export_t1",
    "ELECTRICITY_DELIVERED_TARIFF_2": "active_energy_export_t2",
    "ELECTRICITY_DELIVERED_TARIFF_3": "active_energy_export_t3",
    "ELECTRICITY_DELIVERED_TARIFF_4": "active_energy_export_t4",
    "ELECTRICITY_IMPORTED_TOTAL": "active_energy_import",
    "ELECTRICITY_EXPORTED_TOTAL": "active_energy_export",
    "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": "reactive_energy_import",
    "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": "reactive_energy_export",
    "CURRENT_ELECTRICITY_USAGE": "active_power_import",
    "CURRENT_ELECTRICITY_DELIVERY": "active_power_export",
    "INSTANTANEOUS_CURRENT_L1": "current_l1",
    "INSTANTANEOUS_CURRENT_L2": "current_l2",
    "INSTANTANEOUS_CURRENT_L3": "current_l3",
    "INSTANTANEOUS_VOLTAGE_L1": "voltage_l1",
    "INSTANTANEOUS_VOLTAGE_L2": "voltage_l2",
    "INSTANTANEOUS_VOLTAGE_L3": "voltage_l3",
    "INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE": "active_power_import_l1",
    "INSTANTANEOUS_ACTIVE_POWER_L2_POSITIVE": "active_power_import_l2",
    "INSTANTANEOUS_ACTIVE_POWER_L3_POSITIVE": "active_power_import_l3",
    "INSTANTANEOUS_ACTIVE_POWER_L1_NEGATIVE": "active_power_export_l1",
    "INSTANTANEOUS_ACTIVE_POWER_L2_NEGATIVE": "active_power_export_l2",
    "INSTANTANEOUS_ACTIVE_POWER_L3_NEGATIVE": "active_power_export_l3",
    "INSTANTANEOUS_REACTIVE_POWER_L1_POSITIVE": "reactive_power_import_l1",
    "INSTANTANEOUS_REACTIVE_POWER_L2_POSITIVE": "reactive_power_import_l2",
    "INSTANTANEOUS_REACTIVE_POWER_L3_POSITIVE": "reactive_power_import_l3",
    "INSTANTANEOUS_REACTIVE_POWER_L1_NEGATIVE": "reactive_power_export_l1",
    "INSTANTANEOUS_REACTIVE_POWER_L2_NEGATIVE": "reactive_power_export_l2",
    "INSTANTANEOUS_REACTIVE_POWER_L3_NEGATIVE": "reactive_power_export_l3",
    "INSTANTANEOUS_POWER_FACTOR_TOTAL": "power_factor",
    "INSTANTANEOUS_POWER_FACTOR_L1": "power_factor_l1",
    "INSTANTANEOUS_POWER_FACTOR_L2": "power_factor_l2",
    "INSTANTANEOUS_POWER_FACTOR_L3": "power_factor_l3",
    "FREQUENCY": "frequency",
    "EQUIPMENT_IDENTIFIER": "meter_id",
    "Q3D_EQUIPMENT_IDENTIFIER": "meter_id",
}
_TO_CANONICAL = {"kw": _KILO, "kvar": _KILO, "wh": 1 / _KILO, "varh": 1 / _KILO}


def dsmr_expected(exp, text):
    """dsmr-parser 1.11.2 output -> {canonical field: Decimal | str}.

    dsmr-parser turns the meter's local timestamp into UTC with the Europe/Amsterdam
    zone (not the telegram's S/W flag); meter_time is the meter's clock, so it is put back.
    """
    out = {}
    for k, v in exp.items():
        if k == "P1_MESSAGE_TIMESTAMP" and v.get("value"):
            utc = dt.datetime.fromisoformat(v["value"])
            local = utc.astimezone(_AMSTERDAM)
            out["meter_time"] = local.strftime("%Y-%m-%dT%H:%M:%S")
        name = _DSMR.get(k)
        if name is None or not isinstance(v, dict) or v.get("value") is None:
            continue
        if name == "meter_id":
            out[name] = _dsmr_text(v["value"])
            continue
        d = Decimal(repr(v["value"])) if not isinstance(v["value"], str) else Decimal(v["value"])
        unit = (v.get("unit") or "").lower()
        out[name] = d * _TO_CANONICAL.get(unit, 1)
    out.update(_mbus_expected(exp))
    return out


# dsmr-parser's M-Bus device readings -> the sub-meter's fields by device type (p1.py)
_MBUS_KINDS = {3: ("gas_volume", "gas_time"), 7: ("water_volume", "water_time"),
               4: ("heat_energy", "heat_time")}  # fmt: skip
_MBUS_READINGS = ("MBUS_METER_READING", "HOURLY_GAS_METER_READING", "GAS_METER_READING")


def _mbus_expected(exp):
    """The sub-meters' counts and times from dsmr-parser's MBUS_DEVICES: a reading with a
    unit, the first of a kind; its time back to the meter's clock (see dsmr_expected)."""
    out = {}
    for dev in exp.get("MBUS_DEVICES", []):
        kind = dev.get("MBUS_DEVICE_TYPE") or dev.get("DEVICE_TYPE") or {}
        kind = _MBUS_KINDS.get(int(kind.get("value") or 0))
        got = [dev[k] for k in _MBUS_READINGS if k in dev]
        if kind is None or not got or not got[0].get("unit") or kind[0] in out:
            continue
        out[kind[0]] = Decimal(repr(got[0]["value"]))
        utc = dt.datetime.fromisoformat(got[0]["datetime"])
        out[kind[1]] = utc.astimezone(_AMSTERDAM).strftime("%Y-%m-%dT%H:%M:%S")
    return out


def _dsmr_text(value):
    """DSMR prints octet strings as hex ("4B38..." is "K8..."); other meters print text."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return value
    return raw.decode() if raw and all(0x20 <= c < 0x7F for c in raw) else value


def cosem_tree(value):
    """Our A-XDR tree (bytes as "b:hex") in dlms-cosem 21.3.2's rendering: 6-byte OBIS
    codes as obis:a.b.c.d.e.f, printable byte strings as text, other bytes as 0x-hex."""
    if isinstance(value, list):
        return [cosem_tree(v) for v in value]
    if isinstance(value, str) and value.startswith("b:"):
        raw = bytes.fromhex(value[2:])
        if raw and all(0x20 <= c < 0x7F for c in raw):
            return raw.decode()
        if len(raw) == 6:
            return "obis:" + ".".join(str(c) for c in raw)
        return "0x" + raw.hex()
    return value


def corrupt_kind(frame):
    """The rejection kinds hanport may give a frame its source marks corrupt."""
    reason = frame["corrupt_reason"]
    if frame["framing"] == "hdlc" and bytes.fromhex(frame["hex"][2:4])[0] & 0xF0 != 0xA0:
        return ("noise",)  # read at the wrong parity: not even a type-3 frame
    if "FCS" in reason or "HCS" in reason or reason.startswith("CRC"):
        return ("checksum",)
    if reason.startswith("length field"):
        declared, actual = (int(x) for x in reason[len("length field ") :].split(" != "))
        # Shorter than declared: the stream ends inside it. Longer: the byte where the
        # closing flag should be decides between "length" and a failing FCS.
        # A header whose HCS fails (the HCS covers the length field) is rejected as soon
        # as it is in (framing.py, not when the stream ends): "checksum" before the stream ends.
        return ("truncated", "checksum") if actual < declared else ("length", "checksum")
    if "no 7E end" in reason:
        return ("length",)
    if "end-of-telegram" in reason:
        # Cut off (truncated), or binary bytes where P1 allows only ASCII (format).
        return ("truncated", "format")
    raise AssertionError(f"unknown corrupt_reason {reason!r}")
