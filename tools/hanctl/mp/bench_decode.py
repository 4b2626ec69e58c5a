"""Decoder benchmark, run by `hanctl bench` under MicroPython and under CPython.

stdin: one line per frame, "<label> <hex>". stdout: one JSON line per frame with the
microseconds per decode (best of several rounds of `rounds` decodes) and, where the
runtime can say, the heap bytes one decode allocates (gc disabled around it, so every
allocation counts, garbage included).
"""

import gc
import json
import sys

from decoder import Decoder

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b


got = [0]
kind = [""]


def on_reading(reading):
    got[0] += 1
    # List 3 carries the energy registers, List 2 the meter id and phase values.
    if "active_energy_import" in reading:
        kind[0] = "list3"
    elif "meter_id" in reading:
        kind[0] = "list2"
    else:
        kind[0] = "list1"


def on_error(kind, detail):
    raise RuntimeError("benchmark frame rejected: %s %s" % (kind, detail))


def heap_per_decode(decoder, frame):
    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    decoder.feed(frame)
    after = gc.mem_alloc()
    gc.enable()
    return after - before


def bench(frame, rounds):
    decoder = Decoder(on_reading, on_error)
    decoder.feed(frame)  # warm up: first-call costs are not per-frame costs
    heap = heap_per_decode(decoder, frame)
    best = None
    for _ in range(5):
        gc.collect()
        t0 = ticks_us()
        for _ in range(rounds):
            decoder.feed(frame)
        us = ticks_diff(ticks_us(), t0) / rounds
        best = us if best is None or us < best else best
    return best, heap


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        label, hexdata = line.split(" ")
        got[0] = 0
        us, heap = bench(bytes.fromhex(hexdata), rounds)
        meter = label.split("_")[0]
        row = {"label": label, "us": us, "heap": heap, "list": meter + " " + kind[0]}
        print(json.dumps(row))


main()
