# The owner's page on the dongle's web server (httpd.py): login, the live reading, charts,
# destinations, counters, settings, restart; and in setup mode the setup form alone.
#
# Loaded only when config.json has `"page": {"enabled": true, ...}` (dongle.py), or by the
# setup mode (mount(..., setup=True)): a dongle without it holds none of this. This module
# holds what every reading and the live view need; page_status (the page itself, session,
# charts, counters), page_settings (login, log out, the settings form) and page_save (the
# settings' save, restart) are loaded for each of their requests and dropped after it,
# page_stream for each live stream and dropped when it ends (_rare: docs/performance.md,
# "The owner's page").
#
#   GET  /                 the page itself (page.html.gz from flash, gzipped, in pieces)
#   GET  /page/session     200 {"csrf", "setup", "version"} while logged in, else 401
#   POST /page/login       {"password"}: a session cookie; 401 wrong, 429 while locked
#   POST /page/logout
#   GET  /page/live        the newest value of each field, as the canonical reading's JSON
#   GET  /page/stream      the same, one server-sent event per reading (text/event-stream,
#                          `data: <JSON>` each), for as long as the session lasts; one
#                          stream at a time, a second refused 503 (that client polls
#                          /page/live instead)
#   GET  /page/status      the dongle's counters, each destination's, the tariff's figures
#   GET  /page/day         24 h of 10-minute mean power (W)
#   GET  /page/week        7 days of hourly energy imported (Wh)
#   GET  /page/config      config.json without a secret (each one there: true)
#   GET  /page/scan        the Wi-Fi networks in reach: [[ssid, rssi, secure], ...]
#   POST /page/save        a config, its secrets kept where not given: saved atomically as
#                          config.next (store.py) and the dongle restarts; startup.py
#                          checks it before the dongle loads (config.py's ~20 KB do not fit
#                          beside a running dongle at 96K), and GET /page/config then
#                          shows a refused one with the validator's messages
#   POST /page/restart
#
# Access. Everything but / and the login needs a session: a cookie of 128 random bits,
# HttpOnly and SameSite=Strict, forgotten after session_s without use and at restart, at
# most _SESSIONS_MAX at once. Each POST carries the session's CSRF token in an X-CSRF header
# (the login and the setup form a non-empty one): a header no cross-site form can send, and
# a cross-site fetch() may not send without a preflight, which this server never answers.
# A wrong password counts; from the _FAILS_FREE-th on each waits twice as long as the last
# (5 s, 10 s ... _LOCK_MAX_S) before any password is tried, whoever sends it: one lock for all
# clients, as the dongle keeps no table of addresses (a neighbour can keep the owner out
# for _LOCK_MAX_S at a time, never learn the password faster).
#
# Setup mode (setup True, no dongle running): only /, /page/session, /page/config,
# /page/scan and /page/save, with no login: the access point that serves it is the
# owner's alone (its password, see the README's setup section), and there is no password
# yet to log in with.

import gc
import sys
from array import array

from micropython import const

from httpd import JSON, refusal
from obis import UNIT
from reading import write

# Charts: 24 h of 10-minute means (power, W), 7 days of hours (energy imported, Wh), in
# rings of 16-bit ints: 144 + 168 slots, 624 B (32-bit ones took 1.2 KB). A value past
# +-32767 (a mean above 32.7 kW, more than a 3x40 A home draws) is kept as 32767. Times
# are the dongle's uptime (it may have no clock); the page turns them into its own.
_DAY_STEP = const(600)
_DAY_SLOTS = const(144)
_WEEK_STEP = const(3600)
_WEEK_SLOTS = const(168)
_NONE = const(-32768)  # a slot with no reading


