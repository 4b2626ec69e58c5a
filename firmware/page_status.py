# The owner's page's views other than the live one (page.py): the page itself from flash,
# the session, the charts, the counters, log out, restart. Loaded for each such request
# and dropped after it (page.py, _rare): between requests the dongle holds none of it.


from micropython import const

from destination import _write_stats
from httpd import JSON, refusal
from reading import put

_NONE = const(-32768)  # page.NONE: a slot with no reading


def day_chart(page, request):
    s = page.slot
    now = s[1] // s[2] if s and s[2] else _NONE  # this slot so far
    return _chart_json(page, request, page.day, s[0] if s else 0, now)


def week_chart(page, request):
    s = page.slot
    return _chart_json(page, request, page.week, s[3] if s else 0, None)


def _chart_json(page, request, ring, slot, now):
    """{"uptime_s", "step", "values"}: the ring's closed slots oldest first, then now
    (unless None), null where no reading came; written into the request's buffer (a
    week of large hours may not fit: a buffer of its own, this once)."""
    if page._session(request) is None:
        return refusal(401, "log in")
    step = 600 if ring is page.day else 3600  # page.py's DAY_STEP, WEEK_STEP (s)
    buf = request.buf
    try:
        n = _ring(buf, ring, slot, step, now, page.dongle.uptime.seconds())
    except OverflowError:
        buf = bytearray(2560)
        n = _ring(buf, ring, slot, step, now, page.dongle.uptime.seconds())
    return 200, JSON, memoryview(buf)[:n]


def status(page, request):
    if page._session(request) is None:
        return refusal(401, "log in")
    d = page.dongle
    stats = d.stats(_Each(d.destinations))
    stats["local_api_on"] = d.local_api is not None
    stats["web"] = page.server.counts
    t = d.tariff
    buf = request.buf  # piece by piece, as a destination's stats (~1 KB for one)
    try:
        n = _write_stats(stats, buf)
    except OverflowError:  # four destinations: a buffer of its own, this once
        buf = bytearray(4096)
        n = _write_stats(stats, buf)
    if t is not None and t.fields is not None:  # the account's figures, as MQTT has them
        more = bytearray(512)
        k = t.write(more)
        return 200, JSON, bytes(buf[: n - 1]) + b', "tariff": ' + bytes(more[:k]) + b"}"
    return 200, JSON, memoryview(buf)[:n]


# Access


class _Each:
    """Stands for the destination whose stats the dongle makes (dongle.stats): the page
    shows each destination's own counters."""

    def __init__(self, destinations):
        self.destinations = destinations

    def counters(self, others):
        return [x.counters() for x in self.destinations]


def session(page, request):
    s = page._session(request)
    if s is None:
        return refusal(401, "log in")
    version = page.dongle.version if page.dongle else ""
    return 200, JSON, '{"csrf": "%s", "setup": %s, "version": "%s"}' % (
        s[1] if s else "", "true" if page.setup else "false", version)  # fmt: skip


def asset(page, request):
    try:  # on flash beside the modules (hanctl install; hanctl run copies it)
        f = open("page.html.gz", "rb")
    except OSError:
        return refusal(404, "page.html.gz is not on the dongle: hanctl install copies it")
    return 200, "text/html; charset=utf-8", f, b"Content-Encoding: gzip\r\n"


def _ring(buf, ring, slot, step, now, uptime):
    """Write the chart's JSON into buf; its length."""
    n = put(buf, 0, '{"uptime_s": %d, "step": %d, "values": [' % (uptime, step))
    size = len(ring)
    sep = ""
    for i in range(slot + 1, slot + size):
        v = ring[i % size]
        n = put(buf, n, sep + ("null" if v == _NONE else "%d" % v))
        sep = ","
    if now is not None:
        n = put(buf, n, ",null" if now == _NONE else ",%d" % now)
    return put(buf, n, "]}")
