# Setup mode's Wi-Fi on the unix port, as far as a host has one: a "scan", and the access
# point, modelled. Loaded at the first use of hal_unix.scan or hal_unix.access_point (its
# module __getattr__), so that a dongle that runs normally holds none of it.

import os


def scan():
    """The Wi-Fi networks "in range", [(ssid, rssi, secure)]: HANPORT_SCAN as JSON, a list of
    [ssid, rssi, secure], or two networks to pick from."""
    import json

    found = os.getenv("HANPORT_SCAN") or '[["hanport-lab", -48, true], ["cafe", -81, false]]'
    return [tuple(n) for n in json.loads(found)]


def access_point(name, key):
    """The access point, modelled: phones reach the host's own address. (the dongle's
    address, the DNS port): the address is the web server's host
    (HANPORT_HTTP); the DNS listens on the port HANPORT_DNS names, or nowhere without it
    (port 53 takes root)."""
    dns = os.getenv("HANPORT_DNS")
    return os.getenv("HANPORT_HTTP").rpartition(":")[0], (int(dns) if dns else None)
