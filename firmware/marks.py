# Checksums of overlapping frame candidates, from marks.
#
# framing.Assembler judges each candidate where it lies in its ring, and a candidate whose
# header checks and whose last byte is where its length says runs its checksum (HDLC FCS,
# M-Bus sum) over its whole length. Candidates that overlap each run the bytes they share:
# valid HDLC headers 8 bytes apart, each 2 KB long and ending on a flag, ran 219 bytes of
# FCS a byte fed, 51 times what a real frame costs the whole decoder (docs/reliability.md).
#
# Here the register is kept at every 32nd ring byte (a mark) along a chain that later
# candidates share. CRC-16/X.25 is linear: the register from 0xFFFF over bytes a..b of a
# candidate follows from the chain's registers at the first mark after a and the last one
# before b, the bytes from a to the first mark run from 0xFFFF, one product by the chain's
# shift between the two marks (a table of 64), and the bytes after the last mark. A byte
# sum is the same with a difference for the product. Each candidate then runs fewer than
# 64 bytes however long it is, plus the bytes no candidate ran before.
#
# Real meters never send overlapping candidates: the assembler loads this module at the
# first checksum that starts inside the last one's, so a dongle on a real line never holds
# it: 1,136 B of bytecode and 512 B of tables on the owner's .mpy path (MicroPython 1.25
# unix model). Its names are ones the firmware already has, so it takes no sixth qstr pool
# (4.6 KB): only its file's path is new.

from array import array

from micropython import const

import crc16

_WRAP = const(0x1FFFFFFF)  # framing's positions wrap here


class Blocks:
    """An Assembler's ring in blocks of 32 bytes, a mark at each: its checksums (above)."""

    def __init__(self, frames):
        self.frames = frames
        n = frames.max_frame >> 5
        # [2k]: the X.25 register at ring index 32k, [2k + 1]: the byte sum there.
        self.marks = array("H", bytes(4 * n))
        # Per chain (X.25, sums): the stream positions of its start and of its last mark.
        # Marks in between belong to it; none when they are equal.
        self.pos = [0, 0, 0, 0]
        # table[k]: the X.25 shift over 32k zero bytes, as a register (1 is 0x8000).
        table = self.table = array("H", bytes(2 * n))
        t = crc16._X25
        r = 0x8000
        for k in range(n):
            table[k] = r
            for _ in range(32):
                r = (r >> 8) ^ t[r & 0xFF]

    def clear(self):
        """Forget both chains (the line started afresh, or the ring's bytes moved)."""
        c = self.pos
        c[1] = c[0]
        c[3] = c[2]

    def sum(self, k, start, end):
        """framing.Assembler.sum(): the X.25 register from 0xFFFF (k 0) or the byte sum
        (k 1) over the current candidate's bytes start..end-1."""
        f = self.frames
        s = f._s
        size = f.max_frame
        p = (f.received - f._len) & _WRAP  # the stream position of the candidate's byte 0
        r = 0xFFFF >> 16 * k  # the checksum's start value: 0xFFFF, or 0 for a sum
        z = start + 32 - ((s + start) & 31)  # the first mark after start
        y = end - ((s + end) & 31)  # the last mark at or before end
        if y < z:  # start and end in one block: no mark between them
            return self.run(k, r, start, end, 0)
        c = self.pos
        o = (c[2 * k] - p) & _WRAP  # beyond size: behind the candidate
        e = (c[2 * k + 1] - p) & _WRAP
        if not (z <= e <= size and (o < z or o > size)):
            # No mark of the chain after start: a new chain starts there.
            c[2 * k] = (p + start) & _WRAP
            c[2 * k + 1] = (p + y) & _WRAP
            return self.run(k, self.run(k, r, start, y, 1), y, end, 0)
        marks = self.marks
        m = size - 1
        w = self.run(k, r, start, z, 0)  # from the start value to the first mark
        if e < y:  # the chain runs on to the last mark before end
            self.run(k, marks[(((s + e) & m) >> 5) * 2 + k], e, y, 1)
            c[2 * k + 1] = (p + y) & _WRAP
        rz = marks[(((s + z) & m) >> 5) * 2 + k]
        r = marks[(((s + y) & m) >> 5) * 2 + k]
        if k:
            r = (r - rz + w) & 0xFFFF
        else:
            # The start value's part, w ^ rz at the first mark, carried to the last: times
            # the shift over y - z zero bytes, bit by bit (r * x mod X.25's polynomial is
            # one step of the bitwise CRC).
            w ^= rz
            x = self.table[(y - z) >> 5]
            while x:
                if x & 0x8000:
                    r ^= w
                x = (x << 1) & 0xFFFF
                w = (w >> 1) ^ 0x8408 if w & 1 else w >> 1
        return self.run(k, r, y, end, 0)

    def run(self, k, r, start, end, store):
        """Run register r (k 0: X.25, k 1: a sum) over the candidate's bytes start..end-1;
        keep it at each mark when store is 1. Blocks of 32 never cross the ring's end."""
        f = self.frames
        f.work = (f.work + end - start) & _WRAP
        buf = f.buf
        m = f.max_frame - 1
        marks = self.marks
        t = crc16._X25
        i = (f._s + start) & m
        while start < end:
            j = (i | 31) + 1
            if j - i > end - start:
                j = i + end - start
            start += j - i
            if k:
                for x in range(i, j):
                    r += buf[x]
                r &= 0xFFFF
            else:  # crc16.crc16's loop, here: a call a block cost the overlap streams 3-5 % more
                for x in range(i, j):
                    r = (r >> 8) ^ t[(r ^ buf[x]) & 0xFF]
            i = j & m
            if store and not i & 31:
                marks[(i >> 5) * 2 + k] = r
        return r
