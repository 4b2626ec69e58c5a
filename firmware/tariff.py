# The capacity tariff on the dongle: the account (accounting.py, pure) kept from the
# readings, its state on flash, and the <base>/tariff message for each destination whose
# share lets it out (share.py). Loaded only when the config has a "tariff" and some
# destination gets it (dongle.py): a dongle that shares no tariff never loads this or
# accounting.
#
# Heap: accounting's code (~4.4 KB loaded from .mpy; settlement.py's ~1 KB only at a
# month's end, with quarter hours or for a lost register) is in the heap only while it
# works, once an hour at the hour's register (or the first reading past the hour's first
# minute when none came), as discovery is for its rounds, and never beside a round (it
# waits for the round's end: docs/performance.md). Between,
# this module integrates the power per meter hour (what a lost register is split by,
# accounting.py, and this hour so far) and makes the message from the figures accounting
# left at the last load. With quarter hours ("period_min": 15) each meter hour also keeps
# its four quarters' import Ws (4 numbers an hour, at most 48 hours: no readings are
# kept), which accounting reconciles to the hour's register (accounting.py).
#
# Flash: the state is tariff.json, written whole through store.save_json (a power cut
# leaves the old file or the new one) once an hour, when the hour's register closes an
# hour: 24 writes a day of at most ~2.3 KB (48 hours of estimates, a month's 31 day
# maxima), ~4 KB with quarter hours, twice that with its temp file while it is written.
# The last 13 months' summaries are MONTHS, written as a month ends (~1.1 KB). A reboot
# mid-month reloads it: the month's peaks are kept, a new month starts fresh
# (accounting.py). The hours since the last write are rebuilt from the registers.

import gc
import json
import sys

from micropython import const

from reading import put
from store import load_json, save_json
from uptime import ticks_diff  # MicroPython's (ticks wrap at 2**30 ms), or its CPython model

PATH = "tariff.json"
MONTHS = "tariff_months.json"  # the last 13 months' summaries, written as each month ends
_EVERY_MS = const(60000)  # the message between registers: once a minute (this hour so far)
_GAP_S = const(30)  # power is integrated only between readings this close (as accounting's)
_SNAP_S = const(60)  # a register this far into its hour is the hour's (as accounting's)
_HOURS_MAX = const(48)  # hours of power kept while no register comes (accounting's bound)
_RETRY = const(10)  # readings between two tries to load accounting for a waiting register
_WAIT = const(6)  # registers kept while loads find no memory (a minute of retries each)
_REGISTER = const(("meter_time", "active_energy_import", "active_energy_export"))
# tariff.json's writes: a bucket of 24 (a day's), one more each 30 minutes of the dongle's
# own clock. A meter's hours close once an hour; a meter clock that jumps an hour at each
# push would otherwise write the flash at every push. A write left out is counted (unsaved)
# and the next one saves all; a power cut between costs the hours since, split by the rule
# of a lost register (accounting.py).
_WRITE_MS = const(1800000)
_WRITES_MS = const(43200000)  # 24 writes' worth


