"""The dongle end to end, with real parts: the firmware's main on the MicroPython unix port
(96 KB heap), Debian's mosquitto, a meter on a TCP "UART" at 2400-baud pacing."""

import json
import shutil
import threading
import time

import pytest

import rig
from hanctl import encoder
from hanctl.simulate import Server
from reading import to_json

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

ENERGY_FIELDS = (
    "active_energy_import",
    "active_energy_export",
    "reactive_energy_import",
    "reactive_energy_export",
)


def kaifa_day(hours, first_hour=0, power=1000):
    """Kaifa frames: per hour a List 2, a List 1 and the hourly List 3."""
    frames = []
    for h in range(first_hour, first_hour + hours):
        values = {
            "time": (2024, 3, 5, h, 0, 10),
            "p_import": power + h,
            "energy": (100000 + 1000 * h, 5 * h, 300 + h, 4000 + 7 * h),
        }
        frames += [
            encoder.kaifa(2, values),
            encoder.kaifa(1, values),
            encoder.kaifa(3, values),
        ]
    return frames


def test_each_destination_gets_its_share_and_no_one_else_anything(parts):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    b = track(rig.Broker(tmp, "b").start())
    c = track(rig.Broker(tmp, "c").start())  # runs, not configured
    sub_a = track(rig.Subscriber(a))
    sub_b = track(rig.Subscriber(b))
    frames = kaifa_day(2)
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go)).start())
    cfg = rig.config(rig.destination("A", a), rig.destination("B", b, share="hourly"))
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination A connected")
    dongle.wait_log("destination B connected")
    go.set()

    want = rig.expected_readings(frames)
    got = sub_a.wait("A/reading", len(want))
    assert [m[1].decode() for m in got] == [to_json(r) for r in want]  # byte for byte
    assert all(not m[2] for m in got)  # live readings are not retained

    energy_a = sub_a.wait("A/energy", 2)
    hourly = [r for r in want if "active_energy_import" in r]
    assert [json.loads(m[1]) for m in energy_a] == [
        {k: json.loads(to_json(r))[k] for k in ENERGY_FIELDS + ("meter_time", "meter_id")}
        for r in hourly
    ]

    energy_b = sub_b.wait("B/energy", 2)
    for m, r in zip(energy_b, hourly, strict=True):
        assert json.loads(m[1]) == {
            k: json.loads(to_json(r))[k] for k in ENERGY_FIELDS + ("meter_time",)
        }
    assert sub_b.on("B/reading")
    for m in sub_b.on("B/reading"):  # hourly: energy registers and their time, nothing else
        assert set(json.loads(m[1])) <= set(ENERGY_FIELDS) | {"meter_time"}
    assert c.connections() == []


def test_broker_outage_and_reboot_lose_no_hourly_message(parts):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    go = threading.Event()
    frames = [(2.0, None)] + kaifa_day(3, first_hour=1) + [(4.0, None)] + kaifa_day(2, 4)
    meter = track(Server(rig.scripted(frames, go, gap=0.1)).start())
    cfg = rig.config(rig.destination("A", a))
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination A connected")
    a.stop()  # the broker dies before the first hourly frame
    go.set()
    time.sleep(9)  # hours 1-3 arrive while it is down
    a.start()
    sub = track(rig.Subscriber(a, "hanport/A/energy"))
    got = sub.wait("A/energy", 3, timeout=30)
    times = [json.loads(m[1])["meter_time"][11:13] for m in got]
    assert times[:3] == ["01", "02", "03"]  # oldest first, each once

    a.stop()
    time.sleep(6)  # hours 4 and 5 queue on the dongle's flash...
    dongle.kill()  # ...and the power goes
    assert "queue-A.jsonl" in {p.name for p in (tmp / "fs").iterdir()}
    a.start()
    sub2 = track(rig.Subscriber(a, "hanport/A/energy"))
    dongle2 = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle2.wait_log("destination A connected")
    got = sub2.wait("A/energy", 2, timeout=30)
    times = [json.loads(m[1])["meter_time"][11:13] for m in got if not m[2]]
    assert times[:2] == ["04", "05"]


def test_noise_and_truncated_frames_are_counted_and_the_next_good_one_published(parts):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(a))
    good = encoder.kaifa(2, {"p_import": 4321})
    frames = [b"\x00\x13\xff\x55\x55", good[:40], (0.5, None), good]
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go)).start())
    cfg = rig.config(rig.destination("A", a))
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination A connected")
    go.set()
    (reading,) = [json.loads(m[1]) for m in sub.wait("A/reading")]
    assert reading["active_power_import"] == 4321
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = sub.json("A/stats")
        if stats and stats[-1]["rejected"].get("truncated"):
            break
        time.sleep(0.2)
    s = stats[-1]
    assert s["rejected"]["truncated"] == 1
    assert s["noise_bytes"] == 5 and s["bytes_received"] == 5 + 40 + len(good)
    assert s["frames"]["hdlc"] == 1 and s["readings"] == 1


