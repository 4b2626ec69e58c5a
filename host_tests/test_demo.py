"""`hanctl demo` as a user runs it: the installed console script, the real firmware on the
MicroPython unix port, a simulated meter and a real broker (Debian's mosquitto, or amqtt
from PyPI); readings on screen within 30 s, and Ctrl-C leaves nothing running. Also that
amqtt, the fallback broker, serves the firmware's own MQTT client in full: QoS 1 retained
energy, the last will, keepalive pings."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rig
from hanctl import broker, simulate

HANCTL = Path(sys.executable).parent / "hanctl"
FIRST_READING_S = 30  # the brief's promise to a new user


class Demo:
    """`hanctl demo` in a session of its own (its process group holds all it starts), stdout
    collected line by line with the time each line arrived."""

    def __init__(self, tmp, *args):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(HANCTL), "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=dict(os.environ, TMPDIR=str(tmp)),  # its kept logs go with the test's files
        )
        self.lines = []
        self.err = []
        self.pumps = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True),
        ]
        for pump in self.pumps:
            pump.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def wait_line(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if line.startswith(prefix):
                    return at, line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        shown = "\n".join(x for _, x in self.lines)
        raise AssertionError(f"no {prefix!r} line in {timeout} s:\n{shown}\n{''.join(self.err)}")

    def finish(self, timeout=10):
        """Its stderr, once it has exited (by itself, within timeout)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        for pump in self.pumps:  # each takes the last of its pipe, to its end
            pump.join(timeout)
        return "".join(self.err)


@pytest.mark.parametrize("how", ["terminal", "demo only"])
@pytest.mark.parametrize("choice", ["mosquitto", "amqtt"])
def test_demo_shows_readings_and_ctrl_c_stops_everything(choice, how, tmp_path):
    if choice == "mosquitto" and broker.mosquitto_exe() is None:
        pytest.skip("Debian's mosquitto is not installed (apt install mosquitto); amqtt runs")
    demo = Demo(tmp_path, "--broker", choice)
    try:
        at, line = demo.wait_line("reading ", FIRST_READING_S)
        print(f"{choice}: first reading after {at:.1f} s: {line}")
        _, log_line = demo.wait_line("firmware log: ", 1)
        # A terminal's Ctrl-C reaches the whole foreground group; `kill -INT` only the demo.
        stopping = time.monotonic()
        if how == "terminal":
            os.killpg(demo.proc.pid, signal.SIGINT)
        else:
            demo.proc.send_signal(signal.SIGINT)
        err = demo.finish()
        print(f"{choice}, {how}: stopped in {time.monotonic() - stopping:.1f} s")
    finally:
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)
    assert demo.proc.returncode in (0, 130)
    assert "Traceback" not in err, err
    assert rig.group_pids(demo.proc.pid) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(demo.proc.pid, 0)  # nothing it started is left
    assert f"broker   {choice} " in "\n".join(x for _, x in demo.lines)
    log = Path(log_line.split(": ", 1)[1])
    assert "destination demo connected" in log.read_text()  # the firmware's log, in its file


def test_demo_with_seconds_exits_by_itself_and_shows_the_hourly_energy(tmp_path):
    # The meter's clock starts 10 s before the hour, when the firmware's UART connects: at
    # speed 10 its List 3 (hh:00:10) comes 2 s later, the rest of the 9 s for the firmware
    # to boot on a loaded machine.
    demo = Demo(
        tmp_path,
        "--broker",
        "amqtt",
        "--meter",
        "aidon",
        "--phases",
        "1",
        "--speed",
        "10",
        "--seconds",
        "9",
    )
    err = demo.finish(timeout=30)
    assert demo.proc.returncode == 0, err
    text = "\n".join(x for _, x in demo.lines)
    assert "energy " in text and "status online" in text
    readings = [x for _, x in demo.lines if x.startswith("reading ")]
    assert readings and all(" I2 " not in x for x in readings)  # a one-phase Aidon
    assert rig.group_pids(demo.proc.pid) == []


def test_demo_of_a_danish_kamstrup_decrypts_its_pushes_at_96k(tmp_path):
    # The meter encrypts (AES-128-GCM, security 0x30, the Green Book's example keys); the
    # dongle, given the keys, publishes every push decrypted, none rejected, and no key
    # shows in what the demo prints or in the firmware's log.
    from hanctl import simulate

    args = ("--broker", "amqtt", "--meter", "kamstrup-dk", "--speed", "10", "--seconds", "12")
    demo = Demo(tmp_path, *args)
    err = demo.finish(timeout=40)
    assert demo.proc.returncode == 0, err
    text = "\n".join(x for _, x in demo.lines)
    assert "kamstrup-dk" in text and "ciphered" in text and "heap 96K" in text
    assert "energy " in text and len([x for x in demo.lines if x[1].startswith("reading ")]) >= 3
    assert "rejected none" in text and "encrypted" not in text and "decrypt" not in text
    log = Path(next(x for _, x in demo.lines if x.startswith("firmware log: ")).split(": ", 1)[1])
    for key in simulate.EXAMPLE_KEYS:
        for shown in (key.hex(), key.hex().upper()):
            assert shown not in text + err + log.read_text()


def test_amqtt_serves_the_firmwares_mqtt_client(parts, tmp_path):
    """Retained QoS 1 energy, the last will and keepalive pings between the firmware's
    own client (on the MicroPython unix port) and amqtt, the demo's fallback broker."""
    _, track = parts
    mqtt = track(broker.Amqtt(tmp_path).start())
    sub = track(rig.Subscriber(mqtt))
    start = dt.datetime(2024, 3, 5, 13, 59, 58)  # Kaifa's List 3 at 14:00:10: 6 s at speed 2
    feed = simulate.Feed(simulate.Meter("kaifa", 3, start=start), speed=2)
    meter = track(simulate.Server(feed.chunks()).start())
    dest = rig.destination("A", mqtt, keepalive=2, stats_interval=1)
    uart = f"tcp://127.0.0.1:{meter.port}"
    dongle = track(rig.Dongle(tmp_path / "fs", rig.config(dest), uart).start())
    dongle.wait_log("destination A connected")
    connected = time.monotonic()
    energy = sub.wait("A/energy", 1, timeout=20)[0]
    assert json.loads(energy[1])["meter_time"] == "2024-03-05T14:00:10"
    # 2.5 keepalive periods: pings answered, or the firmware would have reconnected.
    time.sleep(max(0.0, connected + 5 - time.monotonic()))
    stats = sub.json("A/stats")[-1]
    assert stats["destination"]["connects"] == 1 and stats["destination"]["failures"] == 0

    late = track(rig.Subscriber(mqtt, "hanport/A/#"))  # a newcomer gets what was retained
    late.wait("A/energy")
    late.wait("A/status")
    # amqtt 0.12.1 sometimes hands a new subscriber a retained message twice (measured:
    # 0.1 ms apart): the same message, so a set of what was retained.
    assert {(m[0], m[1]) for m in late.messages if m[2]} == {
        ("hanport/A/status", b"online"),
        ("hanport/A/energy", energy[1]),
    }
    dongle.kill()  # power cut: no DISCONNECT, the broker publishes the will
    deadline = time.monotonic() + 10
    while (b"offline", False) not in [(m[1], m[2]) for m in late.on("A/status")]:
        assert time.monotonic() < deadline, late.on("A/status")
        time.sleep(0.05)
