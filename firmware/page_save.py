# What restarts the dongle from the owner's page (page.py): POST /page/save, the settings
# form's config, its secrets kept where the form did not change them, written as
# config.next for the next boot to check (startup.py); and POST /page/restart.
# Loaded alone for them and dropped after (page.py, _rare): with page_settings' login and
# form code (4.2 KB of heap, against 1.8 KB for this module) the save, at 96K beside one
# destination, found no room in five tries on a loaded machine (test_page.py: 3 runs of
# 4 failed with two busy cores beside it, 0 of 4 after, and a CI run failed so).

import asyncio
import json
import os
from binascii import hexlify

from micropython import const

from httpd import JSON, refusal
from store import CONFIG, NEXT, load_json, save_json

_PASSWORD_MIN = const(8)
_ITERATIONS = const(2000)  # config.PAGE_ITERATIONS (config itself takes ~20 KB of heap)


async def save(page, request):
    if page._session(request, True) is None:
        return refusal(403, "no session, or no CSRF token")
    try:
        new = json.loads(bytes(request.body))
    except ValueError:
        return refusal(400, "not JSON")
    if not isinstance(new, dict):
        return refusal(400, "not a config object")
    old = load_json(CONFIG)
    _keep(new, old if isinstance(old, dict) else {}, page.SECRETS)
    del old
    pg = new.get("page")
    if isinstance(pg, dict):
        pw = pg.pop("password", None)
        if pw is not None:
            if not isinstance(pw, str) or len(pw) < _PASSWORD_MIN:
                why = "page.password: too short; use at least %d characters" % _PASSWORD_MIN
                return 400, JSON, json.dumps({"problems": [why]})
            import page_settings  # its PBKDF2, a slice at a time, as a login's

            salt = os.urandom(16)
            pg["salt"] = hexlify(salt).decode()
            pg["iterations"] = _ITERATIONS
            pg["password_hash"] = await page_settings._hash(pw, salt, _ITERATIONS)
    if page.setup and not (isinstance(pg, dict) and pg.get("password_hash")):
        why = "page.password: missing; choose the page's password (at least %d characters)"
        return 400, JSON, json.dumps({"problems": [why % _PASSWORD_MIN]})
    # The validator runs at the next boot, before the dongle takes the heap (startup.py):
    # valid, the dongle runs on it; else the page shows its messages at their fields.
    save_json(NEXT, new)
    asyncio.create_task(_restart(page.hal))
    return 200, JSON, '{"restarting": true}'


def restart(page, request):
    if page._session(request, True) is None:
        return refusal(403, "no session, or no CSRF token")
    asyncio.create_task(_restart(page.hal))
    return 200, JSON, '{"restarting": true}'


async def _restart(hal):
    await asyncio.sleep_ms(500)  # the answer goes out first
    hal.log("page: restarting")
    hal.restart()


def _keep(new, old, secrets):
    """Secrets (page.Page.SECRETS) the form did not change taken from the config.json there
    (new is the request's own, changed in place): a Wi-Fi network's by its SSID, a
    destination's by its name; a secret null is removed."""
    pairs = [(new.get("meter"), old.get("meter")), (new.get("page"), old.get("page"))]
    for k, key in (("wifi", "ssid"), ("destinations", "name")):
        was = old.get(k)
        for x in new.get(k) or ():
            for y in was if isinstance(was, list) else ():
                if isinstance(x, dict) and isinstance(y, dict) and x.get(key) == y.get(key):
                    pairs.append((x, y))
    for x, y in pairs:
        if not isinstance(x, dict):
            continue
        for k in secrets:
            v = x.get(k, True)
            if v is None:
                del x[k]
            elif v is True:
                x.pop(k, None)
                if isinstance(y, dict) and k in y:
                    x[k] = y[k]
