"""Meter link faults: wrong parity, wrong speed, an inverted line, the cable pulled
and plugged back. The firmware's real main on the MicroPython unix port, Debian's
mosquitto, and a simulated meter whose bytes pass through a bit-level line emulator
(tools/hanctl/line.py) at the meter's true setting and the setting the dongle's UART
announces (hal_unix.Uart.configure). Auto-detection must lock on a setting that reads the
meter, within a measured bound, and the stats must tell the faults apart."""

import datetime as dt
import json
import random
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import rig
from hanctl import encoder, line, simulate
from hanctl.simulate import Server

E1, N1, P1 = (2400, "8E1", False), (2400, "8N1", False), (115200, "8N1", True)
E1_INV, N1_INV = (2400, "8E1", True), (2400, "8N1", True)
AUTO = {"baud": "auto", "parity": "auto", "invert": False}
# meterlink: 25 s of bytes without a valid frame before the next setting is tried.
DETECT_S = 25
# Timing margin on a shared 2-core machine: the firmware's own steps are seconds long.
MARGIN_S = 20

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not rig.Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (.ci/run installs it)",
)


# -- The line emulator itself -------------------------------------------------------------


def test_a_uart_at_the_meters_setting_reads_every_byte_bit_by_bit():
    rng = random.Random(5)
    data = bytes(rng.randrange(256) for _ in range(400))
    for s in (E1, N1, P1, E1_INV, N1_INV, (9600, "8N1", False)):
        errors = {}
        assert line.sample(data, s, s, errors) == data
        assert errors == {}


def test_the_shortcut_agrees_with_the_bit_level_model():
    settings = (E1, N1, P1, E1_INV, N1_INV, (9600, "8E1", False))
    rng = random.Random(6)
    for _ in range(3):
        data = bytes(rng.randrange(256) for _ in range(300))
        for s in settings:
            for r in settings:
                e1, e2 = {}, {}
                assert line.receive(data, s, r, e1) == line.sample(data, s, r, e2), (s, r)
                assert e1 == e2, (s, r)


def test_what_a_real_uart_makes_of_a_wrong_setting():
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(400))
    # 8E1 read as 8N1: the parity bit is taken for the stop bit, the real stop bit is
    # idle: every byte right, a framing error where the parity bit is 0.
    errors = {}
    assert line.receive(data, E1, N1, errors) == data
    assert errors["framing"] == sum(1 for b in data if bin(b).count("1") % 2 == 0)
    # 8N1 read as 8E1, bytes back to back: the next start bit is taken for the stop bit.
    errors = {}
    got = line.receive(data, N1, E1, errors)
    assert got != data and errors["framing"] > 100 and errors["parity"] > 100
    # 8N1 read as 8E1 with a pause after each byte: right bytes, half with parity errors.
    errors = {}
    assert b"".join(line.receive(bytes([b]), N1, E1, errors) for b in data) == data
    assert 0 < errors["parity"] < len(data) and "framing" not in errors
    # A 2400 baud meter read at 115200: each of its low levels is a break, read as 0x00.
    got = line.receive(data, E1, P1)
    assert len(got) > len(data) and set(got) == {0}
    # A 115200 baud telegram read at 2400: a few bytes of garbage.
    got = line.receive(data, P1, E1)
    assert 0 < len(got) < 20
    # Inverted: garbage, and fewer bytes (each start bit needs the line high first).
    got = line.receive(data, E1, E1_INV)
    assert got != data and 0 < len(got) < len(data)


