"""Against a real Home Assistant (opt-in): the dongle's discovery, states, expiry,
the Energy dashboard's validation and removals as Home Assistant itself takes them. Not in
the default suite: it needs a Home Assistant of its own, named by HANPORT_HA (its python), and
takes 2-5 min. `./dev test-ha` makes one per version (host_tests/ha/env) and runs this on each:

    ./dev test-ha                # 2024.1.6, 2025.4.4, 2026.1.3
    HANPORT_HA=$(host_tests/ha/env 2026.1.3) .venv/bin/pytest host_tests/test_ha_real.py -q

2024.1 runs on Debian 12's Python 3.11 and is older than device serial numbers; both
2024.1 and 2025.4 are older than the reactive_energy device class (2025.7): what hanport
announces must work there too.
Home Assistant runs as `python -m homeassistant` with an MQTT config entry on the test's
mosquitto and mqtt_statestream, which publishes every entity's state and attributes back
to the broker (ha_states/<domain>/<object id>/...): the test reads them there, the device and
entity registries from Home Assistant's .storage files, and the Energy dashboard's validation
from its websocket API, logged in as an owner that onboarding made.
"""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

import rig
from hanctl import encoder
from hanctl.simulate import Server

HA = os.environ.get("HANPORT_HA")
pytestmark = pytest.mark.skipif(not HA, reason="HANPORT_HA (a Home Assistant's python) unset")

CONFIG = """homeassistant:
  name: hanport-test
  latitude: 59.9
  longitude: 10.7
  elevation: 0
  unit_system: metric
  time_zone: Europe/Oslo
  country: "NO"
http:
  server_port: {http}
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
mqtt_statestream:
  base_topic: ha_states
  publish_attributes: true
recorder:
  commit_interval: 1
energy:
onboarding:
"""
METER_ID = "6970631401753985"
LIVE_POWER = {"active_power_import", "active_power_export", "reactive_power_import",
              "reactive_power_export"}  # fmt: skip


