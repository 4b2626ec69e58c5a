# Setup mode's Wi-Fi on an ESP32: the scan of the networks in range, and the dongle's own
# access point. Loaded at the first use of hal_esp32.scan or hal_esp32.access_point (its
# module __getattr__), so that a dongle that runs normally holds none of it.

import network
from micropython import const

# At most two phones on the access point at once (the web server serves two clients at
# once, httpd._CLIENTS_MAX); the networks a scan lists, the strongest (a city has more).
_AP_CLIENTS = const(2)
_SCAN_MAX = const(20)


def scan():
    """The Wi-Fi networks in range, [(ssid, rssi in dBm, secure)], strongest first, each name
    once, at most _SCAN_MAX. A scan needs the station on (network_wlan.c: "STA must be
    active"), beside setup mode's access point; it takes ~2 s, in which nothing else runs."""
    w = network.WLAN(network.WLAN.IF_STA)
    w.active(True)
    best = {}
    for found in w.scan():  # (ssid, bssid, channel, rssi, authmode, hidden)
        try:
            ssid = found[0].decode()
        except UnicodeError:  # not UTF-8: no owner types that name
            continue
        if ssid and (ssid not in best or best[ssid][1] < found[3]):
            best[ssid] = (ssid, found[3], found[4] != network.WLAN.SEC_OPEN)
    return sorted(best.values(), key=lambda n: -n[1])[:_SCAN_MAX]


def access_point(name, key):
    """Open setup mode's access point, name, WPA2 with key: (the dongle's address on it, the
    DNS port). Its settings are given before it starts, so it never runs open."""
    ap = network.WLAN(network.WLAN.IF_AP)
    ap.config(
        essid=name,
        password=key,
        authmode=network.WLAN.SEC_WPA2,
        channel=6,  # in every regulatory domain's 2.4 GHz band
        max_clients=_AP_CLIENTS,
    )
    ap.active(True)
    # ipconfig() from MicroPython 1.24 on, ifconfig() in 1.23 (as hal_esp32's _address)
    return (ap.ipconfig("addr4")[0] if hasattr(ap, "ipconfig") else ap.ifconfig()[0]), 53
