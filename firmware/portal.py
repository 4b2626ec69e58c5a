# Setup mode: the dongle's own Wi-Fi access point, a captive portal on it, and the setup page
# (page.py), so an owner sets the dongle up from a phone, without a PC.
#
# startup.py starts it instead of the dongle when config.json is missing or invalid, when
# the button is held at boot (hal.button()), or when the last boot joined none of the
# configured Wi-Fi networks in 5 minutes (dongle.py notes that in state.json, "wifi": 0, and
# restarts). A dongle that runs normally never loads this module, nor captive.py.
#
# Only the owner can use the access point: it is WPA2, with a password made for this dongle
# the first time it starts setup mode (12 letters and digits from os.urandom, 60 bits),
# kept on its flash (KEY_FILE, never in config.json, state.json or any message a destination
# publishes), and shown in the serial log each time setup mode starts, and by
# `hanctl config setup-key` over USB. Its name is hanport-XXXXXX, the last 3 bytes of the
# chip's MAC address, as the label of most dongles shows it.
#
# The captive portal: a DNS server (captive.py) that answers every name with the dongle's
# address, and answers to the addresses phones and computers ask to find out whether they
# are online (PROBES). Each answer is a page that sends the browser to the setup page, so
# the phone says "sign in to the network" and opens it.
#
# Setup mode ends with a restart: once config.json is valid and new (the page saved it,
# or `hanctl config push` wrote it), or, when it started with a valid config (the button,
# or no Wi-Fi), after IDLE_S without a request, so that a Wi-Fi router that was off for a
# while does not leave the dongle in setup mode.
#
# Where setup mode cannot run (the unix port without `hanctl run --http`), the dongle
# without a valid config waits in a safe state instead: nothing is published, the LED
# blinks fast, and a valid config.json, once there, restarts it (safe_state()).

import asyncio
import os
from binascii import hexlify

from micropython import const

from store import CONFIG, NEXT, STATE, load_json, save_json

KEY_FILE = "setup.json"  # {"key": "..."}: the access point's password
_LETTERS = "abcdefghijkmnpqrstuvwxyz23456789"  # 32: no l, o, 0 or 1 to misread
_KEY_LEN = const(12)
IDLE_S = const(900)
_CHECK_S = const(5)  # between looks at config.json and config.next (checked if changed)
# Where phones and computers look for the internet: Android (generate_204), Apple
# (hotspot-detect.html, success.html), Windows (connecttest.txt, ncsi.txt, and redirect,
# where it sends the browser when the test failed), Firefox (canonical.html, success.txt),
# Kindle (wifistub.html).
PROBES = (
    "/generate_204", "/gen_204", "/hotspot-detect.html", "/library/test/success.html",
    "/connecttest.txt", "/ncsi.txt", "/redirect", "/canonical.html", "/success.txt",
    "/kindle-wifi/wifistub.html",
)  # fmt: skip
# The LED in setup mode: two short flashes every 2 s (README, "The status LED"), in steps
# of 100 ms, from off: toggled at steps 0 to 3 (on, off, on, off).
_TOGGLES = (0, 1, 2, 3)
_STEPS = const(20)


def key(log):
    """The access point's password: the one kept on flash, or a new one, kept."""
    kept = load_json(KEY_FILE).get("key")
    if isinstance(kept, str) and 8 <= len(kept) <= 63:  # WPA2's bounds (IEEE 802.11i)
        return kept
    made = "".join(_LETTERS[b & 31] for b in os.urandom(_KEY_LEN))
    try:
        save_json(KEY_FILE, {"key": made})
    except OSError as e:  # a full flash: this boot's password only, logged below
        log("setup: cannot keep the password:", repr(e))
    return made


