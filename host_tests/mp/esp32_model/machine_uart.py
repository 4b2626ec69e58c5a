# Model of the ESP32 port's machine.UART, for machine.py (the model's machine module), with
# the meter's line behind it. Mirrors ports/esp32/machine_uart.c and extmod/machine_uart.c
# of micropython/micropython at v1.23.0 and master 1c3c201149 (1.29.0-preview), chosen by
# the world's "micropython" (world.py); constants are ESP-IDF's (hal/uart_types.h).
#
# Not modelled: the receive ring (bytes wait in the socket instead, so an overrun never
# happens here), IRQs, timeouts of blocking reads (hal_esp32 reads through asyncio, which
# polls), and init() discarding buffered input (1.27 and later).

import io
import socket

from machine_pin import chip_info, pin_id
from world import INT, NULL, OBJ, BoardFault, get_int, log, parse, version, world

_NO_CHANGE = -1  # UART_PIN_NO_CHANGE
_DEFAULT_PINS = {0: (_NO_CHANGE, _NO_CHANGE), 1: (10, 9), 2: (17, 16)}  # (tx, rx)
_REPL = 0  # MICROPY_HW_UART_REPL
_FIFO = 128  # UART_HW_FIFO_LEN: the driver wants a larger receive buffer
_PARITY_NAME = ("None", "1", "0")
_INV_MASK = 4 | 8 | 32 | 64
_peripherals = {}  # UART number -> its settings while its driver is installed


def _defaults(num):
    tx, rx = _DEFAULT_PINS[num]
    return {
        "baudrate": 115200,
        "bits": 8,
        "parity": 0,  # 0 none, 1 odd, 2 even (the port's _parity_name index)
        "stop": 1,
        "tx": tx,
        "rx": rx,
        "rts": _NO_CHANGE,
        "cts": _NO_CHANGE,
        "txbuf": 256,
        "rxbuf": 256,
        "timeout": 0,
        "timeout_char": 0,
        "invert": 0,
        "flow": 0,
        "wire": None,  # the meter's line, when rx is its GPIO
        "announced": None,
    }


