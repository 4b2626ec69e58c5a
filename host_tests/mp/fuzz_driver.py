"""The fuzz corpus through the decoder on the MicroPython unix port (host_tests/test_fuzz.py
runs it at -X heapsize=96K, a dongle's heap); runs on CPython too.

Input on stdin: first, for a meter that encrypts, a line "keys <key hex> <auth key hex|->"
that every decoder gets; then one input as lines: a header, its bytes as hex 256 at a time
(a long line would cost the driver more heap than the decoder), and an end line:
  ref | s | a     the header: a reference stream, a byte stream, or a bare APDU
  + <hex>         up to 256 of its bytes
  .               the end of the input
A `ref` stream is fed to the long-lived decoder before each heap measurement, so it holds
the same things each time; it has split messages and blocks, so the buffers made on first
use exist from the first measurement on.
Output:
  R <i> <json>             a reading of input i, from a fresh decoder fed it whole, then end()
                           (`!memory` for the JSON: the reading was made, the heap had no
                           room left for its text)
  E <i> <kind> <detail|->  a rejection, likewise
  L <i> <kind> <detail|->  the long-lived decoder rejected input i as `internal`, `memory`
                           or a kind this file does not know
  H <i> <bytes> <largest>  gc.mem_alloc() after the reference stream and gc.collect(), and
                           the largest block the heap could give then
  D <inputs> <readings> <kind>=<count>...  the long-lived decoder's readings and rejections
The long-lived decoder gets every input in chunks through one 256-byte buffer, idle() after
most, never end(): a dongle on a bad line for months.
"""

import gc
import sys

import errors
import framing
from decoder import INCOMPLETE, NOISE, Decoder
from reading import write

ACCEPTED = framing.KINDS + (  # every kind but `internal` and `memory`
    errors.MALFORMED,
    errors.TRUNCATED,
    errors.UNSUPPORTED,
    errors.ENCRYPTED,
    errors.SEGMENT,
    errors.NESTING,
    errors.OVERSIZE,
    INCOMPLETE,
    NOISE,
    errors.DECRYPT,  # with keys: a tag that does not hold
    "counter",  # with keys: an invocation counter that did not grow (decoder.py)
)
MEASURE_EVERY = 500
MAX_INPUT = 4096
JSON_MAX = 4096  # a reading of a 2 KB frame; destination.py's buffer is smaller
# Imported now, as a dongle that has met every kind of meter has them: a module imported
# later would show as heap growth.
import gbt  # noqa: E402, F401
import kaifa  # noqa: E402, F401
import kamstrup  # noqa: E402, F401
import objlist  # noqa: E402, F401
import p1  # noqa: E402, F401


class Driver:
    def __init__(self):
        self.index = 0
        self.lived_readings = 0
        self.keys = None
        self.lived = Decoder(self._lived_reading, self._lived_error)
        self.uart = bytearray(256)
        self.body = bytearray(MAX_INPUT)  # the input being read: no allocation per input
        self.n = 0
        self.json = bytearray(JSON_MAX)
        self.out = sys.stdout.buffer  # bytes straight out: a reading from self.json
        self.ref = None
        self._rand = 12345

    def say(self, line):
        self.out.write((line + "\n").encode())

    def _lived_reading(self, reading):
        self.lived_readings += 1

    def _lived_error(self, kind, detail):
        if kind not in ACCEPTED:
            self.say(f"L {self.index} {kind} {detail or '-'}")

    def _next(self):
        # A small LCG: the same chunks on every run, and no `random` module to load.
        self._rand = (self._rand * 1103515245 + 12345) & 0x7FFFFFFF
        return self._rand >> 8

    def _chunked(self, body, n):
        buf = self.uart
        i = 0
        while i < n:
            k = min(1 + self._next() % 256, n - i)
            for j in range(k):
                buf[j] = body[i + j]
            self.lived.feed(buf, k)
            i += k

    def measure(self):
        self._chunked(self.ref, len(self.ref))
        self.lived.idle()
        gc.collect()
        self.say(f"H {self.index} {gc.mem_alloc()} {largest()}")

    def one(self, kind):
        i = self.index
        body = self.body
        n = self.n
        json = self.json
        out = self.out
        say = self.say

        def on_reading(reading):
            # Written into a buffer made once, as destination.py does: a fresh 1 KB string
            # finds no room on a fragmented 96 KB heap where the decoder still works. Even
            # so write() makes each field's text (and a list of its characters when one
            # needs escaping): that can fail where the decoder did not. The reading was
            # made, which is what is tested here: "R <i> !memory" says so.
            try:
                k = write(reading, json)
            except MemoryError:
                gc.collect()
                try:
                    k = write(reading, json)
                except MemoryError:
                    say(f"R {i} !memory")
                    return
            out.write(f"R {i} ".encode())
            out.write(memoryview(json)[:k])
            out.write(b"\n")

        def on_error(kind, detail):
            say(f"E {i} {kind} {detail or '-'}")

        fresh = Decoder(on_reading, on_error, keys=self.keys)
        if kind == "a":
            fresh.apdu(body, n)
        else:
            fresh.feed(body, n)
        fresh.end()
        fresh = None
        if kind == "a":
            self.lived.apdu(body, n)
        else:
            self._chunked(body, n)
            if self._next() % 4:
                self.lived.idle()

    def run(self, lines):
        kind = None
        for line in lines:
            if line[0] == "+":
                part = bytes.fromhex(line[2:].strip())
                self.body[self.n : self.n + len(part)] = part
                self.n += len(part)
            elif line.startswith("keys "):
                key, auth = line.split()[1:]
                self.keys = bytes.fromhex(key), None if auth == "-" else bytes.fromhex(auth)
                self.lived = Decoder(self._lived_reading, self._lived_error, keys=self.keys)
            elif line[0] == ".":
                if kind == "ref":
                    self.ref = bytes(self.body[: self.n])
                    self.measure()
                else:
                    self.one(kind)
                    self.index += 1
                    gc.collect()
                    if self.index % MEASURE_EVERY == 0:
                        self.measure()
            else:
                kind = line.strip()
                self.n = 0
        self.measure()
        counts = " ".join(f"{k}={self.lived.errors[k]}" for k in sorted(self.lived.errors))
        self.say(f"D {self.index} {self.lived_readings} {counts}")


def largest():
    """The largest block the heap can give now, to 16 bytes: fragmentation, which
    mem_alloc() does not show."""
    low, high = 0, gc.mem_free()
    while high - low > 16:
        mid = (low + high) // 2
        try:
            bytearray(mid)
            low = mid
        except MemoryError:
            high = mid
    return low


def main():
    Driver().run(sys.stdin)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
