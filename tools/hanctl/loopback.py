"""The dongle's world on loopback, for `hanctl bench --pipeline`, beside Debian's mosquitto
(hanctl.broker.Mosquitto): a paho-mqtt subscriber, the meter's end of the socket UART
(simulate.Server), the firmware under `hanctl run`, and a CPU clock for the `micropython`
process it starts.

The same real parts host_tests/rig.py gives the tests; these add what a measurement needs:
the moment each frame went on the line, readings keyed by their active power, and the
interpreter's pid.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import runtime
from .simulate import Server


class Subscriber:
    """paho-mqtt on <base>/#: readings by active power with their arrival time, and stats."""

    def __init__(self, port, base):
        import paho.mqtt.client as paho  # a dev dependency, like the broker

        self.readings = {}  # active power -> monotonic arrival time (the first)
        self.stats = []  # (arrival, stats dict)
        self.cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.base = base
        self.client.subscribe(base + "/#", qos=0)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()  # first: the parse below is the host's time, not the dongle's
        if msg.topic == self.base + "/reading":
            power = json.loads(msg.payload).get("active_power_import")
            with self.cond:
                self.readings.setdefault(power, now)
                self.cond.notify_all()
        elif msg.topic == self.base + "/stats":
            with self.cond:
                self.stats.append((now, json.loads(msg.payload)))
                self.cond.notify_all()

    def wait_power(self, power, timeout):
        """Arrival time of the reading with this active power, or None after timeout."""
        with self.cond:
            self.cond.wait_for(lambda: power in self.readings, timeout)
            return self.readings.get(power)

    def powers(self, lo, hi):
        with self.cond:
            return [p for p in self.readings if isinstance(p, int) and lo <= p < hi]

    def wait_stats(self, ok, timeout):
        with self.cond:
            self.cond.wait_for(lambda: any(ok(s) for _, s in self.stats), timeout)
            return next((s for _, s in reversed(self.stats) if ok(s)), None)

    def stats_since(self, start):
        with self.cond:
            return [s for t, s in self.stats if t >= start]

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


class Line:
    """The meter's end of the socket UART: simulate.Server sends what send() queues;
    send() returns (when the server's sendall was called, when it had returned)."""

    def __init__(self):
        self._todo = queue.Queue()
        self.server = Server(self._chunks()).start()
        self.port = self.server.port

    def _chunks(self):
        while True:
            try:
                data, done = self._todo.get(timeout=0.2)
            except queue.Empty:
                yield 0, b""  # lets the server see stop()
                continue
            called = time.monotonic()  # the server calls sendall as this yields
            yield 0, data
            # Resumed right after that sendall returned (no wait was asked for), unless the
            # kernel ran the woken receiver first: on 2 CPUs this stamp was up to 1.3 ms late.
            done.put((called, time.monotonic()))

    def send(self, data):
        done = queue.Queue()
        self._todo.put((data, done))
        return done.get(timeout=30)

    def wait_client(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.server.clients:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self):
        self.server.stop()


