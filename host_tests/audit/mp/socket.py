# ruff: noqa: UP031 (runs under MicroPython: written as firmware/ is, which pyproject exempts)
# The connection audit's `socket` for the MicroPython unix port (host_tests/audit): it is
# found on MICROPYPATH before the built-in, as MicroPython >= 1.21 lets a file of that name
# extend an extensible built-in module, and writes every name lookup and socket the firmware
# makes to the file $HANPORT_AUDIT_LOG, one line each:
#     getaddrinfo <host> <port> -> <family> <address bytes as hex> ...
#     socket <family> <type> <proto>
# connect() is not wrapped: the socket must stay the built-in object, since tls.wrap_socket
# reads a subclass instance's fd from the wrong place (tried on 1.29: the ClientHello went
# to fd 1). The connect() calls themselves are witnessed outside the interpreter (strace).
# Never part of the firmware.

import os
import sys

_path = sys.path
sys.path = []  # with no path, `import socket` finds the built-in, not this file
try:
    import socket as _builtin
finally:
    sys.path = _path

for _name in dir(_builtin):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_builtin, _name)

_LOG = os.getenv("HANPORT_AUDIT_LOG")


def _note(text):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(text + "\n")


def _hex(b):
    return "".join("%02x" % x for x in bytes(b))


def getaddrinfo(host, port, *args):
    try:
        found = _builtin.getaddrinfo(host, port, *args)
    except OSError as e:
        _note("getaddrinfo %s %s -> error %s" % (host, port, e.args[0] if e.args else e))
        raise
    _note(
        "getaddrinfo %s %s -> %s"
        % (host, port, " ".join("%d:%s" % (a[0], _hex(a[-1])) for a in found))
    )
    return found


def socket(af=AF_INET, kind=SOCK_STREAM, proto=0):  # noqa: F821 (copied in above)
    _note("socket %d %d %d" % (af, kind, proto))
    return _builtin.socket(af, kind, proto)