class Account:
    def __init__(self, tariff, destinations, log):
        """tariff: the config's "tariff" (checked); destinations: the dongle's."""
        self.tariff = tariff
        self.destinations = destinations
        self.log = log
        self._sent_ms = None  # ticks of the last message
        self.hours = []  # [[meter hour "YYYY-MM-DDTHH", import Ws, export Ws], ...] not
        # yet given to accounting, the newest last; with quarter hours ("period_min": 15)
        # each has four more, its quarters' import Ws (None: no power seen in it yet)
        self.quarters = 4 if tariff.get("period_min") == 15 else 0
        self.seconds = None  # seconds into the meter hour of the last reading
        self.p = [0, 0]  # the last power, import and export W
        self.time = None  # meter_time of the last reading
        self.run = None  # accounting's own between loads: time, fold, local hour, last hour
        self.fields = None  # what the message takes from accounting (_load)
        # The registers accounting has not had yet (no memory to load it), oldest first: each
        # closes its own hour at the next load, none is lost (at most _WAIT, ~100 B each).
        self.pending = []
        self.failures = 0  # readings since a load failed for want of memory
        self.wanted = False  # a new meter hour's load, put off until past the register's minute
        self.received = None  # the meter hour of the last register accounting had
        # tariff.json's write bucket (ms), its ticks; writes it left out (counted)
        self.credit = [_WRITES_MS, 0, 0]
        self.months_due = True  # summaries in the state that MONTHS has not yet (months())
        # The state between loads as its JSON text (~0.7 KB at a month's end), in one
        # piece where the lists it stands for take more; the months before this one are
        # in MONTHS, not here: only a month's end needs them (months()).
        self.state = json.dumps(load_json(PATH))
        try:
            self._load(())  # a state of another shape fails here, not at a reading
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            log("tariff: state not readable, the account starts afresh:", repr(e))
            self.state = "{}"
            self._load(())
        except MemoryError as e:  # no figures yet: no message until a load succeeds
            log("tariff: no memory for the account, retried:", repr(e))
            self.failures = 1

    def offer(self, reading, now_ms):
        """Take one reading (dongle.py, each one); never raises. A register accounting
        could not be loaded for (no memory: a fragmented heap) is kept and given to it at
        a later reading, every _RETRY readings, logged once."""
        try:
            closed = self.take(reading, now_ms)
        except MemoryError as e:
            if not self.failures:
                self.log("tariff: no memory for the account, retried:", repr(e))
            self.failures += 1
            return
        if (
            self.fields is None
            or not closed
            and (self._sent_ms is not None and ticks_diff(now_ms, self._sent_ms) < _EVERY_MS)
        ):
            return
        self._sent_ms = now_ms
        # share.tariff: 2 at each register and between, 1 at each register only, 0 never.
        # Each destination writes the message when it sends it (send()): the latest
        # figures, into the destinations' buffer in its turn; one is retained and holds
        # the whole month.
        for d in self.destinations:
            if d.share.tariff > (0 if closed else 1):
                d.tariff = self
                d.event.set()

    def take(self, reading, now_ms):
        t = reading.get("meter_time")
        sec = None
        if isinstance(t, str) and len(t) >= 19:
            try:
                sec = int(t[14:16]) * 60 + int(t[17:19])
            except ValueError:  # not the canonical time: its power alone counts here
                sec = None
        load = False
        if sec is not None:
            self.time = t
            hours = self.hours
            if not hours or hours[-1][0] != t[:13]:  # a new meter hour: accounting's turn,
                # at its register, or past the minute that brings it (one load for both)
                if len(hours) >= _HOURS_MAX:
                    del hours[0]
                hours.append([t[:13], 0, 0] + [None] * self.quarters)
                self.seconds = None
                self.wanted = True
            last = self.seconds
            if last is not None and 0 < sec - last <= _GAP_S:  # with the power until now
                e = hours[-1]
                e[1] += self.p[0] * (sec - last)
                e[2] += self.p[1] * (sec - last)
                for k in range(3, len(e)):  # quarter k - 3: its part of the interval
                    dt = min(sec, (k - 2) * 900) - max(last, (k - 3) * 900)
                    if dt > 0:
                        e[k] = (e[k] or 0) + self.p[0] * dt
            self.seconds = sec
            if sec < _SNAP_S and reading.get("active_energy_import") is not None:
                # The register, kept until accounting has it (its own time says its hour).
                # A P1 meter prints it in every telegram of the minute: the first one that
                # accounting had serves. The same meter hour again after the minute is
                # October's repeated hour, a boundary of its own.
                if t[:13] != self.received or last is None or last >= _SNAP_S:
                    w = self.pending
                    # P1: the hour's first. The same hour after its minute, October's
                    # repeated hour, is a register of its own, one waiting or not.
                    if not w or w[-1]["meter_time"][:13] != t[:13] or (last or 0) >= _SNAP_S:
                        if len(w) >= _WAIT:
                            del w[0]  # the oldest gives way: split (accounting.py)
                        w.append({k: reading[k] for k in _REGISTER if k in reading})
                    load = True
            elif self.wanted and sec >= _SNAP_S:  # no register in the hour's first minute
                load = True
        p = reading.get("active_power_import")
        if p is not None:
            self.p[0] = _w(p)
            q = reading.get("active_power_export")
            self.p[1] = 0 if q is None else _w(q)
        if self.failures:  # a load found no memory: tried again every _RETRY readings
            self.failures += 1
            load = self.failures % _RETRY == 0
        if not load:
            return False
        from destination import _announcing

        # A discovery round holds its room (~8 KB at 96K): the load waits until it is over,
        # the registers in pending, and comes at the next register or the first reading
        # past the register's minute. Loaded during the round, one destination with
        # discovery and the tariff found no memory for the account in every run, and the
        # round none for its next config in 1 run of 15 on a busy machine
        # (test_tariff_dongle.py's Home Assistant test); 0 of 20 after. Bounded: with
        # _WAIT registers waiting (rounds back to back for hours: a broker slow to
        # acknowledge, Home Assistant's "online" every 30 s) it loads beside the round.
        if _announcing is not None and len(self.pending) < _WAIT:
            self.wanted = True
            return False
        closed = self._load(self.pending or (reading,), now_ms)
        if self.pending:
            self.received = self.pending[-1]["meter_time"][:13]
        self.pending = []
        self.failures = 0
        self.wanted = False
        if self.months_due:  # a month ended (or a file from before MONTHS): to MONTHS
            self.months()
        return closed

    def _load(self, readings, now_ms=0):
        """Load accounting, give it the power of the hours since and readings (the waiting
        registers, or the reading that made the hour's load due), keep its state and the
        message's figures, and drop it again. True when an hour closed."""
        # Collected first, as for a discovery round: the module's code wants its pieces
        # whole, and the reading and its JSON are garbage by now.
        gc.collect()
        import accounting

        try:
            acc = accounting.Accounting(self.tariff, json.loads(self.state))
            if self.run is not None:
                acc.now, acc.fold, acc._local, acc.last = self.run
            acc.p = [0, 0]  # the power until now is in self.hours already: none twice
            for x in self.hours:
                h = accounting.parse_time(x[0] + ":00:00")
                if h is None or not (x[1] or x[2] or x[3:] != [None] * self.quarters):
                    continue
                r = acc.real(h[0], acc.fold == h[0])
                acc.add(r, 0)  # the hour's entry, made within accounting's bound
                for e in acc.pending:
                    if e[0] == r:
                        e[1] += x[1]
                        e[2] += x[2]
                        for k in range(3, min(len(x), len(e))):  # quarters: those seen
                            if x[k] is not None:
                                e[k] = (e[k] or 0) + x[k]
            closed = False
            for r in readings:
                closed = acc.offer(r) or closed
            state = acc.state()
            fig = _figures(acc, accounting)
            run = (acc.now, acc.fold, acc._local, acc.last)
        finally:
            acc = None
            del accounting
            sys.modules.pop("accounting", None)
            sys.modules.pop("settlement", None)  # its seldom paths, if they came
        # The state's text and its file made with accounting's code gone (~4.4 KB): a
        # 96K dongle with two destinations has ~8 KB free at a load, in pieces.
        gc.collect()
        text = json.dumps(state)
        if closed:
            self._save(state, now_ms)
        # Handed over only now: a MemoryError above leaves all as it was, and the
        # register and these hours go to the next load instead of being lost.
        self.state, self.fields, self.run = text, fig, run
        self.months_due = bool(state["y"])
        self.hours = self.hours[-1:]  # the hour under way goes on here
        for x in self.hours:  # given to accounting: once
            for k in range(1, len(x)):
                x[k] = 0 if k < 3 else None
        return closed

    def _save(self, state, now_ms):
        """Write tariff.json, once an hour at the register; no more often than the bucket
        (_WRITE_MS) lets a meter clock that jumps."""
        c = self.credit
        c[0] = min(_WRITES_MS, c[0] + max(0, ticks_diff(now_ms, c[1])))
        c[1] = now_ms
        if c[0] < _WRITE_MS:
            c[2] += 1
            return
        c[0] -= _WRITE_MS
        try:
            save_json(PATH, state)
        except OSError as e:  # a full flash: the account goes on in RAM
            self.log("tariff: state not saved:", repr(e))

    def months(self):
        """Move the summaries of the months that ended (the state's "y", accounting.py) to
        MONTHS, which keeps the last 13. Only a month's end (and a boot) comes here, out of
        the load: the months before this one are not in the heap at each register. The
        state keeps them until MONTHS has them: a power cut between leaves a month in both,
        and its name puts it in its place again."""
        gc.collect()
        state = json.loads(self.state)
        if state.get("y"):
            import settlement

            try:
                save_json(MONTHS, settlement.months(load_json(MONTHS), state["y"]))
            except OSError as e:  # kept in the state (13 at most) until a write succeeds
                self.log("tariff: months not saved:", repr(e))
                return
            finally:
                sys.modules.pop("settlement", None)
            state["y"] = []
            self.state = json.dumps(state)
        self.months_due = False

    async def send(self, client, d):
        """Publish the message to destination d (destination.py _flush) over its session:
        written into the destinations' buffer (d holds it: acquire()), retained, QoS 1. A
        session that ends first leaves it to d's next one."""
        d.tariff = None
        try:
            n = self.write(d._buf, d.share.tariff)
        except OverflowError:  # a ladder's prices with long decimals: counted, not sent
            d.dropped += 1
            return
        try:
            await client.publish(d.base + "/tariff", memoryview(d._buf)[:n], True, 1, d.release)
        except BaseException:
            if d.tariff is None:
                d.tariff = self
            raise
        d.published += 1

    def write(self, buf, level=2):
        """The <base>/tariff message (README, "The tariff message") as JSON into buf, piece
        by piece (no text of the whole is made); its length. kWh and kW as exact decimals,
        never floats. Raises OverflowError past buf's end. level: the destination's
        share.tariff. At 1 (hourly) the message holds the closed hours only, as the hourly
        energy does: nothing of this hour's power (so far 0, no projection, the time the
        hour's start), whenever it is sent (after an outage, too)."""
        head, now, allowed, today, month_i, month_e, last, held = self.fields
        so_far = mine = 0  # this hour so far; mine: of what `allowed` limits (a quarter)
        hours = self.hours
        left = 3600 - self.seconds if self.seconds is not None else 0
        if level > 1 and hours and now[:13] == hours[-1][0]:
            # Its power since the load, here, and before it, in accounting's estimate.
            e = hours[-1]
            so_far = mine = (e[1] + held[0]) // 3600
            if len(e) > 3:
                k = min(3, (self.seconds or 0) // 900)
                mine = ((e[3 + k] or 0) + (held[2 + k] or 0)) // 3600
        projected = so_far + self.p[0] * left // 3600 if level > 1 else None
        if allowed:
            allowed = max(0, allowed - mine)
        when = self.time if level > 1 else now
        n = put(buf, 0, '{"meter_time":%s,%s' % ('"%s"' % when if when else "null", head))
        return put(buf, n, ',"hour":"%s","hour_kwh":%s,"projected_kwh":%s,"allowed_kwh":%s,'
                   '"today_kwh":%s,"month_kwh":%s,"month_export_kwh":%s,"last_hour":%s}' % (
            now, _kwh(so_far), "null" if projected is None else _kwh(projected), _kwh(allowed),
            _kwh(today + so_far), _kwh(month_i + so_far), _kwh(month_e), last))  # fmt: skip


def _figures(acc, accounting):
    """What the message takes from accounting, made while it is loaded: the month's part
    as JSON text, this hour, the kWh allowed before anything of it is counted, today's and
    the month's closed hours, the last hour as JSON text."""
    kwh, hour_text = accounting.kwh, accounting.hour_text
    t = acc._totals
    now = hour_text(acc._local) if acc._local is not None else ""
    fresh = now[:7] != acc.month  # a month with no hour closed yet: it starts empty
    peaks = [] if fresh else acc.peaks()
    cap = acc.capacity_w(peaks)
    lo, hi = acc.step(cap)
    k = 0  # the step's number on the ladder, 1 for the lowest
    for s in acc.steps:
        k += cap >= s
    prices = acc.prices
    head = ['"month":"%s","step":%d,"step_kw":[%s,%s],"price":%s,"capacity_kw":%s,"peaks":[' % (
        now[:7], k, kwh(lo), "null" if hi is None else kwh(hi),
        prices[k - 1] if prices and 0 < k <= len(prices) else "null", kwh(cap))]  # fmt: skip
    sep = ""
    for p in peaks:  # an hour, or with quarter hours [hour, Wh, quarter]
        head.append('%s{"hour":"%s","kwh":%s}'
                    % (sep, hour_text(p[0], p[2] if len(p) > 2 else 0), kwh(p[1])))  # fmt: skip
        sep = ","
    head.append("]")
    last = acc.last
    if last is not None:
        last = '{"hour":"%s","import_kwh":%s,"export_kwh":%s,"estimated":%s}' % (
            last[0], kwh(last[1]), kwh(last[2]), "true" if last[3] else "false")  # fmt: skip
    today = t[3] if not fresh and t[2] == now[:10] else 0
    # The hour under way's power given to accounting by this load: its Ws, import, export
    # and quarters (a load past the hour's start gave it all since; the message adds it to
    # what comes after). Left out, after a load at hh:01:00 (no register) or one that
    # waited for a discovery round or for memory, the message told the hour, today and the
    # month short of it, and the kWh allowed that much too high, until the hour's end.
    held = [0, 0] + [None] * (4 if acc.quarters else 0)
    for e in acc.pending:
        if acc.now is not None and e[0] == acc.now // 3600:
            held = e[1:]
    return ("".join(head), now, acc.allowed_wh(0), today, 0 if fresh else t[0],
            0 if fresh else t[1], last or "null", held)  # fmt: skip


def _kwh(wh):
    """JSON of wh Wh (>= 0) in kWh with three decimals, exact; null for None."""
    return "null" if wh is None else "%d.%03d" % (wh // 1000, wh % 1000)


def _w(v):
    """Whole W of a power value (an int, or (mantissa, exponent))."""
    if type(v) is tuple:
        m, e = v
        return m * 10**e if e >= 0 else m // 10**-e
    return v if type(v) is int else 0
