"""Run under the MicroPython unix port: the meter link's line-setting search, with a fake
UART and a fake clock. stdin: hex of one good frame. Prints one line per step."""

import sys

from decoder import Decoder
from meterlink import MeterLink, setting_name

frame = bytes.fromhex(sys.stdin.read().strip())
now = [0]


class FakeUart:
    def __init__(self):
        self.settings = []

    def configure(self, baud, parity, invert):
        self.settings.append("%d %s%s" % (baud, parity, " inverted" if invert else ""))


def run(meter_cfg, remembered, script):
    """script: ("bytes", data) at the current time, ("wait", ms) with ticks every 50 ms."""
    uart = FakeUart()
    locked = []
    link = MeterLink(
        uart, Decoder(lambda r: None), meter_cfg, remembered, locked.append, lambda: now[0]
    )
    for op, arg in script:
        if op == "bytes":
            link.received(arg, len(arg), now[0])
        elif op == "late":  # the event loop was busy: one tick, arg ms after the last
            now[0] += arg
            link.tick()
        else:
            for _ in range(arg // 50):
                now[0] += 50
                link.tick()
    print(
        "tried=%s locked=%s on=%s switches=%d frames=%d"
        % (
            ",".join(uart.settings),
            link.locked,
            setting_name(locked[0]) if locked else "-",
            link.switches,
            link.decoder.readings,
        )
    )


garbage = bytes(range(0x80, 0xA0))
auto = {"baud": "auto", "parity": "auto", "invert": False}
# garbage for 30 s (wrong setting), then the frame: the second setting locks
run(
    auto,
    None,
    [("bytes", garbage)] + [("wait", 1000), ("bytes", garbage)] * 30 + [("bytes", frame)],
)
# the remembered setting is tried first and locks at once
run(auto, (2400, "8N1", False), [("bytes", frame)])
# no bytes at all: no reason to switch (a silent meter is not a wrong setting)
run(auto, None, [("wait", 60000)])
# fixed settings are never changed
run(
    {"baud": 2400, "parity": "8N1", "invert": False},
    None,
    [("bytes", garbage)] + [("wait", 1000), ("bytes", garbage)] * 60,
)
# an owner's fixed 9600 baud with parity auto: both parities at 9600, nothing else
run(
    {"baud": 9600, "parity": "auto", "invert": False},
    None,
    [("bytes", garbage)] + [("wait", 1000), ("bytes", garbage)] * 30,
)
# a frame whose end waited in the UART while the loop was busy 300 ms: not cut off
run(auto, None, [("bytes", frame[:30]), ("late", 300), ("bytes", frame[30:])])
# the same pause seen by a punctual ticker: the frame was cut (bytes were lost)
run(auto, None, [("bytes", frame[:30]), ("wait", 300), ("bytes", frame[30:])])
