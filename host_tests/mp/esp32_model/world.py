# What the model of the ESP32 port (machine*.py, network.py, ntptime.py beside this file)
# shares: the world the board runs in, the record of what the firmware did to it, and the
# argument checks of MicroPython's C functions.
#
# The world is a JSON file named by the environment variable ESP32_MODEL, which the test
# may rewrite while the board runs (an access point goes away, comes back); it is read
# again at most every 100 ms:
#   "micropython": "1.23" or "1.29"   the port modelled: v1.23.0, or master at 1c3c201149
#                                     (1.29.0-preview); the oldest we support and the newest
#   "chip": "esp32", "esp32c3", "esp32s2"
#   "meter": {"pin": 16, "port": 5000}  the HAN line, wired to that GPIO: a TCP server on
#                                     127.0.0.1 (hanctl.simulate.Server with a line)
#   "aps": {"ssid": {"password": "..."}}  the access points in range
#   "join_ms": 300                    how long a join (or a scan that finds nothing) takes
#   "ntp": ["ntp.example"]            NTP servers that answer
#   "inputs": {"0": 0}                levels the world drives input pins to (a button held)
#   "clock_skip_ms": 300000           how far the board's ticks_ms() is ahead (time.py)
#
# What the firmware does is printed as lines "esp32-model: <ticks_ms> <what>" on stdout,
# which the test reads with the dongle's log.

import json
import os
import time

PATH = os.getenv("ESP32_MODEL")
_world = None
_read_at = None


def world():
    global _world, _read_at
    now = time.port_ticks_ms()  # the port's clock: ticks_ms() itself reads the world
    if _world is None or time.ticks_diff(now, _read_at) >= 100:
        with open(PATH) as f:
            _world = json.load(f)
        _read_at = now
    return _world


def clock_skip_ms():
    return world().get("clock_skip_ms", 0)


def version():
    """(major, minor) of the MicroPython modelled."""
    major, minor = world().get("micropython", "1.29").split(".")
    return int(major), int(minor)


def chip():
    return world().get("chip", "esp32")


def log(*what):
    print("esp32-model:", time.ticks_ms(), *what)


class BoardFault(Exception):
    """What the hardware would do, not the port: a reset, a hang. The port raises nothing."""


# -- mp_arg_parse_all (py/argcheck.c) at MICROPY_ERROR_REPORTING_NORMAL, the ESP32 port's --

INT = "int"  # MP_ARG_INT: converted by mp_obj_get_int
OBJ = "obj"  # MP_ARG_OBJ: taken as it is
NULL = object()  # MP_OBJ_NULL: "not given"


def parse(pos, kw, allowed):
    """allowed: ((name, kind, default, kw_only), ...) as a C function's mp_arg_t table.
    Returns {name: value}; raises what mp_arg_parse_all raises, with its messages."""
    out = {}
    used = 0
    for i, (name, kind, default, kw_only) in enumerate(allowed):
        if i < len(pos):
            if kw_only:
                raise TypeError("extra positional arguments given")
            value = pos[i]
        elif name in kw:
            used += 1
            value = kw[name]
        else:
            out[name] = default
            continue
        out[name] = get_int(value) if kind == INT else value
    if len(pos) > len(allowed):
        raise TypeError("extra positional arguments given")
    if used < len(kw):
        raise TypeError("extra keyword arguments given")
    return out


def get_int(value):
    """mp_obj_get_int (py/obj.c): bools and ints; nothing else converts, not even a float."""
    if value is True or value is False:
        return int(value)
    if type(value) is int:
        return value
    raise TypeError("can't convert %s to int" % type(value).__name__)


def get_str(value):
    """mp_obj_str_get_data (py/objstr.c): str or bytes."""
    if type(value) is str or type(value) is bytes:
        return value
    raise TypeError("can't convert '%s' object to str implicitly" % type(value).__name__)
