"""Run under the MicroPython unix port: meterlink's watch over a locked setting, with a fake
UART and clock. stdin: hex of one good 2400 8E1 frame. One line per case."""

import sys

from decoder import Decoder
from meterlink import MeterLink, setting_name

frame = bytes.fromhex(sys.stdin.read().strip())
garbage = bytes(range(0x80, 0xA0))
now = [0]


class FakeUart:
    def __init__(self):
        self.settings = []

    def configure(self, baud, parity, invert):
        self.settings.append(setting_name((baud, parity, invert)))


def locked():
    uart = FakeUart()
    auto = {"baud": "auto", "parity": "auto", "invert": False}
    link = MeterLink(uart, Decoder(lambda r: None), auto, (2400, "8E1", False), None,
                     lambda: now[0])  # fmt: skip
    link.received(frame, len(frame), now[0])
    return link, uart


def run_for(link, ms, data=None):
    """Ticks every 50 ms for ms; data, if given, arrives once a second."""
    for t in range(0, ms, 50):
        now[0] += 50
        if data is not None and t % 1000 == 0:
            link.received(data, len(data), now[0])
        link.tick()


def show(name, link, uart):
    s = link.search()
    print("%s: locked=%s tried=%s search=%d,%s,%d"
          % (name, link.locked, "|".join(uart.settings), s["searches"], s["from"],
             s["switches"]))  # fmt: skip


link, uart = locked()
run_for(link, 59000, garbage)
show("bad 59 s", link, uart)
run_for(link, 3000, garbage)
show("bad 62 s", link, uart)

link, uart = locked()
run_for(link, 600000)
show("silent 600 s", link, uart)

link, uart = locked()
link.received(b"\x00", 1, now[0])  # the plug's contacts bounce
run_for(link, 120000)
half = len(frame) // 2
link.received(frame, half, now[0])
now[0] += 20
link.received(frame[half:], len(frame) - half, now[0])
show("glitch, 120 s, frame", link, uart)
