"""Home Assistant as it really behaves, at the destination's level: a real
meter's cadence on a fake clock, one node per destination, the removal of what was
announced before, diagnostics and expiry; then the validator's messages for it.

The destination (destination.py) and discovery (discovery.py) run as on the dongle, under
CPython: offer() per reading at the meter's pace, then _flush() with a client that records
what it would publish. store's load_json/save_json keep the record in a temp folder."""

import asyncio
import json
from types import SimpleNamespace

import pytest

import config
import destination
import discovery
import obis
import rig
import store
from hanctl import encoder

METER_ID = "6970631401753985"  # hanctl's Kaifa frames
HOST = "hanport-1a2b3c"
LIVE_POWER = ["active_power_import", "active_power_export", "reactive_power_import",
              "reactive_power_export"]  # fmt: skip
LIST1, LIST2, LIST3 = rig.expected_readings(
    [encoder.kaifa(n, {"p_import": 1000 + n}) for n in (1, 2, 3)]
)


class Clock:
    """time for destination.py: ticks_ms from the test, which moves it."""

    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def time(self):
        return 1_700_000_000 + self.ms // 1000


class Client:
    """What the destination publishes, with the clock's time of each."""

    def __init__(self, clock):
        self.clock = clock
        self.connected = True
        self.dropped = 0
        self.ack_ms = None
        self.sent = []  # (ms, topic, payload bytes, retain)
        self._sending = False  # as mqtt.MQTTClient's: Destination.acquire() waits on it

    async def publish(self, topic, payload, retain=False, qos=0, release=None):
        self.sent.append((self.clock.ms, topic, bytes(payload), retain))
        if release is not None:  # the payload is copied: the shared buffer is free
            release()

    def configs(self, since=0):
        return [(t, p) for ms, t, p, _ in self.sent[since:] if t.startswith("homeassistant/")]


class Outbox(list):
    """The outage queue in RAM (outbox.py writes a memoryview to a text file, which only
    MicroPython's takes; test_power_loss proves the file)."""

    dropped = 0

    def append(self, text):
        super().append(bytes(text))

    def peek(self):
        return self[0]

    def pop(self):
        del self[0]


def dest_cfg(name="ha", share="full", hostname=HOST, **extra):
    """A destination as config.validate() fills it in (defaults: interval 10 s, stats 60 s)."""
    d = {"name": name, "host": "127.0.0.1", "share": share, "discovery": True, "topic": "h/" + name}
    d.update(extra)
    cfg, problems = config.validate({"hostname": hostname, "destinations": [d]}, unix=True)
    assert not problems, problems
    return cfg["destinations"][0]


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(destination, "time", c)
    return c