class Dongle:
    """`hanctl run` (python -m hanctl) in its own session on config; its log collected."""

    def __init__(self, tmp, config, heap, uart_port, http=None):
        self.config = Path(tmp) / "config.json"
        self.config.write_text(json.dumps(config))
        self.argv = [sys.executable, "-m", "hanctl", "run", "--config", str(self.config)]
        self.argv += ["--uart", f"tcp://127.0.0.1:{uart_port}", "--heap", heap]
        self.argv += ["--state", str(Path(tmp) / "fs")]
        if http:
            self.argv += ["--http", http]
        self.output = []
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if any(text in x for x in self.output):
                return True
            time.sleep(0.05)
        return any(text in x for x in self.output)

    def interpreter_pid(self):
        """The `micropython` process that `hanctl run` started (its only child)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for pid in _children(self.proc.pid):
                if _read(f"/proc/{pid}/comm").strip() == "micropython":
                    return pid
            time.sleep(0.05)
        raise RuntimeError(f"no micropython child of hanctl run (pid {self.proc.pid})")

    def stop(self):
        runtime.stop_group(self.proc)


class CpuClock:
    """CPU seconds a process has used, all its threads: from /proc/PID/task/*/schedstat
    (nanoseconds) where the kernel keeps it, else utime + stime of /proc/PID/stat (clock
    ticks, 10 ms each: coarse for a burst that takes a fraction of a second)."""

    def __init__(self, pid):
        self.pid = pid
        self.name = "schedstat, ns"
        if not os.path.exists(f"/proc/{pid}/schedstat"):
            self.name = "/proc stat utime+stime, 10 ms ticks"

    def seconds(self):
        if self.name.startswith("schedstat"):
            total = 0
            for task in os.listdir(f"/proc/{self.pid}/task"):
                total += int(_read(f"/proc/{self.pid}/task/{task}/schedstat").split()[0])
            return total / 1e9
        fields = _read(f"/proc/{self.pid}/stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        out += [int(x) for x in _read(f"/proc/{pid}/task/{task}/children").split()]
    return out


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Poller:
    """A client reading url every `every` seconds in a thread; answers counts each answer's
    status code (or the error's name when none came). login: the owner's page's password,
    sent to /page/login (its cookie then sent along) whenever an answer is 401."""

    def __init__(self, url, every, login=None):
        self.url = url
        self.login = login
        self.cookie = None
        self.every = every
        self.answers = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import urllib.error
        import urllib.request

        while not self._stop.wait(self.every):
            try:
                req = urllib.request.Request(self.url)
                if self.cookie:
                    req.add_header("Cookie", self.cookie)
                with urllib.request.urlopen(req, timeout=5) as answer:
                    answer.read()
                    key = answer.status
            except urllib.error.HTTPError as err:
                key = err.code
            except OSError as err:  # refused before the dongle listens, reset, timed out
                key = type(err).__name__
            self.answers[key] = self.answers.get(key, 0) + 1
            if key == 401 and self.login:
                self._login(urllib.request)

    def _login(self, request):
        import json
        import urllib.error

        url = self.url.split("/page/")[0] + "/page/login"
        body = json.dumps({"password": self.login}).encode()
        req = request.Request(url, body, {"X-CSRF": "login", "Content-Type": "application/json"})
        try:
            with request.urlopen(req, timeout=10) as answer:
                self.cookie = answer.headers["Set-Cookie"].split(";")[0]
        except (urllib.error.HTTPError, OSError) as err:
            key = "login " + str(getattr(err, "code", type(err).__name__))
            self.answers[key] = self.answers.get(key, 0) + 1

    def stop(self):
        self._stop.set()
        self._thread.join(10)


class Watcher(Poller):
    """A client holding the owner's page's live stream (`url`: its /page/stream) in a
    thread, as the page in a browser does: logged in with `login`, each event counted in
    answers["events"], each answer's status counted; opened again a second after it ends."""

    def __init__(self, url, login):
        super().__init__(url, 1.0, login)

    def _run(self):
        import socket
        import urllib.parse
        import urllib.request

        where = urllib.parse.urlsplit(self.url)
        while not self._stop.is_set():
            if self.cookie is None:
                self._login(urllib.request)
            try:
                with socket.create_connection((where.hostname, where.port), timeout=1) as s:
                    s.sendall(f"GET {where.path} HTTP/1.1\r\nHost: hanport\r\n"
                              f"Cookie: {self.cookie}\r\n\r\n".encode())  # fmt: skip
                    got = b""
                    key = None  # the answer's status, once its head is in
                    while not self._stop.is_set():
                        try:
                            chunk = s.recv(4096)
                        except TimeoutError:
                            continue
                        if not chunk:
                            break
                        got += chunk
                        if key is None and b"\r\n\r\n" in got:
                            key = int(got.split(b" ", 2)[1])
                            self.answers[key] = self.answers.get(key, 0) + 1
                            got = got.partition(b"\r\n\r\n")[2] if key == 200 else b""
                            if key == 401:
                                self.cookie = None
                        n = got.count(b"\n\n") if key == 200 else 0
                        if n:
                            self.answers["events"] = self.answers.get("events", 0) + n
                            got = got[got.rfind(b"\n\n") + 2 :]
            except (OSError, ValueError) as err:  # refused before it listens, reset, garbled
                key = type(err).__name__
                self.answers[key] = self.answers.get(key, 0) + 1
            self._stop.wait(self.every)
