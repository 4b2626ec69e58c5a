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

# Lists with no list id and no OBIS code, known by their length alone: Kaifa's List 1,
# Iskraemeco's 15-minute list, its Austrian list (10 values after the one with a code)
# and the IE.5's 33 values. The quirk module checks the
# members' types (positional()) before the reading names the maker.
ANONYMOUS = {1: "Kaifa", 4: "Iskraemeco", 10: "Iskraemeco", 33: "Iskraemeco"}
_OBIS_LEN = const(6)
# A-XDR tags (IEC 62056-6-2), private here as in axdr.py so they fold away.
_NULL = const(0x00)
_ARRAY = const(0x01)
_STRUCTURE = const(0x02)
_OCTET_STRING = const(0x09)
_VISIBLE_STRING = const(0x0A)
_UTF8_STRING = const(0x0C)
_INT32 = const(0x05)
_UINT32 = const(0x06)
_INT8 = const(0x0F)
_INT16 = const(0x10)
_UINT16 = const(0x12)
_ENUM = const(0x16)
_MAX_DEPTH = const(8)  # as axdr.py
# Always text. A set: `in` hashes once where a tuple compares item by item (1.7 thousand
# instructions per miss on the 32-bit unix image, 0.4 with the set).
TEXT_FIELDS = {obis.METER_ID, obis.METER_MODEL, obis.LIST_ID}


def _quirk(maker):
    """The maker's quirk module, imported when a frame first names that maker: a dongle on
    a Kaifa meter never loads the Kamstrup rules (each module costs 0.7-1.8 KB of heap).
    Plain imports, so a reader's grep finds them."""
    if maker == "Kaifa":
        import kaifa

        return kaifa
    if maker == "Kamstrup":
        import kamstrup

        return kamstrup
    if maker == "Iskraemeco":
        import iskraemeco

        return iskraemeco
    return None


