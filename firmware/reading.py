# The canonical reading: its values and its JSON text (the MQTT payload and the output of
# `hanctl decode`; fields documented in README "Canonical reading").
#
# Registers stay exact from the meter to the text: an int, or a pair (mantissa, exponent)
# with exponent < 0 meaning mantissa * 10**exponent. ESP32 MicroPython floats are 32-bit
# (7 significant digits), too few for a meter's 109552.25 kWh, so no float is made.
# Output is ASCII with fields in the table's order, so both runtimes print the same bytes.

import obis


def _string(s):
    b = s.encode()
    if not b.strip(obis.PLAIN):  # no byte to escape (strip() finds them in C)
        return '"' + s + '"'
    # Made once at its size (a first pass counts it): grown a byte at a time, a 1 KB text
    # left no room at 96K (test_p1cipher.py's captures).
    out = bytearray(_escape(b, None) + 2)
    out[0] = out[-1] = 0x22  # "
    _escape(b, out)
    return out.decode()


def _escape(b, out):
    """The JSON text of the UTF-8 b, escaped, into out from index 1; its length (out None:
    the length alone). Byte by byte, each code point read from its UTF-8: a character
    taken from a str (`for ch in s`, s[i]) is a name MicroPython interns, for good, so a
    meter's text once left each of its characters in the heap (a P1 header of 24 bytes
    from 0xA0 up: 66 names and a new qstr pool; host_tests/test_heap.py)."""
    n = i = 0
    while i < len(b):
        c = b[i]
        i += 1
        if c >= 0x80:  # a lead byte, then k continuation bytes of 6 bits each
            k = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
            c &= 0x3F >> k
            for _ in range(k):
                c = c << 6 | b[i] & 0x3F
                i += 1
        if c == 0x22 or c == 0x5C:  # " and \
            e = b"\\" + bytes((c,))
        elif c > 0xFFFF:  # JSON escapes only 16 bits: a surrogate pair
            c -= 0x10000
            e = b"\\u%04x\\u%04x" % (0xD800 | c >> 10, 0xDC00 | c & 0x3FF)
        elif c < 0x20 or c > 0x7E:
            e = b"\\u%04x" % c
        else:
            if out is not None:
                out[n + 1] = c
            n += 1
            continue
        if out is not None:
            out[n + 1 : n + 1 + len(e)] = e
        n += len(e)
    return n


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
            size *= 2


def write(reading, buf, n=0):
    """The reading's JSON into the bytearray buf from index n; returns where it ends
    (OverflowError when it does not fit). The dongle publishes from a buffer it owns: on a
    fragmented heap a fresh 1 KB string may find no room when a hundred small pieces still
    do; `hanctl decode` writes many lines into one buffer, then prints them at once.

    Known fields come in the table's order, then codes hanport has no field for, sorted.
    Measured on the 32-bit unix image over the 63 Norwegian frames of `hanctl bench`:
    250 µs and 6.7 KB of garbage per reading when each piece was a str and each name's
    characters were checked one by one; 43 µs and 2.3 KB with one bytes per field and the
    table's loop ending at the reading's last field; 226 thousand instructions a reading
    (callgrind) with the name by a slice and the value's format carrying the punctuation,
    where a format of name and value with the separator before took 277 thousand.
    """
    size = len(buf)
    left = len(reading)
    if not left:
        return _put(buf, n, b"{}")
    if n + 2 > size:
        raise OverflowError()
    buf[n] = 0x7B  # "{"
    buf[n + 1] = 0x22  # '"'
    n += 2
    names = obis.ORDER
    known = True  # names from the table: plain ASCII, no escaping
    while True:
        for name in names:
            if name not in reading:
                continue
            # Each field in place, no call: a call costs ~1,600 instructions on MicroPython,
            # and one with more than 11 locals and stack slots a heap block for its frame
            # too (objfun.c, VM_MAX_STATE_ON_STACK). The name goes in by a slice, its value
            # by one %-format into bytes: a new str would be looked up among the interned
            # names (qstr_find_strn), a new bytes is not. A %-format costs ~100 instructions
            # a character it writes and a %s a heap block more, a slice ~1,100 whatever its
            # length; so the value's text carries the punctuation around it, through the
            # next name's opening quote (the last one's ', "' becomes the "}"). A decimal is
            # its integer part and its -exp digits zero-padded: (23312, -2) -> 233.12,
            # (-5, -1) -> -0.5.
            key = name.encode() if known else _string(name)[1:-1].encode()
            v = reading[name]
            t = v.__class__  # type(v) without a call; a bool is no int, on either runtime
            if t is int:
                b = b'": %d, "' % v
            elif t is tuple:
                m, exp = v
                p = 10**-exp
                if m < 0:
                    b = b'": -%d.%0*d, "' % (-m // p, -exp, -m % p)
                else:
                    b = b'": %d.%0*d, "' % (m // p, -exp, m % p)
            else:
                b = v.encode() if t is str else None
                # isdigit(), isalpha() and strip() look at the bytes in C (a meter id, a
                # maker, a time); text of other bytes goes through value_json(), which
                # escapes what needs it
                if b is not None and (b.isdigit() or b.isalpha() or not b.strip(obis.PLAIN)):
                    b = b'": "%s", "' % b
                else:
                    b = b'": %s, "' % value_json(v).encode()
            t = n + len(key)
            k = t + len(b)
            if k <= size:
                buf[n:t] = key
                buf[t:k] = b
            elif k > size + 2 or left > 1:
                raise OverflowError()
            else:  # the last field, to the buffer's end: its ", " becomes the "}"
                buf[n:t] = key
                buf[t : k - 2] = b[:-2]
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
    buf[n - 3] = 0x7D  # "}" where the last field's ', "' begins
    return n - 2


def put(buf, n, text):
    """Copy text into buf at n; the new end."""
    return _put(buf, n, text.encode())


def _put(buf, n, b):
    k = n + len(b)
    if k > len(buf):
        raise OverflowError()
    buf[n:k] = b
    return k
