"""The test rig for the dongle runtime: real parts, on loopback.

- Broker: Debian's mosquitto on a free port, its own config and log in a temp folder.
- Subscriber: paho-mqtt on the host, recording every message with its arrival time.
- Meter: hanctl's simulator (or a scripted stream) serving the HAN bytes on a TCP port.
- Dongle: `hanctl run` (the firmware's real main on the MicroPython unix port, 96 KB heap),
  its filesystem a folder the test keeps, so a second start is a reboot.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from hanctl import runtime
from hanctl.broker import Mosquitto, free_port, mosquitto_exe, password_file  # noqa: F401
from hanctl.certs import make_ca  # noqa: F401 - the tests' CA, as rig.make_ca

MOSQUITTO = mosquitto_exe() or "/usr/sbin/mosquitto"  # the tests skip when it is not there
HANCTL = Path(sys.executable).parent / "hanctl"


class Broker(Mosquitto):
    """hanctl's mosquitto in tmp/name, logging everything (connections() reads the log).
    extra, and the keywords (users, tls, tls_port, tls_users, log_types, persistence): as
    hanctl.broker.Mosquitto's."""

    def __init__(self, tmp, name="broker", extra=(), port=None, **options):
        folder = Path(tmp) / name
        folder.mkdir(parents=True, exist_ok=True)
        options.setdefault("log_types", ("all",))
        super().__init__(folder, port, extra=extra, **options)

    def connections(self):
        """Client connections the broker saw (from its log), the subscriber's included."""
        if not self.log.exists():
            raise AssertionError(f"mosquitto wrote no log at {self.log}")
        return [x for x in self.log.read_text().splitlines() if "New client connected" in x]


