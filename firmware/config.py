# The dongle's config.json: read, checked, defaults filled in, written back atomically.
#
# The file is a public contract (README, "The privacy model"): these key names stay.
# validate() never raises on bad input. Each problem is one line
#     <key path>: <what is wrong>; <how to fix it>
# e.g. `destinations[0].port: "1883" is not a port; use a whole number from 1 to 65535`,
# all of them at once (at most MAX_PROBLEMS, then a count). A config with any problem is not
# used at all: the dongle publishes nothing rather than guess what the owner meant.
#
# Unknown keys are problems, not warnings: a misspelt `"shares": "live"` or `"verfy": true`
# would otherwise leave a privacy or security setting silently at another value.
# Secrets never appear in a message: a bad password is described, never quoted, and so is
# any value where an object or a list of them is wanted (the wifi list and its networks,
# destinations, tls, meter, the file itself): a Wi-Fi entry written as "password" text,
# or a password in place of a destination, is named by its kind ("a text"), never shown.
#
# TLS `"verify": false` accepts any certificate: whoever sits between the dongle and the
# broker can then read the readings and the MQTT password, and pose as the broker. Only the
# JSON literal `false` turns verification off; no default, typo or string ("false") does.

import errno
import json
import os

import obis
import store

PATH = "config.json"
# The whole file is read at once on a ~100 KB heap; four destinations with field lists
# take about 1.5 KB, so 8 KB holds any real config and bounds a wrong file.
MAX_BYTES = 8192
# Each destination holds a connection and its buffers (a TLS session alone takes tens of KB
# of an ESP32's RAM): the count is bounded here rather than by a MemoryError later.
MAX_DESTINATIONS = 4
MAX_NETWORKS = 8
MAX_PROBLEMS = 16  # a file of garbage keys must not fill the heap with messages

LEVELS = ("full", "live", "hourly")
DEFAULT_INTERVAL = 10  # s, share "live"
BAUDS = (2400, 9600, 115200)
PARITIES = ("auto", "8N1", "8E1")
# Destination timings the runtime reads (destination.py): key, default, lowest, highest (s).
TIMINGS = (
    ("keepalive", 60, 0, 65535),  # MQTT 3.1.1 section 3.1.2.10: 0 turns keepalive off
    ("retry_min", 1, 1, 3600),  # first reconnect delay, doubled up to retry_max
    ("retry_max", 300, 1, 86400),
    ("stats_interval", 60, 1, 86400),
    ("timeout", 10, 1, 300),  # for the connection and each acknowledgement
)

# Known keys of each object, sorted as the messages list them.
TOP_KEYS = ("board", "destinations", "hostname", "local_api", "meter", "ntp", "page",
            "tariff", "wifi")  # fmt: skip
DEST_KEYS = ("client_id", "discovery", "host", "interval", "keepalive", "name", "password",
             "port", "raw", "retry_max", "retry_min", "share", "stats_interval", "timeout",
             "tls", "topic", "user")  # fmt: skip
TLS_KEYS = ("ca", "server_hostname", "verify")
WIFI_KEYS = ("password", "ssid")
METER_KEYS = ("auth_key", "baud", "invert", "key", "parity")
LOCAL_API_KEYS = ("enabled", "interval", "share")
# The owner's page (page.py): its password as PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) of
# the salt, never the password itself; `hanctl config password` and the page's settings
# write them.
PAGE_KEYS = ("enabled", "iterations", "password_hash", "salt", "session_s")
PAGE_ITERATIONS = 2000  # what `hanctl config password` and the page write (page.py: why)
TARIFF_KEYS = ("period_min", "prices", "steps_kw", "summer_time", "utc_offset_h", "windows")
WINDOW_KEYS = ("days", "hours", "months")
WINDOWS_MAX = 8  # a grid operator's windows: one or two (winter weekdays, say)
# The ladder's length: grid companies publish 5 to 10 steps; 16 bounds what the dongle
# keeps. Without steps_kw the ladder is accounting._STEPS_KW, 10 steps.
STEPS_MAX = 16
DEFAULT_STEPS = 10
# redact() shows the values of these keys only: a password, and the value of a key hanport
# does not know (a misspelt "pasword"), become SECRET.
_SHOWN = TOP_KEYS + tuple(k for k in DEST_KEYS if k != "password") + TLS_KEYS + ("ssid",)
_SHOWN += ("baud", "invert", "parity", "enabled")  # not the meter's keys
_SHOWN += ("iterations", "session_s")  # not the page's hash and salt
SECRET = "***"
_HEX = "0123456789abcdefABCDEF"
SECRET_KEYS = ("password", "key", "auth_key")  # a value of these is never quoted

_MISSING = object()
_BIG = 10**20  # a bigger int is not printed (CPython refuses str() of 4300 digits)
_LEVELS = '"full", "live", "hourly" or a list of fields'


