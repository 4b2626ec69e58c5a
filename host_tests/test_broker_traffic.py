"""Broker traffic cannot monopolise the dongle, with real parts: the
firmware's main on the MicroPython unix port (`hanctl run`), a Kaifa meter on a TCP "UART",
and HostileBroker below, a broker on loopback that misbehaves on purpose:

- flood: `homeassistant/status online` as fast as a socket takes it, for 5 s. The dongle's
  CPU time over it is measured from /proc and printed (docs/reliability.md); the test
  asserts what the dongle does: the excess counted as dropped, the readings still out,
  discovery sent again at most once.
- huge: a PUBLISH announcing 268 MB. The session ends at once, counted, its error naming
  the size; no body is read.
- drop: CONNACK, then the connection closed. The reconnects back off exponentially.

Rerun the measurement: .venv/bin/python -m pytest -s host_tests/test_broker_traffic.py
"""

import json
import os
import socket
import threading
import time

import rig
from hanctl import encoder
from hanctl.simulate import Server

HA_ONLINE = b"\x30\x1c\x00\x14homeassistant/status" + b"online"  # QoS 0, remaining 28


def _packet(conn):
    """(first byte, body) of the next packet from a blocking socket; None at its end."""

    def take(n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    try:
        first = take(1)[0]
        n = shift = 0
        while True:
            d = take(1)[0]
            n |= (d & 0x7F) << shift
            shift += 7
            if not d & 0x80:
                return first, take(n)
    except (EOFError, OSError):
        return None


class HostileBroker:
    """Answers what a dongle needs (CONNACK, SUBACK, PUBACK, PINGRESP), records what it
    publishes, and misbehaves by `mode`: "flood" answers SUBSCRIBE with HA_ONLINE retained,
    as mosquitto would, and sends HA_ONLINE in bursts while `flooding` is set; "huge" sends
    a PUBLISH header announcing 268,435,455 bytes after CONNACK and no more; "drop" closes
    each connection `hold` s after its CONNACK."""

    def __init__(self, mode, hold=0.2):
        self.mode = mode
        self.hold = hold
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connects = []  # monotonic time of each CONNECT answered
        self.closed = []  # monotonic time each connection ended
        self.published = []  # (topic, payload, monotonic time) from the dongle
        self.flooded = 0  # messages sent by the flood
        self.flooding = threading.Event()
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        self.flooding.clear()
        self.sock.close()

    def on(self, suffix, after=0.0):
        return [m for m in list(self.published) if m[0].endswith(suffix) and m[2] >= after]

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._link, args=(conn,), daemon=True).start()

    def _link(self, conn):
        lock = threading.Lock()

        def send(data):
            with lock:
                conn.sendall(data)

        try:
            while not self._stop.is_set():
                got = _packet(conn)
                if got is None:
                    break
                first, body = got
                kind = first & 0xF0
                if kind == 0x10:  # CONNECT
                    send(b"\x20\x02\x00\x00")
                    self.connects.append(time.monotonic())
                    if self.mode == "huge":
                        send(b"\x30\xff\xff\xff\x7f")
                    elif self.mode == "drop":
                        time.sleep(self.hold)
                        break
                    elif self.mode == "flood":
                        threading.Thread(target=self._flood, args=(send,), daemon=True).start()
                elif kind == 0x30:
                    n = body[0] << 8 | body[1]
                    topic = body[2 : 2 + n].decode()
                    i = 2 + n
                    if first & 0x06:
                        send(b"\x40\x02" + body[i : i + 2])
                        i += 2
                    self.published.append((topic, body[i:], time.monotonic()))
                elif kind == 0x80:
                    send(b"\x90\x03" + body[:2] + b"\x00")
                    if self.mode == "flood":  # Home Assistant's retained status, as mosquitto's
                        send(b"\x31" + HA_ONLINE[1:])
                elif kind == 0xC0:
                    send(b"\xd0\x00")
        except OSError:
            pass  # the dongle hung up
        finally:
            self.closed.append(time.monotonic())
            conn.close()

    def _flood(self, send):
        burst = HA_ONLINE * 200
        try:
            while not self._stop.is_set():
                if not self.flooding.wait(0.1):
                    continue
                send(burst)
                self.flooded += 200
        except OSError:
            pass  # the link ended


