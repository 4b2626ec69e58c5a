# General Block Transfer (Green Book 9.3.14): one APDU carried in numbered blocks, each in
# its own frame. L&G E450 and Iskraemeco meters push this way; Norwegian meters do not,
# so the decoder imports this module, and allocates its buffer, at the first block.

from micropython import const

from axdr import Reader
from dlms import is_ciphered
from errors import ENCRYPTED, MALFORMED, SEGMENT, DecodeError, append

_SKIP = const(-1)


class Blocks:
    """Reassembles General Block Transfer blocks (Green Book 9.3.14) into one APDU."""

    keys = None  # the meter's keys (decoder.py): a ciphered transfer is kept, not skipped

    def __init__(self, max_apdu=2048):
        self.apdu = bytearray(max_apdu)
        self._len = 0
        self._reader = Reader(b"", 0, 0)
        self._next = 0  # block number expected next, 0 when none is open, _SKIP (-1)
        # while the blocks of a ciphered transfer go by

    def pending(self):
        return self._next > 0

    def push(self, data, start, end):
        """Take a GBT APDU data[start:end]; returns the length of the whole APDU in
        self.apdu after the last block, else 0."""
        r = self._reader
        r.reset(data, start + 1, end)
        ctrl = r.byte()
        number = r.byte() << 8 | r.byte()
        r.take(2)  # block-number-ack: for a push, always 0
        n = r.length()
        p = r.take(n)
        if number == 1:
            self._len = 0
            if n and is_ciphered(data[p]) and not self.keys:
                # No key: say so now, then let the transfer's other blocks pass unseen.
                self._next = 0 if ctrl & 0x80 else _SKIP
                raise DecodeError(ENCRYPTED)
        elif self._next == _SKIP:
            if ctrl & 0x80:
                self._next = 0
            return 0
        elif number != self._next or not self._next:  # block 0, or none open: an orphan
            self._next = 0
            raise DecodeError(SEGMENT)
        self._next = 0  # until it fits: an oversize transfer is dropped
        self._len = append(self.apdu, self._len, data, p, p + n)
        if ctrl & 0x80:  # last-block
            if not self._len:
                raise DecodeError(MALFORMED)  # a transfer of nothing
            return self._len
        self._next = number + 1
        return 0

    def reset(self):
        self._next = 0
