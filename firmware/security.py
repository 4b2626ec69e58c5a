# DLMS/COSEM ciphered APDUs as meters push them (Green Book 9.2.7.2.4.2, the security
# header; general-glo-/ded-ciphering): the unwrapping, with gcm.py's AES-128-GCM underneath.
#
#   DB|DF  08 <system title, 8>  <length, A-XDR>  SC  <invocation counter, 4>  <ciphertext>  [T]
#
# general-glo-ciphering (0xDB, the global unicast/broadcast key) and general-ded-ciphering
# (0xDF, a dedicated key) are laid out alike; `length` counts SC to the end of the tag.
# SC, the security control byte: bits 0-3 the security suite, 0x10 authentication (a 12-byte
# tag T follows), 0x20 encryption, 0x40 the broadcast key set, 0x80 compression.
# The GCM inputs (Green Book table "Ciphered pieces"): IV = system title || invocation
# counter; with 0x30, AAD = SC || AK and the text encrypted; with 0x10, AAD = SC || AK ||
# the APDU, which stays in clear; with 0x20 no AAD and no tag.
#
# Suites 0 and 1 both cipher with AES-128-GCM (suite 1 differs in key agreement and
# signatures, which a push does not use); Polish Kaifa meters send SC 0x21. Suite 2 is
# AES-256 and not taken.
#
# Pure layer: no I/O; the plaintext is written over the ciphertext (or into `out`) at the
# same offsets, so a decrypted push costs no copy and no heap (see open()).

from micropython import const

import gcm
from errors import DECRYPT, ENCRYPTED, MALFORMED, TRUNCATED, UNSUPPORTED, DecodeError

# DECRYPT (errors.py): a ciphered APDU whose tag does not hold, or whose plaintext is no
# Data-Notification: the key or the auth key is wrong, counted apart from `encrypted`.

_GLO = const(0xDB)
_DED = const(0xDF)
_TITLE_LEN = const(8)
_AUTH = const(0x10)
_ENCRYPT = const(0x20)
_COMPRESS = const(0x80)
_TAG_LEN = const(12)
_DATA_NOTIFICATION = const(0x0F)


