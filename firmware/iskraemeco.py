# Iskraemeco quirk: the AM550 and IE.5 lists of Slovenian and Croatian grids carry no OBIS
# codes; each value's meaning is its position, told apart by the list's length and, where
# two lists share a length, by the type of one member. Positions as amsreader-firmware
# reads them (src/decoder/src/IEC6205675.cpp, the lists its users sent from Elektro
# Ljubljana, Elektro Celje and Elektra Zabok; read for facts), checked on the captures of
# ../shared/vectors: tariff registers add up to their total, per-phase powers to the whole.
#
# Ids: the first value of most lists is the COSEM logical device name (0-0:42.0.0,
# "ISK" + the serial), the meter's id; the second, a shorter device id (0-0:96.1.2 or
# 96.1.3), keeps its code. Not read: the 15-minute list's id and unsigned8 (the serial
# alone, which would make meter_id change every 15 minutes, and a value no source names),
# the IE.5's time and date (the push's own date-time, sent again) and its last five values
# (no source names them). The lists that name no maker (the 15-minute list, the IE.5's
# 33 values) are known by their length (normalize.ANONYMOUS) and shape (positional()).
#
# Scalers: the push sends none. Voltage 0.1 V and current 0.01 A (uint16), power factor
# 0.001, power W and energy Wh, as the IE.5 reporter's grid company gave them.
#
# The tables are made in a function, in its locals, for the reason kaifa.py gives.

import obis


def _table():
    k = obis.key
    ldn = k(0, 96, 1, 0)  # meter_id
    power = (k(1, 1, 7, 0), k(1, 2, 7, 0), k(1, 3, 7, 0), k(1, 4, 7, 0))
    u = (k(1, 32, 7, 0), k(1, 52, 7, 0), k(1, 72, 7, 0))
    i = (k(1, 31, 7, 0), k(1, 51, 7, 0), k(1, 71, 7, 0))
    pin = (k(1, 21, 7, 0), k(1, 41, 7, 0), k(1, 61, 7, 0))  # active power import per phase
    pout = (k(1, 22, 7, 0), k(1, 42, 7, 0), k(1, 62, 7, 0))
    ein = (k(1, 1, 8, 0), k(1, 1, 8, 1), k(1, 1, 8, 2))  # total, tariff 1, tariff 2
    eout = (k(1, 2, 8, 0), k(1, 2, 8, 1), k(1, 2, 8, 2))
    id3 = (ldn, k(0, 96, 1, 2))
    id4 = (ldn, k(0, 96, 1, 3))
    lists = (
        # Ljubljana, every 5 s (id4 "16820005")
        id4 + power + u + i + pin + pout,
        # Ljubljana, every 15 min (id4 "16820006"): disconnect control state (an enum), the tariff
        id4 + (k(0, 96, 3, 10), k(0, 96, 14, 0)) + ein + eout + (k(1, 3, 8, 0), k(1, 4, 8, 0)),
        # Celje (id3 "UP_3f")
        id3 + u + i + power,
        # Ljubljana AM550 ED1.21, one phase: export tariffs only
        id3 + power + u[:1] + eout[1:],
        # Ljubljana AM550, no second id
        (ldn,) + power[:2] + ein + eout,
        # Ljubljana AM550 ED1.21, one phase, the powers of its phase
        id3 + power + u[:1] + i[:1] + pin[:1] + pout[:1],
        # Ljubljana, every 15 min: serial, unsigned8 (not read, above)
        (None, None) + ein[:1] + eout[:1],
        # IE.5 (Croatia): time, date; the reactive quadrants 5.8.0-8.8.0, power factor
        (ldn, None, None) + ein + eout
        + (k(1, 5, 8, 0), k(1, 6, 8, 0), k(1, 7, 8, 0), k(1, 8, 8, 0))
        + power[:2] + (k(1, 13, 7, 0),) + pin + pout + u + i
        + (None, None, None, None, None),
        # Austria (Kaernten Netz): after the meter number, the only value with a code
        # (0-6:25.9.0, finish()), the time and date (the push's own, sent again), the
        # energy registers in Wh and varh, the powers in W, and two empty octet strings
        (None, None) + ein[:1] + eout[:1] + (k(1, 3, 8, 0), k(1, 4, 8, 0)) + power[:2]
        + (None, None),
    )  # fmt: skip
    scalers = {k(1, 13, 7, 0): -3, u[0]: -1, u[1]: -1, u[2]: -1, i[0]: -2, i[1]: -2, i[2]: -2}
    return lists, scalers


POSITIONAL, table = _table()


def positional(v):
    """The OBIS key of each position of list v (None: not read), or None for a list
    hanport does not know."""
    n = len(v)
    text = n > 1 and isinstance(v[1], (bytes, str))
    if n == 18 and text:
        return POSITIONAL[0]
    if n == 12 and text:
        # Ljubljana's fourth value is the tariff (an octet string), Celje's a voltage
        return POSITIONAL[1] if isinstance(v[3], bytes) else POSITIONAL[2]
    if n == 9:
        return POSITIONAL[3] if text else POSITIONAL[4]
    if n == 10 and _octets(v[0], 4) and _octets(v[1], 5) and _octets(v[8], 0):
        return POSITIONAL[8]
    if n == 10 and text and v[1][:3] in (b"ISK", "ISK"):
        # amsreader also reads a 10-value list of tariff registers whose second id is
        # 96.1.3: no capture shows it, so it is told apart and not read
        return POSITIONAL[5]
    if n == 4 and _serial(v[0]) and not text:
        return POSITIONAL[6]
    if n == 33 and isinstance(v[0], (bytes, str)):
        return POSITIONAL[7]
    return None


def _octets(v, n):
    return isinstance(v, bytes) and len(v) == n


def finish(reading):
    """The Austrian list names one value with a code, 0-6:25.9.0: the meter number, which
    amsreader-firmware reads as the meter's id (its users' meters show that number)."""
    v = reading.pop("0-6:25.9.0", None)
    if isinstance(v, str):
        reading[obis.METER_ID] = v


def _serial(v):
    # 8 digits, as the 15-minute list sends it: that list is known by its shape alone
    return isinstance(v, bytes) and len(v) == 8 and v.isdigit()


def scaler(key, reading):
    return table.get(key, 0)
