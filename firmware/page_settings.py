# The owner's page's rarer parts (page.py): the login, the settings form and its save.
# Loaded for each such request and dropped after it (page.py, _rare): a dongle whose
# page is open holds only the live view's code between them (docs/performance.md).

import asyncio
import hashlib
import json
import os
from binascii import hexlify, unhexlify

from micropython import const

from httpd import JSON, refusal
from reading import put
from store import CONFIG, REFUSED, load_json

_COOKIE = const("hanport")  # the session's (page.py reads it back)
_SESSIONS_MAX = const(4)
_FAILS_FREE = const(3)  # wrong passwords before the waits begin
_LOCK_MAX_S = const(300)
_SLICE = const(25)  # PBKDF2 iterations between two turns of the event loop (_hash)


async def _hash(password, salt, iterations):
    """PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2, RFC 2104), one 32-byte block, as hex:
    MicroPython has hashlib.sha256 but no hmac module, and its hash objects no copy().
    `hanctl config password` uses CPython's hashlib.pbkdf2_hmac; test_page.py checks both
    agree. The meter's reading and the destinations run between its slices (_rounds()):
    2000 iterations took ~150 ms of CPU at 96K beside one destination (each a few hash
    objects in a heap with ~7 KB free: a collection every few dozen), and the meter's
    frames waited behind them: with 20 page clients logging in, their messages reached
    the broker 300-700 ms late, against ~1 ms without (hanctl bench --page-clients 20)."""
    for h in _rounds(password, salt, iterations):  # noqa: B007 - the last one is the hash
        await asyncio.sleep_ms(0)
    return h


def _rounds(password, salt, iterations):
    # A generator: None every _SLICE iterations (a pause), then the hash. No
    # concatenation per round: each hash object takes its key block and then the message.
    key = password.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    u = salt + b"\x00\x00\x00\x01"
    acc = 0
    for i in range(iterations):
        h = hashlib.sha256(inner)
        h.update(u)
        u = hashlib.sha256(outer)
        u.update(h.digest())
        u = u.digest()
        acc ^= int.from_bytes(u, "big")  # XOR of 256-bit numbers: one op, not 32
        if i % _SLICE == _SLICE - 1:
            yield None
    yield "%064x" % acc


async def login(page, request):
    now = page.dongle.uptime.seconds()
    if not request.header("x-csrf"):
        return refusal(403, "no X-CSRF header")
    if now < page.locked:
        wait = page.locked - now
        return refusal(429, "too many wrong passwords; wait %d s" % wait) + (
            b"Retry-After: %d\r\n" % wait,
        )
    try:
        password = json.loads(bytes(request.body))["password"]
        password.encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return refusal(400, 'send {\\"password\\": ...}')
    cfg = page.cfg
    if page.hashing:  # one login at a time: each holds this module and its hashing
        return refusal(503, "another login is being checked; try again")
    page.hashing = True
    try:
        good = await _hash(password, unhexlify(cfg["salt"]), cfg["iterations"])
    finally:
        page.hashing = False
    if good != cfg["password_hash"]:
        page.fails += 1
        if page.fails >= _FAILS_FREE:
            page.locked = now + min(_LOCK_MAX_S, 5 << min(6, page.fails - _FAILS_FREE))
        return refusal(401, "wrong password")
    page.fails = 0
    sessions = page.sessions
    for t in list(sessions):  # the expired go; when still full, the nearest expiry
        if sessions[t][0] < now:
            del sessions[t]
    if len(sessions) >= _SESSIONS_MAX:
        oldest = min(sessions, key=lambda t: sessions[t][0])
        sessions.pop(oldest)[0] = -1  # expired: a live stream on it ends (page_stream)
    token = _random()
    csrf = _random()
    sessions[token.encode()] = [now + cfg["session_s"], csrf]  # bytes: as page._session reads it
    cookie = "Set-Cookie: %s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict\r\n" % (
        _COOKIE, token, cfg["session_s"])  # fmt: skip
    return 200, JSON, '{"csrf": "%s"}' % csrf, cookie.encode()


def config(page, request):
    """{"config": config.json without its secrets}, or the last save the boot check
    refused, with "problems": the validator's messages, each at its key path. Written
    into the request's buffer, piece by piece: at 96K a copy of the config and its text
    besides did not always find room."""
    if page._session(request) is None:
        return refusal(401, "log in")
    refused = load_json(REFUSED)
    cfg = refused.get("config") if refused else load_json(CONFIG)
    buf = request.buf
    for _ in range(2):
        try:
            n = _write_hidden(cfg, buf, put(buf, 0, '{"config": '), page.SECRETS)
            if refused:
                n = put(buf, n, ', "problems": ' + json.dumps(refused.get("problems")))
            return 200, JSON, memoryview(buf)[: put(buf, n, "}")]
        except OverflowError:  # four destinations with field lists: a buffer of its own
            buf = bytearray(8192)
    raise OverflowError


def scan(page, request):
    if page._session(request) is None:
        return refusal(401, "log in")
    scan = getattr(page.hal, "scan", None)  # the portal's HAL has one; an older none
    nets = scan() if scan else []
    return 200, JSON, json.dumps([list(n) for n in nets])


def logout(page, request):
    s = page._session(request, True)
    if s is None:
        return refusal(403, "no session, or no CSRF token")
    for t in list(page.sessions):
        if page.sessions[t] is s:
            del page.sessions[t]
    s[0] = -1  # expired: a live stream on it ends (page_stream)
    return 200, JSON, "{}", ("Set-Cookie: %s=; Path=/; Max-Age=0\r\n" % _COOKIE).encode()


def _random():
    return hexlify(os.urandom(16)).decode()


def _write_hidden(v, buf, n, secrets):
    """Config value v as JSON into buf at n, each key of secrets as true; the new end."""
    if isinstance(v, dict):
        n = put(buf, n, "{")
        sep = ""
        for k in v:
            n = put(buf, n, sep + json.dumps(k) + ": ")
            n = put(buf, n, "true") if k in secrets else _write_hidden(v[k], buf, n, secrets)
            sep = ", "
        return put(buf, n, "}")
    if isinstance(v, list):
        n = put(buf, n, "[")
        for i, x in enumerate(v):
            n = _write_hidden(x, buf, put(buf, n, ", ") if i else n, secrets)
        return put(buf, n, "]")
    return put(buf, n, json.dumps(v))