def _text(v):
    """Text of an identifier sent as an octet string (Kaifa) or visible string."""
    if isinstance(v, bytes):
        if v.strip(obis.PLAIN):  # not only the usual bytes: each one looked at
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
        self.list_id = None  # the last list id identify() looked up, and what it found
        self.maker = None
        self._maker_quirk = None

    def decode(self, notification):
        """Canonical reading of a parsed dlms.Notification."""
        self.data = notification.data
        self.reading = reading = {}
        if self.positional:
            self.positional.clear()
        self.quirk = None
        self.labels = 0
        r = notification.body
        # structure{ array{ structure{ class-id (uint16), logical name, attribute, ... } },
        # ...}: a push that describes itself. Checked here, not in a call (~1,600
        # instructions a push).
        # (t for the position: one local more would put this frame on the heap, 12 slots)
        t = r.pos
        if (t + 6 < r.end and r.buf[t] == _STRUCTURE and r.buf[t + 2] == _ARRAY
                and r.buf[t + 4] == _STRUCTURE and r.buf[t + 6] == _UINT16):  # fmt: skip
            import objlist  # on first use: only L&G E450 pushes describe themselves

            objlist.walk(self, r)
        else:
            self.walk(r)
            if self.positional:  # values without a code: a call only then (finish's frame
                self.finish()  # takes a heap block, 15 slots)
        if obis.METER_TIME not in reading and notification.time is not None:
            t = dlms.date_time(notification.data, notification.time)
            if t:
                reading[obis.METER_TIME] = t
        self.data = None
        return reading

    # -- the walk ---------------------------------------------------------------------

    def walk(self, r):
        """Store the registers of the data value at reader r: nested arrays and structures
        of scalars, an OBIS code labelling the value after it (see the top of this file).

        One call per push, in a loop rather than a recursion, the cursor, the pending
        register and the enclosing levels in locals: on MicroPython a call costs ~1,600
        instructions (32-bit unix image), a function with more than 11 locals and stack
        slots also a heap block for its frame at every call (objfun.c,
        VM_MAX_STATE_ON_STACK), an attribute ~250, an operator ~100. The usual members (an
        OBIS code, an integer, a length, a {scaler, unit} structure) are read here without
        a call. On the 63 frames of `hanctl bench`, the recursive walk this replaces took
        316 thousand instructions per frame (its integers already read in place), this one
        212 thousand.
        """
        buf = r.buf
        end = r.end
        p = r.pos
        if p >= end:
            raise DecodeError(TRUNCATED)
        tag = buf[p]
        r.pos = p + 1
        if tag != _STRUCTURE and tag != _ARRAY:
            if tag != _NULL:  # Kamstrup pads one-phase lists with null-data
                self.value(r.scalar(tag))
            return
        p += 1
        # [members read] of each enclosing level at [depth], [members] at [depth + 8]:
        # made at the first nested level (most pushes have none), written by index (a
        # list's append() and pop() are method calls, ~1 thousand instructions each)
        levels = None
        values = self.positional
        labels = 0  # OBIS codes seen (self.labels)
        label = -1  # buffer position of the pending register's OBIS code (A at +0)
        have = False  # whether its value came (the first after the code counts)
        value = None
        depth = -1  # of the structure or array whose members are read
        k = n = 0
        view = None  # r.view(), once a string is read
        while True:
            # p is just past a structure's or array's tag: its A-XDR length follows.
            if p >= end:
                raise DecodeError(TRUNCATED)
            m = buf[p]
            if m & 0x80:  # 0x8N and N bytes (r.length())
                r.pos = p
                m = r.length()
                p = r.pos
            else:
                p += 1
            if m == 2 and p + 3 < end and buf[p] == _INT8 and buf[p + 2] == _ENUM:
                # {scaler, unit}: the pending register's scaler
                if have:
                    s = buf[p + 1]
                    self.store(None, label, value, s - 256 if s > 127 else s)
                p += 4
                label = -1
                have = False
                if depth < 0:
                    r.pos = p
                    self.labels = labels
                    return
            else:
                if label >= 0:  # flush(): a register without a scaler
                    if have:
                        self.store(None, label, value, None)
                    label = -1
                    have = False
                if depth >= 0:
                    if levels is None:
                        levels = [0] * (2 * _MAX_DEPTH)
                    levels[depth] = k
                    levels[depth + _MAX_DEPTH] = n
                depth += 1
                k = 0
                n = m
            while True:
                if k >= n:  # the end of this level's members
                    if label >= 0:
                        if have:
                            self.store(None, label, value, None)
                        label = -1
                        have = False
                    if depth == 0:
                        r.pos = p
                        self.labels = labels
                        return
                    depth -= 1
                    n = levels[depth + _MAX_DEPTH]
                    k = levels[depth]
                    continue
                k += 1
                tag = buf[p] if p < end else _ARRAY  # at the end: truncated, below
                # An OBIS code: octet-string of 6, A 0 or 1, F 255 (objlist.is_obis()),
                # first in a structure or anywhere in the top-level list.
                if (tag == _OCTET_STRING and (k == 1 or depth == 0) and p + 7 < end
                        and buf[p + 1] == _OBIS_LEN and buf[p + 2] <= 1
                        and buf[p + 7] == 0xFF):  # fmt: skip
                    if label >= 0 and have:
                        self.store(None, label, value, None)
                    have = False
                    label = p + 2
                    labels += 1
                    p += 8
                    continue
                if tag == _STRUCTURE or tag == _ARRAY or depth >= _MAX_DEPTH:
                    if depth >= _MAX_DEPTH:
                        raise DecodeError(NESTING)
                    if p >= end:
                        raise DecodeError(TRUNCATED)
                    p += 1
                    break  # a structure or array: its length, at the top of the outer loop
                # A scalar: the integers meters send most, read here; the rest by r.scalar().
                if tag == _UINT32 or tag == _INT32:
                    if p + 5 > end:
                        raise DecodeError(TRUNCATED)
                    v = buf[p + 1] << 24 | buf[p + 2] << 16 | buf[p + 3] << 8 | buf[p + 4]
                    if tag == _INT32 and v > 0x7FFFFFFF:
                        v -= 0x100000000
                    p += 5
                elif tag == _UINT16 or tag == _INT16:
                    if p + 3 > end:
                        raise DecodeError(TRUNCATED)
                    v = buf[p + 1] << 8 | buf[p + 2]
                    if tag == _INT16 and v > 0x7FFF:
                        v -= 0x10000
                    p += 3
                elif tag == _NULL:  # Kamstrup pads one-phase lists with null-data
                    p += 1
                    continue
                elif (tag == _OCTET_STRING or tag == _VISIBLE_STRING or tag == _UTF8_STRING) and (
                    p + 1 < end and buf[p + 1] < 0x80
                ):  # a short string (r.scalar() without its calls: ~6 thousand instructions)
                    m = p + 2 + buf[p + 1]
                    if m > end:
                        raise DecodeError(TRUNCATED)
                    if view is None:
                        view = r.view()
                    if tag == _OCTET_STRING:
                        v = bytes(view[p + 2 : m])
                    else:
                        v = str(view[p + 2 : m], "utf-8")
                    p = m
                else:
                    r.pos = p + 1
                    v = r.scalar(tag)
                    p = r.pos
                if label >= 0:  # value(v): a register's value, the first after its code
                    if not have:
                        value = v
                        have = True
                    elif depth == 0 and len(values) < obis.FIELDS_MAX:
                        # More values after it with no code of their own: positions of a
                        # list that names only its first value (finish())
                        values.append(v)
                elif labels or not values or len(values) >= obis.FIELDS_MAX:
                    self.labels = labels
                    self.value(v)
                else:  # a positional member
                    values.append(v)

    def value(self, v):
        """A value with no OBIS code before it (the walk keeps a register's own)."""
        if not self.labels:
            if not self.positional and isinstance(v, (bytes, str)):
                t = _text(v)  # a list id (or device name) opens the list: who made it
                if t:
                    self.identify(t)
            if len(self.positional) < obis.FIELDS_MAX:  # no quirk's list is longer
                self.positional.append(v)
            else:
                self.dropped += 1

    def finish(self):
        values = self.positional
        if not values:
            return
        q = self.quirk
        maker = None
        if self.labels:
            if len(values) == 1:  # Kamstrup: the list id is the only value without a code
                t = _text(values[0]) if isinstance(values[0], (bytes, str)) else None
                if t:
                    self.reading[obis.LIST_ID] = t
                return
            # A code, its value, then positions with no code (Iskraemeco's Austrian list):
            # known by their count, as a list of no code at all
            q = None
        labelled = self.labels
        if q is None:
            # A list that names no maker, known by its length (the quirk checks its shape).
            # Not by a maker named in an earlier push: a fresh decoder reads each frame as
            # a long-lived one does (host_tests/stress/fuzz).
            maker = ANONYMOUS.get(len(values))
            q = _quirk(maker)
            if q is None:
                return
        keys = q.positional(values)
        if keys is None:
            return  # a list hanport does not know: the reading keeps what it has
        if maker:
            self.reading[obis.MANUFACTURER] = maker
            self.quirk = q  # for its scalers (store)
        for i in range(len(keys)):
            if keys[i]:  # None: a position the quirk does not read
                self.store(keys[i], -1, values[i], None)
        if labelled:
            q.finish(self.reading)  # what its one code names (a name the dongle has)

    # -- storing ------------------------------------------------------------------------

    def identify(self, list_id):
        """Maker and quirk module from a list id, or from a COSEM logical device name,
        which starts with the maker's 3-letter FLAG id (DLMS UA): ISK..., KFM..."""
        if list_id != self.list_id:  # the same every push: looked up once (~12 thousand)
            m = obis.manufacturer(list_id)
            self._maker_quirk = _quirk(m) if m else None  # may fail (MemoryError): first
            self.maker = m
            self.list_id = list_id
        m = self.maker
        if m:
            self.reading[obis.MANUFACTURER] = m
            self.quirk = self._maker_quirk

    def store(self, k, p, v, s):
        """Store value v of table key k (None: the key of the OBIS code at p); p is where
        its OBIS code is (-1: positional)."""
        # Called for every register (13 a frame on the Norwegian frames of `hanctl bench`),
        # so its frame stays on the C stack: at most 11 slots for locals and operands
        # (objfun.c, VM_MAX_STATE_ON_STACK). With 18 each call took a heap block of 7 (3.8
        # thousand instructions to find one on a heap that short-lived blocks fragment,
        # callgrind). Hence seven locals, p reused for the value's type once the name is
        # known, and no expression deeper than four operands.
        reading = self.reading
        if len(reading) >= obis.FIELDS_MAX:  # before the dict grows, not after
            self.dropped += 1
            return
        if k is None:  # obis.key() in place
            name = self.data
            k = (name[p] & 0x3F) << 24 | name[p + 2] << 16 | name[p + 3] << 8 | name[p + 4]
        name = obis.BY_KEY.get(k)
        if name is None:
            if p < 0:  # a quirk's register without a field: under its code, B 0
                name = code(k)
            else:
                name = self.data[p : p + 5]  # A, B, C, D, E
                name = obis.code(*name)
        elif p >= 0 and self.data[p + 1] and not self.data[p] and name in TEXT_FIELDS:
            # 0-n:96.1.0 with n >= 1: the id of the meter's M-Bus channel n (a gas or water
            # meter an L&G E450 pushes with its own), not the meter's. Abstract (A 0) ids
            # only: Kamstrup's clock is 0-1:1.0.0, its registers 1-1.
            name = self.data[p : p + 5]
            name = obis.code(*name)
        p = v.__class__  # type(v) without a call (a bool is no int here, on either runtime)
        if p is int:
            if name not in TEXT_FIELDS:
                if s is None:
                    s = self.quirk.scaler(k, reading) if self.quirk else 0
                # obis.energy_shift(), in place, by the key: a field of the table (not a
                # code it has no field for) whose D is 8, an energy register, is the one
                # whose unit starts with "k" (host_tests/test_stream.py holds the table
                # to it). Two method calls less a register, ~3 thousand instructions.
                if k & 0xFF00 == 0x800 and name in obis.UNIT:
                    s -= 3
                if s < 0:  # number(v, s) in place, a call less: the short form where exact
                    while s < 0 and v % 10 == 0:
                        v //= 10
                        s += 1
                    if s:
                        v = (v, s)
                elif s:
                    v *= 10**s
                reading[name] = v
                return
            v = str(v)  # an id is text, whatever type the meter sent it as
            p = str
        if p is bool or v is None:
            reading[name] = v
        elif name == obis.METER_TIME:
            if isinstance(v, bytes) and len(v) == 12:
                v = dlms.date_time(v, 0)
                if v:
                    reading[name] = v
        elif isinstance(v, tuple):  # a float, as an exact decimal (axdr.py)
            if s is None:
                s = 0
            s += obis.energy_shift(name)
            s += v[1]
            reading[name] = number(v[0], s)
        else:
            p = _text(v)
            if p is None:  # binary octets: hex, so nothing is lost
                p = hexlify(v).decode()
            reading[name] = p
            if name == obis.LIST_ID:
                self.identify(p)


def code(k):
    """The code, B 0, of table key k: a quirk's register hanport has no field for. Apart
    from store(), whose frame must stay within 11 slots (its comment)."""
    return obis.code(k >> 24, 0, k >> 16 & 0xFF, k >> 8 & 0xFF, k & 0xFF)


def number(m, exp):
    """The exact value m * 10**exp: an int when whole, else (mantissa, exponent < 0)."""
    if exp >= 0:
        return m * 10**exp
    while exp < 0 and m % 10 == 0:  # 2330 dV -> 233 V: the short form where exact
        m //= 10
        exp += 1
    return m if exp == 0 else (m, exp)
