# Kaifa quirk: the Norwegian lists (KFM_001, MA105H2E/MA304H3E/MA304H4) carry no OBIS
# codes; each value's meaning is its position, fixed per list length (NVE/Kaifa "HAN
# interface description", lists 1, 2 and 3, one- and three-phase). Currents are sent in
# mA and voltages in 0.1 V; the push has no scaler, so they are declared here.
#
# The tables are made in a function, in its locals: a module-level name is a qstr interned
# in the heap when the module loads, and this module's 13 names took a dongle with four
# destinations past its fifth qstr pool (a sixth of 4.6 KB that a heap fragmented at 96K
# did not have: every push counted `memory`; host_tests/test_heap.py counts them).

import obis


def _table():
    k = obis.key
    ids = (k(1, 0, 2, 129), k(0, 96, 1, 0), k(0, 96, 1, 7))
    power = (k(1, 1, 7, 0), k(1, 2, 7, 0), k(1, 3, 7, 0), k(1, 4, 7, 0))
    i = (k(1, 31, 7, 0), k(1, 51, 7, 0), k(1, 71, 7, 0))
    u = (k(1, 32, 7, 0), k(1, 52, 7, 0), k(1, 72, 7, 0))
    energy = (k(0, 1, 0, 0), k(1, 1, 8, 0), k(1, 2, 8, 0), k(1, 3, 8, 0), k(1, 4, 8, 0))
    one = ids + power + i[:1] + u[:1]  # list 2, one phase
    three = ids + power + i + u
    positional = {  # number of values -> the OBIS key of each position
        1: power[:1],  # list 1: active power import only
        9: one,
        13: three,
        14: one + energy,  # list 3: the clock, then the energy registers
        18: three + energy,
    }
    scalers = {}
    for x in i:
        scalers[x] = -3
    for x in u:
        scalers[x] = -1
    return positional, scalers


POSITIONAL, table = _table()


def positional(v):
    """The OBIS key of each position of list v, or None for a list hanport does not know.
    A lone value is List 1 only as an integer (not a bool: an int on CPython, not on
    MicroPython). (v, not `values`: a name more in the dongle's qstr pools.)"""
    if len(v) == 1 and (not isinstance(v[0], int) or isinstance(v[0], bool)):
        return None
    return POSITIONAL.get(len(v))


def scaler(key, reading):
    return table.get(key, 0)
