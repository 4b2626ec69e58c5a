# The accounting's seldom paths (accounting.py): a month's end (its summary, and the months
# kept on flash, tariff.py), the quarters of an hour with 15-minute settlement
# ("period_min": 15), and a stretch of lost registers split over its hours. Pure, no I/O.
# Imported only when one of them comes: a register that closes one hour of a month, the
# dongle's every hour (tariff.py), loads accounting alone, ~1.4 KB less in the heap at each
# load of a 96K dongle (docs/performance.md, "The capacity tariff").

from micropython import const

_PENDING_MAX = const(48)  # hours kept with their estimates (accounting's bound)
_MONTHS = const(13)  # months kept in the history


def quarters(wh, values):
    """The four quarters' Wh of an hour of wh Wh, given their integrated import values (Ws, or
    None for a quarter with no power reading): in proportion, the remainder to the largest
    quarter (the first of equals), so they sum to wh exactly. Integers only."""
    # Loops, not comprehensions: each of those is a function of its own in the heap.
    seen = n = 0
    for w in values:
        if w is not None:
            seen += w
            n += 1
    fill = seen // n if n else 0  # an unseen quarter: the seen ones' mean
    weights = list(values)
    for k in range(4):
        if weights[k] is None:
            weights[k] = fill
    total = sum(weights)
    if not total:  # no power seen, or none drawn: an even share
        weights, total = [1, 1, 1, 1], 4
    out = [0] * 4
    for k in range(4):
        out[k] = wh * weights[k] // total
    out[weights.index(max(weights))] += wh - sum(out)
    return out


def close_quarters(acc, r, h, imp, estimated, i):
    """The quarters of real hour r (local h) of imp Wh: each against day i's largest, and
    to acc.on_quarter(local hour, quarter 0-3, Wh, estimated)."""
    ws = [None] * 4
    for e in acc.pending:
        if e[0] == r and len(e) > 3:
            ws = e[3:]
    d = acc.days
    for k, wh in enumerate(quarters(imp, ws)):
        if (not d[i] or wh > d[i][1]) and acc.counts(h):
            d[i] = [h, wh, k]
        if acc.on_quarter:
            acc.on_quarter(h, k, wh, estimated or ws[k] is None)


def split(acc, start, count, imp, exp):
    """Close the count hours from real hour start that one register difference (imp, exp Wh)
    spans: in proportion to the power integrated in each (evenly where none was seen),
    the remainders to the last, every one estimated (accounting.py's rule)."""
    weights = [0] * count if count <= _PENDING_MAX else None
    if weights is not None:
        for e in acc.pending:
            if start <= e[0] < start + count:
                weights[e[0] - start] = e[1]
    total = sum(weights) if weights else 0
    done_i = done_e = 0
    for k in range(count):
        if k == count - 1:  # the remainders go to the last hour: the sum stays exact
            i, x = imp - done_i, exp - done_e
        elif total:
            i = imp * weights[k] // total
            x = exp * weights[k] // total
        else:
            i, x = imp // count, exp // count
        done_i += i
        done_e += x
        # Its local hour: the first pass where two local hours are one standard hour.
        r = start + k
        acc._close(r, r + 1 if acc.summer and acc.real(r + 1) == r else r, i, x, True)


def month(acc):
    """The month so far: {"month", "peaks", "capacity_w", "step", import/export Wh}."""
    peaks = acc.peaks()
    cap = acc.capacity_w(peaks)
    return {
        "month": acc.month,
        "peaks": peaks,
        "capacity_w": cap,
        "step": acc.step(cap),
        "import_wh": acc._totals[0],
        "export_wh": acc._totals[1],
    }


def end_month(acc):
    """The month ends: its summary to the history (the last _MONTHS) and acc.on_month."""
    summary = month(acc)
    acc.history.append([summary["month"], summary["peaks"], summary["capacity_w"],
                        summary["import_wh"], summary["export_wh"]])  # fmt: skip
    if len(acc.history) > _MONTHS:
        del acc.history[0]
    if acc.on_month:
        acc.on_month(summary)


def months(history, ended):
    """The last _MONTHS summaries of history (tariff_months.json's list, or anything else a
    broken file gives) with those of ended put in: a month's name that is there already
    (a power cut between the two writes, tariff.py) takes its place again."""
    out = []
    for m in history if type(history) is list else ():
        if type(m) is list and m:
            out.append(m)
    for m in ended:
        for i, x in enumerate(out):
            if x[0] == m[0]:
                out[i] = m
                break
        else:
            out.append(m)
    while len(out) > _MONTHS:
        out.pop(0)
    return out
