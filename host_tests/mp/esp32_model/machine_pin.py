# Model of the ESP32 port's machine.Pin, for machine.py (the model's machine module):
# the GPIOs each chip's generic board enables, Pin.OUT reading back what it drives, pins
# that can only be inputs. Mirrors ports/esp32/machine_pin.c and machine_pin.h of
# micropython/micropython at v1.23.0 and master 1c3c201149 (unchanged between them for
# what is modelled); GPIO constants are ESP-IDF's (hal/gpio_types.h).

from world import NULL, OBJ, chip, get_int, log, parse, world

# Per chip: the GPIOs machine.Pin accepts (machine_pin.h for the generic boards: no SPIRAM
# on ESP32_GENERIC; the C3's 18/19 and the S2's 19/20 carry USB, the S2's 26 its SPIRAM),
# the first input-only GPIO (GPIO_FIRST_NON_OUTPUT), the UARTs (UART_NUM_MAX), and the
# GPIOs wired to the SPI flash (datasheets): routing a UART there stops the chip.
CHIPS = {
    "esp32": (
        tuple(range(24)) + (25, 26, 27) + tuple(range(32, 40)),
        34,
        3,
        range(6, 12),
    ),
    "esp32c3": (tuple(range(14)) + (20, 21), 99, 2, range(12, 18)),
    "esp32s2": (tuple(range(19)) + (21,) + tuple(range(33, 47)), 46, 2, range(26, 33)),
}


def chip_info():
    return CHIPS[chip()]


def pin_id(pin):
    """machine_pin_get_id: a Pin or the number of one this chip's port enables."""
    if isinstance(pin, Pin):
        return pin.id
    if type(pin) is int and pin in chip_info()[0]:
        return pin
    raise ValueError("invalid pin")


# -- Pin ---------------------------------------------------------------------------------

_mode = {}  # GPIO -> mode given to init(); absent: never configured
_level = {}  # GPIO -> output level
_pull = {}  # GPIO -> PULL_UP or PULL_DOWN given to init()


class Pin:
    IN = 1  # GPIO_MODE_INPUT
    OUT = 3  # GPIO_MODE_INPUT_OUTPUT: value() reads back what was written
    OPEN_DRAIN = 7  # GPIO_MODE_INPUT_OUTPUT_OD
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, *args, **kw):
        if not args:
            raise TypeError("function missing 1 required positional arguments")
        self.id = pin_id(args[0])
        if len(args) > 1 or kw:
            self.init(*args[1:], **kw)

    def init(self, *args, **kw):
        a = parse(
            args,
            kw,
            (
                ("mode", OBJ, None, False),
                ("pull", OBJ, -1, False),
                ("value", OBJ, NULL, True),
                ("drive", OBJ, NULL, True),
                ("hold", OBJ, NULL, True),
            ),
        )
        if a["value"] is not NULL:
            self._set(bool(a["value"]))
        if a["mode"] is not None:
            mode = get_int(a["mode"])
            if self.id >= chip_info()[1] and mode & 2:
                raise ValueError("pin can only be input")
            _mode[self.id] = mode
        if a["pull"] is not None and a["pull"] != -1:
            _pull[self.id] = get_int(a["pull"])

    def _set(self, level):
        _level[self.id] = level
        log("pin", self.id, int(level))

    def value(self, *args):
        if len(args) > 1:
            raise TypeError("function expected at most 2 arguments, got %d" % (len(args) + 1))
        if args:
            self._set(bool(args[0]))
            return None
        # gpio_get_level reads the pad: what the pin drives if its output is on; else what
        # the world drives it to ("inputs": {"0": 0}, a button held), else its pull-up's 1,
        # else 0.
        if _mode.get(self.id, 0) & 2:
            return int(_level.get(self.id, False))
        driven = world().get("inputs", {}).get(str(self.id))
        if driven is not None:
            return 1 if driven else 0
        return 1 if _pull.get(self.id) == Pin.PULL_UP else 0

    __call__ = value

    def on(self):
        self._set(True)

    def off(self):
        self._set(False)

    def __repr__(self):
        return "Pin(%d)" % self.id
