# Meter normalizer: the body of a Data-Notification in, a canonical reading out.
#
# One walk serves every OBIS-tagged layout seen on HAN ports:
#   Aidon, L&G E350, Kaifa SE, Iskraemeco: structure{obis, value, structure{scaler, unit}}
#   Kamstrup: a flat structure of obis, value, obis, value (null-data padding between)
#   Kaifa PL over M-Bus: both mixed
# An OBIS octet string labels the value after it when it opens a structure or stands in
# the top-level list. Lists without any OBIS code are positional and need a quirk module
# (kaifa.py) that knows the list; pushes that describe themselves with an object list
# (L&G E450) are mapped through that list by objlist.py. Scalers not sent by the meter come from the
# quirk module of the list id (kamstrup.py), else 0. No vendor name appears in this file.
#
# A reading is a dict: field -> str, int, or (mantissa, exponent) for an exact decimal
# with exponent < 0 (see reading.py). Only fields the frame carries are present.

from binascii import hexlify

from micropython import const

import dlms
import obis
from errors import NESTING, TRUNCATED, DecodeError

# Maker -> its quirk module, imported when a frame first names that maker: a dongle on
# a Kaifa meter never loads the Kamstrup rules. (Each module costs 0.7-1.8 KB of heap.)
QUIRKS = {"Kaifa": "kaifa", "Kamstrup": "kamstrup"}
# A list with no list id and no OBIS code, known by its length alone: Kaifa's List 1.
ANONYMOUS = {1: "Kaifa"}
_OBIS_LEN = const(6)
# A-XDR tags (IEC 62056-6-2), private here as in axdr.py so they fold away.
_NULL = const(0x00)
_ARRAY = const(0x01)
_STRUCTURE = const(0x02)
_OCTET_STRING = const(0x09)
_INT8 = const(0x0F)
_UINT16 = const(0x12)
_ENUM = const(0x16)
_MAX_DEPTH = const(8)  # as axdr.py
TEXT_FIELDS = (obis.METER_ID, obis.METER_MODEL, obis.LIST_ID)  # always text


def _quirk(maker):
    name = QUIRKS.get(maker)
    return __import__(name) if name else None


def is_obis(r):
    """Is the next element an OBIS code: octet-string of 6, A 0 or 1, F 255?"""
    p = r.pos
    buf = r.buf
    return (
        p + 7 < r.end
        and buf[p] == _OCTET_STRING
        and buf[p + 1] == _OBIS_LEN
        and buf[p + 2] <= 1
        and buf[p + 7] == 0xFF
    )


def _is_object_list(r):
    # structure{ array{ structure{ class-id (uint16), logical name, attribute, ... } }, ...}
    p = r.pos
    buf = r.buf
    return (
        p + 6 < r.end
        and buf[p] == _STRUCTURE
        and buf[p + 2] == _ARRAY
        and buf[p + 4] == _STRUCTURE
        and buf[p + 6] == _UINT16
    )


def _text(v):
    """Text of an identifier sent as an octet string (Kaifa) or visible string."""
    if isinstance(v, bytes):
        for c in v:
            if (c < 0x20 or c > 0x7E) and c != 0:
                return None
        v = v.decode()
    return v.rstrip("\x00")  # L&G E350 pads its meter id with NULs


