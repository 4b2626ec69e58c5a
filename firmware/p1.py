# P1 / DSMR telegrams (DSMR 5.0.2 P1 companion standard, IEC 62056-21 mode D data lines)
# into the same canonical reading as the DLMS meters.
#
#   /ISK5\2M550T-1012            identification: becomes meter_model
#   0-0:1.0.0(200426223001S)     OBIS(value)...: names from the one OBIS table
#   1-0:1.8.1(000123.456*kWh)    values with a unit are converted to the field's unit
#   !56DD                        CRC, checked by the frame assembler
#
# Values are parsed as exact decimals (mantissa, exponent), never through float.
#
# M-Bus sub-meters (DSMR 5.0.2 clause 6.12, Fluvius e-MUCS): channel n (1-4) names its
# device type, then its last reading with the time the sub-meter took it:
#   0-1:24.1.0(003)                              device type (EN 13757-3): 3 gas, 7 water,
#   0-1:24.2.1(200426223001S)(00246.138*m3)      4 and 12 heat; Fluvius sends gas as 24.2.3
# A gas meter's reading becomes gas_volume (m³) and gas_time, a water meter's water_volume
# and water_time, a heat meter's heat_energy (GJ) and heat_time. Their names live here, not
# in obis.py: only a dongle on a P1 meter loads this module, and a HAN dongle holds none of
# them. A reading without its unit (a channel with no meter: "(00000000)"), of another
# device type, or of a second meter of a kind keeps its code.

import obis
from normalize import TEXT_FIELDS, number

# device type -> (count, its time, the unit it must be printed in). Heat in GJ only, as
# the Dutch heat meters print it (WarmteLink); another unit keeps the code.
_HEAT = ("heat_energy", "heat_time", "gj")
_SUBMETERS = {
    3: ("gas_volume", "gas_time", "m3"),
    7: ("water_volume", "water_time", "m3"),
    4: _HEAT,
    12: _HEAT,
}
# The counts join the canonical fields, after the electricity meter's (JSON order, share
# levels, Home Assistant discovery: obis.UNIT decides). A time's unit "time": it travels
# with its count wherever the count goes (share.is_energy), and gets no sensor.
for _f, _u in (("gas_volume", "m³"), ("gas_time", "time"), ("water_volume", "m³"),
               ("water_time", "time"), ("heat_energy", "GJ"), ("heat_time", "time")):  # fmt: skip
    if _f not in obis.UNIT:
        obis.UNIT[_f] = _u
        obis.ORDER.append(_f)
del _f, _u

# What MicroPython's str.strip() strips; CPython's strips \x1c-\x1f too, so naming them
# keeps hanctl (CPython) and the dongle reading a line alike.
_SPACE = " \t\n\r\x0b\x0c"

# unit as printed (lower case) -> (canonical unit, decimal shift)
_UNITS = {
    "kw": ("W", 3),
    "w": ("W", 0),
    "kvar": ("var", 3),
    "var": ("var", 0),
    "kwh": ("kWh", 0),
    "wh": ("kWh", -3),
    "kvarh": ("kvarh", 0),
    "varh": ("kvarh", -3),
}


def decode(buf, n, norm, decoder=None):
    """Canonical reading of the P1 telegram buf[0:n] ('/' .. '\\n'); lines past
    obis.FIELDS_MAX are counted in norm.dropped (the decoder's normalize.Normalizer).
    A frame that starts 0xDB is Luxembourg's ciphered telegram: opened in place with the
    keys of `decoder` (decoder.Decoder), which raises DecodeError when it cannot."""
    if buf[0] == 0xDB:
        import p1cipher  # only a P1 meter that encrypts loads it

        k, n = p1cipher.open(decoder, buf, n)
        buf = memoryview(buf)[k:n]  # the telegram, where it was decrypted
        n -= k
    reading = {}
    # The identification line's bytes are the maker's (the assembler takes any but '/'
    # when the CRC holds: 0x02 and 0xAB seen there): one character each, as they came
    # (Latin-1). Made as UTF-8 here, not by chr(): each character chr() makes is interned
    # for good, and a line's bytes, noisy or hostile, would each have stayed in the heap.
    k = 0
    while k < n and buf[k] != 0x0A:
        k += 1
    model = bytearray()
    for c in memoryview(buf)[1:k]:
        if c < 0x80:
            model.append(c)
        else:
            model.append(0xC0 | c >> 6)
            model.append(0x80 | c & 0x3F)
    model = model.decode().strip(_SPACE)
    # One copy, not three (a slice, bytes of it, then its text): a 1.4 KB telegram once
    # found no room at 96K for the three (host_tests/stress/fuzz, docs/reliability.md).
    text = str(memoryview(buf)[k:n], "utf-8")
    lines = text.split("\n")
    if model:
        reading[obis.METER_MODEL] = model
    # The device type of M-Bus channels 1-4, as the lines name them; at 0, a DSMR 2.2 gas
    # reading waiting for its value's line.
    types = [0, 0, 0, 0, 0]
    for line in lines[1:]:
        line = line.strip(_SPACE)
        if line.startswith("!"):
            if len(line) == 1:
                reading["unchecked"] = True  # no CRC: DSMR 2/3 and some Nordic meters
            break
        gas = types[0]
        types[0] = 0
        if len(reading) >= obis.FIELDS_MAX:  # before the dict grows, not after
            norm.dropped += 1
        elif gas and line[:1] == "(" and line[-1:] == ")":
            # DSMR 2.2/3: the value of the gas reading on the line before (0-n:24.3.0,
            # "(time)(00)(60)(1)(0-n:24.2.1)(m3)") comes on a line of its own: "(00001.001)"
            _submeter(reading, types, gas[0], 2, 1, [gas[1], line[1:-1] + "*" + gas[2]])
        else:
            _line(reading, line, types)
    return reading