class Subscriber:
    """Records (topic, payload bytes, retained, arrival monotonic time) for topic filter."""

    def __init__(self, broker, topic="#", port=None):
        self.messages = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port or broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        # The broker's SUBACK: from then on nothing published to topic passes unseen (a
        # fixed sleep here was too short on a loaded machine, and long on an idle one).
        if not self.subscribed.wait(30):
            self.close()
            raise AssertionError(f"no SUBACK for {topic!r} from the broker in 30 s")

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), msg.retain, time.monotonic()))

    def on(self, suffix):
        with self.lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def json(self, suffix):
        return [json.loads(m[1]) for m in self.on(suffix)]

    def wait(self, suffix, count=1, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.on(suffix)) >= count:
                return self.on(suffix)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.on(suffix))} of {count} messages on *{suffix}")

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Dongle:
    """`hanctl run` in its own process; output collected for assertions."""

    def __init__(self, state, config, uart, heap=None, http=None):
        self.state = Path(state)
        self.http = http  # HOST:PORT of `hanctl run --http`, or None
        self.config_path = self.state.parent / (self.state.name + "-config.json")
        self.config = config
        self.uart = uart
        # The heap that stands for an ESP32's on the image that runs (runtime.default_heap):
        # 96K on the 32-bit images, the official one's model loading the firmware's .mpy
        # into it as a board does; twice that on the stock 64-bit interpreter, whose
        # objects are twice the size. HANPORT_TEST_HEAP overrides it.
        self.heap = heap or os.environ.get("HANPORT_TEST_HEAP") or runtime.default_heap()
        self.proc = None
        self.output = []

    def start(self):
        if self.config is None:  # no config.json at all
            self.config_path.unlink(missing_ok=True)
        elif isinstance(self.config, dict):
            self.config_path.write_text(json.dumps(self.config))
        else:
            self.config_path.write_text(self.config)
        cmd = [
            str(HANCTL),
            "run",
            "--config",
            str(self.config_path),
            "--uart",
            self.uart,
            "--heap",
            self.heap,
            "--state",
            str(self.state),
        ]
        if self.http:
            cmd += ["--http", self.http]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def wait_log(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line with {text!r}; log:\n" + self.log_tail())

    def log_tail(self):
        return "\n".join(self.output[-40:])

    def kill(self):
        """Power cut: no goodbye (the broker then publishes the last will)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        runtime.stop_group(self.proc)


def expected_readings(frames):
    """What the firmware's decoder makes of the frames (it is proven on real captures)."""
    from decoder import Decoder

    out = []
    d = Decoder(out.append)
    for f in frames:
        d.feed(f)
    return out


def destination(name, broker, share="full", **extra):
    d = {
        "name": name,
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": None,
        "topic": "hanport/" + name,
        "share": share,
        "discovery": False,
        "retry_min": 1,
        "retry_max": 2,
        "stats_interval": 5,
    }
    d.update(extra)
    return d


def config(*destinations, meter=None):
    return {
        "wifi": [],
        "hostname": "hanport-test",
        "meter": meter or {"baud": 2400, "parity": "8E1", "invert": False},
        "ntp": None,
        "destinations": list(destinations),
    }


def scripted(frames, go=None, gap=0.3, baud=2400):
    """Chunks for simulate.Server: wait for `go` (a threading.Event), then each item of
    frames at line speed with `gap` seconds after it; an item may be (pause_s, None)."""
    from hanctl.simulate import line_seconds

    if go is not None:
        go.wait()
    for item in frames:
        if isinstance(item, tuple):
            yield item[0], b""
            continue
        yield line_seconds(item, baud), item
        yield gap, b""
    while True:
        yield 0.5, b""


# -- Added for test_runtime_more.py: TLS brokers, times of log lines, the dongle's sockets --


def broker_log(broker):
    """The broker's log text; fails rather than reading a log that was never written as
    "nothing happened"."""
    if not broker.log.exists():
        raise AssertionError(f"mosquitto wrote no log at {broker.log}")
    return broker.log.read_text()


def tls_broker(tmp, name, certs, users, port=None, tls_port=None):
    """A Broker (not started) with two listeners: plain MQTT on .port, anonymous, where a
    client falling back to plaintext would show up, and TLS on .tls_port with the server
    certificate of certs (a make_ca folder), the password file .passwd made from users
    {name: password}, anonymous clients refused."""
    return Broker(tmp, name, port=port, tls=certs, tls_port=tls_port, tls_users=users)


def connections_on(broker, port):
    """TCP connections a broker accepted on one of its listeners (its log), whether or not
    an MQTT client came of them."""
    mark = f" on port {port}."
    return [x for x in broker_log(broker).splitlines() if "New connection" in x and mark in x]


def dongle_sockets(dongle):
    """(protocol, local port, remote port, state) of each socket the dongle's processes
    (`hanctl run` and the MicroPython interpreter it starts, one process group) hold, from
    /proc: the witness that a dongle opens no connection it was not configured for."""
    group = dongle.proc.pid  # start_new_session: the group id is hanctl run's pid
    inodes = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # after ")": state, ppid, pgrp
                continue
            for fd in (stat.parent / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, IndexError, ValueError):
            continue  # a process that just ended
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        table = Path("/proc/net") / proto
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            f = line.split()
            if f[9] in inodes:
                local, remote = (int(a.rsplit(":", 1)[1], 16) for a in (f[1], f[2]))
                out.append((proto, local, remote, f[3]))
    return out


def read_until(sock, enough, timeout=30):
    """Bytes from sock until enough(bytes so far) is true (or the timeout, or the far end
    closed): a condition, not a time, so a loaded machine reads as much as an idle one."""
    sock.settimeout(0.2)
    data = b""
    end = time.monotonic() + timeout
    while not enough(data) and time.monotonic() < end:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def group_pids(pgid):
    """Pids of the processes in process group pgid, from /proc (a command started with
    start_new_session=True: its pid is the group's id, and all it starts are members)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that just ended
        if int(fields[2]) == pgid and fields[0] != "Z":  # after ")": state, ppid, pgrp
            out.append(int(stat.parent.name))
    return out


def wait_for(what, timeout=20, why=None, dongle=None):
    """what()'s first true value within `timeout` s; if none comes, an AssertionError that
    names what was awaited (`why`, else what's docstring) with the dongle's last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    log = "; dongle log:\n" + dongle.log_tail() if dongle else ""
    raise AssertionError(f"timed out waiting for {why or what.__doc__ or what}{log}")
