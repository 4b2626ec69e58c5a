# Kamstrup quirk (Omnipower, list id Kamstrup_V0001). The push names every register by
# OBIS (channel B = 1) but sends no scaler: per Kamstrup's HAN-NVE description currents
# are in 0.01 A (0.001 A on CT meters, type numbers starting 685) and the energy
# registers count 10 Wh. Voltage and power are whole V and W, the default.

import obis

MANUFACTURER = "Kamstrup"
LIST_IDS = ("Kamstrup",)
POSITIONAL = {}
ANONYMOUS = ()

_CURRENTS = (obis.key(1, 31, 7, 0), obis.key(1, 51, 7, 0), obis.key(1, 71, 7, 0))
_ENERGY = (obis.key(1, 1, 8, 0), obis.key(1, 2, 8, 0), obis.key(1, 3, 8, 0), obis.key(1, 4, 8, 0))


def scaler(key, reading):
    if key in _CURRENTS:
        model = reading.get(obis.METER_MODEL)
        return -3 if model and model.startswith("685") else -2
    if key in _ENERGY:
        return 1
    return 0
