# Frame assembler: a byte stream in, checked link-layer frames out.
#
# One assembler hunts for three kinds of frame in the same stream, so the dongle needs no
# setting to tell a Norwegian HAN port from a Dutch P1 port:
#   HDLC  IEC 62056-46 frame format type 3 as the NVE HAN spec uses it: 7E, A<len:11>, dest
#         and source addresses of 1, 2 or 4 bytes (last byte odd), control, HCS, info,
#         FCS, 7E.
#         No octet stuffing (the spec relies on the length field), so 0x7E inside a frame
#         is data. One flag may end a frame and start the next.
#   P1    DSMR/IEC 62056-21 telegram "/ident ... !CRC\r\n", CRC-16/ARC over '/'..'!'.
#         The CRC may be printed without its leading zero, or be absent (DSMR 2/3).
#   M-Bus EN 13757-2 long frame 68 L L 68 C A CI data CS 16 (Austrian/Polish DLMS meters).
#
# Everything lives in one preallocated buffer of `max_frame` bytes. A frame that fails a
# check is counted by kind and the buffered bytes after its first byte are searched again,
# so a frame cut mid-way never swallows the good frame behind it. Assembling and checking
# allocates nothing (proved under micropython.heap_lock() in host_tests/test_heap.py).
#
# The search again stays linear whatever the bytes (issue 12; `hanctl bench --hostile`,
# docs/reliability.md): an HDLC header is checked (addresses, HCS) as soon as it is in, a
# replayed frame's last byte is looked at where it lies before its body is copied, a P1
# identification line holds no '/', and a rejection puts back only its own bytes. 2 KB of
# `7ea7` cost 650 ms in one idle() before; valid HDLC headers 19 bytes apart still make
# each rejection copy the next candidate (~60 bytes of work per byte: docs/reliability.md).

from micropython import const

import crc16

HDLC = const(1)
P1 = const(2)
MBUS = const(3)
APDU = const(0)  # not a link frame: a bare DLMS APDU handed to the decoder

_IDLE = const(0)
_P1_END = const(4)  # P1 after '!': reading the CRC digits up to '\n'

# Rejection kinds: strings, so counters and error lines read the same everywhere.
CHECKSUM = "checksum"  # HCS, FCS, P1 CRC or M-Bus sum wrong
LENGTH = "length"  # frame end not where the length field says, or too short to be a frame
OVERSIZE = "oversize"  # length field or telegram beyond max_frame
TRUNCATED = "truncated"  # line went idle (or the stream ended) inside a frame
FORMAT = "format"  # a frame start, then what no frame holds: HDLC addresses, binary P1
KINDS = (CHECKSUM, LENGTH, OVERSIZE, TRUNCATED, FORMAT)

_HDLC_MIN = const(9)  # 7E, format (2), dst, src, control, FCS (2), 7E: no information
_HDLC_HEAD = const(14)  # 7E, format (2), addresses (4 + 4), control, HCS (2)
_MBUS_MIN = const(11)  # 68 L L 68 C A CI STSAP DTSAP CS 16: the DLMS transport layer
_P1_MAX_CRC_DIGITS = const(4)
_P1_IDENT_MAX = const(96)  # "/XXXZ" and up to 16 characters in IEC 62056-21; DSMR's are longer


