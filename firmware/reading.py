# The canonical reading: its values and its JSON text (the MQTT payload and the output of
# `hanctl decode`; fields documented in README "Canonical reading").
#
# Registers stay exact from the meter to the text: an int, or a pair (mantissa, exponent)
# with exponent < 0 meaning mantissa * 10**exponent. ESP32 MicroPython floats are 32-bit
# (7 significant digits), too few for a meter's 109552.25 kWh, so no float is made.
# Output is ASCII with fields in the table's order, so both runtimes print the same bytes.

import obis


def decimal(v):
    """Decimal text of a register value: (23312, -2) -> '233.12', (-5, -1) -> '-0.5'."""
    m, exp = v
    sign = "-" if m < 0 else ""
    digits = str(-m if m < 0 else m)
    k = -exp
    if len(digits) <= k:
        digits = "0" * (k - len(digits) + 1) + digits
    return sign + digits[:-k] + "." + digits[-k:]


def _string(s):
    for ch in s:  # the usual case, plain ASCII: one string, no character list
        if ch == '"' or ch == "\\" or not " " <= ch <= "~":
            break
    else:
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif c > 0xFFFF:  # JSON escapes only 16 bits: a surrogate pair
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | c >> 10, 0xDC00 | c & 0x3FF))
        elif c < 0x20 or c > 0x7E:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def value_json(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, tuple):
        return decimal(v)
    if isinstance(v, int):
        return str(v)
    return _string(v)


def _members(reading):
    """'"field": value' of each field: known fields in table order, then codes sorted."""
    for name in obis.ORDER:
        if name in reading:
            yield _string(name) + ": " + value_json(reading[name])
    rest = [k for k in reading if k not in obis.UNIT]
    rest.sort()
    for name in rest:
        yield _string(name) + ": " + value_json(reading[name])


def to_json(reading):
    """One line of JSON (the canonical reading's text)."""
    return "{" + ", ".join(_members(reading)) + "}"


def write(reading, buf):
    """The same JSON into the bytearray buf; returns its length (OverflowError when it does
    not fit). The dongle publishes from a buffer it owns: on a fragmented heap a fresh 1 KB
    string may find no room when a hundred small pieces still do."""
    n = put(buf, 0, "{")
    sep = ""
    for member in _members(reading):
        n = put(buf, n, sep)
        n = put(buf, n, member)
        sep = ", "
    return put(buf, n, "}")


def put(buf, n, text):
    """Copy text into buf at n; the new end."""
    b = text.encode()
    k = n + len(b)
    if k > len(buf):
        raise OverflowError()
    buf[n:k] = b
    return k
