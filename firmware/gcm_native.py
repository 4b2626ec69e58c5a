# GHASH and the counter mode's xor of gcm.py as machine code (MicroPython's viper emitter),
# for a runtime that can load it: gcm.py imports this module inside try and keeps its
# bytecode when the import fails. Compiled by mpy-cross with -march for the target (x86
# for the 32-bit host model, xtensawin for an ESP32: runtime.compile_firmware()); an
# ESP32 image loads native .mpy code (ports/esp32/mpconfigport.h: MICROPY_EMIT_XTENSAWIN,
# MICROPY_PERSISTENT_CODE_LOAD) into executable RAM outside the GC heap (ports/esp32/
# main.c, esp_native_code_commit).
#
# Viper ints are machine words, so the GHASH state is four 32-bit words here and the
# multiplication by H goes bit by bit (SP 800-38D 6.3, Algorithm 1) with no table: the
# 2 KB of gcm.py's tables are not made when this module loads.

# ruff: noqa: F821 - ptr8 and uint are viper's types, names only its compiler knows
import micropython


@micropython.viper
def feed(state, h: ptr8, buf: ptr8, start: int, end: int):
    """state = (state xor block) * H for each 16-byte block of buf[start:end] (a multiple
    of 16); state is gcm.Key's list of eight big-endian 16-bit words, h the 16 bytes of H
    (gcm.Key.table when this module loaded). Named as gcm.Key's methods: no new qstr."""
    y0 = (uint(int(state[0])) << 16) | uint(int(state[1]))
    y1 = (uint(int(state[2])) << 16) | uint(int(state[3]))
    y2 = (uint(int(state[4])) << 16) | uint(int(state[5]))
    y3 = (uint(int(state[6])) << 16) | uint(int(state[7]))
    h0 = (uint(h[0]) << 24) | (uint(h[1]) << 16) | (uint(h[2]) << 8) | uint(h[3])
    h1 = (uint(h[4]) << 24) | (uint(h[5]) << 16) | (uint(h[6]) << 8) | uint(h[7])
    h2 = (uint(h[8]) << 24) | (uint(h[9]) << 16) | (uint(h[10]) << 8) | uint(h[11])
    h3 = (uint(h[12]) << 24) | (uint(h[13]) << 16) | (uint(h[14]) << 8) | uint(h[15])
    r = uint(0xE1) << 24  # x^128 = x^7 + x^2 + x + 1, bit-reflected
    o = start
    while o < end:
        x0 = y0 ^ (
            (uint(buf[o]) << 24)
            | (uint(buf[o + 1]) << 16)
            | (uint(buf[o + 2]) << 8)
            | uint(buf[o + 3])
        )
        x1 = y1 ^ (
            (uint(buf[o + 4]) << 24)
            | (uint(buf[o + 5]) << 16)
            | (uint(buf[o + 6]) << 8)
            | uint(buf[o + 7])
        )
        x2 = y2 ^ (
            (uint(buf[o + 8]) << 24)
            | (uint(buf[o + 9]) << 16)
            | (uint(buf[o + 10]) << 8)
            | uint(buf[o + 11])
        )
        x3 = y3 ^ (
            (uint(buf[o + 12]) << 24)
            | (uint(buf[o + 13]) << 16)
            | (uint(buf[o + 14]) << 8)
            | uint(buf[o + 15])
        )
        y0 = y1 = y2 = y3 = uint(0)
        v0 = h0
        v1 = h1
        v2 = h2
        v3 = h3
        w = 0
        while w < 4:
            x = x0 if w == 0 else x1 if w == 1 else x2 if w == 2 else x3
            b = 0
            while b < 32:
                if x & (uint(1) << (31 - b)):
                    y0 ^= v0
                    y1 ^= v1
                    y2 ^= v2
                    y3 ^= v3
                low = v3 & 1
                v3 = (v3 >> 1) | (v2 << 31)
                v2 = (v2 >> 1) | (v1 << 31)
                v1 = (v1 >> 1) | (v0 << 31)
                v0 = v0 >> 1
                if low:
                    v0 ^= r
                b += 1
            w += 1
        o += 16
    state[0] = int(y0 >> 16)
    state[1] = int(y0 & 0xFFFF)
    state[2] = int(y1 >> 16)
    state[3] = int(y1 & 0xFFFF)
    state[4] = int(y2 >> 16)
    state[5] = int(y2 & 0xFFFF)
    state[6] = int(y3 >> 16)
    state[7] = int(y3 & 0xFFFF)


@micropython.viper
def apply(aes, counter, stream, buf: ptr8, start: int, end: int, out: ptr8):
    """out[start:end] = buf[start:end] xor the keystream of counter blocks 2, 3, ... (the
    counter's first 14 bytes already IV || 0 0), each encrypted by aes into stream: gcm.Key's
    aes, counter and stream (16 bytes each, no buffer grows with the text)."""
    c = ptr8(counter)
    s = ptr8(stream)
    n = 2
    o = start
    while o < end:
        c[14] = n >> 8
        c[15] = n & 255
        aes.encrypt(counter, stream)
        k = 0
        while k < 16 and o < end:
            out[o] = buf[o] ^ s[k]
            o += 1
            k += 1
        n += 1
