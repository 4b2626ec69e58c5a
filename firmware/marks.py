# Checksums of overlapping frame candidates, from marks.
#
# framing.Assembler judges each candidate where it lies in its ring, and a candidate whose
# header checks and whose last byte is where its length says runs its checksum (HDLC FCS,
# M-Bus sum) over its whole length. Candidates that overlap each run the bytes they share:
# valid HDLC headers 8 bytes apart, each 2 KB long and ending on a flag, ran 219 bytes of
# FCS a byte fed, 51 times what a real frame costs the whole decoder (docs/reliability.md).
#
# Here the register is kept at every 8th ring byte (a mark) along a chain that later
# candidates share. CRC-16/X.25 is linear: the register from 0xFFFF over bytes a..b of a
# candidate follows from the chain's registers at the first mark after a and the last one
# before b, the bytes from a to the first mark run from 0xFFFF, one product by the chain's
# shift between the two marks, and the bytes after the last mark. A byte sum is the same
# with a difference for the product. Each candidate then runs fewer than 16 bytes however
# long it is, plus the bytes no candidate ran before.
#
# The product is the costly part: 16 steps of the bitwise CRC. A hostile line repeats its
# candidates, so each of 4 slots holds the products by one shift of every nibble of a
# register (made at the second candidate in a row that needs that shift): a product is
# then 4 look-ups. A shift that misses its slot takes a product a nibble at a time.
# `hanctl bench --hostile --instructions` (docs/reliability.md): an HDLC header every 4
# bytes, each frame 1,537 bytes long, costs 4.8x what a real frame costs the decoder, where
# marks every 32 bytes and a bit loop cost 8.1x; if no product came from a slot, 5.4x.
#
# Real meters never send overlapping candidates: the assembler loads this module at the
# first checksum that starts inside the last one's, so a dongle on a real line never holds
# it. On the owner's .mpy path (MicroPython 1.25 unix model) it takes 2,044 B of .mpy
# in functions of at most 507 B, 1.5 KB of marks and shifts in pieces of 256 B, 80 B, and
# 128 B a slot at its first use: about 4.4 KB of heap. A dongle with four destinations at
# 96K has 13 KB free, in holes of at most 768 B: there the marks are every 32nd byte (384 B;
# 3.5 KB of heap in all; 5.9x), which leaves its sessions the room they need (_ROOM). With
# no room at all each checksum runs whole, as before marks (framing.py). Its names are ones
# the firmware already has, so it takes no sixth qstr pool (4.6 KB).

import gc
from array import array

from micropython import const

import crc16

_WRAP = const(0x1FFFFFFF)  # framing's positions wrap here
_ROOM = const(12288)  # free heap, this code loaded, below which the blocks are 32 bytes