class _Problems:
    def __init__(self):
        self.lines = []
        self.more = 0

    def add(self, path, text):
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(path + ": " + text)
        else:
            self.more += 1

    def result(self):
        if self.more:
            self.lines.append("(%d more problems not shown; fix these first)" % self.more)
        return self.lines


def _show(v):
    """A value as short ASCII JSON-like text for a message (the same on both runtimes)."""
    if isinstance(v, str):
        out = ['"']
        for ch in v[:32]:
            c = ord(ch)
            out.append(ch if 0x20 <= c < 0x7F and ch != '"' and ch != "\\" else "\\u%04x" % c)
        out.append('..."' if len(v) > 32 else '"')
        return "".join(out)
    if v is None or v is True or v is False:
        return "null" if v is None else ("true" if v else "false")
    if isinstance(v, int):
        return "%d" % v if -_BIG < v < _BIG else "a number too big"
    if isinstance(v, float):
        return str(v)[:24]
    return "a list" if isinstance(v, list) else "an object"


def _kind(v):
    """What v is, without its value: for where a secret could be."""
    if isinstance(v, str):
        return "a text"
    if isinstance(v, (list, dict)):
        return "a list" if isinstance(v, list) else "an object"
    return _show(v) if v is None or v is True or v is False else "a number"


def _key(path, k):
    """Path of key k inside path; a key that is not plain text is shown quoted."""
    s = _show(k)
    s = k if isinstance(k, str) and s == '"' + k + '"' else s
    return path + "." + s if path else s


def _text(pr, path, v, what, fix, hi, lo=1, secret=False):
    if v is _MISSING:
        pr.add(path, "missing; add " + fix)
    elif not isinstance(v, str):
        secret = secret or path[path.rfind(".") + 1 :] in SECRET_KEYS
        pr.add(path, "%s is not %s; use %s" % ("the value" if secret else _show(v), what, fix))
    elif len(v) < lo:
        pr.add(path, "is empty; use " + fix)
    elif len(v) > hi:
        pr.add(path, "%d characters is too long for %s; use at most %d" % (len(v), what, hi))
    else:
        return v
    return None


def _whole(pr, path, v, lo, hi, what):
    if type(v) is int and lo <= v <= hi:  # not true, not 1883.0
        return v
    pr.add(path, "%s is not %s; use a whole number from %d to %d" % (_show(v), what, lo, hi))
    return None


def _flag(pr, path, v):
    if v is True or v is False:
        return v
    pr.add(path, "%s is not true or false; use true or false (no quotes)" % _show(v))
    return None


def _object(pr, path, v, known, example):
    if not isinstance(v, dict):
        pr.add(path, "%s is not an object; use one like %s" % (_kind(v), example))
        return False
    unknown = [k for k in v if k not in known]
    if unknown:
        unknown.sort(key=str)  # the same order on every port (MicroPython dicts have none)
        for k in unknown:
            pr.add(
                _key(path, k), "unknown key; correct or remove it (known: %s)" % ", ".join(known)
            )
    return True


def _plain(s, extra):
    """s holds only ASCII letters, digits and the characters of extra."""
    for ch in s:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in extra):
            return False
    return True


# MQTT 3.1.1 section 1.5.3: a UTF-8 string holds no surrogate (U+D800..U+DFFF) or NUL, and
# "SHOULD NOT" hold control characters or noncharacters, on which a broker "MAY close the
# connection": mosquitto refuses each CONNECT that has one, so the dongle retried forever.
_MQTT_TEXT = "holds a control character, a noncharacter or a surrogate (MQTT 3.1.1 section "
_MQTT_TEXT += "1.5.3), which brokers refuse"


def _mqtt_text(s):
    """s holds nothing MQTT 3.1.1 section 1.5.3 forbids or discourages."""
    for ch in s:
        c = ord(ch)
        if c < 0x20 or 0x7F <= c <= 0x9F or 0xD800 <= c <= 0xDFFF or 0xFDD0 <= c <= 0xFDEF:
            return False
        if c & 0xFFFE == 0xFFFE:  # U+FFFE, U+FFFF and their like in every plane
            return False
    return True


