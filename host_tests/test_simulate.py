"""`hanctl simulate`: each meter's lists decode (with the firmware decoder, through the
installed `hanctl decode`) to exactly the readings the simulator meant to send; each meter
pushes at its own cadence; --speed leaves out what no longer fits on a 2400-baud line but
never the hourly List 3; the command serves a meter or a replayed capture on TCP, and opens
a serial device at the meter's own parity."""

import datetime as dt
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

import rig
from hanctl import encoder, simulate

HANCTL = Path(sys.executable).parent / "hanctl"
needs_mosquitto = pytest.mark.skipif(
    not Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (apt install mosquitto)",
)
METERS = ("aidon", "kaifa", "kamstrup")
T0 = dt.datetime(2024, 3, 5, 13, 59, 0)


def pushes_until(meter, end):
    out = []
    for push in meter.pushes():
        if push.time > end:
            return out
        out.append(push)


def decoded(stream):
    """The firmware decoder's readings (MicroPython unix port), numbers as exact Decimals."""
    proc = subprocess.run(
        [str(HANCTL), "decode", "--errors", "-"], input=stream, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line, parse_float=Decimal) for line in proc.stdout.decode().splitlines()]


@pytest.mark.parametrize("phases", [1, 3])
@pytest.mark.parametrize("kind", METERS)
def test_lists_decode_to_exactly_what_the_meter_sent(kind, phases):
    meter = simulate.Meter(kind, phases, start=dt.datetime(2024, 3, 5, 13, 59, 40))
    pushes = pushes_until(meter, dt.datetime(2024, 3, 5, 14, 0, 30))  # across List 3
    frames, sent = zip(*(meter.frame(p) for p in pushes), strict=True)
    got = decoded(b"".join(frames))

    assert len(got) == len(sent)  # no rejection, nothing lost
    maker = simulate.MANUFACTURER[kind]
    for reading, want, push in zip(got, sent, pushes, strict=True):
        # The manufacturer is the decoder's inference from the list id, not a sent field.
        assert reading.pop("meter_manufacturer", maker) == maker
        assert reading == want, f"{kind} {phases}-phase List {push.list_no} at {push.time}"
        assert not any(isinstance(v, float) for v in reading.values())
    lists = Counter(p.list_no for p in pushes)
    assert lists[3] == 1 and lists[2] >= 3
    full = [r for r in sent if "current_l1" in r][0]
    phase_fields = {k for k in full if k[-3:] in ("_l1", "_l2", "_l3")}
    assert len(phase_fields) == 2 * phases  # a one-phase meter sends no L2, L3
    energy = [r for r in sent if "active_energy_import" in r][0]
    assert energy["active_energy_import"] >= Decimal("109552.25")  # registers only count up
    # Resolution as each meter sends it (list descriptions): Kaifa in mA and Wh.
    amp, volt, wh = simulate.RESOLUTION[kind]
    assert all(full[f"current_l{i}"] % amp == 0 for i in range(1, phases + 1))
    assert all(full[f"voltage_l{i}"] % volt == 0 for i in range(1, phases + 1))
    assert energy["active_energy_import"] * 1000 % wh == 0


@pytest.mark.parametrize("kind", METERS)
def test_three_phase_lists_are_the_shared_encoders_byte_for_byte(kind):
    meter = simulate.Meter(kind, 3, start=dt.datetime(2024, 3, 5, 13, 59, 50))
    for push in pushes_until(meter, dt.datetime(2024, 3, 5, 14, 0, 20)):
        frame, _ = meter.frame(push)
        assert frame == encoder.METERS[kind](push.list_no, push.values)


# Two hours of meter time, (13:59:00, 15:59:00]: Aidon every 2.5 s, Kaifa every 2 s, each a
# List 2 at every 10 s and the List 3 at hh:00:10 in its place; Kamstrup a List 2 every 10 s
# and the List 3 at hh:00:05 between two of them.
CADENCE = {
    "aidon": ({1: 2160, 2: 718, 3: 2}, "00:10"),
    "kaifa": ({1: 2880, 2: 718, 3: 2}, "00:10"),
    "kamstrup": ({2: 720, 3: 2}, "00:05"),
}


