# A-XDR (IEC 62056-6-2 / Green Book 9.5) reading, without building a tree.
#
# Meters push one data value: nested arrays/structures of scalars. The decoder walks it with
# a Reader cursor and hands scalars to the meter normalizer as it goes, so a List 3 frame
# costs the few strings it carries, not a tree of lists (measured in tools/bench.py).
# value() does build a tree, for diagnostics and tests.

import struct

from micropython import const

from errors import DecodeError, TooDeep, Truncated, Unsupported

NULL = const(0x00)
ARRAY = const(0x01)
STRUCTURE = const(0x02)
BOOLEAN = const(0x03)
BIT_STRING = const(0x04)
INT32 = const(0x05)
UINT32 = const(0x06)
OCTET_STRING = const(0x09)
VISIBLE_STRING = const(0x0A)
UTF8_STRING = const(0x0C)
BCD = const(0x0D)
INT8 = const(0x0F)
INT16 = const(0x10)
UINT8 = const(0x11)
UINT16 = const(0x12)
COMPACT_ARRAY = const(0x13)
INT64 = const(0x14)
UINT64 = const(0x15)
ENUM = const(0x16)
FLOAT32 = const(0x17)
FLOAT64 = const(0x18)
DATE_TIME = const(0x19)
DATE = const(0x1A)
TIME = const(0x1B)

MAX_DEPTH = const(8)  # real pushes nest 3 deep (array > structure > scaler/unit)

# Fixed-size types: tag -> (struct format, size). Integers and floats are big-endian.
_FIXED = {
    BOOLEAN: ("B", 1),
    INT32: (">i", 4),
    UINT32: (">I", 4),
    BCD: ("B", 1),
    INT8: ("b", 1),
    INT16: (">h", 2),
    UINT8: ("B", 1),
    UINT16: (">H", 2),
    INT64: (">q", 8),
    UINT64: (">Q", 8),
    ENUM: ("B", 1),
    FLOAT32: (">f", 4),
    FLOAT64: (">d", 8),
}
# date-time, date and time as their own tags carry no length byte.
_OCTETS = {DATE_TIME: 12, DATE: 5, TIME: 4}


class Reader:
    """Cursor over buf[pos:end]. Every read checks the end and raises Truncated."""

    def __init__(self, buf, pos, end):
        self.buf = buf
        self.pos = pos
        self.end = end

    def byte(self):
        if self.pos >= self.end:
            raise Truncated()
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def peek(self, ahead=0):
        p = self.pos + ahead
        return self.buf[p] if p < self.end else -1

    def length(self):
        """A-XDR length: one byte below 0x80, else 0x8N and N big-endian bytes."""
        n = self.byte()
        if n & 0x80:
            k = n & 0x7F
            if k > 2:  # no frame here is 64 KB long
                raise DecodeError()
            n = 0
            for _ in range(k):
                n = n << 8 | self.byte()
        return n

    def take(self, n):
        """Skip n bytes, returning where they start."""
        p = self.pos
        if p + n > self.end:
            raise Truncated()
        self.pos = p + n
        return p

    def scalar(self, tag):
        """Read the value of scalar `tag` (the tag byte already read).

        int, bool, float, None, str (visible/UTF-8 string) or bytes (octet string, and the
        date/time types). Raises Unsupported for a type no meter is known to push.
        """
        f = _FIXED.get(tag)
        if f is not None:
            p = self.take(f[1])
            v = struct.unpack_from(f[0], self.buf, p)[0]
            return v != 0 if tag == BOOLEAN else v
        if tag == NULL:
            return None
        if tag == OCTET_STRING:
            n = self.length()
            p = self.take(n)
            return bytes(self.buf[p : p + n])
        if tag == VISIBLE_STRING or tag == UTF8_STRING:
            n = self.length()
            p = self.take(n)
            return bytes(self.buf[p : p + n]).decode()
        n = _OCTETS.get(tag)
        if n is not None:
            p = self.take(n)
            return bytes(self.buf[p : p + n])
        if tag == BIT_STRING:
            n = self.length()
            p = self.take((n + 7) >> 3)
            return bytes(self.buf[p : self.pos])
        if tag == COMPACT_ARRAY:
            raise Unsupported()  # valid A-XDR that no known push uses
        raise DecodeError()  # no such type: damaged data

    def skip(self, depth=0):
        """Step over one whole data element."""
        if depth > MAX_DEPTH:
            raise TooDeep()
        tag = self.byte()
        if tag == ARRAY or tag == STRUCTURE:
            for _ in range(self.length()):
                self.skip(depth + 1)
            return
        f = _FIXED.get(tag)
        if f is not None:
            self.take(f[1])
        else:
            self.scalar(tag)

    def value(self, depth=0):
        """Read one element as a tree: lists for arrays and structures."""
        if depth > MAX_DEPTH:
            raise TooDeep()
        tag = self.byte()
        if tag == ARRAY or tag == STRUCTURE:
            return [self.value(depth + 1) for _ in range(self.length())]
        return self.scalar(tag)
