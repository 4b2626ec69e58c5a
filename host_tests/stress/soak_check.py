"""What a soak run (stress/soak.py) must show, checked over its Recording: pure, no I/O,
so host_tests/test_soak.py can also show that each check fails on a run that lost a
message or grew its heap.

- every List 3 sent while the dongle ran reaches both destinations' energy topic with the
  very registers sent, once or as QoS 1 duplicates with the same meter_time, oldest first;
- every live reading sent while a destination was connected arrives with the very values
  sent, or the dongle counted it as dropped (and those stay within PACE);
- the heap in use in the last hours is within heap_bound() of the first hours, over the run
  and within each boot;
- no MemoryError, no task ended, no frame rejected, in the logs and the stats.
"""

import bisect
import collections
import datetime as dt
import json
import statistics
from decimal import Decimal

START = dt.datetime(2024, 3, 5, 0, 0, 0)  # the meter's clock at the first push's grid
ENERGY = ("active_energy_import", "active_energy_export")
ENERGY += ("reactive_energy_import", "reactive_energy_export")
# Wall seconds around the ends of a connected (or running) period in which a frame's fate
# is not decided: it may be on its way when the broker or the dongle goes. Generous, as
# other jobs share this machine's two cores.
MARGIN = 1.0
# How far the heap in use (after a collect) may rise from the first hours to the last, in
# heap blocks (16 bytes on a 32-bit build, 32 on the 64-bit unix port: 2 or 4 KB), on each
# window's floor (min) and median. Not on its max: one stats in a few hundred is taken
# while a session is being made or a QoS 1 message awaits its PUBACK, up to 2.3 KB above
# the rest (measured). Measured over 4 hours with outages: +76 blocks on the frozen-unix
# image, +69 on the stock port, both within the first outage, flat after; over 24 hours
# (36,000 frames between the windows) +8 blocks.
HEAP_BOUND_BLOCKS = 128
# The stats taken during a broker outage and for this many wall seconds after it are left
# out of the heap windows: reconnect attempts, their errors and the queued energy's flush
# raise the heap for a while. With an outage inside the last window, the stock port's median
# there once came out 133 blocks above the first window (under four test workers' load).
# What an outage leaves behind is still compared: the windows' steady state after it.
HEAP_SETTLE = 5.0


def heap_bound(rec):
    """HEAP_BOUND_BLOCKS in bytes for the interpreter the run had."""
    return HEAP_BOUND_BLOCKS * getattr(rec, "heap_block", 16)


# Wall seconds after a (re)connection in which live readings may be dropped by design:
# the session first publishes its status and the queued energy with QoS 1, one PUBACK
# round trip each, and the one-slot live buffer keeps only the newest reading meanwhile.
# At the meter's own pace (a frame every 2 s) none is dropped; at speed 120, 4 or 5.
SESSION_START = 0.5
# The share of the live readings sent while connected, after a session's start, that may
# be missing: the dongle drops (and counts) a reading when the next comes before it went
# out. That happens when the host does not schedule the interpreter for a few frames'
# time (16 ms at speed 120) and the link then reads several frames at once; one in a
# hundred is far above what a quiet host shows and far below a dongle that cannot keep up.
PACE = 0.01