@pytest.mark.parametrize("kind", METERS)
def test_each_meter_pushes_at_its_own_cadence(kind):
    meter = simulate.Meter(kind, 3, start=T0)
    pushes = pushes_until(meter, T0 + dt.timedelta(hours=2))
    counts, list3_at = CADENCE[kind]
    assert Counter(p.list_no for p in pushes) == counts
    assert [p.time.strftime("%H:%M:%S") for p in pushes if p.list_no == 3] == [
        f"14:{list3_at}",
        f"15:{list3_at}",
    ]
    regular = [p.time for p in pushes if p.list_no != 3 or kind != "kamstrup"]
    steps = {b - a for a, b in zip(regular, regular[1:], strict=False)}
    assert steps == {dt.timedelta(milliseconds=simulate.CADENCE[kind][0])}
    for p in pushes:
        if p.list_no == 2:
            assert p.time.second % 10 == 0 and p.time.microsecond == 0


def run_feed(feed, hours):
    """(line time of each frame, total wall time) of `hours` of meter time, not slept."""
    end = feed.meter.clock + dt.timedelta(hours=hours)
    frames, wall = [], 0.0
    for wait, data in feed.chunks():
        if data:
            frames.append((wall, wait, data))
        wall += wait
        if feed.meter.clock >= end:
            return frames, wall


@pytest.mark.parametrize("kind", METERS)
def test_at_high_speed_what_does_not_fit_is_left_out_but_list_3_goes_hourly(kind):
    slow = simulate.Feed(simulate.Meter(kind, 3, start=T0), speed=1)
    _, wall = run_feed(slow, 0.25)
    assert slow.skipped == 0 and wall == pytest.approx(900, abs=11)  # real time: all fits

    feed = simulate.Feed(simulate.Meter(kind, 3, start=T0), speed=600)
    frames, wall = run_feed(feed, 3)
    assert wall == pytest.approx(3 * 3600 / 600, abs=2)  # the meter's clock, 600 times faster
    assert feed.skipped > len(frames)  # most pushes no longer fit...
    bits = simulate.BITS[simulate.LINE[kind]]
    for (start, busy, data), (after, _, _) in zip(frames, frames[1:], strict=False):
        assert busy == len(data) * bits / 2400  # ...each frame takes its real line time...
        assert after >= start + busy - 1e-9  # ...and frames never overlap on the line
    hours = [t.hour for t, n, _ in feed.sent if n == 3]
    assert hours[:3] == [14, 15, 16]  # List 3 still goes out every (meter) hour


def frames_in(data):
    """How many readings the firmware's decoder (in this CPython) makes of data."""
    from decoder import Decoder

    readings = []
    Decoder(readings.append).feed(data)
    return len(readings)