def cpu_ticks(dongle):
    """utime + stime (clock ticks) of the dongle's MicroPython process, from /proc."""
    for pid in rig.group_pids(dongle.proc.pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if "micropython" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    raise AssertionError("no micropython process in the dongle's group")


def start(parts, broker, **extra):
    tmp, track = parts
    track(broker.start())
    frames = [encoder.kaifa(2, {"p_import": 500 + i}) for i in range(400)]
    meter = track(Server(rig.scripted(frames, gap=0.25)).start())
    cfg = rig.config(rig.destination("F", broker, stats_interval=2, **extra))
    dongle = track(rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{meter.port}").start())
    dongle.wait_log("destination F connected")
    return dongle


def test_a_flood_of_home_assistant_status_is_counted_and_dropped_and_readings_go_on(parts):
    broker = HostileBroker("flood")
    dongle = start(parts, broker, discovery=True)
    rig.wait_for(lambda: len(broker.on("/config")) >= 5, why="discovery")
    rig.wait_for(lambda: broker.on("/stats"), why="stats")
    time.sleep(1)
    hz = os.sysconf("SC_CLK_TCK")
    idle = cpu_ticks(dongle)
    time.sleep(5)
    idle = (cpu_ticks(dongle) - idle) / hz / 5
    configs = len(broker.on("/config"))
    begin = time.monotonic()
    broker.flooding.set()
    t0 = cpu_ticks(dongle)
    time.sleep(5)
    share = (cpu_ticks(dongle) - t0) / hz / 5
    broker.flooding.clear()
    end = time.monotonic()
    sent = broker.flooded
    print(f"CPU share: idle {idle:.1%}, flood {share:.1%} ({sent / 5:,.0f} messages/s sent)")
    readings = broker.on("/reading", begin)
    rig.wait_for(lambda: broker.on("/stats", end + 0.5), 20, "stats after the flood")
    stats = json.loads(broker.on("/stats", end + 0.5)[-1][1])["destination"]
    print("during the flood:", len(readings), "readings;", stats)
    assert [r for r in readings if r[2] <= end], "no reading published during the flood"
    assert stats["incoming_dropped"] > 0, stats
    assert stats["connects"] == 1 and stats["failures"] == 0, stats
    # Discovery again at most once for the whole flood: one round of its configs.
    again = len(broker.on("/config")) - configs
    assert again <= configs, (again, configs)


def test_a_packet_announcing_268_mb_ends_the_session_at_once_counted_and_named(parts):
    broker = HostileBroker("huge")
    dongle = start(parts, broker, retry_min=30, retry_max=30)
    rig.wait_for(lambda: broker.closed, 3, "the dongle to hang up")
    took = broker.closed[0] - broker.connects[0]
    print(f"refused {took * 1000:.0f} ms after CONNACK")
    assert took < 2.0
    dongle.wait_log("destination F failed: mqtt:", timeout=5)
    failed = [x for x in dongle.output if "destination F failed" in x]
    assert "268435455" in failed[0], failed


def test_a_broker_that_accepts_and_drops_gets_exponential_backoff(parts):
    broker = HostileBroker("drop", hold=0.2)
    start(parts, broker, retry_min=1, retry_max=60)
    first = broker.connects[0]
    time.sleep(30)
    within = [t for t in broker.connects if t - first <= 30]
    gaps = [round(b - a, 1) for a, b in zip(within, within[1:], strict=False)]
    print(f"{len(within)} connects in 30 s, gaps {gaps}")
    # Waits of 1, 2, 4, 8, 16, 32 s, each 0.5x..1.5x: the 7th connect comes 23.5 s after
    # the first at the soonest, the 8th after 39.5 s (25 in 30 s when each CONNACK reset
    # the backoff to 1 s).
    assert 3 <= len(within) <= 7, gaps
    assert gaps[-1] > 2 * gaps[0], gaps
