"""`hanctl simulate`: a meter on a TCP port (where `hanctl run --uart` connects) or a
serial device, paced at the line's real speed.

A simulated meter keeps a clock and a household load: power follows a daily curve with
noise, the energy registers integrate it, and the meter pushes List 1 every 2 s, List 2
every 10 s and List 3 ten seconds after each full hour, as Norwegian meters do. --speed N
runs the meter's clock N times faster; frames that no longer fit on the line at its real
speed are left out (the hourly List 3 first in line). --replay CAPTURE serves recorded
bytes (hex text or raw) instead.
"""

import datetime as dt
import math
import random
import socket
import threading
import time

from . import decode, encoder

BAUD = 2400
_BITS = 11  # 8E1: start, 8 data, parity, stop. (8N1 would be 10; 11 is the slower case.)


class Meter:
    """A Norwegian meter: its clock, its household's load, the frames it pushes."""

    def __init__(self, kind="aidon", phases=3, start=None, seed=1):
        self.make = encoder.METERS[kind]
        self.phases = phases
        self.clock = start or dt.datetime(2024, 3, 5, 13, 59, 0)
        self.rng = random.Random(seed)
        self.energy = [109552250.0, 0.0, 130480.0, 15319720.0]  # Wh

    def power(self, t):
        """Household load in W at meter time t: night base, morning and evening peaks."""
        h = t.hour + t.minute / 60
        curve = (
            400 + 1400 * math.exp(-((h - 7.5) ** 2) / 2) + 2600 * math.exp(-((h - 18.5) ** 2) / 3)
        )
        return max(50, int(curve * (1 + 0.15 * self.rng.uniform(-1, 1))))

    def values(self, t, power):
        per = power / self.phases / 230.0
        cur = tuple(round(per * (1 + 0.1 * i), 1) if i < self.phases else 0 for i in range(3))
        volt = tuple(
            round(230 + self.rng.uniform(-3, 3), 1) if i < self.phases else 0 for i in range(3)
        )
        return {
            "time": (t.year, t.month, t.day, t.hour, t.minute, t.second),
            "p_import": power,
            "q_export": power // 8,
            "current": cur,
            "voltage": volt,
            "energy": tuple(int(e) for e in self.energy),
        }

    def frames(self, seconds):
        """(meter time, list number, frame) for each push in the next `seconds` of meter time."""
        out = []
        for _ in range(int(seconds)):
            self.clock += dt.timedelta(seconds=1)
            t = self.clock
            power = self.power(t)
            self.energy[0] += power / 3600.0
            self.energy[3] += power / 8 / 3600.0
            s = t.minute * 60 + t.second
            if s == 10:
                out.append((t, 3, self.make(3, self.values(t, power))))
            elif t.second % 10 == 0:
                out.append((t, 2, self.make(2, self.values(t, power))))
            elif t.second % 2 == 0:
                out.append((t, 1, self.make(1, self.values(t, power))))
        return out


def line_seconds(frame, baud=BAUD):
    return len(frame) * _BITS / baud


class Feed:
    """Paces a meter's frames over wall time, as the line would carry them at `speed`."""

    def __init__(self, meter, speed=1.0, baud=BAUD):
        self.meter = meter
        self.speed = speed
        self.baud = baud
        self.skipped = 0

    def chunks(self):
        """Yields (wall seconds to wait, bytes) forever."""
        while True:
            budget = 1.0  # wall seconds per batch
            batch = self.meter.frames(self.speed * budget)
            busy = 0.0
            out = []
            for _, _list, frame in sorted(batch, key=lambda f: -f[1]):  # List 3 first
                need = line_seconds(frame, self.baud)
                if busy + need > budget:
                    self.skipped += 1
                    continue
                busy += need
                out.append(frame)
            for frame in out:
                yield line_seconds(frame, self.baud), frame
            yield max(0.0, budget - busy), b""


class Server:
    """Serves a byte stream to every client that connects to a TCP port, in a thread."""

    def __init__(self, chunks, host="127.0.0.1", port=0):
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self.chunks = chunks
        self.clients = []
        self.stopped = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(conn)

    def _serve(self):
        for wait, data in self.chunks:
            if self.stopped.is_set():
                return
            if data:
                for c in list(self.clients):
                    try:
                        c.sendall(data)
                    except OSError:
                        self.clients.remove(c)
                self.sent += len(data)
            if wait:
                time.sleep(wait)

    def stop(self):
        self.stopped.set()
        for c in self.clients:
            c.close()
        self.sock.close()


def replay_chunks(data, baud=BAUD, speed=1.0):
    """A recorded capture at line speed (compressed by speed), then silence."""
    step = 64
    for i in range(0, len(data), step):
        piece = data[i : i + step]
        yield line_seconds(piece, baud) / speed, piece
    while True:
        yield 1.0, b""


def register(subparsers):
    p = subparsers.add_parser("simulate", help="serve a simulated or recorded meter on TCP")
    p.add_argument("--meter", choices=sorted(encoder.METERS), default="aidon")
    p.add_argument("--phases", type=int, choices=(1, 3), default=3)
    p.add_argument("--to", default="tcp://127.0.0.1:2400", help="tcp://HOST:PORT or serial:DEV")
    p.add_argument("--speed", type=float, default=1.0, help="meter time runs N times faster")
    p.add_argument("--replay", help="serve this capture (hex text or raw bytes) instead")
    p.set_defaults(run=run_command)


def run_command(args):
    if args.replay:
        with open(args.replay, "rb") as f:
            chunks = replay_chunks(decode.parse_capture(f.read()), speed=args.speed)
    else:
        chunks = Feed(Meter(args.meter, args.phases), args.speed).chunks()
    if args.to.startswith("serial:"):
        import serial

        with serial.Serial(args.to[7:], BAUD, parity=serial.PARITY_EVEN) as port:
            for wait, data in chunks:
                port.write(data)
                time.sleep(wait)
        return 0
    host, port = args.to[6:].rsplit(":", 1)
    server = Server(chunks, host, int(port)).start()
    print(f"tcp://{host}:{server.port}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.stop()
    return 0