def test_one_byte_by_hand():
    # 0x00 at 2400 8N1 read at 4800 8N1: low for 9 meter bits (start and 8 zeros). The
    # receiver reads 0x00, its stop bit (4.75 meter bits in) still low: a framing error;
    # then the line rises for the meter's stop bit and never falls again.
    errors = {}
    assert line.receive(b"\x00", N1, (4800, "8N1", False), errors) == b"\x00"
    assert errors == {"framing": 1}
    # 0xF0 at 2400 8N1 read at 1200: low for 5 meter bits (start, four 0s), 2.5 receiver
    # bits: start 0, d0 0, d1 sampled 5 meter bits after the edge, high, and all after.
    assert line.receive(b"\xf0", N1, (1200, "8N1", False)) == b"\xfe"
    # 0x0F read inverted at its own speed: the line idles low, rises for the inverted
    # start bit and falls at d0: a start there, then d1..d7 inverted (0,0,0,1,1,1,1), the
    # inverted stop bit (0) as d7, the idle (low) as the stop bit: 0x78, framing error.
    errors = {}
    assert line.receive(b"\x0f", N1, N1_INV, errors) == b"\x78"
    assert errors == {"framing": 1}


# -- Which settings read which meter (the firmware's decoder on CPython) ------------------


def kaifa_frames(n=6):
    meter = simulate.Meter("kaifa", 3, start=dt.datetime(2024, 3, 5, 13, 59, 50))
    pushes = meter.pushes()
    return [meter.frame(next(pushes))[0] for _ in range(n)]


def kamstrup_frames(n=4):
    meter = simulate.Meter("kamstrup", 3, start=dt.datetime(2024, 3, 5, 13, 59, 40))
    pushes = meter.pushes()
    return [meter.frame(next(pushes))[0] for _ in range(n)]


def p1_telegram(i):
    """A DSMR 5 telegram as a Kaifa/Landis P1 port prints it every second."""
    t = dt.datetime(2024, 1, 5, 13, 0, 0) + dt.timedelta(seconds=i)
    return encoder.p1(
        "KFM5KAIFA-METER",
        [
            "1-3:0.2.8(50)",
            f"0-0:1.0.0({t:%y%m%d%H%M%S}W)",
            f"1-0:1.8.1({1234.5 + i / 1000:010.3f}*kWh)",
            "1-0:1.8.2(002345.678*kWh)",
            f"1-0:1.7.0({1.2 + (i % 7) / 10:06.3f}*kW)",
            "1-0:2.7.0(00.000*kW)",
            "1-0:32.7.0(230.1*V)",
            "1-0:31.7.0(005*A)",
        ],
    )


def decoded(frames, meter_line, uart):
    from decoder import Decoder

    readings = []
    d = Decoder(readings.append)
    for f in frames:  # the meter pauses between frames: each on an idle line
        d.feed(line.receive(f, meter_line, uart))
        d.idle()
    return readings, d.assembler


# meterlink.SETTINGS, in its order
SEARCHED = (E1, N1, P1, E1_INV, N1_INV)


@pytest.mark.parametrize(
    "meter, meter_line, reads",
    [
        ("kaifa", E1, {E1, N1}),  # 8E1 read as 8N1 is read right (a real UART does)
        ("kamstrup", N1, {N1}),
        ("p1", P1, {P1}),
        ("kaifa-inverted", E1_INV, {E1_INV, N1_INV}),
    ],
)
def test_only_a_right_setting_decodes_and_a_wrong_one_shows_as_noise(meter, meter_line, reads):
    import meterlink

    assert tuple(meterlink.SETTINGS) == SEARCHED
    frames = {
        "kaifa": kaifa_frames,
        "kamstrup": kamstrup_frames,
        "p1": lambda: [p1_telegram(i) for i in range(6)],
        "kaifa-inverted": kaifa_frames,
    }[meter]()
    for uart in SEARCHED:
        readings, a = decoded(frames, meter_line, uart)
        if uart in reads:
            assert len(readings) == len(frames), line.name(uart)
        else:  # what the stats show under a wrong setting: bytes, noise, no frame
            assert readings == [] and sum(a.frames) == 0, line.name(uart)
            assert a.bytes_in > 0 and a.noise > 0, line.name(uart)