def mount(server, dongle, hal, setup):
    """Register the page's routes on server (httpd.Server). dongle: the running Dongle, or
    None in setup mode; setup: serve the setup form alone, without a login. The Page."""
    page = Page(dongle, hal, setup)
    page.server = server
    server.on_memory = page.make_room
    # Loaded once now and dropped, while the heap is in few pieces: their names are interned
    # for good (a qstr is never freed), so a later load needs room for their code alone.
    # Their first load at a page's request, into the heap the meter's frames fragment,
    # failed for 296 B with 4.7 KB free (96K, one destination).
    gc.collect()
    import page_status

    del sys.modules["page_status"], page_status
    gc.collect()
    import page_settings

    del sys.modules["page_settings"], page_settings
    gc.collect()
    import page_save

    del sys.modules["page_save"], page_save
    gc.collect()
    if not setup:
        import page_stream

        del sys.modules["page_stream"], page_stream
        gc.collect()
    r = server.route
    r("/", _rare(page, "asset"))
    r("/page/session", _rare(page, "session"))
    r("/page/config", _rare(page, "config", True))
    r("/page/scan", _rare(page, "scan", True))
    r("/page/save", _rare(page, "save", True), "POST")
    if not setup:
        r("/page/login", _rare(page, "login", True), "POST")
        r("/page/logout", _rare(page, "logout", True), "POST")
        r("/page/live", page.live)
        r("/page/stream", _rare(page, "watch"))
        r("/page/status", _rare(page, "status"))
        r("/page/day", _rare(page, "day_chart"))
        r("/page/week", _rare(page, "week_chart"))
        r("/page/restart", _rare(page, "restart", True), "POST")
    return page


def _rare(page, name, settings=False):
    """A handler that loads page_status (or page_settings; page_stream for "watch") for
    one request and drops it after: at 96K a dongle with one destination and the page has
    ~7.4 KB free at its peak (docs/performance.md), and the live view is all it needs
    between requests. A live stream's code lives as long as its stream (page_stream.Live)."""

    def handler(request):
        if name == "watch" and page.watcher is not None:  # not a second copy of its code
            if page._session(request) is None:
                return refusal(401, "log in")
            return refusal(503, "one live stream at a time")
        gc.collect()  # the room the code needs, in as few pieces as can be
        try:
            if name == "save" or name == "restart":  # alone: see page_save.py
                import page_save as views
            elif settings:
                import page_settings as views
            elif name == "watch":
                import page_stream as views
            else:
                import page_status as views
            return getattr(views, name)(page, request)
        finally:  # also a load cut short by a MemoryError (500): none half there after
            sys.modules.pop("page_save", None)
            sys.modules.pop("page_settings", None)
            sys.modules.pop("page_status", None)
            sys.modules.pop("page_stream", None)

    return handler


