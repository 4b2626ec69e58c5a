# Start-up: which hardware, which config. The dongle itself (dongle.py) loads only once a
# checked config is in hand.
#
# An invalid or missing config.json starts setup mode (portal.py: the dongle's own access
# point and setup page), as does the button held at boot, or a last boot that joined none of
# the configured Wi-Fi networks in 5 minutes (dongle.py). Nothing is published meanwhile,
# and a new config (saved by the page, or pushed over the USB REPL) is picked up without a
# restart loop. Where setup mode cannot run (the unix port without a web server address),
# the dongle waits in a safe state instead, its LED blinking fast. A new or changed valid
# config is checked once, then the board restarts into it (load_config says why).

import asyncio
import gc
import os
import sys

from micropython import const

from store import CHECKED, CONFIG, STATE, load_json, recover, save_json

if sys.platform == "linux":
    import hal_unix as hal
else:
    import hal_esp32 as hal

_VERSION = const("0.3.0")  # also marks the checked config: see load_config()
log = hal.log


def load_config():
    """(config or None, problems, fresh). fresh: the validator ran in this boot.

    A config.json the validator has passed before is taken from its checked copy, found by
    the file's SHA-256, and the validator is not loaded at all: the names its code interns
    are never freed (MicroPython keeps every qstr), and with its leftovers the dongle's
    heap was 91.4 KB after boot instead of 83.6 KB (unix port, two destinations,
    gc.mem_alloc()). A new or changed config.json is validated and its checked copy
    written; main() then restarts into it."""
    # A config the owner's page saved (page_settings.py) is checked here, on a heap the
    # dongle does not hold yet: the validator takes ~20 KB, more than a running dongle with
    # the page has free at 96K. Valid, it becomes config.json; else it is kept, with the
    # validator's messages, for the page to show at their fields.
    from store import NEXT, REFUSED  # names held only while the config is found

    if load_json(NEXT):
        import config

        cfg, problems = config.load(NEXT, unix=hal.NAME == "unix")
        del sys.modules["config"]
        if problems:
            save_json(REFUSED, {"config": load_json(NEXT), "problems": problems})
            os.remove(NEXT)
            log("config.next refused:", len(problems), "problem(s), shown on the page")
        else:
            # Atomic where rename replaces (littlefs, unix); on FAT a cut inside the rename
            # leaves config.next alone, checked and taken again at the next boot.
            os.rename(NEXT, CONFIG)
            try:
                os.remove(REFUSED)
            except OSError:  # ENOENT: no earlier save was refused
                pass
        # Either way, a boot without the validator's leftovers (its ~20 KB of code and names).
        hal.restart()
    # A cut inside FAT's rename can leave only config.json.tmp, whole: it is taken back,
    # then checked like any new config.json, and the dongle restarts into it.
    recover(CONFIG)
    digest = _digest(CONFIG)
    if digest is not None:
        checked = load_json(CHECKED)
        if not isinstance(checked, dict):  # valid JSON, but not what save_json wrote
            checked = {}
        # The firmware's version too: a new one may fill defaults an older one did not
        # know (a firmware update is checked once, like an edit).
        if checked.get("sha256") == digest and checked.get("version") == _VERSION:
            return checked["config"], [], False
    # The checked copy holds config.json's passwords in plain text, as the dongle runs from
    # it. It goes away with the config.json it was checked from (deleted, or edited), here
    # at boot and at each look of the safe state, so that deleting config.json leaves no
    # password behind. Keeping passwords out of it instead would mean reading and
    # merging config.json at every boot, two files that must agree.
    for path in (CHECKED, CHECKED + ".tmp"):
        try:
            os.remove(path)
        except OSError:  # ENOENT: none was written
            pass
    import config

    cfg, problems = config.load(CONFIG, unix=hal.NAME == "unix")
    del sys.modules["config"]
    # Restart into it only once its checked copy reads back: else the next boot would check
    # it again, and restart again.
    if cfg is None or problems or digest is None:
        return cfg, problems, False
    try:
        save_json(CHECKED, {"sha256": digest, "version": _VERSION, "config": cfg})
    except OSError as e:  # a full flash: run on, with the validator's leftovers
        log("cannot write", CHECKED, repr(e))
        return cfg, problems, False
    return cfg, problems, load_json(CHECKED).get("sha256") == digest


def _digest(path):
    """SHA-256 of a file as hex, read in small pieces; None when it cannot be read."""
    import hashlib
    from binascii import hexlify

    h = hashlib.sha256()
    buf = bytearray(128)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
    except OSError:
        return None
    return hexlify(h.digest()).decode()


def main(hal_module=None):
    """Boot. hal_module: a hardware layer to run on instead of this platform's, named by the
    caller, and handed to the dongle (host_tests/mp/esp32_boot.py runs hal_esp32 on the
    unix port, on the model of the ESP32 port in host_tests/mp/esp32_model/)."""
    global hal, log, load_config, _digest
    if hal_module is not None:
        hal = hal_module
        log = hal.log
    log("hanport", _VERSION, "on", hal.NAME)
    cfg, problems, fresh = load_config()
    if cfg is not None and not problems and fresh:
        log("config.json is valid: restarting into it")
        hal.restart()
    # load_json(STATE) "wifi" 0: the last boot joined no configured network (dongle.py).
    if cfg is None or problems or hal.button() or load_json(STATE).get("wifi") == 0:
        import portal  # only here: a dongle that runs normally never loads it

        # Setup mode, or the safe state; returns only when setup mode cannot run and
        # config.json is valid: then the dongle runs.
        asyncio.run(portal.run(hal, cfg, problems, load_config))
    # Loading the code leaves the heap in small pieces (each module's load allocates
    # and frees as it goes), and then the dongle's buffers (2 KB per destination, 2 KB
    # for a frame) found no room in 25 KB free at 104K. So the room is held while the
    # code loads, low in the heap, and given back just before the buffers are made.
    room = bytearray(2048 * (1 + len(cfg["destinations"])))
    from dongle import Dongle

    del room
    # The code that found the config is not needed again (a new config restarts the
    # board): without it the running heap holds 480 B less (four destinations at
    # 96K, `hanctl bench --pipeline --destinations 4`: steady 85,376 -> 84,896 B).
    del load_config, _digest
    gc.collect()
    asyncio.run(Dongle(cfg, hal, _VERSION).run())