def make(tmp_path, clock, cfg, hostname=HOST, salt="the-dongle-secret", tariff=False):
    """A Destination as dongle.py makes it, its state folder tmp_path, connected."""
    uptime = SimpleNamespace(seconds=lambda: clock.ms // 1000)
    d = destination.Destination(
        cfg, hostname, lambda dest: {"destination": dest.counters()}, uptime,
        state_dir=str(tmp_path) + "/", files=(store.load_json, store.save_json), salt=salt,
        tariff=tariff,
    )  # fmt: skip
    d.outbox = Outbox()
    d.client = Client(clock)
    d._discover = True  # as _session() does on connect
    d._stats_at = -d._stats_ms  # stats right away, as _session()
    return d


def offer(d, clock, reading, at_ms):
    clock.ms = at_ms
    d.offer(reading, at_ms)
    asyncio.run(d._flush(d.client))


def kaifa_at_real_pace(seconds, first_list2_s=4):
    """(ms, reading): List 1 every 2 s, List 2 every 10 s (in place of a List 1), as a
    Kaifa MA304 pushes; the dongle boots in the middle of a cycle."""
    out = []
    for t in range(0, seconds, 2):
        out.append((t * 1000, LIST2 if t % 10 == first_list2_s else LIST1))
    return out


def fields_of(configs):
    """The reading fields of (topic, payload) configs, removals (empty payloads) left out."""
    return {
        t.split("/")[3] for t, p in configs if "/sensor/" in t and "/stats_" not in t and p != b""
    }


# -- 1: a live destination announces itself at a real meter's pace --------------------------


def test_a_live_share_announces_itself_at_the_first_list_2_with_every_power_field(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("live", share="live"))
    assert d.cfg["interval"] == 10  # the default, which the tests' interval 1 hid
    for ms, reading in kaifa_at_real_pace(60):
        offer(d, clock, reading, ms)
    client = d.client
    configs = [(ms, t) for ms, t, p, _ in client.sent if t.startswith("homeassistant/")]
    assert configs, "a live destination never announced itself"
    assert configs[0][0] == 4000  # at the first List 2: it names the meter
    announced = fields_of(client.configs())
    assert announced == set(LIVE_POWER)  # export and reactive too, not only List 1's import
    # The live readings: one per interval at most, and not locked onto List 1 (power import
    # alone): every one after the first carries all four.
    live = [(ms, json.loads(p)) for ms, t, p, _ in client.sent if t == "h/live/reading"]
    gaps = [b[0] - a[0] for a, b in zip(live, live[1:], strict=False)]
    assert len(live) >= 4 and min(gaps) >= 10000, [ms for ms, _ in live]
    assert all(set(LIVE_POWER) <= set(r) for _, r in live[1:]), live
    for _, p in client.configs():
        assert METER_ID not in p.decode()


def test_the_full_share_announces_at_the_first_list_2_too(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("full"))
    for ms, reading in kaifa_at_real_pace(12):
        offer(d, clock, reading, ms)
    first = next(ms for ms, t, _, _ in d.client.sent if t.startswith("homeassistant/sensor/"))
    assert first == 4000
    assert fields_of(d.client.configs()) >= set(LIVE_POWER) | {"voltage_l1", "current_l3"}


def test_a_meter_that_never_names_itself_is_announced_after_15_readings(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("live", share="live"))
    for i in range(14):
        offer(d, clock, LIST1, i * 2000)
    assert d.client.configs() == []  # a List 2 with the id may still come
    offer(d, clock, LIST1, 28000)
    configs = d.client.configs()
    assert fields_of(configs) == {"active_power_import"}
    p = json.loads(next(p for t, p in configs if t.endswith("_live/active_power_import/config")))
    assert p["unique_id"] == "hanport_hanport-1a2b3c_live_active_power_import"
    # The id comes later: the ids change, and the configs under the old ones are removed.
    n = len(d.client.sent)
    offer(d, clock, LIST2, 30000)
    later = d.client.configs(n)
    empty = [t for t, p in later if p == b""]
    assert "homeassistant/sensor/hanport-1a2b3c_live/active_power_import/config" in empty
    new = [json.loads(p) for t, p in later if p and t.endswith("_import/config")]
    assert new and new[0]["unique_id"].startswith("hanport_h")  # the salted hash of the id
    assert later.index((empty[0], b"")) < len(later) - len(new)  # removed, then announced


def test_a_round_with_no_memory_keeps_the_session_and_comes_again_after_a_doubling_wait(
    tmp_path, clock, monkeypatch
):
    """At 96K beside the tariff the import of discovery's code can find no memory. The
    session ended then, and the next one's round found none either: a standing loop that
    published no reading (4 runs in 20 beside two busy loops, with the hourly energy's count
    loaded). Now the readings go on, counted and said, and the round comes again after 1 s,
    2 s, 4 s ... 64 s at most, for every destination (the heap is the dongle's); one that
    finds room starts the waits over. Imported outside the round's try, the round stayed
    marked as under way until a reboot."""
    import sys

    monkeypatch.setattr(destination, "_announcing", None)  # restored, whatever happens
    monkeypatch.setattr(destination, "_no_room", None, raising=False)
    d = make(tmp_path, clock, dest_cfg("full"))
    other = make(tmp_path, clock, dest_cfg("live", share="live"))
    tried = []

    class NoRoom:  # the import machinery's view of a heap with no room for the module
        def find_spec(self, name, path=None, target=None):
            if name == "discovery":
                tried.append(clock.ms)
                raise MemoryError("memory allocation failed, allocating 256 bytes")

    monkeypatch.delitem(sys.modules, "discovery", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoRoom(), *sys.meta_path])
    offer(d, clock, LIST2, 4000)  # no MemoryError out of _flush: the session goes on
    assert destination._announcing is None
    assert d.client.configs() == []
    assert (d.failures, d.last_error) == (1, "memory: discovery round")
    assert d.client.connected and d._discover
    for ms in range(4500, 200_000, 500):  # a reading every 0.5 s, to each destination
        offer(d, clock, LIST1, ms)
        offer(other, clock, LIST2, ms + 250)
    waits = [b - a for a, b in zip(tried, tried[1:], strict=False)]
    assert waits[:7] == [1000, 2000, 4000, 8000, 16000, 32000, 64000], waits
    assert set(waits[7:]) == {64000}, waits  # at most
    readings = [t for _, t, _, _ in d.client.sent if t == "h/full/reading"]
    assert len(readings) == 1 + len(range(4500, 200_000, 500))  # every one went out
    assert d.client.configs() == [] and other.client.configs() == []
    sys.meta_path.pop(0)  # room again
    now = tried[-1] + 64000
    offer(d, clock, LIST1, now)  # the round, at the end of the wait
    assert fields_of(d.client.configs()) >= set(LIVE_POWER)
    assert destination._no_room is None  # found room: the waits start over
    offer(other, clock, LIST2, now + 500)
    assert fields_of(other.client.configs()) >= set(LIVE_POWER)


