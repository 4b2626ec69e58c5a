# P1 / DSMR telegrams (DSMR 5.0.2 P1 companion standard, IEC 62056-21 mode D data lines)
# into the same canonical reading as the DLMS meters.
#
#   /ISK5\2M550T-1012            identification: becomes meter_model
#   0-0:1.0.0(200426223001S)     OBIS(value)...: names from the one OBIS table
#   1-0:1.8.1(000123.456*kWh)    values with a unit are converted to the field's unit
#   !56DD                        CRC, checked by the frame assembler
#
# Values are parsed as exact decimals (mantissa, exponent), never through float.

import obis
from normalize import TEXT_FIELDS, number

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


def decode(buf, n, norm):
    """Canonical reading of the P1 telegram buf[0:n] ('/' .. '\\n'); lines past
    obis.FIELDS_MAX are counted in norm.dropped (the decoder's normalize.Normalizer)."""
    reading = {}
    # The identification line's bytes are the maker's (the assembler takes any but '/'
    # when the CRC holds: 0x02 and 0xAB seen there): one character each, as they came.
    k = 0
    while k < n and buf[k] != 0x0A:
        k += 1
    model = "".join([chr(c) for c in buf[1:k]]).strip(_SPACE)
    # One copy, not three (a slice, bytes of it, then its text): a 1.4 KB telegram once
    # found no room at 96K for the three (host_tests/stress/fuzz, docs/reliability.md).
    text = str(memoryview(buf)[k:n], "utf-8")
    lines = text.split("\n")
    if model:
        reading[obis.METER_MODEL] = model
    for line in lines[1:]:
        line = line.strip(_SPACE)
        if line.startswith("!"):
            if len(line) == 1:
                reading["unchecked"] = True  # no CRC: DSMR 2/3 and some Nordic meters
            break
        if len(reading) < obis.FIELDS_MAX:  # before the dict grows, not after
            _line(reading, line)
        else:
            norm.dropped += 1
    return reading


def _line(reading, line):
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
    if len(groups) > 2:
        reading[name] = "(" + ")(".join(groups) + ")"  # a log: kept as printed
        return
    v = _value(value, obis.UNIT.get(name))
    if v is not None:
        reading[name] = v


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
    neg = s[0] == "-"
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
    digits = "".join(c for c in s if c.isdigit())
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
