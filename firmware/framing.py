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
#   DB    a bare general-glo-ciphering APDU, DB 08 <system title> <length> SC IC text tag:
#         Luxembourg's P1 ports send their telegram so (apdu(), p1cipher.py). Emitted as P1.
#
# The bytes wait in one preallocated ring of `max_frame` bytes. The candidate frame starts
# at the ring's read position and is judged where it lies: its header once the header is
# in, its end byte and checksum once its length is, a P1 line as it arrives. A candidate
# that fails is counted by kind and the search moves on by one byte, so a frame cut
# mid-way never swallows the good frame behind it, and nothing is copied back to be
# searched again. Assembling and checking allocates nothing (proved under
# micropython.heap_lock() in host_tests/test_heap.py).
#
# The search is linear whatever the bytes (`hanctl bench --hostile`,
# docs/reliability.md). Before the ring, a rejected candidate's bytes were copied back
# and fed through the byte loop again: 2 KB of `7ea7` cost 9.8 us/byte and valid HDLC
# headers 19 bytes apart 12 ms in one idle(). A checksum (FCS, M-Bus sum) is paid only by
# a candidate whose header checks and whose last byte is where its length says; where such
# candidates overlap, the checksums run from marks shared by all of them (sum(), marks.py).
#
# Names: attributes and methods reuse names the firmware already has (clear, search, pos,
# line, skip, wanted, blocks, last, sum, _len, _next, ...). Each new name is a qstr
# interned in the heap when the .mpy loads; the owner's image holds 597 in five pools,
# which end at 620, and a sixth costs 4.6 KB (MicroPython 1.25 unix model, `qstr_info()`).

from micropython import const

import crc16

HDLC = const(1)
P1 = const(2)
_MBUS = const(3)
APDU = const(0)  # not a link frame: a bare DLMS APDU handed to the decoder

_IDLE = const(0)
_CIPHERED = const(4)  # a bare ciphered APDU on the line (apdu()): emitted as P1

# Rejection kinds: strings, so counters and error lines read the same everywhere.
CHECKSUM = "checksum"  # HCS, FCS, P1 CRC or M-Bus sum wrong
_LENGTH = const("length")  # frame end not where the length field says, or too short to be a frame
OVERSIZE = "oversize"  # length field or telegram beyond max_frame
TRUNCATED = "truncated"  # line went idle (or the stream ended) inside a frame
_FORMAT = const("format")  # a frame start, then what no frame holds: HDLC addresses, binary P1
KINDS = (CHECKSUM, _LENGTH, OVERSIZE, TRUNCATED, _FORMAT)

_HDLC_MIN = const(9)  # 7E, format (2), dst, src, control, FCS (2), 7E: no information
_HDLC_HEAD = const(14)  # 7E, format (2), addresses (4 + 4), control, HCS (2)
_MBUS_MIN = const(11)  # 68 L L 68 C A CI STSAP DTSAP CS 16: the DLMS transport layer
_P1_MAX_CRC_DIGITS = const(4)
_P1_IDENT_MAX = const(96)  # "/XXXZ" and up to 16 characters in IEC 62056-21; DSMR's are longer
# Counters and stream positions wrap here: a counter below 2**29 plus what one call adds
# stays below 2**30, a small int on a 32-bit port (a bigint is a heap object).
_WRAP = const(0x1FFFFFFF)
_TIGHT = const(24576)  # free heap below which marks.py loads after a collect (sum())


