# Model of micropython-lib's ntptime (micropython/net/ntptime/ntptime.py, version 0.2.0),
# which the ESP32 port freezes into its image (ports/esp32/boards/manifest.py requires
# bundle-networking) and dongle.py's _ntp() calls. Same names: host, timeout, time(),
# settime(). The servers that answer are the world's "ntp" (world.py); the answer is the
# unix port's clock.
#
# How the real one fails, and so this one: with no link, socket.getaddrinfo() raises
# OSError(-202) (EAI_FAIL from lwIP, ports/esp32/modsocket.c); a server that does not
# answer leaves s.recv() waiting `timeout` seconds, the event loop with it, then
# OSError(ETIMEDOUT).

from time import gmtime, sleep
from time import time as _clock

import network
from world import log, world

host = "pool.ntp.org"
timeout = 1


def time():
    log("ntp", "query", repr(host))
    if not network.WLAN(network.WLAN.IF_STA).isconnected():
        raise OSError(-202)
    if host not in world().get("ntp", []):
        sleep(timeout)
        raise OSError(110)  # ETIMEDOUT
    return int(_clock())


def settime():
    t = time()
    import machine

    tm = gmtime(t)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
