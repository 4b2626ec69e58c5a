# DLMS/COSEM application layer for pushed data (IEC 62056-5-3, Green Book 9.3).
#
# What meters push on a HAN/P1 port is a Data-Notification (tag 0x0F), sometimes carried
# in General Block Transfer blocks (tag 0xE0, L&G E450 and Iskraemeco), sometimes ciphered
# (general-glo-ciphering 0xDB and friends; keys are per meter). Nothing here does I/O or
# knows a meter maker: the body goes to the normalizer as an A-XDR reader.

from micropython import const

from axdr import Reader
from errors import DecodeError, Encrypted, Segment, Unsupported, append

_DATA_NOTIFICATION = const(0x0F)
GENERAL_BLOCK_TRANSFER = const(0xE0)
# glo-/ded-ciphered xDLMS APDUs, general-glo/ded-ciphering, general-ciphering, -signing
_CIPHERED_FIRST = const(0xC8)
_CIPHERED_LAST = const(0xDF)
_SKIP = const(-1)


class Blocks:
    """Reassembles General Block Transfer blocks (Green Book 9.3.14) into one APDU."""

    def __init__(self, max_apdu=2048):
        self.apdu = bytearray(max_apdu)
        self._len = 0
        self._reader = Reader(b"", 0, 0)
        self._next = 0  # block number expected next, 0 when none is open, _SKIP (-1)
        # while the blocks of a ciphered transfer go by

    def pending(self):
        return self._next > 0

    def push(self, data, start, end):
        """Take a GBT APDU data[start:end]; returns the length of the whole APDU in
        self.apdu after the last block, else 0."""
        r = self._reader
        r.reset(data, start + 1, end)
        ctrl = r.byte()
        number = r.byte() << 8 | r.byte()
        r.take(2)  # block-number-ack: for a push, always 0
        n = r.length()
        p = r.take(n)
        if number == 1:
            self._len = 0
            if n and is_ciphered(data[p]):
                # No key: say so now, then let the transfer's other blocks pass unseen.
                self._next = 0 if ctrl & 0x80 else _SKIP
                raise Encrypted()
        elif self._next == _SKIP:
            if ctrl & 0x80:
                self._next = 0
            return 0
        elif number != self._next:
            self._next = 0
            raise Segment()
        self._next = 0  # until it fits: an oversize transfer is dropped
        self._len = append(self.apdu, self._len, data, p, p + n)
        if ctrl & 0x80:  # last-block
            return self._len
        self._next = number + 1
        return 0

    def reset(self):
        self._next = 0


def is_ciphered(tag):
    return _CIPHERED_FIRST <= tag <= _CIPHERED_LAST


class Notification:
    """The header of a Data-Notification; `body` is a Reader positioned at the data.

    One object serves every frame (parse() refills it), so a push costs no header objects.
    """

    def __init__(self):
        self.body = Reader(b"", 0, 0)
        self.data = None
        self.time = None  # position of the 12-byte date-time in data, or None
        self.body_pos = 0

    def parse(self, data, start, end):
        tag = data[start] if start < end else -1
        if is_ciphered(tag):
            raise Encrypted()
        if tag != _DATA_NOTIFICATION:
            raise Unsupported()
        r = self.body
        r.reset(data, start + 5, end)  # tag, long-invoke-id-and-priority (4 bytes)
        # date-time: OPTIONAL octet-string. 00 absent; 0C + 12 bytes (A-XDR leaves out the
        # 09 tag of a typed OPTIONAL); Kaifa and early Kamstrup send 09 0C + 12 bytes.
        self.time = None
        b = r.byte()
        if b == 0x09:
            b = r.byte()
        if b == 12:
            self.time = r.take(12)
        elif b != 0:
            raise DecodeError()
        self.data = data
        self.body_pos = r.pos
        return self


def date_time(buf, p):
    """ISO 8601 local time 'YYYY-MM-DDTHH:MM:SS' of the COSEM date-time at buf[p:p+12].

    The meter's own clock as it shows it: the deviation and status bytes are not applied
    (Norwegian meters send "not specified"). None when a field is not specified (0xFF).
    """
    year = buf[p] << 8 | buf[p + 1]
    month = buf[p + 2]  # one by one: a 5-tuple assignment allocates a tuple
    day = buf[p + 3]
    hour = buf[p + 5]
    minute = buf[p + 6]
    second = buf[p + 7]
    if year == 0xFFFF or not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (year, month, day, hour, minute, second)
