# Model of the ESP32 port's `network` module, as far as hal_esp32 uses it, for the
# MicroPython unix port: the station interface joining the access points of the world
# (world.py), and the host name it gives the DHCP server. It accepts and refuses what the
# port does, with the same exception types and messages.
#
# Mirrors micropython/micropython at v1.23.0 and at master 1c3c201149 (1.29.0-preview):
#   hostname            extmod/modnetwork.c (MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN 32)
#   WLAN                ports/esp32/network_wlan.c: the station's state (connect requested,
#                       connected, the last disconnect's reason), status() from them, the
#                       driver reconnecting by itself while a connect is requested
#   ifconfig, ipconfig  ports/esp32/network_common.c (ipconfig from 1.24, 1f23ab1e3d;
#                       ifconfig deprecated since, docs/library/network.rst)
#   errors              esp_exceptions_helper in ports/esp32/network_common.c
#   constants           ports/esp32/modnetwork_globals.h, modnetwork.h; ESP-IDF's
#                       wifi_err_reason_t values (esp_wifi_types.h)
# Deprecated calls work, and print "esp32-model: <ticks> deprecated <what>".
#
# What ESP-IDF does and the port's source does not show, from reports against the port:
# connect() while the station is still connecting (its own retries after the link dropped,
# or an earlier connect() not yet through) raises OSError("Wifi Internal Error"), with
# "E wifi:sta is connecting, return error" on the console (micropython#17661, v1.25 and
# 1.26-preview; micropython#7139). disconnect() ends the connecting, as mqtt_as relies on.

import time

from world import OBJ, get_int, get_str, log, parse, version, world

# wifi_err_reason_t
_REASON_ASSOC_LEAVE = 8
_REASON_BEACON_TIMEOUT = 200
_REASON_NO_AP_FOUND = 201
_REASON_AUTH_FAIL = 202
_REASON_CONNECTION_FAIL = 205

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = 210
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = 211
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = 212
if version() >= (1, 25):
    STAT_CONNECT_FAIL = 203  # beabef5aac; STAT_ASSOC_FAIL is deprecated for it

_hostname = "mpy-esp32"  # MICROPY_PY_NETWORK_HOSTNAME_DEFAULT


def hostname(*args):
    global _hostname
    if len(args) > 1:
        raise TypeError("function expected at most 1 arguments, got %d" % len(args))
    if not args:
        return _hostname
    name = get_str(args[0])
    if len(name) > 32:
        raise ValueError()
    _hostname = name if type(name) is str else name.decode()
    return None


def __getattr__(name):
    # network.STA_IF and AP_IF: kept "only for backwards compatibility" since 1.25
    # (275b3afae7); WLAN.IF_STA and IF_AP are there from 1.23 on.
    if name in ("STA_IF", "AP_IF"):
        if version() >= (1, 25):
            log("deprecated", "network." + name, "(use WLAN.IF_STA, WLAN.IF_AP)")
        return 0 if name == "STA_IF" else 1
    raise AttributeError(name)


# The station: the port's static state (network_wlan.c), shared by every WLAN(IF_STA).
_started = False  # esp_wifi_start() done: active(True)
_requested = False  # wifi_sta_connect_requested
_connected = False  # wifi_sta_connected: joined and given an address
_reason = 0  # wifi_sta_disconn_reason
_ssid = None
_key = None
_attempt_at = 0  # when the current (re)connect attempt began
_conf_reconnects = 0  # 0: the driver retries for ever
_reconnects = 0
_told = None


def _update():
    """What the driver did since the last look: join, fail, drop, retry."""
    global _connected, _reason, _attempt_at, _reconnects, _told
    if not _started:
        return
    w = world()
    aps = w.get("aps", {})
    now = time.ticks_ms()
    if _connected:
        if _ssid not in aps:  # the access point is gone
            _connected = False
            _reason = _REASON_BEACON_TIMEOUT
            _attempt_at = now  # the event handler calls esp_wifi_connect() again
            log("wlan", "link lost", repr(_ssid), "reason", _reason)
        return
    if not _requested or time.ticks_diff(now, _attempt_at) < w.get("join_ms", 300):
        return
    ap = aps.get(_ssid)
    if ap is not None and ap.get("password", "") == (_key or ""):
        _connected = True
        _reason = 0
        _told = None
        log("wlan", "got ip", repr(_ssid), "hostname", _hostname)
        return
    _reason = _REASON_NO_AP_FOUND if ap is None else _REASON_AUTH_FAIL
    if _told != (_ssid, _reason):
        _told = (_ssid, _reason)
        log("wlan", "attempt failed", repr(_ssid), "reason", _reason)
    if _conf_reconnects:
        _reconnects += 1
        if _reconnects >= _conf_reconnects:
            return  # no more retries: status() gives the reason
    _attempt_at = now


def _address():
    return world().get("ip", "192.168.1.50") if _connected else "0.0.0.0"