def test_a_round_whose_packet_is_cut_by_no_memory_ends_the_session(tmp_path, clock):
    """A MemoryError inside a publish may leave part of a packet in the stream, and
    mqtt.MQTTClient then closes itself: the session ends (counted, retried), as any
    session's error, and the next one has its round."""

    class CutClient(Client):
        async def publish(self, topic, payload, retain=False, qos=0, release=None):
            if topic.startswith("homeassistant/"):
                self.connected = False  # as mqtt.py _send() does for a packet cut short
                raise MemoryError("memory allocation failed, allocating 512 bytes")
            await super().publish(topic, payload, retain, qos, release)

    d = make(tmp_path, clock, dest_cfg("full"))
    d.client = CutClient(clock)
    with pytest.raises(MemoryError):
        offer(d, clock, LIST2, 4000)
    assert destination._announcing is None and getattr(destination, "_no_room", None) is None
    d.client = Client(clock)  # the next session
    d._discover = True  # as _session() sets it at connect
    offer(d, clock, LIST2, 6000)
    assert fields_of(d.client.configs()) >= set(LIVE_POWER)


# -- 2: one node, device and set of unique ids per destination ------------------------------


def test_two_destinations_on_one_broker_never_share_a_topic_an_id_or_a_device(tmp_path, clock):
    full = make(tmp_path, clock, dest_cfg("full"))
    live = make(tmp_path, clock, dest_cfg("live", share="live"))
    for ms, reading in kaifa_at_real_pace(12):
        for d in (full, live):
            offer(d, clock, reading, ms)
    seen = {}
    for d in (full, live):
        configs = {t: json.loads(p) for t, p in d.client.configs() if p}
        assert all(f"/{HOST}_{d.name}/" in t for t in configs)
        devices = {json.dumps(p["device"], sort_keys=True) for p in configs.values()}
        assert len(devices) == 1  # every entity of a destination on its one device
        device = json.loads(devices.pop())
        assert device["name"] == f"{HOST} {d.name}"
        for p in configs.values():
            assert p["availability_topic"] == f"h/{d.name}/status"
            assert p["state_topic"].startswith(f"h/{d.name}/")
            assert p["object_id"].startswith(f"hanport_1a2b3c_{d.name}_")
        seen[d.name] = (set(configs), {p["unique_id"] for p in configs.values()}, device)
    assert seen["full"][0].isdisjoint(seen["live"][0])  # topics
    assert seen["full"][1].isdisjoint(seen["live"][1])  # unique ids
    assert seen["full"][2]["identifiers"] != seen["live"][2]["identifiers"]
    assert seen["full"][2]["model"] == "MA304H3E" and "model" not in seen["live"][2]


