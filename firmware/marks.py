# Checksums of overlapping frame candidates, from marks.
#
# framing.Assembler judges each candidate where it lies in its ring, and a candidate whose
# header checks and whose last byte is where its length says runs its checksum (HDLC FCS,
# M-Bus sum) over its whole length. Candidates that overlap each run the bytes they share:
# valid HDLC headers 8 bytes apart, each 2 KB long and ending on a flag, ran 219 bytes of
# FCS a byte fed, 51 times what a real frame costs the whole decoder (docs/reliability.md).
#
# Here candidates share a chain: the CRC-16/X.25 register (or the byte sum) run once over
# the stream from the first candidate's start, kept at every 32nd ring byte (a mark), at its
# tip (the furthest end run), at its trail (the last candidate's start) and at its lag (the
# last end short of the tip). CRC-16/X.25 is linear: a candidate's register from 0xFFFF
# over its bytes a..b is the chain's register at b, plus what 0xFFFF and the chain's
# register at a add, carried over b - a bytes (one product by that shift). So a candidate
# after another runs the bytes from the trail to its start and from the tip (or the lag)
# to its end, a few bytes each, and one product; a byte sum is the same with a difference.
# Where the bytes before it are gone (the ring full from its start), its own register runs
# from its start to the first mark and is carried over whole blocks to the last mark
# before its end (finish(), first()).
#
# A hostile line repeats its candidates' lengths, so each of 4 slots holds the products by
# one shift of every nibble of a register (made at the second candidate in a row that
# needs that shift): a product is then 4 look-ups; a shift that misses its slot takes 16
# steps of the bitwise CRC. `hanctl bench --hostile --instructions` (docs/reliability.md):
# an HDLC header every 4 bytes, each frame 1,537 bytes long, costs 4.7x what a real frame
# costs the decoder, two lengths alternating 4.8x; from marks alone (every 32 bytes, a run
# from the candidate's start to the first mark and from the last to its end) 6.1x and 6.2x.
#
# Real meters never send overlapping candidates: the assembler loads this module at the
# first checksum that starts inside the last one's, so a dongle on a real line never holds
# it. On the owner's .mpy path (MicroPython 1.25 unix model) it takes 2.6 KB of .mpy in
# functions of at most ~510 B of bytecode, the biggest defined first (they find the
# biggest holes: in the other order a dongle with four destinations at 96K failed to load
# them in 4 attacks of 4, 3.9 KB of heap in all with them first), 384 B of marks and
# shifts in pieces of 64 B, and 128 B a slot at its first use. If it cannot load each
# checksum runs whole, as before marks (framing.py). Its names are ones the firmware
# already has, so it takes no sixth qstr pool (4.6 KB).

from array import array

from micropython import const

import crc16

_WRAP = const(0x1FFFFFFF)  # framing's positions wrap here
_LOG = const(5)  # log2 of a block: a mark every 32 bytes


