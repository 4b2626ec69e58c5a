# The OBIS table: every register hanport names, declared once.
#
# A register is looked up by key(A, C, D, E). B (the channel; Kamstrup sends 1, others 0)
# and F (255 for "current value") do not change the meaning of what meters push, so they
# are left out, as amshan's group-C.D.E map does. One exception: an id 0-n:96.x with n >= 1
# is an M-Bus channel's, not the meter's, and keeps its code (normalize.store).
# Each row: A, C, D, E, field, unit.
#   field  canonical reading field (the public contract; README "Canonical reading")
#   unit   canonical unit. DLMS energy registers count Wh/varh (IEC 62056-6-2 units 30/32),
#          so a unit starting with "k" moves the decimal point 3 places from the meter's.
#          Home Assistant's device and state class follow from the unit (discovery).
# The order of the rows is the order of fields in a JSON reading.
#
# Kept flat (one tuple, names as literals) because every object costs heap on the device:
# the first version, with a tuple per row and names built by concatenation, took 15 KB of
# a 96 KB heap once imported; this one takes 9 KB (gc.mem_alloc() around the import).

from micropython import const

METER_TIME = "meter_time"
LIST_ID = "list_id"
METER_ID = "meter_id"
METER_MODEL = "meter_model"
MANUFACTURER = "meter_manufacturer"

# fmt: off
_TABLE = (
    0, 96, 1, 0, METER_ID, "",
    0, 96, 1, 1, METER_ID, "",          # DSMR P1 equipment identifier
    1, 0, 0, 0, METER_ID, "",           # P1 device id (Easymeter, Iskra IE)
    1, 0, 0, 5, METER_ID, "",           # Kamstrup 1.1.0.0.5
    0, 96, 1, 7, METER_MODEL, "",
    1, 96, 1, 1, METER_MODEL, "",       # Kamstrup 1.1.96.1.1
    0, 0, 0, 0, MANUFACTURER, "",       # never sent: holds the field's place in the order
    1, 0, 2, 129, LIST_ID, "",          # Aidon / Kaifa SE list version 1.1.0.2.129
    0, 1, 0, 0, METER_TIME, "",         # clock 0.0.1.0.0.255
    1, 1, 7, 0, "active_power_import", "W",
    1, 2, 7, 0, "active_power_export", "W",
    1, 3, 7, 0, "reactive_power_import", "var",
    1, 4, 7, 0, "reactive_power_export", "var",
    1, 21, 7, 0, "active_power_import_l1", "W",   # per phase: C + 20, 40, 60
    1, 41, 7, 0, "active_power_import_l2", "W",
    1, 61, 7, 0, "active_power_import_l3", "W",
    1, 22, 7, 0, "active_power_export_l1", "W",
    1, 42, 7, 0, "active_power_export_l2", "W",
    1, 62, 7, 0, "active_power_export_l3", "W",
    1, 23, 7, 0, "reactive_power_import_l1", "var",
    1, 43, 7, 0, "reactive_power_import_l2", "var",
    1, 63, 7, 0, "reactive_power_import_l3", "var",
    1, 24, 7, 0, "reactive_power_export_l1", "var",
    1, 44, 7, 0, "reactive_power_export_l2", "var",
    1, 64, 7, 0, "reactive_power_export_l3", "var",
    1, 31, 7, 0, "current_l1", "A",
    1, 51, 7, 0, "current_l2", "A",
    1, 71, 7, 0, "current_l3", "A",
    1, 32, 7, 0, "voltage_l1", "V",
    1, 52, 7, 0, "voltage_l2", "V",
    1, 72, 7, 0, "voltage_l3", "V",
    1, 13, 7, 0, "power_factor", "",
    1, 33, 7, 0, "power_factor_l1", "",
    1, 53, 7, 0, "power_factor_l2", "",
    1, 73, 7, 0, "power_factor_l3", "",
    1, 14, 7, 0, "frequency", "Hz",
    1, 1, 8, 0, "active_energy_import", "kWh",
    1, 2, 8, 0, "active_energy_export", "kWh",
    1, 3, 8, 0, "reactive_energy_import", "kvarh",
    1, 4, 8, 0, "reactive_energy_export", "kvarh",
    1, 1, 8, 1, "active_energy_import_t1", "kWh",
    1, 1, 8, 2, "active_energy_import_t2", "kWh",
    1, 1, 8, 3, "active_energy_import_t3", "kWh",
    1, 1, 8, 4, "active_energy_import_t4", "kWh",
    1, 2, 8, 1, "active_energy_export_t1", "kWh",
    1, 2, 8, 2, "active_energy_export_t2", "kWh",
    1, 2, 8, 3, "active_energy_export_t3", "kWh",
    1, 2, 8, 4, "active_energy_export_t4", "kWh",
    1, 21, 8, 0, "active_energy_import_l1", "kWh",
    1, 41, 8, 0, "active_energy_import_l2", "kWh",
    1, 61, 8, 0, "active_energy_import_l3", "kWh",
    1, 22, 8, 0, "active_energy_export_l1", "kWh",
    1, 42, 8, 0, "active_energy_export_l2", "kWh",
    1, 62, 8, 0, "active_energy_export_l3", "kWh",
)
# fmt: on


def key(a, c, d, e):
    """Table key of OBIS code A-B:C.D.E (B and F ignored). A small int on any port."""
    return (a & 0x3F) << 24 | c << 16 | d << 8 | e


BY_KEY = {}  # key -> field
UNIT = {}  # field -> canonical unit
ORDER = []  # fields in JSON order
for _i in range(0, len(_TABLE), 6):
    _name = _TABLE[_i + 4]
    BY_KEY[key(_TABLE[_i], _TABLE[_i + 1], _TABLE[_i + 2], _TABLE[_i + 3])] = _name
    if _name not in UNIT:
        UNIT[_name] = _TABLE[_i + 5]
        ORDER.append(_name)
del BY_KEY[0]
del _TABLE, _i, _name
# Registers a reading holds; those past it are counted (Normalizer.dropped), not read. The
# most in a real reading is 45 (a DSMR 5 telegram, ../shared/vectors); a 2 KB frame of new
# codes carries 195, whose dict and names once found no room at 96K (docs/reliability.md).
FIELDS_MAX = 64

# Bytes that text from a meter (an id, a list id, a time) is usually made of, none that
# JSON escapes: `not b.strip(PLAIN)` tells in C that b holds only these (~5 thousand
# instructions for 19 bytes on the 32-bit image, where a loop over its bytes, or max() and
# min(), took 15-17). Text with any other byte is looked at byte by byte, as before.
PLAIN = b"0123456789-:T_ABCDEFGHIJKLMNOPQRSUVWXYZabcdefghijklmnopqrstuvwxyz ./"

# List identifiers (the first text of a push) tell the maker where the frame carries none.
_MANUFACTURERS = const(
    (
        ("AIDON", "Aidon"),
        ("Kamstrup", "Kamstrup"),
        ("KFM", "Kaifa"),
        ("ISK", "Iskraemeco"),
    )
)


def manufacturer(list_id):
    for prefix, name in _MANUFACTURERS:
        if list_id.startswith(prefix):
            return name
    return None


def code(a, b, c, d, e):
    """Name for a register hanport has no field for: its code written A-B:C.D.E."""
    return "%d-%d:%d.%d.%d" % (a, b, c, d, e)


def energy_shift(name):
    """Decimal shift from the meter's Wh/varh to the field's canonical unit."""
    return -3 if UNIT.get(name, "").startswith("k") else 0  # no slice: slices allocate
