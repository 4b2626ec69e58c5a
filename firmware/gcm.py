# AES-128-GCM decryption and tag check (NIST SP 800-38D), for DLMS security suite 0: the
# ciphered APDUs of Danish, Austrian, Swiss and Luxembourg meters (security.py unwraps them).
# Pure layer: no I/O, no allocation per frame once a Key is made.
#
# The block cipher is MicroPython's cryptolib, mode 1 (ECB) only. Read in micropython/
# micropython at v1.23.0, v1.24.0, v1.25.0, v1.26.0 and v1.26.1:
# - ports/esp32/mpconfigport.h sets MICROPY_PY_CRYPTOLIB (1) and not MICROPY_PY_CRYPTOLIB_CTR,
#   which py/mpconfig.h defaults to (0): on an ESP32 board aes(key, 6, iv) raises
#   ValueError("mode"). The unix port builds CTR only in its coverage variant
#   (ports/unix/variants/coverage/mpconfigvariant.h); both host images here lack it.
#   (v1.27 and v1.28 drop the esp32 line: py/mpconfig.h then enables cryptolib with SSL.)
# - extmod/modcryptolib.c, aes_process(): ECB (mode 1) takes any multiple of 16 bytes, and
#   with an `out` buffer writes there and allocates nothing; on an ESP32 it is
#   mbedtls_aes_crypt_ecb, which ESP-IDF runs on the AES peripheral. An aes object that has
#   encrypted refuses to decrypt ("can't encrypt & decrypt"): GCM only encrypts.
# So the counter mode and GHASH are written here.
#
# GHASH, multiplication by H in GF(2^128), is the cost. Measured on the 32-bit unix port
# (MicroPython 1.25, build/official-unix), 20 blocks (320 bytes), x86 instructions counted
# by valgrind (wall time here varies by +-30 % with the machine's load):
#   Python ints, 256 ints of b*H (12 KB), one reduction a block  0.38 M, 41,856 B garbage
#   Shoup's 4-bit table, 8 16-bit words shifted 4 bits a step      5.41 M
#   16-bit words renamed, 4 nibble tables a word (2 KB)            1.99 M, 0 B
#   16-bit words renamed, 2 byte tables a word in lists (16 KB)    1.03 M, 0 B
#   16-bit words renamed, 2 byte tables in array('H') (8 KB)       1.12 M, 0 B
#   16-bit words renamed, fields of 6, 5, 5 bits in array('H') (2 KB)  ~1.5 M, 0 B   <- this
# (the last by bench_gcm.py: an Aidon List 3's open(), tag checked, 1,948 k instructions with
# the byte tables, 2,493 k with these; 520 k by gcm_native's machine code, bit by bit, no
# table). The 8 KB did not fit the owner's heap at 96K beside one destination: every push
# counted `memory` (docs/performance.md).
# Ints are fastest on an empty heap (58 us against 150 us), but every operation allocates:
# 41 KB of garbage is 20 times the 2 KB a frame may take, and at -X heapsize=96K with 51 KB
# live, as a dongle runs, collections bring them to 156-173 us. 32-bit words would not be
# small ints on a 32-bit port (31 bits), so the state is eight 16-bit words. A step
# multiplies by x^16: rather than shifting eight words, the code renames them (word i
# lives in z[(i - step) % 8]) and folds the one word that falls off back in with x^128 =
# x^7 + x^2 + x + 1. Each 16-bit digit of the block then costs three table rows (its
# fields times H), 8 words each.

from array import array
from sys import implementation

from cryptolib import aes
from micropython import const

# GHASH and the counter mode as machine code where the runtime loads it (gcm_native.py
# says where): a List 3 frame's open() in a third of the instructions, and no 2 KB of
# tables. Otherwise the bytecode below. ImportError: no gcm_native; ValueError: its .mpy
# was built for another architecture ("incompatible .mpy arch"); SyntaxError: its source
# on a port without the viper emitter; MemoryError: no executable RAM left for its code
# (an ESP32's esp_native_code_commit, ports/esp32/main.c). CPython (the host tests import
# the firmware too) runs no viper: its ints do not wrap. gcm_native is None then
# (bench_gcm.py says which ran).
gcm_native = None
if implementation.name == "micropython":
    try:
        import gcm_native
    except (ImportError, ValueError, SyntaxError, MemoryError):
        gcm_native = None

