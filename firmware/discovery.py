# Home Assistant MQTT discovery: one retained config message per sensor, for each field the
# meter sends that the destination's share level allows (README, "Home Assistant"),
# the dongle's diagnostics from its stats, and the removal of what it announced before and
# no longer does. Loaded only while a round is sent (destination.py _flush).
#
# Schema choices, from Home Assistant's documentation (developers.home-assistant.io
# docs/core/entity/sensor.md, "Available device classes"; home-assistant.io
# integrations/sensor.mqtt, binary_sensor.mqtt):
# - One device per destination: node <hostname>_<destination name>, in every topic, unique
#   id and device identifier. Two destinations on one broker (full and live, say) announced
#   one node and overwrote each other's configs (on real Home Assistant, which entity
#   landed on which device, and which state topic a power sensor read, depended on the
#   order of arrival);
#   the hostname in it keeps two dongles on one broker apart too. The validator refuses two
#   destination names that would still give the same entity ids (config.py).
# - device_class and unit from the field's canonical unit (obis.UNIT): W power, var
#   reactive_power, A current, V voltage, Hz frequency, kWh energy; a P1 sub-meter's
#   gas_volume gas, water_volume water (m³), heat_energy energy (GJ), total_increasing.
#   kvarh: unit and state class, no device class. reactive_energy came in 2025.7
#   (home-assistant/architecture#724); every older Home Assistant rejects the whole config
#   ("expected SensorDeviceClass"), and without a device class any unit is taken by every
#   version (seen on 2024.1.6 and 2025.4.4).
#   power_factor takes "%" or no unit; ours is a ratio 0..1, so no unit.
# - state_class measurement, and total_increasing for the energy registers: the Energy
#   dashboard takes device_class energy with total or total_increasing, and a meter swap
#   (a lower count) then reads as a new cycle instead of a negative consumption.
# - Energy sensors read <base>/energy, the retained hourly message every destination with
#   energy in its share gets (destination.py): Home Assistant has the counts at once after
#   a restart, instead of an hour later. Active energy import and export read
#   <base>/energy_now instead where the destination gets it (energynow.py: the registers
#   counted on with the power), so each hour's kWh lands in that hour's statistics.
# - expire_after: a state goes "unavailable" when no message came on its topic for three
#   of its periods (Home Assistant restarts the timer on each message on the topic, before
#   the template): readings 3 x 10 s (List 2 and P1 push at least every 10 s), a live share
#   3 x 2 x interval (share.py may hold a reading back one more interval), the hourly
#   energy 2 h (one hour missed). A silent meter then shows, instead of its last value.
# - value_template `{{ value_json.<field> | default('') }}`: List 1 messages do not carry
#   List 2 fields, and Home Assistant ignores an empty state for a sensor with a state
#   class (mqtt/sensor.py, "Ignore empty state"), keeping the last value without logging a
#   template warning per message.
# - default_entity_id "sensor.<node>_<field>": object_id was deprecated in 2025.10 and is
#   ignored since 2026.4 (home-assistant/core#164460); it stays for the older versions.
# - unique_id from the meter id; where the share level withholds the id, from a hash of it
#   with the dongle's secret salt, so neither topics nor payloads carry the id (meter ids
#   have few digits beyond a maker prefix: a hash with a known salt is reversed by trying
#   every id). A meter that sends no id: the node alone (never the salt).
# - The device: name "<hostname> <destination>", identifiers, the maker and model where the
#   share allows them; no serial_number (2024.2+; see iter_messages).
# - Diagnostics (entity_category diagnostic) read <base>/stats, which every destination
#   gets: the counters of the README's troubleshooting table, "meter silent", and for a
#   "full" share how many of the other destinations are down (stats "others").
#
# What was announced is kept in <state dir>discovery-<destination>.json (store.save_json,
# the one atomic write): node, device key, and the object ids by component. A round first
# sends an empty retained config (Home Assistant's "remove") for each recorded one under
# another node or device key (hostname, meter or share changed), or that the share no
# longer allows; then the configs. Without a record, the configs an older hanport sent
# under homeassistant/sensor/<hostname>/<field> are removed once.

import json
from binascii import hexlify
from hashlib import sha256

from micropython import const

import obis
from reading import put
from share import is_energy

