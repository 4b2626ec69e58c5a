"""The energy counted on between registers for Home Assistant (firmware/energynow.py),
against a simulated meter whose registers this file integrates itself: the count at each
hour's end against the register that closes the hour, never down, exact at the register,
a lost register, a power that over-reads, a new meter, a P1 meter; the message and who
gets it; the discovery configs that read it. Against a real Home Assistant:
test_ha_hours.py."""

import asyncio
import datetime as dt
import json
import random
from types import SimpleNamespace

import pytest

from hanctl import runtime

runtime.use_firmware_in_cpython()
import discovery  # noqa: E402  (firmware/, on the path only now)
import energynow  # noqa: E402
from share import Share  # noqa: E402

START = dt.datetime(2026, 1, 5, 17, 0, 0)


def meter(hours, seed=1, over=1.0, lose=(), first=0):
    """A Kaifa-like meter for `hours` hours from START + first hours: List 1 (power import)
    every 2 s, List 2 (import and export power) every 10 s, List 3 at hh:00:10 with the
    registers as they stood at hh:00:00 (Wh, 3 decimals of kWh). The true power changes
    every 0.5 s; a reading tells the power of its instant (times `over`: a meter that
    over-reads). lose: hours whose List 3 never comes. Returns (readings, {hour start:
    register Wh}) - the registers this file integrated, the independent answer."""
    rnd = random.Random(seed)
    ws = 7_000_000 * 3600  # W*s: the register is its whole Wh
    w = 1500
    out, regs = [], {}
    t0 = START + dt.timedelta(hours=first)
    for k in range(hours * 3600 * 2):  # half seconds
        s, half = divmod(k, 2)
        t = t0 + dt.timedelta(seconds=s)
        if not half:
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S")
            if t.minute == 0 and t.second == 0:
                regs[t] = ws // 3600
            if t.minute == 0 and t.second == 10 and t - dt.timedelta(seconds=10) not in lose:
                r = regs[t - dt.timedelta(seconds=10)]
                out.append({"meter_time": stamp, "active_energy_import": (r, -3),
                            "active_energy_export": (0, -3)})  # fmt: skip
            if s % 2 == 0:
                r = {"meter_time": stamp, "active_power_import": int(w * over)}
                if s % 10 == 0:
                    r["active_power_export"] = 0
                out.append(r)
        # A house: a base load with 2 kW steps (a water heater) and noise.
        if rnd.random() < 0.002:
            w = 800 + 2000 * rnd.randrange(0, 3)
        ws += max(0, w + rnd.randrange(-60, 61)) // 2  # half a second
    t = t0 + dt.timedelta(hours=hours)
    regs[t] = ws // 3600
    stamp = (t + dt.timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S")
    out.append({"meter_time": stamp, "active_energy_import": (regs[t], -3),
                "active_energy_export": (0, -3)})  # fmt: skip
    return out, regs


class Event:
    def set(self):
        pass


class Count:
    """energynow's state as after a boot, and its offer()."""

    def __init__(self):
        self.s = energynow._new()

    def offer(self, reading):
        return energynow.offer(self.s, reading)

    @property
    def value(self):
        return self.s[energynow._VALUE]


fresh = Count


def run(readings):
    """[(meter time, Wh import)] of each count made."""
    count = Count()
    made = []
    for r in readings:
        if count.offer(r):
            made.append((dt.datetime.fromisoformat(count.s[energynow._TIME]), count.value[0]))
    return made, count


def at_hour_ends(made, regs):
    """{hour end: (last count before it, the register there)} for each hour end after the
    first count: what Home Assistant's hourly statistics take of each hour."""
    out = {}
    for end, reg in sorted(regs.items()):
        before = [v for t, v in made if t < end]
        if before and made[0][0] < end - dt.timedelta(hours=1):
            out[end] = (before[-1], reg)
    return out


def test_each_hour_ends_within_a_few_wh_of_its_register():
    readings, regs = meter(6)
    made, _ = run(readings)
    values = [v for _, v in made]
    assert values == sorted(values)  # never down
    ends = at_hour_ends(made, regs)
    assert len(ends) == 5
    for end, (count, reg) in ends.items():
        hour = reg - regs[end - dt.timedelta(hours=1)]
        # The last count is from hh:59:58 at the latest: 2 s of power short, and what the
        # samples miss of the half-second steps.
        assert abs(count - reg) <= max(10, hour // 200), (end, count, reg, hour)
    # At each register the count starts from it: the register plus the 10 s since hh:00:00.
    for t, v in made:
        if t.minute == 0 and t.second == 10:
            reg = regs[t - dt.timedelta(seconds=10)]
            assert reg <= v <= reg + 10 * 5000 // 3600, (t, v, reg)


def test_the_counts_hours_against_the_registers_hours():
    """What an hourly statistic of the count books in each hour, against the register
    differences; a sensor of the registers alone books each in the hour after."""
    readings, regs = meter(6, seed=7)
    made, _ = run(readings)
    ends = sorted(at_hour_ends(made, regs).items())
    for (a, (ca, _)), (b, (cb, rb)) in zip(ends, ends[1:], strict=False):
        true = rb - regs[a]
        assert abs((cb - ca) - true) <= max(20, true // 100), (b, cb - ca, true)


def test_a_lost_register_the_count_goes_on_and_the_next_one_settles_it():
    lost = START + dt.timedelta(hours=2)
    readings, regs = meter(5, seed=3, lose={lost})
    made, _ = run(readings)
    values = [v for _, v in made]
    assert values == sorted(values)
    end = dict(at_hour_ends(made, regs))
    count, reg = end[lost]  # the hour before the lost register still ends close to it
    assert abs(count - reg) <= max(20, (reg - regs[lost - dt.timedelta(hours=1)]) // 100)
    count, reg = end[lost + dt.timedelta(hours=1)]  # counted on across two hours
    assert abs(count - reg) <= max(40, (reg - regs[lost - dt.timedelta(hours=1)]) // 100)


def test_an_over_reading_power_is_held_never_down_and_settled_over_the_hours():
    readings, regs = meter(5, seed=5, over=1.05)
    made, _ = run(readings)
    values = [v for _, v in made]
    assert values == sorted(values)
    held = 0
    for t, v in made:
        if t.minute == 0 and t.second == 10:
            reg = regs[t - dt.timedelta(seconds=10)]
            held += v > reg + 10 * 5000 // 3600  # ahead of the register: held, not lowered
    assert held >= 3
    # Over the whole: the count at the last register is the register plus 10 s of power,
    # or the held count of at most one hour's 5 % more.
    last = max(regs)
    first = min(regs)
    assert regs[last] <= made[-1][1] <= regs[last] + (regs[last] - regs[first]) // 5 // 20


def test_a_new_meter_lowers_the_count_and_p1_counts_each_telegram():
    count = fresh()
    count.offer({"meter_time": "2026-01-05T17:00:10", "active_energy_import": (9_000_000, -3)})
    assert count.value[0] == 9_000_000
    count.offer({"meter_time": "2026-01-05T18:00:10", "active_energy_import": (12, -3)})
    assert count.value[0] == 12  # a register lower than the one before: a new meter
    # P1: the registers in every telegram, counted to their own time.
    p1 = fresh()
    made = []
    reg = 5_000_000
    for s in range(0, 7200, 10):
        t = START + dt.timedelta(seconds=s + 65)
        p1.offer({"meter_time": t.strftime("%Y-%m-%dT%H:%M:%S"), "active_power_import": 3600,
                  "active_energy_import": (reg, -3), "active_energy_export": (17, -2)})  # fmt: skip
        made.append((p1.value[0], reg, p1.value[1]))
        reg += 10
    # Each telegram's count is its register: those in an hour's first minute run 10 s of
    # power (10 Wh) ahead at most, held, never down.
    assert all(reg <= v <= reg + 10 and x == 170 for v, reg, x in made), made[:8]  # Wh
    assert [v for v, _, _ in made] == sorted(v for v, _, _ in made)


def destination_of(share, discovery_on=True, name="F"):
    cfg = {"name": name, "share": share, "discovery": discovery_on}
    # As dongle.py marks it: with discovery, the import register and the power.
    s = Share(cfg)
    marked = discovery_on and s.allows("active_energy_import") and s.allows("active_power_import")
    return SimpleNamespace(cfg=cfg, share=s, energynow=() if marked else None, event=Event(),
                           _buf=bytearray(1536), base="hanport/" + name, dropped=0,
                           published=0, _discover=False,
                           release=lambda: None)  # fmt: skip


class Client:
    def __init__(self):
        self.sent = []

    async def publish(self, topic, payload, retain=False, qos=0, release=None):
        self.sent.append((topic, bytes(payload), retain, qos))
        if release is not None:  # the payload is copied: the shared buffer is free
            release()


def test_who_gets_it_and_the_message():
    full = destination_of("full")
    live = destination_of("live", name="L")
    hourly = destination_of("hourly", name="H")
    both = destination_of(["active_energy_import", "active_power_import", "meter_time"], name="B")
    off = destination_of("full", discovery_on=False, name="O")
    state = energynow.start([full, live, hourly, both, off])
    assert full.energynow == [state, 0, "active_energy_import", "active_energy_export"]
    assert both.energynow == [state, 0, "active_energy_import"]
    assert live.energynow is hourly.energynow is off.energynow is None
    assert energynow.start([live, hourly, off]) is None
    client = Client()
    count = Count()
    count.s = state
    count.offer({"meter_time": "2026-01-05T17:00:10", "active_energy_import": (109552250, -3),
                 "active_energy_export": (1, -3), "active_power_import": 3600})  # fmt: skip
    count.offer({"meter_time": "2026-01-05T17:00:20", "active_power_import": 3600})
    asyncio.run(energynow.send(client, full))
    asyncio.run(energynow.send(client, full))  # nothing new: nothing sent
    asyncio.run(energynow.send(client, both))
    (topic, payload, retain, qos), (topic2, payload2, _, _) = client.sent
    assert topic == "hanport/F/energy_now" and retain and qos == 0
    # The first reading since boot: its register, then 10 s at 3600 W (10 Wh) by hh:00:20
    assert json.loads(payload) == {"meter_time": "2026-01-05T17:00:20",
                                   "active_energy_import": 109552.26,
                                   "active_energy_export": 0.001}  # fmt: skip
    assert b"109552.260" in payload  # the register's own decimals, exact
    assert topic2 == "hanport/B/energy_now" and b"export" not in payload2


def test_the_energy_sensors_read_the_count_where_the_destination_gets_it():
    share = Share({"share": "full"})
    fields = {"active_energy_import", "active_energy_export", "reactive_energy_import",
              "active_power_import"}  # fmt: skip
    buf = bytearray(1536)
    topics = {}
    for _, field, n in discovery.iter_messages(buf, "hanport/F", fields, share, "123", None,
                                               None, "hanport-test", "F",
                                               counted=["active_energy_import",
                                                        "active_energy_export"]):  # fmt: skip
        topics[field] = json.loads(buf[:n])["state_topic"]
    assert topics["active_energy_import"] == "hanport/F/energy_now"
    assert topics["active_energy_export"] == "hanport/F/energy_now"
    assert topics["reactive_energy_import"] == "hanport/F/energy"  # registers alone
    assert topics["active_power_import"] == "hanport/F/reading"


def test_a_register_whose_exponent_changes_never_takes_the_count_down():
    """normalize.py writes 12349.260 kWh as (1234926, -2), 12345.671 as (12345671, -3): the
    exponent changes from one register to the next. A count kept in the register's own
    exponent went back to the register at each change: down, where it had run ahead."""
    count = fresh()
    made = []
    reg = 12345671
    for hour in range(6):
        stamp = f"2026-01-05T{10 + hour:02d}:00:10"
        r = (reg // 10, -2) if reg % 10 == 0 else (reg, -3)
        count.offer({"meter_time": stamp, "active_energy_import": r,
                     "active_energy_export": (0, 0), "active_power_import": 4000})  # fmt: skip
        made.append(count.value[0])
        for sec in range(20, 3600, 10):  # 4,000 W read: the meter counts 3,600 W
            m, sc = divmod(sec, 60)
            count.offer({"meter_time": f"2026-01-05T{10 + hour:02d}:{m:02d}:{sc:02d}",
                         "active_power_import": 4000})  # fmt: skip
            made.append(count.value[0])
        reg += 3599 if hour % 2 else 3609  # every other register ends in 0
    assert made == sorted(made)  # never down, in Wh


def test_what_is_no_number_is_not_counted_and_raises_nothing():
    """A meter line may bring a string, a bool or None under a field's name (an octet
    string in HDLC, a P1 line with three groups): energyfeed.py calls offer() for the
    dongle, which nothing may stop."""
    count = fresh()
    count.offer({"meter_time": "2026-01-05T17:00:10", "active_energy_import": (1000, -3),
                 "active_power_import": 3600})  # fmt: skip
    for bad in ("(1)(2)(3)", True, None, b"\x01", (1, "x"), (1, 2, 3), [1, -3]):
        count.offer({"meter_time": "2026-01-05T17:00:20", "active_energy_import": bad,
                     "active_energy_export": bad, "active_power_import": bad,
                     "active_power_export": bad})  # fmt: skip
    count.offer({"meter_time": "2026-01-05T17:00:30", "active_power_import": 3600})
    assert count.value[0] >= 1000


def test_a_meter_without_a_clock_gets_its_registers_as_the_count():
    """DSMR 2.2 and 3 telegrams carry no time: nothing to integrate over, but their energy
    sensors read <base>/energy_now like any other, so each telegram's registers are sent."""
    full = destination_of("full")
    state = energynow.start([full])
    count = Count()
    count.s = state
    assert count.offer({"active_energy_import": (12345671, -3), "active_energy_export": (1, 0)})
    client = Client()
    asyncio.run(energynow.send(client, full))
    assert json.loads(client.sent[-1][1]) == {"active_energy_import": 12345.671,
                                              "active_energy_export": 1}  # fmt: skip
    assert not count.offer({"active_power_import": 500})  # no register: nothing new


def test_a_count_whose_publish_fails_goes_with_the_next_session():
    full = destination_of("full")
    state = energynow.start([full])
    Count.offer(SimpleNamespace(s=state), {"meter_time": "2026-01-05T17:00:10",
                                           "active_energy_import": (5, -3)})  # fmt: skip

    class Down(Client):
        async def publish(self, *a, **k):
            raise OSError(104, "reset")

    with pytest.raises(OSError):
        asyncio.run(energynow.send(Down(), full))
    client = Client()
    asyncio.run(energynow.send(client, full))
    assert [t for t, *_ in client.sent] == ["hanport/F/energy_now"]


def test_the_dongle_publishes_the_count_on_micropython(parts):
    """The firmware on the unix port at the owner's heap, a Kaifa's List 1 every 2 s of meter
    time (sent faster: the count goes by the meter's clock) at 3600 W, its List 3 at
    17:00:10: the count is the register plus 1 Wh a second since, every 10 s, to
    the full destination with discovery, never to the hourly one."""
    import shutil
    import threading
    from pathlib import Path

    import rig
    from hanctl import encoder
    from hanctl.simulate import Server

    tmp, track = parts
    if not shutil.which("mosquitto") and not Path(rig.MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed")
    reg = 109552250
    # The hour before's List 2 brings a discovery round; its List 3 new fields, and
    # another (then the meter's clock jumps to the next hour's end).
    frames = [encoder.kaifa(2, {"time": (2026, 1, 5, 16, 0, 0)}),
              encoder.kaifa(3, {"time": (2026, 1, 5, 16, 0, 10), "energy": (reg - 3000, 0, 0, 0)}),
              (3, None)]  # fmt: skip
    for s in range(-10, 90, 2):
        m, sec = divmod(s % 3600, 60)
        when = (2026, 1, 5, 17 if s >= 0 else 16, m, sec)
        frames.append(encoder.kaifa(2 if s % 10 == 0 else 1, {"time": when, "p_import": 3600}))
        if s == 10:
            energy = (reg, 0, 130480, 15319720)
            frames.append(encoder.kaifa(3, {"time": when, "p_import": 3600, "energy": energy}))
    broker = track(rig.Broker(tmp, "en").start())
    sub = track(rig.Subscriber(broker))
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go, gap=0.4)).start())
    cfg = rig.config(
        rig.destination("F", broker, discovery=True),
        rig.destination("H", broker, share="hourly"),
    )
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination F connected")
    dongle.wait_log("destination H connected")
    go.set()
    try:
        sub.wait("F/energy_now", 4, timeout=60)
    except AssertionError:
        raise AssertionError(dongle.output) from None
    got = [json.loads(m[1]) for m in sub.on("/energy_now")]
    assert all(m[0] == "hanport/F/energy_now" for m in sub.on("/energy_now"))
    # From the first register on (16:00:10, held while the round its List 2 brought ran,
    # counted at the first reading the dongle sees after the round: 16:59:50, or later
    # where the round outlasts the 3 s pause, as on a slow machine): its value, then at
    # most 1 Wh a second since 16:59:50 (the first reading after a gap of more than 30 s
    # adds nothing); from 17:00:10 on the register and 1 Wh a second since, whichever
    # readings a discovery round hid (the power held over them). A held register that
    # was lost would start the count at 17:00:10.
    assert got[0]["meter_time"] < "2026-01-05T17:00:10", got[0]
    for c in got:
        since = int(c["meter_time"][14:16]) * 60 + int(c["meter_time"][17:19])
        if c["meter_time"] < "2026-01-05T17:00:10":
            most = since - 3590 if since >= 3590 else since + 10  # Wh since 16:59:50
            assert 0 <= round(c["active_energy_import"] * 1000) - (reg - 3000) <= most, c
        else:
            assert round(c["active_energy_import"] * 1000) == reg + since - 10, c
    values = [round(c["active_energy_import"] * 1000) for c in got]
    assert values == sorted(values), got  # never down
    assert got[0]["active_energy_export"] == 0

    assert not [x for x in dongle.output if "energynow" in x], dongle.output
