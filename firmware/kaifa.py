# Kaifa quirk: the Norwegian lists (KFM_001, MA105H2E/MA304H3E/MA304H4) carry no OBIS
# codes; each value's meaning is its position, fixed per list length (NVE/Kaifa "HAN
# interface description", lists 1, 2 and 3, one- and three-phase). Currents are sent in
# mA and voltages in 0.1 V; the push has no scaler, so they are declared here.

import obis

_ID = (obis.key(1, 0, 2, 129), obis.key(0, 96, 1, 0), obis.key(0, 96, 1, 7))
_POWER = (obis.key(1, 1, 7, 0), obis.key(1, 2, 7, 0), obis.key(1, 3, 7, 0), obis.key(1, 4, 7, 0))
_I = (obis.key(1, 31, 7, 0), obis.key(1, 51, 7, 0), obis.key(1, 71, 7, 0))
_U = (obis.key(1, 32, 7, 0), obis.key(1, 52, 7, 0), obis.key(1, 72, 7, 0))
_ENERGY = (
    obis.key(0, 1, 0, 0),  # clock
    obis.key(1, 1, 8, 0),
    obis.key(1, 2, 8, 0),
    obis.key(1, 3, 8, 0),
    obis.key(1, 4, 8, 0),
)
_LIST2_1P = _ID + _POWER + _I[:1] + _U[:1]
_LIST2_3P = _ID + _POWER + _I + _U

# number of values -> the OBIS key of each position
POSITIONAL = {
    1: (obis.key(1, 1, 7, 0),),  # list 1: active power import only
    9: _LIST2_1P,
    13: _LIST2_3P,
    14: _LIST2_1P + _ENERGY,
    18: _LIST2_3P + _ENERGY,
}

_SCALERS = {}
for _k in _I:
    _SCALERS[_k] = -3
for _k in _U:
    _SCALERS[_k] = -1


def scaler(key, reading):
    return _SCALERS.get(key, 0)