def start_simulate(*args):
    proc = subprocess.Popen(
        [str(HANCTL), "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = proc.stdout.readline().strip()
    assert address.startswith("tcp://127.0.0.1:"), proc.stderr.read()
    return proc, int(address.rsplit(":", 1)[1])


def interrupt(proc):
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in err, err


def test_simulate_serves_a_one_phase_meter_on_tcp_with_compressed_time():
    proc, port = start_simulate(
        "--meter", "kaifa", "--phases", "1", "--speed", "5", "--to", "tcp://127.0.0.1:0"
    )
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            data = rig.read_until(sock, lambda d: frames_in(d) >= 5)
    finally:
        interrupt(proc)
    readings = decoded(data)
    assert len(readings) >= 5
    times = [dt.datetime.fromisoformat(r["meter_time"]) for r in readings]
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert all(s > 0 and s % 2 == 0 for s in steps)  # Kaifa's 2-s grid, some left out
    assert (times[-1] - times[0]).total_seconds() >= 8  # 5 times faster than 3 s of wall time
    full = [r for r in readings if "meter_model" in r]
    assert full and all(r["meter_model"] == "MA105H2E" for r in full)
    assert all("current_l2" not in r and "voltage_l1" in r for r in full)


KEY, AUTH_KEY = "000102030405060708090a0b0c0d0e0f", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"


@pytest.mark.parametrize("auth", [False, True], ids=["encrypted", "authenticated"])
def test_simulate_serves_an_encrypting_meter_that_decode_opens_with_its_keys(auth):
    # An encrypting meter: `simulate --key [--auth-key]`, read back through
    # `decode --key [--auth-key]` on the MicroPython unix port; no key: `encrypted`; a wrong
    # one: `decrypt`.
    keys = ["--key", KEY] + (["--auth-key", AUTH_KEY] if auth else [])
    proc, port = start_simulate(
        "--meter", "kamstrup", "--speed", "5", "--to", "tcp://127.0.0.1:0", *keys
    )
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            data = rig.read_until(sock, lambda d: d.count(b"\xdb\x08KAM") >= 3)
    finally:
        interrupt(proc)
    assert KEY.encode() not in data and bytes.fromhex(KEY) not in data
    assert b"Kamstrup" not in data  # the list's text is ciphered too

    def run(*args):
        cmd = [str(HANCTL), "decode", "--errors", *args, "-"]
        out = subprocess.run(cmd, input=data, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        return [json.loads(line) for line in out.stdout.decode().splitlines()]

    readings = [r for r in run(*keys) if "error" not in r]
    assert len(readings) >= 2 and all(r["meter_manufacturer"] == "Kamstrup" for r in readings)
    assert {r["error"] for r in run()} == {"encrypted"}
    wrong = ["--key", AUTH_KEY] + (["--auth-key", KEY] if auth else [])
    assert {r["error"] for r in run(*wrong)} == {"decrypt"}


def test_simulate_refuses_an_auth_key_without_a_key():
    cmd = [str(HANCTL), "simulate", "--auth-key", AUTH_KEY]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--auth-key needs --key" in out.stderr
    assert AUTH_KEY not in out.stderr + out.stdout


def test_replay_serves_a_capture_from_its_first_byte(tmp_path):
    capture = b"".join(frame for _, frame in encoder.sample_frames())
    path = tmp_path / "capture.hex"
    path.write_text(capture.hex(" "))
    proc, port = start_simulate("--replay", str(path), "--speed", "20", "--to", "tcp://127.0.0.1:0")
    try:
        time.sleep(0.5)  # no listener yet: the capture waits (the bytes below all came)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            data = rig.read_until(sock, lambda d: len(d) >= len(capture))
    finally:
        interrupt(proc)
    assert data == capture


def p1_capture(n):
    """n DSMR 5 telegrams back to back, as `hanctl capture` records a P1 port."""
    return b"".join(
        encoder.p1(
            "KFM5KAIFA-METER",
            [
                "1-3:0.2.8(50)",
                f"0-0:1.0.0(2401051300{i:02d}W)",
                f"1-0:1.8.1({1234.5 + i / 1000:010.3f}*kWh)",
                f"1-0:1.7.0({1.2 + i / 10:06.3f}*kW)",
                "1-0:32.7.0(230.1*V)",
            ],
        )
        for i in range(n)
    )


def test_a_capture_is_paced_at_the_line_it_came_from():
    p1 = p1_capture(3)
    hdlc = encoder.kaifa(1)
    # P1: 115200 8N1 on an inverted line; HAN (HDLC, M-Bus): 2400 baud.
    assert simulate.capture_line(p1, "aidon") == (115200, "8N1", True)
    assert simulate.capture_line(b"\r\n" + p1, "aidon") == (115200, "8N1", True)
    assert simulate.capture_line(hdlc, "kaifa") == (2400, "8E1", False)
    assert simulate.capture_line(hdlc, "kamstrup") == (2400, "8N1", False)
    assert simulate.capture_line(bytes.fromhex("68 1f 1f 68 53 ff"), "aidon")[0] == 2400
    for data, setting in ((p1, (115200, "8N1", True)), (hdlc, (2400, "8E1", False))):
        chunks = list(itertools.islice(simulate.replay_chunks(data, setting), 1000))
        sent = [(wait, piece) for wait, piece in chunks if piece]
        assert b"".join(piece for _, piece in sent) == data
        bits = simulate.BITS[setting[1]]
        assert sum(w for w, _ in sent) == pytest.approx(len(data) * bits / setting[0])
        # No pause inside the stream as long as a lost byte makes (meterlink's 100 ms
        # closes the frame): the bytes come in pieces of at most 20 ms of line time.
        assert max(w for w, _ in sent) <= 0.021


@needs_mosquitto
def test_a_replayed_p1_capture_reaches_the_dongle_as_telegrams_not_noise(parts):
    tmp, track = parts
    capture = p1_capture(12)
    path = tmp / "p1.bin"
    path.write_bytes(capture)
    broker = track(rig.Broker(tmp).start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    port = rig.free_port()
    proc, _ = start_simulate("--replay", str(path), "--to", f"tcp://127.0.0.1:{port}")
    try:
        p1_port = {"baud": 115200, "parity": "8N1", "invert": True}
        cfg = rig.config(rig.destination("P", broker, stats_interval=1), meter=p1_port)
        track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{port}").start())
        # Back to back, the telegrams come faster than a destination publishes (its
        # dropped count): the stats count what the dongle read.
        stats = rig.wait_for(
            lambda: [x for x in sub.json("P/stats") if x["bytes_received"] == len(capture)],
            timeout=60,
            why="stats after the whole capture",
        )[-1]
    finally:
        interrupt(proc)
    assert stats["frames"]["p1"] == stats["readings"] == 12, stats
    assert stats["noise_bytes"] == 0 and not any(stats["rejected"].values()), stats


@needs_mosquitto
def test_a_luxembourg_meter_reaches_the_dongle_that_has_its_key(parts):
    # `simulate --replay P1 --key`: each telegram ciphered as Luxembourg's meters send it; the
    # dongle, given the key in config.json (meter.key) on a P1 line, publishes the readings.
    tmp, track = parts
    capture = p1_capture(6)
    sealed = simulate.sealed_telegrams(capture, bytes.fromhex(KEY))
    assert sealed.count(b"\xdb\x08SAG") == 6 and b"KFM5" not in sealed
    assert simulate.capture_line(sealed, "aidon") == simulate.P1_LINE
    path = tmp / "p1.bin"
    path.write_bytes(capture)
    broker = track(rig.Broker(tmp).start())
    sub = track(rig.Subscriber(broker, "hanport/#"))
    port = rig.free_port()
    proc, _ = start_simulate("--replay", str(path), "--key", KEY, "--to", f"tcp://127.0.0.1:{port}")
    try:
        p1_port = {"baud": 115200, "parity": "8N1", "invert": True, "key": KEY}
        cfg = rig.config(rig.destination("P", broker, stats_interval=1), meter=p1_port)
        track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{port}").start())
        stats = rig.wait_for(
            lambda: [x for x in sub.json("P/stats") if x["bytes_received"] == len(sealed)],
            timeout=60,
            why="stats after the whole capture",
        )[-1]
    finally:
        interrupt(proc)
    assert stats["frames"]["p1"] == stats["readings"] == 6, stats
    assert stats["noise_bytes"] == 0 and not any(stats["rejected"].values()), stats
    readings = sub.json("P/reading")
    assert readings and readings[-1]["meter_model"] == "KFM5KAIFA-METER", readings[-1:]
    assert not any(KEY.encode() in m[1] for m in sub.messages)


@pytest.mark.parametrize(("kind", "parity"), [("kamstrup", "N"), ("aidon", "E"), ("kaifa", "E")])
def test_serial_output_opens_the_device_at_the_meters_parity(kind, parity):
    master, slave = os.openpty()  # a real tty device (Linux ptys keep no parity bit: read back)
    try:
        with simulate.serial_port(os.ttyname(slave), simulate.LINE[kind]) as port:
            assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (
                2400,
                8,
                parity,
                1,
            )
            frame = encoder.METERS[kind](1)
            port.write(frame)
            port.flush()
            assert os.read(master, 4096) == frame
    finally:
        os.close(master)
        os.close(slave)