class Normalizer:
    """Turns Data-Notifications into readings; one per decoder, reused for every push."""

    def __init__(self):
        self.data = None
        self.reading = None
        self.positional = []
        self.quirk = None
        self.labels = 0
        self.dropped = 0  # registers and values past obis.FIELDS_MAX, since boot
        self._label = -1  # buffer position of the pending register's OBIS (A at +0)
        self._value = None
        self._have = False

    def decode(self, note):
        """Canonical reading of a parsed dlms.Notification."""
        self.data = note.data
        self.reading = reading = {}
        self.positional.clear()
        self.quirk = None
        self.labels = 0
        self._label = -1
        self._have = False
        r = note.body
        if _is_object_list(r):
            import objlist  # on first use: only L&G E450 pushes describe themselves

            objlist.walk(self, r)
        else:
            self.element(r, 0, True)
            self.flush()
            self.finish()
        if obis.METER_TIME not in reading and note.time is not None:
            t = dlms.date_time(note.data, note.time)
            if t:
                reading[obis.METER_TIME] = t
        self.data = None
        return reading

    # -- the walk ---------------------------------------------------------------------

    def element(self, r, depth, top):
        if depth > _MAX_DEPTH:
            raise DecodeError(NESTING)
        # Calls are most of the walk's cost on MicroPython, so the cursor is read here, a
        # scalar member is read without a call of element(), and flush() is called only
        # with a label pending (a no-op otherwise): 850 to 715 thousand instructions per
        # frame for parse and normalize (32-bit unix image, the `hanctl bench` frames).
        buf = r.buf
        p = r.pos
        if p >= r.end:
            raise DecodeError(TRUNCATED)
        tag = buf[p]
        r.pos = p + 1
        if tag != _STRUCTURE and tag != _ARRAY:
            if tag != _NULL:  # Kamstrup pads one-phase lists with null-data
                self.value(r.scalar(tag))
            return
        n = r.length()
        p = r.pos
        if n == 2 and p + 3 < r.end and buf[p] == _INT8 and buf[p + 2] == _ENUM:
            r.pos = p + 4  # {scaler, unit}: the pending register's scaler
            if self._have:
                s = buf[p + 1]
                self.put(self._label, self._value, s - 256 if s > 127 else s)
            self._label = -1
            self._have = False
            return
        if self._label >= 0:
            self.flush()
        for k in range(n):
            p = r.pos
            tag = buf[p] if p < r.end else _ARRAY  # at the end: element() says truncated
            if tag == _OCTET_STRING and (k == 0 or top) and is_obis(r):
                if self._label >= 0:
                    self.flush()
                self._label = r.take(2 + _OBIS_LEN) + 2
                self.labels += 1
            elif tag == _STRUCTURE or tag == _ARRAY or depth >= _MAX_DEPTH:
                self.element(r, depth + 1, False)
            else:
                r.pos = p + 1
                if tag != _NULL:
                    self.value(r.scalar(tag))
        if self._label >= 0:
            self.flush()

    def value(self, v):
        if self._label >= 0:
            if not self._have:
                self._value = v
                self._have = True
        elif not self.labels:
            if not self.positional and isinstance(v, (bytes, str)):
                t = _text(v)  # a list id (or device name) opens the list: who made it
                if t:
                    self.identify(t)
            if len(self.positional) < obis.FIELDS_MAX:  # no quirk's list is longer
                self.positional.append(v)
            else:
                self.dropped += 1

    def flush(self):
        if self._have:
            self.put(self._label, self._value, None)
        self._label = -1
        self._have = False

    def finish(self):
        values = self.positional
        if not values:
            return
        if self.labels:  # Kamstrup: the list id is the only value without a code
            t = _text(values[0]) if isinstance(values[0], (bytes, str)) else None
            if t:
                self.reading[obis.LIST_ID] = t
            return
        n = len(values)
        q = self.quirk
        first = values[0]
        # Not a bool: it is an int on CPython (hanctl), not on MicroPython (the dongle).
        if (q is None and obis.MANUFACTURER not in self.reading and isinstance(first, int)
                and not isinstance(first, bool)):  # fmt: skip
            maker = ANONYMOUS.get(n)
            if maker:
                self.reading[obis.MANUFACTURER] = maker
                q = self.quirk = _quirk(maker)
        keys = q.POSITIONAL.get(n) if q else None
        if keys is None:
            return  # a list hanport does not know: the reading keeps what it has
        for i in range(n):
            self.store(keys[i], -1, values[i], None)

    # -- storing ------------------------------------------------------------------------

    def identify(self, list_id):
        """Maker and quirk module from a list id, or from a COSEM logical device name,
        which starts with the maker's 3-letter FLAG id (DLMS UA): ISK..., KFM..."""
        m = obis.manufacturer(list_id)
        if m:
            self.reading[obis.MANUFACTURER] = m
            self.quirk = _quirk(m)

    def put(self, p, v, s, raw=False):
        if len(self.reading) >= obis.FIELDS_MAX:  # before the dict grows, not after
            self.dropped += 1
            return
        buf = self.data
        if raw and isinstance(v, int) and not isinstance(v, bool):
            # No scaler in the push and none declared: keep the raw count under its code.
            self.reading[obis.code(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4])] = v
            return
        self.store(obis.key(buf[p], buf[p + 2], buf[p + 3], buf[p + 4]), p, v, s)

    def store(self, k, p, v, s):
        """Store value v of table key k; p is where its OBIS code is (-1: positional)."""
        name = obis.BY_KEY.get(k)
        if name is None:
            if p < 0:
                return
            buf = self.data
            name = obis.code(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4])
        reading = self.reading
        t = type(v)  # not isinstance: a bool is an int on CPython, not on MicroPython
        if t is int and name in TEXT_FIELDS:
            v = str(v)  # an id is text, whatever type the meter sent it as
            t = str
        if t is int:
            if s is None:
                s = self.quirk.scaler(k, reading) if self.quirk else 0
            reading[name] = number(v, s + obis.energy_shift(name))
        elif t is bool or v is None:
            reading[name] = v
        elif name == obis.METER_TIME:
            if isinstance(v, bytes) and len(v) == 12:
                t = dlms.date_time(v, 0)
                if t:
                    reading[name] = t
        elif isinstance(v, tuple):  # a float, as an exact decimal (axdr.py)
            if s is None:
                s = 0
            reading[name] = number(v[0], v[1] + s + obis.energy_shift(name))
        else:
            t = _text(v)
            if t is None:  # binary octets: hex, so nothing is lost
                t = hexlify(v).decode()
            reading[name] = t
            if name == obis.LIST_ID:
                self.identify(t)


def number(m, exp):
    """The exact value m * 10**exp: an int when whole, else (mantissa, exponent < 0)."""
    if exp >= 0:
        return m * 10**exp
    while exp < 0 and m % 10 == 0:  # 2330 dV -> 233 V: the short form where exact
        m //= 10
        exp += 1
    return m if exp == 0 else (m, exp)