_PREFIX = const("homeassistant")
_COMPACT = const((",", ":"))
# const(): folded in by the compiler, no global and no interned name (each name a module
# defines stays in the heap after it is dropped: 1.9 KB of them for this one).
_READING_S = const(10)  # the longest push period of a meter's List 1/2 or P1 telegram
_ENERGY_S = const(3600)  # the hourly message
_RECORD_MAX = const(100)  # object ids per component in a record: 50 fields and diagnostics fit
_B = const("binary_sensor")
_S = const("sensor")
_TOTAL = const("total_increasing")
_MEASURE = const("measurement")
# Diagnostics, one line each: component (b binary_sensor, s sensor), object id (its name
# too), the stats key it reads (dongle.stats(); "=i": the expression _SPECIAL[i]), unit,
# device class, state class (t total_increasing, m measurement); "-": none. The stats keys
# are those of the README's troubleshooting table. One text, not a tuple per row: the
# table then costs ~1 KB while discovery is loaded instead of ~4 KB.
_DIAG = """
b meter_silent =0 - problem -
s last_frame_age last_frame_age_s s duration m
s bytes_received bytes_received B data_size t
s noise_bytes noise_bytes B data_size t
s frames =1 - - t
s readings readings - - t
s rejected =2 - - t
s rejected_checksum rejected.checksum - - t
s rejected_length rejected.length - - t
s rejected_encrypted rejected.encrypted - - t
s rejected_unsupported rejected.unsupported - - t
s rejected_memory rejected.memory - - t
s line line - - -
b line_locked =3 - - -
s free_heap free_heap B data_size m
s uptime uptime_s s duration t
s published destination.published - - t
s queued destination.queued - - m
s dropped destination.dropped - - t
s failures destination.failures - - t
s last_error destination.last_error - - -
s others_down =4 - - m"""
# meter_silent: no frame for 30 s (meters push every 1-10 s).
_SPECIAL = const(
    (
        "'OFF' if value_json.last_frame_age_s is number and value_json.last_frame_age_s < 30 else "
        "'ON'",
        "value_json.frames.hdlc + value_json.frames.p1 + value_json.frames.mbus",
        "value_json.rejected.values() | sum",
        "'ON' if value_json.line_locked else 'OFF'",
        # Only a "full" destination's stats carry the others (destination.counters()).
        "value_json.destination.others | rejectattr('connected') | list | count",
    )
)
_OTHERS_ATTRS = const("{{ {'others': value_json.destination.others} | tojson }}")
# The capacity tariff's sensors, read from <base>/tariff (README, "The tariff message") by
# a destination whose share gets it (share.py): object id after "tariff_", the message's
# key ("=N": the N-th peak), unit, device class. No state class: these are not meters'
# counts (a step, a mean, the month's largest hours), and Home Assistant's long-term
# statistics of a total would read each new hour's fall to 0 as a meter reset. A null
# (allowed_kwh at the ladder's top) becomes "None", which Home Assistant shows as unknown.
_TARIFF = """
step step - -
capacity capacity_kw kW power
peak_1 =0 kWh energy
peak_2 =1 kWh energy
peak_3 =2 kWh energy
hour hour_kwh kWh energy
projection projected_kwh kWh energy
allowed allowed_kwh kWh energy"""


def _classes(field):
    """(device_class, state_class, unit) for a field Home Assistant can chart, else None."""
    unit = obis.UNIT.get(field)
    if unit == "kWh":
        return "energy", _TOTAL, unit
    if unit == "kvarh":
        return None, _TOTAL, unit  # no reactive_energy before 2025.7: see the top
    for u, cls in (("W", "power"), ("var", "reactive_power"), ("A", "current"), ("V", "voltage"),
                   ("Hz", "frequency")):  # fmt: skip
        if unit == u:
            return cls, _MEASURE, unit
    if field[:12] == "power_factor":
        return "power_factor", _MEASURE, None
    if is_energy(field) and unit != "time":
        # A P1 sub-meter's count (p1.py): gas_volume and water_volume in m³ (Home
        # Assistant's gas and water), heat_energy in GJ (energy). The class from the name,
        # not the unit: no unit name of theirs is held here (qstrs a HAN dongle would keep).
        words = field.split("_")
        return words[1] if words[1] == "energy" else words[0], _TOTAL, unit
    return None  # text fields (ids, time) and codes without a known unit


