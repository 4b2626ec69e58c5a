# Kamstrup quirk (Omnipower, list id Kamstrup_V0001). The push names every register by
# OBIS (channel B = 1) but sends no scaler, so they are declared here:
#   current       0.01 A; 0.001 A on CT meters (type numbers 685...) as amshan reads them
#   power factor  percent (amsreader-firmware divides by 100; CH/DK 65-value lists)
#   energy        10 Wh on Norwegian meters (type ...BN242/BN243..., every NO capture and
#                 the oracles agree), but Wh on Swedish ones (...BN245...): amsreader
#                 issues #239 and #874 report the x10 as ten times too high in Sweden, and
#                 the SE List 3 capture reads 32 MWh with Wh, an implausible 320 MWh with
#                 10 Wh. A meter whose frame carries no type number is read as Norwegian.
# Voltage and power are whole V and W, the default.

import obis

_CURRENT = (31, 51, 71)
_POWER_FACTOR = (13, 33, 53, 73)
_WH_VARIANT = "BN245"  # at index 7 of the type number


def positional(v):
    return None  # every list names its registers


def scaler(key, reading):
    # Called for every register of a Kamstrup push: the model is looked up only for the
    # registers whose scaler depends on it (a dict lookup and two attributes, ~1,500
    # instructions on MicroPython).
    d = (key >> 8) & 0xFF
    if d == 8:  # energy registers, totals, tariffs and phases alike
        return 0 if (reading.get(obis.METER_MODEL) or "").startswith(_WH_VARIANT, 7) else 1
    if d != 7:
        return 0
    c = (key >> 16) & 0xFF
    if c in _CURRENT:
        return -3 if (reading.get(obis.METER_MODEL) or "").startswith("685") else -2
    if c in _POWER_FACTOR:
        return -2
    return 0