def validate(cfg, unix=False):
    """(config, problems): a new dict with every default filled in (cfg is not touched), or
    None when there is any problem. unix: the unix port, where "wifi" may be empty and
    "board" absent."""
    pr = _Problems()
    if not isinstance(cfg, dict):
        pr.add("config", "%s is not an object; use {...} with the keys of the README" % _kind(cfg))
        return None, pr.result()
    _object(pr, "", cfg, TOP_KEYS, "")
    fix = 'a name of letters, digits and "-", e.g. "hanport-1a2b3c"'
    # 32: MicroPython's network.hostname() refuses longer (MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN)
    host = _text(pr, "hostname", cfg.get("hostname", _MISSING), "a host name", fix, 32)
    if host is not None and (not _plain(host, "-") or host[0] == "-" or host[-1] == "-"):
        pr.add("hostname", "%s is not a host name; use %s" % (_show(host), fix))
    out = {"hostname": host, "wifi": _wifi(pr, cfg.get("wifi", [] if unix else _MISSING), unix)}
    board = cfg.get("board", None if unix else _MISSING)
    fix = 'the board\'s name, e.g. "esp32-devkit-tss721"'
    out["board"] = None if board is None else _text(pr, "board", board, "a board name", fix, 64)
    out["meter"] = _meter(pr, cfg.get("meter", {}))
    ntp = cfg.get("ntp")  # absent: no NTP, as nothing leaves the dongle unless configured
    fix = 'an NTP server name, e.g. "pool.ntp.org", or null for none'
    out["ntp"] = None if ntp is None else _text(pr, "ntp", ntp, "a host name", fix, 253)
    out["destinations"] = _destinations(pr, cfg.get("destinations", []), host)
    api = _local_api(pr, cfg.get("local_api"))
    if api is not None:  # absent when off: a dongle without it holds no key for it
        out["local_api"] = api
    page = _page(pr, cfg.get("page"))
    if page is not None:  # absent when off: no page, no listening socket for it
        out["page"] = page
    tariff = cfg.get("tariff")  # absent: no account kept, no tariff message
    out["tariff"] = None if tariff is None else _tariff(pr, tariff)
    problems = pr.result()
    return (None if problems else out), problems


def _tariff(pr, v):
    """The capacity tariff: the ladder in kW, its prices, the meter's time zone. A copy;
    what is not given, accounting.py defaults (the typical Norwegian ladder, CET, EU summer
    time)."""
    out = {}
    if not _object(pr, "tariff", v, TARIFF_KEYS, '{"steps_kw": [0, 2, 5, 10], "prices": [...]}'):
        return out
    n = DEFAULT_STEPS
    for k in ("steps_kw", "prices"):
        x = v.get(k)
        if x is None:
            continue
        path = "tariff." + k
        if not isinstance(x, list) or not x or len(x) > (STEPS_MAX if k == "steps_kw" else n):
            most = STEPS_MAX if k == "steps_kw" else n
            what = "kW at which each step begins" if k == "steps_kw" else "monthly price per step"
            pr.add(path, "%s is not a list of 1 to %d numbers; use one %s, e.g. [0, 2, 5, 10]"
                   % ("an empty list" if x == [] else _show(x), most, what))  # fmt: skip
            continue
        last = None
        for i, y in enumerate(x):
            if type(y) not in (int, float) or not 0 <= y < 1e6:
                pr.add("%s[%d]" % (path, i), "%s is not a number from 0 to 999999" % _show(y))
            elif k == "steps_kw" and last is not None and y <= last:
                pr.add("%s[%d]" % (path, i), "%s is not above the step before (%s); list the "
                       "steps in increasing order" % (_show(y), _show(last)))  # fmt: skip
            else:
                last = y
        if k == "steps_kw":
            n = len(x)
        out[k] = list(x)
    if "utc_offset_h" in v:
        fix = "the meter's standard time zone"
        out["utc_offset_h"] = _whole(pr, "tariff.utc_offset_h", v["utc_offset_h"], -12, 14, fix)
    if "summer_time" in v:
        out["summer_time"] = _flag(pr, "tariff.summer_time", v["summer_time"])
    if "windows" in v:
        out["windows"] = _windows(pr, v["windows"])
    if "period_min" in v:  # the settlement period: hours, or the EU's 15-minute quarters
        x = v["period_min"]
        if type(x) is not int or x not in (15, 60):
            pr.add("tariff.period_min", "%s is not 15 or 60; use 60 (hours) or 15 (quarter "
                   "hours)" % _show(x))  # fmt: skip
        out["period_min"] = x
    return out


def _windows(pr, v):
    """Sweden's time windows: the hours that count towards the peaks (accounting.py)."""
    example = '{"months": [11, 12, 1, 2, 3], "days": "weekdays", "hours": [7, 19]}'
    if not isinstance(v, list) or not v or len(v) > WINDOWS_MAX:
        pr.add("tariff.windows", "%s is not a list of 1 to %d windows; use one like [%s]"
               % (_kind(v), WINDOWS_MAX, example))  # fmt: skip
        return None
    out = []
    for i, w in enumerate(v):
        path = "tariff.windows[%d]" % i
        if not _object(pr, path, w, WINDOW_KEYS, example):
            continue
        one = {}
        months, days, hours = w.get("months"), w.get("days", "all"), w.get("hours")
        if months is not None and not _ints(months, 1, 12, 12):
            pr.add(path + ".months", "%s is not a list of months; use numbers from 1 to 12, "
                   "e.g. [11, 12, 1, 2, 3]" % _show(months))  # fmt: skip
        if days not in ("all", "weekdays"):
            pr.add(path + ".days", '%s is not a day set; use "all" or "weekdays"' % _show(days))
        if hours is not None and not (_ints(hours, 0, 24, 2) and len(hours) == 2
                                      and hours[0] < hours[1]):  # fmt: skip
            pr.add(path + ".hours", "%s is not [from, to); use two whole hours from 0 to 24, "
                   "the first lower, e.g. [7, 19]" % _show(hours))  # fmt: skip
        for k in WINDOW_KEYS:  # a copy (a config with problems is not used anyway)
            if k in w and w[k] != "all":
                one[k] = w[k][:] if isinstance(w[k], list) else w[k]
        out.append(one)
    return out


