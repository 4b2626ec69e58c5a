# The canonical reading: its values and its JSON text (the MQTT payload and the output of
# `hanctl decode`; fields documented in README "Canonical reading").
#
# Registers stay exact from the meter to the text: an int, or a pair (mantissa, exponent)
# with exponent < 0 meaning mantissa * 10**exponent. ESP32 MicroPython floats are 32-bit
# (7 significant digits), too few for a meter's 109552.25 kWh, so no float is made.
# Output is ASCII with fields in the table's order, so both runtimes print the same bytes.

import obis


def _plain(b):
    """Whether the UTF-8 bytes b are printable ASCII with no quote or backslash: a JSON
    string as they are (the usual case; min and max look at the bytes in C)."""
    return not b or (max(b) < 0x7F and min(b) > 0x1F and b'"' not in b and b"\\" not in b)


def _string(s):
    if _plain(s.encode()):
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


# Bytes a text value may hold to be written as it is: strip() finds each in C (~5
# thousand instructions for a meter_time, where _plain()'s max() and min() took 17).
# Any other character, which may need escaping, takes value_json(); digits and capitals
# first, as ids hold them.
_SAFE = b"0123456789-:T_ABCDEFGHIJKLMNOPQRSUVWXYZabcdefghijklmnopqrstuvwxyz ./"


def value_json(v):
    """JSON text of the values write() does not write itself."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _string(v)
    raise TypeError("not a reading value: %r" % (v,))


def to_json(reading):
    """One line of JSON (the canonical reading's text), as write() makes it."""
    size = 1024
    while True:
        buf = bytearray(size)
        try:
            return buf[: write(reading, buf)].decode()
        except OverflowError:
            size *= 4


def write(reading, buf, n=0):
    """The reading's JSON into the bytearray buf from index n; returns where it ends
    (OverflowError when it does not fit). The dongle publishes from a buffer it owns: on a
    fragmented heap a fresh 1 KB string may find no room when a hundred small pieces still
    do; `hanctl decode` writes many lines into one buffer, then prints them at once.

    Known fields come in the table's order, then codes hanport has no field for, sorted.
    Measured on the 32-bit unix image over the 63 Norwegian frames of `hanctl bench`:
    250 µs and 6.7 KB of garbage per reading when each piece was a str and each name's
    characters were checked one by one; 43 µs and 2.3 KB with one bytes per field and the
    table's loop ending at the reading's last field.
    """
    size = len(buf)
    left = len(reading)
    if not left:
        return _put(buf, n, b"{}")
    buf[n] = 0x7B  # "{"
    n += 1
    names = obis.ORDER
    known = True  # names from the table: plain ASCII, no escaping
    while True:
        for name in names:
            if name not in reading:
                continue
            # Each field in place, no call: a call costs ~1,600 instructions on MicroPython,
            # and one with more than 11 locals and stack slots a heap block for its frame
            # too (objfun.c, VM_MAX_STATE_ON_STACK). One %-format into bytes per field: a
            # new str would be looked up among the interned names (qstr_find_strn), a new
            # bytes is not. A %-format costs ~100 instructions a character it writes, a
            # slice ~1,100 whatever its length, so each field ends with its ", " (the
            # last one's becomes the "}") rather than a %s of the separator before it. A
            # decimal is its integer part and its -exp digits zero-padded: (23312, -2) ->
            # 233.12, (-5, -1) -> -0.5.
            key = name.encode() if known else _string(name)[1:-1].encode()
            v = reading[name]
            t = v.__class__  # type(v) without a call; a bool is no int, on either runtime
            if t is int:
                b = b'"%s": %d, ' % (key, v)
            elif t is tuple:
                m, exp = v
                p = 10**-exp
                if m < 0:
                    b = b'"%s": -%d.%0*d, ' % (key, -m // p, -exp, -m % p)
                else:
                    b = b'"%s": %d.%0*d, ' % (key, m // p, -exp, m % p)
            else:
                b = v.encode() if t is str else None
                # isdigit() and strip() look at the bytes in C (a meter id, a time)
                if b is not None and (b.isdigit() or not b.strip(_SAFE)):
                    b = b'"%s": "%s", ' % (key, b)
                else:
                    b = b'"%s": %s, ' % (key, value_json(v).encode())
            k = n + len(b)
            if k <= size:
                buf[n:k] = b
            elif k > size + 1 or left > 1:
                raise OverflowError()
            else:  # the last field, to the buffer's end: its "," becomes the "}"
                buf[n:size] = b[:-1]
            n = k
            left -= 1
            if not left:
                break
        if not left or not known:
            break
        # Codes hanport has no field for (every key not in the table), sorted.
        names = [k for k in reading if k not in obis.UNIT]
        names.sort()
        known = False
    buf[n - 2] = 0x7D  # "}" where the last field's ", " begins
    return n - 1


def put(buf, n, text):
    """Copy text into buf at n; the new end."""
    return _put(buf, n, text.encode())


def _put(buf, n, b):
    k = n + len(b)
    if k > len(buf):
        raise OverflowError()
    buf[n:k] = b
    return k