async def run(hal, cfg, problems, check):
    """Setup mode until a restart. cfg: the checked config, or None; problems: the
    validator's; check: startup's load_config. Where setup mode cannot run, the safe state
    (no valid config) or a return at once (a valid one: the dongle then runs it)."""
    from time import ticks_diff, ticks_ms  # MicroPython's (CPython tests read PROBES only)

    log = hal.log
    for p in problems:
        log("config:", p)
    where = hal.listen()
    if where is None:
        log("setup: no web server (no address; `hanctl run --http HOST:PORT` gives one)")
        return await safe_state(hal, cfg, problems, check)
    host, port, uid = where
    state = load_json(STATE)
    if "wifi" in state:  # the note of a boot without Wi-Fi: the next boot tries again
        log("setup: the last boot joined none of config.json's Wi-Fi networks in 5 minutes")
        del state["wifi"]
        save_json(STATE, state)
    essid = "hanport-" + (hexlify(uid[-3:]).decode() if uid else "000000")
    password = key(log)
    address, dns_port = hal.access_point(essid, password)
    # The serial log is the owner's (USB, or the board's own console): the one place the
    # password is shown besides `hanctl config setup-key`.
    page_url = "http://%s/" % address if port == 80 else "http://%s:%d/" % (address, port)
    log("setup mode: Wi-Fi", essid, "password", password)
    import httpd
    import page

    server = httpd.Server()
    page.mount(server, None, hal, True)
    go = _redirect(page_url)
    for path in PROBES:
        server.route(path, go)
    try:
        await server.start(host, port)
    except OSError as e:  # the port is taken (EADDRINUSE): the safe state, then
        log("setup: cannot listen on", "%s:%d" % (host, port), repr(e))
        return await safe_state(hal, cfg, problems, check)
    # Once the page is served: a test (or an owner quick on the console) that opened it at
    # this line before found nothing listening yet (test_portal.py, once in CI).
    log("setup mode: then open", page_url)
    dns = told = None
    if dns_port is not None:
        import captive

        dns = captive.Responder(address, ticks_ms)
        asyncio.create_task(captive.serve(dns, dns_port, log))
    led = _led(hal, "setup")
    seen = -1  # requests served when last looked
    seen_files = _stamp()  # config.json and config.next as this boot checked them
    quiet_since = ticks_ms()
    tick = 0
    while True:
        await asyncio.sleep_ms(100)
        if led is not None and tick % _STEPS in _TOGGLES:
            led.toggle()
        tick += 1
        if tick % (_CHECK_S * 10):
            continue
        if dns is not None and told != (dns.answered, dns.malformed, dns.limited):
            # The only place the DNS counts show: setup mode has no destination.
            told = (dns.answered, dns.malformed, dns.limited)
            log("setup: DNS answered %d, dropped %d malformed, %d over the rate" % told)
        served = sum(server.counts.values())
        if served != seen:
            seen = served
            quiet_since = ticks_ms()
        # The validator (~20 KB) runs only for a config.json or config.next that changed
        # since the last look, and where it does not fit, a restart runs it: the boot
        # checks first, before anything else loads. Beside the web server at 96K, a
        # config.next it refused ran out of memory writing config.refused, and the dongle
        # stopped (the unix model; the page's save restarts, but this look can come first).
        stamp = _stamp()
        if stamp != seen_files:
            seen_files = stamp
            try:
                new, problems, fresh = check()
            except MemoryError:
                log("setup: no memory to check the config here: restarting to check it")
                hal.restart()
            if new is not None and not problems and (fresh or cfg is None):
                log("setup: config.json is valid: restarting into it")
                hal.restart()
        if cfg is not None and ticks_diff(ticks_ms(), quiet_since) >= IDLE_S * 1000:
            log("setup: no request for", IDLE_S, "s: restarting into config.json")
            hal.restart()


async def safe_state(hal, cfg, problems, check):
    """Nothing is published; the LED blinks the fault until a valid config arrives. With a
    valid config (the button, or no Wi-Fi, on a dongle that cannot serve setup mode),
    returns at once: the dongle runs it."""
    log = hal.log
    if cfg is not None and not problems:
        log("setup mode cannot run: starting with config.json")
        return
    led = _led(hal, "blink-fast")
    log("safe state: publishing nothing until config.json is fixed")
    while True:
        for _ in range(25):  # 5 s of fast blinking: "look at the log"
            await asyncio.sleep_ms(200)
            if led is not None:
                led.toggle()
        cfg, problems, _ = check()
        if cfg is not None and not problems:
            log("config.json is valid now: restarting")
            hal.restart()


def _stamp():
    """What tells a changed config.json or a new config.next: their sizes and change times
    (not the time read: reading config.json changes that on the unix port)."""
    stamp = []
    for path in (CONFIG, NEXT):
        try:
            st = os.stat(path)
            stamp.append((st[6], st[8]))
        except OSError:  # ENOENT
            stamp.append(None)
    return stamp


def _redirect(where):
    """The answer to a probe: a page that sends the browser to the setup page, where."""
    body = (
        '<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url=%s">'
        '<title>hanport setup</title></head><body><a href="%s">hanport setup</a></body></html>'
        % (where, where)
    )

    def answer(request):
        return 200, "text/html; charset=utf-8", body

    return answer


def _led(hal, pattern):
    """The status LED, set to pattern (off first: toggle() blinks it from there), or None."""
    try:
        led = hal.led(hal.board(None))
    except (OSError, ValueError, KeyError):  # no usable board.json: no LED
        return None
    led.set("off")
    led.set(pattern)  # only "on" and "off" drive the pin
    return led
