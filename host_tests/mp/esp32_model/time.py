# Model of the board's clock: the unix port's `time` (an extensible built-in, which this file
# on the path stands in for), with ticks_ms() moved on by the world's "clock_skip_ms", so a
# test sees minutes pass on the board in a moment (the world file may raise it while the
# board runs; world.py). Everything that reads ticks_ms() from Python sees the same skip:
# the firmware's uptime and timers, asyncio's sleeps (which then wake at once), the model's
# log and its watchdog. Only ticks_ms() moves; the rest is the port's own.

import sys

_me = sys.modules["time"]
del sys.modules["time"]
_path = sys.path[:]
sys.path[:] = [p for p in _path if not p.rstrip("/").endswith("esp32_model")]
try:
    import time as _port  # the built-in: no time.py on the path now
finally:
    sys.path[:] = _path
    sys.modules["time"] = _me

for _name in dir(_port):
    if _name[:2] != "__":
        globals()[_name] = getattr(_port, _name)

port_ticks_ms = _port.ticks_ms  # world.py's own clock: the skip is read from the world
_skip_of = None


def ticks_ms():
    global _skip_of
    if _skip_of is None:
        from world import clock_skip_ms

        _skip_of = clock_skip_ms
    return _port.ticks_add(_port.ticks_ms(), _skip_of())
