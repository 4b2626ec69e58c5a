# A-XDR (IEC 62056-6-2 / Green Book 9.5) reading, without building a tree.
# Type tags are module-private consts: folded at compile time, they cost no name in the
# .mpy and no global at run time (each public const would cost both, on every import).
#
# Meters push one data value: nested arrays/structures of scalars. The decoder walks it with
# a Reader cursor and hands scalars to the meter normalizer as it goes, so a List 3 frame
# costs the few strings it carries, not a tree of lists (measured by `hanctl bench`).

import struct

from micropython import const

from errors import MALFORMED, TRUNCATED, UNSUPPORTED, DecodeError

_NULL = const(0x00)
_ARRAY = const(0x01)
_STRUCTURE = const(0x02)
_BOOLEAN = const(0x03)
_BIT_STRING = const(0x04)
_INT32 = const(0x05)
_UINT32 = const(0x06)
_OCTET_STRING = const(0x09)
_VISIBLE_STRING = const(0x0A)
_UTF8_STRING = const(0x0C)
_BCD = const(0x0D)
_INT8 = const(0x0F)
_INT16 = const(0x10)
_UINT8 = const(0x11)
_UINT16 = const(0x12)
_COMPACT_ARRAY = const(0x13)
_INT64 = const(0x14)
_UINT64 = const(0x15)
_ENUM = const(0x16)
_FLOAT32 = const(0x17)
_FLOAT64 = const(0x18)
_DATE_TIME = const(0x19)
_DATE = const(0x1A)
_TIME = const(0x1B)

_MAX_DEPTH = const(8)  # real pushes nest 3 deep (array > structure > scaler/unit)

# Integers: tag -> size in bytes, negative for signed. Assembled byte by byte rather than
# with struct.unpack_from, whose result tuple cost 32 bytes of heap per value (measured,
# unix port): an Aidon List 3 carries 14 of them.
_INTS = {
    _BOOLEAN: 1,
    _INT32: -4,
    _UINT32: 4,
    _BCD: 1,
    _INT8: -1,
    _INT16: -2,
    _UINT8: 1,
    _UINT16: 2,
    _INT64: -8,
    _UINT64: 8,
    _ENUM: 1,
}
# Floats become exact decimals of the digits the type holds (7 for float32, 15 for
# float64): 49.99 sent as float32 reads 49.99, not 49.9900016784668, on every port.
_FLOATS = {_FLOAT32: (">f", 4, "%.7g"), _FLOAT64: (">d", 8, "%.15g")}
# date-time, date and time as their own tags carry no length byte.
_OCTETS = {_DATE_TIME: 12, _DATE: 5, _TIME: 4}


class Reader:
    """Cursor over buf[pos:end]. Every read checks the end and raises Truncated."""

    def __init__(self, buf, pos, end):
        self.buf = buf
        self.pos = pos
        self.end = end
        self._view = None

    def reset(self, buf, pos, end):
        if buf is not self.buf:
            self._view = None
            self.buf = buf
        self.pos = pos
        self.end = end

    def view(self):
        # One memoryview per frame: slicing it copies nothing until bytes()/str() copy
        # once, where slicing the bytearray and converting would copy twice.
        if self._view is None:
            self._view = memoryview(self.buf)
        return self._view

    def byte(self):
        if self.pos >= self.end:
            raise DecodeError(TRUNCATED)
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def length(self):
        """A-XDR length: one byte below 0x80, else 0x8N and N big-endian bytes."""
        n = self.byte()
        if n & 0x80:
            k = n & 0x7F
            if k > 2:  # no frame here is 64 KB long
                raise DecodeError(MALFORMED)
            n = 0
            for _ in range(k):
                n = n << 8 | self.byte()
        return n

    def take(self, n):
        """Skip n bytes, returning where they start."""
        p = self.pos
        if p + n > self.end:
            raise DecodeError(TRUNCATED)
        self.pos = p + n
        return p

    def scalar(self, tag):
        """Read the value of scalar `tag` (the tag byte already read).

        int, bool, float, None, str (visible/UTF-8 string) or bytes (octet string, and the
        date/time types). Raises Unsupported for a type no meter is known to push.
        """
        size = _INTS.get(tag)
        if size is not None:
            k = size if size > 0 else -size
            p = self.pos  # take(k) without its call: an integer is most of what is read
            e = p + k
            if e > self.end:
                raise DecodeError(TRUNCATED)
            self.pos = e
            buf = self.buf
            v = 0
            for i in range(p, e):
                v = v << 8 | buf[i]
            if size < 0 and v >> (8 * k - 1):
                v -= 1 << (8 * k)
            return v != 0 if tag == _BOOLEAN else v
        if tag == _NULL:
            return None
        if tag == _OCTET_STRING:
            n = self.length()
            p = self.take(n)
            return bytes(self.view()[p : p + n])
        if tag == _VISIBLE_STRING or tag == _UTF8_STRING:
            n = self.length()
            p = self.take(n)
            return str(self.view()[p : p + n], "utf-8")
        f = _FLOATS.get(tag)
        if f is not None:
            v = struct.unpack_from(f[0], self.buf, self.take(f[1]))[0]
            return _decimal(v, f[2])
        n = _OCTETS.get(tag)
        if n is not None:
            p = self.take(n)
            return bytes(self.view()[p : p + n])
        if tag == _BIT_STRING:
            n = self.length()
            p = self.take((n + 7) >> 3)
            return bytes(self.view()[p : self.pos])
        if tag == _COMPACT_ARRAY:
            raise DecodeError(UNSUPPORTED)  # valid A-XDR that no known push uses
        raise DecodeError(MALFORMED)  # no such type: damaged data


def _decimal(v, fmt):
    """(mantissa, exponent) of float v rounded to fmt's significant digits; None if not
    finite."""
    text = fmt % v
    if "n" in text or "i" in text:  # nan, inf
        return None
    exp = 0
    k = text.find("e")
    if k >= 0:
        exp = int(text[k + 1 :])
        text = text[:k]
    k = text.find(".")
    if k >= 0:
        exp -= len(text) - k - 1
        text = text[:k] + text[k + 1 :]
    return int(text), exp