class BusyClient(Client):
    """A client sending another packet (a PINGREQ into a broker that reads nothing) until
    free(): as mqtt.MQTTClient, publish() waits for its turn, then copies the payload."""

    def __init__(self, clock):
        super().__init__(clock)
        self._sending = True
        self._turn = asyncio.Event()

    async def publish(self, topic, payload, retain=False, qos=0, release=None):
        while self._sending:
            await self._turn.wait()
        await super().publish(topic, payload, retain, qos, release)
        await asyncio.sleep(0)  # the drain's yield

    def free(self):
        self._sending = False
        self._turn.set()


def test_destinations_share_one_json_buffer_and_a_busy_client_holds_back_only_its_own(
    tmp_path, clock, monkeypatch
):
    """Every destination writes its JSON into one buffer, in turn (Destination.acquire()).
    A destination whose client is busy does not take it: the others' readings and their
    discovery rounds go out meanwhile, and its own messages, once its client is free, are
    its own, not what another wrote into the buffer meanwhile."""
    monkeypatch.setattr(destination, "_turn", asyncio.Event())  # of this test's loop
    monkeypatch.setattr(destination, "_writer", None)
    full = make(tmp_path, clock, dest_cfg("full"))
    live = make(tmp_path, clock, dest_cfg("live", share="live"))
    assert full._buf is live._buf
    full.client = BusyClient(clock)
    for d in (full, live):
        d.offer(LIST2, 0)

    async def both():
        held = asyncio.ensure_future(full._flush(full.client))
        await asyncio.sleep(0)
        # Within a second: not held back until the busy client's session times out.
        await asyncio.wait_for(live._flush(live.client), 1)
        assert not held.done() and full.client.sent == []
        full.client.free()
        await asyncio.wait_for(held, 1)

    asyncio.run(both())
    assert destination._writer is None
    readings = {
        d.name: [json.loads(p) for _, t, p, _ in d.client.sent if t == f"h/{d.name}/reading"]
        for d in (full, live)
    }
    [got] = readings["full"]  # the full share's List 2, every field, the meter's id too
    assert set(got) == set(LIST2) and got["meter_id"] == METER_ID, readings
    assert got["voltage_l2"] == 233.4 and got["active_power_import"] == 1002, readings
    assert set(readings["live"][0]) <= set(LIVE_POWER) | {"meter_time"}, readings
    for d in (full, live):
        configs = {t: json.loads(p) for t, p in d.client.configs() if p}
        assert configs and all(f"/{HOST}_{d.name}/" in t for t in configs), configs
        assert all(p["state_topic"].startswith(f"h/{d.name}/") for p in configs.values())
        stats = [json.loads(p) for _, t, p, _ in d.client.sent if t == f"h/{d.name}/stats"]
        assert [s["destination"]["name"] for s in stats] == [d.name], stats


