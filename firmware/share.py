# A destination's share level: what of each reading may leave the dongle for it.
#
# The owner chooses it per destination (config "share"; README, "The privacy model"):
#   "full"    every field of every message
#   "live"    power only (active and reactive, import and export, per phase) with
#             meter_time, at most once per "interval" seconds; never the meter's identity
#   "hourly"  the List 3 energy registers (kWh, kvarh) with meter_time; on P1 also the
#             gas, water and heat meters' counts with their times (a gas meter reports
#             hourly on DSMR 4, every 5 minutes on DSMR 5: a count, as energy is)
#   [fields]  exactly the listed fields (canonical names or "A-B:C.D.E" codes), when present
#
# The tariff message (<base>/tariff, README "The tariff message"), when the config has a
# "tariff": "full" and a list naming "tariff" get it at each hour's register and once a
# minute between (this hour so far follows the power); "hourly" only at each hour's
# register (its figures then say no more than the hourly energy does); "live" never (no
# energy at all).
# Units decide what is power and what is energy (obis.UNIT), so a register added to the OBIS
# table falls into the right level without a change here.
#
# "unchecked" (a P1 telegram without a CRC) travels with live and hourly views too: it says
# how far to trust the values and nothing about the household.

from micropython import const

import obis
from uptime import ticks_diff  # MicroPython's (ticks wrap at 2**30 ms), or its CPython model

# const(): no name in the heap for them (other modules compare with the text itself).
_FULL = const("full")
_LIVE = const("live")
_HOURLY = const("hourly")
_FIELDS = const("fields")  # the level of an explicit field list
_UNCHECKED = const("unchecked")
_DEFAULT_INTERVAL = const(10)  # s, as config.DEFAULT_INTERVAL (not imported: config costs 18 KB)
_WITH = const(("meter_time", _UNCHECKED))  # what comes along with the power or energy fields


def is_power(field):
    return obis.UNIT.get(field) in ("W", "var")


def is_energy(field):
    """A register the meter counts up (kWh, kvarh; a P1 sub-meter's m³ or GJ and the time
    of its reading, which p1.py adds to obis.UNIT): any unit that is not a rate. These go
    to the hourly share and message. Told by what they are not, so no unit name of the
    P1 sub-meters is held here: a HAN dongle holds none of them."""
    u = obis.UNIT.get(field)
    return u is not None and u != "" and u not in ("W", "var", "A", "V", "Hz")


def is_hourly(reading):
    """True when the reading carries energy registers (List 3): these go to the outage queue.
    P1 meters send their registers in every telegram, so this is true of each of them."""
    for k in reading:
        if is_energy(k):
            return True
    return False


class Share:
    # The tariff message: 2 at each register and between, 1 at each register only, 0 never;
    # set on the instance only with a "tariff" in the config (a dict slot less without).
    tariff = 0

    def __init__(self, cfg, tariff=False):
        """cfg: a destination of config.validate(); only "share" and "interval" are read.
        tariff: the config has a "tariff" (the dongle keeps the account)."""
        share = cfg["share"]
        self._fields = None
        if isinstance(share, (list, tuple)):
            self.level = _FIELDS
            self._fields = tuple(share)
        elif share in (_FULL, _LIVE, _HOURLY):
            self.level = share
        else:
            raise ValueError("share")  # config.validate() lets no other value through
        self.interval_ms = cfg.get("interval", _DEFAULT_INTERVAL) * 1000
        if tariff:
            lv = self.level
            self.tariff = (
                1 if lv == _HOURLY else 2 if lv == _FULL or "tariff" in (self._fields or ()) else 0
            )
        self._sent_ms = None  # live: when the last view went out
        self._rich = 0  # live: fields of the fullest reading since (see view())
        self._hour = None  # hourly: the meter hour ("YYYY-MM-DDTHH") of the last view

    def allows(self, field):
        """May this destination ever receive field?"""
        level = self.level
        if level == _FULL:
            return True
        if level == _LIVE:
            return is_power(field) or field in _WITH
        if level == _HOURLY:
            return is_energy(field) or field in _WITH
        return field in self._fields

    def fields(self):
        """The canonical reading fields (obis.ORDER) this destination may receive: what
        discovery may announce."""
        return [f for f in obis.ORDER if self.allows(f)]

    @property
    def withholds_id(self):
        """True when the meter id is not shared (so discovery must not show it either)."""
        return not self.allows(obis.METER_ID)

    def view(self, reading, now_ms):
        """The reading as this destination may see it, or None when nothing may be sent now.

        now_ms: time.ticks_ms() (any monotonic ms count on CPython). A "full" view is the
        reading itself (no copy: heap), the others are new small dicts sharing its values;
        neither may be modified."""
        level = self.level
        if level == _FULL:
            return reading or None
        if level == _LIVE:
            # Negative: ticks wrapped past half their period since the last view (days of
            # silence), which is long enough ago too.
            n = len(reading)
            if self._sent_ms is not None:
                age = ticks_diff(now_ms, self._sent_ms)
                if 0 <= age < self.interval_ms:
                    self._rich = max(self._rich, n)
                    return None
                # A real meter pushes List 1 (power import alone) every 2 s and List 2 (all
                # power, export and reactive too) every 10 s: a 10 s gate opened by the
                # first reading after it locked onto List 1, and export and reactive power
                # never went out (a Kaifa, 35 minutes). So a reading with fewer
                # fields than one the gate held back waits for a fuller one, for at most
                # one more interval. len() only: nothing is counted per field per reading.
                if n < self._rich and 0 <= age < 2 * self.interval_ms:
                    return None
            out = _pick(reading, is_power)
            if out is not None:
                self._sent_ms = now_ms
                self._rich = n
            return out
        if level == _HOURLY:
            # One view per meter hour: DLMS meters push List 3 once an hour, P1 meters their
            # registers in every telegram (every 1 to 10 s), which is not "hourly".
            t = reading.get(obis.METER_TIME)
            hour = t[:13] if isinstance(t, str) else None
            if hour is not None and hour == self._hour:
                return None
            out = _pick(reading, is_energy)
            if out is not None:
                self._hour = hour
            return out
        out = {}
        for f in self._fields:
            if f in reading:
                out[f] = reading[f]
        return out or None


def _pick(reading, wanted):
    """The fields of reading that wanted() accepts, with meter_time; None if there are none."""
    out = None
    for k in reading:
        if wanted(k):
            if out is None:
                out = {}
            out[k] = reading[k]
    if out is not None:
        for k in _WITH:
            if k in reading:
                out[k] = reading[k]
    return out
