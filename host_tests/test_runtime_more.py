"""The dongle end to end, more of it with real parts: TLS destinations (a CA and a
password file of the test's own), Home Assistant discovery, the status topic and its last
will, no connection that was not configured, and 10,000 frames through the whole pipeline.

Same rig as test_runtime.py: the firmware's main under `hanctl run` (MicroPython unix
port), Debian's mosquitto on free loopback ports, a meter simulator on a TCP "UART".
"""

import json
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

import rig
from e2e import (
    METER_ID,
    PASSWORD,
    USER,
    Dongle,
    check_backoff,
    clients_on,
    power_stream,
    probes,
    tls_destination,
    uart,
)
from hanctl import encoder, runtime
from hanctl.simulate import Server

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)


# -- 1: TLS destinations --------------------------------------------------------------------


@pytest.mark.tls
def test_tls_destination_with_ca_and_password_publishes_over_tls_only(parts):
    tmp, track = parts
    certs = rig.make_ca(tmp)
    b = track(rig.tls_broker(tmp, "tls", certs, {USER: PASSWORD}).start())
    shutil.copy(certs / "ca.pem", tmp / "ca.pem")  # beside fs-config.json
    sub = track(rig.Subscriber(b))  # the plain listener, anonymous
    go = threading.Event()
    frames = [encoder.kaifa(2, {"p_import": 3000 + i}) for i in range(3)]
    meter = track(Server(rig.scripted(frames, go)).start())
    cfg = rig.config(tls_destination("T", b))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    dongle.wait_log("destination T connected")
    go.set()
    got = sub.wait("T/reading", 3)
    assert [json.loads(m[1])["active_power_import"] for m in got] == [3000, 3001, 3002]
    assert [m[1] for m in sub.on("T/status")] == [b"online"]
    # The dongle's session came in on the TLS listener, as the configured user; none on
    # the plain one (where the subscriber is).
    assert clients_on(b, b.tls_port) == ["hanport-test-0"]
    assert "hanport-test-0" not in clients_on(b, b.port)
    assert f"as hanport-test-0 (p2, c1, k60, u'{USER}')" in rig.broker_log(b)
    assert not dongle.lines("failed:")


@pytest.mark.tls
def test_tls_with_the_wrong_ca_refuses_backs_off_and_never_goes_plaintext(parts):
    tmp, track = parts
    certs = rig.make_ca(tmp, "ca")
    other = rig.make_ca(tmp, "other", cn="not the broker's CA")
    b = track(rig.tls_broker(tmp, "tls", certs, {USER: PASSWORD}).start())
    start = probes(b)
    shutil.copy(other / "ca.pem", tmp / "ca.pem")  # the dongle trusts another CA
    meter = track(Server(power_stream()).start())  # readings waiting to go out all along
    cfg = rig.config(tls_destination("T", b, retry_min=1, retry_max=4, stats_interval=1))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())

    failed = dongle.wait_lines("destination T failed:", 4, timeout=30)
    time.sleep(0.3)  # the broker's log of the fourth attempt; the fifth is >= 2 s away
    check_backoff([t for t, _ in failed], 1, 4)  # waits of ~1, 2, 4 s: they grow
    assert not dongle.lines("connected")
    log = rig.broker_log(b)
    # Each attempt was a TLS handshake on the TLS listener that the dongle ended with an
    # "unknown CA" alert; no MQTT session came of any, and none tried the plain listener.
    assert len(rig.connections_on(b, b.tls_port)) == 4
    assert log.count("alert unknown ca") == 4, log
    assert "New client connected" not in log
    assert rig.connections_on(b, b.port)[start:] == []

    # Counted: a broker with a certificate of the dongle's CA, on the same ports, takes it
    # in; the first stats say how many attempts failed before.
    b.stop()
    good = track(rig.tls_broker(tmp, "good", other, {USER: PASSWORD}, b.port, b.tls_port).start())
    sub = track(rig.Subscriber(good))
    dongle.wait_log("destination T connected", timeout=20)
    failures = len(dongle.lines("destination T failed:"))
    stats = json.loads(sub.wait("T/stats")[0][1])["destination"]
    assert (stats["failures"], stats["connects"]) == (failures, 1), stats
    assert failures >= 4
    assert clients_on(good, good.tls_port) == ["hanport-test-0"]