def test_two_dongles_on_one_broker_stay_apart(tmp_path, clock):
    a = make(tmp_path / "a", clock, dest_cfg("ha"), hostname="hanport-aaaaaa")
    b = make(tmp_path / "b", clock, dest_cfg("ha", hostname="hanport-bbbbbb"),
             hostname="hanport-bbbbbb")  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in (a, b):
        offer(d, clock, LIST2, 0)
    ta = {t for t, p in a.client.configs() if p}
    tb = {t for t, p in b.client.configs() if p}
    assert ta and tb and ta.isdisjoint(tb)
    ua = {json.loads(p)["unique_id"] for _, p in a.client.configs() if p}
    ub = {json.loads(p)["unique_id"] for _, p in b.client.configs() if p}
    assert ua.isdisjoint(ub)  # one meter, two dongles: two devices


# -- 3: stale entities go away -----------------------------------------------------------------


def round_(d, clock, reading=LIST3):
    """One discovery round after a reading; (removed topics, announced topics)."""
    n = len(d.client.sent)
    d._discover = True
    offer(d, clock, reading, clock.ms + 60000)
    configs = d.client.configs(n)
    return [t for t, p in configs if p == b""], [t for t, p in configs if p]


def record(tmp_path, name):
    return json.loads((tmp_path / f"discovery-{name}.json").read_text())


def test_removed_when_the_share_the_meter_or_the_hostname_changes(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("ha"))
    removed, announced = round_(d, clock)
    # No record yet: what hanport's older layout announced (one node per dongle, under the
    # hostname) is removed once, for every field the share allows.
    legacy = {f"homeassistant/sensor/{HOST}/{f}/config" for f in obis.ORDER
              if discovery._classes(f)}  # fmt: skip
    assert set(removed) == legacy
    configs = d.client.configs()
    assert [p for _, p in configs[: len(removed)]] == [b""] * len(removed)  # removals first
    rec = record(tmp_path, "ha")
    assert rec["node"] == f"{HOST}_ha" and rec["key"] == METER_ID
    assert set(rec["sensor"]) == fields_of([(t, 0) for t in announced]) | {
        t.split("/")[3] for t in announced if "/sensor/" in t and "/stats_" in t
    }
    assert rec["binary_sensor"] == ["stats_line_locked", "stats_meter_silent"]

    # The same again (a reconnect, Home Assistant's restart): nothing removed, no write.
    before = (tmp_path / "discovery-ha.json").stat().st_mtime_ns
    removed, again = round_(d, clock)
    assert removed == [] and sorted(again) == sorted(announced)
    assert (tmp_path / "discovery-ha.json").stat().st_mtime_ns == before

    # A List 1 after a reboot knows no energy yet: the energy configs stay (not removed).
    d = make(tmp_path, clock, dest_cfg("ha"))
    removed, _ = round_(d, clock, LIST2)
    assert removed == []
    assert "active_energy_import" in record(tmp_path, "ha")["sensor"]

    # The share drops fields (the meter id stays shared, so the ids stay): those go.
    kept = ["meter_id", "active_power_import", "voltage_l1"]
    d = make(tmp_path, clock, dest_cfg("ha", share=kept))
    removed, announced = round_(d, clock)
    gone = {t.split("/")[3] for t in removed}
    numeric = {f for f in LIST3 if discovery._classes(f)}  # what the full share announced
    assert gone == numeric - set(kept) | {"stats_others_down"}  # others: a full share's
    assert fields_of([(t, 0) for t in announced]) == {"active_power_import", "voltage_l1"}
    assert all(f"/{HOST}_ha/" in t for t in removed)

    # Another meter: every config of the old one goes (same topics, new unique ids).
    d = make(tmp_path, clock, dest_cfg("ha", share=kept))
    other = dict(LIST3, meter_id="7359992890497997")
    removed, announced = round_(d, clock, other)
    assert sorted(removed) == sorted(announced)
    assert record(tmp_path, "ha")["key"] == "7359992890497997"

    # Another hostname: every config under the old node goes.
    d = make(tmp_path, clock, dest_cfg("ha", share=kept, hostname="hanport-new"),
             hostname="hanport-new")  # fmt: skip
    removed, announced = round_(d, clock, other)
    assert removed and all(f"/{HOST}_ha/" in t for t in removed)
    assert announced and all("/hanport-new_ha/" in t for t in announced)


