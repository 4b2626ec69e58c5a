# Hardware layer for ESP32 boards: the meter UART, LEDs, watchdog, Wi-Fi.
#
# Pins come from board.json (boards/<name>/, copied onto the dongle with the firmware), named by
# function: HAN_RX, LED_STATUS, BUTTON. No logic lives here: dongle.py decides.

import asyncio
import gc
import json
import time

import machine
import network

NAME = "esp32"

# The UART's receive buffer must hold what arrives while the event loop is busy elsewhere.
# The longest step is a TLS handshake (mbedTLS on an ESP32: up to ~2 s measured by others;
# plan 4 s): at 2400 baud that is 960 bytes, so 2048 leaves room for two HAN frames. At
# 115200 baud (P1) 2048 bytes last 0.18 s; a P1 meter repeats its telegram every 1-10 s,
# so an overrun costs one telegram, counted as truncated.
RXBUF = 2048
_PARITY = {"8N1": None, "8E1": 0}


def log(*args):
    print("hanport:", *args)


def board(name):
    with open("board.json") as f:
        b = json.load(f)
    if name and b.get("name") != name:
        log("config board", name, "but board.json is", b.get("name"))
    return b


class Uart:
    def __init__(self, board_def):
        self.id = board_def["uart"]
        self.rx = board_def["pins"]["HAN_RX"]
        self.board_inverted = board_def.get("han_rx_inverted", False)
        self._uart = None
        self._stream = None

    def configure(self, baud, parity, invert):
        inv = machine.UART.INV_RX if (invert != self.board_inverted) else 0
        if self._uart is None:
            self._uart = machine.UART(self.id)
            self._stream = asyncio.StreamReader(self._uart)
        # init() on the one UART, so a read waiting on its stream sees the new setting.
        # (No tx pin is given: the default of the board's UART id must not be a flash pin,
        # as UART1's GPIO10 is on a classic ESP32 - boards use UART2 there.)
        self._uart.init(
            baudrate=baud,
            bits=8,
            parity=_PARITY[parity],
            stop=1,
            rx=self.rx,
            rxbuf=RXBUF,
            invert=inv,
        )

    async def read(self, buf):
        n = await self._stream.readinto(buf)
        return n or 0

    def close(self):
        pass


class Led:
    def __init__(self, board_def, name="LED_STATUS"):
        pin = board_def["pins"].get(name)
        self._pin = machine.Pin(pin, machine.Pin.OUT) if pin is not None else None
        self._low = board_def.get("led_active_low", False)
        self.state = None

    def set(self, pattern):
        """pattern: "on", "off", "blink" or "blink-fast"; main toggles() a blinking LED."""
        self.state = pattern
        if self._pin is not None and pattern in ("on", "off"):
            self._pin.value((pattern == "on") != self._low)

    def toggle(self):
        if self._pin is not None:
            self._pin.value(not self._pin.value())


class Watchdog:
    def __init__(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()

    def check(self):
        pass


class Network:
    def __init__(self, hostname):
        network.hostname(hostname)  # before connect(): the DHCP request carries it
        # WLAN.IF_STA, not network.STA_IF: kept only for backwards compatibility since 1.25.
        self._wlan = network.WLAN(network.WLAN.IF_STA)

    async def connect(self, networks):
        """Try the configured networks in order; True once one is joined."""
        w = self._wlan
        w.active(True)
        for net in networks:
            if w.isconnected():
                return True
            # A station asked to connect keeps trying by itself, after a dropped link too,
            # and connect() meanwhile raises OSError("Wifi Internal Error"): ESP-IDF's
            # "sta is connecting" (micropython#17661). So stop it first, and give the
            # driver a second, as mqtt_as does (peterhinch/micropython-mqtt#132).
            w.disconnect()
            await asyncio.sleep_ms(1000)
            try:
                w.connect(net["ssid"], net.get("password", ""))
            except OSError as e:  # the next network, or the next round, then
                log("wifi", net["ssid"], "connect failed:", repr(e))
                continue
            for _ in range(100):  # 10 s per network
                if w.isconnected():
                    log("wifi", net["ssid"], _address(w))
                    return True
                await asyncio.sleep_ms(100)
        return w.isconnected()

    def isconnected(self):
        return self._wlan.isconnected()


def button():
    """True when the board's BUTTON is held at boot: pressed (it pulls the pin low) through
    0.5 s of the 2 s after the firmware starts. Not before: the BOOT button of these boards
    held through a reset starts the ROM's download mode instead of the firmware."""
    try:
        pin = board(None)["pins"].get("BUTTON")
    except (OSError, ValueError, KeyError):  # no usable board.json: no button
        return False
    if pin is None:
        return False
    p = machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)
    held = 0
    for _ in range(40):
        held = held + 1 if p.value() == 0 else 0
        if held >= 10:
            return True
        time.sleep_ms(50)
    return False


def __getattr__(name):
    # scan() and access_point(), setup mode's Wi-Fi (hal_esp32_wifi.py), load at their first
    # use: a dongle that runs normally holds none of their code (docs/performance.md).
    import hal_esp32_wifi

    return getattr(hal_esp32_wifi, name)


def _address(wlan):
    # ipconfig() came in MicroPython 1.24 and ifconfig() is deprecated since; 1.23 has
    # only ifconfig().
    if hasattr(wlan, "ipconfig"):
        return wlan.ipconfig("addr4")[0]
    return wlan.ifconfig()[0]


_CAUSES = {
    machine.PWRON_RESET: "power-on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft",
}


def led(board_def):
    return Led(board_def)


def uart(board_def, meter_cfg):
    return Uart(board_def)


def listen():
    """(host, port, chip id) of the web server: port 80 of every interface (the station's
    address and, later, the access point's), and the base MAC address, 6 bytes, which is
    what HomeWizard's serial is."""
    return "0.0.0.0", 80, machine.unique_id()


def reset_cause():
    return _CAUSES.get(machine.reset_cause(), "other")


def free_heap():
    gc.collect()
    return gc.mem_free()


def restart():
    time.sleep_ms(100)
    machine.reset()
