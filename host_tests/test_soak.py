"""The soak run, short: 4 simulated hours of a three-phase Kaifa meter
through the real pipeline (the firmware's main on the MicroPython unix port, two Debian
mosquittos, the meter simulator), each broker stopped and started three times, across
hourly frames, and one power cut while both destinations hold an hourly message on the
dongle's flash. stress/soak.py runs the same for 24 hours; stress/soak_check.py holds the checks.

With HANPORT_MICROPYTHON (an interpreter with the firmware frozen in) the dongle gets a
96K heap, as on an ESP32; the stock interpreter, which loads the code into its heap, does
not fit two destinations there and gets rig.py's test heap (160K unless HANPORT_TEST_HEAP).
"""

import copy
import json
import os
import shutil

import pytest

import rig
from hanctl import runtime
from stress import soak, soak_check

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

HOURS = 4
# 4 simulated hours in about 95 s wall; the dongle gets 75 frames a second (the scaled
# line), a little over the speed stress/soak.py runs a day at.
SPEED = 150


def heap():
    if runtime.frozen_exe():
        return "96K"
    return os.environ.get("HANPORT_TEST_HEAP", "160K")  # rig.py says why


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return soak.run(hours=HOURS, speed=SPEED, heap=heap(), workdir=tmp_path_factory.mktemp("soak"))


def test_four_hours_with_outages_and_a_power_cut_lose_nothing_and_keep_the_heap(recording):
    s = soak_check.summarise(recording)
    print(soak.report(s))
    assert s["ok"], s["failures"]
    # What ran: every push of the 4 hours (the scaled line drops none), the faults planned.
    assert s["frames_sent"] == {"list1": 5760, "list2": 1435, "list3": 4}
    assert s["frames_skipped"] == 0
    assert len(s["outages"]) == 6 and {o["broker"] for o in s["outages"]} == {"full", "hourly"}
    assert s["reboots"] == [{"at": "02:05", "queued_on_flash": {"full": 1, "hourly": 1}}]
    for name in ("full", "hourly"):
        d = s["destinations"][name]
        e = d["energy"]
        assert (e["sent"], e["expected"], e["received"]) == (4, 4, 4), e
        assert e["missing"] == [] and e["wrong"] == [] and e["in_order"]
        assert d["readings"]["wrong"] == 0
        assert d["stats_received"] > 50  # every second while connected: the heap's samples
    full = s["destinations"]["full"]
    assert full["readings"]["received"] > 4000  # of 7,199: the outages and the reboot aside
    # Per boot, every reading decoded was received or counted as dropped, but for one QoS 0
    # reading at most taken down with each stopped broker (2 stops in boot 0, 1 in boot 1).
    assert full["uncounted"][0] <= 2 and full["uncounted"][1] <= 1, full["uncounted"]
    assert s["destinations"]["hourly"]["readings"]["received"] >= 1  # its live List 3
    h = s["heap"]
    assert h["first"]["samples"] >= 10 and h["last"]["samples"] >= 10
    assert h["last"]["median"] - h["first"]["median"] <= h["bound"]
    assert len(h["per_boot"]) == 2  # before and after the power cut
    assert s["log_problems"] == []


# -- the checks themselves can fail: the same run, altered ------------------------------


def altered(recording, name, keep):
    """A copy of the recording with destination name's messages filtered by keep(m)."""
    rec = copy.copy(recording)
    rec.messages = dict(recording.messages)
    rec.messages[name] = [m for m in recording.messages[name] if keep(m)]
    return rec


def test_a_lost_hourly_message_fails_the_run(recording):
    first = next(m for m in recording.messages["hourly"] if m[1].endswith("/energy"))
    s = soak_check.summarise(altered(recording, "hourly", lambda m: m is not first))
    assert not s["ok"]
    lost = json.loads(first[2])["meter_time"]
    assert s["destinations"]["hourly"]["energy"]["missing"] == [lost]


def test_an_hourly_duplicate_with_other_registers_fails_the_run(recording):
    rec = altered(recording, "full", lambda m: True)
    i = next(i for i, m in enumerate(rec.messages["full"]) if m[1].endswith("/energy"))
    at, topic, payload, retained = rec.messages["full"][i]
    other = json.loads(payload)
    other["active_energy_import"] += 0.001
    rec.messages["full"].insert(i + 1, (at, topic, json.dumps(other).encode(), retained))
    s = soak_check.summarise(rec)
    assert not s["ok"]
    assert s["destinations"]["full"]["energy"]["wrong"] == [other["meter_time"]]
    # The very same message twice is a QoS 1 duplicate, which is allowed.
    rec.messages["full"][i + 1] = (at, topic, payload, retained)
    s = soak_check.summarise(rec)
    assert s["ok"], s["failures"]
    assert s["destinations"]["full"]["energy"]["duplicates"] == 1


def test_live_readings_lost_without_a_count_fail_the_run(recording):
    before = soak_check.summarise(recording)["destinations"]["full"]["uncounted"]
    readings = [m for m in recording.messages["full"] if m[1].endswith("/reading")]
    gone = {id(m) for m in readings[1000:1005]}  # of the first boot
    s = soak_check.summarise(altered(recording, "full", lambda m: id(m) not in gone))
    assert not s["ok"]
    after = s["destinations"]["full"]["uncounted"]
    assert after == [before[0] + 5, before[1]]  # decoded, neither received nor dropped


def test_heap_growth_fails_the_run(recording):
    bound = soak_check.heap_bound(recording)

    def leak(m):
        if not m[1].endswith("/stats"):
            return m
        s = json.loads(m[2])
        s["free_heap"] -= int(bound * 2.5 * (m[0] - start) / (end - start))
        return (m[0], m[1], json.dumps(s).encode(), m[3])

    start, end = recording.sent[0][0], recording.sent[-1][0]
    rec = altered(recording, "full", lambda m: True)
    rec.messages = {n: [leak(m) for m in ms] for n, ms in rec.messages.items()}
    s = soak_check.summarise(rec)
    assert not s["ok"]
    assert any("heap grew" in f for f in s["failures"]), s["failures"]


def test_the_day_plan_crosses_hourly_frames_with_each_broker_and_cuts_power_once():
    events = soak.plan(24)
    down = {"full": [], "hourly": []}
    for at, action, target in events:
        if action == "stop":
            down[target].append([at, None])
        elif action == "start":
            down[target][-1][1] = at
    for target, spans in down.items():
        assert len(spans) == 18  # 3 per 4-hour cycle
        crossed = [h for h in range(24) for a, b in spans if a < h + 10 / 3600 < b]
        assert len(crossed) >= 12, (target, crossed)  # a List 3 comes at hh:00:10
        assert all(b < 24 for a, b in spans)  # all back before the run ends
    kills = [at for at, action, _ in events if action == "kill"]
    assert kills == [14 + 5 / 60]
    # Both brokers are down at the power cut: each destination has an hour on flash.
    assert all(any(a < kills[0] < b for a, b in spans) for spans in down.values())