TARIFF_SENSORS = {"tariff_" + x for x in ("step", "capacity", "peak_1", "peak_2", "peak_3",
                                            "hour", "projection", "allowed")}  # fmt: skip


def test_the_tariff_sensors_come_with_a_share_that_gets_the_tariff_and_go_with_it(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("ha"), tariff=True)
    _, announced = round_(d, clock)
    configs = {t.split("/")[3]: json.loads(p) for t, p in d.client.configs() if p}
    assert TARIFF_SENSORS <= set(configs)
    for oid in TARIFF_SENSORS:
        c = configs[oid]
        assert c["state_topic"] == "h/ha/tariff" and "state_class" not in c, c
        assert c["expire_after"] == 7200  # once an hour at least: two missed
        assert c["device"] == configs["active_power_import"]["device"]  # one device
    assert configs["tariff_capacity"]["unit_of_measurement"] == "kW"
    assert configs["tariff_capacity"]["device_class"] == "power"
    assert configs["tariff_peak_1"]["value_template"] == (
        "{{ value_json.peaks[0].kwh if value_json.peaks | count > 0 else None }}"
    )
    assert TARIFF_SENSORS <= set(record(tmp_path, "ha")["sensor"])
    removed, _ = round_(d, clock)  # the same again: none removed
    assert removed == []

    hourly = make(tmp_path, clock, dest_cfg("hr", share="hourly"), tariff=True)
    round_(hourly, clock)
    assert TARIFF_SENSORS <= {t.split("/")[3] for t, p in hourly.client.configs() if p}
    # A live share never gets the tariff, nor does a dongle without one in its config.
    for x in (make(tmp_path, clock, dest_cfg("lv", share="live"), tariff=True),
              make(tmp_path, clock, dest_cfg("nt"))):  # fmt: skip
        round_(x, clock)
        assert not TARIFF_SENSORS & {t.split("/")[3] for t, _ in x.client.configs()}
    # The tariff left out of the config: its sensors are removed.
    d = make(tmp_path, clock, dest_cfg("ha"))
    removed, _ = round_(d, clock)
    assert {t.split("/")[3] for t in removed} == TARIFF_SENSORS


def test_discovery_turned_off_withdraws_everything_once(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("ha"))
    _, announced = round_(d, clock)
    off = dest_cfg("ha", discovery=False)
    d = make(tmp_path, clock, off)
    removed, again = round_(d, clock)
    assert sorted(removed) == sorted(announced) and again == []
    assert not (tmp_path / "discovery-ha.json").exists()
    d = make(tmp_path, clock, off)
    d._discover = False
    asyncio.run(d._flush(d.client))  # as _session() finds no record: nothing to do
    assert d.client.configs() == []


def test_a_record_longer_than_its_bound_is_cut_and_counted(tmp_path, clock):
    (tmp_path / "discovery-ha.json").write_text(
        json.dumps({"node": "x", "key": "", "sensor": [f"s{i}" for i in range(300)]})
    )
    d = make(tmp_path, clock, dest_cfg("ha"))
    removed, _ = round_(d, clock)
    assert len(removed) == discovery._RECORD_MAX
    assert d.discovery_dropped == 300 - discovery._RECORD_MAX


# -- 4 and 5: staleness, the diagnostics device ------------------------------------------------