_ECB = const(1)
# Counter blocks 2 .. 0xFFFF: the counter's top two bytes stay 0 (and longer input than
# any buffer of the dongle is refused rather than counted wrongly).
_MAX_BYTES = const(0xFFFD * 16)
_MIN_TAG = const(12)  # DLMS sends 12 bytes; SP 800-38D's 96..128-bit tags


class Key:
    """One AES-128 key made ready for GCM: its cryptolib schedule, the GHASH tables of
    H = E(K, 0^128) (8 x 128 16-bit words, 2 KB; H's 16 bytes alone where gcm_native
    runs) and the buffers of a frame's work. A dongle makes it once per configured key and
    reuses it for every frame.

    Raises ValueError when key is not 16 bytes (config validation's job to say first).
    """

    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("key")
        self.aes = aes(key, _ECB)
        self.counter = bytearray(16)  # IV || 32-bit counter
        self.stream = bytearray(16)  # the counter block encrypted: keystream, then E(J0)
        self.pending = bytearray(16)  # a partial block waiting to go through GHASH
        self.fill = 0
        self.state = [0] * 8  # the GHASH state, 8 big-endian 16-bit words
        self.last = None  # the AAD last hashed, and the state after it (DLMS: SC || AK)
        self.base = [0] * 8
        h = self.stream
        self.aes.encrypt(self.pending, h)  # H = E(K, 0^128)
        if gcm_native:  # H itself is all gcm_native.feed needs
            self.table = bytes(h)
            return
        # table[i][e]: word i of a digit's field times H. A 16-bit digit's bits 15..10 (x^0
        # .. x^5 of it, bit 15 being x^0) index entries 0..63, bits 9..5 entries 64..95
        # and bits 4..0 entries 96..127: digit * H = t[i][d >> 10] ^ t[i][64 + (d >> 5 &
        # 31)] ^ t[i][96 + (d & 31)]. H * x^k by shifting right, reducing with 0xE1 (SP
        # 800-38D 6.3); the other entries by linearity.
        v = [(h[2 * i] << 8) | h[2 * i + 1] for i in range(8)]
        t = [array("H", bytes(256)) for _ in range(8)]
        for k in range(16):
            # x^k is bit 15 - k of the digit: its entry in the field that holds it
            e = (
                0x20 >> k
                if k < 6
                else 64 + (0x10 >> (k - 6))
                if k < 11
                else 96 + (0x10 >> (k - 11))
            )
            for i in range(8):
                t[i][e] = v[i]
            low = v[7] & 1  # v = v * x
            for i in range(7, 0, -1):
                v[i] = (v[i] >> 1) | ((v[i - 1] & 1) << 15)
            v[0] >>= 1
            if low:
                v[0] ^= 0xE100
        for w in t:
            for base, n in ((0, 64), (64, 32), (96, 32)):
                for d in range(3, n):
                    one = d & -d
                    if one != d:
                        w[base + d] = w[base + one] ^ w[base + (d ^ one)]
        self.table = t

    def decrypt(self, iv, aad, buf, start, end, out, tag=-1, tag_len=12):
        """Decrypt buf[start:end] into out[start:end] (out may be buf: in place) with the
        12-byte iv; with tag >= 0, first check the tag buf[tag:tag + tag_len] over
        aad and the ciphertext. True when done; False, and out untouched, when the tag does
        not hold or the arguments do not fit (lengths, offsets): never raises on them."""
        n = end - start
        if not (0 <= start <= end <= len(buf) and end <= len(out) and len(iv) == 12):
            return False
        if n > _MAX_BYTES:
            return False
        c = self.counter  # IV || counter 0: the text's blocks are counted from 2 (apply)
        for i in range(12):
            c[i] = iv[i]
        c[12] = c[13] = 0
        if tag >= 0:
            self.reset(aad)
            self.feed(buf, start, end)
            self.finish()
            if not self.check(len(aad), n, buf, tag, tag_len):
                return False
        self.apply(buf, start, end, out)
        return True

    def verify(self, iv, aad, buf, start, end, tag, tag_len=12):
        """GMAC: True when the tag buf[tag:tag + tag_len] holds over aad followed by
        buf[start:end], nothing encrypted (DLMS security control 0x10). Never raises on
        lengths or offsets that do not fit: False."""
        if not (0 <= start <= end <= len(buf) and len(iv) == 12):
            return False
        if end - start > _MAX_BYTES:
            return False
        c = self.counter
        for i in range(12):
            c[i] = iv[i]
        c[12] = c[13] = 0
        for i in range(8):
            self.state[i] = 0
        self.fill = 0
        self.feed(aad, 0, len(aad))
        self.feed(buf, start, end)
        self.finish()
        return self.check(len(aad) + end - start, 0, buf, tag, tag_len)

    def reset(self, aad):
        """The GHASH state after aad, zero-padded: from the last frame's when aad is the same
        (a DLMS meter's SC || AK is), which spares two of a List 3 frame's ~20 blocks."""
        y = self.state
        self.fill = 0
        if aad == self.last:
            for i in range(8):
                y[i] = self.base[i]
            return
        for i in range(8):
            y[i] = 0
        self.feed(aad, 0, len(aad))
        self.finish()
        self.last = bytes(aad)  # a new AAD: a new key or security byte, not every frame
        for i in range(8):
            self.base[i] = y[i]

    def feed(self, data, start, end):
        """GHASH data[start:end], a partial last block kept for the next call or _pad()."""
        p = self.pending
        f = self.fill
        if f:
            while f < 16 and start < end:
                p[f] = data[start]
                f += 1
                start += 1
            if f < 16:
                self.fill = f
                return
            (gcm_native.feed if gcm_native else _ghash)(self.state, self.table, p, 0, 16)
            f = 0
        full = start + ((end - start) & ~15)
        if full > start:
            (gcm_native.feed if gcm_native else _ghash)(self.state, self.table, data, start, full)
        while full < end:
            p[f] = data[full]
            f += 1
            full += 1
        self.fill = f

    def finish(self):
        f = self.fill
        if f:
            p = self.pending
            while f < 16:
                p[f] = 0
                f += 1
            (gcm_native.feed if gcm_native else _ghash)(self.state, self.table, p, 0, 16)
            self.fill = 0

    def check(self, a, c, buf, tag, tag_len):
        """True when the tag buf[tag:tag + tag_len] holds; False too when it does not
        fit in buf or its length is not SP 800-38D's (12 to 16 bytes here). a, c: the
        AAD's and the text's lengths in bytes (SP 800-38D's len(A), len(C), in bits below;
        short names: every name is a qstr on the heap)."""
        if not (_MIN_TAG <= tag_len <= 16 and 0 <= tag and tag + tag_len <= len(buf)):
            return False
        # The lengths block: bit lengths of the AAD and the text, 64-bit big-endian each.
        p = self.pending
        a <<= 3
        c <<= 3
        for i in range(4):
            p[i] = 0
            p[8 + i] = 0
            p[7 - i] = (a >> (8 * i)) & 255
            p[15 - i] = (c >> (8 * i)) & 255
        y = self.state
        (gcm_native.feed if gcm_native else _ghash)(y, self.table, p, 0, 16)
        # T = E(K, J0) xor GHASH, J0 = IV || 0^31 || 1. Every byte compared, no early exit.
        c = self.counter
        c[15] = 1
        s = self.stream
        self.aes.encrypt(c, s)
        diff = 0
        for k in range(tag_len):
            w = y[k >> 1]
            diff |= ((w & 255) if k & 1 else (w >> 8)) ^ s[k] ^ buf[tag + k]
        return diff == 0

    def apply(self, buf, start, end, out):
        # The text's counter blocks are 2, 3, ...: one at a time, into the same 16 bytes,
        # so no buffer grows with the frame.
        if gcm_native:
            gcm_native.apply(self.aes, self.counter, self.stream, buf, start, end, out)
            return
        c = self.counter
        ks = self.stream
        e = self.aes  # not e = ....encrypt: a bound method is a heap object
        n = 2
        o = start
        full = start + ((end - start) & ~15)
        while o < full:
            c[14] = n >> 8
            c[15] = n & 255
            e.encrypt(c, ks)
            out[o] = buf[o] ^ ks[0]
            out[o + 1] = buf[o + 1] ^ ks[1]
            out[o + 2] = buf[o + 2] ^ ks[2]
            out[o + 3] = buf[o + 3] ^ ks[3]
            out[o + 4] = buf[o + 4] ^ ks[4]
            out[o + 5] = buf[o + 5] ^ ks[5]
            out[o + 6] = buf[o + 6] ^ ks[6]
            out[o + 7] = buf[o + 7] ^ ks[7]
            out[o + 8] = buf[o + 8] ^ ks[8]
            out[o + 9] = buf[o + 9] ^ ks[9]
            out[o + 10] = buf[o + 10] ^ ks[10]
            out[o + 11] = buf[o + 11] ^ ks[11]
            out[o + 12] = buf[o + 12] ^ ks[12]
            out[o + 13] = buf[o + 13] ^ ks[13]
            out[o + 14] = buf[o + 14] ^ ks[14]
            out[o + 15] = buf[o + 15] ^ ks[15]
            o += 16
            n += 1
        if o < end:
            c[14] = n >> 8
            c[15] = n & 255
            e.encrypt(c, ks)
            for k in range(end - o):
                out[o + k] = buf[o + k] ^ ks[k]


