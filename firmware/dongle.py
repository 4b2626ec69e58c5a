# The running dongle: meter link, destinations, watchdog. Only wiring lives here.
#
#   UART -> meterlink -> decoder -> on_reading -> every Destination.offer() (never waits)
#                                              -> tariff.Account.offer() (with a "tariff")
#                                              -> energyfeed.feed() (discovery, no tariff)
#   each Destination.run() task: MQTT session, outage queue, stats, discovery
#   a ticker: closes frames the line left open, wakes destinations, feeds the watchdog
#
# startup.py checks config.json first and hands Dongle the checked config and the hardware
# layer it chose: dongle imports nothing from startup.

import asyncio
import gc
import sys
import time

from micropython import const

from decoder import INTERNAL, MEMORY, Decoder
from destination import Destination
from meterlink import MeterLink, setting_name
from store import STATE, load_json, save_json
from uptime import Uptime

_WATCHDOG_MS = const(30000)  # folded in: no interned name
_SETUP_S = const(300)  # no Wi-Fi joined this long after boot: setup mode (network())
hal = log = None  # the hardware layer startup chose, and its log: set by Dongle()


class Dongle:
    local_api = None  # local_api.LocalApi, when config.json turns it on
    page = None  # page.Page, when config.json turns the owner's page on
    # tariff.Account, when some destination gets the tariff (run()). A class attribute until
    # then: an instance attribute more can grow every instance's dict (heap, measured).
    tariff = None
    energynow = None  # energyfeed, when a destination gets the energy counted on (run())

    def __init__(self, cfg, hal_module, version):
        """cfg: checked; hal_module: hal_esp32 or hal_unix; version: the firmware's."""
        global hal, log
        hal = hal_module
        log = hal.log
        self.cfg = cfg
        self.version = version
        self.uptime = Uptime()  # read once a second by the ticker, so it never wraps
        self.reset_cause = hal.reset_cause()
        self.board = hal.board(cfg.get("board"))
        self.led = hal.led(self.board)
        self.destinations = []
        self.last_frame = None  # uptime seconds of the last reading
        self._told = False
        meter = cfg["meter"]
        keys = None
        if meter.get("key"):  # an encrypting meter: its keys, checked by config.py
            from binascii import unhexlify

            keys = unhexlify(meter["key"]), meter.get("auth_key") and unhexlify(meter["auth_key"])
        self.decoder = Decoder(self._reading, self._rejected, keys=keys)
        self.state = state = load_json(STATE)
        remembered = tuple(state["link"]) if "link" in state else None
        if "salt" not in state:
            # A secret of this dongle: Home Assistant ids derived from a withheld meter id
            # are hashed with it, so nobody can find the id by hashing every candidate.
            # os.urandom: 64 bits of the ESP32's hardware RNG, where random.getrandbits()
            # draws from a PRNG seeded with 32 of them.
            import os
            from binascii import hexlify

            state["salt"] = hexlify(os.urandom(8)).decode()
            save_json(STATE, state)
        raw = any(d.get("raw") for d in cfg["destinations"])
        self.link = MeterLink(
            hal.uart(self.board, cfg["meter"]),
            self.decoder,
            cfg["meter"],
            remembered,
            self._locked,
            on_bytes=self._raw if raw else None,
        )

    def _reading(self, reading):
        now = time.ticks_ms()
        self.last_frame = self.uptime.seconds()
        for d in self.destinations:
            d.offer(reading, now)  # never raises: a reading it cannot take, it counts
        if self.local_api is not None:
            self.local_api.offer(reading, now)
        if self.page is not None:
            self.page.offer(reading, now)  # never raises either
        if self.tariff is not None:
            self.tariff.offer(reading, now)  # never raises either
        if self.energynow is not None:  # energyfeed, when a destination gets the count
            self.energynow.feed(self.destinations, reading, log)
        # Collect now, between frames, while the line is quiet: the next reading's JSON
        # then finds its 1 KB in one piece (a 96 KB heap fragments fast otherwise).
        gc.collect()

    def _raw(self, buf, n):
        for d in self.destinations:
            if d.raw is not None:
                d.offer_raw(buf, n)  # never raises: what it cannot take, it counts

    def _rejected(self, kind, text):
        # Counted by the decoder (the stats carry the counts); the two that mean trouble
        # in the dongle itself, not on the line, are logged too, and an encrypting meter's
        # invocation counter that did not grow (a meter restarted, or a replay).
        if kind == MEMORY or kind == INTERNAL or kind == "counter":
            log("decoder:", kind, text or "")

    def _locked(self, setting):
        log("meter line:", setting_name(setting))
        self.state["link"] = list(setting)
        save_json(STATE, self.state)

    def stats(self, dest):
        """The diagnostics one destination publishes (no reading data in them)."""
        d = self.decoder
        a = d.assembler
        rejected = dict(a.rejected)
        for k in d.errors:  # "truncated" and "oversize" can come from either layer
            rejected[k] = rejected.get(k, 0) + d.errors[k]
        now = self.uptime.seconds()
        out = {
            "version": self.version,
            "uptime_s": now,
            "free_heap": hal.free_heap(),
            "reset_cause": self.reset_cause,
            "bytes_received": a.bytes_in,
            "noise_bytes": a.noise,
            "frames": {"hdlc": a.frames[1], "p1": a.frames[2], "mbus": a.frames[3]},
            "readings": d.readings,
            "fields_dropped": d.normalizer.dropped,  # past obis.FIELDS_MAX a reading
            "rejected": rejected,
            "last_frame_age_s": None if self.last_frame is None else now - self.last_frame,
            "line": setting_name(self.link.setting),
            "line_locked": self.link.locked,
            "line_search": self.link.search(),
            "destination": dest.counters(self.destinations),
        }
        if self.local_api is not None:  # its answers and refusals, by status code
            out["local_api"] = self.local_api.stats()
        return out

    async def ticker(self, wdt):
        tasks = self.tasks
        n = 0
        while True:
            await asyncio.sleep_ms(50)
            self.link.tick()
            n += 1
            if n % 20:
                continue
            self.uptime.seconds()  # at least once per 6.2 days (uptime.py)
            for d in self.destinations:
                d.event.set()  # once a second: stats timers, a dropped connection
            # Fed only while the meter reader and every destination task still run, from
            # this ticker, which runs only while the event loop does: a task that ended or
            # hogs the loop ends in a reset, not a silent dongle. (A silent meter is not a
            # dead reader: the reader then waits for bytes, alive.)
            alive = True
            for t in tasks:
                if t.done():
                    alive = False
            if alive:
                wdt.feed()
            elif not self._told:
                self._told = True
                log("a task ended: not feeding the watchdog")
            wdt.check()
            self.led.set("on" if self.last_frame is not None else "blink")
            if self.led.state == "blink":
                self.led.toggle()  # once a second: no frame from the meter yet

    async def network(self, net):
        """Join Wi-Fi, and again whenever it drops, in a task of its own: the meter is read
        and the watchdog fed all the while (a join takes up to 10 s per network). None of
        the configured networks joined in the first _SETUP_S since boot: the owner's Wi-Fi
        or its password changed, so the dongle notes it in state.json and restarts into
        setup mode (startup.py, portal.py). Once joined, a drop never does that: a router
        that restarts is waited for."""
        synced = joined = False
        while True:
            if not net.isconnected():
                await net.connect(self.cfg["wifi"])
            joined = joined or net.isconnected()
            if not joined and self.uptime.seconds() >= _SETUP_S:
                self.state["wifi"] = 0  # portal.py logs why, after the restart
                save_json(STATE, self.state)
                hal.restart()
            if not synced and self.cfg["ntp"] and hal.NAME != "unix" and net.isconnected():
                synced = _ntp(self.cfg["ntp"])
            await asyncio.sleep(10)

    async def run(self):
        cfg = self.cfg
        wdt = hal.Watchdog(_WATCHDOG_MS)
        for dcfg in cfg["destinations"]:
            # A config checked before "tariff" existed has none: no tariff.
            d = Destination(dcfg, cfg["hostname"], self.stats, self.uptime,
                            files=(load_json, save_json), salt=self.state["salt"],
                            tariff=cfg.get("tariff") is not None)  # fmt: skip
            self.destinations.append(d)
        if any(d.share.tariff for d in self.destinations):
            import tariff  # only a dongle that shares the tariff loads it (docs/performance.md)

            self.tariff = tariff.Account(cfg["tariff"], self.destinations, log)
        # The energy counted on between registers, for Home Assistant's hourly statistics,
        # for each destination with discovery that gets both the import register and the
        # power (marked here: its attribute energynow (), and discovery.py reads it;
        # energynow.fields() decides the rest): loaded at the first register, not at boot,
        # and dropped for each discovery round (destination.py); a register that comes
        # during a round waits for its end. Started only at the second register, Home
        # Assistant's energy sensors were unavailable for an hour or two after a boot
        # (test_ha_real.py). Beside the tariff's account too since its names fit five qstr
        # pools: before, at 96K, one destination with discovery and the tariff lost
        # readings to `decoder: memory` in 12 runs of 20 beside two busy loops, and 6 of 20
        # failed (docs/performance.md, "A dongle with discovery and the tariff").
        for d in self.destinations:
            if (
                d.cfg["discovery"]
                and d.share.allows("active_energy_import")
                and (d.share.allows("active_power_import"))
            ):
                d.energynow = ()
                if self.energynow is None:
                    import energyfeed  # kept: it holds the count's state

                    self.energynow = energyfeed
        self.tasks = [asyncio.create_task(_guard("meter link", self.link.run()))]
        for d in self.destinations:
            self.tasks.append(asyncio.create_task(_guard(d.name, d.run())))
        serving = "local_api" in cfg or "page" in cfg
        if serving:
            import web  # the local API, the owner's page: only when turned on

            await web.start(self, hal)
        # No destination, no NTP, no local API or page: no network at all.
        if cfg["destinations"] or cfg["ntp"] or serving:
            net = hal.Network(cfg["hostname"])
            self.tasks.append(asyncio.create_task(_guard("network", self.network(net))))
        log("running: %d destination(s)" % len(self.destinations))
        await self.ticker(wdt)


def _ntp(server):
    import ntptime

    ntptime.host = server
    try:
        ntptime.settime()
        return True
    # The server's reply is untrusted: a short one fails ntptime's struct.unpack with a
    # ValueError, an absurd time gmtime's with an OverflowError. Tried again in 10 s.
    except (OSError, ValueError, OverflowError) as e:
        log("ntp", server, "failed:", repr(e))
        return False


async def _guard(name, coro):
    # A task should never end; if one does, say why before the watchdog resets the chip.
    try:
        await coro
    except BaseException as e:
        log("task", name, "ended:", repr(e))
        sys.print_exception(e)
        raise
