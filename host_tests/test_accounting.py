"""The accounting module (firmware/accounting.py) against independent calculations: hours
from register differences, the month's peaks on different days, DST days, reboots, a lost
List 3; and `hanctl account` on a capture made by the encoder."""

import datetime as dt
import json
import math
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from hanctl import encoder as enc
from hanctl import runtime
from mp import run_driver

runtime.use_firmware_in_cpython()
import accounting  # noqa: E402  (firmware/, on the path only now)
import settlement  # noqa: E402

UTC = dt.UTC


def _oslo(t_utc):
    """Europe/Oslo local time of an aware UTC datetime, by the EU rule (as the meter shows)."""
    y = t_utc.year
    start = _last_sunday(y, 3).replace(hour=1, tzinfo=UTC)
    end = _last_sunday(y, 10).replace(hour=1, tzinfo=UTC)
    offset = 2 if start <= t_utc < end else 1
    return (t_utc + dt.timedelta(hours=offset)).replace(tzinfo=None)


def _last_sunday(y, m):
    d = dt.datetime(y, m, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def _text(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _kwh(wh):
    return (wh, -3)


def _run(readings, tariff=None, state=None):
    hours, months = [], []
    acc = accounting.Accounting(
        tariff, state, lambda *h: hours.append(h), lambda m: months.append(m)
    )
    for r in readings:
        acc.offer(r)
    return acc, hours, months


def _month_of_registers(start_utc, hours, rng, every_s=None):
    """Readings of `hours` hours from start_utc: a List 3 on each hour (registers in Wh, a
    random load) and, every every_s seconds, a List 2 with the power; returns (readings,
    {utc hour start: (import Wh, export Wh)}) -- the second is the independent answer."""
    readings, truth = [], {}
    imp, exp = 5_000_000, 10_000
    for k in range(hours):
        t0 = start_utc + dt.timedelta(hours=k)
        readings.append(
            {
                "meter_time": _text(_oslo(t0)),
                "active_energy_import": _kwh(imp),
                "active_energy_export": _kwh(exp),
            }  # fmt: skip
        )
        w = rng.randrange(200, 9000)  # this hour's mean power, W
        x = rng.choice((0, 0, 0, 300))
        if every_s:
            for s in range(every_s, 3600, every_s):
                t = t0 + dt.timedelta(seconds=s)
                readings.append({"meter_time": _text(_oslo(t)), "active_power_import": w,
                                 "active_power_export": x})  # fmt: skip
        truth[t0] = (w, x)
        imp += w
        exp += x
    t = start_utc + dt.timedelta(hours=hours)
    readings.append({"meter_time": _text(_oslo(t)), "active_energy_import": _kwh(imp),
                     "active_energy_export": _kwh(exp)})  # fmt: skip
    return readings, truth


def _expected_month(truth, month, counts=lambda local: True):
    """Top 3 days by their largest hour, the capacity (mean, Wh per hour = W), by hand;
    counts(local start): does the hour count (Sweden's windows)."""
    best = {}
    for t0, (w, _) in truth.items():
        local = _oslo(t0)
        if local.strftime("%Y-%m") != month or not counts(local):
            continue
        day = local.date()
        if day not in best or w > best[day][1]:
            best[day] = (local, w)
    top = sorted(best.values(), key=lambda p: -p[1])[:3]
    return top, round(sum(w for _, w in top) / len(top))


def test_a_month_at_speed_hours_peaks_and_step():
    rng = random.Random(1)
    start = dt.datetime(2026, 1, 1, 0, tzinfo=UTC) - dt.timedelta(hours=1)  # 00:00 in Oslo
    readings, truth = _month_of_registers(start, 31 * 24, rng)
    acc, hours, months = _run(readings)
    assert len(hours) == 31 * 24
    for (hour, imp, exp, estimated), t0 in zip(hours, sorted(truth), strict=True):
        assert hour == _text(_oslo(t0))
        assert (imp, exp) == truth[t0]
        assert not estimated
    acc.finish()
    (m,) = months
    top, cap = _expected_month(truth, "2026-01")
    assert [(accounting.hour_text(h), wh) for h, wh in m["peaks"]] == [
        (_text(t), w) for t, w in top
    ]
    assert m["capacity_w"] == cap
    lo, hi = m["step"]
    steps = accounting.Accounting().steps  # the default ladder, W
    assert lo <= cap < hi and [lo, hi] in [[a, b] for a, b in zip(steps, steps[1:], strict=False)]


def test_swedish_windows_count_only_their_hours_towards_the_peaks():
    """Winter weekdays 07-19 (an operator's high-load window) and, on Saturdays in
    January only, 10-12: the peaks are those hours' alone, energy counts every hour."""
    rng = random.Random(5)
    start = dt.datetime(2026, 1, 1, 0, tzinfo=UTC) - dt.timedelta(hours=1)
    readings, truth = _month_of_registers(start, 31 * 24, rng)
    windows = [{"months": [11, 12, 1, 2, 3], "days": "weekdays", "hours": [7, 19]},
               {"months": [1], "hours": [10, 12]}]  # fmt: skip
    acc, hours, months = _run(readings, {"windows": windows})
    acc.finish()
    (m,) = months

    def counts(local):
        weekday = local.weekday() < 5 and 7 <= local.hour < 19
        return weekday or 10 <= local.hour < 12

    top, cap = _expected_month(truth, "2026-01", counts)
    assert [(accounting.hour_text(h), wh) for h, wh in m["peaks"]] == [
        (_text(t), w) for t, w in top
    ]
    assert m["capacity_w"] == cap
    assert m["import_wh"] == sum(w for w, _ in truth.values())  # every hour's energy
    everything, _ = _expected_month(truth, "2026-01")
    assert top != everything  # the windows made a difference
    # Outside every window this hour cannot raise the peaks: no limit.
    acc.offer({"meter_time": "2026-02-01T03:10:00", "active_power_import": 500})
    assert acc.allowed_wh() is None


def test_a_new_month_starts_fresh_and_the_last_one_is_reported():
    rng = random.Random(2)
    start = dt.datetime(2026, 1, 31, 12, tzinfo=UTC)
    readings, truth = _month_of_registers(start, 30, rng)
    acc, hours, months = _run(readings)
    assert [m["month"] for m in months] == ["2026-01"]
    assert months[0]["peaks"] == [
        [accounting.parse_time(_text(t))[0], w] for t, w in _expected_month(truth, "2026-01")[0]
    ]
    assert settlement.month(acc)["month"] == "2026-02"
    assert acc.history[-1][0] == "2026-01"


DST_DAYS = pytest.mark.parametrize(
    "day, hours_that_day",
    [(dt.datetime(2026, 3, 29), 23), (dt.datetime(2026, 10, 25), 25)],
    ids=["spring", "autumn"],
)


@DST_DAYS
def test_summer_time_days_have_their_hours(day, hours_that_day):
    rng = random.Random(3)
    start = day.replace(tzinfo=UTC) - dt.timedelta(hours=3)  # the evening before, UTC
    readings, truth = _month_of_registers(start, 30, rng)
    _, hours, _ = _run(readings)
    assert len(hours) == 30  # every real hour once, none merged, none invented
    assert [(h[1], h[2]) for h in hours] == [truth[t] for t in sorted(truth)]
    assert [h[0] for h in hours] == [_text(_oslo(t)) for t in sorted(truth)]
    that_day = [h for h in hours if h[0][:10] == day.strftime("%Y-%m-%d")]
    assert len(that_day) == hours_that_day


@pytest.mark.parametrize("cut", [17, 17 * 120 + 50, 400 * 120 + 30])  # mid-hour, mid-month
def test_a_reboot_keeps_the_month(cut):
    rng = random.Random(4)
    start = dt.datetime(2026, 4, 30, 22, tzinfo=UTC)
    readings, _ = _month_of_registers(start, 24 * 20, rng, every_s=30)
    whole, hours, months = _run(readings)
    acc, hours1, months1 = _run(readings[:cut])
    saved = json.loads(json.dumps(acc.state()))  # through JSON, as on flash
    acc2, hours2, months2 = _run(readings[cut:], state=saved)
    assert hours1 + hours2 == hours
    assert months1 + months2 == months
    acc2.finish()
    assert settlement.month(acc2)["peaks"] == settlement.month(whole)["peaks"]


def test_a_lost_list3_is_split_by_the_power_seen_not_merged():
    rng = random.Random(5)
    start = dt.datetime(2026, 2, 10, 5, tzinfo=UTC)
    readings, truth = _month_of_registers(start, 6, rng, every_s=10)
    lost = _text(_oslo(start + dt.timedelta(hours=3)))
    kept = [r for r in readings if not (r["meter_time"] == lost and "active_energy_import" in r)]
    assert len(kept) == len(readings) - 1
    _, hours, _ = _run(kept)
    want = [truth[t] for t in sorted(truth)]
    assert len(hours) == 6
    assert [h[3] for h in hours] == [False, False, True, True, False, False]
    # The two hours around the lost register add up exactly, each near its own energy
    # (the power seen in it, integrated): no hour holds both. The integral lags a reading:
    # each hour's first 10 s count the power before, at most 9 kW x 10 s = 25 Wh off.
    assert hours[2][1] + hours[3][1] == want[2][0] + want[3][0]
    for h, (w, _) in zip(hours[2:4], want[2:4], strict=True):
        assert abs(h[1] - w) <= 9000 * 10 // 3600 + 1
    assert [(h[1], h[2]) for h in hours[:2] + hours[4:]] == want[:2] + want[4:]


def test_a_lost_list3_without_power_readings_splits_evenly():
    rng = random.Random(6)
    start = dt.datetime(2026, 2, 10, 5, tzinfo=UTC)
    readings, truth = _month_of_registers(start, 4, rng)
    del readings[2]  # the register that ends the second hour
    _, hours, _ = _run(readings)
    want = [truth[t] for t in sorted(truth)]
    total = want[1][0] + want[2][0]
    assert [h[1] for h in hours[1:3]] == [total // 2, total - total // 2]
    assert [h[3] for h in hours] == [False, True, True, False]


def test_a_register_that_falls_restarts_without_a_negative_hour():
    r = [{"meter_time": f"2026-05-01T0{h}:00:00", "active_energy_import": _kwh(e)}
         for h, e in ((0, 1000), (1, 2000), (2, 500), (3, 900))]  # fmt: skip
    acc, hours, _ = _run(r)
    assert [(h[0], h[1]) for h in hours] == [
        ("2026-05-01T00:00:00", 1000),
        ("2026-05-01T02:00:00", 400),
    ]
    assert acc.dropped == 1


def _hour_so_far(acc):
    """(Wh imported this hour so far, projected to its end, seconds left) from accounting's
    integrated power. (The dongle's message makes these in tariff.py, from the power it
    integrates between loads; test_tariff.py checks those.)"""
    if acc.now is None:
        return 0, 0, 0
    r = acc.now // 3600
    left = 3600 - (acc.now - r * 3600)
    so_far = 0
    for e in acc.pending:
        if e[0] == r:
            so_far = e[1] // 3600
    return so_far, so_far + acc.p[0] * left // 3600, left


def test_this_hour_its_projection_and_the_kwh_still_allowed():
    days = [(f"2026-03-0{d}T18:00:00", w) for d, w in ((2, 4000), (3, 4500), (4, 3000))]
    readings = []
    e = 1_000_000
    for text, w in days:
        readings.append({"meter_time": text, "active_energy_import": _kwh(e)})
        e += w
        readings.append({"meter_time": text[:11] + "19:00:00", "active_energy_import": _kwh(e)})
    readings.append({"meter_time": "2026-03-05T10:00:00", "active_energy_import": _kwh(e)})
    for s in range(10, 1810, 10):  # half an hour at 3 kW
        t = f"2026-03-05T10:{s // 60:02d}:{s % 60:02d}"
        readings.append({"meter_time": t, "active_power_import": 3000})
    acc, _, _ = _run(readings)
    assert acc.capacity_w() == round((4000 + 4500 + 3000) / 3)  # 3833 W: step 2-5 kW
    assert acc.step(acc.capacity_w()) == (2000, 5000)
    so_far, projected, left = _hour_so_far(acc)
    assert left == 1800 and abs(so_far - 1500) <= 10  # the first 10 s: no power known yet
    assert abs(projected - 3000) <= 20
    # Today would replace the smallest peak (3000): the mean stays below 5 kW while this
    # hour stays below 3 x 5000 - 4500 - 4000 = 6500 Wh.
    assert acc.allowed_wh(so_far) == 6499 - so_far


def _aidon3(when, energy_wh):
    body = (
        "array",
        [
            ("struct", [("obis", "1.1.0.2.129.255"), ("vstr", "AIDON_V0001")]),
            ("struct", [("obis", "0.0.96.1.0.255"), ("vstr", "7359992890497997")]),
            ("struct", [("obis", "0.0.1.0.0.255"), ("datetime", when)]),
            enc.register("1.0.1.8.0.255", "u32", energy_wh // 10, 1, 30),
            enc.register("1.0.2.8.0.255", "u32", 0, 1, 30),
        ],
    )
    return enc.hdlc(enc.LLC + enc.notification(body))


ENERGIES = [1_000_000 + 10 * k * k for k in range(50)]  # growing hours, exact in 10 Wh
START = dt.datetime(2026, 1, 30, 0)


def _list3_capture(tmp_path):
    """A file of Aidon List 3 frames, one an hour from START with ENERGIES."""
    capture = b"".join(
        _aidon3((t.year, t.month, t.day, t.hour, 0, 0), e)
        for t, e in ((START + dt.timedelta(hours=k), e) for k, e in enumerate(ENERGIES))
    )
    path = tmp_path / "capture.bin"
    path.write_bytes(capture)
    return path


def test_hanctl_account_prints_hours_and_the_month(tmp_path):
    energies = ENERGIES
    path = _list3_capture(tmp_path)
    hanctl = Path(sys.executable).parent / "hanctl"
    proc = subprocess.run(
        [hanctl, "account", str(path)], capture_output=True, text=True, check=True
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    hours = [x for x in lines if "hour" in x]
    assert len(hours) == 49
    assert hours[0] == {"hour": "2026-01-30T00:00:00", "active_energy_import": 0.01,
                        "active_energy_export": 0, "estimated": False}  # fmt: skip
    assert hours[48]["active_energy_import"] == (energies[49] - energies[48]) / 1000
    months = [x for x in lines if "month" in x]
    assert [m["month"] for m in months] == ["2026-01", "2026-02"]
    jan = months[0]
    # Jan 30 and 31: the largest hour of each is its last (23:00), 10*(k+1)^2 - 10*k^2 Wh.
    assert [p["hour"] for p in jan["peaks"]] == ["2026-01-31T23:00:00", "2026-01-30T23:00:00"]
    assert jan["capacity_kw"] == round((0.47 + 0.95) / 2, 3)
    assert jan["step"] == [0, 2]


def test_the_same_on_micropython_at_96k_with_a_reboot_on_an_autumn_night():
    rng = random.Random(7)
    start = dt.datetime(2026, 10, 24, 12, tzinfo=UTC)
    readings, _ = _month_of_registers(start, 48, rng, every_s=30)
    text = [json.dumps(r) for r in readings]
    text.insert(len(text) // 2, "STATE")
    proc = run_driver("accounting_driver.py", "\n".join(text) + "\n")
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(x) for x in proc.stdout.splitlines()]
    acc, hours, months = _run(readings)
    acc.finish()
    want = [["hour", *h] for h in hours] + [
        [
            "month",
            "2026-10",
            settlement.month(acc)["peaks"],
            settlement.month(acc)["capacity_w"],
            list(settlement.month(acc)["step"]),
        ]
    ]
    assert got[:-1] == want
    assert got[-1][1] < 2048  # the state kept on flash after two days: bytes of JSON


# -- quarter hours ("period_min": 15) --------------------------------------------------------

Q15 = {"period_min": 15}


def _quarter_days(start_utc, hours, rng, every_s=10, lose=(), no_power=()):
    """Readings of `hours` hours from start_utc with a known import power in each quarter
    (a multiple of 4 W: the quarter's Wh is whole): the register on each hour with the power,
    and a power reading every every_s s; none in the hours `no_power`, no register at the
    start of the hours `lose`. Returns (readings, {utc quarter start: Wh}), the answer."""
    readings, truth = [], {}
    imp = 9_000_000
    for k in range(hours + 1):
        t0 = start_utc + dt.timedelta(hours=k)
        ws = [4 * rng.randrange(50, 2500) for _ in range(4)]
        reg = {"meter_time": _text(_oslo(t0)), "active_energy_import": _kwh(imp),
               "active_energy_export": _kwh(0)}  # fmt: skip
        if k not in no_power and k < hours:
            reg["active_power_import"] = ws[0]
        if k not in lose:
            readings.append(reg)
        if k == hours:
            break
        if k not in no_power:
            for s in range(every_s, 3600, every_s):
                t = _text(_oslo(t0 + dt.timedelta(seconds=s)))
                readings.append({"meter_time": t, "active_power_import": ws[s // 900]})
        for q, w in enumerate(ws):
            truth[t0 + dt.timedelta(minutes=15 * q)] = w // 4  # W x 900 s = Wh x 3600
        imp += sum(ws) // 4
    return readings, truth


def _quarter_to(quarters):
    """on_quarter that keeps (its start as text, Wh, estimated) in quarters."""
    return lambda h, k, wh, est: quarters.append((accounting.hour_text(h, k), wh, est))


def _run_quarters(readings, tariff=Q15, state=None):
    quarters = []
    acc = accounting.Accounting(tariff, state, on_quarter=_quarter_to(quarters))
    for r in readings:
        acc.offer(r)
    return acc, quarters


def test_quarters_share_an_hour_by_their_power_exactly_the_remainder_to_the_largest():
    # Checked by hand: the unseen quarters take the seen ones' mean (2000 Ws).
    assert settlement.quarters(1001, [None, 1000, 3000, None]) == [250, 125, 376, 250]
    assert settlement.quarters(1003, [None] * 4) == [253, 250, 250, 250]  # an even share
    assert settlement.quarters(7, [0, 0, 0, 0]) == [4, 1, 1, 1]
    assert settlement.quarters(0, [5, 6, 7, 8]) == [0, 0, 0, 0]
    rng = random.Random(11)
    for _ in range(2000):
        wh = rng.randrange(0, 50_000)
        ws = [rng.choice((None, 0, rng.randrange(1, 10**8))) for _ in range(4)]
        out = settlement.quarters(wh, ws)
        assert sum(out) == wh and min(out) >= 0


def test_quarter_days_at_speed_quarters_peaks_and_capacity():
    rng = random.Random(12)
    start = dt.datetime(2026, 1, 1, 0, tzinfo=UTC) - dt.timedelta(hours=1)  # 00:00 in Oslo
    readings, truth = _quarter_days(start, 4 * 24, rng)
    months, hours = [], []
    acc = accounting.Accounting(Q15, None, lambda *h: hours.append(h), months.append)
    quarters = []
    acc.on_quarter = _quarter_to(quarters)
    for r in readings:
        acc.offer(r)
    acc.finish()
    want = [(_text(_oslo(t)), wh, False) for t, wh in sorted(truth.items())]
    assert quarters == want  # exact: the power in each quarter was known throughout
    assert [h[1] for h in hours] == [sum(q[1] for q in quarters[i : i + 4])
                                     for i in range(0, len(quarters), 4)]  # fmt: skip
    best = {}
    for text, wh, _ in want:  # each day's largest quarter, the first of equals
        if wh > best.get(text[:10], ("", -1))[1]:
            best[text[:10]] = (text, wh)
    top = sorted(best.values(), key=lambda p: -p[1])[:3]
    (m,) = months
    assert [(accounting.hour_text(h, k), wh) for h, wh, k in m["peaks"]] == top
    assert any(not p[0].endswith(":00:00") for p in top)  # quarters, not hours
    mean_w = Fraction(4 * sum(wh for _, wh in top), len(top))  # kWh a quarter x 4 = kW
    assert m["capacity_w"] == math.floor(mean_w + Fraction(1, 2))
    lo, hi = acc.step(m["capacity_w"])
    assert m["step"] == (lo, hi) and lo <= m["capacity_w"] < hi
    # The quarter under way may still take what keeps 4 x (the 3 largest) / 3 below hi.
    others = sorted((wh for d, (_, wh) in best.items() if d != readings[-1]["meter_time"][:10]),
                    reverse=True)[:2]  # fmt: skip
    assert acc.allowed_wh(0) == max(0, math.ceil(Fraction(3 * hi, 4)) - sum(others) - 1)


def test_quarters_of_a_lost_register_and_of_hours_without_power_are_estimated():
    rng = random.Random(13)
    start = dt.datetime(2026, 2, 10, 5, tzinfo=UTC)
    readings, truth = _quarter_days(start, 8, rng, lose=(3,), no_power=(6,))
    _, quarters = _run_quarters(readings)
    want = sorted(truth.items())
    assert [q[0] for q in quarters] == [_text(_oslo(t)) for t, _ in want]
    est = [q[2] for q in quarters]
    assert est == [False] * 8 + [True] * 8 + [False] * 8 + [True] * 4 + [False] * 4
    for i in range(0, 32, 4):  # every hour sums exactly to its registers
        if i in (8, 12):
            continue
        assert sum(q[1] for q in quarters[i : i + 4]) == sum(w for _, w in want[i : i + 4])
    # The two hours around the lost register: together exact, and each quarter near its
    # own energy (the power of the lost register's reading came 10 s late: at most
    # 10 s x 10 kW = 28 Wh off).
    assert sum(q[1] for q in quarters[8:16]) == sum(w for _, w in want[8:16])
    for q, (_, w) in zip(quarters[8:16], want[8:16], strict=True):
        assert abs(q[1] - w) <= 30
    for i in (0, 4, 16, 20, 28):
        assert [q[1] for q in quarters[i : i + 4]] == [w for _, w in want[i : i + 4]]
    # The hour without power: an even share, the remainder to its first quarter.
    hour = sum(w for _, w in want[24:28])
    assert [q[1] for q in quarters[24:28]] == [hour - 3 * (hour // 4)] + [hour // 4] * 3


@DST_DAYS
def test_quarters_on_summer_time_days(day, hours_that_day):
    rng = random.Random(14)
    start = day.replace(tzinfo=UTC) - dt.timedelta(hours=3)
    readings, truth = _quarter_days(start, 30, rng)
    _, quarters = _run_quarters(readings)
    assert quarters == [(_text(_oslo(t)), wh, False) for t, wh in sorted(truth.items())]
    that_day = [q for q in quarters if q[0][:10] == day.strftime("%Y-%m-%d")]
    assert len(that_day) == 4 * hours_that_day


def test_quarter_state_is_bounded():
    """The worst state: 48 hours of quarters pending (no register), 31 day maxima and
    13 months of summaries, through JSON as on flash (README's flash budget)."""
    rng = random.Random(15)
    start = dt.datetime(2024, 11, 30, 23, tzinfo=UTC)  # 2024-12-01 00:00 in Oslo
    end = dt.datetime(2026, 1, 31, 22, tzinfo=UTC)  # 2026-01-31 23:00: a month of 31 days
    readings, _ = _quarter_days(start, (end - start) // dt.timedelta(hours=1), rng, 900)
    acc, _ = _run_quarters(readings)
    for s in range(20, 60 * 3600, 20):  # 60 hours of power, no register: 48 kept
        when = _text(_oslo(end + dt.timedelta(seconds=s)))
        acc.offer({"meter_time": when, "active_power_import": 99_999})
    state = json.dumps(acc.state())
    assert len(acc.pending) == 48 and len(acc.history) == 13
    assert all(acc.days)  # every one of the 31 days has its largest quarter
    assert len(state) < 6144, len(state)


def test_quarters_on_micropython_at_96k_with_a_reboot_on_an_autumn_night():
    rng = random.Random(16)
    start = dt.datetime(2026, 10, 24, 12, tzinfo=UTC)
    readings, _ = _quarter_days(start, 48, rng, every_s=30, lose=(20,))
    cut = len(readings) // 2 + 7  # mid-quarter
    text = [json.dumps(r) for r in readings]
    text.insert(cut, "STATE")
    proc = run_driver("accounting_driver.py", "\n".join(["TARIFF " + json.dumps(Q15), *text]))
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(x) for x in proc.stdout.splitlines()]
    want = []
    acc = None
    for part in (readings[:cut], readings[cut:]):
        state = json.loads(json.dumps(acc.state())) if acc else None
        acc = accounting.Accounting(
            Q15,
            state,
            lambda *h: want.append(["hour", *h]),
            on_quarter=lambda h, k, *q: want.append(["quarter", accounting.hour_text(h, k), *q]),
        )
        for r in part:
            acc.offer(r)
    m = settlement.month(acc)
    want.append(["month", "2026-10", m["peaks"], m["capacity_w"], list(m["step"])])
    assert got[:-1] == want
    assert sum(x[0] == "quarter" for x in got) == 4 * 48
    assert any(x[0] == "quarter" and x[3] for x in got)  # the lost register's
    assert got[-1][1] < 2560  # the state kept on flash after two days: bytes of JSON


def test_hanctl_account_prints_quarters_with_period_min_15(tmp_path):
    energies, start = ENERGIES, START
    path = _list3_capture(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"tariff": {"period_min": 15}}))
    hanctl = Path(sys.executable).parent / "hanctl"
    argv = [hanctl, "account", "--config", str(config), str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    quarters = [x for x in lines if "quarter" in x]
    assert len(quarters) == 4 * 49
    # List 3 alone (no power): each hour evenly, the remainder to its first quarter.
    for k in range(49):
        wh = energies[k + 1] - energies[k]
        hour = (start + dt.timedelta(hours=k)).strftime("%Y-%m-%dT%H")
        assert quarters[4 * k : 4 * k + 4] == [
            {"quarter": f"{hour}:{15 * q:02d}:00", "estimated": True,
             "active_energy_import": (wh // 4 + (wh % 4 if q == 0 else 0)) / 1000}
            for q in range(4)
        ]  # fmt: skip
        i = lines.index(quarters[4 * k + 3]) + 1  # the hour's line follows its quarters
        assert lines[i]["hour"] == f"{hour}:00:00"
    jan = [x for x in lines if x.get("month") == "2026-01"][0]
    wh31 = energies[48] - energies[47]  # 2026-01-31 23:00, the largest hour
    wh30 = energies[24] - energies[23]
    assert jan["peaks"] == [
        {"hour": "2026-01-31T23:00:00", "active_energy_import": (wh31 - 3 * (wh31 // 4)) / 1000},
        {"hour": "2026-01-30T23:00:00", "active_energy_import": (wh30 - 3 * (wh30 // 4)) / 1000},
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tariff": {"period_min": 30}}))
    proc = subprocess.run([hanctl, "account", "--config", str(bad), str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "tariff.period_min" in proc.stderr
