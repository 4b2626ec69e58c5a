# Model of the ESP32 port's `machine` module, as far as hal_esp32 and ntptime use it, for
# the MicroPython unix port (a machine.py on the path stands in for the unix port's own,
# which is an extensible built-in). It accepts and refuses what the port does, with the
# same exception types and messages (MICROPY_ERROR_REPORTING_NORMAL, the port's setting).
#
# Mirrors micropython/micropython at v1.23.0 and at master 1c3c201149 (1.29.0-preview),
# chosen by the world's "micropython" (world.py):
#   Pin         machine_pin.py: ports/esp32/machine_pin.c, machine_pin.h
#   UART        machine_uart.py: ports/esp32/machine_uart.c, extmod/machine_uart.c
#   WDT         ports/esp32/machine_wdt.c, extmod/machine_wdt.c
#   RTC         ports/esp32/machine_rtc.c (datetime, which ntptime.settime() calls)
#   reset_cause, reset and the reset constants, unique_id: ports/esp32/modmachine.c

import os
import time

from machine_pin import Pin  # noqa: F401 - machine.Pin
from machine_uart import UART  # noqa: F401 - machine.UART
from world import INT, OBJ, PATH, get_int, log, parse, version

# Reset causes (modmachine.c: MP_PWRON_RESET = 1, ...)
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

# The reset the board comes from: machine.reset() leaves its mark beside the world file
# for the next boot (the test's launcher starts the board again), else power-on.
_MARK = PATH + ".reset"
_cause = PWRON_RESET
try:
    with open(_MARK) as f:
        _cause = int(f.read())
    os.remove(_MARK)
except OSError:
    pass


def reset_cause():
    return _cause


def unique_id():
    """The base MAC address (esp_efuse_mac_get_default), the station's: 6 bytes."""
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset():
    """ESP_RST_SW: the board starts again, and its reset_cause() is HARD_RESET. Here the
    process ends with hanctl run's RESTART status (3), and the launcher starts it again."""
    log("reset")
    with open(_MARK, "w") as f:
        f.write(str(HARD_RESET))
    raise SystemExit(3)


# -- WDT ---------------------------------------------------------------------------------

_wdt = None  # the port's one task-watchdog user (wdt_default)


class WDT:
    def __init__(self, *args, **kw):
        global _wdt
        id_kind = OBJ if version() >= (1, 29) else INT
        a = parse(args, kw, (("id", id_kind, 0, False), ("timeout", INT, 5000, False)))
        wdt_id = a["id"]
        if type(wdt_id) is not int or wdt_id != 0:  # 1.29 compares the object with 0
            raise ValueError()
        if a["timeout"] <= 0:
            raise ValueError("WDT timeout too short")
        self.timeout = a["timeout"]
        self.last = time.ticks_ms()
        _wdt = self
        log("wdt start timeout", self.timeout)

    def feed(self):
        now = time.ticks_ms()
        late = time.ticks_diff(now, self.last)
        self.last = now
        if late > self.timeout:  # the chip would have reset before this feed
            log("wdt expired", late)
        log("wdt feed")


# -- RTC ---------------------------------------------------------------------------------


class RTC:
    def datetime(self, *args):
        if not args:
            t = time.gmtime()
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        value = args[0]
        if type(value) is not tuple and type(value) is not list:
            raise TypeError("object '%s' isn't a tuple or list" % type(value).__name__)
        if len(value) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(value))
        for item in value:
            get_int(item)
        log("rtc datetime", tuple(value))