def _ints(v, lo, hi, most):
    """v is a list of 1 to `most` whole numbers from lo to hi."""
    if not isinstance(v, list) or not 0 < len(v) <= most:
        return False
    for x in v:
        if type(x) is not int or not lo <= x <= hi:
            return False
    return True


def _wifi(pr, v, unix):
    example = '[{"ssid": "home", "password": "..."}]'
    if v is _MISSING or (v == [] and not unix):
        pr.add("wifi", ("missing" if v is _MISSING else "is empty") + "; add a network: " + example)
        return []
    if not isinstance(v, list) or len(v) > MAX_NETWORKS:
        pr.add("wifi", "%s is not a list of at most %d networks; use one like %s"
               % (_kind(v), MAX_NETWORKS, example))  # fmt: skip
        return []
    nets = []
    for i, net in enumerate(v):
        path = "wifi[%d]" % i
        if _object(pr, path, net, WIFI_KEYS, example[1:-1]):
            ssid = _text(pr, path + ".ssid", net.get("ssid", _MISSING), "an SSID", '"home"', 32)
            if ssid is not None and len(ssid.encode()) > 32:
                pr.add(path + ".ssid", "is longer than 32 bytes; use a Wi-Fi name (at most 32)")
            fix = '8 to 63 characters, or "" for an open network'
            pw = _text(
                pr, path + ".password", net.get("password", ""), "a password", fix, 64, 0, True
            )
            if pw is not None and 0 < len(pw) < 8:  # WPA2 passphrases: IEEE 802.11i, 8..63
                pr.add(path + ".password", "%d characters is too short; use %s" % (len(pw), fix))
            nets.append({"ssid": ssid, "password": pw})
    return nets


def _meter(pr, v):
    out = {"baud": "auto", "parity": "auto", "invert": False}
    if _object(pr, "meter", v, METER_KEYS, '{"baud": "auto", "parity": "auto"}'):
        baud = out["baud"] = v.get("baud", "auto")
        if baud != "auto" and not (type(baud) is int and baud in BAUDS):
            pr.add("meter.baud", '%s is not a HAN speed; use "auto", 2400, 9600 or 115200'
                   % _show(baud))  # fmt: skip
        parity = out["parity"] = v.get("parity", "auto")
        if parity not in PARITIES:
            pr.add("meter.parity", '%s is not a parity; use "auto", "8N1" or "8E1"' % _show(parity))
        out["invert"] = _flag(pr, "meter.invert", v.get("invert", False))
        # The meter's AES-128 keys (DLMS security suite 0), from the grid company: 16 bytes
        # as 32 hex digits. Secrets: described, never quoted.
        for k in ("key", "auth_key"):
            key = v.get(k)
            if isinstance(key, str) and len(key) == 32 and not key.strip(_HEX):
                out[k] = key.lower()
            elif key is not None:  # "a text" or "a number": the value is never shown
                pr.add("meter." + k, "%s is not 32 hex digits; use the 16-byte key from your "
                       "grid company" % _kind(key))  # fmt: skip
        if "auth_key" in out and "key" not in out:
            pr.add("meter.auth_key", 'is set without "key"; add the encryption key it goes with')
    return out


