"""`hanctl monitor`: the renderer as pure functions (chart shape from known powers, values
shown exactly as sent), and the command against Debian's mosquitto: piped it prints a line
per message; on a terminal it redraws in place and gives the terminal back; TLS with a
user and a password from the environment, which it never prints."""

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

import rig
from hanctl import monitor
from hanctl.monitor import View, chart, columns, plain_line, render

HANCTL = Path(sys.executable).parent / "hanctl"
needs_mosquitto = pytest.mark.skipif(
    not Path(rig.MOSQUITTO).exists(),
    reason="Debian's mosquitto is not installed (apt install mosquitto)",
)


# -- The renderer ---------------------------------------------------------------------------


def test_columns_average_the_readings_in_each_slice_of_time():
    now = 1000.0
    history = [(now - 300, 100), (now - 299, 300), (now - 150, 1000), (now - 1, 2000), (now, 4000)]
    assert columns(history, now, span=300, width=3) == [200, 1000, 3000]
    assert columns([(now - 400, 5)], now, span=300, width=3) == [None, None, None]  # too old


def test_chart_shape_follows_the_powers():
    # 0..top in eighths: one row, then two rows (16 eighths); no reading is a blank column.
    assert chart([0, 100, 200, 400, 800, None], rows=1, top=800) == ["▁▁▂▄█ "]
    assert chart([800, 400, 100, None, 0], rows=2) == ["█    ", "██▂ ▁"]
    assert chart([], rows=1) == [""]


def test_values_are_shown_exactly_as_the_dongle_sent_them():
    view = View("mqtt://127.0.0.1:1883", "hanport/t")
    payload = (
        b'{"meter_id": "7359992890497997", "meter_model": "6534", "meter_manufacturer": "Aidon",'
        b' "meter_time": "2024-03-05T14:00:10", "active_power_import": 1234,'
        b' "current_l1": 5.10, "current_l2": 0.3, "current_l3": -1.7,'
        b' "voltage_l1": 233.40, "voltage_l2": 233, "voltage_l3": 231.1,'
        b' "active_energy_import": 12345678901234.567}'
    )
    message = view.take("reading", payload, now=50.0)
    line = plain_line("reading", message)
    assert line == (
        "reading 2024-03-05T14:00:10 P+ 1234 W  I1 5.10 A  I2 0.3 A  I3 -1.7 A  U1 233.40 V"
        "  U2 233 V  U3 231.1 V  A+ 12345678901234.567 kWh"
    )  # a float would have printed 5.1, 233.4 and 12345678901234.566
    view.take("energy", b'{"active_energy_import": 109552.25, "meter_time": "x"}', now=50.0)
    screen = "\n".join(render(view, now=52.0, width=100))
    for text in ("Aidon 6534 7359992890497997", "L1 5.10 A", "L3 -1.7 A", "L1 233.40 V"):
        assert text in screen
    assert "A+ 109552.25 kWh" in screen and "last reading 2 s ago" in screen
    assert all(len(line) <= 40 for line in render(view, now=52.0, width=40))


def test_stats_show_what_arrives_what_is_rejected_and_the_dongles_health():
    stats = (
        b'{"uptime_s": 61, "free_heap": 33504, "bytes_received": 4567, "noise_bytes": 5,'
        b' "frames": {"hdlc": 40, "p1": 2, "mbus": 0}, "readings": 41,'
        b' "rejected": {"checksum": 2, "format": 0, "truncated": 1}, "last_frame_age_s": 3,'
        b' "line": "2400 8E1", "destination": {"connects": 3, "reconnects": 2}}'
    )
    view = View("mqtt://h:1883", "t")
    line = plain_line("stats", view.take("stats", stats, now=0.0))
    assert line == (
        "stats frames 42  rejected checksum 2, truncated 1  bytes 4567  last frame 3 s ago"
        "  free heap 33504  reconnects 2"
    )
    assert plain_line("status", view.take("status", b"offline", 0.0)) == "status offline"
    assert plain_line("reading", view.take("reading", b"{not json", 0.0)) == "reading (unreadable)"


