"""Frame assembler benchmark, run by `hanctl bench --hostile` under MicroPython.

stdin: one line per stream, "<label> <hex>": a block of hostile bytes and a real frame
after it. The stream goes through one framing.Assembler in 256-byte chunks through one
reused buffer, as meterlink.py reads the UART, then idle(). stdout: one JSON line per
stream (through the whole decoder when its label ends in "_decoded"): the microseconds
of the whole stream, of the slowest single feed()/idle() call,
the frames that came out and the assembler's work counter.
"""

import json
import sys

from decoder import Decoder
from framing import Assembler

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b


def run(data, decoded=False):
    frames = [0]

    def on_frame(kind, buf, n):
        frames[0] += 1

    def on_reading(reading):
        frames[0] += 1

    # decoded: the whole decoder, what a real frame costs the dongle (the second reference)
    a = Decoder(on_reading) if decoded else Assembler(on_frame)
    uart = bytearray(256)
    worst = 0
    total = 0
    for i in range(0, len(data), 256):
        k = min(256, len(data) - i)
        for j in range(k):
            uart[j] = data[i + j]
        t0 = ticks_us()
        a.feed(uart, k)
        dt = ticks_diff(ticks_us(), t0)
        total += dt
        worst = max(worst, dt)
    t0 = ticks_us()
    a.idle()
    dt = ticks_diff(ticks_us(), t0)
    work = a.assembler.work if decoded else a.work
    return total + dt, max(worst, dt), frames[0], work


class _Null:
    """What the harness costs without an assembler: `--instructions` takes it off."""

    def feed(self, chunk, n):
        pass

    def idle(self):
        pass


def count(mode, data):
    """One pass of data, for callgrind to count: `asm`, `dec` or `null` (the harness)."""
    Assembler(None)  # both made in every mode: loading them costs the same each time
    Decoder(None)
    if mode == "asm":
        a = Assembler(lambda kind, buf, n: None)
    elif mode == "dec":
        a = Decoder(lambda reading: None)
    else:
        a = _Null()
    uart = bytearray(256)
    for i in range(0, len(data), 256):
        k = min(256, len(data) - i)
        for j in range(k):
            uart[j] = data[i + j]
        a.feed(uart, k)
    a.idle()


if len(sys.argv) > 1:  # `count asm|dec|null`: one stream once (`hanctl bench --instructions`)
    count(sys.argv[2], bytes.fromhex(sys.stdin.readline().split()[1]))
    sys.exit(0)

for line in sys.stdin:
    label, text = line.split()
    data = bytes.fromhex(text)
    best = None
    for _ in range(3):
        r = run(data, label.endswith("_decoded"))
        best = r if best is None or r[0] < best[0] else best
    us, worst, frames, work = best
    out = {"label": label, "bytes": len(data), "us": us, "worst": worst}
    out.update({"frames": frames, "work": work})
    print(json.dumps(out))