def test_hanctl_simulate_line_serves_what_the_announced_setting_reads():
    from decoder import Decoder

    def decoded(data):
        readings = []
        d = Decoder(readings.append)
        d.feed(data)
        d.end()
        return len(readings), d.assembler.noise

    port = rig.free_port()
    meter = Simulate(port, "--meter", "kamstrup", "--speed", "10", "--line", "meter")
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            got = {}
            for setting in (b"2400 8E1", b"2400 8N1"):
                sock.sendall(b"line " + setting + b"\n")
                time.sleep(0.3)  # announced before the next push
                # Pushes every 10 s / 10: two readings, or 100 bytes of noise, or 30 s.
                data = rig.read_until(sock, lambda d: decoded(d)[0] >= 2 or decoded(d)[1] > 100)
                got[setting] = decoded(data)
    finally:
        meter.stop()
    assert got[b"2400 8E1"][0] == 0 and got[b"2400 8E1"][1] > 100, got  # garbage
    assert got[b"2400 8N1"][0] >= 2, got  # the meter's own setting


# -- End to end ---------------------------------------------------------------------------


def paced(frames_forever, go):
    """Chunks for Server: (line seconds, frame) then the pause to the next push."""
    go.wait()
    yield from frames_forever


def p1_chunks(go, period=1.0):
    go.wait()
    i = 0
    while True:
        t = p1_telegram(i)
        busy = simulate.line_seconds(t, 115200, 10)
        yield busy, t
        yield period - busy, b""
        i += 1


class Scenario:
    """One dongle (auto line setting, a remembered one given) on its own simulated meter."""

    def __init__(self, tmp, track, broker, name, meter_line, chunks, remembered, go):
        self.name = name
        self.meter_line = meter_line
        self.server = track(Server(chunks, line=meter_line).start())
        fs = tmp / name
        fs.mkdir()
        if remembered is not None:
            (fs / "state.json").write_text(json.dumps({"link": list(remembered)}))
        self.remembered = remembered
        # Each its own client id: one broker holds one session per id.
        dest = rig.destination(name, broker, stats_interval=1, client_id="hanport-" + name)
        cfg = rig.config(dest, meter=AUTO)
        self.dongle = track(rig.Dongle(fs, cfg, f"tcp://127.0.0.1:{self.server.port}").start())
        self.go = go
        self.fs = fs

    def stats(self, sub):
        return [json.loads(m[1]) for m in sub.on(f"{self.name}/stats")]

    def announced(self):
        return [s for _, s in self.server.announced]