def _destinations(pr, v, hostname):
    if not isinstance(v, list):
        pr.add("destinations", "%s is not a list; use [] or a list of destinations" % _kind(v))
        return []
    if len(v) > MAX_DESTINATIONS:
        pr.add("destinations", "has %d destinations; use at most %d" % (len(v), MAX_DESTINATIONS))
    out = []
    seen = {}
    announcing = []  # indexes of the destinations with discovery
    for i, d in enumerate(v):
        path = "destinations[%d]" % i
        if not _object(pr, path, d, DEST_KEYS, '{"name": ..., "host": ..., "share": ...}'):
            continue
        dest = _destination(pr, path, d, hostname, i)
        # Two connections with one client id to one broker keep disconnecting each other
        # (MQTT 3.1.1 section 3.1.4: the server drops the older session).
        name, broker = dest["name"], "%s:%s %s" % (dest["host"], dest["port"], dest["client_id"])
        name, broker = ("name", name), ("broker", broker)  # one dict for both kinds of key
        twin = name[1] is not None and name in seen
        if twin:
            pr.add(path + ".name", "%s is already the name of destinations[%d]; give each "
                   "destination its own" % (_show(name[1]), seen[name]))  # fmt: skip
        if broker in seen:
            pr.add(path + ".client_id", "is the one of destinations[%d] on the same broker; "
                   "set another client_id" % seen[broker])  # fmt: skip
        seen[name] = seen[broker] = i
        # Two destinations on one broker under one topic mix their readings (a live share's
        # and a full one's), and each one's last will marks the other offline: Home
        # Assistant's sensors of both then read both. Refused where either
        # announces itself to Home Assistant; without discovery a config that ran before
        # still runs.
        base = ("topic", "%s:%s %s" % (dest["host"], dest["port"], dest["topic"]))
        if dest["topic"] is not None and base in seen:
            j = seen[base]
            if dest["discovery"] or j in announcing:
                pr.add(path + ".topic", "%s is the topic of destinations[%d] on the same broker, "
                       "and Home Assistant's sensors of both would read the messages of both; "
                       "set another, e.g. %s" % (_show(dest["topic"]), j,
                       _show(dest["topic"] + "/" + (name[1] or "2"))))  # fmt: skip
        else:
            seen[base] = i
        if dest["discovery"]:
            announcing.append(i)
        # Home Assistant discovery: one device per destination, its entity ids
        # <hostname>_<name>_<field> in lower case with "_" for "-" (discovery.py): names
        # that differ only there would share entity ids, which Home Assistant renames.
        ent = ("entity", (name[1] or "").lower().replace("-", "_"))
        if dest["discovery"] and name[1] is not None:
            if ent in seen and not twin:
                pr.add(path + ".name", "%s gives the same Home Assistant entity ids as the name "
                       "of destinations[%d] (discovery names entities <hostname>_<name>_<field> "
                       'in lower case, "-" as "_"); give each destination with discovery a name '
                       'that differs in more than case, "-" or "_"' % (_show(name[1]),
                       seen[ent]))  # fmt: skip
            seen[ent] = i
        out.append(dest)
    return out


def _destination(pr, path, d, hostname, i):
    get = d.get
    fix = 'a short name of letters, digits, "-" and "_", e.g. "home-assistant"'
    out = {"name": _text(pr, path + ".name", get("name", _MISSING), "a name", fix, 32)}
    name = out["name"]  # it names the destination's queue file: no "/" or other surprises
    if name is not None and not _plain(name, "-_"):
        pr.add(path + ".name", "%s is not a plain name; use %s" % (_show(name), fix))
    fix = 'the broker\'s name or IP address alone, e.g. "192.168.1.10"'
    host = out["host"] = _text(pr, path + ".host", get("host", _MISSING), "a host name", fix, 253)
    if host is not None and (not _plain(host, ".-_:") or host.count(":") == 1):
        pr.add(path + ".host", "%s is not a host name; use %s (port and TLS have keys of their "
               "own)" % (_show(host), fix))  # fmt: skip
    tls = out["tls"] = _tls(pr, path + ".tls", get("tls"), host)
    out["port"] = _whole(pr, path + ".port", get("port", 8883 if tls else 1883), 1, 65535, "a port")
    user, pw = get("user"), get("password")
    fix = "the user name the broker knows"
    out["user"] = None if user is None else _text(pr, path + ".user", user, "a name", fix, 128)
    if out["user"] is not None and not _mqtt_text(user):
        pr.add(path + ".user", "%s; use %s" % (_MQTT_TEXT, fix))
    fix = "the broker's password as text"
    out["password"] = pw if pw is None else _text(pr, path + ".password", pw, "a password", fix,
                                                  128, 0, True)  # fmt: skip
    if pw is not None and user is None:  # MQTT 3.1.1 section 3.1.2.9: no password alone
        pr.add(path + ".password", 'is set without "user"; add the user name it belongs to')
    cid = get("client_id", "%s-%d" % (hostname, i))  # unique per destination of this dongle
    fix = 'a client id, e.g. "hanport-1a2b3c" (every broker accepts 23 characters)'
    out["client_id"] = _text(pr, path + ".client_id", cid, "a client id", fix, 64)
    if out["client_id"] is not None and not _mqtt_text(cid):
        pr.add(path + ".client_id", "%s %s; use %s" % (_show(cid), _MQTT_TEXT, fix))
    tail = hostname[8:] if hostname and hostname[:8] == "hanport-" else hostname
    out["topic"] = _topic(pr, path + ".topic", get("topic", "hanport/%s" % tail))
    out["discovery"] = _flag(pr, path + ".discovery", get("discovery", False))
    # The meter line's bytes as they arrive, on <topic>/raw, for troubleshooting and for
    # contributing captures (hanctl capture): everything the meter sends, so never a default.
    out["raw"] = _flag(pr, path + ".raw", get("raw", False))
    _share_of(pr, path, d, out)
    for k, default, lo, hi in TIMINGS:
        out[k] = _whole(pr, path + "." + k, get(k, default), lo, hi, "a number of seconds")
    if out["retry_min"] and out["retry_max"] and out["retry_max"] < out["retry_min"]:
        pr.add(path + ".retry_max", "is less than retry_min; use at least %d" % out["retry_min"])
    return out