def test_the_broker_url_is_shown_without_user_or_password():
    b = monitor.Broker("mqtts://owner:hunter2@broker.lan", cafile="ca.pem")
    assert (b.host, b.port, b.tls, b.user, b.password) == (
        "broker.lan",
        8883,
        True,
        "owner",
        "hunter2",
    )
    assert b.text == "mqtts://broker.lan:8883"
    with pytest.raises(ValueError):
        monitor.Broker("http://broker.lan")


# -- The command, against mosquitto -----------------------------------------------------------


class Monitor:
    """`hanctl monitor` as a subprocess; stderr (and stdout, piped) collected in threads,
    each pipe read by one thread only: a second reader (communicate()) would take lines the
    first never sees. stderr says when the monitor has subscribed."""

    def __init__(self, *args, env=None, tty=False):
        self.master = None
        self.data = b""
        out = subprocess.PIPE
        if tty:
            self.master, out = pty.openpty()
        self.proc = subprocess.Popen(
            [str(HANCTL), "monitor", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            text=not tty,
            env=env,
        )
        if tty:
            os.close(out)
        self.err = []
        self.out = []
        pipes = [(self.proc.stderr, self.err)] + ([] if tty else [(self.proc.stdout, self.out)])
        self.pumps = [threading.Thread(target=self._pump, args=p) for p in pipes]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(pipe, lines):
        for line in pipe:
            lines.append(line if isinstance(line, str) else line.decode())

    def wait_until(self, done, timeout=30):
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, ("".join(self.out), "".join(self.err))
            assert self.proc.poll() is None, ("exited", "".join(self.out), "".join(self.err))
            time.sleep(0.05)

    def wait_err(self, text, timeout=30):
        """Until a stderr line holds text (the monitor's own word on the broker)."""
        self.wait_until(lambda: any(text in x for x in self.err), timeout)

    def wait_connected(self, timeout=30):
        self.wait_err("broker connected", timeout)  # said on the SUBACK: subscribed

    def wait_out(self, count, timeout=30):
        """Until stdout (piped) has count lines."""
        self.wait_until(lambda: len(self.out) >= count, timeout)

    def finish(self, timeout=30):
        """(stdout, stderr) once the monitor has exited by itself and both pipes are read."""
        self.proc.wait(timeout)
        for pump in self.pumps:
            pump.join(timeout)
        return "".join(self.out), "".join(self.err)

    def interrupt(self):
        """Ctrl-C, then finish()."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def screen(self, until=None, timeout=15):
        """What a tty-mode monitor wrote so far: until `until` shows, else until it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until in self.data.decode(errors="replace"):
                break
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the monitor closed its end
                    break
                if not chunk:
                    break
                self.data += chunk
            elif self.proc.poll() is not None:
                break
        return self.data.decode()


def publisher(port):
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


READING = '{"meter_time": "2024-03-05T14:00:10", "active_power_import": 1234, "current_l1": 5.10}'
STATS = (
    '{"frames": {"hdlc": 7}, "rejected": {"checksum": 1}, "bytes_received": 999,'
    ' "last_frame_age_s": 1, "free_heap": 30000, "destination": {"reconnects": 0}}'
)


@needs_mosquitto
def test_piped_monitor_prints_a_line_per_message(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp).start())
    pub = publisher(broker.port)
    # Retained before the monitor starts, as the dongle leaves them: shown on subscribing.
    pub.publish("hanport/t/energy", '{"active_energy_import": 109552.25}', qos=1, retain=True)
    pub.publish("hanport/t/status", "online", qos=1, retain=True).wait_for_publish(5)
    mon = Monitor("--broker", f"mqtt://127.0.0.1:{broker.port}", "--topic", "hanport/t")
    mon.wait_connected()
    # Not its topic; sent first, so that it would be shown before the stats if at all (the
    # broker keeps one publisher's messages in order).
    pub.publish("hanport/other/reading", READING, qos=1).wait_for_publish(5)
    pub.publish("hanport/t/reading", READING, qos=1).wait_for_publish(5)
    pub.publish("hanport/t/stats", STATS, qos=1).wait_for_publish(5)
    mon.wait_out(4)
    out, err = mon.interrupt()
    pub.loop_stop()
    assert mon.proc.returncode == 130 and "Traceback" not in err, err
    assert sorted(out.splitlines()) == sorted(
        [
            "energy - A+ 109552.25 kWh",
            "status online",
            "reading 2024-03-05T14:00:10 P+ 1234 W  I1 5.10 A",
            "stats frames 7  rejected checksum 1  bytes 999  last frame 1 s ago"
            "  free heap 30000  reconnects 0",
        ]
    )