def summarise(rec):
    """The summary of a run (a dict, JSON-ready); "failures" lists each property broken."""
    sent = rec.sent
    by_time = {_stamp(s[1]): s for s in sent}
    boots = [(r[0], killed) for r, killed in rec.boots if r]
    failures = []
    out = {
        "ok": None,
        "failures": failures,
        "interpreter": rec.interpreter,
        "frozen": rec.frozen,
        "heap_size": rec.heap,
        "speed": rec.speed,
        "line": rec.line,
        "wall_s": round(rec.wall, 1),
        "simulated_hours": round((sent[-1][1] - START).total_seconds() / 3600, 3),
        "frames_sent": {f"list{n}": sum(1 for s in sent if s[2] == n) for n in (1, 2, 3)},
        "frames_skipped": rec.skipped,
        "bytes_sent": sum(s[4] for s in sent),
        "outages": _outages(rec.record),
        "reboots": [
            {"at": _hhmm(r[1]), "queued_on_flash": r[4]} for r in rec.record if r[2] == "kill"
        ],  # fmt: skip
    }
    if len(boots) != 1 + len(out["reboots"]):
        failures.append(f"{len(boots)} boots ran for {len(out['reboots'])} power cuts")

    def boot_of(t, margin=0.0):
        """The boot that ran at wall time t (margin seconds before its power cut)."""
        for k, (a, b) in enumerate(boots):
            if a <= t <= (b or rec.ended) - margin:
                return k
        return None

    out["destinations"] = {}
    all_stats = []
    for name, messages in rec.messages.items():
        d = out["destinations"][name] = {}
        d["readings"] = _readings(
            name,
            messages,
            sent,
            by_time,
            rec.connected[name],
            rec.subscriber_links[name],
            failures,
        )
        d["energy"] = _energy(name, messages, sent, boot_of, failures)
        stats = [(m[0], json.loads(m[2])) for m in messages if m[1].endswith("/stats")]
        all_stats += stats
        d["stats_received"] = len(stats)
        d["dropped_within_sessions"] = _dropped_within_sessions(stats)
        d["last_stats"] = stats[-1][1]["destination"] if stats else None
        d["subscriber_sessions_lost"] = rec.sessions_lost[name]
        for _, s in stats:
            if sum(s["rejected"].values()) or s["noise_bytes"]:
                failures.append(f"{name}: stats say rejected {s['rejected']}")
                break
        if name == "full":
            stops = [r[0] for r in rec.record if r[2:4] == ("stop", name)]
            d["uncounted"] = _uncounted(messages, by_time, boot_of, stops, failures)
    out["heap"] = _heap(sorted(all_stats, key=lambda x: x[0]), rec, boot_of, failures)
    bad = ("MemoryError", "memory", "ended", "atchdog", "Traceback", "decoder:")
    problems = [x for x in rec.output if any(b in x for b in bad)]
    out["log_problems"] = problems[:20]
    if problems:
        failures.append(f"{len(problems)} log lines tell of trouble: {problems[:3]}")
    out["ok"] = not failures
    return out