class WLAN:
    IF_STA = 0  # WIFI_IF_STA
    IF_AP = 1
    SEC_OPEN = 0
    SEC_WEP = 1
    SEC_WPA = 2
    SEC_WPA2 = 3
    SEC_WPA_WPA2 = 4
    SEC_WPA2_ENT = 5
    SEC_WPA3 = 6
    SEC_WPA2_WPA3 = 7
    SEC_WAPI = 8
    SEC_OWE = 9
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, *args, **kw):
        if kw:
            raise TypeError("function doesn't take keyword arguments")
        if len(args) > 1:
            raise TypeError("function expected at most 1 arguments, got %d" % len(args))
        idx = get_int(args[0]) if args else 0
        if idx not in (0, 1):
            raise ValueError("invalid WLAN interface identifier")
        self.if_id = idx

    def _sta(self, what):
        if self.if_id != 0:
            raise NotImplementedError("model: the access point interface, " + what)

    def active(self, *args):
        global _started, _connected, _requested
        if len(args) > 1:
            raise TypeError("function expected at most 2 arguments, got %d" % (len(args) + 1))
        self._sta("active()")
        if args:
            on = bool(args[0])
            if on != _started:
                log("wlan", "active", on)
            _started = on
            if not on:
                _connected = _requested = False
        return _started

    def connect(self, *args, **kw):
        global _ssid, _key, _requested, _connected, _attempt_at, _reconnects
        self._sta("connect()")
        a = parse(
            args, kw, (("", OBJ, None, False), (" ", OBJ, None, False), ("bssid", OBJ, None, True))
        )
        ssid, key = _ssid, _key
        if args:  # esp_wifi_set_config with what is given, the rest zeroed
            ssid = None if a[""] is None else get_str(a[""])
            key = None if a[" "] is None else get_str(a[" "])
            if a["bssid"] is not None and len(get_str(a["bssid"])) != 6:
                raise ValueError()
        _update()
        if not _started:
            raise OSError("Wifi Not Started")
        if _requested and not _connected:
            log("wlan", "connect", repr(ssid), "refused: sta is connecting")
            raise OSError("Wifi Internal Error")
        _ssid, _key = ssid, key
        _requested = True
        _connected = False
        _reconnects = 0
        _attempt_at = time.ticks_ms()
        log("wlan", "connect", repr(ssid), "hostname", _hostname)

    def disconnect(self):
        global _requested, _connected, _reason
        self._sta("disconnect()")
        if not _started:
            raise OSError("Wifi Not Started")
        _update()
        _requested = False
        if _connected or _reason != _REASON_ASSOC_LEAVE:
            log("wlan", "disconnect")
        _connected = False
        _reason = _REASON_ASSOC_LEAVE

    def isconnected(self):
        self._sta("isconnected()")
        _update()
        return _connected

    def status(self, *args):
        self._sta("status()")
        _update()
        if args:
            if args[0] == "rssi":
                if not _connected:
                    raise OSError("Wifi Not Connected")
                return -60
            if args[0] == "stations":
                raise OSError("AP required")
            raise ValueError("unknown status param")
        if _connected:
            return STAT_GOT_IP
        if _reason in (_REASON_NO_AP_FOUND, 210, 211, 212):
            return _reason
        if _reason in (_REASON_AUTH_FAIL, _REASON_CONNECTION_FAIL):
            return _REASON_AUTH_FAIL
        if _reason == _REASON_ASSOC_LEAVE:
            return STAT_IDLE
        if _requested and (_conf_reconnects == 0 or _reconnects < _conf_reconnects):
            return STAT_CONNECTING
        if _reason == 0:
            return STAT_IDLE
        return _reason

    def scan(self):
        self._sta("scan()")
        if not _started:
            raise OSError("Wifi Not Started")
        aps = world().get("aps", {})
        return [(s.encode(), b"\x02\x00\x00\x00\x00\x01", 6, -60, 3, False) for s in aps]

    def ifconfig(self, *args):
        self._sta("ifconfig()")
        if version() >= (1, 24):
            log("deprecated", "WLAN.ifconfig() (use ipconfig)")
        _update()
        if args:
            raise NotImplementedError("model: setting a static address")
        ip = _address()
        gw = "0.0.0.0" if ip == "0.0.0.0" else "192.168.1.1"
        return (ip, "255.255.255.0" if _connected else "0.0.0.0", gw, gw)

    def config(self, *args, **kw):
        global _conf_reconnects
        self._sta("config()")
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        if kw:
            for name, value in kw.items():
                if name in ("hostname", "dhcp_hostname"):
                    log("deprecated", "WLAN.config(%s=...) (use network.hostname())" % name)
                    hostname(value)
                elif name == "reconnects":
                    n = get_int(value)
                    _conf_reconnects = 0 if n == -1 else n + 1
                elif name in ("pm", "protocol", "channel", "max_clients", "security"):
                    get_int(value)
                elif name in ("ssid", "essid", "key", "password"):
                    get_str(value)
                elif name not in ("mac", "hidden", "txpower", "authmode"):
                    raise ValueError("unknown config param")
            return None
        if len(args) != 1:
            raise TypeError("can query only one param")
        name = args[0]
        if name in ("hostname", "dhcp_hostname"):
            log("deprecated", "WLAN.config('%s') (use network.hostname())" % name)
            return _hostname
        if name == "reconnects":
            return _conf_reconnects - 1
        if name in ("ssid", "essid"):
            return _ssid or ""
        if name == "mac":
            return b"\x24\x0a\xc4\x00\x00\x01"
        if name == "pm":
            return WLAN.PM_PERFORMANCE
        raise ValueError("unknown config param")


def _ipconfig(self, *args, **kw):
    """WLAN.ipconfig (esp_ipconfig in network_common.c): the queries; setting is not
    modelled."""
    self._sta("ipconfig()")
    if kw:
        raise NotImplementedError("model: setting ipconfig")
    if len(args) != 1:
        raise TypeError("must query one param")
    _update()
    if args[0] == "addr4":
        return (_address(), "255.255.255.0" if _connected else "0.0.0.0")
    if args[0] == "gw4":
        return "192.168.1.1" if _connected else "0.0.0.0"
    if args[0] == "dhcp4":
        return True
    raise ValueError("unexpected key")


if version() >= (1, 24):
    WLAN.ipconfig = _ipconfig
