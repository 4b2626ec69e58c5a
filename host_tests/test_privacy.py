"""The privacy audit, end to end: the firmware's main on the MicroPython unix port, Debian's
mosquitto, a meter on a TCP "UART", and three witnesses of every connection (audit/).

One run with every share level configured at once (full over TLS, live, hourly, a field
list) checks every message each broker got against what its level allows, and that the
dongle looked up and connected to the meter and its destinations and nothing else. The
same run and the error paths check that the Wi-Fi and MQTT passwords appear in no
published message, no log line, no stats and no `hanctl` output.
"""

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

import obis
import rig
from audit import STRACE, AuditDongle
from hanctl import encoder
from hanctl.simulate import Server
from reading import to_json
from share import is_energy, is_power

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)

# Markers: distinctive enough that finding one anywhere can only be a leak.
WIFI_PASSWORD = "wifi-Secret-Q7x9Zk"
PASSWORDS = {
    "F": "mqtt-Secret-F3kP8w",
    "L": "mqtt-Secret-L5mR2v",
    "H": "mqtt-Secret-H9tN4q",
    "X": "mqtt-Secret-X2wJ6c",
}
SECRETS = [WIFI_PASSWORD, *PASSWORDS.values()]
METER_ID = "6970631401753985"  # hanctl's Kaifa frames
IDENTITY = ("meter_id", "meter_model", "meter_manufacturer", "list_id")
FIELD_LIST = ["active_power_import", "voltage_l1", "meter_time"]
LIVE_INTERVAL = 2  # s
NTP = "ntp.hanport-audit.example"
HOURS = 4
AUDIT_HEAP = "192K"
STATS_KEYS = {
    "version", "uptime_s", "free_heap", "reset_cause", "bytes_received", "noise_bytes",
    "frames", "readings", "rejected", "last_frame_age_s", "line", "line_locked", "destination",
}  # fmt: skip


READING_FIELDS = set(obis.ORDER) | set(IDENTITY) | {"meter_time"}


def keys_of(value):
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def meter_hours(hours):
    """Kaifa frames: per meter hour a List 2, four List 1 and the hourly List 3; every
    frame a power of its own, so each message can be told apart."""
    frames = []
    n = 0
    for h in range(hours):
        for list_no in (2, 1, 1, 1, 1, 3):
            n += 1
            values = {
                "time": (2024, 3, 5, 10 + h, 0, n % 60),
                "p_import": 1000 + n,
                "energy": (100000 + 1000 * h, 5 * h, 300 + h, 4000 + 7 * h),
            }
            frames.append(encoder.kaifa(list_no, values))
    return frames