def _slug(s, keep=b"_"):
    """s with every character but ASCII letters, digits and the bytes of keep turned into
    "_". Byte by byte: a character taken from a str is interned, for good (reading.py)."""
    out = bytearray()
    for c in s.encode():
        if 0x80 <= c < 0xC0:
            continue  # the rest of a character whose first byte became "_"
        ok = 0x61 <= c | 0x20 <= 0x7A or 0x30 <= c <= 0x39 or c in keep
        out.append(c if ok else 0x5F)
    return out.decode()


def _title(field):
    """ "active_power_import_l1" -> "Active power import L1"."""
    words = field.split("_")
    for i, w in enumerate(words):
        if len(w) == 2 and w[:1] in ("l", "t") and w[1:].isdigit():  # slices: reading.py
            words[i] = w.upper()  # phase L1..L3, tariff T1..T4
    s = " ".join(words)
    return s[:1].upper() + s[1:]


def node(hostname, name):
    """The discovery node of a destination: <hostname>_<name> ([a-zA-Z0-9_-], as Home
    Assistant's discovery topics take; config.py lets no other character in either)."""
    return _slug(hostname, b"-") + "_" + _slug(name, b"-")


def topic(component, node_id, object_id):
    return "%s/%s/%s/%s/config" % (_PREFIX, component, node_id, object_id)


def device_key(meter_id, withhold, salt):
    """The meter part of unique ids: the meter id; its salted hash when withheld; "" when
    the meter sends no id (the node alone then names the device)."""
    if not meter_id:
        return ""
    if withhold:
        return "h" + hexlify(sha256((salt + "\n" + meter_id).encode()).digest()[:8]).decode()
    return _slug(meter_id).lower()


def diagnostics(share):
    """(component, object id, template expression, unit, device class, state class) of each
    diagnostic this destination announces; None for none. One row at a time."""
    i = 0
    while i >= 0:
        j = _DIAG.find("\n", i + 1)
        row = [None if x == "-" else x for x in _DIAG[i + 1 : j if j > 0 else None].split(" ")]
        i = j
        if row[1] == "others_down" and share.level != "full":
            continue
        row[0] = _B if row[0] == "b" else _S
        row[1] = "stats_" + row[1]
        path = row[2]
        row[2] = (
            _SPECIAL[int(path[1:])] if path[:1] == "=" else "value_json.%s | default(0)" % (path)
        )
        row[5] = _TOTAL if row[5] == "t" else _MEASURE if row[5] == "m" else None
        yield row


def tariffs(share):
    """Rows as diagnostics() gives them, of the tariff sensors this destination announces."""
    if not share.tariff:
        return
    for line in _TARIFF.split("\n")[1:]:
        row = [None if x == "-" else x for x in line.split(" ")]
        row[0], row[1], key = _S, "tariff_" + row[0], row[1]
        if key[:1] == "=":
            p = "value_json.peaks[%s]" % key[1:]
            key = "%s.kwh if value_json.peaks | count > %s else None" % (p, key[1:])
        else:
            key = "value_json." + key
        yield [row[0], row[1], key, row[2], row[3], None]


def wanted(component, object_id, share):
    """Would this destination announce object_id (under its current node and key) now, or
    later when the meter sends the field? False: a recorded config to remove."""
    if component == _S and object_id in obis.UNIT:
        return share.allows(object_id) and _classes(object_id) is not None
    if object_id[:7] == "tariff_":
        return component == _S and share.tariff and _TARIFF.find("\n%s " % object_id[7:]) >= 0
    if object_id[:6] != "stats_" or object_id == "stats_others_down" and share.level != "full":
        return False
    return _DIAG.find("\n%s %s " % (component[:1], object_id[6:])) >= 0


