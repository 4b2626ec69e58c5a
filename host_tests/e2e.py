"""What the end-to-end tests with a timed log share (test_runtime_more.py, test_tls_faults.py,
test_faults_network.py): a dongle that times its log lines, the meter's UART address, a TLS
destination with the tests' password, the broker log's client ids, a stream of List 1
frames, and the backoff check of destination.py's promise. rig.py holds the parts.
"""

import re
import time

import rig
from hanctl import encoder

USER, PASSWORD = "hanport", "pw-of-this-test-7"
METER_ID = "6970631401753985"  # the meter id in hanctl's Kaifa frames
SLACK = 1.0  # s: a connection attempt's own time on top of a backoff wait, and log latency


class Dongle(rig.Dongle):
    """rig.Dongle with the arrival time of each log line, for the backoff."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times = []

    def _pump(self):
        for line in self.proc.stdout:
            self.times.append((time.monotonic(), line.rstrip("\n")))
            self.output.append(line.rstrip("\n"))

    def lines(self, text):
        return [(t, x) for t, x in self.times if text in x]

    def wait_lines(self, text, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.lines(text)) >= count:
                return self.lines(text)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        got = len(self.lines(text))
        raise AssertionError(f"{got} of {count} lines with {text!r}; log:\n" + self.log_tail())


def uart(meter):
    return f"tcp://127.0.0.1:{meter.port}"


def tls_destination(name, broker, **extra):
    """A destination on broker's TLS listener; the dongle gets ca.pem from beside its config."""
    d = {"port": broker.tls_port, "tls": {"ca": "ca.pem"}, "user": USER, "password": PASSWORD}
    d.update(extra)
    return rig.destination(name, broker, **d)


def clients_on(broker, port):
    """Client ids of the MQTT sessions the broker accepted on one listener (its log)."""
    text = rig.broker_log(broker)
    listener = {}  # client address -> the listener port it came in on
    for m in re.finditer(r"New connection from (\S+) on port (\d+)\.", text):
        listener[m[1]] = int(m[2])
    found = re.finditer(r"New client connected from (\S+) as (\S+) ", text)
    return [m[2] for m in found if listener.get(m[1]) == port]


def probes(broker):
    """The plain listener's connections so far, after the one Broker.start() made to see
    that it listens (mosquitto logs it a moment later)."""
    deadline = time.monotonic() + 5
    while not rig.connections_on(broker, broker.port) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(rig.connections_on(broker, broker.port))


def power_stream(count=400, first=500, gap=0.2, go=None):
    """Kaifa List 1 frames (power first, first + 1, ...) for the dongle to publish."""
    frames = [encoder.kaifa(1, {"p_import": first + i}) for i in range(count)]
    return rig.scripted(frames, go, gap=gap)


def check_backoff(times, retry_min, retry_max):
    """Gaps between failed attempts follow destination.py's promise: the k-th wait is
    0.5x..1.5x of retry_min * 2**k seconds, capped at retry_max (jitter), plus the time the
    attempt itself takes."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for k, gap in enumerate(gaps):
        backoff = min(retry_min * 2**k, retry_max)
        assert 0.5 * backoff <= gap <= 1.5 * backoff + SLACK, (k, gaps)
    return gaps