def _share_of(pr, path, v, out):
    """out["share"], and out["interval"] for "live", from the object v at path."""
    share = out["share"] = _share(pr, path + ".share", v.get("share", _MISSING))
    interval = v.get("interval", _MISSING)
    if share == "live":
        interval = DEFAULT_INTERVAL if interval is _MISSING else interval
        out["interval"] = _whole(pr, path + ".interval", interval, 1, 86400, "a number of seconds")
    elif interval is not _MISSING and share is not None:
        pr.add(path + ".interval", 'only applies to share "live"; remove it or use "live"')


def _local_api(pr, v):
    """The local API's settings, or None when it is off (no "local_api", null, or
    "enabled": false). It has no password (HomeWizard's API v1 has none), so it is never on
    by default and always says what it shares, as a destination does."""
    if v is None:
        return None
    path = "local_api"
    if not _object(pr, path, v, LOCAL_API_KEYS, '{"enabled": true, "share": "live"}'):
        return None
    on = v.get("enabled", _MISSING)
    if on is _MISSING:
        pr.add(path + ".enabled", "missing; add true to serve HomeWizard's local API on the "
               "LAN, or false")  # fmt: skip
        return None
    out = {"enabled": _flag(pr, path + ".enabled", on)}
    if "share" in v:  # off: a share given is still checked, not ignored
        _share_of(pr, path, v, out)
    elif on is True:
        pr.add(path + ".share", "missing; choose what anyone on the LAN may read: " + _LEVELS)
    return out if on is True else None


def _page(pr, v):
    """The owner's page's settings, or None when it is off (no "page", null, or "enabled":
    false)."""
    if v is None:
        return None
    if not _object(pr, "page", v, PAGE_KEYS, '{"enabled": true, "password_hash": ...}'):
        return None
    on = v.get("enabled", _MISSING)
    if on is _MISSING:
        pr.add("page.enabled", "missing; add true to serve the owner's page on the LAN, or false")
        return None
    out = {"enabled": _flag(pr, "page.enabled", on)}
    fix = "set the page's password with `hanctl config password FILE`, or on the setup page"
    for k, lo, hi in (("password_hash", 64, 64), ("salt", 16, 64)):
        x = v.get(k, _MISSING)
        if x is _MISSING:
            if on is True:
                pr.add("page." + k, "missing; " + fix)
        elif not isinstance(x, str) or not lo <= len(x) <= hi or x.strip(_HEX) or len(x) % 2:
            pr.add("page." + k, "%s is not %d to %d hex digits; %s" % (_kind(x), lo, hi, fix))
        else:
            out[k] = x.lower()
    out["iterations"] = _whole(pr, "page.iterations", v.get("iterations", PAGE_ITERATIONS), 1,
                               1000000, "a PBKDF2 iteration count")  # fmt: skip
    out["session_s"] = _whole(pr, "page.session_s", v.get("session_s", 1800), 5, 86400,
                              "a number of seconds")  # fmt: skip
    return out if on is True else None


def _tls(pr, path, v, host):
    if v is None:
        return None
    if not _object(pr, path, v, TLS_KEYS, '{"ca": "ca.pem"}, or null for plain MQTT'):
        return None
    verify = _flag(pr, path + ".verify", v.get("verify", True))
    ca = v.get("ca", None if verify is False else _MISSING)
    fix = 'the CA certificate file on the dongle, e.g. "ca.pem" (or "verify": false, which lets '
    fix += "anyone on the path read and change the data)"
    ca = ca if ca is None else _text(pr, path + ".ca", ca, "a file name", fix, 64)
    # The dongle opens ca from its own folder, and hanctl copies it there from beside the
    # config file: "../x.pem" or "/etc/x.pem" would be read from, or written to, elsewhere.
    if ca is not None and (ca[0] in "/\\" or ":" in ca or ".." in ca.replace("\\", "/").split("/")):
        pr.add(path + ".ca", '%s is outside the dongle\'s folder; use a file next to config.json, '
               'e.g. "ca.pem" (no "..", no "/" or drive at the start)' % _show(ca))  # fmt: skip
        ca = None
    sni = v.get("server_hostname", host)
    fix = "the name in the broker's certificate"
    sni = sni if sni is None else _text(pr, path + ".server_hostname", sni, "a name", fix, 253)
    return {"ca": ca, "server_hostname": sni, "verify": verify}


