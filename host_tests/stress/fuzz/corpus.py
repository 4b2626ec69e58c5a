"""Fuzz inputs for the decoder: the seeds, a seeded mutator, and the resealing of frames.

An input is one mode byte and a body:
  mode 0  RAW     the body is a byte stream, fed as the UART delivers it
  mode 1  SEALED  the same, after every frame in it got its checksums fixed (seal()):
                  mutations then reach A-XDR, DLMS and the normalizer instead of dying
                  at the HCS, FCS, M-Bus sum or P1 CRC
  mode 2  APDU    the body is a bare DLMS APDU for Decoder.apdu()
(mode = first byte % 3, so any byte string is an input.)

Seeds: every capture in ../shared/vectors (host_tests/vectors.py loads them; they are
never copied here) as a RAW and a SEALED stream, the APDU inside each, the published
decrypted APDUs, plus the self-contained frames of hanctl.encoder and host_tests/frames.py so
the fuzz has seeds where the captures are absent.

The CRCs here are written from the standards, not taken from firmware/crc16.py: resealing
with the code under test would hide a CRC bug from the fuzz.
"""

RAW, SEALED, APDU = 0, 1, 2
MODES = 3

# Bytes that mean something to one of the layers: frame starts and ends, the LLC header,
# APDU and A-XDR tags, length prefixes.
INTERESTING = bytes(
    [0x7E, 0xA0, 0xA8, 0x68, 0x16, 0x2F, 0x21, 0x0A, 0x0D, 0x28, 0x29, 0x2A, 0x00, 0xFF]
    + [0x80, 0x81, 0x82, 0x83, 0x7F, 0xE6, 0xE7, 0xE0, 0xC0, 0x0F, 0xDB, 0x01, 0x02]
    + [0x06, 0x09, 0x0A, 0x0C, 0x10, 0x12, 0x13, 0x16, 0x17, 0x18, 0x19]
)


def _table(poly):
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c)
    return t


_X25 = _table(0x8408)  # CRC-16/X.25 (HDLC HCS/FCS), reflected
_ARC = _table(0xA001)  # CRC-16/ARC (P1)


def _crc(table, crc, data):
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def x25(data):
    return _crc(_X25, 0xFFFF, data) ^ 0xFFFF


def arc(data):
    return _crc(_ARC, 0, data)


# -- sealing ------------------------------------------------------------------------------


def _hcs_at(b, i, end):
    """Index of the HCS of the HDLC frame starting at b[i], or -1 (IEC 62056-46 6.4.2:
    addresses of 1, 2 or 4 bytes, extended while bit 0 is clear)."""
    k = i + 3
    for _ in range(2):
        n = 1
        while k < end and not b[k] & 1:
            k += 1
            n += 1
            if n > 4:
                return -1
        if n == 3:
            return -1
        k += 1
    k += 1  # control
    return k if k + 2 <= end else -1


def seal(body):
    """body with the checksums of every frame it holds made right, and their end bytes.

    HDLC 7E Ax: the length field says where the frame ends; HCS and FCS are recomputed and
    the closing flag set. M-Bus 68 L L 68: the sum and the 16 stop byte. P1 '/'..'\\n!':
    the CRC digits after '!' (as many as were there, up to 4) are rewritten.
    """
    b = bytearray(body)
    n = len(b)
    i = 0
    while i < n:
        c = b[i]
        if c == 0x7E and i + 2 < n and b[i + 1] & 0xF0 == 0xA0:
            total = ((b[i + 1] & 0x07) << 8 | b[i + 2]) + 2
            end = i + total
            h = _hcs_at(b, i, end - 3) if total >= 9 and end <= n else -1
            if h > 0:
                if h + 2 < end - 3:  # an information field: the HCS guards the header
                    b[h : h + 2] = x25(b[i + 1 : h]).to_bytes(2, "little")
                b[end - 3 : end - 1] = x25(b[i + 1 : end - 3]).to_bytes(2, "little")
                b[end - 1] = 0x7E
                i = end - 1  # the closing flag may open the next frame
                continue
        elif c == 0x68 and i + 3 < n and b[i + 3] == 0x68 and b[i + 1] == b[i + 2]:
            end = i + b[i + 1] + 6
            if end <= n:
                b[end - 2] = sum(b[i + 4 : end - 2]) & 0xFF
                b[end - 1] = 0x16
                i = end
                continue
        elif c == 0x2F:
            bang = b.find(b"\n!", i)
            if bang > 0:
                bang += 1
                k = bang + 1
                while k < n and k - bang <= 4 and b[k] in b"0123456789ABCDEFabcdef":
                    k += 1
                if k > bang + 1:
                    digits = b"%0*X" % (k - bang - 1, arc(b[i : bang + 1]))
                    b[bang + 1 : k] = digits[-(k - bang - 1) :]
                i = k
                continue
        i += 1
    return bytes(b)


# -- seeds ---------------------------------------------------------------------------------


def _apdus(streams):
    """The APDU of each push in the streams, as the decoder hands it to the DLMS layer."""
    from decoder import Decoder

    found = []

    class Recording(Decoder):
        def decode_apdu(self, data, start, end):
            found.append(bytes(data[start:end]))
            return super().decode_apdu(data, start, end)

    for stream in streams:
        d = Recording(lambda r: None)
        d.feed(stream)
        d.end()
    return found


