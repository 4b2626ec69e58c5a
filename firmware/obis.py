# The OBIS table: every register hanport names, declared once.
#
# A register is looked up by key(A, C, D, E). B (the channel; Kamstrup sends 1, others 0)
# and F (255 for "current value") do not change the meaning of what meters push, so they
# are left out, as amshan's group-C.D.E map does. Rows:
#   name   canonical reading field (the public contract; README "Canonical reading")
#   unit   canonical unit. DLMS energy registers count Wh/varh (IEC 62056-6-2 units 30/32),
#          so a unit starting with "k" moves the decimal point 3 places from the meter's.
#   ha     Home Assistant (device_class, state_class) for discovery; "" where none fits.
# The order of the rows is the order of fields in a JSON reading.

from micropython import const

# Field names of the canonical reading that are not registers of this table.
METER_TIME = "meter_time"
LIST_ID = "list_id"
METER_ID = "meter_id"
METER_MODEL = "meter_model"
MANUFACTURER = "meter_manufacturer"

_M = "measurement"
_T = "total_increasing"


def key(a, c, d, e):
    """Table key of OBIS code A-B:C.D.E (B and F ignored). A small int on any port."""
    return (a & 0x3F) << 24 | c << 16 | d << 8 | e


def _phases(a_c, rest, name, unit, ha):
    # Per-phase registers: C + 20 (L1), + 40 (L2), + 60 (L3) (IEC 62056-6-1 table 3).
    rows = [(key(1, a_c, rest[0], rest[1]), name, unit, ha)]
    for i in range(1, 4):
        rows.append((key(1, a_c + 20 * i, rest[0], rest[1]), name + "_l" + str(i), unit, ha))
    return rows


_POWER = ("power", _M)
_REACTIVE = ("reactive_power", _M)
_ENERGY = ("energy", _T)
_REACTIVE_ENERGY = ("", _T)  # HA has no device class for kvarh

ROWS = [
    (key(1, 0, 2, 129), LIST_ID, "", ("", "")),  # Aidon/Kaifa SE list version 1.1.0.2.129
    (key(0, 96, 1, 0), METER_ID, "", ("", "")),
    (key(0, 96, 1, 1), METER_ID, "", ("", "")),  # DSMR P1 equipment identifier
    (key(1, 0, 0, 0), METER_ID, "", ("", "")),  # P1 device id (Easymeter, Iskra IE)
    (key(1, 0, 0, 5), METER_ID, "", ("", "")),  # Kamstrup: 1.1.0.0.5
    (key(0, 96, 1, 7), METER_MODEL, "", ("", "")),
    (key(1, 96, 1, 1), METER_MODEL, "", ("", "")),  # Kamstrup: 1.1.96.1.1
    (key(0, 1, 0, 0), METER_TIME, "", ("", "")),  # clock object 0.0.1.0.0.255
]
ROWS += _phases(1, (7, 0), "active_power_import", "W", _POWER)
ROWS += _phases(2, (7, 0), "active_power_export", "W", _POWER)
ROWS += _phases(3, (7, 0), "reactive_power_import", "var", _REACTIVE)
ROWS += _phases(4, (7, 0), "reactive_power_export", "var", _REACTIVE)
ROWS += [
    (key(1, 31, 7, 0), "current_l1", "A", ("current", _M)),
    (key(1, 51, 7, 0), "current_l2", "A", ("current", _M)),
    (key(1, 71, 7, 0), "current_l3", "A", ("current", _M)),
    (key(1, 32, 7, 0), "voltage_l1", "V", ("voltage", _M)),
    (key(1, 52, 7, 0), "voltage_l2", "V", ("voltage", _M)),
    (key(1, 72, 7, 0), "voltage_l3", "V", ("voltage", _M)),
    (key(1, 14, 7, 0), "frequency", "Hz", ("frequency", _M)),
]
ROWS += _phases(13, (7, 0), "power_factor", "", ("power_factor", _M))
ROWS += _phases(1, (8, 0), "active_energy_import", "kWh", _ENERGY)
ROWS += _phases(2, (8, 0), "active_energy_export", "kWh", _ENERGY)
ROWS += _phases(3, (8, 0), "reactive_energy_import", "kvarh", _REACTIVE_ENERGY)
ROWS += _phases(4, (8, 0), "reactive_energy_export", "kvarh", _REACTIVE_ENERGY)
for _t in (1, 2, 3, 4):
    ROWS.append((key(1, 1, 8, _t), "active_energy_import_t" + str(_t), "kWh", _ENERGY))
    ROWS.append((key(1, 2, 8, _t), "active_energy_export_t" + str(_t), "kWh", _ENERGY))

BY_KEY = {}
UNIT = {}
for _row in ROWS:
    BY_KEY[_row[0]] = _row[1]
    UNIT[_row[1]] = _row[2]
ORDER = [METER_ID, METER_MODEL, MANUFACTURER, LIST_ID, METER_TIME]
for _row in ROWS:
    if _row[1] not in ORDER:
        ORDER.append(_row[1])

# The tail of the table is only for Home Assistant discovery; firmware builds without
# discovery can drop ROWS after start-up (del obis.ROWS) to give back its RAM.
HA = const(3)

# List identifiers (the first text of a push) tell the maker where the frame carries none.
MANUFACTURERS = (
    ("AIDON", "Aidon"),
    ("Kamstrup", "Kamstrup"),
    ("KFM", "Kaifa"),
    ("ISK", "Iskraemeco"),
)


def manufacturer(list_id):
    for prefix, name in MANUFACTURERS:
        if list_id.startswith(prefix):
            return name
    return None


def code(a, b, c, d, e):
    """Name for a register hanport has no field for: its code written A-B:C.D.E."""
    return "%d-%d:%d.%d.%d" % (a, b, c, d, e)


def energy_shift(name):
    """Decimal shift from the meter's Wh/varh to the field's canonical unit."""
    return -3 if UNIT.get(name, "")[:1] == "k" else 0