def iter_messages(buf, base, reading_fields, share, meter_id, manufacturer, model, hostname,
                  name, id_salt=None, stats_s=60, counted=()):  # fmt: skip
    """(component, object id, n) for each discovery config, its JSON written into buf[:n]
    (overwritten by the next): a full set is ~25 KB of text, too much to hold at once on the
    dongle, and one config built as a dict and dumped took ~1 KB in pieces of up to 440 B,
    which two destinations with discovery did not find at -X heapsize=116K (unix port).
    Written piece by piece, nothing bigger than a line of it is allocated. Publish each
    retained (QoS 1) before taking the next. stats_s: the destination's stats_interval;
    counted: the energy fields read from <base>/energy_now (energynow.py), not the
    hourly registers of <base>/energy."""
    nid = node(hostname, name)
    ent = nid.lower().replace("-", "_")  # entity ids: lower case, "_"
    key = device_key(meter_id, share.withholds_id, id_salt or hostname)
    ident = "hanport_" + (key + "_" if key else "") + nid
    device = {"identifiers": [ident], "name": hostname + " " + name}
    if manufacturer and share.allows(obis.MANUFACTURER):
        device["manufacturer"] = manufacturer
    if model and share.allows(obis.METER_MODEL):
        device["model"] = model
    # No "serial_number": Home Assistant before 2024.2 refuses the whole config for it
    # ("extra keys not allowed @ data['device']['serial_number']", test_ha_real on 2024.1);
    # a shared meter id is in the device's identifiers already.
    # The same for every entity of the device, made once.
    tail = (
        ',"availability_topic":%s,"payload_available":"online","payload_not_available":'
        '"offline","device":%s,"origin":{"name":"hanport"}'
        % (json.dumps(base + "/status"), json.dumps(device, separators=_COMPACT))
    )
    # Expiry (see the top): the readings' 3 x 10 s, a live share's 3 x 2 x interval.
    live = 6 * share.interval_ms // 1000 if share.level == "live" else 3 * _READING_S
    for field in obis.ORDER:
        if field not in reading_fields or not share.allows(field):
            continue
        r = _classes(field)
        if r is None:
            continue
        energy = is_energy(field)
        where = "/energy_now" if field in counted else "/energy" if energy else "/reading"
        r = (_S, field, "value_json.%s | default('')" % field, r[2], r[0], r[1], where,
             2 * _ENERGY_S if energy else live)  # fmt: skip
        yield _S, field, config(buf, r, ident, ent, base, tail)
    # The tariff: at least once an hour; two missed, and it shows as unavailable.
    for r in tariffs(share):
        yield r[0], r[1], config(buf, r + ["/tariff", 2 * _ENERGY_S], ident, ent, base, tail)
    # Stats come every stats_s: three missed, and the dongle's counters show stale too.
    for r in diagnostics(share):
        yield r[0], r[1], config(buf, r + ["/stats", 3 * stats_s], ident, ent, base, tail)


def config(b, r, i, e, base, tail):
    """One config into b; its end. r: component, object id, template expression, unit,
    device class, state class, topic under base, expire_after (diagnostics(), extended);
    i, e: the device's id and entity id prefix."""
    o = r[1]
    d = o[:6] == "stats_"  # a diagnostic: named without "stats_"
    oid = e + "_" + o
    n = put(b, 0, '{"name":"%s","unique_id":"%s_%s"' % (_title(o[6:] if d else o), i, o))
    n = put(b, n, ',"object_id":"%s","default_entity_id":"%s.%s"' % (oid, r[0], oid))
    n = put(b, n, ',"state_topic":' + json.dumps(base + r[6]))
    n = put(b, n, ',"value_template":' + json.dumps("{{ " + r[2] + " }}"))
    n = put(b, n, tail)
    if r[4]:
        n = put(b, n, ',"device_class":"%s"' % r[4])
    if r[5]:
        n = put(b, n, ',"state_class":"%s"' % r[5])
    if r[3]:
        n = put(b, n, ',"unit_of_measurement":"%s"' % r[3])
    if o == "stats_others_down":
        n = put(b, n, ',"json_attributes_topic":%s,"json_attributes_template":%s' % (
            json.dumps(base + r[6]), json.dumps(_OTHERS_ATTRS)))  # fmt: skip
    if d:
        n = put(b, n, ',"entity_category":"diagnostic"')
    return put(b, n, ',"expire_after":%d}' % r[7])


# -- what was announced, and its removal ------------------------------------------------------


def _removals(record, share, nid, key, hostname, on):
    """The topics of the configs to remove before this round, one at a time: every recorded
    one under another node or key, or that the share (or discovery) no longer has. record:
    the one loaded (a dict, as load_json gives it), or None when none was ever written:
    then the configs of a firmware before December 2026, one node per dongle, for every
    field the share allows."""
    if record is None:
        if on:
            old = _slug(hostname, b"-")
            for f in obis.ORDER:
                if share.allows(f) and _classes(f) is not None:
                    yield topic(_S, old, f)
        return
    old = record.get("node")
    if not isinstance(old, str):
        return
    same = on and old == nid and record.get("key") == key
    for component in (_S, _B):
        for object_id in _ids(record, component):
            if not same or not wanted(component, object_id, share):
                yield topic(component, old, object_id)


