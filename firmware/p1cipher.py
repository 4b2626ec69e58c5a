# Luxembourg's P1 port (the "Smarty" meters, Sagemcom T210-D): the DSMR telegram inside a
# general-glo-ciphering APDU, sent bare on the line at 115200 baud every 10 s:
#
#   DB 08 <system title, 8> 82 <length, 2> 30 <invocation counter, 4> <telegram> <tag, 12>
#
# AES-128-GCM of DLMS security suite 0 (security.py, gcm.py): IV = system title ||
# invocation counter, AAD = 30 || AK, where AK is the same for every Luxembourg meter,
# 00112233445566778899AABBCCDDEEFF (weigu1/SmartyReader:Arduino/SmartyReader_P1_WiFi_Ethernet/
# SmartyReader_v1_7/config.h, "hard coded in Lux"; mweimerskirch/smarty_dsmr_proxy:decrypt.py;
# checked against the frame NEXXTLAB/go-smarty-reader:smarty/Smarty_test.go publishes with
# its key: the tag holds with this AK, not with 000102..0F). The owner's grid operator gives
# the key. Without meter.auth_key the tag is not checked, as ESPHome's dsmr does not: the
# telegram's '/' and its CRC-16 inside say whether the key was right (1 in 2**24 by chance).
#
# The frame assembler finds the frame (framing.Assembler.apdu) and hands it over as P1; a
# dongle with no key counts it `encrypted` without loading this module (decoder.py), one
# with the key opens it here from p1.decode, which then reads the telegram in place.

from micropython import const

import security
from errors import MALFORMED, DecodeError
from framing import CHECKSUM

_SLASH = const(0x2F)  # a telegram's first byte
# CRC-16/ARC (polynomial 0xA001 reflected, DSMR 5.0.2 6.2) a nibble at a time: the CRC of
# each 4-bit value. A byte table (crc16._table) is 512 B in one piece, made at the first
# telegram: a Luxembourg dongle with two destinations at 96K had 6 KB free then, none of it
# 513 B long, and every telegram counted `memory` (its stats, `hanctl simulate --key`).
_ARC = (0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
        0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400)  # fmt: skip


def open(decoder, buf, n):  # a name the dongle holds already (builtins): no new qstr
    """The span (start, end) of the telegram in the ciphered frame buf[0:n], decrypted in
    place with the decoder's keys (p1.decode reads it then). Raises DecodeError: as
    security.unwrap() does, CHECKSUM when the telegram's CRC does not hold (the line damaged
    it: the key gave its '/'), MALFORMED when it has no '!' line."""
    start, end = security.unwrap(decoder, buf, 0, n, _SLASH)
    # The telegram ends "\r\n!CRC\r\n" (DSMR 5.0.2 6.2): its '!' is the last at a line's start.
    i = end - 1
    while i > start and not (buf[i] == 0x21 and buf[i - 1] == 0x0A):
        i -= 1
    if i <= start:
        raise DecodeError(MALFORMED)
    crc = 0
    digits = 0
    j = i + 1
    while j < end and buf[j] != 0x0D and buf[j] != 0x0A:
        c = buf[j] | 0x20  # '0'..'9' stay, 'A'..'F' become 'a'..'f'
        if 0x30 <= c <= 0x39:
            c -= 0x30
        elif 0x61 <= c <= 0x66:
            c -= 0x57
        else:
            raise DecodeError(MALFORMED)
        crc = crc << 4 | c
        digits += 1
        j += 1
    if digits:  # none: a DSMR 2/3 telegram, which p1.decode marks unchecked
        if digits > 4:
            raise DecodeError(MALFORMED)
        t = _ARC
        c = 0
        for j in range(start, i + 1):  # to the '!' included
            c ^= buf[j]
            c = (c >> 4) ^ t[c & 15]
            c = (c >> 4) ^ t[c & 15]
        if c != crc:
            raise DecodeError(CHECKSUM)
    return start, end
