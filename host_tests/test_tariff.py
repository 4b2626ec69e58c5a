"""The dongle's side of the tariff (firmware/tariff.py): the <base>/tariff message against a
calculation of this file's own, who gets it when, its state on flash (kept through a
reboot, bounded over 14 months, a broken file starting afresh)."""

import datetime as dt
import json
from types import SimpleNamespace

from hanctl import runtime
from mp import run_driver

runtime.use_firmware_in_cpython()
import destination  # noqa: E402  (its _announcing: a discovery round under way)
import tariff  # noqa: E402  (firmware/, on the path only now)

START = dt.datetime(2026, 1, 1)


class Event:
    def __init__(self):
        self.n = 0

    def set(self):
        self.n += 1


def dest(level):
    return SimpleNamespace(share=SimpleNamespace(tariff=level), tariff=None, event=Event())


def hours(n, first=0, watts=lambda k: 1000 + 97 * (k % 13)):
    """(reading, ...) of n hours from START + first hours: the register at hh:00:05, a power
    reading at hh:20:00 and hh:20:10; and {hour text: Wh}, the independent answer."""
    out, truth = [], {}
    reg = 7_000_000 + sum(watts(k) for k in range(first))
    for k in range(first, first + n + 1):
        t = START + dt.timedelta(hours=k)
        stamp = t.strftime("%Y-%m-%dT%H:00:05")
        out.append({"meter_time": stamp, "active_energy_import": (reg, -3),
                    "active_energy_export": (0, -3)})  # fmt: skip
        if k == first + n:
            break
        for s in ("00", "10"):
            out.append({"meter_time": t.strftime("%Y-%m-%dT%H:20:") + s,
                        "active_power_import": watts(k)})  # fmt: skip
        truth[t.strftime("%Y-%m-%dT%H:00:00")] = watts(k)
        reg += watts(k)
    return out, truth


def written(account):
    buf = bytearray(1536)
    return json.loads(buf[: account.write(buf)])


def feed(account, readings, t0=0):
    """Each reading at the ticks of its meter time, as a meter paces them (an hour of the
    dongle's clock between registers: tariff.json's writes are bounded by that clock)."""
    for r in readings:
        s = (dt.datetime.fromisoformat(r["meter_time"]) - START).total_seconds()
        account.offer(r, (t0 + int(s) * 1000) % 2**30)  # MicroPython's ticks wrap at 2**30


def test_the_message_against_the_registers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full, hourly, live = dest(2), dest(1), dest(0)
    account = tariff.Account({"prices": [90, 180, 270, 360]}, [full, hourly, live], print)
    readings, truth = hours(50)
    feed(account, readings)
    msg = written(account)
    by_day = {}
    for h, wh in truth.items():
        if wh > by_day.get(h[:10], ("", -1))[1]:
            by_day[h[:10]] = (h, wh)
    peaks = sorted(by_day.values(), key=lambda p: -p[1])[:3]
    mean = (2 * sum(w for _, w in peaks) + len(peaks)) // (2 * len(peaks))
    assert [(p["hour"], p["kwh"]) for p in msg["peaks"]] == [(h, w / 1000) for h, w in peaks]
    assert msg["capacity_kw"] == mean / 1000 and msg["step_kw"] == [2, 5] and msg["step"] == 2
    assert msg["price"] == 180
    assert msg["month"] == "2026-01" and msg["hour"] == "2026-01-03T02:00:00"
    assert msg["month_kwh"] == sum(truth.values()) / 1000
    today = sum(w for h, w in truth.items() if h.startswith("2026-01-03"))
    assert msg["today_kwh"] == today / 1000
    last = "2026-01-03T01:00:00"
    assert msg["last_hour"] == {"hour": last, "import_kwh": truth[last] / 1000,
                                "export_kwh": 0, "estimated": False}  # fmt: skip
    # Allowed this hour: the hour that would bring the mean of the top 3 (today's hour
    # among them) up to 5 kW, less a Wh, less what this hour took so far (0).
    others = sorted((w for d, (_, w) in by_day.items() if d != "2026-01-03"), reverse=True)[:2]
    assert msg["allowed_kwh"] == (3 * 5000 - sum(others) - 1) / 1000
    # Full and hourly got it; live never.
    assert full.tariff is account and hourly.tariff is account and live.tariff is None
    assert hourly.event.n == 50  # one per register that closed an hour