class Context:
    """The owner's keys for one meter: `key` (16 bytes) or None, `auth_key` (16 bytes) or
    None. Made once; open() then serves every frame with the same buffers and GCM tables
    (gcm.Key, 2.8 KB; no tables where gcm_native runs). Raises ValueError for a key that is
    not 16 bytes."""

    def __init__(self, key=None, auth_key=None):
        if auth_key is not None and len(auth_key) != 16:
            raise ValueError("auth_key")
        # Attribute names the firmware has already: each new one is a qstr in the heap, and
        # gcm and security were what took the dongle past its fifth qstr pool (4.6 KB).
        self.key = gcm.Key(key) if key is not None else None
        self.iv = bytearray(12)
        self.aad = bytearray(17 if auth_key is not None else 1)  # SC || AK, or SC alone
        if auth_key is not None:
            for i in range(16):
                self.aad[1 + i] = auth_key[i]
        # What open() found, valid after it returned None (the counter also after DECRYPT):
        self.start = 0  # the plaintext APDU is out[start:end]
        self.end = 0
        self.title_at = 0  # buf[title_at:title_at + 8] is the system title
        self.counter = -1  # the invocation counter; the caller counts ones that do not grow
        self.authenticated = False  # whether a tag was checked (and held)

    def open(self, buf, start, end, out=None, first=_DATA_NOTIFICATION):
        """Unwrap and decrypt the ciphered APDU buf[start:end] into out (default buf: in
        place). None when out[self.start:self.end] holds the plaintext APDU, else the kind:
        ENCRYPTED (a key it needs is not configured), DECRYPT (the tag does not hold, or, with
        no tag checked, the plaintext does not start as it must: with `first`, a
        Data-Notification's tag, or 0x2F, a P1 telegram's '/' (p1cipher.py)), TRUNCATED, MALFORMED,
        UNSUPPORTED. Never raises on what buf holds. On failure out is as it was, but for a
        DECRYPT found from the plaintext's shape: then out holds that plaintext."""
        if out is None:
            out = buf
        if not 0 <= start < end <= len(buf) or len(out) < end:
            return TRUNCATED
        tag = buf[start]
        if tag != _GLO and tag != _DED:
            return UNSUPPORTED if self.key is not None else ENCRYPTED
        p = start + 1
        if p >= end:
            return TRUNCATED
        if buf[p] != _TITLE_LEN:
            return MALFORMED
        title = p + 1
        p = title + _TITLE_LEN
        # The length of SC || IC || text || T, A-XDR: below 0x80 one byte, else 0x8N and N.
        if p >= end:
            return TRUNCATED
        n = buf[p]
        p += 1
        if n & 0x80:
            k = n & 0x7F
            if not 1 <= k <= 3:
                return MALFORMED
            if p + k > end:
                return TRUNCATED
            n = 0
            for _ in range(k):
                n = (n << 8) | buf[p]
                p += 1
        if n < 5:
            return MALFORMED
        stop = p + n
        if stop > end:
            return TRUNCATED
        sc = buf[p]
        if sc & 0x0F > 1 or sc & _COMPRESS or not sc & (_AUTH | _ENCRYPT):
            return UNSUPPORTED
        ic = p + 1
        text = ic + 4
        if sc & _AUTH:
            stop -= _TAG_LEN
            if stop < text:
                return MALFORMED  # no room for the tag the security byte announces
        self.title_at = title
        # An int from 2**30 up is a heap object on a 32-bit port: two ops, not four.
        self.counter = ((buf[ic] << 8 | buf[ic + 1]) << 16) | (buf[ic + 2] << 8 | buf[ic + 3])
        self.authenticated = False
        key = self.key
        iv = self.iv
        for i in range(_TITLE_LEN):
            iv[i] = buf[title + i]
        for i in range(4):
            iv[_TITLE_LEN + i] = buf[ic + i]
        aad = self.aad
        aad[0] = sc
        check = key is not None and len(aad) > 1 and sc & _AUTH
        if not sc & _ENCRYPT:
            # Authentication only: the APDU is in clear. Checked when both keys are there;
            # without them it is read as it is, as the meter's unciphered pushes are.
            if check:
                if not key.verify(iv, aad, buf, text, stop, stop, _TAG_LEN):
                    return DECRYPT
                self.authenticated = True
            if out is not buf:
                for i in range(text, stop):
                    out[i] = buf[i]
            self.start = text
            self.end = stop
            return None
        if key is None:
            return ENCRYPTED
        # Without the auth key the tag cannot be checked: the plaintext's shape decides.
        if not key.decrypt(iv, aad, buf, text, stop, out, stop if check else -1, _TAG_LEN):
            return DECRYPT
        if check:
            self.authenticated = True  # the key is right: what the APDU is, the decoder says
        # No tag checked: a wrong key gives random bytes. A Data-Notification's tag, then
        # after the 4-byte invoke id an empty (00) or 12-byte (0C, or 09 0C) date-time: by
        # chance 3 in 65,536. A telegram's '/' (1 in 256), then its CRC (p1cipher.py).
        elif stop == text or out[text] != first:
            return DECRYPT
        elif first == _DATA_NOTIFICATION and (
            stop - text < 6 or out[text + 5] not in (0x00, 0x09, 0x0C)
        ):
            return DECRYPT
        self.start = text
        self.end = stop
        return None


def unwrap(decoder, data, start, end, first=_DATA_NOTIFICATION):
    """The plaintext span (start, end) of the ciphered APDU data[start:end], decrypted in
    place with decoder.security (decoder.py calls this, so its code stays out of the heap
    of a dongle whose meter does not encrypt). Raises DecodeError with the kind when it cannot.
    An invocation counter that did not grow is reported ("counter"), not dropped. `first`:
    as open()'s."""
    ctx = decoder.security  # made by Decoder.__init__ from decoder.keys
    kind = ctx.open(data, start, end, data, first)
    if kind:
        raise DecodeError(kind)
    if ctx.counter <= decoder.last:  # a meter restarted, or a replay
        decoder._error("counter", "%d after %d" % (ctx.counter, decoder.last))
    decoder.last = ctx.counter
    return ctx.start, ctx.end
