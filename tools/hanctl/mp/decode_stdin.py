"""Decode HAN bytes with the firmware decoder and print one JSON line per message.

Runs on the MicroPython unix port as `micropython decode_stdin.py [--errors] [--chunked]`
with firmware/ on MICROPYPATH. stdin holds the raw bytes as they are (a file), or, with
--chunked, as `hanctl decode` hands on what has arrived so far: records of a 2-byte
big-endian length and that many bytes. The unix port's read waits for all the bytes it asks
for (mp_stream_rw loops until then), so from a pipe it cannot take just what is there; a
record's length says what is. `hanctl decode --runtime cpython` imports this same file and
calls decode_stream(), so both runtimes print through the same lines of code and see the
same chunk boundaries.
"""

import gc
import json
import sys

from decoder import Decoder
from reading import put, to_json, write

# Bytes per feed(), read into one buffer made once.
CHUNK = 2048
# The lines of a chunk's messages, written out together once it is fed: one write per
# chunk instead of print's two per line (575 write calls for 6,300 frames, not 12,600),
# and every line is out before the next read, which may wait for the meter.
OUT = 8192
COLLECT = sys.implementation.name == "micropython"  # gc.collect() after each chunk


class Lines:
    """The JSON lines of one chunk's readings and rejections, in order, in one buffer."""

    def __init__(self, out, show_errors):
        self.out = out  # a binary stream
        self.show_errors = show_errors
        self.buf = bytearray(OUT)
        self.n = 0

    def reading(self, reading):
        # The usual case without a call more (~1,600 instructions on MicroPython): the
        # line and its "\n" fit after the lines before it.
        try:
            n = write(reading, self.buf, self.n)
        except OverflowError:
            n = OUT
        if n < OUT:
            self.buf[n] = 10  # "\n"
            self.n = n + 1
            return
        self.flush()
        try:
            self._end(write(reading, self.buf, 0))
        except OverflowError:  # longer than the buffer (a P1 telegram of many codes)
            self.out.write(to_json(reading).encode() + b"\n")

    def error(self, kind, detail):
        # Without --errors a rejected frame prints nothing; the decoder still counts it.
        if self.show_errors:
            text = error_json(kind, detail)
            try:
                self._end(put(self.buf, self.n, text))
            except OverflowError:
                self.flush()
                self.out.write(text.encode() + b"\n")

    def _end(self, n):
        if n >= OUT:
            raise OverflowError()
        self.buf[n] = 10  # "\n"
        self.n = n + 1

    def flush(self):
        if self.n:
            self.out.write(memoryview(self.buf)[: self.n])
            self.n = 0
            self.out.flush()


def error_json(kind, detail):
    # Built by hand, not json.dumps({...}): MicroPython dicts do not keep insertion
    # order (measured on 1.29: {"error", "detail"} dumps as detail first).
    text = '{"error": ' + json.dumps(kind)
    if detail is not None:
        text += ', "detail": ' + json.dumps(detail)
    return text + "}"


class Records:
    """readinto() of what `hanctl decode` writes with --chunked: records of a 2-byte
    big-endian length and that many bytes. A record is all there once its length is, so
    reading it whole never waits for bytes the meter has not sent yet."""

    def __init__(self, stream):
        self.stream = stream
        self.head = bytearray(2)
        self.left = 0  # bytes of the current record not read yet

    def readinto(self, buf):
        while not self.left:
            if self.stream.readinto(self.head) != 2:
                return 0  # the end
            self.left = self.head[0] << 8 | self.head[1]
        n = self.stream.readinto(memoryview(buf)[: min(self.left, len(buf))])
        self.left -= n
        return n


def decode_stream(readinto, out, show_errors, keys=None):
    """Feed what readinto(buf) puts into buf (it returns the count, 0 at the end) to a
    Decoder; the lines of each chunk go to the binary stream out before the next read.
    keys: (key, auth_key or None) as bytes, for a meter that encrypts."""
    lines = Lines(out, show_errors)
    decoder = Decoder(lines.reading, lines.error, keys=keys)
    buf = bytearray(CHUNK)
    while True:
        n = readinto(buf)
        if not n:
            decoder.end()
            lines.flush()
            return
        decoder.feed(buf, n)
        lines.flush()
        # The chunk's garbage collected while nothing of it is live. The allocator takes
        # the first free run long enough, scanning from the lowest free block: left to
        # collect when full, a heap of a few thousand frames' short-lived pieces made each
        # frame's allocations cost ~50-90 thousand instructions of scanning, and a single
        # object more per chunk ~30 thousand more a frame (callgrind, the 32-bit image at
        # 96K). A collection here costs ~25 thousand a chunk of ~11 frames. (CPython
        # frees each piece when its last reference goes.)
        if COLLECT:
            gc.collect()


def main():
    flags = sys.argv[1:]
    stdin = sys.stdin.buffer
    # On the unix port readinto(buf) fills buf, or stops short at the end of the file.
    readinto = Records(stdin).readinto if "--chunked" in flags else stdin.readinto
    decode_stream(readinto, sys.stdout.buffer, "--errors" in flags, env_keys())


def env_keys():
    """The meter's keys from HANPORT_METER_KEY and HANPORT_METER_AUTH_KEY (hex), set by
    `hanctl decode --key`: the environment, not argv, which any user's `ps` shows."""
    import os
    from binascii import unhexlify

    key = os.getenv("HANPORT_METER_KEY")
    if not key:
        return None
    auth = os.getenv("HANPORT_METER_AUTH_KEY")
    return unhexlify(key), unhexlify(auth) if auth else None


if __name__ == "__main__":
    main()
