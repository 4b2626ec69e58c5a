# Home Assistant MQTT discovery: one retained config message per sensor, for each field the
# meter sends that the destination's share level allows (issue 3, "Home Assistant discovery").
#
# Schema choices, from Home Assistant's documentation (developers.home-assistant.io
# docs/core/entity/sensor.md, "Available device classes"; home-assistant.io
# integrations/sensor.mqtt):
# - device_class and unit from the field's canonical unit (obis.UNIT): W power, var
#   reactive_power, A current, V voltage, Hz frequency, kWh energy, kvarh reactive_energy
#   (added in mid-2025, home-assistant/architecture#724; an older Home Assistant rejects
#   just the two reactive energy sensors).
#   power_factor takes "%" or no unit; ours is a ratio 0..1, so no unit.
# - state_class measurement, and total_increasing for the energy registers: the Energy
#   dashboard takes device_class energy with total or total_increasing, and a meter swap
#   (a lower count) then reads as a new cycle instead of a negative consumption.
# - Energy sensors read <base>/energy, the retained hourly message every destination with
#   energy in its share gets (destination.py): Home Assistant has the counts at once after
#   a restart, instead of an hour later.
# - value_template `{{ value_json.<field> | default('') }}`: List 1 messages do not carry
#   List 2 fields, and Home Assistant ignores an empty state for a sensor with a state
#   class (mqtt/sensor.py, "Ignore empty state"), keeping the last value without logging a
#   template warning per message.
# - default_entity_id "sensor.<node>_<field>": object_id was deprecated in 2025.10 and is
#   ignored since 2026.4 (home-assistant/core#164460); it stays for the older versions.
# - unique_id from the meter id; where the share level withholds the id, from a hash of it
#   with a salt, so neither topics nor payloads carry the id. Meter ids have few digits
#   beyond a maker prefix: pass a per-dongle secret as id_salt (the default, node_id, is
#   known to the broker) or the hash can be reversed by trying every id.

import json
from binascii import hexlify
from hashlib import sha256

import obis
from reading import put
from share import is_energy

HA_STATUS = "homeassistant/status"  # Home Assistant's birth message: "online" after a start
PREFIX = "homeassistant"
_COMPACT = (",", ":")


def _classes(field):
    """(device_class, state_class, unit) for a field Home Assistant can chart, else None."""
    unit = obis.UNIT.get(field)
    if unit == "kWh":
        return "energy", "total_increasing", unit
    if unit == "kvarh":
        return "reactive_energy", "total_increasing", unit
    for u, cls in (("W", "power"), ("var", "reactive_power"), ("A", "current"), ("V", "voltage"),
                   ("Hz", "frequency")):  # fmt: skip
        if unit == u:
            return cls, "measurement", unit
    if field[:12] == "power_factor":
        return "power_factor", "measurement", None
    return None  # text fields (ids, time) and codes without a known unit


def _slug(s, keep="_"):
    """s with every character but ASCII letters, digits and those of keep turned into "_"."""
    out = []
    for ch in s:
        ok = "a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in keep
        out.append(ch if ok else "_")
    return "".join(out)


def _title(field):
    """ "active_power_import_l1" -> "Active power import L1"."""
    words = field.split("_")
    for i, w in enumerate(words):
        if len(w) == 2 and w[0] in "lt" and "0" <= w[1] <= "9":
            words[i] = w.upper()  # phase L1..L3, tariff T1..T4
    s = " ".join(words)
    return s[0].upper() + s[1:]


def device_key(meter_id, withhold, salt):
    """The id part of unique ids: the meter id; its salted hash when withheld; the salt
    (node_id) when the meter sends no id."""
    if not meter_id:
        return _slug(salt).lower()
    if withhold:
        return "h" + hexlify(sha256((salt + "\n" + meter_id).encode()).digest()[:8]).decode()
    return _slug(meter_id).lower()


def iter_messages(buf, base, reading_fields, share, meter_id, manufacturer, model, node_id,
                  id_salt=None):  # fmt: skip
    """(topic, n) for each discovery config, its JSON written into buf[:n] (overwritten by
    the next): a full set is ~15 KB of text, too much to hold at once on the dongle, and
    one config built as a dict and dumped took ~1 KB in pieces of up to 440 B, which two
    destinations with discovery did not find at -X heapsize=116K (unix port). Written
    piece by piece, nothing bigger than a line of it is allocated. Publish each retained
    (QoS 1) before taking the next."""
    node = _slug(node_id, "-")  # discovery topics: [a-zA-Z0-9_-] only
    ent = _slug(node_id).lower()  # entity ids: lower case, "_"
    key = "hanport_" + device_key(meter_id, share.withholds_id, id_salt or node_id)
    device = {"identifiers": [key], "name": node_id}
    if manufacturer and share.allows(obis.MANUFACTURER):
        device["manufacturer"] = manufacturer
    if model and share.allows(obis.METER_MODEL):
        device["model"] = model
    if meter_id and not share.withholds_id:
        device["serial_number"] = meter_id
    # The same for every sensor of the device, made once.
    tail = (
        ',"availability_topic":%s,"payload_available":"online","payload_not_available":'
        '"offline","device":%s,"origin":{"name":"hanport"}'
        % (json.dumps(base + "/status"), json.dumps(device, separators=_COMPACT))
    )
    for field in obis.ORDER:
        if field not in reading_fields or not share.allows(field):
            continue
        classes = _classes(field)
        if classes is None:
            continue
        oid = ent + "_" + field
        topic = base + ("/energy" if is_energy(field) else "/reading")
        n = put(buf, 0, '{"name":"%s","unique_id":"%s_%s"' % (_title(field), key, field))
        n = put(buf, n, ',"object_id":"%s","default_entity_id":"sensor.%s"' % (oid, oid))
        n = put(buf, n, ',"state_topic":' + json.dumps(topic))
        n = put(buf, n, ',"value_template":"{{ value_json.%s | default(\'\') }}"' % field)
        n = put(buf, n, tail)
        n = put(buf, n, ',"device_class":"%s","state_class":"%s"' % (classes[0], classes[1]))
        if classes[2]:
            n = put(buf, n, ',"unit_of_measurement":"%s"' % classes[2])
        n = put(buf, n, "}")
        yield "%s/sensor/%s/%s/config" % (PREFIX, node, field), n


def messages(base, reading_fields, share, meter_id, manufacturer, model, node_id, id_salt=None):
    """Every discovery config as a list of (topic, payload text), for tests and tools."""
    buf = bytearray(2048)
    out = []
    for topic, n in iter_messages(
        buf, base, reading_fields, share, meter_id, manufacturer, model, node_id, id_salt
    ):
        out.append((topic, str(buf[:n], "utf-8")))
    return out