def test_between_registers_only_full_shares_once_a_minute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full, hourly = dest(2), dest(1)
    account = tariff.Account({}, [full, hourly], print)
    readings, _ = hours(1)
    for r in readings[:3]:
        account.offer(r, 0)  # the first reading sends, the next in the same minute do not
    assert (full.event.n, hourly.event.n) == (1, 0)
    account.offer(readings[1], 60000)
    assert (full.event.n, hourly.event.n) == (2, 0)
    account.offer(readings[3], 60001)  # the register: both, at once
    assert (full.event.n, hourly.event.n) == (3, 1)


def test_a_reboot_keeps_the_month_a_new_month_starts_fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readings, truth = hours(24 * 6, first=24 * 28)
    cut = len(readings) // 3
    account = tariff.Account({}, [dest(2)], print)
    feed(account, readings[:cut])
    account = tariff.Account({}, [dest(2)], print)  # a reboot: only the file is left
    feed(account, readings[cut:])
    monkeypatch.chdir(tmp_path.parent)  # another folder: a dongle that never rebooted
    (tmp_path.parent / tariff.PATH).unlink(missing_ok=True)
    once = tariff.Account({}, [dest(2)], print)
    feed(once, readings)
    assert written(account) == written(once)
    msg = written(account)
    assert msg["month"] == "2026-02"
    assert msg["month_kwh"] == sum(w for h, w in truth.items() if h[:7] == "2026-02") / 1000
    months = json.loads((tmp_path / tariff.MONTHS).read_text())
    assert [m[0] for m in months] == ["2026-01"]  # January's summary, kept
    assert json.loads(account.state)["y"] == []  # in MONTHS, not in the state at each load


