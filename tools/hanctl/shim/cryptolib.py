"""CPython stand-in for MicroPython's `cryptolib`, for the firmware's gcm.py on the host.

Only what an ESP32 image has: `aes(key, 1)` (ECB) and `aes(key, 2, iv)` (CBC). Mode 6 (CTR)
raises ValueError("mode"), as on an ESP32 board, which builds cryptolib without
MICROPY_PY_CRYPTOLIB_CTR (see firmware/gcm.py). The AES is PyPI `cryptography`, which hanctl
already has through esptool's requirements. The checks and errors are extmod/modcryptolib.c's:
a key of 16 or 32 bytes, whole blocks, an `out` at least as long as the input, and one
direction per object.
"""

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODE_ECB = 1
MODE_CBC = 2


class aes:  # noqa: N801 - MicroPython's name
    def __init__(self, key, mode, IV=None):  # noqa: N803 - MicroPython's keyword
        if mode not in (MODE_ECB, MODE_CBC):
            raise ValueError("mode")
        key = bytes(key)
        if len(key) not in (16, 32):
            raise ValueError("key")
        if IV is not None and len(IV) != 16:
            raise ValueError("IV")
        if mode == MODE_CBC and IV is None:
            raise ValueError("IV")
        self._cipher = Cipher(
            algorithms.AES(key), modes.ECB() if mode == MODE_ECB else modes.CBC(bytes(IV))
        )
        self._ctx = None
        self._encrypting = None

    def encrypt(self, in_buf, out_buf=None):
        return self._process(True, in_buf, out_buf)

    def decrypt(self, in_buf, out_buf=None):
        return self._process(False, in_buf, out_buf)

    def _process(self, encrypt, in_buf, out_buf):
        data = bytes(in_buf)
        if len(data) % 16:
            raise ValueError("blksize % 16")
        if out_buf is not None and len(out_buf) < len(data):
            raise ValueError("output too small")
        if self._ctx is None:
            # The direction is fixed by the first call; CBC's chaining carries across calls.
            self._encrypting = encrypt
            c = self._cipher
            self._ctx = c.encryptor() if encrypt else c.decryptor()
        elif self._encrypting != encrypt:
            raise ValueError("can't encrypt & decrypt")
        result = self._ctx.update(data)
        if out_buf is None:
            return result
        out_buf[: len(result)] = result
        return out_buf
