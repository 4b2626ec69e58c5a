# Model of the board's network address: the unix port's `socket` (an extensible built-in,
# which this file on the path stands in for), with the ports the board listens on mapped to
# ports of the host, as the world's "ports" says ({"80": 18080, "53": 15353}), so that tests
# on one machine reach the board's web server and DNS without root, and without taking the
# host's port 80. Only getaddrinfo() changes: MicroPython's asyncio and the firmware find
# every address with it before bind() and connect().

import sys

_me = sys.modules["socket"]
del sys.modules["socket"]
_path = sys.path[:]
sys.path[:] = [p for p in _path if not p.rstrip("/").endswith("esp32_model")]
try:
    import socket as _port  # the built-in: no socket.py on the path now
finally:
    sys.path[:] = _path
    sys.modules["socket"] = _me

for _name in dir(_port):
    if _name[:2] != "__":
        globals()[_name] = getattr(_port, _name)


def getaddrinfo(host, port, *args):
    from world import world

    port = world().get("ports", {}).get(str(port), port)
    return _port.getaddrinfo(host, port, *args)