def secret_free(what, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for s in SECRETS:
        assert s not in text, f"a password in {what}: {text[:300]!r}"


class Sampler:
    """rig.dongle_sockets() every 20 ms in a thread: the view from outside (what `ss
    -tunp` shows), kept as {(protocol, remote port)}."""

    def __init__(self, dongle):
        self.dongle = dongle
        self.seen = set()
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            if self.dongle.proc is not None:
                self.seen |= {(p, remote) for p, _, remote, _ in rig.dongle_sockets(self.dongle)}
                self.samples += 1
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.thread.join(5)


def plain_broker(tmp, name, password):
    passwd = rig.password_file(tmp / f"{name}-passwd", {"hanport": password})
    return rig.Broker(tmp, name, extra=[f"password_file {passwd}"])


def test_every_connection_lookup_and_message_of_a_run_with_every_share_level(parts):
    tmp, track = parts
    certs = rig.make_ca(tmp)
    shutil.copy(certs / "ca.pem", tmp / "ca.pem")
    f = track(rig.tls_broker(tmp, "full", certs, {"hanport": PASSWORDS["F"]}).start())
    brokers = {"F": f}
    for name in ("L", "H", "X"):
        brokers[name] = track(plain_broker(tmp, name.lower(), PASSWORDS[name]).start())
    c = track(rig.Broker(tmp, "c").start())  # runs, never configured
    subs = {name: track(rig.Subscriber(b)) for name, b in brokers.items()}  # '#': everything
    c_probe = len(rig.connections_on(c, c.port))

    frames = meter_hours(HOURS)
    go = threading.Event()
    meter = track(Server(rig.scripted(frames, go, gap=0.3)).start())
    common = {"user": "hanport", "stats_interval": 2}
    dests = [
        rig.destination(
            "F", f, host="localhost", port=f.tls_port, tls={"ca": "ca.pem"}, discovery=True,
            password=PASSWORDS["F"], **common,
        ),
        rig.destination(
            "L", brokers["L"], share="live", interval=LIVE_INTERVAL, discovery=True,
            password=PASSWORDS["L"], **common,
        ),
        rig.destination("H", brokers["H"], share="hourly", password=PASSWORDS["H"], **common),
        rig.destination("X", brokers["X"], share=FIELD_LIST, password=PASSWORDS["X"], **common),
    ]  # fmt: skip
    cfg = rig.config(*dests)
    cfg["wifi"] = [{"ssid": "home", "password": WIFI_PASSWORD}]
    cfg["ntp"] = NTP
    # Four destinations (config.MAX_DESTINATIONS), one with TLS, two with discovery, run out
    # of memory at rig's 128K on this 64-bit port ("out of memory" at each connect; README,
    # "Memory"). The audit is about what leaves the dongle, so it runs with room.
    uart = f"tcp://127.0.0.1:{meter.port}"
    dongle = track(AuditDongle(tmp / "fs", cfg, uart, heap=AUDIT_HEAP).start())
    sampler = Sampler(dongle)
    for name in brokers:
        dongle.wait_log(f"destination {name} connected", timeout=40)
    go.set()

    want = rig.expected_readings(frames)
    hourly = [r for r in want if "active_energy_import" in r]
    assert len(hourly) == HOURS
    subs["H"].wait("H/energy", HOURS, timeout=60)
    subs["F"].wait("F/energy", HOURS, timeout=30)
    time.sleep(3)  # the last stats and live messages
    sampler.stop()
    dongle.stop()

    # -- what each destination got: every message, checked against its share level -------
    counts = {}
    for name, sub in subs.items():
        base = f"hanport/{name}/"
        for topic, payload, _, _ in sub.messages:
            secret_free(f"{topic} on broker {name}", topic.encode() + payload)
            if name != "F":  # the meter's identity goes to the full share only
                assert METER_ID.encode() not in topic.encode() + payload, (name, topic)
            kind = topic[len(base) :] if topic.startswith(base) else "discovery"
            if kind == "discovery":
                component = topic.split("/")[1]
                assert name in ("F", "L") and component in ("sensor", "binary_sensor"), topic
            elif kind == "energy_now":
                # The registers counted on with the power, for Home Assistant's hourly
                # statistics (energynow.py): only to a share with discovery that gets both
                # the energy and the power, the full one here; the meter's time and the two
                # registers, nothing else.
                assert name == "F", topic
                assert set(json.loads(payload)) <= {
                    "meter_time",
                    "active_energy_import",
                    "active_energy_export",
                }, payload
            else:
                assert kind in ("reading", "energy", "status", "stats"), topic
            counts.setdefault(name, {}).setdefault(kind, 0)
            counts[name][kind] += 1
        for payload in sub.json(base + "stats"):
            assert STATS_KEYS <= set(payload), payload
            # Diagnostics only: no reading field anywhere in them (other counters may come).
            assert not keys_of(payload) & READING_FIELDS, payload
            assert payload["destination"]["name"] == name  # no word of the others
            assert payload["destination"]["failures"] == 0

    full = [m[1].decode() for m in subs["F"].on("F/reading")]
    jsons = [to_json(r) for r in want]
    # Every reading byte for byte, in order; a live reading may give way to a newer one
    # while discovery configs go out (counted as dropped), so a few may be missing: frames
    # come every 0.3 s here, and the first round also removes what hanport's older layout
    # (one node per dongle) announced (some 80 configs over TLS, one at a time with L's).
    it = iter(jsons)
    assert all(any(x == y for y in it) for x in full), "F got a reading the meter never sent"
    assert len(full) >= len(jsons) - 6, (len(full), len(jsons))
    energy = [json.loads(m[1]) for m in subs["F"].on("F/energy")]
    assert [e["meter_time"] for e in energy] == [r["meter_time"] for r in hourly]
    assert all(e["meter_id"] == METER_ID for e in energy)

    live = subs["L"].on("L/reading")
    for _, payload, _, _ in live:
        r = json.loads(payload)
        assert any(is_power(k) for k in r), r
        assert all(is_power(k) or k in ("meter_time", "unchecked") for k in r), r
    gaps = [b[3] - a[3] for a, b in zip(live, live[1:], strict=False)]
    # The dongle lets one out per interval of its own clock; arrival adds a little jitter.
    assert gaps and min(gaps) >= LIVE_INTERVAL - 0.5, gaps
    assert not subs["L"].on("L/energy")
    for topic, payload, _, _ in subs["L"].on("/config"):
        if not payload:  # a removal of the old layout: of a field the share allows, by name
            assert is_power(topic.split("/")[3]), topic
            continue
        p = json.loads(payload)
        if p.get("entity_category") == "diagnostic":  # from the stats L gets anyway
            assert p["state_topic"] == "hanport/L/stats", p
        else:
            assert is_power(p["value_template"].split("value_json.")[1].split()[0]), p
        assert "serial_number" not in p["device"]

    h_msgs = subs["H"].on("H/reading") + subs["H"].on("H/energy")
    for _, payload, _, _ in h_msgs:
        r = json.loads(payload)
        assert all(is_energy(k) or k == "meter_time" for k in r) and "meter_time" in r, r
    times = [json.loads(m[1])["meter_time"] for m in subs["H"].on("H/energy")]
    assert times == [r["meter_time"] for r in hourly]  # each meter hour once

    for _, payload, _, _ in subs["X"].on("X/reading"):
        assert set(json.loads(payload)) <= set(FIELD_LIST)
    assert {k for m in subs["X"].on("X/reading") for k in json.loads(m[1])} == set(FIELD_LIST)

    # -- the dongle's log ---------------------------------------------------------------------
    for line in dongle.output:
        secret_free("the dongle's log", line)

    # -- every lookup and connection -------------------------------------------------------
    dongle.stop()  # the logs whole: nothing more can be written to them
    configured = {("127.0.0.1", meter.port), ("localhost", f.tls_port)}
    configured |= {("127.0.0.1", brokers[n].port) for n in ("L", "H", "X")}
    lookups = dongle.lookups()
    assert {(host, port) for host, port, _ in lookups} == configured, lookups
    assert NTP not in {host for host, _, _ in lookups}  # the unix port does no NTP
    allowed = {(ip, port) for _, port, found in lookups for _, ip, port in found}
    inet = []
    if STRACE:
        calls = dongle.syscalls()
        inet = [c for c in calls if c[0] == "connect" and c[1] in ("AF_INET", "AF_INET6")]
        assert {(ip, port) for _, _, ip, port in inet} == allowed, inet
        # glibc's resolver asks nscd's socket first (absent here): the only other connect.
        others = [c for c in calls if c[0] == "connect" and c not in inet]
        assert all(c[1] == "AF_UNIX" and c[2] == "/var/run/nscd/socket" for c in others), others
        # No datagram to anywhere: no DNS server asked, no NTP.
        assert [c for c in calls if c[0] != "connect" and c[2] is not None] == []
        # No listening socket (no local API configured): nothing on the LAN can connect in.
        assert "listen(" not in dongle.trace.read_text()
    ports = {port for _, port in configured}
    assert sampler.samples > 50 and sampler.seen, "the outside view saw nothing"
    assert {proto for proto, _ in sampler.seen} <= {"tcp", "tcp6"}  # no UDP socket at all
    assert {remote for _, remote in sampler.seen} <= ports | {0}, sampler.seen
    assert rig.connections_on(c, c.port)[c_probe:] == []

    print(
        f"\naudit: {len(lookups)} lookups of {len(configured)} configured (host, port), "
        f"{len(dongle.sockets_made())} sockets, {len(inet)} connect() calls (strace), "
        f"{sampler.samples} outside samples, 0 elsewhere"
    )
    for name, kinds in sorted(counts.items()):
        print(f"messages checked on {name}: {sum(kinds.values())} {kinds}")


# -- secrets on the error paths ---------------------------------------------------------------

BROKEN = "mqtt-Secret-Broken9z"
SHORT_WIFI = "Zq7#x"  # 5 characters: too short for WPA2, and distinctive
NUMBER = 73197319731  # a password written as a number
HIDDEN = (BROKEN, SHORT_WIFI, WIFI_PASSWORD, str(NUMBER))
_DROP = object()


def broken_configs(broker):
    """{case: config bytes}, each holding a password and one mistake next to it."""

    def with_dest(**changes):
        d = rig.destination("B", broker, user="hanport", password=BROKEN)
        d.update(changes)
        return rig.config({k: v for k, v in d.items() if v is not _DROP})

    cfg = with_dest()
    good = json.dumps(cfg)
    cases = {
        "misspelt password key": with_dest(password=_DROP, pasword=BROKEN),
        "password not text": with_dest(password=[BROKEN]),
        "password too long": with_dest(password=BROKEN * 8),
        "password without user": with_dest(user=_DROP),
        "unknown key holding it": dict(cfg, secret=BROKEN),
        "wifi password too short": dict(cfg, wifi=[{"ssid": "home", "password": SHORT_WIFI}]),
        "wifi password not text": dict(cfg, wifi=[{"ssid": "home", "password": [WIFI_PASSWORD]}]),
        "wifi network without ssid": dict(cfg, wifi=[{"password": WIFI_PASSWORD}]),
        # Every wrong shape a secret can take, where a secret could be: none may be echoed.
        "wifi entry as text": dict(cfg, wifi=["home", WIFI_PASSWORD]),
        "wifi as text": dict(cfg, wifi=WIFI_PASSWORD),
        "wifi as an object": dict(cfg, wifi={"home": WIFI_PASSWORD}),
        "wifi as a list of lists": dict(cfg, wifi=[["home", WIFI_PASSWORD]]),
        "wifi password a number": dict(cfg, wifi=[{"ssid": "home", "password": NUMBER}]),
        "wifi password in an object": dict(
            cfg, wifi=[{"ssid": "home", "password": {"psk": WIFI_PASSWORD}}]
        ),
        "wifi key misspelt": dict(cfg, wifi=[{"ssid": "home", "key": WIFI_PASSWORD}]),
        "password a number": with_dest(password=NUMBER),
        "password in an object": with_dest(password={"value": BROKEN}),
        "password in a list of lists": with_dest(password=[[BROKEN, NUMBER]]),
        "auth_key unknown": with_dest(auth_key=BROKEN),
        "destination as text": dict(cfg, destinations=[BROKEN]),
        "destinations as text": dict(cfg, destinations=BROKEN),
        "tls holding it": with_dest(tls={"ca": "ca.pem", "key": BROKEN}),
        "tls as text": with_dest(tls=BROKEN),
        "config a list": [cfg["wifi"], BROKEN],
        "config text": BROKEN,
    }
    out = {case: json.dumps(c).encode() for case, c in cases.items()}
    out["a comma missing after it"] = good.replace(
        f'"{BROKEN}"', f'"{BROKEN}" "retry_min": 1'
    ).encode()
    out["cut short inside it"] = good[: good.index(BROKEN) + 8].encode()
    out["not UTF-8 next to it"] = good.replace(BROKEN, BROKEN + "@").encode().replace(b"@", b"\xff")
    return out


class RawDongle(rig.Dongle):
    """rig.Dongle whose config file is the given bytes as they are (not UTF-8, say)."""

    def start(self):
        self.config_path.write_bytes(self.config)
        cmd = [str(rig.HANCTL), "run", "--config", str(self.config_path), "--uart", self.uart]
        cmd += ["--heap", self.heap, "--state", str(self.state)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self


def test_broken_configs_and_a_refused_password_never_show_the_secret(parts):
    tmp, track = parts
    b = track(plain_broker(tmp, "b", "the-broker-knows-another").start())
    sub = track(rig.Subscriber(b))
    meter = track(Server(rig.scripted([encoder.kaifa(1)] * 200)).start())
    uart = f"tcp://127.0.0.1:{meter.port}"
    cases = broken_configs(b)
    dongles = {}
    for i, (case, raw) in enumerate(cases.items()):
        path = tmp / f"case{i}.json"
        path.write_bytes(raw)
        out = subprocess.run(
            [str(rig.HANCTL), "config", "validate", "--unix", str(path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 1 and out.stdout.strip(), (case, out.stdout + out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        for s in HIDDEN:
            assert s not in out.stdout + out.stderr, (case, out.stdout)
        # The dongle on the same bytes, all at once: each logs why and stays safe.
        dongles[case] = track(RawDongle(tmp / f"fs{i}", raw, uart).start())
    # The right user with a wrong password: refused by the broker, retried, logged.
    cfg = rig.config(
        rig.destination("W", b, user="hanport", password=BROKEN, retry_min=1, retry_max=1)
    )
    cfg["wifi"] = [{"ssid": "home", "password": WIFI_PASSWORD}]
    refused = track(rig.Dongle(tmp / "fs-refused", cfg, uart).start())
    for case, d in dongles.items():
        d.wait_log("safe state", timeout=60)
        assert any("hanport: config: " in line for line in d.output), (case, d.output)
    deadline = time.monotonic() + 30
    while sum("destination W failed" in x for x in refused.output) < 3:
        assert time.monotonic() < deadline, refused.output
        time.sleep(0.2)
    for case, d in [*dongles.items(), ("refused password", refused)]:
        for line in d.output:
            for s in HIDDEN:
                assert s not in line, (case, line)
    assert "not authorised" in rig.broker_log(b)
    for _, payload, _, _ in sub.messages:
        for s in HIDDEN:
            assert s.encode() not in payload
    print(f"\n{len(cases)} broken configs and one refused password: no secret in any output")


# -- hanctl's output ----------------------------------------------------------------------------


def hanctl(*args, stdin="", env=None):
    proc = subprocess.run(
        [str(rig.HANCTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_hanctl_never_prints_a_password(parts, dongle, tmp_path):
    """config validate / init / push / pull, and monitor with a password in its URL, from
    the environment, and refused by the broker."""
    tmp, track = parts
    from configs import TWO_NETWORKS_TWO_DESTINATIONS

    answers = [
        {"wifi-pass-1": WIFI_PASSWORD, "mqtt-secret-3": PASSWORDS["F"]}.get(a, a)
        for a in TWO_NETWORKS_TWO_DESTINATIONS
    ]
    answers.insert(1, SHORT_WIFI)  # refused first (too short), then the real one
    path = tmp_path / "config.json"
    status, out = hanctl("config", "init", str(path), stdin="".join(a + "\n" for a in answers))
    assert status == 0, out
    assert "too short" in out  # the refusal was said, without the password
    assert WIFI_PASSWORD in path.read_text()  # the file holds it; the output must not
    outputs = {"config init": out}
    outputs["config validate"] = hanctl("config", "validate", str(path))[1]
    (tmp_path / "ca.pem").write_text("not checked by push\n")
    outputs["config push"] = hanctl("config", "push", "--port", dongle.port, str(path))[1]
    pulled = tmp_path / "pulled.json"
    outputs["config pull"] = hanctl("config", "pull", "--port", dongle.port, str(pulled))[1]
    assert pulled.read_text() == path.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(path.read_text().replace(f'"{PASSWORDS["F"]}"', f'["{PASSWORDS["F"]}"]'))
    outputs["config push (invalid)"] = hanctl("config", "push", "--port", dongle.port, str(bad))[1]
    assert "not pushed" in outputs["config push (invalid)"]

    b = track(plain_broker(tmp, "b", PASSWORDS["L"]).start())
    url = f"mqtt://hanport:{PASSWORDS['L']}@127.0.0.1:{b.port}"
    watch = ("--topic", "hanport/x", "--seconds", "2")
    outputs["monitor (url)"] = hanctl("monitor", "--broker", url, *watch)[1]
    outputs["monitor (env)"] = hanctl(
        "monitor", "--broker", f"mqtt://127.0.0.1:{b.port}", "--user", "hanport", *watch,
        env={"HANPORT_MQTT_PASSWORD": PASSWORDS["L"]},
    )[1]  # fmt: skip
    outputs["monitor (refused)"] = hanctl(
        "monitor", "--broker", f"mqtt://hanport:{PASSWORDS['H']}@127.0.0.1:{b.port}", *watch
    )[1]
    outputs["monitor (bad url)"] = hanctl("monitor", "--broker", url.replace("mqtt", "http"))[1]
    for command, text in outputs.items():
        secret_free(f"hanctl {command}", text)
        assert SHORT_WIFI not in text, command
    print(f"\n{len(outputs)} hanctl outputs, no password in any")


def test_hanctl_capture_does_not_echo_a_password_in_its_port(tmp_path):
    port = f"mqtt://hanport:{PASSWORDS['X']}@127.0.0.1:1883/hanport/A"
    _, out = hanctl("capture", "--port", port, "--out", str(tmp_path / "x.bin"), "--seconds", "1")
    secret_free("hanctl capture", out)
