"""Home Assistant discovery end to end at a real meter's pace: the firmware's
main on the MicroPython unix port at 96K, Debian's mosquitto, a Kaifa meter pushing List 1
every 2 s and List 2 every 10 s, a "full" and a "live" destination (default interval) with
discovery on one broker; then a reboot under another hostname, whose old configs must go."""

import json
import shutil
import threading
import time

import pytest

import rig
from hanctl import encoder
from hanctl.simulate import Server

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

LIVE_POWER = {"active_power_import", "active_power_export", "reactive_power_import",
              "reactive_power_export"}  # fmt: skip


def retained(broker, topic="homeassistant/#", quiet=1.5):
    """{topic: payload} of what the broker keeps for a subscriber that comes now."""
    sub = rig.Subscriber(broker, topic)
    try:
        n = -1
        while n != len(sub.messages):
            n = len(sub.messages)
            time.sleep(quiet)
        return {t: p for t, p, r, _ in sub.messages if r}
    finally:
        sub.close()


def test_full_and_live_on_one_broker_at_a_real_meters_pace_then_a_new_hostname(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp, "ha").start())
    sub = track(rig.Subscriber(broker))
    # List 2 at 4 s and 14 s (every 10 s, in place of a List 1), List 1 every 2 s between.
    frames = [encoder.kaifa(2 if i % 5 == 2 else 1, {"p_import": 1000 + i}) for i in range(9)]
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go, gap=2.0)).start())
    cfg = rig.config(
        rig.destination("F", broker, discovery=True),
        rig.destination("L", broker, share="live", discovery=True),  # interval: 10 s default
    )
    uart = f"tcp://127.0.0.1:{meter.port}"
    dongle = track(rig.Dongle(tmp / "fs", cfg, uart).start())
    dongle.wait_log("destination F connected")
    dongle.wait_log("destination L connected")
    go.set()
    started = time.monotonic()

    def announced(node):
        return [m for m in sub.on("/config") if f"/{node}/" in m[0] and m[1]]

    rig.wait_for(lambda: announced("hanport-test_L"), timeout=15)
    first = announced("hanport-test_L")[0][3] - started
    assert first < 8, f"the live destination announced itself {first:.1f} s after the meter began"
    rig.wait_for(lambda: len(sub.on("L/reading")) >= 2, timeout=20)
    time.sleep(1.5)  # the last configs of a round
    fields = {}
    for node in ("hanport-test_F", "hanport-test_L"):
        configs = {m[0]: json.loads(m[1]) for m in announced(node)}
        devices = {json.dumps(p["device"], sort_keys=True) for p in configs.values()}
        assert len(devices) == 1, devices  # one device per destination
        base = "hanport/" + node[-1]
        assert all(p["state_topic"].startswith(base + "/") for p in configs.values())
        fields[node] = {t.split("/")[3] for t in configs if "/stats_" not in t}
        assert f"homeassistant/binary_sensor/{node}/stats_meter_silent/config" in configs
    assert fields["hanport-test_L"] == LIVE_POWER  # export and reactive too
    assert fields["hanport-test_F"] > LIVE_POWER | {"voltage_l1"}
    # The live readings: the List 2 at 14 s went out, not only List 1's import.
    live = [json.loads(m[1]) for m in sub.on("L/reading")]
    assert any(LIVE_POWER <= set(r) for r in live), live
    assert not any("6970631401753985" in m[0] + m[1].decode() for m in sub.on("/config")
                   if "hanport-test_L" in m[0])  # fmt: skip
    before = retained(broker)
    assert any("/hanport-test_F/" in t for t in before) and any(
        "/hanport-test_L/" in t for t in before
    )
    dongle.stop()

    # Renamed: the next boot removes every config under the old nodes.
    # (The frame that arrives as the UART connects may be lost: the List 2 comes twice.)
    after_boot = [encoder.kaifa(n) for n in (1, 2, 1, 1, 2)]
    meter2 = track(Server(rig.scripted(after_boot, gap=0.5)).start())
    cfg["hostname"] = "hanport-new"
    track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter2.port}").start())
    n = len(sub.messages)

    def renamed():
        """the new nodes announced"""
        new = [m for m in sub.messages[n:] if "/hanport-new_L/" in m[0] and m[1]]
        return len(new) >= len(LIVE_POWER)

    rig.wait_for(renamed, timeout=20)
    after = retained(broker)
    assert not [t for t in after if "/hanport-test_" in t], sorted(after)
    assert {t.split("/")[3] for t in after if "/hanport-new_L/" in t and "/stats_" not in t} == (
        LIVE_POWER
    )
    removed = {m[0] for m in sub.messages[n:] if m[1] == b"" and m[0].startswith("homeassistant/")}
    assert {t for t in before if "/hanport-test_" in t} <= removed