@needs_mosquitto
def test_auto_detection_finds_each_meters_line_and_the_stats_say_what_was_wrong(parts):
    """Five dongles at once, each starting from a remembered setting that is wrong for its
    meter (one that still reads it: 8E1 read as 8N1)."""
    tmp, track = parts
    broker = track(rig.Broker(tmp, "broker").start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    go = threading.Event()

    def feed(kind):
        return paced(simulate.Feed(simulate.Meter(kind, 3)).chunks(), go)

    # (name, meter, the meter's line, remembered, settings tried, what the stats say)
    cases = [
        ("parity", "kamstrup", N1, E1, [E1, N1]),
        ("speed", "kaifa", E1, P1, [P1, E1]),
        ("n1reads", "aidon", E1, N1, [N1]),
        ("p1", "p1", P1, E1, [E1, N1, P1]),
        ("inverted", "kaifa", E1_INV, E1, [E1, N1, P1, E1_INV]),
    ]
    runs = []
    for name, kind, meter_line, remembered, tried in cases:
        chunks = p1_chunks(go) if kind == "p1" else feed(kind)
        s = Scenario(tmp, track, broker, name, meter_line, chunks, remembered, go)
        s.tried, s.kind = tried, kind
        runs.append(s)
    for s in runs:
        s.dongle.wait_log(f"destination {s.name} connected", timeout=60)
        assert s.server.connected.wait(30)
    time.sleep(1)  # each UART has announced its remembered setting
    t0 = time.monotonic()
    go.set()

    # The bound: 25 s per wrong setting, then the meter's next push (Kamstrup: 10 s).
    cadence = {"kamstrup": 10, "kaifa": 2, "aidon": 2.5, "p1": 1}
    deadline = {s.name: DETECT_S * (len(s.tried) - 1) + cadence[s.kind] + MARGIN_S for s in runs}
    locked_at = {}
    during = {}
    while len(locked_at) < len(runs) and time.monotonic() - t0 < max(deadline.values()) + 5:
        for s in runs:
            if s.name in locked_at:
                continue
            if sub.on(f"{s.name}/reading"):
                locked_at[s.name] = sub.on(f"{s.name}/reading")[0][3] - t0
            else:
                st = s.stats(sub)
                x = st[-1] if st else None
                if x and x["line"] == line.name(s.remembered) and x["bytes_received"]:
                    during[s.name] = x  # the last stats on the wrong setting, bytes in
        time.sleep(0.2)
    time.sleep(3)  # stats after the lock, and a few more readings
    for s in runs:  # the meters go quiet, so what was sent and what arrived can be counted
        s.server.unplug()
    time.sleep(2.5)

    report = []
    for s in runs:
        got = locked_at.get(s.name)
        log = "\n".join(s.dongle.output[-20:])
        assert got is not None, f"{s.name}: no reading in {deadline[s.name]} s; log:\n{log}"
        assert got < deadline[s.name], f"{s.name}: locked after {got:.1f} s"
        assert s.announced() == [s.remembered] + s.tried[1:], s.name
        final = s.stats(sub)[-1]
        want = line.name(s.tried[-1])
        assert final["line"] == want and final["line_locked"], (s.name, final)
        search = final["line_search"]
        assert search["from"] == line.name(s.remembered), (s.name, search)
        assert search["switches"] == len(s.tried) - 1 and search["searches"] == 1, s.name
        assert search["lock_s"] is not None and search["lock_s"] <= got + 1, (s.name, search)
        # Nothing lost once the line was right: every frame the meter sent while the UART
        # read at the final setting is a frame and a reading of the dongle, and a message
        # at the broker.
        sent = s.server.delivered[s.tried[-1]]
        frames = final["frames"]["p1" if s.kind == "p1" else "hdlc"]
        assert frames == final["readings"] == sent, (s.name, sent, final)
        assert len(sub.on(f"{s.name}/reading")) == sent, (s.name, final["destination"])
        # The state file remembers the setting that worked, for the next boot.
        state = json.loads((s.fs / "state.json").read_text())
        assert state["link"] == list(s.tried[-1]), s.name
        if len(s.tried) > 1:
            # While searching the stats said: bytes, noise, no frame, not locked.
            d = during[s.name]
            assert d["bytes_received"] > 0 and d["noise_bytes"] > 0, (s.name, d)
            assert sum(d["frames"].values()) == 0 and d["readings"] == 0, (s.name, d)
            assert not d["line_locked"] and d["line_search"]["lock_s"] is None, (s.name, d)
            assert d["last_frame_age_s"] is None, (s.name, d)
        report.append(
            f"{s.name}: meter {line.name(s.meter_line)}, from {line.name(s.remembered)}: "
            f"tried {len(s.tried)}, first reading after {got:.1f} s (bound {deadline[s.name]} s);"
            f" while searching: {during.get(s.name)}; final line_search {search}"
        )
    print("\n".join(report))


@needs_mosquitto
def test_cable_pulled_for_90_s_and_plugged_back_recovers_without_a_reboot(parts):
    """No bytes is no evidence against the setting: the dongle keeps it through a long
    silence (longer than the lost-lock search's minute), and reads on when plugged back."""
    tmp, track = parts
    broker = track(rig.Broker(tmp, "broker").start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    go = threading.Event()
    feed = simulate.Feed(simulate.Meter("kaifa", 3))
    s = Scenario(tmp, track, broker, "cable", E1, paced(feed.chunks(), go), E1, go)
    s.dongle.wait_log("destination cable connected", timeout=60)
    assert s.server.connected.wait(30)
    go.set()
    sub.wait("cable/reading", 3, timeout=30)
    before = s.stats(sub)[-1]
    assert before["line_locked"] and before["last_frame_age_s"] <= 3

    pulled = 90
    s.server.unplug()
    t_pull = time.monotonic()
    time.sleep(pulled)
    n_pulled = len(sub.on("cable/reading"))
    stats = [x for x in s.stats(sub) if x["uptime_s"] > before["uptime_s"]]
    last = stats[-1]
    # The stats during the gap: no bytes at all, the last frame ever older, still locked
    # on the same setting, no search (no switches).
    assert last["bytes_received"] == stats[len(stats) // 4]["bytes_received"]
    assert last["last_frame_age_s"] >= pulled - 10, last
    assert last["line"] == "2400 8E1" and last["line_locked"], last
    assert last["line_search"]["switches"] == 0 and last["line_search"]["searches"] == 1
    assert s.announced() == [E1]  # the UART was never reconfigured

    s.server.plug()
    t_plug = time.monotonic()
    got = sub.wait("cable/reading", n_pulled + 3, timeout=30)
    recovered = got[n_pulled][3] - t_plug
    assert recovered < 2 + MARGIN_S  # Kaifa pushes every 2 s
    time.sleep(2.5)
    after = s.stats(sub)[-1]
    assert after["last_frame_age_s"] <= 3 and after["line_locked"], after
    assert after["uptime_s"] > last["uptime_s"] >= pulled  # the same run: no reboot
    assert s.dongle.proc.poll() is None
    # Nothing lost that reached the wire: each frame sent while plugged is a reading.
    time.sleep(1)
    assert len(sub.on("cable/reading")) == s.server.delivered[E1]
    assert s.server.unplugged_bytes > 0
    print(
        f"cable: pulled {pulled} s (t={t_pull:.0f}); last_frame_age_s reached "
        f"{last['last_frame_age_s']}, bytes_received flat at {last['bytes_received']}; first "
        f"reading {recovered:.1f} s after plugging back; after: {after['last_frame_age_s']} s"
    )


class Simulate:
    """`hanctl simulate` as its own process on a fixed port, as an owner runs it."""

    def __init__(self, port, *args):
        self.proc = subprocess.Popen(
            [str(rig.HANCTL), "simulate", "--to", f"tcp://127.0.0.1:{port}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        address = self.proc.stdout.readline().strip()
        assert address == f"tcp://127.0.0.1:{port}", self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)


@needs_mosquitto
def test_the_meter_program_restarted_is_read_again_after_a_bounded_backoff(parts):
    """hanctl run's socket UART: the meter program goes away for a while (its connection
    ends, then each attempt is refused) and comes back on the same port. The dongle
    retries with a backoff, one log line for the outage, no descriptor kept per attempt,
    and reads the new program's pushes within the backoff's bound, without a reboot."""
    tmp, track = parts
    broker = track(rig.Broker(tmp).start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    port = rig.free_port()
    meter = track(Simulate(port, "--meter", "kaifa"))
    dongle = track(rig.Dongle(tmp / "fs", rig.config(rig.destination("M", broker)),
                              f"tcp://127.0.0.1:{port}").start())  # fmt: skip
    sub.wait("M/reading", 2, timeout=60)
    sockets = len(rig.dongle_sockets(dongle))
    boots = sum("hanport 0." in x for x in dongle.output)

    meter.stop()  # its process ends: the connection closes, the port refuses
    down = time.monotonic()
    # Down past the backoff's ceiling (hal_unix.Uart: 250 ms doubling to 4 s): refused
    # attempts at 0.25, 0.75, 1.75, 3.75, 7.75 s... Without a backoff and with a leaked
    # descriptor per attempt, this was thousands of attempts, each logged, and then none
    # possible (EMFILE) when the meter came back.
    rig.wait_for(lambda: time.monotonic() - down > 9, timeout=20, why="an outage of 9 s")
    n = len(sub.on("M/reading"))
    meter = track(Simulate(port, "--meter", "kaifa"))
    back = time.monotonic()
    got = sub.wait("M/reading", n + 1, timeout=30)
    recovered = got[n][3] - back
    assert recovered < 4 + 2 + MARGIN_S  # the backoff's ceiling, then Kaifa's 2 s push
    uart_lines = [x for x in dongle.output if "uart" in x]
    assert sum("meter link down" in x for x in uart_lines) == 1, uart_lines
    assert len(uart_lines) < 10, uart_lines  # the setting, down, up: nothing per attempt
    assert dongle.proc.poll() is None and sum("hanport 0." in x for x in dongle.output) == boots
    assert len(rig.dongle_sockets(dongle)) <= sockets, rig.dongle_sockets(dongle)
    print(f"meter restarted after {back - down:.1f} s down: read again {recovered:.1f} s later")


@needs_mosquitto
def test_a_meter_whose_line_changes_while_locked_is_found_again_without_a_reboot(parts):
    """A locked setting that stops working (the meter swapped for one at 8N1): after a
    minute of bytes without a frame, the search starts again."""
    tmp, track = parts
    broker = track(rig.Broker(tmp, "broker").start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    go = threading.Event()
    feed = simulate.Feed(simulate.Meter("kaifa", 3))
    s = Scenario(tmp, track, broker, "swap", E1, paced(feed.chunks(), go), E1, go)
    s.dongle.wait_log("destination swap connected", timeout=60)
    assert s.server.connected.wait(30)
    go.set()
    sub.wait("swap/reading", 3, timeout=30)
    s.server.line = N1  # from now on the meter sends 8N1: read at 8E1, garbage
    t_swap = time.monotonic()
    n_swap = len(sub.on("swap/reading"))
    # 60 s of garbage, then 8N1 (the next candidate after the remembered 8E1) locks.
    bound = 60 + 2 + MARGIN_S
    got = sub.wait("swap/reading", n_swap + 2, timeout=bound + 10)
    relocked = got[n_swap][3] - t_swap
    assert 55 < relocked < bound, relocked
    time.sleep(2.5)
    final = s.stats(sub)[-1]
    assert final["line"] == "2400 8N1" and final["line_locked"], final
    assert final["line_search"]["searches"] == 2 and final["line_search"]["from"] == "2400 8E1"
    assert final["line_search"]["switches"] == 1
    garbled = [x for x in s.stats(sub) if x["line"] == "2400 8E1" and x["noise_bytes"] > 0]
    assert garbled and garbled[-1]["last_frame_age_s"] >= 50  # bytes but no frames, meanwhile
    assert s.announced() == [E1, N1]
    assert json.loads((s.fs / "state.json").read_text())["link"] == list(N1)
    assert s.dongle.proc.poll() is None
    print(f"swap: 8E1 -> 8N1 meter, first reading again after {relocked:.1f} s; {final}")


# -- The lost-lock watch: meterlink with a fake UART and clock on the MicroPython unix port -


def test_the_lock_is_dropped_by_a_minute_of_bad_bytes_never_by_silence_or_a_glitch():
    from mp import run_driver

    proc = run_driver("link_fault_driver.py", kaifa_frames(1)[0].hex())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.splitlines() == [
        # 59 s of bytes that make no frame: still locked (damaged frames are allowed)
        "bad 59 s: locked=True tried=2400 8E1 search=1,2400 8E1,0",
        # past 60 s: the search starts again, from the next setting
        "bad 62 s: locked=False tried=2400 8E1|2400 8N1 search=2,2400 8E1,1",
        # ten minutes without a byte (the cable pulled): nothing to say the setting is wrong
        "silent 600 s: locked=True tried=2400 8E1 search=1,2400 8E1,0",
        # a glitch as the cable is pulled, two minutes unplugged, then a frame in two reads
        "glitch, 120 s, frame: locked=True tried=2400 8E1 search=1,2400 8E1,0",
    ]