class Assembler:
    """Push bytes in with feed(); checked frames come out through on_frame(kind, buf, n).

    buf[0:n] is the whole frame (HDLC flags included) and stays valid only during the call.
    on_reject(kind) is called once per rejected frame; `rejected` counts them by kind,
    `noise` counts bytes seen outside any frame, `frames` counts good frames by protocol.
    max_frame, the ring's size, is a power of two.
    """

    def __init__(self, on_frame, on_reject=None, max_frame=2048):
        if max_frame & (max_frame - 1) or max_frame < 64:
            raise ValueError("max_frame must be a power of two, at least 64")
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
        self.work = 0  # bytes the judges read (headers, checksums, P1 lines): the fuzz bounds it
        self._head = False  # HDLC: the header passed its checks
        self.pos = 1  # P1: offset of the next byte to look at
        self.line = 0  # P1: offset after the identification line's LF, 0 inside it
        self._end = 0  # P1: offset after the '!' that ends the data, 0 before it
        self._table = None  # CRC-16/ARC's table, forwards and backwards (_p1_end)
        self.blocks = None  # marks.Blocks, made at the first checksum of overlapping candidates
        self.last = 0  # stream position after the bytes the last checksum ran
        self.received = 0  # stream position after the last byte held (feed())
        self.clear()

    def feed(self, chunk, n=-1):
        """Process the bytes of chunk (bytes, bytearray or memoryview), its first n only
        when n is given: a UART reader reuses one buffer without slicing it."""
        end = len(chunk) if n < 0 else n
        self.bytes_in = (self.bytes_in + end) & _WRAP
        buf = self.buf
        size = self.max_frame
        i = 0
        while i < end:
            h = self._len
            if h == 1 and self._kind == HDLC:
                # A run of flags: keep the one held. Frames that each bring their own flags
                # then start on the last one's closing flag, at 0 (_emit), in one piece.
                while chunk[i] == 0x7E:
                    i += 1
                    if i == end:
                        return
            if h == size:  # a telegram that never ends: dropped whole, too long to search
                self._reject(OVERSIZE, size)  # counted; clear() undoes the rest
                self.clear()
                continue
            s = self._s
            k = end - i
            if k > size - h:
                k = size - h
            if self._kind == HDLC and self._quiet < 2:
                # An HDLC frame, and not inside a rejected one: its header, then up to the
                # byte it waits for, no further, so a good frame leaves only its closing
                # flag behind (_emit), and the next frame lies in the ring from that flag
                # at 0, never moved (a chunk copied whole put each frame after the first
                # elsewhere: 860 instructions a byte to move it, 11 % of a Norwegian
                # frame's whole decode). Inside a rejected candidate, where the next ones
                # each wait a few bytes more, the whole chunk: a call of search() a
                # candidate cost `7ea5ff8d` 11 % more (2.9 K instructions a byte).
                x = (self.wanted if self._head else _HDLC_HEAD) - h
                if 0 < x < k:
                    k = x
            # Copy in a local loop, up to the ring's end then from its start: one addition
            # a byte. Per-byte method calls cost 0.5 us each on the unix port.
            w = (s + h) & (size - 1)
            j = i + k
            if w + k > size:
                j = i + size - w
            d = w - i
            for x in range(i, j):
                buf[x + d] = chunk[x]
            d = -j
            for x in range(j, i + k):
                buf[x + d] = chunk[x]
            self._len = h + k
            # The stream position after the last byte held (sum(), marks.py): the bytes put
            # in the ring, not the flags passed over between frames.
            q = self.received
            r = q + k
            if (r ^ q) & 0x30000000:  # it passed 2**28, or wrapped at 2**29
                # Chains of marks go at each: none lives 2**29 positions, so none comes back
                # into reach, even one made across the wrap (found by review).
                r &= _WRAP
                if self.blocks:
                    self.blocks.clear()
            self.received = r
            i += k
            if self._len >= self.wanted:
                self.search()

    def busy(self):
        """True while a frame is being assembled (a lone HDLC flag does not count)."""
        return self._kind != _IDLE and not (self._kind == HDLC and self._len == 1)

    def idle(self):
        """The line went quiet (or the stream ended): a frame still open is truncated.

        Meters send a frame back to back at line speed, so a pause longer than a few
        character times inside a frame means bytes were lost. The UART reader calls this.
        """
        while self.busy():  # the search may open another candidate: it is cut off too
            h = self._len
            if self._kind == P1 and self._end and self._p1_end(h, self._end) == 0:
                # A telegram whose CRC digits end the input (a capture cut after them,
                # with no CR LF): whole when they hold.
                continue
            # Each '/' inside a cut telegram would read on to the end and be cut off too:
            # 200 nested identification lines cost 100 reads a byte (host_tests/stress/fuzz).
            self._reject(TRUNCATED, h, h if self._kind == P1 else 0)
            self.search()
        self.clear()  # a lone flag: nothing was lost

    # -- internals ------------------------------------------------------------------------

    def clear(self):
        """Drop every byte held: the line starts afresh."""
        self._head = False
        self._s = 0  # ring index of the first byte held: the candidate's first byte
        self._len = 0  # bytes held from _s
        self._kind = _IDLE  # protocol of the candidate at _s, or _IDLE: none open
        self.wanted = 1  # bytes held before the candidate can be judged further
        self._quiet = 0  # bytes from _s that belong to a frame already counted: not noise
        self.skip = 0  # a '/' before this offset starts no telegram: it was judged already
        self._pick = -1  # ... except the one at this offset, whose CRC was seen to hold
        if self.blocks:
            self.blocks.clear()

    def search(self):
        # Judge the candidate at _s until one waits for bytes or none are left.
        buf = self.buf
        m = self.max_frame - 1
        while True:
            kind = self._kind
            h = self._len
            if kind == _IDLE:
                # To the next byte that may start a frame. A start whose next byte already
                # rules it out is passed over here, not judged: 2 KB of '/' or `7e` cost
                # 3.5 and 2.3 us/byte through the judges, 0.5 here.
                s = self._s
                q = self._quiet
                skip = self.skip
                noise = 0
                i = 0
                while i < h:
                    c = buf[(s + i) & m]
                    if c > 0x7E:  # no frame starts so (one test, not three) but 0xDB 0x08
                        if c == 0xDB:
                            if i + 1 == h:
                                break
                            if buf[(s + i + 1) & m] == 0x08:
                                break
                    elif c == 0x7E:
                        if i + 1 == h:
                            break
                        d = buf[(s + i + 1) & m]
                        if d & 0xF0 == 0xA0:
                            break
                        if d == 0x7E:  # a run of flags between frames: not noise
                            if i < q < i + 2:
                                q = i + 2  # the flag kept is what the first one was
                            i += 1
                            continue
                    elif c == 0x2F:
                        if i >= skip or i == self._pick:
                            if i + 1 == h:
                                break
                            d = buf[(s + i + 1) & m]
                            if 0x41 <= d <= 0x5A or 0x61 <= d <= 0x7A:
                                break
                    elif c == 0x68:
                        if i + 2 >= h or buf[(s + i + 2) & m] == buf[(s + i + 1) & m]:
                            break
                    if i >= q:
                        noise += 1
                    i += 1
                if noise:
                    self.noise = (self.noise + noise) & _WRAP
                if i:  # _next(i, False), inline: overlapping candidates pass here each
                    self._quiet = q - i if q > i else 0
                    if skip:
                        self.skip = skip - i if skip > i else 0
                    q = self._pick
                    if q >= 0:
                        self._pick = q - i if q >= i else -1
                    h -= i
                    self._len = h
                    self._s = (s + i) & m if h else 0
                else:
                    self._quiet = q
                if not h:  # every byte held passed over
                    self.wanted = 1
                    return
                self._head = False  # a candidate opens: its header is yet to be checked
                if c == 0x7E:
                    kind = HDLC
                elif c == 0x2F:
                    kind = P1
                    self.pos = 1
                    self.line = self._end = 0
                elif c == 0x68:
                    kind = _MBUS
                else:
                    kind = _CIPHERED
                self._kind = kind
            if kind == HDLC:
                wait = self._hdlc(h)
            elif kind == P1:
                wait = self._p1(h)
            elif kind == _MBUS:
                wait = self._mbus(h)
            else:
                wait = self.apdu(h)
            if wait:
                self.wanted = wait
                return

    def _hdlc(self, h):
        """Judge the HDLC candidate: the bytes it waits for, or 0 once it is decided."""
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        if h < 3:
            if h < 2:
                return 2
            if buf[(s + 1) & m] & 0xF0 == 0xA0:
                return 3
        b = buf[(s + 1) & m]
        if b == 0x7E:  # a run of flags between frames: keep one (not noise)
            q = self._quiet
            self._next(1, False)
            if q and not self._quiet:
                self._quiet = 1
            return 0
        if b & 0xF0 != 0xA0:  # a stray 0x7E, or the last frame's closing flag
            self._next(1, True)
            self._kind = _IDLE
            return 0
        need = ((b & 0x07) << 8 | buf[(s + 2) & m]) + 2
        if need > self.max_frame:
            return self._reject(OVERSIZE, 3)
        if need < _HDLC_MIN:
            return self._reject(_LENGTH, 3)
        if not self._head:
            # The header's checks as soon as the longest one is in, not at the frame's
            # end: a 0x7E in noise claims up to 2 KB. A shorter frame is checked whole,
            # its end flag first.
            k = need if need < _HDLC_HEAD else _HDLC_HEAD
            if h < k:
                return k
            if k < _HDLC_HEAD and buf[(s + need - 1) & m] != 0x7E:
                return self._reject(_LENGTH, need)
            # Here, not in a method: `7ea5ff8d` has a header to check every 4 bytes, and a
            # call with its frame on the heap, with one more through sum() to the marks,
            # cost it 7 % more.
            i = 3
            for _ in range(2):  # addresses, extended while bit 0 is clear (IEC 62056-46 6.4.2)
                b = i
                while not buf[(s + i) & m] & 1:
                    i += 1
                    if i - b >= 4 or i >= need - 3:
                        return self._reject(_FORMAT, k)
                if i - b == 2:  # a 3-byte address does not exist
                    return self._reject(_FORMAT, k)
                i += 1
            i += 1  # after the control byte: the HCS, if an information field follows
            if i + 2 < need - 3:
                self.work = (self.work + 2 * i - 2) & _WRAP
                t = crc16._X25
                b = 0xFFFF
                for x in range(s + 1, s + i):
                    b = (b >> 8) ^ t[(b ^ buf[x & m]) & 0xFF]
                if b ^ 0xFFFF != buf[(s + i) & m] | buf[(s + i + 1) & m] << 8:
                    return self._reject(CHECKSUM, k)
            else:
                self.work = (self.work + i - 1) & _WRAP
            self._head = True
        if h < need:
            return need
        if buf[(s + need - 1) & m] != 0x7E:
            return self._reject(_LENGTH, need)
        fcs = buf[(s + need - 3) & m] | buf[(s + need - 2) & m] << 8
        x = self.blocks  # marks.Blocks, called here: one call less a candidate
        if (x.sum(0, 1, need - 3) if x else self.sum(0, 1, need - 3)) ^ 0xFFFF != fcs:
            return self._reject(CHECKSUM, need)
        return self._emit(HDLC, need)

    def _p1(self, h):
        """Judge the P1 candidate up to the bytes held: the bytes it waits for, or 0."""
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        p = self.pos
        line = self.line
        bang = self._end
        p0 = p
        verdict = -1  # still open; 0 no telegram, 1 a bad one, 2 its last byte is in
        while p < h:
            c = buf[(s + p) & m]
            p += 1  # p is now the count of bytes looked at
            if p <= 4:
                # A telegram starts "/XXX": the maker's three-letter FLAG id. Any other '/'
                # is noise, not a telegram read to its '!' and failing its CRC (1,336 '/'
                # before a telegram cost 1.0 s on the unix port: host_tests/stress/fuzz).
                if not (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A):
                    verdict = 0
                    break
            elif not line:  # the identification line, "/XXXZ<ident>"
                if c == 0x0A:
                    line = p
                elif c == 0x2F or p > _P1_IDENT_MAX:
                    # No '/' in it, short: else each '/' of "x/ABC5" x 340 held a candidate
                    # to the next '!'. Any other byte is the maker's (0x02 and 0xAB seen
                    # in identifications): the CRC judges the telegram.
                    verdict = 0
                    break
            elif not bang:
                if c == 0x21 and buf[(s + p - 2) & m] == 0x0A:
                    # '!' ends a telegram only at the start of a line (DSMR: "\r\n!CRC\r\n").
                    # Inside a line it is text, or a bit flipped on the line (')' 0x29 to
                    # 0x21): ending there would pass off the first lines as a telegram.
                    bang = p
                elif c > 0x7E or c == 0:
                    # P1 is 7-bit text: wrong speed, parity or a cipher. Every '/' before
                    # this byte would fail on it too: the search skips them.
                    verdict = 1
                    break
            elif c != 0x0A:
                if p - bang > _P1_MAX_CRC_DIGITS + 1:  # digits then '\r'
                    verdict = 1  # the '/' from bang on may start the next telegram
                    break
            else:
                verdict = 2
                break
        self.work = (self.work + p - p0) & _WRAP
        if verdict < 0:
            self.pos = p
            self.line = line
            self._end = bang
            return h + 1
        if verdict == 0:
            return self._noise()
        if verdict == 1:
            return self._reject(_FORMAT, p, bang or p)
        return self._p1_end(p, bang)

    def _p1_end(self, n, start):
        """The telegram's last byte is in: buf[start:n] is "[CRC digits]\\r\\n".

        From idle(), with no LF: the digits end the input. A telegram whose CRC holds is
        emitted then, and anything else is left to idle() (-1), which counts it cut off.
        """
        buf = self.buf
        m = self.max_frame - 1
        cut = buf[(self._s + n - 1) & m] != 0x0A
        end = n - 1 + cut
        if end > start and buf[(self._s + end - 1) & m] == 0x0D:
            end -= 1
        if end == start:
            if cut:
                return -1  # a cut after '!': the CRC may be missing
            return self._emit(P1, n)  # no CRC (DSMR 2.2/3.0): the decoder marks it unchecked
        crc = 0
        for i in range(start, end):
            d = _hex_digit(buf[(self._s + i) & m])
            if d < 0:
                if cut:
                    return -1
                # Every telegram that starts inside this one ends at the same '!': skip them
                # (not what follows the '!': a cut CRC, then the next telegram's '/').
                return self._reject(_FORMAT, n, start)
            crc = crc << 4 | d
        t = self._table
        if t is None:
            # CRC-16/ARC's table, and the index each entry's high byte came from
            # (_nested_p1): made at the first P1 telegram, so a HAN dongle never holds them.
            t = crc16._table(0xA001)
            back = bytearray(256)
            for i in range(256):
                back[t[i] >> 8] = i
            t = self._table = (t, back)
        if crc == self.crc(t[0], 0, 0, start):
            return self._emit(P1, n)
        if cut:
            return -1
        if crc > 0xFFFF:  # five digits, no '\r': no CRC-16, nothing inside holds either
            return self._reject(CHECKSUM, n, start)
        # Each '/' inside this one would read on to the same '!' and take its CRC over a
        # tail of the same bytes: "x/ABC5\r\n" x 290 cost that 290 times. One pass
        # backwards from the printed CRC finds the one start whose CRC holds, if any.
        return self._reject(CHECKSUM, n, start, self._nested_p1(crc, start))

    def _nested_p1(self, crc, end):
        """Offset of the first '/' in 1..end whose telegram to end has the CRC crc, or -1.

        CRC-16/ARC runs backwards: the table's high byte names the index it came from
        (self._table[1]), so the register before each byte follows from the one after it.
        The telegram from offset i holds iff the register before byte i is 0, ARC's init.
        """
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        table, back = self._table  # made by _p1_end
        self.work = (self.work + end) & _WRAP
        found = -1
        for i in range(end - 1, 0, -1):
            c = buf[(s + i) & m]
            t = back[crc >> 8]
            crc = ((crc ^ table[t]) << 8) | (t ^ c)
            if not crc and c == 0x2F and _ident(buf, s, m, i, end):
                found = i
        return found

    def _mbus(self, h):
        """Judge the M-Bus candidate: the bytes it waits for, or 0 once it is decided."""
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        if h < 4:
            if h < 3:
                return h + 1
            need = 0x68  # only the length bytes can be compared yet
        else:
            need = buf[(s + 3) & m]
        n = buf[(s + 1) & m]
        if buf[(s + 2) & m] != n or need != 0x68:
            return self._noise()  # a 0x68 in noise or text ("kWh")
        if h < 4:
            return 4
        need = n + 6
        if need > self.max_frame:
            return self._reject(OVERSIZE, 4)
        if need < _MBUS_MIN:
            return self._reject(_LENGTH, 4)
        if h < need:
            return need
        if buf[(s + need - 1) & m] != 0x16:
            return self._reject(_LENGTH, need)
        x = self.blocks
        if (x.sum(1, 4, need - 2) if x else self.sum(1, 4, need - 2)) & 0xFF != buf[
            (s + need - 2) & m
        ]:
            return self._reject(CHECKSUM, need)
        return self._emit(_MBUS, need)

    def apdu(self, h):
        """Judge a bare ciphered APDU, as Luxembourg's P1 ports send their telegrams:
        DB 08 <system title> <length> SC ... (security.py). The length field says where it
        ends; nothing on the line checks it, so the decoder's GCM tag or the telegram's CRC
        inside does, and a false start would swallow the frame behind it. So a 0xDB whose
        header is not a ciphered telegram's is noise: 08, the length in 2 or 3 bytes (81 or
        82: a telegram is longer than 127 bytes), a security byte of suite 0 or 1 that
        encrypts (20 or 30, not compressed, not the broadcast key), and room for SC, the
        invocation counter, the tag it announces and a few bytes of text. Random bytes pass
        1 in 2**33."""
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        if h < 14:
            # 08 at once, as the search does when it sees both: a lone 0xDB at the end of a
            # chunk is judged as in one piece (the fuzz feeds byte by byte).
            if h > 1 and buf[(s + 1) & m] != 0x08:
                return self._noise()
            return 2 if h < 2 else 14  # the title, the length, SC
        self.work = (self.work + 5) & _WRAP  # the bytes read: 08, the length, SC
        b = buf[(s + 10) & m] - 0x81  # the length's own length - 1: 0 or 1
        n = buf[(s + 11) & m]
        c = buf[(s + 12 + b) & m]
        if b:
            n = n << 8 | buf[(s + 12) & m]
        if b >> 1 or buf[(s + 1) & m] != 0x08 or c & 0xEE != 0x20 or n < (c & 0x10) + 5:
            return self._noise()
        n += 12 + b
        if n > self.max_frame:
            return self._reject(OVERSIZE, 14)
        if h < n:
            return n
        # A P1 port's frame: counted as P1, so the line search locks on it (meterlink.py).
        return self._emit(P1, n)

    def crc(self, table, crc, a, b):
        """A CRC-16 register run over the candidate's bytes a..b-1, across the ring's end."""
        self.work = (self.work + b - a) & _WRAP
        size = self.max_frame
        i = (self._s + a) & (size - 1)
        j = i + b - a
        if j <= size:
            return crc16.crc16(table, crc, self.buf, i, j)
        crc = crc16.crc16(table, crc, self.buf, i, size)
        return crc16.crc16(table, crc, self.buf, 0, j - size)

    def sum(self, k, start, end):
        """The CRC-16/X.25 register from 0xFFFF (k 0: an HDLC FCS) or the byte sum (k 1:
        M-Bus) over the candidate's bytes start..end-1.

        A checksum that starts inside the bytes the last one ran belongs to overlapping
        candidates, which real meters never send: from then on the checksums run from
        marks (marks.py), so no byte is run by every candidate that covers it.
        """
        x = self.blocks
        if x:
            return x.sum(k, start, end)
        p = (self.received - self._len + start) & _WRAP
        if x is None and 0 < (self.last - p) & _WRAP <= self.max_frame:
            try:
                # In a tight heap, after a collect: the module's pieces then take the holes
                # the garbage left. Without it a dongle with four destinations at 96K, or
                # the fuzz's decoder there, was left no room for its sessions' or a block
                # transfer's bigger pieces (test_hostile_line.py, test_fuzz.py). Not where
                # there is room: a collect of a 256K heap cost `7ea5ff8d` 0.8x a real frame
                # over its 8 KB (`hanctl bench --hostile --instructions`).
                import gc

                if hasattr(gc, "mem_free") and gc.mem_free() < _TIGHT:
                    gc.collect()
                import marks

                x = self.blocks = marks.Blocks(self)
                return x.sum(k, start, end)
            except (ImportError, MemoryError):
                # A build without it, or too little heap to load it: each candidate runs its
                # whole checksum, as before marks (bounded by the ring: 5.9 ms a call at
                # worst on the host). Its code, loaded for nothing, goes (1.8 KB).
                self.blocks = False
                import sys

                sys.modules.pop("marks", None)
        self.last = (p + end - start) & _WRAP
        if not k:
            return self.crc(crc16._X25, 0xFFFF, start, end)
        buf = self.buf
        m = self.max_frame - 1
        s = self._s
        total = 0
        for i in range(start, end):
            total += buf[(s + i) & m]
        self.work = (self.work + end - start) & _WRAP
        return total

    def _emit(self, kind, n):
        """The candidate is a good n-byte frame: hand it over as buf[0:n]."""
        self.frames[kind] += 1
        buf = self.buf
        s = self._s
        size = self.max_frame
        swap = 0
        if s:
            if s + self._len <= size:
                # The bytes held lie in one piece above the frame: [0:n] is free or the
                # frame's own. Each good frame's bytes move once.
                for i in range(s, s + n):
                    buf[i - s] = buf[i]
            elif n <= s and s + n <= size:
                # They run over the ring's end, the frame does not: it trades places with
                # the ring's first n bytes for the call, and back after it (2n byte swaps).
                # Turning the ring (below) cost 2 x max_frame swaps: a short frame between
                # long candidates that overlap met this every few frames (found by review).
                swap = n
                for i in range(n):
                    buf[i], buf[s + i] = buf[s + i], buf[i]
            else:
                # They run over the ring's end: turn the ring so they start at 0 (three
                # reversals, 2 x max_frame byte swaps, at most once a turn of the ring).
                # No tuple of the bounds: one made at run time allocates (heap_lock test).
                for k in range(3):  # [0:s], [s:size], then [0:size]
                    i = s if k == 1 else 0
                    j = (s if k == 0 else size) - 1
                    while i < j:
                        buf[i], buf[j] = buf[j], buf[i]
                        i += 1
                        j -= 1
                self._s = s = 0
                if self.blocks:  # their marks are where the bytes were before they moved
                    self.blocks.clear()
        done = False
        try:
            self.on_frame(kind, buf, n)
            done = True
        finally:
            for i in range(swap):  # the ring's first bytes back where they were
                buf[i], buf[s + i] = buf[s + i], buf[i]
            if not done:
                # on_frame raised, and the bytes held may have changed (decrypted in place,
                # or moved to [0:n] over the frame's own): the frame is still held, so it is
                # judged afresh when it is judged again, its header and its checksum, not
                # from checks or marks of what it was (found by review).
                self._head = False
                if self.blocks:
                    self.blocks.clear()
        if kind == HDLC:  # the closing flag may also open the next frame
            buf[(s + n - 1) & (size - 1)] = 0x7E
            self._next(n - 1, False)
            self._quiet = 1
            self._kind = HDLC
            self._head = False
        else:
            self._next(n, False)
            self._kind = _IDLE
        s = self._s
        h = self._len
        if s and h <= n and s + h <= size:
            # Move what follows to the ring's start, so the next frame lies in one piece
            # from 0 and needs no move when it is handed over. At most the frame's own
            # length: frames back to back in 256-byte chunks cost 13% more a byte without.
            for i in range(h):
                buf[i] = buf[s + i]
            self._s = 0
            if self.blocks:  # as above: the marks of the bytes moved are elsewhere now
                self.blocks.clear()
        return 0

    def _next(self, k, noise):
        """Drop the first k bytes held; count those outside any frame as noise."""
        q = self._quiet
        if noise and k > q:
            self.noise = (self.noise + k - q) & _WRAP
        self._quiet = q - k if q > k else 0
        self.skip = self.skip - k if self.skip > k else 0
        self._pick = self._pick - k if self._pick >= k else -1
        h = self._len - k
        self._len = h
        self._s = (self._s + k) & (self.max_frame - 1) if h else 0

    def _reject(self, kind, n, skip=0, first=-1):
        """Count a bad candidate whose first n bytes were looked at, and search on from
        its second byte. No '/' before offset `skip` starts a telegram but at `first`."""
        self.rejected[kind] += 1
        if self.on_reject:
            self.on_reject(kind)
        # A bad frame's bytes are not noise when the search skips them. Inline: the search
        # of `7ea7` rejects a header every 2 bytes. No attribute read or written that is
        # not needed (here and in the search: 3 % of `7ea5ff8d`).
        q = self._quiet
        self._quiet = n - 1 if n > q else q - 1
        if skip:
            self.skip = skip - 1
            self._pick = first - 1
        else:
            q = self.skip
            if q:
                self.skip = q - 1
            q = self._pick
            if q >= 0:
                self._pick = q - 1
        self._kind = _IDLE
        self._head = False
        h = self._len - 1
        self._len = h
        self._s = (self._s + 1) & (self.max_frame - 1) if h else 0
        return 0

    def _noise(self):
        """A frame's first byte that started none: noise, and the search goes on after it."""
        self._kind = _IDLE
        self._next(1, True)
        return 0


def _ident(buf, s, m, i, end):
    """True if ring offset i (from s) starts an identification line that ends before end."""
    for j in range(i + 1, end):
        c = buf[(s + j) & m]
        k = j - i + 1
        if k <= 4:
            if not (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A):
                return False
        elif c == 0x0A:
            return True
        elif c == 0x2F or k > _P1_IDENT_MAX:
            return False
    return False


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