class Assembler:
    """Push bytes in with feed(); checked frames come out through on_frame(kind, buf, n).

    buf[0:n] is the whole frame (HDLC flags included) and stays valid only during the call.
    on_reject(kind) is called once per rejected frame; `rejected` counts them by kind,
    `noise` counts bytes seen outside any frame, `frames` counts good frames by protocol.
    """

    def __init__(self, on_frame, on_reject=None, max_frame=2048):
        self.on_frame = on_frame
        self.on_reject = on_reject
        self.buf = bytearray(max_frame)
        self.max_frame = max_frame
        self.rejected = {}
        for k in KINDS:
            self.rejected[k] = 0
        self.frames = [0, 0, 0, 0]
        self.noise = 0
        self.bytes_in = 0
        self._n = 0  # bytes held in buf
        self._state = _IDLE  # _IDLE or the protocol being assembled, or _P1_END
        self._need = 0  # total length of the HDLC/M-Bus frame being assembled
        self._stop = 0  # _need once the header passed its checks: copy the body unlooked
        self.work = 0  # bytes of rejected candidates, searched again: tools/fuzz bounds it
        self._rp = 0  # replay queue: buf[_rp:_rm] waits to be searched again
        self._rm = 0
        self._shared = False  # buf[0] is the closing flag of the frame just emitted

    def feed(self, chunk, n=-1):
        """Process the bytes of chunk (bytes, bytearray or memoryview), its first n only
        when n is given: a UART reader reuses one buffer without slicing it."""
        end = len(chunk) if n < 0 else n
        self.bytes_in = (self.bytes_in + end) & 0x3FFFFFFF  # wraps: no bigint on an ESP32
        i = 0
        while i < end:
            # Inside an HDLC or M-Bus frame of known length nothing needs deciding until
            # its last byte: copy in a local loop. Two method calls per byte cost 0.5 us
            # each on the unix port; this cut an Aidon List 3 frame from 224 to ~70 us.
            k = self._stop - 1 - self._n
            if k > 0:
                if k > end - i:
                    k = end - i
                buf = self.buf
                n = self._n
                d = n - i  # one addition a byte, not two: 9% fewer instructions
                for j in range(i, i + k):
                    buf[j + d] = chunk[j]
                self._n = n + k
                i += k
                continue
            self._byte(chunk[i])
            i += 1
            if self._rm:
                self._drain()

    def busy(self):
        """True while a frame is being assembled (a lone HDLC flag does not count)."""
        return self._state != _IDLE and not (self._state == HDLC and self._n == 1)

    def idle(self):
        """The line went quiet (or the stream ended): a frame still open is truncated.

        Meters send a frame back to back at line speed, so a pause longer than a few
        character times inside a frame means bytes were lost. The UART reader calls this.
        """
        while self.busy():  # the search may open another candidate: it is cut off too
            self._reject(TRUNCATED)
            self._drain()
        self._state = _IDLE  # a lone flag: nothing was lost
        self._n = 0

    # -- internals ------------------------------------------------------------------------

    def _byte(self, b):
        state = self._state
        if state == _IDLE:
            if b == 0x7E:
                self._state = HDLC
            elif b == 0x2F:  # '/'
                self._state = P1
            elif b == 0x68:
                self._state = MBUS
            else:
                if not self._rm:  # replayed bytes belong to a frame already counted
                    self.noise = (self.noise + 1) & 0x3FFFFFFF  # wraps, as bytes_in
                return
            self.buf[0] = b
            self._n = 1
            self._need = 0  # not known until the header is in (_stop is 0: every exit clears it)
            self._shared = False
            return
        n = self._n
        if n >= self.max_frame:  # dropped whole: too long to search again
            self._count(OVERSIZE)
            self._state = _IDLE
            self._n = 0
            self._byte(b)  # state is idle now: one level deep at most
            return
        self.buf[n] = b
        n += 1
        self._n = n
        if state == HDLC:
            self._hdlc(b, n)
        elif state == P1:
            if n <= 4 and not (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A):
                # A telegram starts "/XXX": the maker's three-letter FLAG id. Any other '/'
                # is noise, not a telegram read to its '!' and failing its CRC (1,336 '/'
                # before a telegram cost 1.0 s on the unix port: tools/fuzz; "/Ah" x 680
                # 0.57 s in one feed() when only the first letter was looked at).
                self._reject(None)
            elif not self._need:  # the identification line, "/XXXZ<ident>"
                if b == 0x0A:
                    self._need = n
                elif b == 0x2F or b > 0x7E or b == 0 or n > _P1_IDENT_MAX:
                    # No '/' in it, short: else each '/' of "x/ABC5" x 340 held a candidate
                    # to the next '!', 170 us/byte. Binary there: no telegram either.
                    self._reject(None)
            elif b == 0x21 and self.buf[n - 2] == 0x0A:
                # '!' ends a telegram only at the start of a line (DSMR: "\r\n!CRC\r\n").
                # Inside a line it is text, or a bit flipped on the line (')' 0x29 to 0x21):
                # ending there would pass off the first lines as a telegram without a CRC.
                self._state = _P1_END
                self._need = n  # the CRC covers buf[0:n]
            elif b > 0x7E or b == 0:
                # P1 is 7-bit text: wrong speed, parity or a cipher. Every '/' before this
                # byte would fail on it too, so the search skips them (else 2 KB of '/'
                # cost 2000 nested searches).
                self._reject(FORMAT, 0x2F)
        elif state == _P1_END:
            self._p1_end(b, n)
        else:
            self._mbus(b, n)

    def _hdlc(self, b, n):
        buf = self.buf
        if n == 2:
            if b == 0x7E:  # run of flags between frames: keep one
                self._n = 1
            elif b & 0xF0 != 0xA0:  # a stray 0x7E, or the last frame's closing flag
                if not self._rm and not self._shared:
                    self.noise += 1
                self._state = _IDLE
                self._n = 0
                self._byte(b)
            return
        if n == 3:
            self._expect(((buf[1] & 0x07) << 8 | b) + 2, _HDLC_MIN)
            return
        if n < self._need:
            if n == _HDLC_HEAD:
                # The header's checks as soon as the longest one is in, not at the frame's
                # end: else each 0x7E of 2 KB of `7ea7` held a 1,920-byte candidate to
                # replay (570 us/byte, 618 ms in one idle()).
                kind = self._bad_header(buf, self._need)
                if kind:
                    self._reject(kind)
                else:
                    self._stop = self._need
            return
        # The whole frame is in buf[0:n].
        kind = LENGTH if b != 0x7E else self._bad_header(buf, n)
        if kind:
            self._reject(kind)
            return
        if crc16.x25(buf, 1, n - 3) != buf[n - 3] | buf[n - 2] << 8:
            self._reject(CHECKSUM)
            return
        self._emit(HDLC, n)

    def _bad_header(self, buf, n):
        """The rejection kind of the header of an n-byte HDLC frame, or None."""
        i = hcs_index(buf, n)
        if i < 0:
            return FORMAT
        if i + 2 < n - 3 and crc16.x25(buf, 1, i) != buf[i] | buf[i + 1] << 8:
            return CHECKSUM
        return None

    def _p1_end(self, b, n):
        buf = self.buf
        if b != 0x0A:
            if n - self._need > _P1_MAX_CRC_DIGITS + 1:  # digits then '\r'
                self._reject(FORMAT)
            return
        end = n - 1  # buf[need:n] is "[CRC digits]\r\n"
        if buf[end - 1] == 0x0D:
            end -= 1
        start = self._need
        if end == start:
            self._emit(P1, n)  # no CRC (DSMR 2.2/3.0): the decoder marks it unchecked
            return
        crc = 0
        for i in range(start, end):
            d = _hex_digit(buf[i])
            if d < 0:
                self._reject(FORMAT)
                return
            crc = crc << 4 | d
        if crc != crc16.arc(buf, 0, start):
            self._reject(CHECKSUM)
            return
        self._emit(P1, n)

    def _mbus(self, b, n):
        buf = self.buf
        if n <= 4:
            if (n == 3 and b != buf[1]) or (n == 4 and b != 0x68):
                self._reject(None)  # a 0x68 in noise or text ("kWh"), not a telegram
            elif n == 4:
                self._expect(buf[1] + 6, _MBUS_MIN)
                self._stop = self._need
            return
        if n < self._need:
            return
        if b != 0x16:
            self._reject(LENGTH)
            return
        s = 0
        for i in range(4, n - 2):
            s += buf[i]
        if s & 0xFF != buf[n - 2]:
            self._reject(CHECKSUM)
            return
        self._emit(MBUS, n)

    def _expect(self, need, least):
        """The header says the frame is `need` bytes long: drop it if it cannot be."""
        if need > self.max_frame:
            self._reject(OVERSIZE)
        elif need < least:
            self._reject(LENGTH)
        else:
            self._need = need

    def _emit(self, kind, n):
        self.frames[kind] += 1
        self._state = _IDLE
        self._n = 0
        self._need = 0
        self._stop = 0
        self.on_frame(kind, self.buf, n)
        if kind == HDLC:  # the closing flag may also open the next frame
            self.buf[0] = 0x7E
            self._n = 1
            self._state = HDLC
            self._shared = True

    def _count(self, kind):
        self.rejected[kind] += 1
        if self.on_reject:
            self.on_reject(kind)

    def _reject(self, kind, skip=-1):
        """Count a bad frame and queue its bytes after the first to be searched again.

        The start of a good frame may hide in a bad one's tail (a frame cut mid-way is
        followed by the next whole frame). The queue is buf[_rp:_rm]; a frame being
        replayed was copied to buf[0:n] from buf[_rp-n:_rp], so its bytes go back there,
        and only those: moving the whole queue made 2 KB of "/Ah" quadratic (0.5 s).
        """
        if kind is not None:
            self._count(kind)
        buf = self.buf
        n = self._n
        self.work = (self.work + n) & 0x3FFFFFFF
        end = self._rm
        i = 0  # where the frame started in the queue
        if end:
            i = self._rp - n
            for j in range(n - 1, 0, -1):  # i >= 0: bytes move up, top first
                buf[i + j] = buf[j]
        else:
            end = n
        i += 1
        while i < end:  # to the next byte that may start a frame
            c = buf[i]
            if c != skip and (c == 0x7E or c == 0x2F or c == 0x68):
                break
            i += 1
        if kind is None and not self._rm:  # a false start's bytes are noise, a bad frame's not
            self.noise += i
        self._state = _IDLE
        self._n = 0
        self._stop = 0
        if i >= end:
            i = end = 0
        self._rp = i
        self._rm = end

    def _drain(self):
        # Replay queued bytes. _byte() writes at index _n <= _rp, behind the read position.
        buf = self.buf
        while self._rp < self._rm:
            rp = self._rp
            self._rp = rp + 1
            self._byte(buf[rp])
            n = self._n
            k = self._stop - 1 - n  # a checked header: the body needs no looking at
            if k > 0:
                rp += 1
                if rp + k < self._rm:  # the frame's last byte is queued: look at it first
                    if buf[rp + k] != (0x7E if self._state == HDLC else 0x16):
                        self._reject(LENGTH)
                        continue
                else:
                    k = self._rm - rp
                for j in range(rp, rp + k):  # buf[n:n+k], below: never over unread bytes
                    buf[j + n - rp] = buf[j]
                self._n = n + k
                self._rp = rp + k
        self._rp = 0
        self._rm = 0


def _hex_digit(c):
    if 0x30 <= c <= 0x39:
        return c - 0x30
    c |= 0x20
    if 0x61 <= c <= 0x66:
        return c - 0x57
    return -1


def hcs_index(buf, n):
    """Index of the HCS in the HDLC frame buf[0:n], or -1 if an address runs on.

    Addresses are 1, 2 or 4 bytes, extended while bit 0 is clear (IEC 62056-46 6.4.2);
    after both comes the control byte, then the HCS.
    """
    i = 3
    for _ in range(2):
        k = 0
        while not buf[i] & 1:
            i += 1
            k += 1
            if k >= 4 or i >= n - 3:
                return -1
        if k == 2:  # a 3-byte address does not exist
            return -1
        i += 1
    return i + 1