def test_expiry_fits_each_cadence_and_diagnostics_read_the_stats(tmp_path, clock):
    d = make(tmp_path, clock, dest_cfg("ha"))
    round_(d, clock)
    live = make(tmp_path, clock, dest_cfg("live", share="live", interval=5))
    round_(live, clock)
    by = {}
    for x in (d, live):
        for t, p in x.client.configs():
            if p:
                by[(x.name, t.split("/")[3])] = (t, json.loads(p))
    assert by[("ha", "active_power_import")][1]["expire_after"] == 30  # 3 x 10 s
    assert by[("ha", "voltage_l1")][1]["expire_after"] == 30
    assert by[("ha", "active_energy_import")][1]["expire_after"] == 7200  # hourly: 2 h
    assert by[("live", "active_power_import")][1]["expire_after"] == 30  # 3 x 2 x 5 s
    stats = json.loads(next(p for _, t, p, _ in d.client.sent if t == "h/ha/stats"))
    diag = {k[1]: v for k, v in by.items() if k[0] == "ha" and k[1].startswith("stats_")}
    for name in (
        "meter_silent",
        "bytes_received",
        "frames",
        "rejected_checksum",
        "line_locked",
        "free_heap",
        "failures",
        "last_error",
        "queued",
        "others_down",
    ):
        t, p = diag["stats_" + name]
        assert p["entity_category"] == "diagnostic" and p["state_topic"] == "h/ha/stats"
        assert p["device"] == by[("ha", "active_power_import")][1]["device"]  # one device
        assert p["expire_after"] == 180  # 3 x stats_interval
    assert diag["stats_meter_silent"][0].startswith("homeassistant/binary_sensor/")
    assert diag["stats_meter_silent"][1]["device_class"] == "problem"
    assert "stats_others_down" not in {k[1] for k in by if k[0] == "live"}  # full only
    assert "destination" in stats  # what the templates read


# A Dutch P1 meter with a gas meter on M-Bus channel 1, a water meter on 2 and a heat
# meter on 3 (DSMR 5.0.2; the shared vectors' telegrams are checked value by value in
# test_vectors.py).
(P1_SUBMETERS,) = rig.expected_readings(
    [
        encoder.p1(
            "ISK5\\2M550T-1012",
            [
                "0-0:1.0.0(240305140012W)",
                "0-0:96.1.1(4B384547303034303436333935353037)",
                "1-0:1.8.1(000123.456*kWh)",
                "1-0:1.7.0(01.193*kW)",
                "0-1:24.1.0(003)",
                "0-1:96.1.0(4730303339303031393336393930363139)",
                "0-1:24.2.1(240305140000W)(00246.138*m3)",
                "0-2:24.1.0(007)",
                "0-2:24.2.1(240305135500W)(00872.234*m3)",
                "0-3:24.1.0(004)",
                "0-3:24.2.1(240305140000W)(240.860*GJ)",
            ],
        )
    ]
)


def test_p1_sub_meters_get_sensors_that_read_the_hourly_message(tmp_path, clock):
    assert P1_SUBMETERS["gas_volume"] == (246138, -3)
    assert P1_SUBMETERS["gas_time"] == "2024-03-05T14:00:00"
    assert P1_SUBMETERS["0-1:96.1.0"] == "G0039001936990619"  # its id, text as the meter's
    d = make(tmp_path, clock, dest_cfg("ha"))
    hourly = make(tmp_path, clock, dest_cfg("hourly", share="hourly"))
    live = make(tmp_path, clock, dest_cfg("live", share="live"))
    for x in (d, hourly, live):
        round_(x, clock, P1_SUBMETERS)
    by = {t.split("/")[3]: json.loads(p) for t, p in d.client.configs() if p}
    want = {"gas_volume": ("gas", "m³"), "water_volume": ("water", "m³"),
            "heat_energy": ("energy", "GJ")}  # fmt: skip
    for field, (cls, unit) in want.items():
        c = by[field]
        assert (c["device_class"], c["unit_of_measurement"]) == (cls, unit), c
        assert c["state_class"] == "total_increasing" and c["state_topic"] == "h/ha/energy"
        assert c["expire_after"] == 7200  # a count, read from the hourly message
    assert not {"gas_time", "water_time", "heat_time"} & set(by)  # times: no sensor
    # The counts go with their times wherever energy goes: the hourly share's and the full
    # share's hourly message; never to a live share.
    assert fields_of(hourly.client.configs()) >= set(want)
    assert not fields_of(live.client.configs()) & set(want)
    for x in (d, hourly):
        (msg,) = [json.loads(p) for _, t, p, _ in x.client.sent if t == x.base + "/energy"]
        assert msg["gas_volume"] == 246.138 and msg["gas_time"] == "2024-03-05T14:00:00"
        assert msg["water_time"] == "2024-03-05T13:55:00" and msg["heat_energy"] == 240.86
    assert not [p for _, t, p, _ in live.client.sent if b"gas" in p and "/sensor/" not in t]