def _topic(pr, path, v):
    fix = 'a topic like "hanport/1a2b3c"'
    v = _text(pr, path, v, "a topic", fix, 128)
    if v is None:
        return None
    # MQTT 3.1.1 section 4.7: wildcards only in subscriptions; "$" topics are the broker's.
    why = None
    if "#" in v or "+" in v:
        why = 'holds a wildcard ("#" or "+")'
    elif v[0] == "/" or v[-1] == "/" or "//" in v:
        why = 'has an empty level (a "/" at the start, at the end or twice)'
    elif v[0] == "$" or "\x00" in v:
        why = 'starts with "$" (the broker\'s own topics) or holds a NUL'
    elif not _mqtt_text(v):
        why = _MQTT_TEXT
    if why:
        pr.add(path, "%s %s; use %s" % (_show(v), why, fix))
        return None
    return v


def _share(pr, path, v):
    if v is _MISSING:
        pr.add(path, "missing; choose what this destination gets: " + _LEVELS)
        return None
    if v in LEVELS:
        return v
    if not isinstance(v, list) or not v or len(v) > 64:
        shown = "an empty list" if v == [] else _show(v)
        pr.add(path, "%s is not a share level; use %s" % (shown, _LEVELS))
        return None
    fields = []
    for i, f in enumerate(v):
        name = _field(f)
        if name is None:
            pr.add("%s[%d]" % (path, i), "%s is not a reading field; use one of the README's "
                   'table, e.g. "active_power_import", or an OBIS code like "1-0:99.97.0"'
                   % _show(f))  # fmt: skip
        elif name not in fields:
            fields.append(name)
    return fields


def _field(f):
    """The canonical name of a share-list entry: a reading field as is, a code hanport names
    as its field ("1-0:1.7.0" -> "active_power_import"), any other code as the decoder
    spells it ("1-0:099.97.0" -> "1-0:99.97.0"); None when it is neither."""
    if not isinstance(f, str) or len(f) > 24:
        return None
    if f in obis.UNIT or f == "unchecked" or f == "tariff":
        return f
    parts = f.replace("-", ".").replace(":", ".").split(".")
    if len(parts) != 5 or f.count("-") != 1 or f.count(":") != 1 or f.find("-") > f.find(":"):
        # Not a code: a P1 sub-meter's field (gas_volume...)? p1 names them and adds them
        # to the table when it loads; only a list that names one (or a typo) loads it.
        import p1  # noqa: F401

        return f if f in obis.UNIT else None
    n = []
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return None
        n.append(int(p))
    return obis.BY_KEY.get(obis.key(n[0], n[2], n[3], n[4])) or obis.code(*n)


def parse(raw, name=PATH, unix=False):
    """(config or None, problems) from the bytes of a config file, at most MAX_BYTES long
    (load() looks at the size before reading; hanctl's commands hand over what they read)."""
    if len(raw) > MAX_BYTES:
        return None, [name + ": %d bytes is too big; a config is at most %d bytes"
                      % (len(raw), MAX_BYTES)]  # fmt: skip
    if raw[:3] == b"\xef\xbb\xbf":  # the UTF-8 byte order mark some editors write
        raw = raw[3:]
    if not raw.strip():
        return None, [name + ": is empty; write the configuration as JSON (see the README)"]
    why = _chars(raw)
    if why:
        return None, [name + ": " + why]
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except UnicodeError:  # before ValueError: CPython's is a ValueError too
        return None, [name + ": is not UTF-8 text; save it as UTF-8 JSON"]
    except ValueError as e:
        at = " (line %d column %d)" % (e.lineno, e.colno) if hasattr(e, "lineno") else ""
        return None, [name + ": is not valid JSON%s; look for a missing comma, quote or bracket, "
                      "or a file cut short" % at]  # fmt: skip
    except (MemoryError, RuntimeError):  # deep nesting: MicroPython's heap, CPython's stack
        return None, [name + ": nests too deeply to read; it is not a hanport config"]
    if not _strict(raw):
        return None, [name + ": is not valid JSON; look for a missing comma, quote or bracket, "
                      "or a file cut short"]  # fmt: skip
    return validate(cfg, unix)


def _chars(raw):
    """Why the text of raw's strings would differ between the dongle and hanctl, or None.

    MicroPython's json.loads takes a tab or line break inside quotes, which CPython's (and
    RFC 8259 section 7) refuse, and turns a "\\ud800" escape (alone, or half of a pair) and
    the UTF-8 bytes of a surrogate, which CPython's refuse, into text that is not UTF-8.
    Checked before either reads the file, so that both refuse alike, in one line."""
    inside = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if c == 0x22:  # '"'
            inside = not inside
        elif c == 0xED and i < n and raw[i] >= 0xA0:  # U+D800..U+DFFF in UTF-8
            return "is not UTF-8 text; save it as UTF-8 JSON"
        elif not inside:
            continue
        elif c < 0x20:
            return "holds a control character (a tab or line break) inside quotes; remove it"
        elif c == 0x5C:  # an escape: "\\uD8.." to "\\uDF.." is half a UTF-16 pair
            if raw[i : i + 2] in (b"ud", b"uD") and i + 2 < n and raw[i + 2] in b"89abcdefABCDEF":
                return ("holds a \\ud800-\\udfff escape; write the character itself (the file is "
                        "UTF-8), not as a UTF-16 pair")  # fmt: skip
            i += 1
    return None


