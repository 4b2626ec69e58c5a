# Seconds since boot that do not wrap: the stats' uptime_s, last_frame_age_s and down_s.
#
# MicroPython's ticks_ms() wraps at 2**30 ms (12.4 days) on an ESP32 (and any 32-bit port),
# and ticks_diff() is right only for spans under 2**29 ms (6.2 days): from ticks alone, a
# dongle up for a week would report a negative uptime. Uptime adds up short spans instead,
# so it only needs reading at least once every 6.2 days; the dongle's ticker reads it every
# second. Whole seconds and the leftover milliseconds are kept apart so that both stay small
# ints, which take no heap (host_tests/test_uptime.py reads it under heap_lock): 2**30 s is
# 34 years. An age or a down time is a difference of two whole-second counts: up to 1 s more
# than the span in milliseconds rounded down, never less than 0.

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython (host tests): MicroPython's arithmetic, the ESP32's period
    import time

    from micropython import const

    _PERIOD = const(1 << 30)

    def ticks_ms():
        return time.monotonic_ns() // 1000000 & (_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _PERIOD // 2) & (_PERIOD - 1)) - _PERIOD // 2


class Uptime:
    def __init__(self, ticks=ticks_ms):
        self._ticks = ticks  # a fake one in the tests
        self.last = ticks()
        self._s = 0
        self._ms = 0

    def seconds(self):
        now = self._ticks()
        self._ms += ticks_diff(now, self.last)
        self.last = now
        if self._ms >= 1000:
            self._s += self._ms // 1000
            self._ms %= 1000
        return self._s