@pytest.mark.parametrize("kind", ["missing", "truncated", "wrong type", "misspelt key"])
def test_missing_or_broken_config_publishes_nothing(parts, kind):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    meter = track(Server(rig.scripted(kaifa_day(1))).start())
    # Each names broker a as far as it can: a dongle that ignored the problem would connect.
    good = json.dumps(rig.config(rig.destination("A", a)))
    content = {
        "missing": None,
        "truncated": good[: len(good) // 2],
        "wrong type": good.replace('"port": ', '"port": "').replace(', "tls"', '", "tls"'),
        "misspelt key": good.replace('"share"', '"shares"'),
    }[kind]
    dongle = track(rig.Dongle(tmp / "fs", content, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("safe state")
    assert any("hanport: config: " in line for line in dongle.output)
    time.sleep(3)
    assert dongle.proc.poll() is None  # waiting for a fixed config, not crash-looping
    assert a.connections() == []


def test_p1_energy_is_queued_once_per_meter_hour(parts):
    """A P1 meter prints its registers in every telegram; the energy topic (and the queue on
    flash behind it) gets one message per meter hour."""
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(a))

    def telegram(hour, second, kwh):
        return encoder.p1(
            "KFM5KAIFA-METER",
            [f"0-0:1.0.0(240105{hour}00{second:02d}W)", f"1-0:1.8.0({kwh:010.3f}*kWh)"],
        )

    frames = [telegram(13, s, 100 + s / 1000) for s in range(0, 8)]
    frames += [telegram(14, 1, 101.0)]  # the next hour
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go, gap=0.1)).start())
    cfg = rig.config(rig.destination("A", a))
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination A connected")
    go.set()
    sub.wait("A/reading", len(frames))
    energy = [json.loads(m[1]) for m in sub.wait("A/energy", 2)]
    assert [e["meter_time"] for e in energy] == ["2024-01-05T13:00:00", "2024-01-05T14:00:01"]


def test_a_config_is_checked_once_and_an_edit_is_checked_again(parts):
    """A new config.json is validated, its checked copy written, and the board restarts
    into it; the next boot of the same file skips the validator (whose names would stay
    in the heap for good). An edit, good or bad, is validated again: a broken edit never
    runs on the old checked copy."""
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    meter = track(Server(rig.scripted(kaifa_day(1))).start())
    uart = f"tcp://127.0.0.1:{meter.port}"
    cfg = rig.config(rig.destination("A", a))

    first = track(rig.Dongle(tmp / "fs", cfg, uart).start())
    first.wait_log("destination A connected")
    first.stop()
    assert sum("restarting into it" in x for x in first.output) == 1
    assert sum("on unix" in x for x in first.output) == 2  # two boots
    checked = json.loads((tmp / "fs" / "config.checked").read_text())
    assert checked["config"]["destinations"][0]["name"] == "A"

    again = track(rig.Dongle(tmp / "fs", cfg, uart).start())  # a reboot, same file
    again.wait_log("destination A connected")
    again.stop()
    assert not any("restarting" in x for x in again.output)

    # A firmware update: the copy an older version checked is checked again.
    checked["version"] = "0.0.1"
    (tmp / "fs" / "config.checked").write_text(json.dumps(checked))
    updated = track(rig.Dongle(tmp / "fs", cfg, uart).start())
    updated.wait_log("destination A connected")
    updated.stop()
    assert sum("restarting into it" in x for x in updated.output) == 1

    broken = json.dumps(cfg).replace('"share"', '"shares"')
    edited = track(rig.Dongle(tmp / "fs", broken, uart).start())
    edited.wait_log("safe state")
    assert any("destinations[0].shares: unknown key" in x for x in edited.output)
    assert not any("destination A connected" in x for x in edited.output)


def test_a_config_left_in_its_temp_file_runs_without_a_restart_loop(parts):
    """A power cut between removing config.json and renaming config.json.tmp (FAT's rename)
    leaves only the temp file: it is taken back as config.json (store.recover), checked
    like a new one, and the dongle restarts into it once, not in a loop."""
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    meter = track(Server(rig.scripted(kaifa_day(1))).start())
    (tmp / "fs").mkdir()
    (tmp / "fs" / "config.json.tmp").write_text(json.dumps(rig.config(rig.destination("A", a))))
    dongle = track(rig.Dongle(tmp / "fs", None, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination A connected")
    time.sleep(1)
    dongle.stop()
    assert sum("on unix" in x for x in dongle.output) == 2  # the check, then the dongle
    assert sum("restarting" in x for x in dongle.output) == 1
    assert (tmp / "fs" / "config.json").exists() and not (tmp / "fs" / "config.json.tmp").exists()