def _stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _hhmm(hours):
    m = round(hours * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def _view(name, s):
    """What destination `name` must receive of sent frame s: simulate's reading, plus the
    maker the decoder names from the frame; share hourly: the energy registers and time."""
    if name == "hourly":
        return {k: s[3][k] for k in ENERGY + ("meter_time",)}
    return dict(s[3], meter_manufacturer="Kaifa")


def _outages(record):
    out, down = [], {}
    for wall, hours, action, target, _ in record:
        if action == "stop":
            down[target] = (wall, hours)
        elif action == "start":
            w, h = down.pop(target)
            out.append({"broker": target, "from": _hhmm(h), "to": _hhmm(hours),
                        "wall_s": round(wall - w, 1)})  # fmt: skip
    return out


def _readings(name, messages, sent, by_time, connected, listening, failures):
    """Live readings: each the very values of a frame sent; every frame sent while the
    destination was connected (MARGIN before its end aside) arrived, or is counted here: at
    a session's start (its first SESSION_START s: status and queued energy go first, with
    QoS 1, and the one-slot buffer keeps only the latest reading meanwhile) or later (the
    dongle fell behind the line: PACE bounds those)."""
    live = sent if name == "full" else [s for s in sent if s[2] == 3]
    expect, early = set(), set()
    for s in live:
        for a, b in connected:
            if a <= s[0] <= b - MARGIN:
                (early if s[0] < a + SESSION_START else expect).add(_stamp(s[1]))
    got, wrong, latency = set(), [], []
    for at, topic, payload, _ in messages:
        if not topic.endswith("/reading"):
            continue
        r = json.loads(payload, parse_float=Decimal)
        s = by_time.get(r.get("meter_time"))
        if s is None or r != _view(name, s) or r["meter_time"] in got:
            wrong.append(payload.decode())
            continue
        got.add(r["meter_time"])
        if _within(s[0], listening):  # else it waited at the broker for the subscriber
            latency.append(at - s[0])
    missing = sorted(expect - got)
    out = {
        "received": len(got),
        "expected_while_connected": len(expect) + len(early),
        "missing_at_session_start": len(early - got),
        "missing_later": len(missing),
        "wrong": len(wrong),
    }
    if latency:
        latency.sort()
        out["latency_ms"] = {
            "p50": round(1000 * latency[len(latency) // 2], 1),
            "p99": round(1000 * latency[int(len(latency) * 0.99)], 1),
            "max": round(1000 * latency[-1], 1),
        }
    if wrong or len(missing) > len(expect) * PACE:
        failures.append(
            f"{name}: readings missing {len(missing)} of {len(expect)} {missing[:3]}, "
            f"wrong {wrong[:2]}"
        )
    return out


def _within(t, links):
    """Was the subscriber connected at t? links: its (time, connected) changes."""
    up = False
    for when, state in links:
        if when > t:
            break
        up = state
    return up


def _uncounted(messages, by_time, boot_of, stops, failures):
    """Readings the dongle lost without counting them, per boot: at each stats of the full
    destination, its decoded readings less its `dropped` less the readings received before
    that stats (of the same boot; the broker keeps a client's order). A reading waiting in
    the one-slot buffer as the stats are made adds one for that moment; a loss no counter
    shows stays, so each boot's figure is the median of its last three stats."""
    received = collections.Counter()
    diffs = [[]]
    last_up = -1
    for _, topic, payload, _ in messages:
        if topic.endswith("/reading"):
            s = by_time.get(json.loads(payload).get("meter_time"))
            if s is not None:
                received[boot_of(s[0])] += 1
        elif topic.endswith("/stats"):
            st = json.loads(payload)
            if st["uptime_s"] < last_up:
                diffs.append([])
            last_up = st["uptime_s"]
            boot = len(diffs) - 1
            diffs[-1].append(st["readings"] - st["destination"]["dropped"] - received[boot])
    lost = [int(statistics.median(d[-3:])) if d else 0 for d in diffs]
    # A QoS 0 reading the dongle wrote as the broker was stopped can be lost with it, and
    # at most once (MQTT 3.1.1 section 4.3.1) the dongle cannot know: one per stop at most.
    stops_by_boot = collections.Counter(boot_of(t) for t in stops)
    if any(n < 0 or n > stops_by_boot[k] for k, n in enumerate(lost)):
        failures.append(
            f"full: readings neither received nor counted as dropped, by boot: {lost} "
            f"(broker stops by boot: {[stops_by_boot[k] for k in range(len(lost))]})"
        )
    return lost


def _energy(name, messages, sent, boot_of, failures):
    """Every List 3 sent while the dongle ran (MARGIN before a power cut aside): on the
    energy topic with the very registers, once or as QoS 1 duplicates of the same message,
    oldest first."""
    hourly = [s for s in sent if s[2] == 3]
    expect = {_stamp(s[1]): s for s in hourly if boot_of(s[0], MARGIN) is not None}
    unsure = {_stamp(s[1]) for s in hourly if boot_of(s[0]) is not None} - set(expect)
    got, replays, order = {}, 0, []
    for _, topic, payload, retained in messages:
        if not topic.endswith("/energy"):
            continue
        if retained:  # the broker's copy for a new subscription, not a publish
            replays += 1
            continue
        m = json.loads(payload, parse_float=Decimal)
        t = m.get("meter_time")
        got.setdefault(t, []).append(m)
        if t not in order:
            order.append(t)
    wrong = []
    for t, msgs in got.items():
        s = expect.get(t)
        want = None if s is None else _view("hourly", s)
        if want is not None and name == "full":
            want["meter_id"] = s[3]["meter_id"]
        if (want is None and t not in unsure) or any(m != (want or msgs[0]) for m in msgs):
            wrong.append(t)
    missing = sorted(set(expect) - set(got))
    out = {
        "sent": len(hourly),
        "expected": len(expect),
        "received": len(got),
        "duplicates": sum(len(v) - 1 for v in got.values()),
        "missing": missing,
        "wrong": wrong,
        "in_order": order == sorted(order),
        "retained_replays": replays,
    }
    if missing or wrong or not out["in_order"]:
        failures.append(f"{name}: energy {out}")
    if len(expect) != len(hourly):
        failures.append(f"{name}: {len(hourly) - len(expect)} List 3 came while the dongle was off")
    return out


def _dropped_within_sessions(stats):
    """Live readings a destination dropped while it stayed connected (its one-slot buffer
    overrun): `dropped` grown between two stats of one session."""
    n = 0
    for (_, a), (_, b) in zip(stats, stats[1:], strict=False):
        da, db = a["destination"], b["destination"]
        if db["connects"] == da["connects"] and b["uptime_s"] >= a["uptime_s"]:
            n += max(0, db["dropped"] - da["dropped"])
    return n


def _heap(stats, rec, boot_of, failures):
    """Heap in use (heap size - free_heap after a collect) by simulated hour: the first
    hours against the last, over the run and within each boot."""
    size = _heap_bytes(rec.heap)
    bound = heap_bound(rec)
    walls = [s[0] for s in rec.sent]
    down = _down_walls(rec.record)
    points = []  # (simulated hours, boot, used)
    for t, s in stats:
        if any(lo <= t <= hi for lo, hi in down):
            continue  # an outage's reconnects and queue: not the steady state compared
        i = bisect.bisect_right(walls, t) - 1
        if i >= 0:
            hour = (rec.sent[i][1] - START).total_seconds() / 3600
            points.append((hour, boot_of(t), size - s["free_heap"]))
    if not points:
        failures.append("no stats: no heap measured")
        return {}
    hours = points[-1][0]
    span = max(hours / 8, 0.25)  # 3 of 24 hours

    def window(lo, hi, boot=None):
        taken = [(h, u) for h, b, u in points if lo <= h < hi and (boot is None or b == boot)]
        if not taken:
            return None
        used = [u for _, u in taken]
        return {
            "hours": f"{taken[0][0]:.2f}-{taken[-1][0]:.2f}",
            "samples": len(used),
            "min": min(used),
            "max": max(used),
            "median": int(statistics.median(used)),
        }

    def compare(first, last, what):
        # A leak raises the floor. The median also moves with the host's load: in a CI run
        # on a loaded 2-core host (December 2026) boot 0's last window sat +2,360 B over its
        # first by median, +1,376 B by floor, and the same code passed alone and in the
        # other runs; so the median may move twice the bound, the floor only the bound.
        if first is None or last is None:
            failures.append(f"heap: no samples for {what}")
        elif last["min"] - first["min"] > bound or last["median"] - first["median"] > 2 * bound:
            failures.append(f"heap grew {what}: {first} -> {last}")

    # The first hour aside: the first boot's connections and imports settle in it, and so
    # do the first List 3's: its energy fields are new to every destination, and a share
    # that waited for them (hourly) sends its first discovery round then, whose names stay
    # interned (1.8 KB: docs/performance.md). The windows of each boot start after it.
    # Over the run, the first window also waits for the first broker outage to end: the
    # sessions made again after it leave their buffers in use for good, a step (+76 blocks
    # measured, flat after; +146 in one CI run on a loaded host), not a leak, and a leak
    # still has the rest of the run to show.
    first_list3 = [(w[1] - START).total_seconds() / 3600 for w in rec.sent if w[2] == 3][:1]
    settled = max([hours / 24] + [h + span / 4 for h in first_list3])
    back = [h for _, h, action, _, _ in rec.record if action == "start"][:1]
    after = max([settled] + [h + span / 4 for h in back])
    first, last = window(after, after + span), window(hours - span, hours + 1)
    compare(first, last, "over the run")
    out = {"size": size, "bound": bound, "first": first, "last": last, "per_boot": []}
    for k in sorted({b for _, b, _ in points if b is not None}):
        hs = [h for h, b, _ in points if b == k]
        if hs[-1] - hs[0] < 2 * span:
            continue
        a, b = max(hs[0] + span / 3, settled), hs[-1]
        # From the boot's first sample there: outages (their stats left out above) can
        # cover a fixed window whole. A CI run of the 4-hour soak on the frozen image found
        # boot 1's first window empty: a power cut and three outages left it ~0.04 h.
        a = next((h for h in hs if h >= a), a)
        if b - a < 2 * span:
            continue
        pair = (window(a, a + span, k), window(b - span, b + 1, k))
        out["per_boot"].append({"boot": k, "first": pair[0], "last": pair[1]})
        compare(*pair, f"in boot {k}")
    return out


def _down_walls(record):
    """(from, to) wall seconds of each broker outage, and HEAP_SETTLE after it."""
    out, down = [], {}
    for wall, _, action, target, _ in record:
        if action == "stop":
            down[target] = wall
        elif action == "start":
            out.append((down.pop(target), wall + HEAP_SETTLE))
    return out


def _heap_bytes(heap):
    heap = heap.lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(heap[-1:], 1)
    return int(heap.rstrip("km")) * mult
