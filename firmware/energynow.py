# The energy registers as they stand now, for Home Assistant's hourly statistics.
#
# A DLMS meter pushes its energy registers (List 3) once an hour, at hh:00:00 to hh:00:10,
# holding the count at hh:00:00. Home Assistant books a total's growth in the hour its state
# changes in, so a sensor that follows the registers alone shows each hour's kWh in the
# hour after (amsreader #300, #630; amshan-homeassistant #55). Here the dongle counts on
# from the last register with the power the meter reports, and publishes the count
# (<base>/energy_now, retained) every 10 s of meter time and at each reading of an hour's
# last 10 s; Home Assistant's energy sensors read it instead of <base>/energy
# (discovery.py). The rule (README, "Energy in the right hour"):
#   count = last register + power integrated since the register's own hour began (meter
#           time), a reading's power held until the next reading, and only between
#           readings at most 30 s apart: a silent meter adds nothing, the register at the
#           end of the hour brings the rest (an undershoot is booked with the next hour);
#   at each register the count starts again from it, so it is the register itself at the
#   hour's start (exact decimals: the register's mantissa and exponent, never a float);
#   it never goes down: a count that ran ahead of the register (the power over-read) is
#   held until the new register plus the power since passes it (an overshoot comes off
#   the next hour); only a register lower than the one before (a new meter) lowers it.
# A lost register: the count goes on from the last one, across the hours, until one comes.
#
# Who gets it: a destination with discovery whose share lets out both the register and
# the power it is made of (full, or a list naming both): it then says nothing the
# destination does not get already. Not "hourly": between registers it would tell the
# power minute by minute, which that share withholds. Not "live": it is the register at
# each hour, and a live share gets no energy at all. Beside the capacity tariff's account
# too (tariff.py), since the names of a dongle with both fit five qstr pools (dongle.py).
#
# Loaded only when such a destination exists, at the first register (held, if a discovery
# round is under way, until its end: energyfeed.py), and dropped during each discovery
# round (destination.py): its code took 1.8 KB of heap, and two destinations over TLS with
# discovery, at the edge of 96K, then ran out of memory loading discovery (hanctl bench
# --tls --discovery --destinations 2); readings during the round are not seen, the power
# before it is held over it (at most _GAP_S), and a register among them is kept for after
# it (_HELD). So the state lives outside the module:
# one list (energyfeed.py's `state`; no class: as a class with named attributes
# the module took 2,352 B, as functions on a list 1,824 B, measured on the official
# image's model), and each destination's attribute energynow: [the state, the count it had
# last, its fields...]. Nothing on flash: after a reboot the count starts again at the
# first register.

from micropython import const

from reading import write

_GAP_S = const(30)  # power is integrated only between readings this close (as tariff.py's)
_SNAP_S = const(60)  # a register this far into its hour is the hour's start count
_EVERY_S = const(10)  # the message between registers: every 10 s of meter time
_LAST_S = const(3590)  # and at every reading from here to the hour's end
_IMPORT = const("active_energy_import")
_EXPORT = const("active_energy_export")
# The state, by index: meter hour ("YYYY-MM-DDTHH") and seconds into it of the last
# reading; power import and export (W) from it on; W*s since that meter hour began; W*s
# since the last register's count; the last registers in Wh and their meter hour; the
# count sent (Wh); its meter time, its number, and the meter seconds it was made at; the
# destinations that get it; a register that came during a discovery round, and the
# readings the dongle found no memory to load this module for (the last two:
# energyfeed.py sets them).
# Wh, not the register's own exponent: normalize.py writes 12345.670 kWh as (1234567, -2)
# and 12345.671 as (12345671, -3), so the exponent changes from one register to the next,
# and a count kept in it went back to the register (down) at each change.
_KEY = const(0)
_SEC = const(1)
_P = const(2)
_HOUR = const(3)
_WS = const(4)
_REG = const(5)
_REG_KEY = const(6)
_VALUE = const(7)
_TIME = const(8)
_N = const(9)
_SENT_S = const(10)
_DESTS = const(11)
_HELD = const(12)


def _new():
    return [None, 0, [0, 0], [0, 0], [0, 0], None, None, [0, 0], None, 0, None, [], None, 0]


def fields(share):
    """The energy fields a destination with this share gets counted on: each whose
    register and power it gets already (dongle.py asks the same for import before loading
    this; discovery.py holds the same rule, not to load this during its rounds)."""
    return [
        f
        for f in (_IMPORT, _EXPORT)
        if share.allows(f) and share.allows(f.replace("energy", "power"))
    ]


def start(destinations):
    """The count's state for those of destinations (the dongle's) the dongle marked (their
    attribute energynow (): with discovery, the import register and the power) that get a
    field of fields() (their attribute energynow becomes [the state, the count they had
    last, their fields...]); None when none does."""
    s = None
    for d in destinations:
        f = fields(d.share) if d.energynow is not None else ()
        if f:
            s = s or _new()
            d.energynow = [s, 0] + f
            s[_DESTS].append(d)
    return s