@pytest.mark.tls
def test_tls_with_the_wrong_password_is_refused_counted_and_backs_off(parts):
    tmp, track = parts
    certs = rig.make_ca(tmp)
    b = track(rig.tls_broker(tmp, "tls", certs, {USER: "the-broker-knows-another"}).start())
    start = probes(b)
    shutil.copy(certs / "ca.pem", tmp / "ca.pem")
    meter = track(Server(power_stream()).start())
    cfg = rig.config(tls_destination("T", b, retry_min=1, retry_max=4, stats_interval=1))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())

    failed = dongle.wait_lines("destination T failed:", 4, timeout=30)
    for _, line in failed:  # CONNACK 5 (not authorised; mosquitto 2) or 4 (bad password)
        assert line.endswith(("refused (5)", "refused (4)")), line
    check_backoff([t for t, _ in failed], 1, 4)  # waits of ~1, 2, 4 s
    time.sleep(0.3)
    log = rig.broker_log(b)
    assert log.count("disconnected, not authorised") >= 4, log
    assert rig.connections_on(b, b.port)[start:] == []  # no plaintext attempt

    # The owner fixes the password on the broker (mosquitto rereads it on SIGHUP): the
    # dongle gets in at its next attempt and counts the refusals in its stats.
    sub = track(rig.Subscriber(b))
    rig.password_file(b.passwd, {USER: PASSWORD})
    b.proc.send_signal(signal.SIGHUP)
    dongle.wait_log("destination T connected", timeout=20)
    failures = len(dongle.lines("destination T failed:"))
    stats = json.loads(sub.wait("T/stats")[0][1])["destination"]
    assert (stats["failures"], stats["connects"]) == (failures, 1), stats
    assert sub.wait("T/reading")  # and readings flow


# -- 2: Home Assistant discovery -------------------------------------------------------------

# What Home Assistant's sensor documentation asks of each field the Kaifa frames carry:
# (device class, state class, unit). Energy must be total_increasing in kWh for the Energy
# dashboard; reactive energy has no device class: reactive_energy came in 2025.7 and an older
# Home Assistant refuses the whole config for it.
POWER = ("power", "measurement", "W")
REACTIVE = ("reactive_power", "measurement", "var")
HA_CLASSES = {
    "active_power_import": POWER,
    "active_power_export": POWER,
    "reactive_power_import": REACTIVE,
    "reactive_power_export": REACTIVE,
    "current_l1": ("current", "measurement", "A"),
    "current_l2": ("current", "measurement", "A"),
    "current_l3": ("current", "measurement", "A"),
    "voltage_l1": ("voltage", "measurement", "V"),
    "voltage_l2": ("voltage", "measurement", "V"),
    "voltage_l3": ("voltage", "measurement", "V"),
    "active_energy_import": ("energy", "total_increasing", "kWh"),
    "active_energy_export": ("energy", "total_increasing", "kWh"),
    "reactive_energy_import": (None, "total_increasing", "kvarh"),
    "reactive_energy_export": (None, "total_increasing", "kvarh"),
}
LIVE_FIELDS = {"active_power_import", "active_power_export"}
LIVE_FIELDS |= {"reactive_power_import", "reactive_power_export"}
# A discovery topic: <prefix>/<component>/[<node_id>/]<object_id>/config, ids of
# [a-zA-Z0-9_-] (Home Assistant's MQTT discovery documentation).
DISCOVERY_TOPIC = re.compile(r"homeassistant/sensor/([a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config")


def configs(sub):
    """{field: (topic, payload dict, retained)} of the reading fields' discovery configs sub
    has, the latest of each; the field is the one the value template reads. Removals (empty)
    and the diagnostics (from the stats) are test_ha_discovery's."""
    out = {}
    for topic, payload, retained, _ in sub.on("/config"):
        if not payload or "/stats_" in topic:
            continue
        p = json.loads(payload)
        (field,) = re.findall(r"value_json\.(\w+)", p["value_template"])
        out[field] = (topic, p, retained)
    return out


wait_for = rig.wait_for


