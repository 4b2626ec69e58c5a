# The meter link: bytes from the HAN UART into the decoder, and the line settings found.
#
# Norwegian HAN ports run 2400 baud; Aidon and Kaifa use 8E1, Kamstrup 8N1; Dutch/Swedish
# P1 ports run 115200 8N1 on an inverted line. With "auto" the link tries each setting
# until a frame passes its checksum, then keeps it (and remembers it across reboots);
# bytes that never make a valid frame under a setting are the sign to try the next.
# A locked setting under which bytes keep coming but no frame passes for a minute (a meter
# swapped, or its line changed) starts the search again, without a reboot; a silent line
# (the cable pulled) never does: no bytes is no evidence against the setting.
#
# The reader never waits for anything but the UART: readings go to the destinations
# through callbacks that only queue (destination.py), so a slow broker cannot stall it.

import time

from micropython import const

# (baud, parity, inverted) in the order tried: the Nordic HAN settings first.
# Last, a 2400 baud line read inverted: a level shifter that inverts, on a board whose
# board.json says it does not (or the other way round); tried when nothing else worked.
SETTINGS = (
    (2400, "8E1", False),
    (2400, "8N1", False),
    (115200, "8N1", True),
    (2400, "8E1", True),
    (2400, "8N1", True),
)
# No valid frame this long after bytes started to arrive under a setting: try the next.
# Kaifa and Aidon push List 1 every 2 s, Kamstrup every 10 s: 25 s sees two or more.
_DETECT_MS = const(25000)
# Locked, then bytes for this long with no valid frame: the setting no longer works.
# Over twice the search's step, so a burst of line noise or a few damaged frames (a
# meter sends one every 2-10 s) do not throw a working setting away.
_LOST_MS = const(60000)
# A pause this long inside a frame means bytes were lost (frames are sent back to back;
# a byte at 2400 baud takes 4.2 ms, so 100 ms is over 20 character times).
_IDLE_MS = const(100)
_TICK_MS = const(50)  # main's ticker period


def setting_name(s):
    return "%d %s%s" % (s[0], s[1], " inverted" if s[2] else "")


class MeterLink:
    def __init__(self, uart, decoder, meter, last=None, on_locked=None, clock=None,
                 on_bytes=None):  # fmt: skip
        self.clock = clock or time.ticks_ms  # injectable: tests run minutes in no time
        self.on_bytes = on_bytes  # called with (buf, n) for each read, before decoding
        self.uart = uart
        self.decoder = decoder
        self.on_locked = on_locked  # called with the setting once it is known to work
        baud, parity = meter["baud"], meter["parity"]
        self.auto = baud == "auto" or parity == "auto"
        if baud == "auto" and parity == "auto":
            self.candidates = list(SETTINGS)
        else:  # what the owner fixed, the rest tried: 2400 baud lines are not inverted
            bauds = (2400, 115200) if baud == "auto" else (baud,)
            parities = ("8E1", "8N1") if parity == "auto" else (parity,)
            self.candidates = [
                (b, p, b == 115200 if baud == "auto" else meter["invert"])
                for b in bauds
                for p in parities
            ]
        if last in self.candidates:  # the setting that worked last time first
            self.candidates.remove(last)
            self.candidates.insert(0, last)
        self.index = 0
        self.locked = not self.auto
        self.switches = 0  # settings changed by the search, since boot
        self.searches = 1 if self.auto else 0  # the boot's, and each after a lost lock
        self.search_from = self.setting if self.auto else None  # where the last one began
        self.search_ms = None  # the last search: its first byte to the lock
        self._search_t0 = None
        self.last_byte = self._ticked = self.clock()
        # When bytes first arrived under the current setting (searching), or since the
        # last valid frame (locked)
        self._since = None
        self.frames = 0
        self._idle_done = True
        self.apply()

    @property
    def setting(self):
        return self.candidates[self.index]

    def apply(self):
        s = self.setting
        self.uart.configure(s[0], s[1], s[2])
        self._since = None
        self.frames = _good(self.decoder)

    async def run(self):
        buf = bytearray(256)  # one read's worth: 0.1 s of a 2400 baud line, 22 ms of P1
        while True:
            n = await self.uart.read(buf)
            now = self.clock()
            if n:
                self.received(buf, n, now)

    def received(self, buf, n, now):
        """n bytes of buf arrived at time now (ms)."""
        self.last_byte = now
        self._idle_done = False
        if self.on_bytes is not None:
            self.on_bytes(buf, n)
        self.decoder.feed(buf, n)
        if not self.locked:
            if self._search_t0 is None:
                self._search_t0 = now
            self._detect(now)
        elif self.auto:
            self._watch(now)

    def tick(self):
        """Called every ~50 ms by main's ticker: close a frame the line left open.

        Not when the ticker itself comes late: after the event loop was busy (a TLS
        handshake, a flash write) the rest of the frame may already wait in the UART's
        buffer, and the reader, not the ticker, should see it first."""
        now = self.clock()
        late = time.ticks_diff(now, self._ticked) > 2 * _TICK_MS
        self._ticked = now
        if late:
            return
        if not self._idle_done and time.ticks_diff(now, self.last_byte) > _IDLE_MS:
            self._idle_done = True
            self.decoder.idle()
        if not self.locked and self._since is not None:
            self._detect(now)
        elif self._since is not None and time.ticks_diff(now, self.last_byte) > _DETECT_MS:
            # Locked, and the line went silent after some bytes: a glitch as the cable
            # was pulled is no evidence of a wrong setting, nor is the silence; the minute
            # of bad bytes starts again with the next ones.
            self._since = None

    def search(self):
        """What the line search did, for the stats: how many searches (the boot's, and one
        per lost lock), the setting the last began on, the settings changed since boot,
        and the seconds from the last search's first byte to its lock (None while
        searching, or with the setting fixed)."""
        return {
            "searches": self.searches,
            "from": setting_name(self.search_from) if self.search_from else None,
            "switches": self.switches,
            "lock_s": None if self.search_ms is None else self.search_ms // 1000,
        }

    def _watch(self, now):
        good = _good(self.decoder)
        if good != self.frames:
            self.frames = good
            self._since = None
        elif self._since is None:
            self._since = now
        elif time.ticks_diff(now, self._since) > _LOST_MS:
            self.locked = False
            self.searches += 1
            self.search_from = self.setting
            self.search_ms = None
            self._search_t0 = now
            self._next()

    def _next(self):
        self.index = (self.index + 1) % len(self.candidates)
        self.switches += 1
        self.apply()

    def _detect(self, now):
        if _good(self.decoder) != self.frames:
            self.locked = True
            self.frames = _good(self.decoder)
            self._since = None
            if self._search_t0 is not None:
                self.search_ms = time.ticks_diff(now, self._search_t0)
                self._search_t0 = None
            if self.on_locked:
                self.on_locked(self.setting)
            return
        if self._since is None:
            self._since = now
        elif time.ticks_diff(now, self._since) > _DETECT_MS:
            self._next()


def _good(decoder):
    f = decoder.assembler.frames
    return f[1] + f[2] + f[3]