class Page:
    # The secrets of config.json: never sent back (GET /page/config says true where one
    # is: page_settings.py); in a saved config, absent or true keeps the one there, null
    # removes it (page_save.py). Here, as both views read it and neither loads the other.
    SECRETS = ("password", "key", "auth_key", "password_hash", "salt")

    def __init__(self, dongle, hal, setup):
        self.dongle = dongle
        self.hal = hal
        self.setup = setup
        self.cfg = dongle.cfg["page"] if dongle else None
        self.sessions = {}  # token -> [expiry in uptime s, CSRF token], at most _SESSIONS_MAX
        self.fails = 0  # wrong passwords since the last right one
        self.locked = 0  # uptime s before which no password is tried
        self.hashing = False  # a login's password being checked (page_settings._hash)
        self.values = {}  # field -> newest value, fields of obis.py's table only
        self.readings = 0
        self.day = array("h", [_NONE] * _DAY_SLOTS)  # MicroPython's array has no *
        self.week = array("h", [_NONE] * _WEEK_SLOTS)
        self.server = None  # httpd.Server, set by mount()
        self.slot = None  # [10-minute slot, power sum, count, hour, Wh at its start, sum, count]
        self.watcher = None  # the one live stream (page_stream.Live) while it runs

    # The live view and the charts

    def offer(self, reading, now_ms):
        """A new canonical reading (dongle.py, each one). Never raises: a MemoryError loses
        this reading's values and slot, no more."""
        try:
            values = self.values
            for f in reading:
                if f in UNIT:  # a fixed set, whatever the meter sends
                    values[f] = reading[f]
            self.readings += 1
            self._chart(reading)
        except MemoryError:
            self.server.count("memory")
            self.make_room()  # the meter first

    def make_room(self):
        """The heap was short for a reading or a route's answer (httpd.Server.on_memory):
        the live stream, if one runs, ends within a tick, its ~1.6 KB freed for the meter and
        the page's requests; the page polls and asks for it again later."""
        if self.watcher is not None:
            self.watcher.session = None

    def _chart(self, reading):
        p = _wh(reading.get("active_power_import"), 0)
        if p is None:
            return
        p -= _wh(reading.get("active_power_export"), 0) or 0
        e = _wh(reading.get("active_energy_import"), 3)  # kWh -> Wh
        t = self.dongle.uptime.seconds()
        s = self.slot
        slot, hour = t // _DAY_STEP, t // _WEEK_STEP
        if s is None:
            self.slot = s = [slot, 0, 0, hour, e, 0, 0]
        if s[0] != slot:  # a slot ended: its mean, and none for slots without a reading
            _close(self.day, s[0], slot, s[1] // s[2] if s[2] else _NONE)
            s[0], s[1], s[2] = slot, 0, 0
        if s[3] != hour:  # the hour's energy from the register, else from its mean power
            wh = e - s[4] if e is not None and s[4] is not None else None
            if wh is None and s[6]:
                wh = s[5] // s[6]
            _close(self.week, s[3], hour, _NONE if wh is None else wh)
            s[3], s[4], s[5], s[6] = hour, e, 0, 0
        if s[4] is None:
            s[4] = e
        s[1] += p
        s[2] += 1
        s[5] += p
        s[6] += 1

    def live(self, request):
        if self._session(request) is None:
            return refusal(401, "log in")
        buf = request.buf  # the server's buffer: ~800 B for a 3-phase meter's fields
        try:
            n = write(self.values, buf)
        except OverflowError:  # a meter of many fields: a buffer of its own, this once
            buf = bytearray(4096)
            n = write(self.values, buf)
        return 200, JSON, memoryview(buf)[:n]

    def _session(self, request, post=False):
        """The request's session [expiry, csrf], refreshed; None without a valid one. In
        setup mode there is none to have: a dict that stands for one."""
        if post and not request.header("x-csrf"):
            return None
        if self.setup:
            return {}
        # The token read from the request's buffer, not the Cookie header made into text:
        # a browser's cookies can fill most of the 1.3 KB head, and at 96K that text
        # sometimes found no room (500) where 32 bytes do.
        buf = request.buf
        i = buf.find(b"hanport=", 0, request._n) + 8  # page_settings._COOKIE's
        token = bytes(buf[i : i + 32]) if i > 7 else b""
        s = self.sessions.get(token)
        now = self.dongle.uptime.seconds()
        if s is None or s[0] < now:
            if s is not None:
                del self.sessions[token]
            return None
        if post and request.header("x-csrf") != s[1]:
            return None
        s[0] = now + self.cfg["session_s"]
        return s


def _wh(v, shift):
    """A register value (int, or mantissa and exponent) times 10**shift as an int; None
    when v is not one."""
    if v.__class__ is int:
        return v * 10**shift
    if v.__class__ is tuple and len(v) == 2 and v[0].__class__ is int:
        e = v[1] + shift
        return v[0] * 10**e if e >= 0 else v[0] // 10**-e
    return None


def _close(ring, slot, now, value):
    """Put value in slot's place in ring, and _NONE in each slot up to now (a gap)."""
    n = len(ring)
    ring[slot % n] = value if value == _NONE else max(-32767, min(32767, value))
    for s in range(slot + 1, min(now, slot + n + 1)):
        ring[s % n] = _NONE