def wait_quiet(sub, suffix, quiet=1.5, timeout=20):
    """Until no message on *suffix came for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = max((m[3] for m in sub.on(suffix)), default=0)
        if time.monotonic() - last >= quiet:
            return len(sub.on(suffix))
        time.sleep(0.1)
    raise AssertionError(f"messages on *{suffix} kept coming")


def test_discovery_announces_what_the_meter_sends_and_again_when_home_assistant_starts(parts):
    tmp, track = parts
    ha = track(rig.Broker(tmp, "ha").start())
    live = track(rig.Broker(tmp, "live").start())
    sub = track(rig.Subscriber(ha))
    sub_live = track(rig.Subscriber(live))
    values = {"p_import": 1500}
    frames = [encoder.kaifa(2, values), encoder.kaifa(1, values), encoder.kaifa(3, values)]
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go)).start())
    cfg = rig.config(
        rig.destination("H", ha, discovery=True),
        rig.destination("L", live, share="live", interval=1, discovery=True),
    )
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    dongle.wait_log("destination H connected")
    dongle.wait_log("destination L connected")
    go.set()

    def every_field():
        """a config for each field the meter sent"""
        return set(configs(sub)) == set(HA_CLASSES)

    # Two destinations, ~25 retained QoS 1 configs each, one round at a time: within
    # 10 s alone, past 20 s once on a loaded CI machine (no error in the log).
    wait_for(every_field, timeout=60, dongle=dongle)
    sent = wait_quiet(sub, "/config")
    energy = json.loads(sub.wait("H/energy")[-1][1])
    # List 2 (every live field) goes out first; the List 1 behind it may be replaced by
    # the List 3 while the discovery configs are being sent: a live reading is allowed to
    # give way to a newer one (counted as dropped), so only two are certain.
    reading = json.loads(sub.wait("H/reading", 2)[0][1])
    assert set(configs(sub)) == set(HA_CLASSES)  # nothing announced that the meter lacks
    unique_ids = set()
    for field, (topic, p, _) in configs(sub).items():
        assert DISCOVERY_TOPIC.fullmatch(topic), topic
        got = (p.get("device_class"), p["state_class"], p.get("unit_of_measurement"))
        assert got == HA_CLASSES[field], field
        assert p["availability_topic"] == "hanport/H/status"
        assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        # The state topic is under the base and carries the field the template reads.
        state = energy if HA_CLASSES[field][1] == "total_increasing" else reading
        want = "hanport/H/energy" if state is energy else "hanport/H/reading"
        if field in ("active_energy_import", "active_energy_export"):
            want += "_now"  # the registers counted on with the power (energynow.py)
        assert p["state_topic"] == want and field in state, field
        assert p["device"]["identifiers"] and p["unique_id"] not in unique_ids
        unique_ids.add(p["unique_id"])
    assert energy["active_energy_import"] == 109552.25  # what HA's template then shows
    assert reading["voltage_l2"] == 233.4

    # Retained: Home Assistant starting later finds them all on the broker.
    late = track(rig.Subscriber(ha, "homeassistant/#"))
    wait_for(lambda: set(configs(late)) == set(HA_CLASSES))
    assert all(retained for _, _, retained in configs(late).values())

    # Home Assistant restarted and says so: every config comes again.
    before = {topic: (len(sub.on(topic)), p) for topic, p, _ in configs(sub).values()}
    sub.client.publish("homeassistant/status", "online", qos=1)

    def all_again():
        """every config sent again after homeassistant/status online"""
        return all(len(sub.on(topic)) > n for topic, (n, _) in before.items())

    wait_for(all_again, timeout=10, dongle=dongle)
    # once each, the diagnostics too; the removals of the old layout (one node per dongle) only once
    diagnostics = {m[0] for m in sub.on("/config") if "/stats_" in m[0]}
    assert wait_quiet(sub, "/config") == sent + len(before) + len(diagnostics)
    assert {topic: p for topic, p, _ in configs(sub).values()} == {
        topic: p for topic, (_, p) in before.items()
    }

    # Share "live": power fields only, and the meter's id nowhere on that broker.
    wait_for(lambda: set(configs(sub_live)) == LIVE_FIELDS)
    wait_quiet(sub_live, "/config")
    assert set(configs(sub_live)) == LIVE_FIELDS
    for topic, payload, _, _ in sub_live.messages:
        assert METER_ID not in topic and METER_ID.encode() not in payload, (topic, payload)
    for _, p, _ in configs(sub_live).values():
        assert "serial_number" not in p["device"]
        assert p["state_topic"] == "hanport/L/reading"
        assert p["availability_topic"] == "hanport/L/status"


def device_key(sub, after=0):
    """The device key of the first discovery config sub got after its first `after`."""

    def new():
        """a discovery config"""
        return [m for m in sub.on("/config")[after:] if m[1]]  # not a removal

    return json.loads(wait_for(new)[0][1])["device"]["identifiers"][0]


def test_live_discovery_ids_are_a_per_dongle_secret_hash_stable_across_reboots(parts):
    import hashlib

    tmp, track = parts
    live = track(rig.Broker(tmp, "live").start())
    sub = track(rig.Subscriber(live))
    frames = [encoder.kaifa(2, {"p_import": 700 + i}) for i in range(300)]
    meter = track(Server(rig.scripted(frames, gap=0.3)).start())
    cfg = rig.config(rig.destination("L", live, share="live", interval=1, discovery=True))
    first = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    key = device_key(sub)
    # What anyone reading that broker could try: hash the ids of the maker's series with
    # what the broker knows of the dongle (10**5 ids here; a whole series of 10**7 takes
    # a minute). With a salt the broker never sees, none matches.
    node = cfg["hostname"]
    series = METER_ID[:-5]
    for n in range(10**5):
        guess = f"{series}{n:05d}"
        h = hashlib.sha256((node + "\n" + guess).encode()).hexdigest()[:16]
        assert not key.endswith(h), f"the meter id {guess} follows from {key} and {node!r}"

    # The same dongle after a reboot: the same ids (Home Assistant keeps its entities).
    first.kill()
    seen = wait_quiet(sub, "/config", quiet=0.5)
    again = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    assert device_key(sub, seen) == key
    # Another dongle on the same meter and broker: another secret (not one for all).
    again.kill()
    seen = wait_quiet(sub, "/config", quiet=0.5)
    track(Dongle(tmp / "fs2", cfg, uart(meter)).start())
    assert device_key(sub, seen) != key
    # And the secret itself never left the dongle.
    state = json.loads((tmp / "fs" / "state.json").read_text())
    for value in state.values():
        if isinstance(value, str):
            assert not any(value.encode() in m[1] for m in sub.messages), value


def test_a_discovery_round_with_no_memory_leaves_the_session_and_its_readings(
    parts, tmp_path, monkeypatch
):
    """A round whose code finds no room (beside the tariff at 96K, a heap in pieces) ended
    the session, and each new session's round found none either: at -X heapsize=80K on the
    official image's model, 17 readings of ~116 reached the broker in 45 s, over 22
    connections. Now the session stays and the round comes again after 1 s, 2 s, 4 s ...
    (at most 64 s), while the readings go on. The room is
    taken here by a discovery module that asks for more than any heap has: the interpreter's
    own MemoryError, whatever the image and heap."""
    if runtime.frozen_exe():
        pytest.skip("the firmware is frozen into this image: no other discovery module loads")
    tree = tmp_path / "firmware"
    shutil.copytree(runtime.firmware_dir(), tree)
    (tree / "discovery.py").write_text("ROOM = bytearray(1 << 30)  # no heap has it\n")
    monkeypatch.setenv("HANPORT_FIRMWARE", str(tree))
    tmp, track = parts
    broker = track(rig.Broker(tmp, "b").start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    go = threading.Event()
    meter = track(Server(power_stream(count=100, first=500, gap=0.2, go=go)).start())
    cfg = rig.config(rig.destination("H", broker, discovery=True, stats_interval=5))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    dongle.wait_log("destination H connected")
    go.set()
    # List 1 has no meter id: the round comes after 15 readings, then after each wait.
    said = dongle.wait_lines("discovery: out of memory, again in", 5, timeout=60)
    gaps = [b[0] - a[0] for a, b in zip(said, said[1:], strict=False)]
    assert all(0.9 * 2**k <= gap < 2**k + 2 for k, gap in enumerate(gaps[:4])), gaps

    def powers():
        return {json.loads(m[1])["active_power_import"] for m in sub.on("H/reading")}

    wait_for(lambda: 599 in powers(), why="the meter's last reading", dongle=dongle)
    # Every one published (one may give way to a newer one while a round is tried).
    assert len(powers()) >= 98, sorted(set(range(500, 600)) - powers())
    assert not [line for line in dongle.output if "failed" in line]
    assert len(dongle.lines("destination H connected")) == 1
    assert len(broker.connections()) == 2  # the subscriber and one dongle session
    stats = json.loads(sub.wait("H/stats")[-1][1])
    assert stats["destination"]["failures"] >= 1
    assert stats["destination"]["last_error"] == "memory: discovery round"


# -- 3: the status topic ----------------------------------------------------------------------


def test_status_is_retained_online_and_the_last_will_says_offline(parts):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(a, "hanport/S/status"))
    meter = track(Server(power_stream()).start())
    dongle = track(Dongle(tmp / "fs", rig.config(rig.destination("S", a)), uart(meter)).start())
    dongle.wait_log("destination S connected")
    assert [m[1] for m in sub.wait("S/status")] == [b"online"]
    # Retained: a subscriber that comes later gets it from the broker at once.
    later = track(rig.Subscriber(a, "hanport/S/status"))
    assert [(m[1], m[2]) for m in later.wait("S/status", timeout=5)] == [(b"online", True)]

    killed = time.monotonic()
    dongle.kill()  # power cut: no DISCONNECT, the broker publishes the last will
    got = sub.wait("S/status", 2, timeout=10)
    assert [m[1] for m in got] == [b"online", b"offline"]
    assert got[1][3] - killed < 2  # at once: the broker saw the socket close
    after = track(rig.Subscriber(a, "hanport/S/status"))
    assert [(m[1], m[2]) for m in after.wait("S/status", timeout=5)] == [(b"offline", True)]


# -- 4: no connection that was not configured -------------------------------------------------


def sockets_seen(dongle, seconds=3.0):
    """{(protocol, remote port)} of every socket the dongle held while sampled every 20 ms."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= {(proto, remote) for proto, _, remote, _ in rig.dongle_sockets(dongle)}
        time.sleep(0.02)
    return seen