# MicroPython's json.loads takes commas and colons as optional (`{"a": 1 "b": 2}`, `[1 2]`,
# `[1,,2]` and `{"a" 1}` all load on 1.29), where CPython's refuses them: the dongle would
# run a file `hanctl config validate` calls broken, and the owner's missing comma in a field
# list would go unnoticed. So what json.loads took is checked against JSON's grammar
# (RFC 8259) here, token by token, on both runtimes alike.
_VALUE, _VALUE_OR_END, _KEY, _KEY_OR_END, _COLON, _NEXT, _DONE = range(7)
_NUMBER = b"0123456789+-.eE"
_DEPTH = 64


def _strict(raw):
    """True when raw (JSON that json.loads already took) keeps to JSON's grammar."""
    # "{" or "[" of each open container. Deeper than this, validate() refuses the file anyway
    # (a hanport config nests 4 deep, and takes no unknown key), so no check is needed.
    stack = bytearray(_DEPTH)
    depth = 0
    want = _VALUE
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if c in b" \t\r\n":
            continue
        if c == 0x22:  # a string, to its closing quote (an odd escape only changes its text)
            while i < n and raw[i] != 0x22:
                i += 2 if raw[i] == 0x5C else 1
            i += 1
            if want == _KEY or want == _KEY_OR_END:
                want = _COLON
                continue
        elif c == 0x3A:  # ":"
            if want != _COLON:
                return False
            want = _VALUE
            continue
        elif c == 0x2C:  # ","
            if want != _NEXT or not depth:
                return False
            want = _KEY if stack[depth - 1] == 0x7B else _VALUE
            continue
        elif c == 0x7B or c == 0x5B:  # "{" "["
            if want != _VALUE and want != _VALUE_OR_END:
                return False
            if depth == _DEPTH:
                return True
            stack[depth] = c
            depth += 1
            want = _KEY_OR_END if c == 0x7B else _VALUE_OR_END
            continue
        elif c == 0x7D or c == 0x5D:  # "}" "]"
            if want != _NEXT and want != (_KEY_OR_END if c == 0x7D else _VALUE_OR_END):
                return False
            depth -= 1
            if depth < 0 or stack[depth] != (0x7B if c == 0x7D else 0x5B):
                return False
        elif c in _NUMBER or 0x61 <= c <= 0x7A:  # a number, true, false or null
            if c == 0x30 and i < n and 0x30 <= raw[i] <= 0x39:
                return False  # a leading zero: 01
            while i < n and (raw[i] in _NUMBER or 0x61 <= raw[i] <= 0x7A):
                i += 1
        else:
            return False
        # A value (or a container) ended.
        if want != _VALUE and want != _VALUE_OR_END and c != 0x7D and c != 0x5D:
            return False
        want = _NEXT if depth else _DONE
    return want == _DONE


def load(path=PATH, unix=False):
    """(config or None, problems); never raises for a missing, empty or broken file.

    When path is missing but path + ".tmp" is there, a write() was cut between removing the
    old file and renaming the new one (FAT's rename does that): it is taken back
    (store.recover) and used."""
    store.recover(path)
    raw, why = _read(path)
    if raw is None and why is None:
        return None, [path + ": not found; the dongle publishes nothing until a "
                      "config is written (see the README)"]  # fmt: skip
    if raw is None:
        return None, [path + ": " + why]
    return parse(raw, path, unix)


def _read(path):
    """(bytes, None); (None, None) when there is no such file; (None, why) otherwise."""
    try:
        size = os.stat(path)[6]
        if size > MAX_BYTES:
            return None, "%d bytes is too big; a config is at most %d bytes" % (size, MAX_BYTES)
        with open(path, "rb") as f:
            return f.read(), None
    except OSError as e:
        code = e.args[0] if e.args else None
        if code == errno.ENOENT:
            return None, None
        return None, "cannot be read (OSError %s); check that it is a readable file" % code


def write(cfg, path=PATH):
    """Write cfg as JSON so that a power cut leaves the old file or the new one
    (store.save_json). Raises OSError, after removing the temporary file, when it cannot be
    written."""
    store.save_json(path, cfg)


def redact(cfg):
    """A copy of cfg for logs and hanctl output in which every password, and the value of
    every key hanport does not know (a misspelt "pasword"), is "***"."""
    if isinstance(cfg, dict):
        out = {}
        for k in cfg:
            v = cfg[k]
            out[k] = redact(v) if k in _SHOWN or v is None else SECRET
        return out
    if isinstance(cfg, list):
        return [redact(v) for v in cfg]
    return cfg