class Blocks:
    """An Assembler's ring in blocks of 8 bytes (32 where the heap has no room for that),
    a mark at each: its checksums (above).

    Every piece is a few hundred bytes at most: a dongle with four destinations at 96K had
    12.7 KB free after a collect, but no hole of 1 KB and few of 256 B."""

    def __init__(self, frames):
        self.frames = frames
        # Per chain (X.25, sums): the stream positions of its start and of its last mark.
        # Marks in between belong to it; none when they are equal. [4]: log2 of a block.
        self.pos = [0, 0, 0, 0, 3]
        # [0:4] the shifts whose products the 4 slots of products hold (made at their first
        # use), [4:8] the last shift each missed, [8:24] one register's products by each
        # nibble, [24:40] z^4's (apply()).
        x = array("H", bytes(80))
        self.table = [None, None, None, None, x]
        for k in range(8):
            x[k] = 0xFFFF  # none
        for k in range(16):  # a register times z^4 is r >> 4 ^ this of its low nibble
            r = k
            for _ in range(4):
                r = (r >> 1) ^ 0x8408 if r & 1 else r >> 1
            x[24 + k] = r
        # 8-byte blocks only where the heap has room to spare after them: on a dongle with
        # four destinations at 96K (13 KB free, 11 KB once this code is in) their 1.5 KB
        # more made a session fail `out of memory` under the attack in 2 runs of 4
        # (host_tests/test_hostile_line.py); with 32-byte blocks none did.
        free = _ROOM  # CPython (the host tests) has no such heap
        if hasattr(gc, "mem_free"):
            gc.collect()
            free = gc.mem_free()
        for g in (3, 5) if free >= _ROOM else (5,):
            n = frames.max_frame >> g
            try:
                # Per chain (X.25, sums): the register at each mark, its low and high bytes.
                self.marks = (bytearray(n), bytearray(n), bytearray(n), bytearray(n))
                # The X.25 shift over k blocks of zero bytes, as a register (1 is 0x8000).
                lo = bytearray(n)
                hi = bytearray(n)
                break
            except MemoryError:
                # 1.5 KB in blocks of 256 B, where 32-byte blocks take 384 B in blocks of 64:
                # each candidate then runs up to 62 bytes, not 14 (`7ea5ff8d`: 5.9x a frame,
                # 4.8x with 8-byte blocks).
                self.marks = None
                if g == 5:
                    raise
        self.pos[4] = g
        t = crc16._X25
        r = 0x8000
        for k in range(n):
            lo[k] = r & 0xFF
            hi[k] = r >> 8
            for _ in range(1 << g):
                r = (r >> 8) ^ t[r & 0xFF]
        self.base = (lo, hi)

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
        m = size - 1
        buf = f.buf
        t = crc16._X25
        c = self.pos
        g = c[4]
        b = 1 << g  # bytes a block
        z = start + b - ((s + start) & (b - 1))  # the first mark after start
        y = end - ((s + end) & (b - 1))  # the last mark at or before end
        if y < z:  # start and end in one block: no mark between them
            z = end
        # The bytes to the first mark, in a local loop within a block (a block never crosses
        # the ring's end); the chain's new blocks in run(), the rest in finish().
        i = (s + start) & m
        if k:  # from the checksum's start value: 0 for a sum, 0xFFFF for X.25
            w = 0
            for x in range(i, i + z - start):
                w += buf[x]
        else:
            w = 0xFFFF
            for x in range(i, i + z - start):
                w = (w >> 8) ^ t[(w ^ buf[x]) & 0xFF]
        if z == end:
            f.work = (f.work + end - start) & _WRAP
            return w & 0xFFFF
        p = (f.received - f._len) & _WRAP  # the stream position of the candidate's byte 0
        o = (c[2 * k] - p) & _WRAP  # beyond size: behind the candidate
        e = (c[2 * k + 1] - p) & _WRAP
        lo = self.marks[2 * k]
        hi = self.marks[2 * k + 1]
        if not (z <= e <= size and (o < z or o > size)):
            # No mark of the chain after start: a new chain starts there.
            c[2 * k] = (p + start) & _WRAP
            e = z
            o = ((s + z) & m) >> g
            lo[o] = w & 0xFF
            hi[o] = w >> 8
        # The bytes run: to the first mark, the chain's new blocks, from the last mark.
        f.work = (f.work + z - start + (y - e if e < y else 0) + end - y) & _WRAP
        if e <= y:  # the chain runs on to the last mark before end
            if e < y:
                self.run(k, (s + e) & m, (y - e) >> g)
            c[2 * k + 1] = (p + y) & _WRAP
        o = ((s + y) & m) >> g
        r = lo[o] | hi[o] << 8
        o = ((s + z) & m) >> g
        i = lo[o] | hi[o] << 8
        return self.finish(k, w - i if k else w ^ i, r, (s + y) & m, end - y, (y - z) >> g)

    def finish(self, k, w, r, e, n, d):
        """sum()'s end: the chain's register r at the candidate's last mark, the candidate's
        start value's part w (k 0: xor, 1: difference) at its first, the shift between them
        over d blocks, and the n bytes from ring index e on. A method of its own: no piece
        of this module's bytecode is more than ~512 B (the heap of a dongle with four
        destinations at 96K had no hole of 810 B for sum() whole in 2 attacks of 3)."""
        buf = self.frames.buf
        if k:
            r += w
            for x in range(e, e + n):
                r += buf[x]
            return r & 0xFFFF
        # w is carried from the first mark to the last: times the shift over d blocks of
        # zero bytes (none on a new chain, where w is 0).
        if w:
            x = self.table
            if x[4][d & 3] == d:  # its slot holds its products: 4 look-ups
                x = x[d & 3]
                r ^= x[w & 15] ^ x[16 + (w >> 4 & 15)] ^ x[32 + (w >> 8 & 15)] ^ x[48 + (w >> 12)]
            else:
                r ^= self.apply(w, d)
        t = crc16._X25
        for x in range(e, e + n):
            r = (r >> 8) ^ t[(r ^ buf[x]) & 0xFF]
        return r

    def run(self, k, i, n):
        """Run the chain (k 0: X.25, k 1: a sum) on from its mark at ring index i over n
        blocks, a mark at the end of each (a method of its own: see finish())."""
        f = self.frames
        buf = f.buf
        m = f.max_frame - 1
        t = crc16._X25
        g = self.pos[4]
        b = 1 << g
        lo = self.marks[2 * k]
        hi = self.marks[2 * k + 1]
        o = i >> g
        r = lo[o] | hi[o] << 8
        for _ in range(n):
            if k:
                for x in range(i, i + b):
                    r += buf[x]
                r &= 0xFFFF
            else:
                for x in range(i, i + b):
                    r = (r >> 8) ^ t[(r ^ buf[x]) & 0xFF]
            i = (i + b) & m
            o = i >> g
            lo[o] = r & 0xFF
            hi[o] = r >> 8

    def apply(self, w, d):
        """Register w times the shift over d blocks, where sum() found d's slot of products
        not holding d: the second miss in a row fills it (a hostile line repeats one length),
        else a product a nibble at a time."""
        keys = self.table[4]
        q = d & 3
        if keys[4 + q] == d:
            t = self.fill(q, d)
            if t:
                return t[w & 15] ^ t[16 + (w >> 4 & 15)] ^ t[32 + (w >> 8 & 15)] ^ t[48 + (w >> 12)]
        keys[4 + q] = d
        lo, hi = self.base
        x = lo[d] | hi[d] << 8
        # w times x, a nibble of x at a time: w's products by every nibble, then x's
        # nibbles from the highest power, times z^4 between them (a look-up). Multiplying
        # by z is one step of the bitwise CRC, which a bit loop takes 16 times: this costs
        # 20 % less (MicroPython 1.25, 32-bit).
        keys[16] = w  # a nibble's bit 3 is z^0 (0x8000 is 1)
        b = (w >> 1) ^ 0x8408 if w & 1 else w >> 1
        keys[12] = b
        c = (b >> 1) ^ 0x8408 if b & 1 else b >> 1
        keys[10] = c
        e = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        keys[9] = e
        keys[11] = c ^ e
        keys[13] = b ^ e
        keys[14] = b ^ c
        keys[15] = b ^ c ^ e
        keys[17] = w ^ e
        keys[18] = w ^ c
        keys[19] = w ^ c ^ e
        keys[20] = w ^ b
        keys[21] = w ^ b ^ e
        keys[22] = w ^ b ^ c
        keys[23] = w ^ b ^ c ^ e
        w = keys[8 + (x & 15)]
        w = (w >> 4) ^ keys[24 + (w & 15)] ^ keys[8 + (x >> 4 & 15)]
        w = (w >> 4) ^ keys[24 + (w & 15)] ^ keys[8 + (x >> 8 & 15)]
        return (w >> 4) ^ keys[24 + (w & 15)] ^ keys[8 + (x >> 12)]

    def fill(self, q, d):
        """Slot q of products, made to hold the shift over d blocks: the register's products
        by every nibble, in 60 steps, where a product costs 15 stores, 3 steps and 6 look-ups
        (apply()): each product is then 4 look-ups and no call. None with no heap for it."""
        table = self.table
        t = table[q]
        if t is None:
            try:  # made at its first use: 128 B
                t = table[q] = array("H", bytes(128))
            except MemoryError:
                return None
        lo, hi = self.base
        x = lo[d] | hi[d] << 8
        for i in range(15, -1, -1):  # bit i of a register: x times z^(15 - i)
            t[(i >> 2 << 4) + (1 << (i & 3))] = x
            x = (x >> 1) ^ 0x8408 if x & 1 else x >> 1
        for i in range(0, 64, 16):
            for x in (2, 4, 8):
                for q in range(1, x):
                    t[i + x + q] = t[i + x] ^ t[i + q]
        table[4][d & 3] = d
        return t
