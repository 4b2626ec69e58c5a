# Hardware layer for the MicroPython unix port (`hanctl run`, the tests, the demo).
#
# The meter's UART is a TCP connection to a meter simulator (or any program serving the
# HAN byte stream), given as HANPORT_UART=tcp://HOST:PORT. Wi-Fi is always up, the LED is
# a log line, the watchdog logs when it would have reset. No logic lives here: dongle.py and
# the modules it wires decide everything; this only moves bytes and toggles "pins".

import asyncio
import gc
import os
import sys
import time

NAME = "unix"


def log(*args):
    print("hanport:", *args)


class Uart:
    """The meter link over TCP. read() waits for bytes.

    A socket has no baud rate or parity, so configure() tells the far end instead: the HAN
    link is one-way (meter to dongle), and the unused dongle-to-meter direction carries
    the setting as one ASCII line, "line 2400 8E1\n" or "line 115200 8N1 inverted\n",
    sent on each configure() and again on each new connection. The simulator
    (tools/hanctl/simulate.py Server) then serves what a UART at that setting would read
    from its meter (tools/hanctl/line.py); a program that ignores it serves the bytes as
    they are.

    When the meter program goes away (its connection ends, or it refuses one), the link is
    retried after backoff_ms[0], doubling to backoff_ms[1] while it stays down, so a
    restarted meter is read again within backoff_ms[1] of its return. A real UART has no
    connection to lose; this keeps the dongle's reader waiting on it as on a silent line."""

    def __init__(self, url, backoff_ms=(250, 4000), sleep_ms=None):
        if not url.startswith("tcp://") or ":" not in url[6:]:
            raise ValueError("HANPORT_UART must be tcp://HOST:PORT, not %r" % url)
        host, port = url[6:].rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self._reader = None
        self._writer = None
        self._setting = None  # the announcement line, bytes
        self.backoff_ms = backoff_ms
        self._sleep_ms = sleep_ms or asyncio.sleep_ms  # injectable, as meterlink's clock
        self._wait_ms = 0  # before the next connection attempt: 0 until the link is lost

    def configure(self, baud, parity, invert):
        log("uart", baud, parity, "inverted" if invert else "")
        text = "line %d %s%s\n" % (baud, parity, " inverted" if invert else "")
        self._setting = text.encode()
        self._announce()

    def _announce(self):
        """Send the setting; the OSError when the connection turned out to be gone, which
        read() then handles (the socket is not closed here: read() may be waiting on it)."""
        if self._writer is None or self._setting is None:
            return None  # sent when the connection is made
        try:
            # A few bytes on a fresh socket: Stream.write() sends them at once, no drain.
            self._writer.write(self._setting)
        except OSError as e:
            return e
        return None

    async def read(self, buf):
        """Bytes into buf; returns how many, 0 when the line is down (then retried)."""
        if self._reader is None:
            if self._wait_ms:
                await self._sleep_ms(self._wait_ms)
            try:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                self._lost(e)
                return 0
            # A connection refused shows here first: the non-blocking connect of
            # open_connection() reports its error on the first write.
            e = self._announce()
            if e is not None:
                self._lost(e)
                return 0
        try:
            n = await self._reader.readinto(buf)
        except OSError as e:
            self._lost(e)
            return 0
        if n is None:
            return 0  # woken with nothing to read: the connection is still there
        if not n:
            self._lost(None)
            return 0
        if self._wait_ms:
            log("uart: meter link up")
            self._wait_ms = 0  # bytes flow: a later loss starts the backoff afresh
        return n

    def _lost(self, why):
        """The connection ended (why None), or failed with OSError why: close the socket,
        and wait longer before the next attempt, up to backoff_ms[1]."""
        self.close()
        lo, hi = self.backoff_ms
        if not self._wait_ms:  # once per outage: a meter that stays away logs no more
            log("uart: meter link down:", "closed" if why is None else repr(why),
                "- retrying every %d-%d ms" % (lo, hi))  # fmt: skip
        self._wait_ms = min(hi, self._wait_ms * 2) if self._wait_ms else lo

    def close(self):
        if self._writer is not None:
            # MicroPython's Stream.close() does nothing; the socket's own close() frees its
            # descriptor. Without it each attempt kept one: 20000 refused attempts in 3 s
            # used up the process's descriptors, and no connection could be made again.
            self._writer.s.close()
        self._reader = self._writer = None


class Led:
    def __init__(self, name):
        self.name = name
        self.state = None

    def set(self, pattern):
        if pattern != self.state:
            self.state = pattern
            log("led", self.name, pattern)

    def toggle(self):
        pass  # the log line of set() is the unix port's LED


class Watchdog:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.last = time.ticks_ms()

    def feed(self):
        self.last = time.ticks_ms()

    def check(self):
        # A real watchdog resets the chip; here the log says it would have.
        if time.ticks_diff(time.ticks_ms(), self.last) > self.timeout_ms:
            log("watchdog: would reset, not fed for", self.timeout_ms, "ms")
            self.last = time.ticks_ms()


class Network:
    """The host's network is always up; there is no Wi-Fi to join."""

    def __init__(self, hostname):
        self.hostname = hostname

    async def connect(self, networks):
        return True

    def isconnected(self):
        return True


def board(name):
    return None


def led(board_def):
    return Led("status")


def uart(board_def, meter_cfg):
    return Uart(os.getenv("HANPORT_UART") or "tcp://127.0.0.1:2400")


def reset_cause():
    return "power-on"


def listen():
    """(host, port, chip id) of the web server: where it listens, HANPORT_HTTP=HOST:PORT as
    `hanctl run --http` sets it, and no chip id (the local API's serial then comes from the
    hostname). None without HANPORT_HTTP: on a host nothing listens unless asked to."""
    where = os.getenv("HANPORT_HTTP")
    if not where:
        return None
    host, _, port = where.rpartition(":")
    return host, int(port), None


def free_heap():
    gc.collect()
    return gc.mem_free()


def restart():
    sys.exit(3)


def scan():
    """The Wi-Fi networks in reach, as the setup form lists them: (ssid, rssi dBm, secure).
    The host has no radio: a fixed few, so the form and its tests see a list."""
    return [("home", -48, True), ("home-guest", -67, False), ("neighbour", -82, True)]