def _ghash(state, table, buf, start, end):
    """state = (state xor block) * H for each 16-byte block of buf[start:end] (a multiple
    of 16), with table, Key.table.

    The block's 16-bit word j is its digit j (x^16j .. x^16j+15), taken apart into three
    fields (Key.__init__). Digit 7 goes in first, as in Shoup's method, and each one before it
    after Z = Z * x^16. Unrolled, the tables in locals: the renaming is in the variable
    names. Word i of the state lives in z[(i + 1) % 8] between blocks.
    """
    t0, t1, t2, t3, t4, t5, t6, t7 = table
    z1, z2, z3, z4, z5, z6, z7, z0 = state
    for o in range(start, end, 16):
        # X = Y xor block, as fields: all of them before z is overwritten
        d = z1 ^ (buf[o] << 8) ^ buf[o + 1]
        h0, m0, l0 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z2 ^ (buf[o + 2] << 8) ^ buf[o + 3]
        h1, m1, l1 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z3 ^ (buf[o + 4] << 8) ^ buf[o + 5]
        h2, m2, l2 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z4 ^ (buf[o + 6] << 8) ^ buf[o + 7]
        h3, m3, l3 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z5 ^ (buf[o + 8] << 8) ^ buf[o + 9]
        h4, m4, l4 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z6 ^ (buf[o + 10] << 8) ^ buf[o + 11]
        h5, m5, l5 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z7 ^ (buf[o + 12] << 8) ^ buf[o + 13]
        h6, m6, l6 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)
        d = z0 ^ (buf[o + 14] << 8) ^ buf[o + 15]
        h7, m7, l7 = d >> 10, 64 + (d >> 5 & 31), 96 + (d & 31)

        # digit 7: Z = digit * H; word i in z[i]
        z0 = t0[h7] ^ t0[m7] ^ t0[l7]
        z1 = t1[h7] ^ t1[m7] ^ t1[l7]
        z2 = t2[h7] ^ t2[m7] ^ t2[l7]
        z3 = t3[h7] ^ t3[m7] ^ t3[l7]
        z4 = t4[h7] ^ t4[m7] ^ t4[l7]
        z5 = t5[h7] ^ t5[m7] ^ t5[l7]
        z6 = t6[h7] ^ t6[m7] ^ t6[l7]
        z7 = t7[h7] ^ t7[m7] ^ t7[l7]
        # digit 6: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 1) % 8]
        t = z7 ^ (z7 << 5) ^ (z7 << 6) ^ (z7 << 7)
        z7 = (t >> 7) ^ t0[h6] ^ t0[m6] ^ t0[l6]
        z0 ^= ((t & 127) << 9) ^ t1[h6] ^ t1[m6] ^ t1[l6]
        z1 ^= t2[h6] ^ t2[m6] ^ t2[l6]
        z2 ^= t3[h6] ^ t3[m6] ^ t3[l6]
        z3 ^= t4[h6] ^ t4[m6] ^ t4[l6]
        z4 ^= t5[h6] ^ t5[m6] ^ t5[l6]
        z5 ^= t6[h6] ^ t6[m6] ^ t6[l6]
        z6 ^= t7[h6] ^ t7[m6] ^ t7[l6]
        # digit 5: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 2) % 8]
        t = z6 ^ (z6 << 5) ^ (z6 << 6) ^ (z6 << 7)
        z6 = (t >> 7) ^ t0[h5] ^ t0[m5] ^ t0[l5]
        z7 ^= ((t & 127) << 9) ^ t1[h5] ^ t1[m5] ^ t1[l5]
        z0 ^= t2[h5] ^ t2[m5] ^ t2[l5]
        z1 ^= t3[h5] ^ t3[m5] ^ t3[l5]
        z2 ^= t4[h5] ^ t4[m5] ^ t4[l5]
        z3 ^= t5[h5] ^ t5[m5] ^ t5[l5]
        z4 ^= t6[h5] ^ t6[m5] ^ t6[l5]
        z5 ^= t7[h5] ^ t7[m5] ^ t7[l5]
        # digit 4: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 3) % 8]
        t = z5 ^ (z5 << 5) ^ (z5 << 6) ^ (z5 << 7)
        z5 = (t >> 7) ^ t0[h4] ^ t0[m4] ^ t0[l4]
        z6 ^= ((t & 127) << 9) ^ t1[h4] ^ t1[m4] ^ t1[l4]
        z7 ^= t2[h4] ^ t2[m4] ^ t2[l4]
        z0 ^= t3[h4] ^ t3[m4] ^ t3[l4]
        z1 ^= t4[h4] ^ t4[m4] ^ t4[l4]
        z2 ^= t5[h4] ^ t5[m4] ^ t5[l4]
        z3 ^= t6[h4] ^ t6[m4] ^ t6[l4]
        z4 ^= t7[h4] ^ t7[m4] ^ t7[l4]
        # digit 3: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 4) % 8]
        t = z4 ^ (z4 << 5) ^ (z4 << 6) ^ (z4 << 7)
        z4 = (t >> 7) ^ t0[h3] ^ t0[m3] ^ t0[l3]
        z5 ^= ((t & 127) << 9) ^ t1[h3] ^ t1[m3] ^ t1[l3]
        z6 ^= t2[h3] ^ t2[m3] ^ t2[l3]
        z7 ^= t3[h3] ^ t3[m3] ^ t3[l3]
        z0 ^= t4[h3] ^ t4[m3] ^ t4[l3]
        z1 ^= t5[h3] ^ t5[m3] ^ t5[l3]
        z2 ^= t6[h3] ^ t6[m3] ^ t6[l3]
        z3 ^= t7[h3] ^ t7[m3] ^ t7[l3]
        # digit 2: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 5) % 8]
        t = z3 ^ (z3 << 5) ^ (z3 << 6) ^ (z3 << 7)
        z3 = (t >> 7) ^ t0[h2] ^ t0[m2] ^ t0[l2]
        z4 ^= ((t & 127) << 9) ^ t1[h2] ^ t1[m2] ^ t1[l2]
        z5 ^= t2[h2] ^ t2[m2] ^ t2[l2]
        z6 ^= t3[h2] ^ t3[m2] ^ t3[l2]
        z7 ^= t4[h2] ^ t4[m2] ^ t4[l2]
        z0 ^= t5[h2] ^ t5[m2] ^ t5[l2]
        z1 ^= t6[h2] ^ t6[m2] ^ t6[l2]
        z2 ^= t7[h2] ^ t7[m2] ^ t7[l2]
        # digit 1: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 6) % 8]
        t = z2 ^ (z2 << 5) ^ (z2 << 6) ^ (z2 << 7)
        z2 = (t >> 7) ^ t0[h1] ^ t0[m1] ^ t0[l1]
        z3 ^= ((t & 127) << 9) ^ t1[h1] ^ t1[m1] ^ t1[l1]
        z4 ^= t2[h1] ^ t2[m1] ^ t2[l1]
        z5 ^= t3[h1] ^ t3[m1] ^ t3[l1]
        z6 ^= t4[h1] ^ t4[m1] ^ t4[l1]
        z7 ^= t5[h1] ^ t5[m1] ^ t5[l1]
        z0 ^= t6[h1] ^ t6[m1] ^ t6[l1]
        z1 ^= t7[h1] ^ t7[m1] ^ t7[l1]
        # digit 0: Z = Z * x^16 + digit * H, the word that falls off folded back in;
        # word i now in z[(i - 7) % 8]
        t = z1 ^ (z1 << 5) ^ (z1 << 6) ^ (z1 << 7)
        z1 = (t >> 7) ^ t0[h0] ^ t0[m0] ^ t0[l0]
        z2 ^= ((t & 127) << 9) ^ t1[h0] ^ t1[m0] ^ t1[l0]
        z3 ^= t2[h0] ^ t2[m0] ^ t2[l0]
        z4 ^= t3[h0] ^ t3[m0] ^ t3[l0]
        z5 ^= t4[h0] ^ t4[m0] ^ t4[l0]
        z6 ^= t5[h0] ^ t5[m0] ^ t5[l0]
        z7 ^= t6[h0] ^ t6[m0] ^ t6[l0]
        z0 ^= t7[h0] ^ t7[m0] ^ t7[l0]
    state[0] = z1
    state[1] = z2
    state[2] = z3
    state[3] = z4
    state[4] = z5
    state[5] = z6
    state[6] = z7
    state[7] = z0
