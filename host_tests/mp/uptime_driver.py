"""uptime.Uptime read from a fake ticks_ms() that wraps where the interpreter's own does:
at 2**30 ms on a 32-bit port as the ESP32 (and the frozen-unix image), at 2**62 on the
64-bit unix port, at 2**30 in uptime.py's CPython stand-in. Run under the MicroPython unix
port, or imported by test_uptime.py on CPython. Prints count()'s five numbers per case."""

from micropython import heap_lock, heap_unlock

from uptime import Uptime, ticks_diff

try:
    from time import ticks_add

    PERIOD = ticks_add(0, -1) + 1  # the port's ticks period (MICROPY_PY_TIME_TICKS_PERIOD)
except ImportError:  # CPython: uptime.py's stand-in wraps as an ESP32
    PERIOD = 1 << 30

DAY = 86400 * 1000
LONGEST = PERIOD // 2 - 1  # the longest span ticks_diff() gets right


def count(start, step, total):
    """Reads `total` ms of ticks from `start`, `step` ms apart: (reads, reads that did not
    say the whole seconds passed, Uptime's last count, the seconds that passed, what
    ticks_diff(now, start) // 1000 says, as the stats counted before). Each read runs
    under heap_lock(): a read that allocated would raise MemoryError."""
    now = [start]
    tick = [start % PERIOD]
    up = Uptime(lambda: tick[0])
    elapsed = reads = wrong = 0
    seconds = up.seconds()
    while elapsed < total:
        now[0] += step
        tick[0] = now[0] % PERIOD  # outside the lock: a big int on a 32-bit port
        elapsed += step
        reads += 1
        heap_lock()
        try:
            seconds = up.seconds()
        finally:
            heap_unlock()
        wrong += seconds != elapsed // 1000
    naive = ticks_diff(now[0] % PERIOD, start % PERIOD) // 1000
    return reads, wrong, seconds, elapsed // 1000, naive


CASES = [
    # As the ticker reads it, once a second, across a wrap ...
    (PERIOD - 5000, 1000, 2 * DAY),
    # ... at odd intervals, so that the leftover milliseconds add up across the wrap ...
    (PERIOD - 777, 999, DAY),
    # ... and as seldom as it may be read, over three wraps.
    (0, LONGEST, 3 * PERIOD),
]


def main():
    for case in CASES:
        print("%d %d %d %d %d" % count(*case))


if __name__ == "__main__":
    main()