class Blocks:
    """An Assembler's ring in blocks of 32 bytes, a mark at each, and the chains that run
    through it: its checksums (above).

    Every piece is a few hundred bytes at most: a dongle with four destinations at 96K had
    12.7 KB free after a collect, but no hole of 1 KB and few of 256 B."""

    def sum(self, k, start, end):
        """framing.Assembler.sum(): the X.25 register from 0xFFFF (k 0) or the byte sum
        (k 1) over the current candidate's bytes start..end-1.

        Here the path a hostile line takes at every candidate: the chain's trail runs on to
        the candidate's start and its tip to the candidate's end, each over the bytes since
        the last candidate's, then one product by the shift over the candidate's length.
        Anything else: finish()."""
        if k:  # M-Bus sums: the chain's registers from finish()
            return self.finish(k, start, end)
        f = self.frames
        c = self.pos
        h = f._len
        size = f.max_frame
        p = (f.received - h) & _WRAP  # the stream position of the candidate's byte 0
        x = f.frames
        # Offsets from the candidate's byte 0: one beyond reach is far off.
        t = ((c[6] - p + size) & _WRAP) - size  # the trail
        e = ((c[1] - p + size) & _WRAP) - size  # the tip
        # Past the end (lengths that alternate): the lag.
        y = ((c[11] - p + size) & _WRAP) - size if e > end else e
        if not (
            h - size <= t <= start
            and t <= y <= end
            and c[9] == (f._s - p) & (size - 1)
            and c[10] == x[1] + x[2] + x[3]
        ):
            return self.finish(k, start, end)
        buf = f.buf
        m = size - 1
        s = f._s
        r = c[7]
        x = crc16._X25
        for i in range(s + t, s + start):
            r = (r >> 8) ^ x[(r ^ buf[i & m]) & 0xFF]
        c[6] = (p + start) & _WRAP
        c[7] = r
        if y < e:
            w = c[12]
            f.work = (f.work + start - t + end - y) & _WRAP
            for i in range(s + y, s + end):
                w = (w >> 8) ^ x[(w ^ buf[i & m]) & 0xFF]
            c[11] = (p + end) & _WRAP
            c[12] = w
        else:
            f.work = (f.work + start - t) & _WRAP
            w = self.run(0, e, end, c[5]) if e < end else c[5]
        r ^= 0xFFFF  # what the candidate's 0xFFFF adds, carried to its end
        if r:
            e = end - start
            i = (e >> 2 if e & 31 else e >> 5) & 3  # apply()'s slot
            x = self.table
            if x[4][i] == e:  # its slot holds its products: 4 look-ups
                x = x[i]
                w ^= x[r & 15] ^ x[16 + (r >> 4 & 15)] ^ x[32 + (r >> 8 & 15)] ^ x[48 + (r >> 12)]
            else:
                w ^= self.apply(r, e)
        return w

    def finish(self, k, start, end):
        """sum() where the chain is not as the last candidate left it. A short candidate
        runs whole. Else the chain's tip runs on to the candidate's end, or its register
        there is run from the last mark before it; the candidate's own register at the
        first mark after its start is carried over the blocks between (a shift the slots
        hold) to the end. Else a new chain starts at the candidate. A method of its own: no
        piece of this module's bytecode is more than ~512 B (the heap of a dongle with four
        destinations at 96K had no hole of 810 B in 2 attacks of 3)."""
        f = self.frames
        c = self.pos
        h = f._len
        size = f.max_frame
        s = f._s
        g = c[4]
        b = 1 << g
        if end - start <= b:  # runs whole: no chain of longer candidates is touched
            return self.crc(k, s + start, end - start, 0 if k else 0xFFFF)
        p = (f.received - h) & _WRAP
        j = 5 + 8 * k
        x = f.frames
        n = x[1] + x[2] + x[3]
        q = (s - p) & (size - 1)  # the ring index of position 0, as the chain began
        o = ((c[2 * k] - p + size) & _WRAP) - size
        e = ((c[2 * k + 1] - p + size) & _WRAP) - size
        if c[j + 4] == q and o <= start and o <= e <= h:
            if c[j + 5] != n:
                # A frame was handed over since: its bytes, all before this candidate, may
                # have changed in place (decrypted). None before here is run again.
                c[j + 5] = n
                c[j + 3] = p
                c[j + 1] = c[j + 6] = (p - 2 * size) & _WRAP  # nor the trail nor the lag
            lo = ((c[j + 3] - p + size) & _WRAP) - size  # the floor
            if e <= end and e >= lo and e >= h - size:
                r = self.run(k, e, end, c[j])  # the tip on to the candidate's end
                e = end
            else:
                r = -1
            r = self.first(k, start, end, r, o, e)
            if r >= 0:
                return r
        # A new chain from the candidate's start: it runs the candidate whole, once.
        c[2 * k] = c[j + 1] = c[j + 3] = c[j + 6] = (p + start) & _WRAP
        c[j + 4] = q
        c[j + 5] = n
        c[j + 2] = c[j + 7] = r = 0 if k else 0xFFFF
        return self.run(k, start, end, r)

    def first(self, k, start, end, r, o, e):
        """finish()'s checksum from marks: the chain's register r at the candidate's end (if
        -1, run from the last mark before it: the lag), the candidate's own register at the
        first mark after its start, carried over the blocks between (a shift the slots
        hold) to the end; -1 when no marks lie between."""
        f = self.frames
        c = self.pos
        s = f._s
        m = f.max_frame - 1
        g = c[4]
        b = 1 << g
        z = start + b - ((s + start) & (b - 1))  # the first mark after the start
        y = end - ((s + end) & (b - 1))  # the last at or before the end
        if not (o < z <= y and e - m <= z and end <= e):
            return -1
        lo = self.marks[2 * k]
        hi = self.marks[2 * k + 1]
        p = (f.received - f._len) & _WRAP
        j = 5 + 8 * k
        if r < 0:  # a candidate shorter than the last: its end is the lag
            i = ((s + y) & m) >> g
            r = self.crc(k, s + y, end - y, lo[i] | hi[i] << 8)
            c[j + 6] = (p + end) & _WRAP
            c[j + 7] = r
        i = ((s + z) & m) >> g
        w = lo[i] | hi[i] << 8
        c[j + 1] = (p + z) & _WRAP  # the trail
        c[j + 2] = w
        i = self.crc(k, s + start, z - start, 0 if k else 0xFFFF)
        if k:
            return (r - w + i) & 0xFFFF
        w ^= i
        if w:
            if z < y:
                w = self.apply(w, y - z)
            i = crc16._X25
            for _ in range(end - y):  # times z^8 a byte: a zero byte run
                w = (w >> 8) ^ i[w & 0xFF]
        return r ^ w

    def __init__(self, frames):
        self.frames = frames
        # [0:4] per chain (X.25, sums): the stream positions of its start and of its tip
        # (the last byte it ran), [4] log2 of a block; then per chain, from 5 + 8 k: the
        # register at the tip, the trail's position and register (the chain's register at
        # the last candidate's start), the floor (no byte before it is run again), the
        # ring's index of position 0 when the chain began, the frames handed over then, and
        # the lag's position and register (the last end short of the tip).
        self.pos = [0, 0, 0, 0, _LOG] + [-1] * 16
        # [0:4] the shifts (in bytes) whose products the 4 slots of products hold (made at
        # their first use), [4:8] the last shift each missed (apply()).
        x = array("H", bytes(16))
        self.table = [None, None, None, None, x]
        for k in range(8):
            x[k] = 0xFFFF  # none
        # Blocks of 32 bytes, on every heap: 384 B of marks and shifts, in pieces of 64 B
        # (a 2 KB ring). With the trail and the tip each candidate runs only the bytes since
        # the last one's, so blocks of 8 bytes (1.5 KB, which a dongle with four
        # destinations at 96K had no room for) were no faster: `7ea5ff8d` cost 5.05x a real
        # frame with them, 4.72x with these (callgrind, `hanctl bench --hostile`).
        g = self.pos[4] = _LOG
        n = frames.max_frame >> g
        # Per chain (X.25, sums): the register at each mark, its low and high bytes.
        self.marks = (bytearray(n), bytearray(n), bytearray(n), bytearray(n))
        # The X.25 shift over k blocks of zero bytes, as a register (1 is 0x8000).
        lo = bytearray(n)
        hi = bytearray(n)
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
        c[9] = c[17] = -1

    def run(self, k, e, end, r):
        """Run the chain (k 0: X.25, 1: a sum) on from its tip at the candidate's offset e,
        register r, to its offset end, a mark at each block's start on the way: the
        register there, the chain's new tip."""
        f = self.frames
        c = self.pos
        buf = f.buf
        m = f.max_frame - 1
        t = crc16._X25
        g = c[4]
        b = (1 << g) - 1
        lo = self.marks[2 * k]
        hi = self.marks[2 * k + 1]
        i = (f._s + e) & m
        n = end - e
        f.work = (f.work + n) & _WRAP
        while n:
            d = b + 1 - (i & b)  # to the block's end: a block never crosses the ring's
            if d > n:
                d = n
            n -= d
            if k:
                for x in range(i, i + d):
                    r += buf[x]
                r &= 0xFFFF
            else:
                for x in range(i, i + d):
                    r = (r >> 8) ^ t[(r ^ buf[x]) & 0xFF]
            i = (i + d) & m
            if not i & b:
                x = i >> g
                lo[x] = r & 0xFF
                hi[x] = r >> 8
        c[2 * k + 1] = (f.received - f._len + end) & _WRAP
        c[5 + 8 * k] = r
        return r

    def crc(self, k, i, n, r):
        """Register r (k 0: X.25, 1: a sum) run over the n ring bytes from index i."""
        f = self.frames
        buf = f.buf
        m = f.max_frame - 1
        f.work = (f.work + n) & _WRAP
        if k:
            for x in range(i, i + n):
                r += buf[x & m]
            return r & 0xFFFF
        t = crc16._X25
        for x in range(i, i + n):
            r = (r >> 8) ^ t[(r ^ buf[x & m]) & 0xFF]
        return r

    def apply(self, w, d):
        """Register w times the shift over d bytes: 4 look-ups where a slot of products
        holds d (a hostile line repeats its lengths); a miss fills an empty slot, the
        second miss in a row one in use, else a product a bit at a time (16 steps of the
        bitwise CRC: the nibble tables this once used cost 200 B more of bytecode, which a
        dongle with four destinations at 96K had no room for)."""
        keys = self.table[4]
        # Each in its slot: lengths 4 bytes apart (headers 4 apart of two lengths: 477 and
        # 1,537 bytes), and whole numbers of 32-byte blocks (finish()).
        q = (d >> 2 if d & 31 else d >> 5) & 3
        # An empty slot is filled at once, one in use at the second miss in a row.
        if keys[q] != d and not ((keys[4 + q] == d or not self.table[q]) and self.fill(q, d)):
            keys[4 + q] = d
            x = self.fill(-1, d)
            r = 0
            while x:  # x's bit 0x8000 is z^0, 0x4000 z^1, ...
                if x & 0x8000:
                    r ^= w
                x = (x << 1) & 0xFFFF
                w = (w >> 1) ^ 0x8408 if w & 1 else w >> 1
            return r
        t = self.table[q]
        return t[w & 15] ^ t[16 + (w >> 4 & 15)] ^ t[32 + (w >> 8 & 15)] ^ t[48 + (w >> 12)]

    def fill(self, q, d):
        """Slot q of products, made to hold the shift over d bytes: the register's products
        by every nibble, in 60 steps, where a product costs 16 steps (apply()): each
        product is then 4 look-ups and no call. None with no heap for it.
        With q -1, the shift itself, as a register: from the table of whole blocks, then
        up to a block of zero bytes."""
        lo, hi = self.base
        g = self.pos[4]
        x = lo[d >> g] | hi[d >> g] << 8
        t = crc16._X25
        for _ in range(d & ((1 << g) - 1)):
            x = (x >> 8) ^ t[x & 0xFF]
        if q < 0:
            return x
        table = self.table
        t = table[q]
        if t is None:
            try:  # made at its first use: 128 B
                t = table[q] = array("H", bytes(128))
            except MemoryError:
                return None
        for i in range(15, -1, -1):  # bit i of a register: x times z^(15 - i)
            t[(i >> 2 << 4) + (1 << (i & 3))] = x
            x = (x >> 1) ^ 0x8408 if x & 1 else x >> 1
        for i in range(0, 64, 16):
            for x in (2, 4, 8):
                for g in range(1, x):
                    t[i + x + g] = t[i + x] ^ t[i + g]
        table[4][q] = d
        return t