def test_thirteen_months_fit_the_flash_budget_and_a_broken_file_starts_afresh(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    account = tariff.Account({}, [dest(2)], print)
    readings, _ = hours(24 * 400, watts=lambda k: 500 + (k * 7919) % 9000)
    # A register a day after the first 400 days (each loads accounting, on CPython from
    # its source): each day split over its hours, 13 months and more all the same.
    daily = [r for r in readings if r["meter_time"][11:13] == "00" or r is readings[-1]]
    feed(account, readings[: 24 * 3 * 3] + [r for r in daily if r["meter_time"] > "2026-01-04"])
    state = (tmp_path / tariff.PATH).read_text()
    months = json.loads((tmp_path / tariff.MONTHS).read_text())
    assert [m[0] for m in months] == [f"2026-{m:02d}" for m in range(1, 13)] + ["2027-01"]
    assert len(state) <= 4096, len(state)  # README: at most 4 KB, 8 KB with its temp file
    (tmp_path / tariff.PATH).write_text('{"b": 5, "d": [1]}')
    said = []
    account = tariff.Account({}, [dest(2)], lambda *a: said.append(a))
    assert said and "starts afresh" in said[0][0]
    assert written(account)["peaks"] == []


def test_a_lost_register_is_split_by_the_power_seen_between_loads(tmp_path, monkeypatch):
    """Accounting is loaded only at registers and new hours (tariff.py): the power of the
    hours between still splits a lost register, as accounting.py alone would."""
    monkeypatch.chdir(tmp_path)
    watts = {0: 800, 1: 1000, 2: 3000, 3: 900}
    readings, truth = hours(4, first=24 * 5, watts=lambda k: watts.get(k - 24 * 5, 500))
    lost = "2026-01-06T02:00:05"  # the register between 01:00 and 02:00's hours
    account = tariff.Account({}, [dest(2)], print)
    feed(account, [r for r in readings if r["meter_time"] != lost])
    msg = written(account)
    assert msg["peaks"] == [{"hour": "2026-01-06T02:00:00", "kwh": 3.0}]  # not 2.0 each
    assert msg["month_kwh"] == sum(truth.values()) / 1000


def test_a_register_without_memory_to_load_accounting_waits_and_is_counted_late(
    tmp_path, monkeypatch
):
    """On the dongle the load can fail in a fragmented heap: the register is kept and given
    to accounting at a later reading (every 10th), logged once; nothing is lost."""
    monkeypatch.chdir(tmp_path)
    readings, truth = hours(6)
    said = []
    account = tariff.Account({}, [dest(2)], lambda *a: said.append(a))

    class Short:  # json.loads without memory for the next `left` loads
        left = 0

        @staticmethod
        def loads(text):
            if Short.left:
                Short.left -= 1
                raise MemoryError("no memory")
            return json.loads(text)

        dumps = staticmethod(json.dumps)

    monkeypatch.setattr(tariff, "json", Short)
    Short.left = 1  # at boot too: no figures, so no message, until a load succeeds
    full = dest(2)
    booting = tariff.Account({}, [full], lambda *a: None)
    assert booting.fields is None  # nothing to send
    booting.offer({"active_power_import": 5}, 0)  # no time: no load, no message
    assert full.tariff is None
    for s in range(8):  # tried again at every 10th reading (the boot's was the first)
        assert booting.fields is None and full.tariff is None
        booting.offer({"meter_time": f"2026-01-01T00:20:{s:02d}", "active_power_import": 5}, 1)
    assert booting.fields is not None and full.tariff is booting  # loaded, and the message goes
    for i, r in enumerate(readings):
        if r["meter_time"] == "2026-01-01T06:00:05":
            Short.left = 2  # the last register and its first retry fail
        account.offer(r, i * 1000)
    # A few power readings after the last register: the retries come at every 10th.
    for i in range(25):
        account.offer({"meter_time": f"2026-01-01T06:20:{i:02d}", "active_power_import": 1}, 0)
    msg = written(account)
    assert msg["month_kwh"] == sum(truth.values()) / 1000
    assert msg["last_hour"] == {"hour": "2026-01-01T05:00:00", "estimated": False,
                                "import_kwh": truth["2026-01-01T05:00:00"] / 1000,
                                "export_kwh": 0}  # fmt: skip
    assert Short.left == 0
    assert [a[0] for a in said] == ["tariff: no memory for the account, retried:"]


def quarter_watts(k, q):
    """W in quarter q of hour k from START: each day's peak 18:30-18:45, 8 kW + 400 W a day."""
    return 8000 + 400 * (k // 24) if (k % 24, q) == (18, 2) else 1000 + 40 * (k * 5 + q) % 680


def quarter_readings(days=3):
    """Three days from START: the register at hh:00:05, the power every 10 s."""
    readings, reg = [], 7_000_000
    for k in range(days * 24 + 1):
        t = START + dt.timedelta(hours=k)
        readings.append({"meter_time": t.strftime("%Y-%m-%dT%H:00:05"),
                         "active_energy_import": (reg, -3)})  # fmt: skip
        if k == days * 24:
            break
        for s in range(10, 3600, 10):
            when = (t + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S")
            readings.append({"meter_time": when, "active_power_import": quarter_watts(k, s // 900)})
        reg += sum(quarter_watts(k, q) for q in range(4)) // 4
    return readings


def test_quarter_hours_on_the_dongle_keep_four_numbers_an_hour(tmp_path, monkeypatch):
    """With "period_min": 15 the dongle integrates each quarter's power between loads (4
    numbers an hour, no readings kept) and the message's peaks are quarters: each day's
    largest, 18:30-18:45 at 8 kW + 400 W a day, against this file's own calculation."""
    monkeypatch.chdir(tmp_path)
    readings = quarter_readings()
    account = tariff.Account({"period_min": 15}, [dest(2)], print)
    feed(account, readings[:-10])  # up to 23:58:20 of the third day, its register not yet
    assert [len(h) for h in account.hours] == [7]  # the hour under way: text, 2 + 4 numbers
    assert all(type(x) is int for x in account.hours[0][1:])
    msg = written(account)
    top = [(f"2026-01-0{d}T18:30:00", (8000 + 400 * (d - 1)) / 4) for d in (3, 2, 1)]
    assert [p["hour"] for p in msg["peaks"]] == [h for h, _ in top]
    for p, (_, wh) in zip(msg["peaks"], top, strict=True):
        assert abs(p["kwh"] * 1000 - wh) <= 10  # the 15 s around each register are not seen
    assert abs(msg["capacity_kw"] * 1000 - 4 * sum(wh for _, wh in top) / 3) <= 40
    # What this quarter (23:45-24:00) may still take: 3 x hi / 4 less the two other days'
    # peaks, less what it took so far (23:45:00 to 23:58:20 at its power).
    so_far = quarter_watts(71, 3) * 800 / 3600
    allowed = 3 * 10000 / 4 - (top[1][1] + top[2][1]) - 1 - so_far
    assert msg["step_kw"] == [5, 10] and abs(msg["allowed_kwh"] * 1000 - allowed) <= 15


QUARTERS_ON_MICROPYTHON = """
import json, sys, tariff
tariff.PATH = %r
account = tariff.Account({"period_min": 15}, [], print)
for i, line in enumerate(sys.stdin):
    r = json.loads(line)
    for k in r:
        if type(r[k]) is list:
            r[k] = tuple(r[k])
    account.offer(r, i * 1000)
buf = bytearray(1536)
print(bytes(buf[: account.write(buf)]).decode())
"""


def test_quarter_hours_on_micropython_at_96k_as_on_cpython(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readings = quarter_readings(2)[:-10]
    account = tariff.Account({"period_min": 15}, [dest(2)], print)
    for i, r in enumerate(readings):
        account.offer(r, i * 1000)
    stdin = "".join(json.dumps(r) + "\n" for r in readings)
    code = QUARTERS_ON_MICROPYTHON % str(tmp_path / "mp-tariff.json")
    proc = run_driver(code=code, stdin=stdin, heap="96K", timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == written(account)
    assert got["peaks"][0]["hour"] == "2026-01-02T18:30:00"


def test_a_p1_meter_loads_accounting_once_an_hour(tmp_path, monkeypatch):
    """A P1 meter prints its registers in every telegram (1 s apart, DSMR 5): only the
    hour's first one loads accounting, and the hours come out as a List 3 meter's do."""
    monkeypatch.chdir(tmp_path)
    account = tariff.Account({}, [dest(2)], print)
    loads = []
    real = account._load
    monkeypatch.setattr(account, "_load", lambda r, ms=0: loads.append(r) or real(r, ms))
    reg = 7_000_000
    for k in range(3):
        t = START + dt.timedelta(hours=k)
        for s in range(0, 3600):  # one telegram a second, the register in each
            when = t + dt.timedelta(seconds=s)
            account.offer({"meter_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
                           "active_energy_import": (reg + s * 1000 // 3600, -3),
                           "active_power_import": 1000}, k * 3600_000 + s * 1000)  # fmt: skip
        reg += 1000
    assert len(loads) == 3, [r and r.get("meter_time") for r in loads]
    assert written(account)["last_hour"]["hour"] == "2026-01-01T01:00:00"
    msg = written(account)
    assert round(msg["month_kwh"] - msg["hour_kwh"], 3) == 2.0  # the closed hours, exact


def test_a_meter_clock_that_jumps_an_hour_a_push_writes_the_flash_a_bounded_number_of_times(
    tmp_path, monkeypatch
):
    """Each push an hour later than the last, 2 s apart: 24 writes at once (a day's), then
    one each 30 minutes of the dongle's clock; the rest counted in unsaved."""
    monkeypatch.chdir(tmp_path)
    writes = []
    real = tariff.save_json
    monkeypatch.setattr(tariff, "save_json", lambda p, v: writes.append(p) or real(p, v))
    account = tariff.Account({}, [dest(2)], print)
    readings, _ = hours(400)
    registers = [r for r in readings if "active_energy_import" in r]
    for i, r in enumerate(registers):  # 400 hours in 800 s
        account.offer(r, i * 2000)
    assert writes.count(tariff.PATH) == 24
    assert account.credit[2] == 400 - 24  # counted
    account.offer(readings[-1], 400 * 2000 + 30 * 60_000)  # half an hour later: one more
    assert writes.count(tariff.PATH) == 24  # the same register: nothing closed, no write
    account.offer(hours(401)[0][-1], 400 * 2000 + 30 * 60_000)
    assert writes.count(tariff.PATH) == 25


def test_a_state_saved_before_the_months_file_is_read_and_its_months_moved(tmp_path, monkeypatch):
    """A tariff.json with the day maxima as {"DD": [hour, Wh]} and the months in "y" (as
    main wrote it): the same message, and the months go to MONTHS."""
    monkeypatch.chdir(tmp_path)
    readings, _ = hours(24 * 40)
    account = tariff.Account({}, [dest(2)], print)
    feed(account, readings)
    new = written(account)
    state = json.loads(account.state)
    old = dict(state)
    old["d"] = {"%02d" % (i + 1): p for i, p in enumerate(state["d"]) if p}  # noqa: UP031
    old["y"] = json.loads((tmp_path / tariff.MONTHS).read_text())
    (tmp_path / tariff.MONTHS).unlink()
    (tmp_path / tariff.PATH).write_text(json.dumps(old))
    again = tariff.Account({}, [dest(2)], print)  # a reboot onto the old file
    again.offer(readings[-1], 0)  # the last register again: nothing closes
    got = written(again)
    for k in ("month", "step", "capacity_kw", "peaks", "month_kwh", "allowed_kwh"):
        assert got[k] == new[k], k
    assert [m[0] for m in json.loads((tmp_path / tariff.MONTHS).read_text())] == ["2026-01"]
    assert json.loads(again.state)["y"] == []


def test_a_register_during_a_discovery_round_waits_for_the_round(tmp_path, monkeypatch):
    """A discovery round holds ~8 KB of a 96K heap until its last config is acknowledged
    (destination.py): the account is not loaded beside it, and the registers that came
    during it close their hours at the first reading after it, none lost or merged."""
    monkeypatch.chdir(tmp_path)
    readings, truth = hours(4)
    said = []
    account = tariff.Account({}, [dest(2)], lambda *a: said.append(a))
    loads = []
    load = account._load
    monkeypatch.setattr(account, "_load", lambda *a: loads.append(a[0]) or load(*a))
    feed(account, readings[:4])  # hour 0 closed at 01:00:05
    assert written(account)["last_hour"]["hour"] == "2026-01-01T00:00:00"
    n = len(loads)
    monkeypatch.setattr(destination, "_announcing", object())  # a round under way
    feed(account, readings[4:10])  # the registers at 02:00:05 and 03:00:05 among them
    assert len(loads) == n  # not loaded
    monkeypatch.setattr(destination, "_announcing", None)  # the round is over
    feed(account, readings[10:11])  # 03:20:00: a power reading
    assert len(loads) == n + 1 and len(loads[-1]) == 2  # the two registers, at once
    msg = written(account)
    assert msg["last_hour"] == {"hour": "2026-01-01T02:00:00", "estimated": False,
                                "import_kwh": truth["2026-01-01T02:00:00"] / 1000,
                                "export_kwh": 0}  # fmt: skip
    assert msg["month_kwh"] == sum(truth[h] for h in sorted(truth)[:3]) / 1000
    assert said == []


def test_a_round_across_october_s_repeated_hour_changes_nothing_but_when(tmp_path, monkeypatch):
    """Registers that waited for a round give the month the account would have had without
    it, October's repeated 02:00 hour included (its two registers share their meter hour:
    kept apart, not merged into one false peak), and a P1 meter's telegrams of one minute
    still count once."""

    def readings():
        reg, out = 7_000_000, []
        for hour, watts in (("00", 1000), ("01", 2000), ("02", 3000), ("02", 4000), ("03", 500)):
            for s in range(10, 13):  # a P1 meter: the register in each telegram of the minute
                out.append({"meter_time": f"2026-10-25T{hour}:00:{s}",
                            "active_energy_import": (reg, -3)})  # fmt: skip
            for m in ("30:00", "30:10"):
                out.append({"meter_time": f"2026-10-25T{hour}:{m}", "active_power_import": watts})
            reg += watts
        out.append({"meter_time": "2026-10-25T04:00:10", "active_energy_import": (reg, -3)})
        out.append({"meter_time": "2026-10-25T04:30:00", "active_power_import": 0})
        return out

    def month(during_round):
        monkeypatch.chdir(tmp_path / ("round" if during_round else "none"))
        account = tariff.Account({}, [dest(2)], print)
        for i, r in enumerate(readings()):
            busy = during_round and "02:00:10" <= r["meter_time"][11:] and i < 22
            monkeypatch.setattr(destination, "_announcing", object() if busy else None)
            account.offer(r, i * 1000)
        return written(account)

    (tmp_path / "round").mkdir()
    (tmp_path / "none").mkdir()
    plain = month(False)
    assert plain["peaks"][0] == {"hour": "2026-10-25T02:00:00", "kwh": 4.0}  # the second 02
    assert plain["month_kwh"] == 10.5
    assert month(True) == plain


def test_rounds_that_never_end_hold_the_account_back_only_so_far(tmp_path, monkeypatch):
    """A broker slow to acknowledge, and Home Assistant's "online" every 30 s, can keep one
    round after another under way: with 6 registers waiting (tariff.py's _WAIT) the account
    loads beside the round, and no register is dropped."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(destination, "_announcing", object())
    readings, truth = hours(8)
    account = tariff.Account({}, [dest(2)], print)
    feed(account, readings)
    msg = written(account)
    # Loaded at the 6th register (05:00:05), which closes 04:00's hour; 06:00-08:00 wait.
    assert msg["last_hour"]["hour"] == "2026-01-01T04:00:00"
    assert msg["month_kwh"] == sum(truth[h] for h in sorted(truth)[:5]) / 1000
    # The round ends: the registers that waited close their hours, none dropped.
    monkeypatch.setattr(destination, "_announcing", None)
    account.offer({"meter_time": "2026-01-01T08:20:00", "active_power_import": 1}, 0)
    msg = written(account)
    assert msg["last_hour"]["hour"] == "2026-01-01T07:00:00"
    assert msg["month_kwh"] == sum(truth.values()) / 1000


def test_a_late_load_leaves_the_hour_under_way_whole_in_the_message(tmp_path, monkeypatch):
    """A load past the hour's start (a register that waited for a discovery round, or for
    memory; hh:01:00 when none came) gives accounting the hour under way's power so far.
    The message still counts it: this hour, its projection, today and the month, and the
    kWh allowed. Left out, it told them short by the minutes before the load until the
    hour's end (here 65 of 305 s: 0.240 kWh for 0.305)."""
    monkeypatch.chdir(tmp_path)
    readings, _ = hours(2)
    said = []
    account = tariff.Account({"period_min": 15}, [dest(2)], lambda *a: said.append(a))
    feed(account, readings[:-1])  # hour 0 closed at 01:00:05
    monkeypatch.setattr(destination, "_announcing", object())  # a round under way
    feed(account, [{**readings[-1], "active_power_import": 3600}])  # 02:00:05: hour 1's end
    monkeypatch.setattr(destination, "_announcing", None)  # over at 02:00:30
    late = []
    for s in range(15, 306, 10):  # 3,600 W: 1 Wh a second, from 02:00:05 on
        t = "2026-01-01T02:{:02d}:{:02d}".format(*divmod(s, 60))
        late.append({"meter_time": t, "active_power_import": 3600})
    loads = []
    load = account._load
    monkeypatch.setattr(account, "_load", lambda *a: loads.append(a[0]) or load(*a))
    feed(account, late[:6])
    assert len(loads) == 1  # at 02:01:05, the first reading past the minute
    base = written(account)  # hours 0 and 1 closed, and 60 s of hour 2
    assert base["last_hour"]["hour"] == "2026-01-01T01:00:00"
    assert base["hour_kwh"] == 0.06
    feed(account, late[6:])
    msg = written(account)
    assert msg["meter_time"] == "2026-01-01T02:05:05" and msg["hour"] == "2026-01-01T02:00:00"
    assert msg["hour_kwh"] == 0.3
    assert msg["projected_kwh"] == 3.595  # 0.300 + 3,600 W for the 3,295 s left
    assert msg["today_kwh"] == round(base["today_kwh"] + 0.24, 3)
    assert msg["month_kwh"] == round(base["month_kwh"] + 0.24, 3)
    # With quarter hours, what is allowed is of this quarter: all of it so far.
    assert msg["allowed_kwh"] == round(base["allowed_kwh"] - 0.24, 3)
    assert said == []