class HomeAssistant:
    def __init__(self, tmp, broker):
        self.dir = Path(tmp) / "ha"
        (self.dir / ".storage").mkdir(parents=True)
        self.http = rig.free_port()
        (self.dir / "configuration.yaml").write_text(CONFIG.format(http=self.http))
        entry = {
            "entry_id": "0123456789abcdef0123456789abcdef", "version": 1, "minor_version": 1,
            "domain": "mqtt", "title": "mosquitto", "options": {}, "source": "user",
            "data": {"broker": "127.0.0.1", "port": broker.port, "discovery": True,
                     "discovery_prefix": "homeassistant"},
            "pref_disable_new_entities": False, "pref_disable_polling": False,
            "unique_id": None, "disabled_by": None,
        }  # fmt: skip
        entries = {"version": 1, "minor_version": 1, "key": "core.config_entries",
                   "data": {"entries": [entry]}}  # fmt: skip
        (self.dir / ".storage" / "core.config_entries").write_text(json.dumps(entries))
        self.log = self.dir / "ha.log"
        self.proc = None

    def start(self):
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [HA, "-m", "homeassistant", "-c", str(self.dir), "--skip-pip"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        # What the MQTT client logs once connected: before 2025, and since.
        said = ("Connected to MQTT server", "MQTT client initialized, birth message sent")
        rig.wait_for(lambda: any(x in self.log.read_text() for x in said), timeout=90,
                     why="Home Assistant connected to the broker")  # fmt: skip
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def registry(self, name):
        """A .storage registry's data (Home Assistant writes it some seconds after a change)."""
        path = self.dir / ".storage" / name
        return json.loads(path.read_text())["data"] if path.exists() else {}

    def owner(self):
        """An access token for the owner, made as a new owner does: onboarding's first user,
        whose authorization code is exchanged at /auth/token."""
        base = f"http://127.0.0.1:{self.http}"
        client = f"{base}/"
        user = {"client_id": client, "name": "Owner", "username": "owner",
                "password": "a-test-password", "language": "en"}  # fmt: skip
        code = post(f"{base}/api/onboarding/users", json.dumps(user).encode(), "application/json")
        form = urllib.parse.urlencode({"client_id": client, "grant_type": "authorization_code",
                                       "code": code["auth_code"]})  # fmt: skip
        token = post(f"{base}/auth/token", form.encode(), "application/x-www-form-urlencoded")
        return token["access_token"]

    def ask(self, token, *commands):
        """The results of websocket API commands, in order, as the frontend sends them."""
        with connect(f"ws://127.0.0.1:{self.http}/api/websocket") as ws:
            assert json.loads(ws.recv(10))["type"] == "auth_required"
            ws.send(json.dumps({"type": "auth", "access_token": token}))
            assert json.loads(ws.recv(10))["type"] == "auth_ok"
            out = []
            for n, command in enumerate(commands, 1):
                ws.send(json.dumps({"id": n, **command}))
                answer = json.loads(ws.recv(30))
                assert answer["success"], answer
                out.append(answer["result"])
            return out

    def errors(self):
        return [x for x in self.log.read_text().splitlines() if " ERROR " in x or "rror '" in x]


def post(url, body, kind):
    request = urllib.request.Request(url, body, {"Content-Type": kind})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def states(sub):
    """{entity id: state} of the latest ha_states/<domain>/<object id>/state messages."""
    out = {}
    for topic, payload, _, _ in sub.on("/state"):
        _, domain, object_id, _ = topic.split("/")
        out[f"{domain}.{object_id}"] = payload.decode()
    return out


def started(parts):
    """(tmp, track, broker, Home Assistant, a subscriber to every topic), all started."""
    tmp, track = parts
    if not shutil.which("mosquitto") and not Path(rig.MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed")
    broker = track(rig.Broker(tmp, "ha-broker").start())
    ha = HomeAssistant(tmp, broker).start()
    track(ha)
    return tmp, track, broker, ha, track(rig.Subscriber(broker))


def test_home_assistant_takes_what_hanport_announces(parts):
    tmp, track, broker, ha, sub = started(parts)
    values = {"p_import": 1500}
    frames = [encoder.kaifa(n, values) for n in (1, 2, 1, 3, 1, 2)]
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go, gap=1.0)).start())
    cfg = rig.config(
        rig.destination("F", broker, discovery=True),
        rig.destination("L", broker, share="live", interval=1, discovery=True),
    )
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination F connected")
    dongle.wait_log("destination L connected")
    go.set()

    # -- one device per destination's share, every config taken -------------------------
    def configs(node):
        return {m[0]: json.loads(m[1]) for m in sub.on("/config") if f"/{node}/" in m[0] and m[1]}

    def entities():
        """every announced entity in Home Assistant's entity registry"""
        reg = {e["unique_id"]: e for e in ha.registry("core.entity_registry").get("entities", ())}
        want = [p["unique_id"] for n in ("hanport-test_F", "hanport-test_L")
                for p in configs(n).values()]  # fmt: skip
        return want and all(u in reg for u in want) and reg

    reg = rig.wait_for(entities, timeout=60)
    devices = {d["id"]: d for d in ha.registry("core.device_registry")["devices"]}
    ours = {e["device_id"] for e in reg.values() if e["unique_id"].startswith("hanport_")}
    assert sorted(devices[d]["name"] for d in ours) == ["hanport-test F", "hanport-test L"]
    live = {e["unique_id"] for e in reg.values() if "hanport-test_L" in e["unique_id"]}
    assert all(METER_ID not in u for u in live)
    assert not [e for e in ha.errors() if "hanport" in e or "discovery" in e.lower()], ha.errors()

    # -- states equal the payloads (reactive energy without device class included) ------
    full = configs("hanport-test_F")
    energy = json.loads(sub.wait("F/energy")[-1][1])

    def equal():
        """Home Assistant's state of every field equal to the last payload"""
        got = states(sub)
        reading = {}
        for m in sub.on("F/reading"):
            reading.update(json.loads(m[1]))
        for topic, p in full.items():
            field = topic.split("/")[3]
            if field.startswith("stats_"):
                continue
            value = (energy if p["state_topic"].endswith("/energy") else reading).get(field)
            state = got.get(p["default_entity_id"])
            if value is None or state is None or float(state) != float(value):
                return False
        return True

    rig.wait_for(equal, timeout=30)
    got = states(sub)
    assert got["sensor.hanport_test_f_reactive_energy_import"] == str(
        energy["reactive_energy_import"]
    )
    assert got["binary_sensor.hanport_test_f_stats_meter_silent"] == "off"
    assert float(got["sensor.hanport_test_f_stats_frames"]) >= 1

    # -- the Energy dashboard: grid import and export, validated as its page does ------------
    grid = {
        "type": "grid", "cost_adjustment_day": 0,
        "flow_from": [{"stat_energy_from": "sensor.hanport_test_f_active_energy_import",
                       "stat_cost": None, "entity_energy_price": None,
                       "number_energy_price": None}],
        "flow_to": [{"stat_energy_to": "sensor.hanport_test_f_active_energy_export",
                     "stat_compensation": None, "entity_energy_price": None,
                     "number_energy_price": None}],
    }  # fmt: skip
    token = ha.owner()
    ha.ask(token, {"type": "energy/save_prefs", "energy_sources": [grid]})

    def energy_issues():
        """the Energy dashboard's validation issues for the grid source"""
        (validation,) = ha.ask(token, {"type": "energy/validate"})
        return {i["type"] for i in validation["energy_sources"][0]}

    # Until the recorder's first 5-minute statistics of the sensors, the one issue allowed is
    # that they have none yet; every check of the entities themselves passes at once.
    assert energy_issues() <= {"statistics_not_defined"}

    # -- expiry: the meter falls silent ---------------------------------------------------
    def expired():
        """power unavailable and the meter silent, 30 s after the last frame"""
        s = states(sub)
        return (s.get("sensor.hanport_test_f_active_power_import") == "unavailable"
                and s.get("binary_sensor.hanport_test_f_stats_meter_silent") == "on")  # fmt: skip

    rig.wait_for(expired, timeout=75)
    assert states(sub)["sensor.hanport_test_f_active_energy_import"] != "unavailable"  # 2 h

    # The Energy dashboard with no issue once the statistics are compiled (the recorder does
    # so 10 s past every fifth minute: up to 5 min here).
    def clean():
        time.sleep(2)
        return not energy_issues()

    rig.wait_for(clean, timeout=330, why="an Energy dashboard with no issue")
    dongle.stop()

    # -- stale entities: the dongle renamed ---------------------------------------------
    meter2 = track(Server(rig.scripted([encoder.kaifa(n) for n in (1, 2, 1, 2)], gap=0.5)).start())
    cfg["hostname"] = "hanport-new"
    track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter2.port}").start())

    def renamed():
        """the old entities gone from the registry, the new ones there"""
        ids = [e["unique_id"] for e in ha.registry("core.entity_registry").get("entities", ())]
        old = [u for u in ids if "hanport-test_" in u]
        new = [u for u in ids if "hanport-new_L" in u]
        return not old and len(new) >= len(LIVE_POWER)

    rig.wait_for(renamed, timeout=60)
    names = sorted(d["name"] for d in ha.registry("core.device_registry")["devices"]
                   if d["name"] and d["name"].startswith("hanport"))  # fmt: skip
    assert names == ["hanport-new F", "hanport-new L"], names


