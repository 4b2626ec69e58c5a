# Model of the ESP32 port's `network` module, as far as hal_esp32 uses it, for the
# MicroPython unix port: the station interface joining the access points of the world
# (world.py), its scan of them, setup mode's own access point (the AP interface), and the
# host name it gives the DHCP server. It accepts and refuses what the port does, with the
# same exception types and messages.
#
# Mirrors micropython/micropython at v1.23.0 and at master 1c3c201149 (1.29.0-preview):
#   hostname            extmod/modnetwork.c (MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN 32)
#   WLAN                ports/esp32/network_wlan.c: the station's state (connect requested,
#                       connected, the last disconnect's reason), status() from them, the
#                       driver reconnecting by itself while a connect is requested; one Wi-Fi
#                       mode with a station bit and an AP bit (active()); scan() only with
#                       the station's bit on; config() of either interface, with the AP's
#                       parameters refused on the station ("AP required") and the
#                       station's on the AP ("STA required"), require_if()
#   esp_wifi_set_config ESP-IDF (esp_wifi.h): an AP with a security mode but a password
#                       under 8 bytes is ESP_ERR_WIFI_PASSWORD; the AP's address is
#                       ESP-IDF's default for it, 192.168.4.1
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
# The AP: its bit in the Wi-Fi mode, and its wifi_config_t.ap (ESP-IDF's defaults: open,
# channel 1, 4 stations).
_ap_on = False
_ap = {"essid": "ESP_000002", "password": "", "authmode": 0, "channel": 1, "max_clients": 4}
_AP_ONLY = ("ssid", "essid", "hidden", "authmode", "security", "key", "password", "max_clients")


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
        global _started, _connected, _requested, _ap_on
        if len(args) > 1:
            raise TypeError("function expected at most 2 arguments, got %d" % (len(args) + 1))
        if self.if_id == 1:
            if args:
                on = bool(args[0])
                if on != _ap_on:
                    log("wlan", "ap active", on, " ".join("%s=%r" % kv for kv in _ap_shown()))
                _ap_on = on
            return _ap_on
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
        if self.if_id == 1:  # a station on the AP: none in the model
            return False
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
        # network_wlan_scan: either interface's object, with the station's bit in the mode;
        # each access point in range once, as ESP-IDF's records give them. "rssi" and
        # "authmode" of a world's access point, else -60 dBm, and WPA2 with a password.
        if not _started:
            raise OSError("STA must be active")
        out = []
        for i, (name, ap) in enumerate(world().get("aps", {}).items()):
            auth = ap.get("authmode", 3 if ap.get("password") else 0)
            bssid = b"\x02\x00\x00\x00\x00" + bytes((i + 1,))
            out.append((name.encode(), bssid, 6, ap.get("rssi", -60), auth, False))
        log("wlan", "scan", len(out))
        return out

    def ifconfig(self, *args):
        if version() >= (1, 24):
            log("deprecated", "WLAN.ifconfig() (use ipconfig)")
        if args:
            raise NotImplementedError("model: setting a static address")
        if self.if_id == 1:
            return (_AP_ADDRESS, "255.255.255.0", _AP_ADDRESS, "0.0.0.0")
        _update()
        ip = _address()
        gw = "0.0.0.0" if ip == "0.0.0.0" else "192.168.1.1"
        return (ip, "255.255.255.0" if _connected else "0.0.0.0", gw, gw)

    def config(self, *args, **kw):
        global _conf_reconnects
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        ap = self.if_id == 1
        if kw:
            new = dict(_ap)
            for name, value in kw.items():
                # Each parameter is set, then its interface checked (require_if), as the
                # port does: the first one of the wrong interface raises.
                if name in ("hostname", "dhcp_hostname"):
                    log("deprecated", "WLAN.config(%s=...) (use network.hostname())" % name)
                    hostname(value)
                elif name == "reconnects":
                    n = get_int(value)
                    if ap:
                        raise OSError("STA required")
                    _conf_reconnects = 0 if n == -1 else n + 1
                elif name in ("ssid", "essid", "key", "password"):
                    text = get_str(value)
                    if type(text) is bytes:
                        text = text.decode()
                    new["essid" if name in ("ssid", "essid") else "password"] = text
                elif name in ("authmode", "security", "max_clients", "channel"):
                    n = get_int(value)
                    new[{"security": "authmode"}.get(name, name)] = n
                elif name in ("pm", "protocol"):
                    get_int(value)
                elif name not in ("mac", "hidden", "txpower"):
                    raise ValueError("unknown config param")
                if name in _AP_ONLY and not ap:
                    raise OSError("AP required")
            if ap:
                # esp_wifi_set_config(WIFI_IF_AP): a secured AP needs a password of 8 to 63
                # bytes (the port copies at most 63).
                new["password"] = new["password"][:63]
                if new["authmode"] != 0 and len(new["password"]) < 8:
                    raise OSError("Wifi Invalid Password")
                _ap.update(new)
                log("wlan", "ap config", " ".join("%s=%r" % kv for kv in _ap_shown()))
            return None
        if len(args) != 1:
            raise TypeError("can query only one param")
        name = args[0]
        if name in ("hostname", "dhcp_hostname"):
            log("deprecated", "WLAN.config('%s') (use network.hostname())" % name)
            if ap:
                raise OSError("STA required")
            return _hostname
        if name == "reconnects":
            if ap:
                raise OSError("STA required")
            return _conf_reconnects - 1
        if name in ("ssid", "essid"):
            return _ap["essid"] if ap else (_ssid or "")
        if name in ("authmode", "security", "hidden"):
            if not ap:
                raise OSError("AP required")
            return _ap["authmode"] if name != "hidden" else False
        if name in ("channel", "max_clients"):
            return _ap[name]
        if name == "mac":
            return b"\x24\x0a\xc4\x00\x00" + (b"\x02" if ap else b"\x01")
        if name == "pm":
            return WLAN.PM_PERFORMANCE
        raise ValueError("unknown config param")


_AP_ADDRESS = "192.168.4.1"


def _ap_shown():
    """The AP's settings as the model's log shows them: the password by its length only."""
    return [(k, _ap[k]) for k in ("essid", "authmode", "channel", "max_clients")] + [
        ("password_len", len(_ap["password"]))
    ]


def _ipconfig(self, *args, **kw):
    """WLAN.ipconfig (esp_ipconfig in network_common.c): the queries; setting is not
    modelled."""
    if kw:
        raise NotImplementedError("model: setting ipconfig")
    if len(args) != 1:
        raise TypeError("must query one param")
    if self.if_id == 1:
        if args[0] == "addr4":
            return (_AP_ADDRESS, "255.255.255.0")
        raise NotImplementedError("model: the AP's " + str(args[0]))
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