# The cases of host_tests/frames.py of a few KB of one repeated frame or byte: each proves a
# bound, and their mutants cost up to a second each (runs of '/', docs/reliability.md), so
# the seeded CI run leaves them out; atheris weighs inputs by their time and keeps them.
STRESS = ("slashes", "infoless_segments")


def seeds(with_vectors=True, stress=True):
    """[input bytes]: the seed corpus, each once, in a stable order."""
    import frames
    import vectors
    from hanctl import encoder

    streams, apdus = [], []
    if with_vectors and vectors.missing_reason() is None:
        for case in vectors.load_cases():
            data = b"".join(case.chunks)
            if case.framing == "llc":
                apdus.append(data[3:])
            elif case.framing == "apdu":
                apdus.append(data)
            else:
                streams.append(data)
            plain = case.frame.get("plaintext_apdu_hex")
            if plain:
                apdus.append(bytes.fromhex(plain))
    streams += [frame for _, frame in encoder.sample_frames()]
    for name, (framing, chunks) in frames.CASES.items():
        if name in STRESS and not stress:
            continue
        if framing in ("llc", "apdu"):
            apdus.append(chunks[0][3:] if framing == "llc" else chunks[0])
        else:
            streams.append(b"".join(chunks))
    apdus += _apdus(streams)
    out = [bytes([RAW]) + s for s in streams]
    out += [bytes([SEALED]) + s for s in streams]
    out += [bytes([APDU]) + a for a in apdus]
    return list(dict.fromkeys(out))  # the same frame from two sources once


def ciphered_seeds(key, auth_key=None):
    """[input bytes]: the HDLC frames of seeds() that carry one LLC + APDU, and their APDUs,
    again as a meter that encrypts sends them (hanctl's encoder: AES-128-GCM, 0x30 with
    auth_key, else 0x20), and its P1 telegrams as Luxembourg's meters send them (0x30 with
    their auth key), the invocation counter one up each."""
    from hanctl import encoder

    out = []
    counter = 0
    for seed in seeds(with_vectors=False, stress=False):
        mode, body = seed[0], seed[1:]
        counter += 1
        if mode == APDU:
            out.append(bytes([APDU]) + encoder.cipher(body, key, auth_key, counter))
            continue
        frame = body
        if mode == RAW and frame[:1] == b"/":  # a P1 telegram: as Luxembourg's meters send it
            ak = auth_key or encoder.LUXEMBOURG_AUTH_KEY  # without: the telegram's CRC checks
            out.append(bytes([RAW]) + encoder.luxembourg(frame, key, ak, counter))
            continue
        if mode != RAW or frame[:1] != b"\x7e" or frame[-1:] != b"\x7e":
            continue
        try:
            sealed = encoder.sealed_hdlc(frame, key, auth_key, counter)
        except (ValueError, IndexError):  # not one frame of LLC + APDU
            continue
        out.append(bytes([RAW]) + sealed)
        out.append(bytes([SEALED]) + sealed)
    return list(dict.fromkeys(out))


# -- the seeded mutator (CI and the MicroPython corpus; atheris brings its own) ------------


def mutate(rng, corpus, max_len=4096):
    """One input made from corpus (seed inputs) by 1-4 random edits: bit flips,
    truncations, duplications, splices of two inputs, random bytes of random length."""
    base = rng.choice(corpus)
    mode = base[0] if rng.random() > 0.05 else rng.randrange(256)
    b = bytearray(base[1:])
    for _ in range(rng.randint(1, 4)):
        _edit(rng, corpus, b)
    return bytes([mode]) + bytes(b[:max_len])


def _edit(rng, corpus, b):
    op = rng.randrange(10)
    n = len(b)
    if op == 0 and n:  # bit flips
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == 1 and n:  # truncation: the end, or the start, cut off
        k = rng.randrange(n)
        if rng.random() < 0.7:
            del b[k:]
        else:
            del b[:k]
    elif op == 2 and n:  # duplication: a run, or the whole stream, again
        i = rng.randrange(n)
        j = rng.randrange(i, n + 1)
        if rng.random() < 0.3:
            i, j = 0, n
        b[j:j] = b[i:j]
    elif op == 3:  # splice: a prefix of this and a suffix of another input
        other = rng.choice(corpus)[1:]
        b[rng.randrange(n + 1) :] = other[rng.randrange(len(other) + 1) :]
    elif op == 4:  # random bytes of random length, replacing a run or inserted
        i = rng.randrange(n + 1)
        j = i if rng.random() < 0.5 else rng.randrange(i, n + 1)
        size = rng.choice((1, 2, 4, rng.randrange(64), rng.randrange(600)))
        b[i:j] = rng.randbytes(size)
    elif op == 5 and n:  # a byte that means something to some layer
        b[rng.randrange(n)] = rng.choice(INTERESTING)
    elif op == 6 and n:  # a length or count off by a little
        i = rng.randrange(n)
        b[i] = (b[i] + rng.choice((-2, -1, 1, 2, 0x80))) & 0xFF
    elif op == 7 and n:  # a run deleted
        i = rng.randrange(n)
        del b[i : rng.randrange(i, min(n, i + 64) + 1)]
    elif op == 8:  # all noise, of a random length
        b[:] = rng.randbytes(rng.randrange(3000))
    elif op == 9 and n:  # bytes lost mid-stream, as on an overflowing UART
        i = rng.randrange(n)
        del b[i : i + rng.randrange(1, 32)]
