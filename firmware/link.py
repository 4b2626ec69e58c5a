# From checked link-layer frames to one DLMS APDU: HDLC information fields and M-Bus
# telegram payloads, reassembled when the meter splits a push.
#
# HDLC (IEC 62056-46 6.4.1): format bit 0x08 ("segmentation") set on every frame of a
# message but the last; the LLC header E6 E7 00 (IEC 62056-46 8.2, response from server)
# opens the first one only. M-Bus (EN 13757-2 with the DLMS/COSEM wired M-Bus profile, as
# Austrian and Polish meters push): CI 0x00-0x1F, low nibble the segment number, 0x10 set
# on the last; two bytes of transport SAPs precede the APDU.
#
# A whole APDU in one frame is used in place; split ones are copied into a preallocated
# buffer. Either way the result is (data, start, end) in the attributes of the same names.

from micropython import const

import framing
from dlms import is_ciphered
from errors import ENCRYPTED, SEGMENT, UNSUPPORTED, DecodeError, append

_MBUS_DATA = const(9)  # 68 L L 68 C A CI STSAP DTSAP
_NONE = const(-1)  # _next_seg when no split message is open
_SKIP = const(-2)  # _next_seg while the parts of a ciphered message go by


class Link:
    keys = None  # the meter's keys (decoder.py): a ciphered message is kept, not skipped

    def __init__(self, max_apdu=2048):
        self.apdu = None  # allocated at the first split message: most meters never split
        self._max = max_apdu
        self._len = 0  # bytes of a split APDU collected so far
        self._next_seg = _NONE  # segment number expected next, or _NONE, or _SKIP
        self.abandoned = 0  # split messages given up because a new one began
        self.data = None
        self.start = 0
        self.end = 0

    def pending(self):
        """True while a split message waits for its next part."""
        return self._next_seg >= 0

    def push(self, kind, buf, n):
        """Take one checked frame buf[0:n]; True when data[start:end] is a whole APDU.

        Raises DecodeError: SEGMENT for a continuation with no start, OVERSIZE when the message
        exceeds the buffer.
        """
        if kind == framing.HDLC:
            i = framing.hcs_index(buf, n) + 2  # the assembler checked the header
            end = n - 3
            if i >= end:
                return False  # no information field (a frame of the link's own): nothing to read
            more = buf[1] & 0x08
            llc = i + 3 <= end and buf[i] == 0xE6 and buf[i + 1] == 0xE7
            if llc and self._next_seg != _NONE:  # a new message: the last one is over
                if self._next_seg != _SKIP:
                    self.abandoned += 1
                self._next_seg = _NONE
            if self._next_seg == _SKIP:
                if not more:
                    self._next_seg = _NONE
                return False
            if self._next_seg == _NONE:
                if llc:
                    i += 3
                if not more:  # a whole APDU in one frame, used where it is
                    self.data = buf
                    self.start = i
                    self.end = end
                    return True
                if not llc:  # a middle part: the first one, with the LLC header, was lost
                    self._next_seg = _SKIP
                    raise DecodeError(SEGMENT)
                if i < end and is_ciphered(buf[i]) and not self.keys:
                    # No key: say so now, then let the message's other parts pass unseen.
                    self._next_seg = _SKIP
                    raise DecodeError(ENCRYPTED)
                self._len = 0
                self._next_seg = 1
            else:
                self._next_seg += 1
            return self._append(buf, i, end, not more)
        # M-Bus
        ci = buf[6]
        if ci > 0x1F:
            raise DecodeError(UNSUPPORTED)  # not the DLMS transport layer (an EN 13757-3 CI-field)
        seg = ci & 0x0F
        last = ci & 0x10
        if seg == 0:
            self._len = 0
            if _MBUS_DATA < n - 2 and is_ciphered(buf[_MBUS_DATA]) and not self.keys:
                self._next_seg = _NONE if last else _SKIP
                raise DecodeError(ENCRYPTED)
        elif self._next_seg == _SKIP:
            if last:
                self._next_seg = _NONE
            return False
        elif seg != self._next_seg:
            self._next_seg = _NONE
            raise DecodeError(SEGMENT)
        self._next_seg = seg + 1
        return self._append(buf, _MBUS_DATA, n - 2, last)

    def reset(self):
        self._next_seg = _NONE

    def _append(self, buf, start, end, last):
        if self.apdu is None:
            self.apdu = bytearray(self._max)
        expected = self._next_seg
        self._next_seg = _NONE  # until it fits: an oversize message is dropped
        self._len = append(self.apdu, self._len, buf, start, end)
        if last:
            self.data = self.apdu
            self.start = 0
            self.end = self._len
            return True
        self._next_seg = expected
        return False