def offer(s, reading):
    """Take one reading into the state s (dongle.py, each one); True when a new count is
    due."""
    held = s[_HELD]
    if held is not None:  # a register that came during a discovery round: first, in order
        s[_HELD] = None
        offer(s, held)
    t = reading.get("meter_time")
    sec = None
    if isinstance(t, str) and len(t) >= 19:
        try:
            sec = int(t[14:16]) * 60 + int(t[17:19])
        except ValueError:
            pass
    if sec is None:
        # No meter time (DSMR 2.2 and 3): nothing to integrate over; such a meter prints
        # its registers in every telegram, and they are the count (its sensors read this).
        r = _wh(reading.get(_IMPORT))
        if r is None:
            return False
        x = _wh(reading.get(_EXPORT, 0))
        value = s[_VALUE]
        if s[_REG] is None or r < s[_REG][0]:
            value[0] = value[1] = 0  # a first count, or a new meter: from it
        s[_REG] = [r, x or 0]
        value[0], value[1] = max(value[0], r), max(value[1], x or 0)
        s[_TIME] = None
        s[_N] += 1
        for d in s[_DESTS]:
            d.event.set()
        return True
    key = t[:13]
    p, hour, ws = s[_P], s[_HOUR], s[_WS]
    new_hour = key != s[_KEY]
    dt = 0
    if s[_KEY] is not None:
        dt = sec + 3600 - s[_SEC] if new_hour else sec - s[_SEC]
    if not 0 < dt <= _GAP_S:  # a silent meter, a clock set back: nothing counted
        dt = 0
    for i in (0, 1):
        ws[i] += p[i] * dt
        # On a new hour, the part of the gap after the hour began.
        hour[i] = p[i] * min(dt, sec) if new_hour else hour[i] + p[i] * dt
    if new_hour:
        s[_SENT_S] = None
    s[_KEY], s[_SEC] = key, sec
    # The power from now to the next reading. List 1 carries import alone: export is kept
    # from List 2, unless the house imports (a meter counts one or the other).
    w = reading.get("active_power_import")
    if w is not None:
        p[0] = _w(w)
        w = reading.get("active_power_export")
        p[1] = _w(w) if w is not None else p[1] if p[0] == 0 else 0
    at_start = False
    r = _wh(reading.get(_IMPORT))
    if r is not None:
        reg, value = s[_REG], s[_VALUE]
        x = _wh(reading.get(_EXPORT, 0))
        if x is None:  # an export register that is no number: the last one stands
            x = reg[1] if reg else 0
        # List 3 in an hour's first minute counts to the hour's start (as accounting.py
        # takes it); a register in every telegram (P1), to its own time.
        at_start = sec < _SNAP_S and key != s[_REG_KEY]
        s[_WS] = hour[:] if at_start else [0, 0]
        if reg is None or r < reg[0] or x < reg[1]:
            value[0], value[1] = r, x  # a new meter (or a first count): from it
        s[_REG], s[_REG_KEY] = [r, x], key
    if s[_REG] is None:
        return False
    last = s[_SENT_S]
    if not (at_start or last is None or sec - last >= _EVERY_S or sec >= _LAST_S):
        return False
    value = s[_VALUE]
    for i in (0, 1):
        c = s[_REG][i] + s[_WS][i] // 3600  # Wh
        if c > value[i]:
            value[i] = c  # never down: a count ahead of the register is held
    s[_TIME], s[_SENT_S] = t, sec
    s[_N] += 1
    for d in s[_DESTS]:
        d.event.set()
    return True


async def send(client, dest):
    """Publish the latest count to dest (destination.py _flush) if it has not had it:
    written into the destinations' buffer (dest holds it: acquire()), retained (Home
    Assistant has it at once after a restart), QoS 0 (a newer one follows within 10 s). One
    left unsent by a session that ended goes with the next session."""
    mine = dest.energynow
    s = mine[0]
    n = s[_N]
    if mine[1] == n:
        return
    view = {}
    if s[_TIME] is not None and dest.share.allows("meter_time"):
        view["meter_time"] = s[_TIME]
    for f in mine[2:]:
        view[f] = (s[_VALUE][f == _EXPORT], -3)  # Wh: kWh with three decimals
    try:
        size = write(view, dest._buf)
    except OverflowError:  # ~110 bytes in a buffer of 1.5 KB: never
        dest.dropped += 1
        mine[1] = n
        return
    await client.publish(
        dest.base + "/energy_now", memoryview(dest._buf)[:size], True, 0, dest.release
    )
    mine[1] = n  # sent: one the session's end cut off goes with the next session
    dest.published += 1


def _num(v):
    """(mantissa, exponent) of a number as normalize.py gives it (an int, or a tuple of
    two); None for anything else a meter line may bring under the field's name (a string, a
    bool, None): those are not counted, and raise nothing (energyfeed.py never raises)."""
    if type(v) is int:
        return v, 0
    if type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return v
    return None


def _w(v):
    """Whole W of a power value; 0 for a negative one or none."""
    v = _num(v)
    if v is None:
        return 0
    m, e = v
    w = m * 10**e if e >= 0 else m // 10**-e
    return w if w > 0 else 0


def _wh(v):
    """Whole Wh of an energy register in kWh; None for what is no number."""
    v = _num(v)
    if v is None:
        return None
    m, e = v
    return m * 10 ** (e + 3) if e >= -3 else m // 10 ** (-3 - e)