def _line(reading, line, types):
    k = line.find("(")
    if k < 0 or not line.endswith(")"):
        return  # a continuation of a multi-line value (DSMR 2.2 gas) or noise
    code = _obis(line[:k])
    if code is None:
        return  # malformed OBIS (amsreader gh712-2 "1-0:4:24.7.0"): skip the line
    a, b, c, d, e = code
    groups = line[k + 1 : -1].split(")(")
    # On P1, 0-1: .. 0-4: are the M-Bus devices (gas, water, heat) behind the meter: their
    # ids and readings keep their code, never the electricity meter's fields.
    name = obis.BY_KEY.get(obis.key(a, c, d, e)) if a or not b else None
    if name is None:
        if not a and 1 <= b <= 4 and c == 24 and _submeter(reading, types, b, d, e, groups):
            return
        name = obis.code(a, b, c, d, e)
    if name == obis.METER_TIME:
        t = _timestamp(groups[0])
        if t:
            reading[name] = t
        return
    value = groups[-1]
    if name in TEXT_FIELDS:  # identifiers keep their leading zeros: "0272031312565"
        if value:
            reading[name] = _hex_text(value) if name == obis.METER_ID else value
        return
    if not a and b and c == 96 and d == 1:  # an M-Bus device's id (0-n:96.1.0): text too,
        if value:  # not a 34-digit number
            reading[name] = _hex_text(value)
        return
    if len(groups) > 2:
        reading[name] = "(" + ")(".join(groups) + ")"  # a log: kept as printed
        if not a and 1 <= b <= 4 and c == 24 and d == 3 and len(groups) == 6:
            types[0] = (b, groups[0], groups[5])  # DSMR 2.2 gas: its value comes next line
        return
    v = _value(value, obis.UNIT.get(name))
    if v is not None:
        reading[name] = v


def _submeter(reading, types, b, d, e, groups):
    """Read an M-Bus line of channel b (0-b:24.d.e) into the sub-meter's fields; False when
    it keeps its code (the device type line itself too)."""
    if d == 1 and e == 0:  # the device type: "003"
        t = groups[0]
        types[b] = int(t) if t and t.isdigit() and len(t) < 4 else 0
        return False
    kind = _SUBMETERS.get(types[b])
    if kind is None or d != 2 or (e != 1 and e != 3) or len(groups) != 2 or kind[0] in reading:
        return False
    if len(reading) >= obis.FIELDS_MAX - 1:  # two fields: room for both, else its code
        return False
    value = groups[1]
    star = value.find("*")
    num = _decimal(value[:star]) if star > 0 and value[star + 1 :].lower() == kind[2] else None
    t = _timestamp(groups[0])
    if num is None or t is None:
        return False
    reading[kind[0]] = number(num[0], num[1])
    reading[kind[1]] = t
    return True


def _obis(s):
    """(A, B, C, D, E) of 'A-B:C.D.E' with an optional '*F', else None."""
    star = s.find("*")
    if star >= 0:
        s = s[:star]
    dash = s.find("-")
    colon = s.find(":")
    if dash < 0 or colon < dash:
        return None
    parts = s[colon + 1 :].split(".")
    if len(parts) != 3:
        return None
    try:
        code = (int(s[:dash]), int(s[dash + 1 : colon]))
        code += (int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None
    for v in code:
        if not 0 <= v <= 255:
            return None
    return code


def _value(s, unit):
    """A number (int or (mantissa, exponent)) in the field's unit, or the text."""
    star = s.find("*")
    printed = s[star + 1 :].lower() if star >= 0 else ""
    num = _decimal(s[:star] if star >= 0 else s)
    if num is None:
        return s if s else None
    m, exp = num
    if printed and unit is not None:
        conv = _UNITS.get(printed)
        if conv is not None and conv[0] == unit:
            exp += conv[1]
    return number(m, exp)


def _decimal(s):
    """(mantissa, exponent) of '00123.450', or None when s is not a plain decimal."""
    if not s:
        return None
    neg = s[:1] == "-"  # a slice: s[0] would intern the character (reading.py)
    if neg:
        s = s[1:]
    dot = s.find(".")
    digits = s if dot < 0 else s[:dot] + s[dot + 1 :]
    if not digits or not digits.isdigit():
        return None
    m = int(digits)
    return (-m if neg else m), (0 if dot < 0 else dot - len(s) + 1)


def _timestamp(s):
    """'YYMMDDhhmmssX' (X: S summer, W winter) or 'YYYYMMDD hh:mm:ss' -> ISO 8601."""
    digits = bytes([c for c in s.encode() if 0x30 <= c <= 0x39]).decode()  # (reading.py)
    if len(digits) == 12:
        digits = "20" + digits
    if len(digits) != 14:
        return None
    d = digits
    return "%s-%s-%sT%s:%s:%s" % (d[0:4], d[4:6], d[6:8], d[8:10], d[10:12], d[12:14])


def _hex_text(s):
    """DSMR prints octet strings as hex (96.1.1 '4B38...'): the text when it is text."""
    if len(s) % 2 or len(s) < 2:
        return s
    try:
        raw = bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))
    except ValueError:
        return s
    for c in raw:
        if c < 0x20 or c > 0x7E:
            return s
    return raw.decode()
