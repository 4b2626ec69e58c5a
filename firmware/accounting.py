# What the owner pays: each hour's energy, the month's three peak hours and the capacity
# step of a Norwegian grid bill (kapasitetsledd, since July 2022). Fed the canonical
# readings; pure, no I/O: the caller saves state() where it keeps its files.
#
# The rules, in the meter's own time (its clock is local time):
# - An hour's energy is the difference of the registers at its two ends, in Wh, exact. A
#   register counts as an hour's boundary when its meter_time is within the first minute
#   of the hour (List 3 comes at hh:00:00 to hh:00:10; a P1 meter prints its registers in
#   every telegram, and the first one of the hour serves).
# - A lost boundary (a lost List 3, an outage, a reboot) never merges two hours into one:
#   the energy between the two known registers is split over the hours between them, in
#   proportion to the power integrated in each (evenly where none was seen), and those
#   hours are marked estimated. The sum stays exact.
# - Summer time follows the EU rule (the switch at 01:00 UTC), with the zone's offset from
#   the config: the day in March has 23 hours, the day in October 25, the repeated hour
#   comes twice with the same meter time.
# - Month peaks: the largest hour of each day; the month's three largest days; their mean
#   is the capacity in kW (kWh in an hour), and the ladder's interval holding it the step.
# - Time windows (Sweden's effektavgift, whose hours differ by grid operator): with
#   "windows" in the tariff, only the hours that begin inside one count towards the peaks;
#   a window is {"months": [...], "days": "weekdays" or "all", "hours": [from, to)} in the
#   meter's local time (e.g. November to March, weekdays, 07-19). Energy still counts.
# - Quarter hours ("period_min": 15, the EU's 15-minute settlement, Sweden's effektavgift
#   by quarter): the peaks are quarters, each day's largest quarter, and the capacity is
#   the mean of the three quarters' energy x 4 (kWh in 15 minutes x 4 = the quarter's mean
#   kW). A quarter's energy is integrated from the import power within it, and reconciled
#   to the hour's register when the hour closes (settlement.quarters()): the hour's Wh
#   are shared in proportion to the quarters' integrated power, in whole Wh, the rounding
#   remainder to the largest quarter, so the four sum exactly to the register difference. A quarter
#   with no power reading in it gets the mean of the quarters that had some (an even
#   share when none had) and is marked estimated; every quarter of an estimated hour is.
#   Export stays hourly (no peak is made of it). Windows count a quarter by its hour.

from micropython import const

_SNAP_S = const(60)  # a register this many seconds into its hour is the hour's boundary
_GAP_S = const(30)  # power is integrated only between readings this close in time
_PENDING_MAX = const(48)  # hours kept with their estimates while a boundary is missing
# (settlement.py's split and month summaries: loaded only when they come)
_SPLIT_MAX = const(1488)  # hours (62 days) a missing stretch is split over; longer: restart
_DAYS = const(31)  # the month's days: the largest hour of day d at days[d - 1]
_STEPS_KW = const((0, 2, 5, 10, 15, 20, 25, 50, 75, 100))  # a typical ladder (Elvia, Tensio, BKK)


def _days(y, m, d):
    """Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + (yoe * 365 + yoe // 4 - yoe // 100 + doy) - 719468


def _civil(days):
    """(y, m, d) of the day `days` days from 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _last_sunday(y, m):
    """Day number of the last Sunday of month m (March or October) in year y."""
    z = _days(y, m, 31)
    return z - (z + 4) % 7  # 1970-01-01 was a Thursday: (z + 4) % 7 is 0 on a Sunday


def parse_time(text):
    """(local hour number, seconds into the hour) of "YYYY-MM-DDTHH:MM:SS", or None."""
    try:
        if len(text) < 19 or text[4] != "-" or text[10] != "T":
            return None
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except (TypeError, ValueError):
        return None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 62):
        return None
    return _days(y, mo, d) * 24 + h, mi * 60 + s