def test_a_share_list_may_name_the_p1_sub_meters():
    cfg, problems = config.validate(
        {"hostname": HOST, "destinations": [dest_cfg_raw(["gas_volume", "gas_time"])]}, unix=True
    )
    assert not problems and cfg["destinations"][0]["share"] == ["gas_volume", "gas_time"]
    assert validate(dest_cfg_raw(["gas_volumes"])) != []  # a typo is still refused


def dest_cfg_raw(share):
    return {"name": "f", "host": "127.0.0.1", "share": share, "topic": "h/f"}


# -- the validator ------------------------------------------------------------------------------


def validate(*dests):
    cfg = {"hostname": HOST, "destinations": list(dests)}
    return config.validate(cfg, unix=True)[1]


def dest(name, discovery=True, **extra):
    d = {"name": name, "host": "broker", "share": "full", "discovery": discovery}
    d.update(extra)
    return d


def test_the_validator_refuses_what_would_collide_in_home_assistant():
    # The default topic is the same for every destination: on one broker, with discovery,
    # the readings of both would feed the sensors of both.
    assert validate(dest("full"), dest("live", share="live")) == [
        'destinations[1].topic: "hanport/1a2b3c" is the topic of destinations[0] on the same '
        "broker, and Home Assistant's sensors of both would read the messages of both; set "
        'another, e.g. "hanport/1a2b3c/live"'
    ]
    assert validate(dest("full"), dest("live", share="live", topic="hanport/1a2b3c/live")) == []
    assert validate(dest("full"), dest("other", host="elsewhere")) == []  # another broker
    assert validate(dest("a", discovery=False), dest("b", discovery=False)) == []  # as before
    assert validate(dest("a", discovery=False), dest("b")) != []
    # Names that give the same entity ids.
    assert validate(dest("home-assistant", topic="a"), dest("Home_Assistant", topic="b")) == [
        'destinations[1].name: "Home_Assistant" gives the same Home Assistant entity ids as '
        "the name of destinations[0] (discovery names entities <hostname>_<name>_<field> in "
        'lower case, "-" as "_"); give each destination with discovery a name that differs '
        'in more than case, "-" or "_"'
    ]
    assert validate(dest("ha-1", topic="a"), dest("ha_1", discovery=False, topic="b")) == []


# -- a reading the destination cannot take ---------------------------------------------------


def test_a_reading_a_destination_cannot_take_is_counted_and_logged_never_raised(
    tmp_path, clock, capsys
):
    """offer() is called by the meter link for every destination in turn: a flash that fails
    under the outage queue (or no memory) drops that reading for this destination only."""

    class FullFlash(Outbox):
        def append(self, line):
            raise OSError(28, "no space left")

    d = make(tmp_path, clock, dest_cfg("full"))
    d.outbox = FullFlash()
    before = d.dropped
    d.offer(LIST3, 0)  # the hourly registers: queued on flash first
    assert d.dropped == before + 1
    assert "destination full dropped a reading: OSError(28" in capsys.readouterr().out
    d.outbox = Outbox()
    d.offer(LIST2, 2000)  # the next reading goes through
    assert d._live is not None and d.dropped == before + 1