@needs_mosquitto
def test_seconds_ends_the_monitor_with_status_0(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp).start())
    mon = Monitor(
        "--broker", f"mqtt://127.0.0.1:{broker.port}", "--topic", "hanport/t", "--seconds", "1"
    )
    out, err = mon.finish()
    assert mon.proc.returncode == 0 and out == "" and "Traceback" not in err, err


@needs_mosquitto
def test_on_a_terminal_it_redraws_in_place_and_ctrl_c_gives_the_terminal_back(parts):
    tmp, track = parts
    broker = track(rig.Broker(tmp).start())
    pub = publisher(broker.port)
    mon = Monitor("--broker", f"mqtt://127.0.0.1:{broker.port}", "--topic", "hanport/t", tty=True)
    assert "broker: connected" in mon.screen(until="broker: connected", timeout=30)
    for watts in (500, 1500, 1000):
        pub.publish(
            "hanport/t/reading", f'{{"active_power_import": {watts}}}', qos=1
        ).wait_for_publish(5)
    assert "readings 3" in mon.screen(until="readings 3", timeout=30)
    mon.proc.send_signal(signal.SIGINT)
    screen = mon.screen()
    mon.proc.wait(10)
    pub.loop_stop()
    assert mon.proc.returncode == 130
    assert "Traceback" not in "".join(mon.err)
    assert screen.startswith("\x1b[?1049h")  # the alternate screen...
    assert screen.endswith("\x1b[?25h\x1b[?1049l")  # ...left, and the cursor shown again
    assert "\x1b[H" in screen and "P+ 1000 W" in screen and "readings 3" in screen


@needs_mosquitto
def test_tls_with_user_and_password_from_the_environment_never_printed(parts):
    tmp, track = parts
    certs = rig.make_ca(tmp)
    broker = track(rig.tls_broker(tmp, "tls", certs, {"owner": "s3cret-pw"}).start())
    url = f"mqtts://localhost:{broker.tls_port}"
    args = [
        "--broker",
        url,
        "--topic",
        "hanport/t",
        "--user",
        "owner",
        "--cafile",
        str(certs / "ca.pem"),
    ]
    env = dict(os.environ, HANPORT_MQTT_PASSWORD="s3cret-pw")
    mon = Monitor(*args, env=env)
    mon.wait_connected()
    pub = publisher(broker.port)  # the plain, anonymous listener of the same broker
    pub.publish("hanport/t/reading", READING, qos=1).wait_for_publish(5)
    mon.wait_out(1)
    out, err = mon.interrupt()
    pub.loop_stop()
    assert out == "reading 2024-03-05T14:00:10 P+ 1234 W  I1 5.10 A\n"
    assert "s3cret-pw" not in out + err


@needs_mosquitto
def test_a_wrong_password_is_said_to_be_refused_at_every_attempt(parts):
    # mosquitto closes the connection right after its CONNACK "Not authorized", and paho
    # reports that close as a disconnect ("Unspecified error"): the monitor must keep
    # saying "refused", on every attempt, or the screen shows the close instead.
    tmp, track = parts
    certs = rig.make_ca(tmp)
    broker = track(rig.tls_broker(tmp, "tls", certs, {"owner": "s3cret-pw"}).start())
    env = dict(os.environ, HANPORT_MQTT_PASSWORD="wrong")
    mon = Monitor(
        *("--broker", f"mqtts://localhost:{broker.tls_port}", "--topic", "hanport/t"),
        *("--user", "owner", "--cafile", str(certs / "ca.pem")),
        env=env,
    )
    mon.wait_until(lambda: sum("broker refused" in x for x in mon.err) >= 2, 30)  # two attempts
    out, err = mon.interrupt()
    said = [x for x in err.splitlines() if x.startswith("hanctl monitor: broker ")]
    assert said[:2] == ["hanctl monitor: broker refused (Not authorized)"] * 2, err
    assert all("refused" in x for x in said), err
    assert "wrong" not in err + out