@pytest.mark.parametrize("configured", [0, 1], ids=["no-destination", "one-destination"])
def test_the_dongle_connects_to_the_meter_and_its_destinations_and_nothing_else(parts, configured):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    c = track(rig.Broker(tmp, "c").start())  # runs, never configured
    start_c = probes(c)
    sub = track(rig.Subscriber(a))
    meter = track(Server(power_stream(gap=0.1)).start())
    dests = [rig.destination("A", a)] if configured else []
    dongle = track(Dongle(tmp / "fs", rig.config(*dests), uart(meter)).start())
    dongle.wait_log(f"running: {configured} destination(s)")
    dongle.wait_log("led status on")  # frames are arriving and being decoded
    if configured:
        dongle.wait_log("destination A connected")
        sub.wait("A/reading")
    seen = sockets_seen(dongle)
    # The meter's socket shows that the witness sees the dongle's sockets at all.
    assert seen == {("tcp", meter.port)} | ({("tcp", a.port)} if configured else set())
    assert rig.connections_on(c, c.port)[start_c:] == []  # not even a TCP connection
    on_a = clients_on(a, a.port)  # the subscriber, and the dongle when it is configured
    assert len(on_a) == 1 + configured and on_a.count("hanport-test-0") == configured
    if not configured:
        assert not dongle.lines("hanport: destination")


