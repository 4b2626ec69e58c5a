# The captive portal's DNS: in setup mode every name a phone asks for is the dongle, so the
# phone's check for the internet lands on the setup page and the phone opens it by itself.
#
# Loaded only in setup mode (portal.py). Bounded by construction:
#   one datagram buffer, made once     BUF bytes: a query longer is dropped, counted
#   queries that are not one plain     dropped and counted `malformed`: a response, a
#   question                           truncated header or name, a label over 63 bytes, a
#                                      compression pointer (none belongs in a query's only
#                                      name: no loop to follow), a qdcount other than 1
#   answers per second                 RATE, then dropped and counted `limited` (a flood of
#                                      spoofed queries gets no amplified traffic back)
#
# The answer reuses the query in place (RFC 1035 4.1): the header with QR, AA and RA set,
# the question as it came, and for an A question of class IN one answer, a pointer to the
# question's name (0xC00C), type A, TTL 60 s, the dongle's 4-byte address. Other types
# (AAAA, HTTPS...) get no answer records, so a phone falls back to IPv4. EDNS records after
# the question are left out (arcount 0): an answer of at most 12 + 255 + 4 + 16 bytes.

import asyncio
import socket
from time import ticks_diff

from micropython import const

BUF = const(512)  # the largest DNS message over UDP without EDNS (RFC 1035 2.3.4)
RATE = const(20)  # answers per second, and the burst: a phone asks a few names at once
_NAME_MAX = const(255)  # RFC 1035 2.3.4
# The answer record after the question: a pointer to the question's name, type A, class IN,
# TTL 60 s (short: after setup the dongle's address is wrong for every name), 4 bytes.
_RECORD = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"
_IDLE_MS = const(50)  # between looks at the socket when nothing came (no datagram streams)


class Responder:
    """The DNS answers, without I/O: answer(n) turns the query in buf[:n] into its answer in
    place and gives the answer's length, or 0 when it is dropped (and counted)."""

    def __init__(self, address, now_ms):
        """address: the dongle's, "192.168.4.1"; now_ms: a clock, time.ticks_ms on a board."""
        self.address = bytes(int(x) for x in address.split("."))
        self.buf = bytearray(BUF)
        self.now_ms = now_ms
        self.answered = 0
        self.malformed = 0
        self.limited = 0
        self._tokens = RATE
        self._at = now_ms()

    def answer(self, n):
        buf = self.buf
        end = _question_end(buf, n)
        if end < 0:
            self.malformed += 1
            return 0
        if not self._take():
            self.limited += 1
            return 0
        qtype = (buf[end - 4] << 8) | buf[end - 3]
        qclass = (buf[end - 2] << 8) | buf[end - 1]
        a = qtype == 1 and qclass == 1
        # QR=1, opcode 0, AA=1, RD as asked; RA=1, RCODE 0 (no error)
        buf[2] = 0x84 | (buf[2] & 0x01)
        buf[3] = 0x80
        buf[6] = 0  # ancount
        buf[7] = 1 if a else 0
        buf[8] = buf[9] = buf[10] = buf[11] = 0  # nscount, arcount
        if not a:
            self.answered += 1
            return end
        buf[end : end + 12] = _RECORD
        buf[end + 12 : end + 16] = self.address
        self.answered += 1
        return end + 16

    def _take(self):
        """One answer from the bucket of RATE per second."""
        now = self.now_ms()
        earned = ticks_diff(now, self._at) * RATE // 1000
        if earned:
            self._tokens = min(RATE, self._tokens + earned)
            self._at = now
        if not self._tokens:
            return False
        self._tokens -= 1
        return True


def _question_end(buf, n):
    """Offset after the one question of the query in buf[:n], or -1 when it is not a
    plain query of one question."""
    if n < 12 or n > len(buf):
        return -1
    if buf[2] & 0xF8:  # QR set (a response: never answer one, no reflection loop), or an
        return -1  # opcode other than QUERY
    # qdcount 1; ancount and nscount 0; arcount 0 or 1 (an EDNS OPT record, as dig sends)
    if buf[4] or buf[5] != 1 or buf[6] or buf[7] or buf[8] or buf[9] or buf[10] or buf[11] > 1:
        return -1
    i = 12
    while True:
        if i >= n:
            return -1  # the name runs past the datagram
        size = buf[i]
        if size == 0:
            break
        if size > 63:  # a pointer (0xC0) or a reserved label type
            return -1
        i += 1 + size
        if i - 12 > _NAME_MAX:
            return -1
    i += 5  # the root label, QTYPE, QCLASS
    return i if i <= n else -1


async def serve(responder, port, log):
    """Answer every query on UDP port until cancelled. Each datagram MicroPython reads is a
    new bytes object (its sockets have recvfrom() only): at most BUF bytes, garbage at once,
    and copied into the one buffer before anything is parsed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    except OSError as e:  # the port is taken: the page still works, typed in by hand
        sock.close()
        log("setup: no DNS on port", port, repr(e))
        return
    try:
        sock.setblocking(False)
        log("setup: DNS on port", port)
        buf = responder.buf
        while True:
            try:
                data, peer = sock.recvfrom(BUF + 1)
            except OSError:  # EAGAIN: nothing came
                await asyncio.sleep_ms(_IDLE_MS)
                continue
            n = len(data)
            if n > BUF:
                responder.malformed += 1  # longer than any query this answers
                continue
            buf[:n] = data
            del data
            k = responder.answer(n)
            if k:
                try:
                    sock.sendto(memoryview(buf)[:k], peer)
                except OSError as e:  # the phone left the access point meanwhile
                    log("setup: DNS answer not sent:", repr(e))
    finally:
        sock.close()
