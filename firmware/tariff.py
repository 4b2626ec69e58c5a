# The capacity tariff on the dongle: the account (accounting.py, pure) fed every reading,
# its state kept on flash, and the <base>/tariff message for each destination whose share
# lets it out (share.py). Loaded only when the config has a "tariff" and some destination
# gets it (dongle.py): a dongle that shares no tariff never loads this or accounting.
#
# Flash: the state is one JSON file, tariff.json, written whole through store.save_json
# (a power cut leaves the old file or the new one) once an hour, when the hour's register
# closes an hour: 24 writes a day of at most ~4 KB (48 hours of estimates, a month's 31
# day maxima, 13 months of summaries), 8 KB with its temp file while it is written.
# A reboot mid-month reloads it: the month's peaks are kept, a new month starts fresh
# (accounting.py). The hours since the last write are rebuilt from the registers.

from micropython import const

from accounting import Accounting, hour_text, kwh
from reading import put
from store import load_json, save_json
from uptime import ticks_diff  # MicroPython's (ticks wrap at 2**30 ms), or its CPython model

PATH = "tariff.json"
_EVERY_MS = const(60000)  # the message between registers: once a minute (this hour so far)


class Account:
    def __init__(self, tariff, destinations, log):
        """tariff: the config's "tariff" (checked); destinations: the dongle's."""
        self.destinations = destinations
        self.log = log
        self.sent_ms = None  # ticks of the last message
        try:
            self.acc = Accounting(tariff, load_json(PATH))
            self.write(bytearray(1024))  # a state of another shape fails here, not later
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
            log("tariff: state not readable, the account starts afresh:", repr(e))
            self.acc = Accounting(tariff)

    def offer(self, reading, now_ms):
        """Take one reading (dongle.py, each one); never raises: a reading the account
        cannot take (no memory) is logged and the next one goes on."""
        acc = self.acc
        try:
            closed = acc.offer(reading)
            if closed:
                try:
                    save_json(PATH, acc.state())
                except OSError as e:  # a full flash: the account goes on in RAM
                    self.log("tariff: state not saved:", repr(e))
            elif self.sent_ms is not None and ticks_diff(now_ms, self.sent_ms) < _EVERY_MS:
                return
            self.sent_ms = now_ms
        except MemoryError as e:
            self.log("tariff:", repr(e))
            return
        # share.tariff: 2 at each register and between, 1 at each register only, 0 never.
        # Each destination writes the message when it sends it (destination.py): the
        # latest figures, into its own buffer; one is retained and holds the whole month.
        for d in self.destinations:
            if d.share.tariff > (0 if closed else 1):
                d.tariff = self
                d.event.set()

    async def send(self, client, d):
        """Publish the message to destination d (destination.py _flush) over its session:
        written into d's buffer, retained, QoS 1. A session that ends first leaves it to d's
        next one."""
        d.tariff = None
        try:
            n = self.write(d._buf)
        except OverflowError:  # a ladder's prices with long decimals: counted, not sent
            d.dropped += 1
            return
        try:
            await client.publish(d.base + "/tariff", memoryview(d._buf)[:n], retain=True, qos=1)
        except BaseException:
            if d.tariff is None:
                d.tariff = self
            raise
        d.published += 1

    def write(self, buf):
        """The <base>/tariff message (README, "The tariff message") as JSON into buf, piece
        by piece (no text of the whole is made); its length. kWh and kW as exact decimals,
        never floats. Raises OverflowError past buf's end."""
        acc = self.acc
        t = acc._totals
        now = hour_text(acc._local) if acc._local is not None else ""
        fresh = now[:7] != acc._month  # a month with no hour closed yet: it starts empty
        peaks = [] if fresh else acc.peaks()
        cap = acc.capacity_w(peaks)
        lo, hi = acc.step(cap)
        k = 0  # the step's number on the ladder, 1 for the lowest
        for s in acc.steps:
            k += cap >= s
        prices = acc.prices
        so_far, projected, _ = acc.hour_so_far()
        allowed = acc.allowed_wh(so_far)
        today = so_far + (t[3] if not fresh and t[2] == now[:10] else 0)
        when = acc._time
        n = put(buf, 0, '{"meter_time":%s,"month":"%s","step":%d,"step_kw":[%s,%s],"price":%s,'
                '"capacity_kw":%s,"peaks":[' % (
            '"%s"' % when if when else "null", now[:7], k, kwh(lo), _j(hi),
            prices[k - 1] if prices and 0 < k <= len(prices) else "null", kwh(cap)))  # fmt: skip
        sep = ""
        for h, wh in peaks:
            n = put(buf, n, '%s{"hour":"%s","kwh":%s}' % (sep, hour_text(h), kwh(wh)))
            sep = ","
        n = put(buf, n, '],"hour":"%s","hour_kwh":%s,"projected_kwh":%s,"allowed_kwh":%s,'
                '"today_kwh":%s,"month_kwh":%s,"month_export_kwh":%s,"last_hour":' % (
            now, kwh(so_far), kwh(projected), _j(allowed), kwh(today),
            kwh(so_far + (0 if fresh else t[0])), kwh(0 if fresh else t[1])))  # fmt: skip
        last = acc.last
        if last is None:
            return put(buf, n, "null}")
        return put(buf, n, '{"hour":"%s","import_kwh":%s,"export_kwh":%s,"estimated":%s}}' % (
            last[0], kwh(last[1]), kwh(last[2]), "true" if last[3] else "false"))  # fmt: skip


def _j(wh):
    """JSON of wh Wh in kWh, exact; null for None."""
    return "null" if wh is None else kwh(wh)