# -- 5: 10,000 frames -----------------------------------------------------------------------

FLOOD = 10_000
BASELINE = 1_000


def flood(frames, go, resume):
    """Every frame as fast as the socket takes it; after the first BASELINE, wait for
    `resume` (the test has read the heap), then the rest; then a quiet line."""
    go.wait()
    for i, frame in enumerate(frames):
        if i == BASELINE:
            resume.wait(60)
        yield 0, frame
    while True:
        yield 0.5, b""


def test_ten_thousand_frames_without_heap_growth_or_memory_error(parts):
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    sub = track(rig.Subscriber(a, "hanport/F/#"))
    # A Kaifa meter's mix: a List 2 (ids, power, currents, voltages) after four List 1.
    frames = [encoder.kaifa(2 if i % 5 == 4 else 1, {"p_import": 1000 + i}) for i in range(FLOOD)]
    go, resume = threading.Event(), threading.Event()
    meter = track(Server(flood(frames, go, resume)).start())
    cfg = rig.config(rig.destination("F", a, stats_interval=2))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    dongle.wait_log("destination F connected")
    wait_for(lambda: meter.clients, timeout=10)
    started = time.monotonic()
    go.set()

    def stats_at(n, after=0):
        """stats with `readings` n"""
        return [s for s in sub.json("F/stats") if s["readings"] == n][after:]

    base = wait_for(lambda: stats_at(BASELINE), 30, dongle=dongle)[0]
    resume.set()
    wait_for(lambda: stats_at(FLOOD), 60, dongle=dongle)
    took = time.monotonic() - started
    end = wait_for(lambda: stats_at(FLOOD, 1), 10, dongle=dongle)[0]  # one more, the line quiet

    log = "\n".join(dongle.output)
    for bad in ("MemoryError", "out of memory", "ended", "failed", "watchdog"):
        assert bad not in log, log
    assert end["frames"]["hdlc"] == FLOOD and end["readings"] == FLOOD  # every frame decoded
    assert sum(end["rejected"].values()) == 0 and end["noise_bytes"] == 0
    assert end["bytes_received"] == sum(map(len, frames))
    powers = [r["active_power_import"] for r in sub.json("F/reading")]
    assert powers[-1] == 1000 + FLOOD - 1  # readings kept coming to the very last frame
    assert powers == sorted(powers)  # in order
    blocks = {(p - 1000) // BASELINE for p in powers}
    assert blocks == set(range(FLOOD // BASELINE))  # ... and all along the way
    d = end["destination"]
    assert (d["connects"], d["failures"]) == (1, 0)
    # Live readings the broker could not take as fast as the line are dropped and counted
    # (destination.py's one-slot buffer); none is lost uncounted.
    assert len(powers) + d["dropped"] == FLOOD, (len(powers), d)
    heap = [s["free_heap"] for s in sub.json("F/stats")]
    print(f"{FLOOD} frames in {took:.1f} s; published {len(powers)}, dropped {d['dropped']};")
    print(f"free heap after {BASELINE}: {base['free_heap']}, after {FLOOD}: {end['free_heap']}")
    print("free heap at each stats:", heap)
    assert abs(end["free_heap"] - base["free_heap"]) <= 2048, (base["free_heap"], heap)


def test_a_raw_destination_lets_hanctl_capture_the_meter_line_from_the_dongle(parts):
    """ "raw": true publishes the line's bytes on <topic>/raw (and only for that
    destination); `hanctl capture --port mqtt://…/<topic>` records them from there, and the
    capture decodes to the same readings the dongle published."""
    tmp, track = parts
    a = track(rig.Broker(tmp, "a").start())
    b = track(rig.Broker(tmp, "b").start())
    sub_b = track(rig.Subscriber(b))
    noise = b"\x00\x13\x37"
    frames = [noise, encoder.kaifa(1), encoder.kaifa(2), encoder.aidon(2)]
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go)).start())
    cfg = rig.config(rig.destination("A", a, raw=True), rig.destination("B", b))
    dongle = track(Dongle(tmp / "fs", cfg, uart(meter)).start())
    dongle.wait_log("destination A connected")
    dongle.wait_log("destination B connected")
    out = tmp / "line.bin"
    port = f"mqtt://127.0.0.1:{a.port}/hanport/A"
    capture = subprocess.Popen(
        [str(rig.HANCTL), "capture", "--port", port, "--out", str(out), "--seconds", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # subscribed
    go.set()
    stdout, stderr = capture.communicate(timeout=30)
    assert capture.returncode == 0, stdout + stderr
    assert out.read_bytes() == b"".join(frames)
    decoded = subprocess.run(
        [str(rig.HANCTL), "decode", str(out)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(decoded) == 3
    assert sub_b.on("/raw") == []  # B did not ask for the line's bytes