def _ids(record, component):
    ids = record.get(component)
    if not isinstance(ids, list):
        return ()
    return [i for i in ids[:_RECORD_MAX] if isinstance(i, str)]


def _record(record, fields, share, nid, key):
    """The record of this round, written before its configs go out (a cut between leaves
    more recorded than sent, never less): what it sends, and what the record held under
    the same node and key that the share still allows (a field of List 3 not yet seen since
    boot keeps its config in Home Assistant)."""
    out = {"node": nid, "key": key}
    same = record is not None and record.get("node") == nid and record.get("key") == key
    for component in (_S, _B):
        ids = []
        if component == _S:
            for f in obis.ORDER:
                if f in fields and share.allows(f) and _classes(f) is not None:
                    ids.append(f)
        for row in diagnostics(share):
            if row[0] == component:
                ids.append(row[1])
        if component == _S:
            for row in tariffs(share):
                ids.append(row[1])
        if same:
            for object_id in _ids(record, component):
                if object_id not in ids and wanted(component, object_id, share):
                    ids.append(object_id)
        ids.sort()
        out[component] = ids[:_RECORD_MAX]
    return out


async def send(client, buf, dest, load_json, save_json):
    """One discovery round of dest (a destination.Destination) over client: removals, the
    record, the configs. load_json, save_json: store's, or None for no record (then
    nothing is ever removed). Raises what client.publish raises; OverflowError for a
    config longer than buf (a meter's odd strings)."""
    share = dest.share
    hostname, name = dest.hostname, dest.name
    meter = dest._meter or (None, None, None)
    on = dest.cfg["discovery"]
    nid = node(hostname, name)
    key = device_key(meter[0], share.withholds_id, dest.salt or hostname)
    path = dest.state_dir + "discovery-" + name + ".json"
    if load_json is not None:
        record = load_json(path) or None
        if record is not None and not isinstance(record, dict):
            record = {}
        for component in (_S, _B):  # cut to _RECORD_MAX by _ids(); what is past it, counted
            ids = record.get(component) if record else None
            if isinstance(ids, list) and len(ids) > _RECORD_MAX:
                dest.discovery_dropped += len(ids) - _RECORD_MAX
        for gone in _removals(record, share, nid, key, hostname, on):
            await client.publish(gone, b"", retain=True, qos=1)
        if not on:
            if record:
                import os

                os.remove(path)  # every config withdrawn: nothing to remember
            return
        new = _record(record, dest._fields, share, nid, key)
        if new != record:  # flash is written only when what Home Assistant has changed
            try:
                save_json(path, new)
            except OSError as e:  # a full flash: logged; the configs still go out
                print("hanport: destination", name, "discovery record not written:", e)
        del record, new  # ~3 KB of names for a full share: not held while the configs go
    if not on:
        return
    every = dest.cfg.get("stats_interval", 60)
    # From boot on, not only once energynow counts (at the first register): a config that
    # switched from <base>/energy to it an hour after each boot showed the last register,
    # below the count Home Assistant had (a dip).
    # dest.energynow is None: the dongle counts nothing for it (dongle.py). The rule of
    # energynow.fields(), held here too: importing energynow would load it into the heap
    # during the round, which it leaves for the round's room.
    counted = [f for f in ("active_energy_import", "active_energy_export")
               if dest.energynow is not None and share.allows(f)
               and share.allows(f.replace("energy", "power"))]  # fmt: skip
    configs = iter_messages(buf, dest.base, dest._fields, share, meter[0], meter[1], meter[2],
                            hostname, name, dest.salt, every, counted)  # fmt: skip
    while True:
        # buf is every destination's (destination.py acquire()): taken for one config at a
        # time, so the others' live readings go out between them.
        await dest.acquire(client)
        try:
            try:
                component, object_id, n = next(configs)
            except StopIteration:
                return
            config = memoryview(buf)[:n]
            await client.publish(topic(component, nid, object_id), config, True, 1, dest.release)
        finally:
            dest.release()
