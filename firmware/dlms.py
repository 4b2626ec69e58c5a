# DLMS/COSEM application layer for pushed data (IEC 62056-5-3, Green Book 9.3).
#
# What meters push on a HAN/P1 port is a Data-Notification (tag 0x0F), sometimes carried
# in General Block Transfer blocks (tag 0xE0, L&G E450 and Iskraemeco), sometimes ciphered
# (general-glo-ciphering 0xDB and friends; keys are per meter). Nothing here does I/O or
# knows a meter maker: the body goes to the normalizer as an A-XDR reader.

from micropython import const

from axdr import Reader
from errors import ENCRYPTED, MALFORMED, TRUNCATED, UNSUPPORTED, DecodeError

_DATA_NOTIFICATION = const(0x0F)
GENERAL_BLOCK_TRANSFER = const(0xE0)  # blocks are reassembled by gbt.py
# glo-/ded-ciphered xDLMS APDUs, general-glo/ded-ciphering, general-ciphering, -signing
_CIPHERED_FIRST = const(0xC8)
_CIPHERED_LAST = const(0xDF)


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
        self.body_pos = 0  # where the body starts (host_tests/mp/case_driver.py walks it again)

    def parse(self, data, start, end):
        # b: the APDU's tag, then the date-time's length. One local fewer keeps the frame
        # at 11 slots, on MicroPython's C stack rather than a heap block per call.
        b = data[start] if start < end else -1
        if _CIPHERED_FIRST <= b <= _CIPHERED_LAST:  # is_ciphered(), without the call
            raise DecodeError(ENCRYPTED)
        if b != _DATA_NOTIFICATION:
            raise DecodeError(UNSUPPORTED)
        # date-time: an OCTET STRING, empty (00) or of 12 bytes (0C + 12); Kaifa and early
        # Kamstrup firmware put the A-XDR tag 09 in front of it. Read here, not by the
        # Reader's byte() and take(): a call costs ~1,600 instructions (~2 % of a push).
        self.time = None
        start += 5  # tag, long-invoke-id-and-priority (4 bytes)
        if start >= end:
            raise DecodeError(TRUNCATED)
        b = data[start]
        start += 1
        if b == 0x09:
            if start >= end:
                raise DecodeError(TRUNCATED)
            b = data[start]
            start += 1
        if b == 12:
            if start + 12 > end:
                raise DecodeError(TRUNCATED)
            self.time = start
            start += 12
        elif b != 0:
            raise DecodeError(MALFORMED)
        r = self.body
        r.reset(data, start, end)
        self.data = data
        self.body_pos = start
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
    if second == 0xFF:  # "not specified" (some meters): the minute is what they mean
        second = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (year, month, day, hour, minute, second)