# -- Energy in the right hour: Home Assistant's own statistics of the dongle's states ------
# A meter hour is five minutes of the wall clock here (the meter's clock runs 12 times as
# fast, its hours starting on the wall's five-minute marks), so that the recorder's
# 5-minute statistics, compiled by Home Assistant from the states it received, as its
# hourly ones are (they are made of the 5-minute ones), stand for the hours. What that
# leaves unshown: an hourly row itself, and the meter's real cadence (a reading every 12
# meter seconds here, every 2 s on a real meter: the count misses more between readings).
SPEED = 12  # meter seconds per wall second
HOURS = int(os.environ.get("HANPORT_HA_HOURS", "2"))  # meter hours measured


def compressed_meter(w0, hours, seed=16):
    """(chunks for simulate.Server, registers): a Kaifa whose clock reads 16:00:00 at wall
    time w0 - 300 and runs SPEED times as fast; List 1 every 12 meter seconds, List 2 every
    60, List 3 at hh:00:10 with the registers of hh:00:00. The house's power changes at
    random meter seconds (a 2 kW heater on and off) with noise each second; the registers
    are its integral (whole Wh), made here. registers: {meter hour: Wh at its start},
    filled as the meter runs."""
    import random

    registers = {}
    start = w0 - 300 - 180 / SPEED  # the meter starts at 15:57:00

    def chunks():
        rnd = random.Random(seed)
        ws, w, s = 7_000_000 * 3600, 1800, 0
        while True:
            hour, rest = divmod(s + 15 * 3600 + 57 * 60, 3600)
            when = (2026, 1, 5, hour % 24, rest // 60, rest % 60)
            if rest == 0:
                registers[hour] = ws // 3600
            frame = None
            if rest == 10 and hour in registers:
                energy = (registers[hour], 0, 130480, 15319720)
                frame = encoder.kaifa(3, {"time": when, "p_import": w, "energy": energy})
            elif s % 12 == 0:
                frame = encoder.kaifa(2 if s % 60 == 0 else 1, {"time": when, "p_import": w})
            if frame is not None:
                yield max(0.0, start + s / SPEED - time.time()), b""
                yield 0, frame
            if rnd.random() < 1 / 600:
                w = 1800 + 2000 * rnd.randrange(0, 2)
            ws += max(0, w + rnd.randrange(-80, 81))
            s += 1

    return chunks(), registers


def test_home_assistant_books_each_meter_hour_in_its_own_hour(parts):
    tmp, track, broker, ha, sub = started(parts)
    # The first measured hour starts on a five-minute mark, the meter's hour before it
    # (16:00) whole before it, and the three minutes before that from 30 s on.
    w0 = (int(time.time()) + 30 + 315 + 299) // 300 * 300
    chunks, registers = compressed_meter(w0, HOURS)
    meter = track(Server(chunks).start())
    # Two dongles on the one meter, one destination each (two with discovery on one dongle
    # are at the edge of 96K, and a round that runs out of memory would hide readings): a
    # full share (the registers counted on) and an hourly one (the registers alone).
    full = rig.config(rig.destination("F", broker, discovery=True))
    hourly = rig.config(rig.destination("H", broker, share="hourly", discovery=True))
    hourly["hostname"] = "hanport-reg"
    uart = f"tcp://127.0.0.1:{meter.port}"
    track(rig.Dongle(tmp / "fs", full, uart).start())
    track(rig.Dongle(tmp / "fs2", hourly, uart).start())
    imp = "sensor.hanport_%s_active_energy_import"

    def topic_of(node):
        c = [json.loads(m[1]) for m in sub.on("/active_energy_import/config") if node in m[0]]
        return c and c[-1]["state_topic"]

    assert rig.wait_for(lambda: topic_of("_F/"), timeout=w0 - time.time()).endswith("/energy_now")
    assert rig.wait_for(lambda: topic_of("_H/"), timeout=30).endswith("/energy")
    token = ha.owner()
    last = w0 + 300 * HOURS
    time.sleep(max(0, last - time.time() + 5))

    def statistics():
        """{entity: [(period start, sum Wh)]} of the 5-minute statistics from w0 - 300 on"""
        (got,) = ha.ask(token, {
            "type": "recorder/statistics_during_period", "period": "5minute",
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w0 - 300)),
            "statistic_ids": [imp % "test_f", imp % "reg_h"],
            "types": ["sum", "state"]})  # fmt: skip
        out = {}
        for entity, rows in got.items():
            start = [r["start"] / 1000 if r["start"] > 1e11 else r["start"] for r in rows]
            out[entity] = [(t, round(r["sum"] * 1000)) for t, r in zip(start, rows, strict=True)]
        return out

    def compiled():
        s = statistics()
        return all(len([t for t, _ in s.get(e, ()) if w0 <= t < last]) == HOURS
                   for e in (imp % "test_f", imp % "reg_h")) and s  # fmt: skip

    stats = rig.wait_for(compiled, timeout=60, why="the recorder's 5-minute statistics")
    rows = []
    for k in range(1, HOURS + 1):
        hour = 16 + k  # the meter hour booked in the k-th measured period
        true = registers[hour + 1] - registers[hour]
        got = {}
        for e, entity in (("f", "test_f"), ("h", "reg_h")):
            s = dict(stats[imp % entity])
            # A sensor's first period books the growth from its first state (the counted
            # one's is at 17:00:10: energynow comes at the register after the round that
            # 16:00:10's fields brought), as Home Assistant's recorder does.
            got[e] = s[w0 + 300 * (k - 1)] - s.get(w0 + 300 * (k - 2), 0)
        rows.append((hour, true, got["f"], got["h"], registers[hour] - registers[hour - 1]))
    for hour, true, f, h, before in rows:
        print(
            f"meter hour {hour}:00  registers {true} Wh  counted sensor {f} Wh "
            f"(error {f - true:+d} Wh, {100 * (f - true) / true:+.2f} %)  "
            f"registers-only sensor {h} Wh (the hour before: {before} Wh)"
        )
    # The registers alone: each hour's kWh lands in the hour after, exactly.
    assert all(h == before for _, _, _, h, before in rows), rows
    # The count: each hour's own kWh, within what 12 s between readings misses.
    assert all(abs(f - true) <= max(40, true // 50) for _, true, f, _, _ in rows), rows
    # Never down, and from the register at each hour's start.
    counts = [(json.loads(m[1])["meter_time"], json.loads(m[1])["active_energy_import"])
              for m in sub.on("F/energy_now")]  # fmt: skip
    values = [round(v * 1000) for _, v in counts]
    assert values == sorted(values), counts
    for (t, v), before in zip(counts, [0, *values], strict=False):
        if t.endswith(":00:10") and int(t[11:13]) in registers:
            # 10 s of at most 3.9 kW since hh:00:00, or the count before it held
            v, reg = round(v * 1000), registers[int(t[11:13])]
            assert reg <= v <= reg + 11 or v == before, (t, v, reg, before)
