# CRC-16 checks of the two link layers, table driven.
#
# HDLC (IEC 62056-46 / ISO 13239 as used by the NVE HAN spec): CRC-16/X.25, reflected
# polynomial 0x8408, init 0xFFFF, final xor 0xFFFF, for both HCS and FCS.
# P1 (DSMR 5.0.2 §6.2): CRC-16/ARC, reflected polynomial 0xA001, init 0, no final xor.
#
# Both are reflected CRCs, so one table-driven loop serves both. X.25's table is built at
# import (512 bytes as array('H'), and 448 more for its shift()), ARC's at the first P1
# telegram; the loops allocate nothing: the assembler runs them under heap_lock() in tests.

from array import array


def _table(poly):
    # Running n bytes through a reflected CRC is linear in the register: from crc, the
    # register ends as shift(crc, n) xor what the bytes alone give from 0. For X.25, after
    # the 256 entries of the table, 32 entries per k = 0..6 give the register after
    # 16 * 2**k zero bytes (up to 2,047 bytes, the longest HDLC frame) from each 2-bit
    # piece of a register: entry 4 * j + v is that of v << 2 * j. A product is then 8
    # look-ups: 448 bytes, where 4-bit pieces took 896 and were 8% faster on the worst
    # stream. Deleted once run (below): its bytecode leaves the heap.
    t = array("H", bytes(512 + 448 * (poly == 0x8408)))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    for k in range(256, len(t), 32):
        for i in range(16):  # after 16 * 2**((k - 256) // 32) zero bytes from 1 << i
            if k > 256:  # twice what the rows before give: those rows, applied to theirs
                x = t[k - 32 + 4 * (i // 2) + 1 + i % 2]
                c = 0
                for j in range(8):
                    c ^= t[k - 32 + 4 * j + (x >> 2 * j & 3)]
            else:
                c = 1 << i
                for _ in range(16):
                    c = (c >> 8) ^ t[c & 0xFF]
            t[k + 4 * (i // 2) + 1 + i % 2] = c
        for j in range(8):
            t[k + 4 * j + 3] = t[k + 4 * j + 1] ^ t[k + 4 * j + 2]
    return t


def crc16(table, crc, buf, start, end):
    """Run bytes buf[start:end] through a reflected CRC-16 starting from crc."""
    for i in range(start, end):
        crc = (crc >> 8) ^ table[(crc ^ buf[i]) & 0xFF]
    return crc


_X25 = _table(0x8408)  # CRC-16/ARC's is the P1 judge's (framing.py), made at its first telegram
del _table


def shift(crc, n):
    """The CRC-16/X.25 register crc after n zero bytes (n < 2048), in at most 15 table
    steps and 7 products: the check of an HDLC frame from marks (framing.Assembler.walk)."""
    t = _X25
    for _ in range(n & 15):
        crc = (crc >> 8) ^ t[crc & 0xFF]
    n >>= 4
    k = 256
    while n:
        if n & 1:
            x = t[k + (crc & 3)] ^ t[k + 4 + (crc >> 2 & 3)] ^ t[k + 8 + (crc >> 4 & 3)]
            x ^= t[k + 12 + (crc >> 6 & 3)] ^ t[k + 16 + (crc >> 8 & 3)]
            x ^= t[k + 20 + (crc >> 10 & 3)] ^ t[k + 24 + (crc >> 12 & 3)]
            crc = x ^ t[k + 28 + (crc >> 14)]
        n >>= 1
        k += 32
    return crc