def hour_text(h, k=0):
    """ "YYYY-MM-DDTHH:MM:00" of local hour number h, its quarter k (0-3) for the minutes."""
    y, m, d = _civil(h // 24)
    return "%04d-%02d-%02dT%02d:%02d:00" % (y, m, d, h % 24, 15 * k)


def kwh(wh):
    """Exact decimal text of wh Wh in kWh: 3412 -> "3.412", 3400 -> "3.4", 0 -> "0"."""
    sign = "-" if wh < 0 else ""
    wh = -wh if wh < 0 else wh
    frac = "%03d" % (wh % 1000)
    frac = frac.rstrip("0")
    return sign + str(wh // 1000) + ("." + frac if frac else "")


def _wh(v):
    """Wh of a kWh register (an int or (mantissa, exponent)), rounded half up, or None."""
    if type(v) is int:
        return v * 1000
    if type(v) is tuple:
        m, e = v
        e += 3
        if e >= 0:
            return m * 10**e
        p = 10**-e
        return (m + p // 2) // p
    return None


def _w(v):
    """Whole W of a power value, or None."""
    if type(v) is int:
        return v
    if type(v) is tuple:
        m, e = v
        return m * 10**e if e >= 0 else m // 10**-e
    return None


class Accounting:
    """Hours, days and months of one meter. on_hour(hour, import_wh, export_wh, estimated)
    is called as each hour closes, on_month(summary) as a month ends (see month()), and
    with quarter hours on_quarter(local hour, quarter 0-3, import_wh, estimated) for each of
    its quarters (hour_text(hour, quarter) its start). month(), quarters() and the split of a
    lost register's hours are in settlement.py, loaded when they come."""

    # Its attributes and methods take names the image or the dongle's other modules hold
    # already where one fits (b, pending, now, fold, p, add, real, ...), as tariff.py's do:
    # every new name is a few bytes of heap for good, and the pools they go in double as
    # they fill (docs/performance.md, "The names a board holds in flash").

    def __init__(self, tariff=None, state=None, on_hour=None, on_month=None, on_quarter=None):
        tariff = tariff or {}
        self.steps = []
        for x in tariff.get("steps_kw", _STEPS_KW):
            self.steps.append(int(x * 1000 + 0.5))
        self.prices = tariff.get("prices")
        self.offset = tariff.get("utc_offset_h", 1)  # CET: Norway, Sweden, Denmark
        self.summer = tariff.get("summer_time", True)
        self.windows = tariff.get("windows")  # None: every hour counts towards the peaks
        self.quarters = tariff.get("period_min") == 15  # peaks of quarters, not hours
        self.on_quarter = on_quarter
        self.on_hour = on_hour
        self.on_month = on_month
        st = state or {}
        self.b = st.get("b")  # [real hour, import Wh, export Wh, local hour] of the last boundary
        self.pending = st.get("e", [])  # [[real hour, import Ws, export Ws], ...] since b,
        # with quarters four more: each quarter's import Ws, None while no power was seen
        self.month = st.get("m", "")  # "YYYY-MM" of the hours in days
        # Day d's largest hour at [d - 1]: [local hour, Wh], with quarters [local hour, Wh,
        # quarter 0-3] (its largest quarter); 0 while none counts. A list where a dict of
        # "DD" took ~0.8 KB more at each load (tariff.py), in pieces of 32 B or less.
        d = st.get("d") or [0] * _DAYS
        if type(d) is dict:  # a state saved by a dongle before the list: "DD" -> the day's
            d, days = [0] * _DAYS, d
            for k in days:
                d[int(k) - 1] = days[k]
        if len(d) != _DAYS:
            raise ValueError("days")
        self.days = d
        self._totals = st.get("t", [0, 0, "", 0])  # month import, export Wh; day text, its import
        self.history = st.get("y", [])  # the last months: summaries, oldest first
        self.now = None  # seconds (real) of the last reading with a time
        self._local = None  # local hour of that reading
        self.fold = None  # the repeated local hour, while in its second pass
        self.p = [0, 0]  # the last power, import and export W
        self.last = None  # (hour text, import Wh, export Wh, estimated) of the last hour closed
        self.dropped = (
            0  # hours not split: a stretch longer than _SPLIT_MAX, or a register that fell
        )

    def state(self):
        """What to save to survive a reboot (JSON-able)."""
        return {
            "b": self.b,
            "e": self.pending,
            "m": self.month,
            "d": self.days,
            "t": self._totals,
            "y": self.history,
        }

    # -- time -----------------------------------------------------------------------------

    def _switch(self, h):
        """(first summer hour, repeated hour) of local hour h's year, as local hours."""
        y = _civil(h // 24)[0]
        at = 1 + self.offset  # 01:00 UTC in standard local time
        return _last_sunday(y, 3) * 24 + at, _last_sunday(y, 10) * 24 + at

    def real(self, h, fold=False):
        """Hour number in standard time of local hour h (the second pass of the repeated
        hour when fold)."""
        if not self.summer:
            return h
        start, end = self._switch(h)
        return h - 1 if start < h < end or (h == end and not fold) or h == start else h

    # -- feeding --------------------------------------------------------------------------

    def offer(self, reading):
        """Take one reading; True when an hour closed (the state is worth saving)."""
        closed = False
        t = reading.get("meter_time")
        pt = parse_time(t) if t else None
        if pt:
            h, sec = pt
            if self.fold is not None and h != self.fold:
                self.fold = None
            r = self.real(h, self.fold is not None)
            imp = _wh(reading.get("active_energy_import"))
            if self.real(h, True) != r and self.now is not None:
                # The repeated hour of October, its second pass: the clock went back, or
                # its boundary comes again an hour after the first (List 3 alone).
                again = imp is not None and sec < _SNAP_S and self.b and self.b[0] == r
                if again or r * 3600 + sec < self.now:
                    self.fold = h
                    r += 1
            now = r * 3600 + sec
            # The power until this reading first: the hour a register closes has all of it.
            self._integrate(now, r)
            if imp is not None:
                closed = self.register(r, h, sec, imp, _wh(reading.get("active_energy_export")))
            self._local = h
        p = _w(reading.get("active_power_import"))
        if p is not None:
            self.p[0] = p
            q = _w(reading.get("active_power_export"))
            self.p[1] = q if q is not None else 0
        return closed

    def _integrate(self, now, r):
        t = self.now
        self.now = now
        if t is None or not 0 < now - t <= _GAP_S:
            return
        # The part of the interval before this hour (quarter) began goes to the last one.
        start = now - now % (900 if self.quarters else 3600)
        if t < start:
            self.add(t // 3600, start - t, t % 3600 // 900)
            t = start
        self.add(r, now - t, t % 3600 // 900)

    def add(self, r, dt, k=-1):
        """dt seconds of the last power to real hour r, and to its quarter k (0-3) with
        quarters (-1: the entry alone)."""
        for e in self.pending:
            if e[0] == r:
                break
        else:
            if len(self.pending) >= _PENDING_MAX:
                del self.pending[0]
            e = [r, 0, 0] + [None] * (4 if self.quarters else 0)
            self.pending.append(e)
        e[1] += self.p[0] * dt
        e[2] += self.p[1] * dt
        if k >= 0 and dt and len(e) > 3:  # a quarter is seen when time of it was
            e[3 + k] = (e[3 + k] or 0) + self.p[0] * dt

    def register(self, r, h, sec, imp, exp):
        if exp is None:
            exp = 0
        b = self.b
        if sec >= _SNAP_S:  # mid-hour (P1): not a boundary
            return False
        if b is None:
            self.restart(r, h, imp, exp)
            return False
        gap = r - b[0]
        if gap <= 0:
            return False  # the same boundary again (a List 3 sent twice), or older
        di, de = imp - b[1], exp - b[2]
        if di < 0 or de < 0 or gap > _SPLIT_MAX:
            # A register that fell (a new meter) or an outage of months: no hour can be
            # told from these two numbers. Start again from this one.
            self.dropped += 1
            self.restart(r, h, imp, exp)
            return False
        if gap == 1:
            self._close(b[0], b[3], di, de, False)
        else:
            import settlement  # a lost register: seldom (settlement.py)

            settlement.split(self, b[0], gap, di, de)
        self.restart(r, h, imp, exp)
        return True

    def restart(self, r, h, imp, exp):
        self.b = [r, imp, exp, h]
        est = self.pending
        for e in list(est):
            if e[0] < r:
                est.remove(e)

    def _close(self, r, h, imp, exp, estimated):
        text = hour_text(h)
        month = text[:7]
        if month != self.month:
            if self.month:
                import settlement  # once a month (settlement.py)

                settlement.end_month(self)
            self.month = month
            self.days = [0] * _DAYS
            self._totals = [0, 0, "", 0]
        t = self._totals
        t[0] += imp
        t[1] += exp
        if t[2] != text[:10]:
            t[2], t[3] = text[:10], 0
        t[3] += imp
        d = self.days
        i = int(text[8:10]) - 1
        if not self.quarters:
            if (not d[i] or imp > d[i][1]) and self.counts(h):
                d[i] = [h, imp]
        else:
            import settlement  # quarter hours ("period_min": 15, settlement.py)

            settlement.close_quarters(self, r, h, imp, estimated, i)
        self.last = (text, imp, exp, estimated)
        if self.on_hour:
            self.on_hour(text, imp, exp, estimated)

    def counts(self, h):
        """Does local hour h count towards the peaks (inside a window, or no windows)?"""
        if not self.windows:
            return True
        z = h // 24
        m = _civil(z)[1]
        for w in self.windows:
            hours = w.get("hours", (0, 24))
            if (m in w.get("months", range(1, 13)) and hours[0] <= h % 24 < hours[1]
                    and (w.get("days") != "weekdays" or (z + 3) % 7 < 5)):  # fmt: skip
                return True  # (z + 3) % 7: 0 on a Monday (1970-01-01 was a Thursday)
        return False

    # -- figures --------------------------------------------------------------------------

    def peaks(self):
        """The month's three largest days: [[local hour, Wh], ...], largest first; with
        quarters [[local hour, Wh, quarter], ...] (hour_text(p[0], p[2]) its start)."""
        top = []  # largest first; of equal days, the earlier
        for p in self.days:
            if p:
                k = len(top)
                while k and top[k - 1][1] < p[1]:
                    k -= 1
                if k < 3:
                    top.insert(k, p)
                    if len(top) > 3:
                        top.pop()
        return top

    def capacity_w(self, peaks=None):
        """Mean of the month's peaks in Wh per hour (= W), rounded half up; 0 with none.
        Quarters: the mean of their Wh x 4 (Wh in 15 minutes x 4 = their mean W)."""
        peaks = self.peaks() if peaks is None else peaks
        if not peaks:
            return 0
        n = len(peaks)
        wh = 0
        for p in peaks:
            wh += p[1]
        return (wh * (8 if self.quarters else 2) + n) // (2 * n)

    def step(self, w):
        """(lower, upper) W of the ladder's interval holding w W; upper None at the top."""
        steps = self.steps
        for i in range(len(steps) - 1, -1, -1):
            if w >= steps[i]:
                return steps[i], steps[i + 1] if i + 1 < len(steps) else None
        return 0, steps[0] if steps else None

    def finish(self):
        """End of the input (hanctl account): report the month so far."""
        if self.month and self.on_month:
            import settlement

            self.on_month(settlement.month(self))

    def allowed_wh(self, so_far=0):
        """Wh this hour (with quarters: this quarter; so_far is its own) may still import
        before the month's capacity reaches the next step (0 when it has, None at the
        ladder's top)."""
        upper = self.step(self.capacity_w())[1]
        if upper is None or self._local is not None and not self.counts(self._local):
            return None  # the top step, or an hour outside the windows: no limit
        text = hour_text(self._local) if self._local is not None else ""
        d = self.days if text[:7] == self.month else ()  # a new month starts empty
        today = int(text[8:10]) - 1 if text else -1
        mine = None
        others = []
        for i, p in enumerate(d):
            if p:
                if i == today:
                    mine = p[1]
                else:
                    others.append(p[1])
        others.sort(reverse=True)
        others = others[:2]
        k = len(others) + 1
        # The largest hour (quarter: its Wh x 4 count) that keeps the mean below the step.
        limit = (k * upper + 3) // 4 if self.quarters else k * upper
        limit -= sum(others) + 1
        if mine is not None and mine > limit:
            return 0
        return max(0, limit - so_far)