class UART(io.IOBase):
    INV_TX = 32  # UART_SIGNAL_TXD_INV
    INV_RX = 4  # UART_SIGNAL_RXD_INV
    INV_RTS = 64
    INV_CTS = 8
    RTS = 1  # UART_HW_FLOWCTRL_RTS
    CTS = 2

    def __init__(self, *args, **kw):
        if not args:
            raise TypeError("function missing 1 required positional arguments")
        num = get_int(args[0])
        if num < 0 or num >= chip_info()[2]:
            raise ValueError("UART(%d) does not exist" % num)
        self.num = num
        if version() < (1, 27) or num not in _peripherals:
            # 1.23 makes a new object and installs the driver afresh; from 1.27 the object
            # is the UART's one instance, its driver kept until deinit() (371db85c8e).
            if num in _peripherals:
                self._close_wire()
            _peripherals[num] = _defaults(num)
        self._init(args[1:], kw)

    @property
    def _p(self):
        p = _peripherals.get(self.num)
        if p is None:  # after deinit(): 1.27+ installs the driver again on init()
            p = _peripherals[self.num] = _defaults(self.num)
        return p

    def init(self, *args, **kw):
        self._init(args, kw)

    def _init(self, args, kw):
        a = parse(
            args,
            kw,
            (
                ("baudrate", INT, 0, False),
                ("bits", INT, 0, False),
                ("parity", OBJ, NULL, False),
                ("stop", INT, 0, False),
                ("tx", OBJ, NULL, True),
                ("rx", OBJ, NULL, True),
                ("rts", OBJ, NULL, True),
                ("cts", OBJ, NULL, True),
                ("txbuf", INT, -1, True),
                ("rxbuf", INT, -1, True),
                ("timeout", INT, -1, True),
                ("timeout_char", INT, -1, True),
                ("invert", INT, -1, True),
                ("flow", INT, -1, True),
            ),
        )
        p = self._p
        if a["txbuf"] >= 0 or a["rxbuf"] >= 0:
            if self.num == _REPL:
                if version() < (1, 27):
                    raise ValueError("UART buffer size is fixed")
                raise ValueError("REPL UART buffer size is fixed")
            rxbuf = a["rxbuf"] if a["rxbuf"] >= 0 else p["rxbuf"]
            if rxbuf <= _FIFO:  # uart_driver_install refuses it; check_esp_err raises
                raise OSError(-258, "ESP_ERR_INVALID_ARG")
            p["rxbuf"] = rxbuf
            if a["txbuf"] >= 0:
                p["txbuf"] = a["txbuf"]
        if a["baudrate"] > 0:
            p["baudrate"] = a["baudrate"]
        for name in ("tx", "rx", "rts", "cts"):
            pin = a[name]
            if pin is NULL:
                continue
            if version() >= (1, 29) and type(pin) is int and pin == -1:
                p[name] = _NO_CHANGE  # "unused" (e8992ebc78, after 1.28)
            else:
                p[name] = pin_id(pin)
        for gpio in (p["tx"], p["rx"]):
            if gpio in chip_info()[3]:
                raise BoardFault("UART%d on GPIO%d, a flash pin: the chip stops" % (self.num, gpio))
        if a["bits"] not in (0, 5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if a["bits"]:
            p["bits"] = a["bits"]
        if a["parity"] is not NULL:
            p["parity"] = 0 if a["parity"] is None else (1 if get_int(a["parity"]) & 1 else 2)
        if a["stop"] not in (0, 1, 2):
            raise ValueError("invalid stop bits")
        if a["stop"]:
            p["stop"] = a["stop"]
        if a["timeout"] != -1:
            p["timeout"] = a["timeout"]
        if a["timeout_char"] != -1:
            p["timeout_char"] = a["timeout_char"]
        if a["invert"] != -1:
            if a["invert"] & ~_INV_MASK:
                raise ValueError("invalid inversion mask")
            p["invert"] = a["invert"]
        if a["flow"] != -1:
            if a["flow"] & ~3:
                raise ValueError("invalid flow control mask")
            p["flow"] = a["flow"]
        log("uart", repr(self))
        self._wire_up()

    def deinit(self):
        self._close_wire()
        _peripherals.pop(self.num, None)

    def __repr__(self):
        p = self._p
        text = (
            "UART(%d, baudrate=%d, bits=%d, parity=%s, stop=%d, tx=%d, rx=%d, rts=%d, cts=%d, "
            "txbuf=%d, rxbuf=%d, timeout=%d, timeout_char=%d"
        ) % (
            self.num,
            p["baudrate"],
            p["bits"],
            _PARITY_NAME[p["parity"]],
            p["stop"],
            p["tx"],
            p["rx"],
            p["rts"],
            p["cts"],
            p["txbuf"],
            p["rxbuf"],
            p["timeout"],
            p["timeout_char"],
        )
        if version() >= (1, 25):
            text += ", irq=0"
        if p["invert"]:
            names = ((32, "INV_TX"), (4, "INV_RX"), (64, "INV_RTS"), (8, "INV_CTS"))
            text += ", invert=" + "|".join(n for bit, n in names if p["invert"] & bit)
        if p["flow"]:
            text += ", flow=" + "|".join(
                n for bit, n in ((1, "RTS"), (2, "CTS")) if p["flow"] & bit
            )
        return text + ")"

    # The meter's line: bytes reach this UART only while its RX is the GPIO the meter is
    # wired to. The far end (hanctl.simulate.Server with a line) is told the receiver's
    # setting, "line 2400 8E1\n", as hal_unix announces it, and serves what a UART so set
    # reads from that meter; a setting it has no name for (7 bits, odd parity, 2 stop
    # bits) reads nothing here.

    def _setting(self):
        p = self._p
        if p["bits"] != 8 or p["stop"] != 1 or p["parity"] == 1:
            return None
        fmt = "8E1" if p["parity"] == 2 else "8N1"
        inverted = " inverted" if p["invert"] & UART.INV_RX else ""
        return "line %d %s%s\n" % (p["baudrate"], fmt, inverted)

    def _wire_up(self):
        p = self._p
        meter = world().get("meter")
        if meter is None or p["rx"] != meter["pin"]:
            self._close_wire()
            return
        if p["wire"] is None:
            s = socket.socket()
            s.connect(socket.getaddrinfo("127.0.0.1", meter["port"])[0][-1])
            s.setblocking(False)
            p["wire"] = s
            p["announced"] = None
        setting = self._setting()
        if setting is not None and setting != p["announced"]:
            p["wire"].write(setting.encode())
            p["announced"] = setting

    def _close_wire(self):
        p = _peripherals.get(self.num)
        if p is not None and p["wire"] is not None:
            p["wire"].close()
            p["wire"] = None

    def readinto(self, buf):
        """What arrived, or None when nothing has (the port's EAGAIN at timeout=0)."""
        p = self._p
        if p["wire"] is None:
            return None
        try:
            n = p["wire"].readinto(buf)
        except OSError:
            n = 0
        if n == 0:  # the meter's end went away: a silent line from now on
            log("uart", self.num, "meter line closed")
            self._close_wire()
            return None
        if n is None or self._setting() is None:
            return None
        return n

    def write(self, buf):
        return len(buf)  # no TX wire: the HAN port is one-way

    def ioctl(self, request, arg):
        if request == 10:  # MP_STREAM_GET_FILENO: select.poll (asyncio) polls this fd
            wire = self._p["wire"]
            return (wire or _silence()).fileno()
        return 0


_silent = None


def _silence():
    """A socket nothing ever reaches: the fd a UART with no meter on its RX is polled by."""
    global _silent
    if _silent is None:
        _silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _silent.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    return _silent
