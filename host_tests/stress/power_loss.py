"""Power loss: the firmware's writers, and the dongle itself, killed with SIGKILL at random
instants (seeded), then started again on the same folder, its flash.

Five runs, each with real parts (the MicroPython unix port running the shipped .mpy
firmware; Debian's mosquitto on loopback):

  config   a writer replaces config A by config B (and back), killed at random: the three
           ways a config reaches the flash (what `hanctl config push` makes the device do,
           firmware/config.py's write() and firmware/store.py's save_json(), which write()
           calls). After each kill the dongle's real main boots on the folder (and in some
           rounds is killed again while it boots, when it writes config.checked): it must
           run with A or B, restart at most once (into a new config it just checked), never
           be in safe state.
  push     the real `hanctl config push` to a virtual dongle whose interpreter is killed
           while the push writes (kills // 2 of them); then the same checks.
  outbox   the outage queue (firmware/outbox.py) driven by a script of appends and pops
           (queues filled, drained, or kept near 4 or 40 messages, up to capacity), killed
           at random; the next load must hold the messages of the steps done, give or take
           the step under way, and nothing else.
  dongle   the dongle end to end: a meter sends one hourly List 3 after another (the next
           once the last is on flash or at the broker), the broker is down for ~40 hours at
           a time, then up; the dongle is killed at random throughout (while queueing,
           booting, flushing). At the end every hour arrives, as decoded (JSON equal,
           duplicates included), except at most the one in flight at a kill (sent by the
           meter, not yet whole on flash).
  sweep    the same writers, the dongle's state.json and the tariff's account (tariff.json,
           at the register that closes an hour) on littlefs and FAT (the ESP32's file
           systems) in a RAM block device, cut after each of its block writes in turn
           (exhaustive, not random).

From the repository's root:

    PYTHONPATH=host_tests .venv/bin/python -m stress.power_loss --kills 300 --seed 7  # ~10 min
    PYTHONPATH=host_tests .venv/bin/python -m stress.power_loss --only outbox --kills 2000

What a kill lands on depends on the machine's load too: the seed fixes the inputs and the
delays, so the phase counts vary between runs; the verdicts must not.
host_tests/test_power_loss.py runs a short version of each in CI.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import rig  # host_tests/rig.py: mosquitto and a paho subscriber
from hanctl import device, encoder, run, runtime
from hanctl.simulate import Server
from mp import start_driver

HEAP = "160K"  # rig.Dongle's heap for the stock unix interpreter (see rig.py)
WRITERS = ("push", "write", "save_json")


def driver(mode, cwd, heap=HEAP):
    """power_loss_driver.py on the unix port in cwd; stdin gets the mode line."""
    proc = start_driver("power_loss_driver.py", heap, cwd=cwd, stdin=subprocess.PIPE, bufsize=1)
    proc.stdin.write(mode + "\n")
    proc.stdin.flush()
    return proc


def sigkill(proc):
    """The power cut: no chance to close, flush or rename anything."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended (a restart) between the poll and the kill
            pass
    proc.wait(10)


class Board:
    """The firmware's main on the unix port with its flash in `state`, run as `hanctl run`
    runs it (run.argv, run.env), but without its copying config.json in first: after a cut,
    the flash is what it is. An exit with run.RESTART (the board's reset) runs it again, as
    a board would, and is counted: more than one per boot is a restart loop."""

    def __init__(self, state, uart, heap=HEAP):
        self.state = Path(state)
        self.uart = uart
        self.heap = heap
        self.lock = threading.Lock()
        self.proc = None
        self.output = []
        self.restarts = 0
        self.codes = []  # exit codes of its processes, -9 for the cut
        self.killed = False
        self._thread = None

    def boot(self):
        self.output = []
        self.restarts = 0
        self.codes = []
        self.killed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        with self.lock:
            self._spawn()
        self._thread.start()
        return self

    def _spawn(self):
        self.proc = subprocess.Popen(
            run.argv(self.heap),
            cwd=self.state,
            env=run.env(self.uart),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _run(self):
        while True:
            proc = self.proc
            for line in proc.stdout:
                self.output.append(line.rstrip("\n"))
            code = proc.wait()
            self.codes.append(code)
            with self.lock:
                if self.killed or code != run.RESTART:
                    return
                self.restarts += 1
                if self.restarts > 3:  # a loop: stop it here, the caller reports it
                    return
                self._spawn()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_any(self, texts, timeout=20):
        """The first of texts to appear in the log, or None when the board stopped first
        or timeout passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                for t in texts:
                    if t in line:
                        return t
            if not self._thread.is_alive():
                return None
            time.sleep(0.005)
        return None

    def kill(self):
        with self.lock:
            self.killed = True
            sigkill(self.proc)
        self._thread.join(10)


# -- config ----------------------------------------------------------------------------


def config_pair(broker_port):
    """Configs A and B, both valid on the unix port, each naming the broker under its own
    destination name; B is long (8 networks), and its push text padded to near the
    validator's 8 KB limit so a push takes eight 1 KB writes."""
    broker = SimpleNamespace(port=broker_port)  # all rig.destination() reads of a Broker
    a = rig.config(rig.destination("A", broker))
    a["hostname"] = "hanport-a"
    a["wifi"] = [{"ssid": "home", "password": "p" * 12}]  # push checks as for a board
    a["board"] = "esp32-devkit-tss721"
    b = rig.config(rig.destination("B", broker))
    b["hostname"] = "hanport-b"
    b["board"] = "esp32-devkit-tss721"
    b["wifi"] = [{"ssid": f"net-{i}-" + "s" * 24, "password": "p" * 63} for i in range(8)]
    text_b = json.dumps(b, indent=1)
    text_b += " " * (8000 - len(text_b)) + "\n"
    return a, b, json.dumps(a).encode(), text_b.encode()


def config_run(work, kills, seed, out=print):
    """Kill config writers at random; after each kill boot the dongle on the folder.
    Returns the counts (see summary keys)."""
    rnd = random.Random(seed)
    work = Path(work)
    broker = rig.Broker(work, "config-broker").start()
    try:
        return _config_run(work, kills, rnd, broker, out)
    finally:
        broker.stop()


def _config_run(work, kills, rnd, broker, out):
    inputs = work / "config-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    a, b, text_a, text_b = config_pair(broker.port)
    (inputs / "a.json").write_bytes(text_a)
    (inputs / "b.json").write_bytes(text_b)
    (inputs / "replace.py").write_text(
        device._REPLACE.format(tmp="config.json.tmp", path="config.json")
    )
    want = {"A": a, "B": b}
    counts = {"kills": 0, "boot_kills": 0, "old": 0, "new": 0, "broken": 0, "loops": 0}
    counts.update({"phase_" + p: 0 for p in ("tmp_partial", "tmp_whole", "no_tmp")})
    counts.update({"writer_" + w: 0 for w in WRITERS})
    counts["boots_A"] = counts["boots_B"] = counts["restarts"] = 0
    failures = []
    per_writer = max(1, kills // len(WRITERS))
    for writer in WRITERS:
        state = work / ("config-" + writer)
        state.mkdir(parents=True, exist_ok=True)
        (state / "config.json").write_bytes(text_a)
        board = Board(state, "tcp://127.0.0.1:1")  # no meter: the link retries quietly
        prev = a
        _config_boot(board, want, counts, failures, "first boot")
        for k in range(per_writer):
            proc = driver(f"config {writer} {inputs}", state, heap="256K")
            # The writer's first lines: a few ms of start-up; then it loops writing.
            time.sleep(rnd.uniform(0.01, 0.08))
            sigkill(proc)
            done = [ln for ln in _lines_of(proc.stdout.read()) if ln.startswith("w ")]
            err = proc.stderr.read()
            if err.strip():
                failures.append(f"{writer} writer said: {err.strip()[-300:]}")
            counts["kills"] += 1
            counts["writer_" + writer] += 1
            # What a cut leaves: config.json.tmp partly written, whole, or not there.
            tmp = state / "config.json.tmp"
            if not tmp.exists():
                counts["phase_no_tmp"] += 1
            elif tmp.read_bytes() in (text_a, text_b) or _same(tmp, a, b):
                counts["phase_tmp_whole"] += 1
            else:
                counts["phase_tmp_partial"] += 1
            # Old: the config the last finished write left; new: the one under way.
            last = int(done[-1].split()[1]) if done else -1
            old = (a if last % 2 else b) if done else prev  # none done: the one before
            new = b if last % 2 else a
            got = prev = _read(state / "config.json", a, b)
            outcome = "old" if got == old else "new" if got == new else "broken"
            counts[outcome] += 1
            if outcome == "broken":
                failures.append(f"{writer} kill {k}: config.json is neither old nor new")
            if rnd.random() < 0.3:  # the dongle killed while it boots (config.checked)
                board.boot()
                time.sleep(rnd.uniform(0.0, 0.04))
                board.kill()
                counts["boot_kills"] += 1
            _config_boot(board, want, counts, failures, f"{writer} kill {k}", expect=got)
    out(
        "config: {kills} writer kills (+{boot_kills} while booting): old {old}, "
        "new {new}, broken {broken}; config.json.tmp partial {phase_tmp_partial}, "
        "whole {phase_tmp_whole}, absent {phase_no_tmp}; boots with A {boots_A}, "
        "with B {boots_B}, restarts {restarts}, restart loops {loops}".format(**counts)
    )
    counts["failures"] = failures
    return counts


def _same(path, a, b):
    try:
        return json.loads(path.read_bytes()) in (a, b)
    except ValueError:
        return False


def _read(path, a, b):
    try:
        cfg = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cfg if cfg in (a, b) else None


def _config_boot(board, want, counts, failures, what, expect=None):
    """Boot the dongle on its folder until one destination connects; count the config it
    runs with and its restarts."""
    board.boot()
    seen = board.wait_any(["destination A connected", "destination B connected", "safe state"])
    board.kill()
    counts["restarts"] += board.restarts
    if board.restarts > 1:
        counts["loops"] += 1
        failures.append(f"{what}: {board.restarts} restarts in one boot")
    if seen is None or seen == "safe state":
        failures.append(f"{what}: the dongle did not run: " + " | ".join(board.output[-8:]))
        return
    name = seen.split()[1]
    counts["boots_" + name] += 1
    if expect is not None and want[name] != expect:
        failures.append(f"{what}: config.json holds one config, the dongle ran the other")


# -- push: the real `hanctl config push`, the device's power cut during it -----------------


def push_run(work, kills, seed, out=print):
    """`hanctl config push` of B, then A, ... to a virtual dongle (the unix port behind a
    pty, over mpremote's raw REPL) whose interpreter is killed at a random instant of the
    push; the virtual dongle then powers it on again. config.json must be the old or the
    new one, and the dongle's main must boot on the folder with it."""
    from hanctl.vdongle import VirtualDongle

    rnd = random.Random(seed)
    work = Path(work)
    broker = rig.Broker(work, "push-broker").start()
    state = work / "push-fs"
    state.mkdir(parents=True, exist_ok=True)
    a, b, text_a, text_b = config_pair(broker.port)
    files = [work / "push-b.json", work / "push-a.json"]
    files[0].write_bytes(text_b)
    files[1].write_bytes(text_a)
    (state / "config.json").write_bytes(text_a)
    counts = {"kills": 0, "old": 0, "new": 0, "broken": 0, "loops": 0, "restarts": 0}
    counts.update({"boot_kills": 0, "boots_A": 0, "boots_B": 0, "pushes_done": 0})
    counts["push_waiting"] = 0
    counts.update({"phase_tmp_partial": 0, "phase_tmp_whole": 0, "phase_no_tmp": 0})
    failures = []
    board = Board(state, "tcp://127.0.0.1:1")
    vd = VirtualDongle(state).start()
    try:
        # One whole push first: how long its writing takes (from config.json.tmp made to
        # config.json replaced), so the cuts spread over that part, not the connecting.
        tmp = state / "config.json.tmp"
        push = _push(vd, files[0], failures, wait=False)
        start = _wait_changed(tmp, None)
        took = (_wait_changed(state / "config.json", _stat(state / "config.json")) or 0) - (
            start or 0
        )
        counts["write_ms"] = round(took * 1000)
        if push.wait(60):
            failures.append("hanctl config push failed uncut: " + push.stdout.read()[-300:])
        got = prev = _read(state / "config.json", a, b)
        if got != b:
            failures.append("a push that was not cut did not leave the new config")
        _config_boot(board, {"A": a, "B": b}, counts, failures, "the first push", expect=b)
        for k in range(kills):
            new = a if prev == b else b  # never the one it holds: old and new differ
            before = _stat(tmp)
            push = _push(vd, files[1 if new == a else 0], failures, wait=False)
            _wait_changed(tmp, before)
            time.sleep(rnd.uniform(0.0, took))
            interpreter = vd._link.device.proc  # the board's chip: it loses power here
            sigkill(interpreter)
            try:
                code = push.wait(3)
            except subprocess.TimeoutExpired:  # it still waits for the device that died:
                push.kill()  # a board's USB port vanishes with it; a pty stays
                code = push.wait()
                counts["push_waiting"] += 1
            counts["kills"] += 1
            counts["pushes_done"] += code == 0
            tmp = state / "config.json.tmp"
            if not tmp.exists():
                counts["phase_no_tmp"] += 1
            elif _same(tmp, a, b):
                counts["phase_tmp_whole"] += 1
            else:
                counts["phase_tmp_partial"] += 1
            got = _read(state / "config.json", a, b)
            outcome = "old" if got == prev else "new" if got == new else "broken"
            counts[outcome] += 1
            if outcome == "broken":
                failures.append(f"push {k}: config.json is neither old nor new")
            if code == 0 and got != new:
                failures.append(f"push {k}: push said done, config.json is not the new one")
            prev = got
            if rnd.random() < 0.3:
                board.boot()
                time.sleep(rnd.uniform(0.0, 0.04))
                board.kill()
                counts["boot_kills"] += 1
            _config_boot(board, {"A": a, "B": b}, counts, failures, f"push {k}", expect=got)
    finally:
        vd.stop()
        broker.stop()
    out(
        "push: {kills} devices cut during `hanctl config push` ({pushes_done} pushes done "
        "first, {push_waiting} still waiting 3 s on; +{boot_kills} cut while booting): "
        "old {old}, new {new}, broken {broken}; "
        "config.json.tmp partial {phase_tmp_partial}, whole {phase_tmp_whole}, absent "
        "{phase_no_tmp}; boots with A {boots_A}, with B {boots_B}, restarts {restarts}, "
        "restart loops {loops}; an uncut push writes for {write_ms} ms".format(**counts)
    )
    counts["failures"] = failures
    return counts


def _wait_changed(path, before, timeout=20):
    """time.monotonic() when path's stat first differs from before (None: no file), or
    None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _stat(path)
        if now is not None and now != before:
            return time.monotonic()
        time.sleep(0.0005)
    return None


def _push(vd, path, failures, wait=True):
    cmd = [str(rig.HANCTL), "config", "push", "--port", vd.port, str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        text, _ = proc.communicate(timeout=60)
        if proc.returncode:
            failures.append(f"hanctl config push failed uncut: {text[-300:]}")
    return proc


# -- outbox -------------------------------------------------------------------------------


CAPACITY = 48  # Outbox's default, the one destination.py uses


def _apply(model, op):
    """The queues an operation may leave when cut: [before, ..., after]."""
    if op[0] == "p":
        return [model, model[1:]]
    if len(model) >= CAPACITY:  # the oldest gives way first, then the new one is written
        return [model, model[1:], model[1:] + [op[1]]]
    return [model, model + [op[1]]]


def outbox_run(work, kills, seed, out=print):
    rnd = random.Random(seed)
    state = Path(work) / "outbox"
    state.mkdir(parents=True, exist_ok=True)
    queue = state / "queue-A.jsonl"
    tmp = state / "queue-A.jsonl.tmp"
    model = []
    allowed = [[]]  # the queues the last kill may have left
    next_id = 0
    counts = {"kills": 0, "before": 0, "after": 0, "between": 0, "ops": 0, "slow_lives": 0}
    counts.update({"phase_" + p: 0 for p in ("torn_line", "mid_rewrite", "between_writes")})
    counts.update({"inflight_append": 0, "inflight_pop": 0, "lost": 0, "max_queue": 0})
    failures = []
    for k in range(kills):
        # Steps for this life, one of three kinds: appends only (a plain append is two
        # short writes: lives of them are what hit one; past capacity each one rewrites the
        # queue too), pops only (each rewrites what is left), or a queue kept near its length.
        # A pause after each write (slow, see SlowFolder) widens the gaps between writes; a
        # drain runs at full speed, so the queue gets short again for the next fill.
        if len(allowed[0]) < 24:
            kind = "fill" if rnd.random() < 0.75 else "mixed"
        else:
            kind = "drain" if rnd.random() < 0.6 else "mixed"
        slow = {"fill": 1, "drain": 0}.get(kind, rnd.choice((0, 1)))
        counts["slow_lives"] += slow
        proc = driver(f"outbox {slow}", state)
        first = proc.stdout.readline().split()
        if not first or first[0] != "L":
            failures.append(f"kill {k}: the queue did not load: {first} {proc.stderr.read()}")
            sigkill(proc)
            break
        loaded = [int(x) for x in first[2].split(",")] if len(first) > 2 else []
        if int(first[1]) != len(loaded):
            failures.append(f"kill {k}: len() {first[1]} for {len(loaded)} lines")
        if loaded not in allowed:
            failures.append(f"kill {k - 1}: loaded {loaded}, allowed {allowed}")
            counts["lost"] += 1
        elif k:
            i = allowed.index(loaded)
            counts["before" if i == 0 else "after" if i == len(allowed) - 1 else "between"] += 1
        model = loaded
        ops, proj = [], list(model)
        near = max(4, len(model))
        for _ in range(400):
            if kind == "fill":
                grow = len(proj) <= CAPACITY
            elif kind == "drain":
                grow = len(proj) < 2
            else:
                grow = not proj or (len(proj) < near and rnd.random() < 0.8)
                grow = grow or rnd.random() < 0.45
            if grow:
                op = ("a", next_id, rnd.randint(200, 320))
                next_id += 1
            else:
                op = ("p",)
            ops.append(op)
            proj = _apply(proj, op)[-1]
        tmp_before = _stat(tmp)
        proc.stdin.write("".join(" ".join(map(str, op)) + "\n" for op in ops))
        proc.stdin.flush()
        early = []
        if kind == "fill" and not counts["max_queue"] >= CAPACITY and k >= kills // 2:
            # Until one life has filled the queue, a fill in the second half is cut only
            # once it has: on a loaded machine the timed cut below came before capacity
            # in every life, so whether the run reached it depended on the load.
            while len(model) + len(early) <= CAPACITY:
                line = proc.stdout.readline()
                if not line.endswith("\n"):
                    break
                early.append(line)
        else:
            time.sleep(rnd.uniform(0.005, 0.08 if kind == "fill" else 0.25))  # fill: early
        sigkill(proc)
        acked = [ln.split() for ln in early + _lines_of(proc.stdout.read())]
        err = proc.stderr.read().strip()
        if err:
            failures.append(f"kill {k}: the driver said {err[-300:]}")
        counts["kills"] += 1
        for i, line in enumerate(acked):
            op = ops[i]
            if line[0] != "ok" or (op[0] == "a" and int(line[1]) != op[1]):
                failures.append(f"kill {k}: step {i} {op} answered {line}")
            elif op[0] == "p" and int(line[1]) != model[0]:
                failures.append(f"kill {k}: popped {line[1]}, the oldest was {model[0]}")
            model = _apply(model, op)[-1]
            counts["max_queue"] = max(counts["max_queue"], len(model))
        counts["ops"] += len(acked)
        inflight = ops[len(acked)] if len(acked) < len(ops) else None
        allowed = _apply(model, inflight) if inflight else [model]
        if inflight:
            counts["inflight_append" if inflight[0] == "a" else "inflight_pop"] += 1
        data = queue.read_bytes() if queue.exists() else b""
        if data and not data.endswith(b"\n"):
            counts["phase_torn_line"] += 1
        elif tmp.exists() and _stat(tmp) != tmp_before:
            counts["phase_mid_rewrite"] += 1
        else:
            counts["phase_between_writes"] += 1
    out(
        "outbox: {kills} kills ({slow_lives} slowed) over {ops} queue steps (queue up to "
        "{max_queue}): "
        "torn last line {phase_torn_line}, mid-rewrite {phase_mid_rewrite}, between "
        "writes {phase_between_writes}; step under way an append {inflight_append}, a pop "
        "{inflight_pop}; loaded as before it {before}, after it {after}, oldest gone "
        "only {between}; other (lost) {lost}".format(**counts)
    )
    counts["failures"] = failures
    return counts


def _lines_of(text):
    """The complete lines of a killed process's output (a last one cut short is dropped:
    its step is then the one under way, which the checks allow either way)."""
    return text.split("\n")[:-1]


def _stat(path):
    try:
        s = path.stat()
    except OSError:
        return None
    return (s.st_ino, s.st_mtime_ns, s.st_size)


# -- the dongle end to end ------------------------------------------------------------------


class Hours:
    """Kaifa List 3 frames, one per meter hour from 2024-03-05 00:00:10, with the energy
    message each should become (decoded by the firmware's decoder in CPython, as the
    end-to-end tests do)."""

    def __init__(self):
        runtime.use_firmware_in_cpython()
        self.start = datetime(2024, 3, 5, 0, 0, 10)

    def frame(self, h):
        t = self.start + timedelta(hours=h)
        values = {
            "time": (t.year, t.month, t.day, t.hour, t.minute, t.second),
            "energy": (100000 + 1000 * h, 5 * h, 300 + h, 4000 + 7 * h),
        }
        return encoder.kaifa(3, values)

    def message(self, h):
        from decoder import Decoder
        from reading import to_json
        from share import is_energy

        out = []
        Decoder(out.append).feed(self.frame(h))
        (r,) = out
        return to_json(
            {k: v for k, v in r.items() if k in ("meter_time", "meter_id") or is_energy(k)}
        )

    def hour(self, meter_time):
        t = datetime.fromisoformat(meter_time)
        return round((t - self.start).total_seconds() / 3600)


class Feeder:
    """The meter, in lockstep with the dongle: hour h goes out once the dongle is connected
    to the meter, and h+1 only once h is whole on flash or at the broker, or the dongle
    was killed first; so at any instant at most one hour is in flight."""

    def __init__(self, hours, queue, delivered, limit):
        self.hours = hours
        self.queue = queue
        self.delivered = delivered  # callable: the set of hours the broker has
        self.limit = limit  # callable: True while the meter must wait (the queue is full)
        self.lock = threading.Lock()
        self.life = 0
        self.dead = set()
        self.inflight = None
        self.fed = []  # hours done (whole on flash or delivered) before any kill
        self.paused = False
        self.garbage = []  # complete lines on flash that are no message: must stay empty
        self.sent = []
        self.server = Server(self._chunks())

    def on_flash(self):
        try:
            data = self.queue.read_text()
        except (OSError, UnicodeDecodeError):
            return set()
        out = set()
        for line in data.split("\n")[:-1]:  # complete lines only
            try:
                out.add(self.hours.hour(json.loads(line)["meter_time"]))
            except (ValueError, KeyError, TypeError):
                self.garbage.append(line[:80])
        return out

    def _connected(self):
        return any(c not in self.dead for c in list(self.server.clients))

    def _chunks(self):
        h = 0
        while not self.server.stopped.is_set():
            if self.paused or not self._connected() or self.limit():
                yield 0.01, b""
                continue
            with self.lock:
                self.inflight = h
                life = self.life
                self.sent.append(h)
            yield 0, self.hours.frame(h)
            while not self.server.stopped.is_set():
                with self.lock:
                    if self.life != life:
                        break  # the kill's accounting took this hour over
                    if h in self.on_flash() or h in self.delivered():
                        self.inflight = None
                        self.fed.append(h)
                        break
                yield 0.005, b""
            h += 1

    def killed(self, board):
        """Under the lock: cut the power, then see what the flash kept of the hour in flight.
        Returns (hour in flight or None, whether it was kept)."""
        with self.lock:
            board.kill()
            self.dead.update(self.server.clients)
            h = self.inflight
            self.inflight = None
            kept = None
            if h is not None:
                kept = h in self.on_flash() or h in self.delivered()
                if kept:
                    self.fed.append(h)
            self.life += 1
            return h, kept


def dongle_run(work, kills, seed, out=print, queue_max=40):
    rnd = random.Random(seed)
    work = Path(work)
    state = work / "dongle-fs"
    state.mkdir(parents=True, exist_ok=True)
    queue = state / "queue-A.jsonl"
    hours = Hours()
    broker = rig.Broker(work, "dongle-broker")
    subs = []
    broker_up = [False]

    def delivered():
        got = set()
        for s in subs:
            for m in s.on("A/energy"):
                got.add(hours.hour(json.loads(m[1])["meter_time"]))
        return got

    # The meter waits while the queue is full enough: at ~40 messages with the broker
    # down (below the outbox's 48: none is pushed out by design), at 2 with it up (the
    # flush is ~20 messages/s on the unix port; a real meter sends one an hour).
    feeder = Feeder(
        hours, queue, delivered, lambda: _lines(queue) >= (2 if broker_up[0] else queue_max)
    )
    feeder.server.start()
    cfg = rig.config(rig.destination("A", broker))
    (state / "config.json").write_text(json.dumps(cfg))
    board = Board(state, f"tcp://127.0.0.1:{feeder.server.port}")
    counts = {"kills": 0, "inflight": 0, "inflight_kept": 0, "inflight_lost": 0}
    counts.update({"phase_" + p: 0 for p in ("torn_line", "mid_rewrite", "other")})
    counts.update({"broker_down_kills": 0, "broker_up_kills": 0, "max_queue": 0, "cycles": 0})
    lost_at_kill = {}
    failures = []
    try:
        k = 0
        while k < kills:
            # Cycles: the broker down while ~40 hours queue, then up while they flush
            # (lives that boot, connect, flush, and are cut somewhere in there).
            if k == 0:
                pass  # the broker is not started yet
            elif not broker_up[0] and _lines(queue) >= queue_max:
                broker.start()
                subs.append(rig.Subscriber(broker, "hanport/A/energy"))
                broker_up[0] = True
                counts["cycles"] += 1
            elif broker_up[0] and _lines(queue) <= 2:
                broker.stop()
                broker_up[0] = False
            tmp = state / "queue-A.jsonl.tmp"
            tmp_before = _stat(tmp)
            board.boot()
            time.sleep(rnd.uniform(0.05, 2.0) if broker_up[0] else rnd.uniform(0.05, 0.6))
            if not board.running():
                failures.append(f"kill {k}: the dongle stopped by itself: {board.output[-8:]}")
            counts["max_queue"] = max(counts["max_queue"], _lines(queue))
            h, kept = feeder.killed(board)
            k += 1
            counts["kills"] += 1
            counts["broker_up_kills" if broker_up[0] else "broker_down_kills"] += 1
            if board.restarts > 1:
                failures.append(f"kill {k}: {board.restarts} restarts in one life")
            data = queue.read_bytes() if queue.exists() else b""
            if data and not data.endswith(b"\n"):
                counts["phase_torn_line"] += 1
            elif tmp.exists() and _stat(tmp) != tmp_before:
                counts["phase_mid_rewrite"] += 1
            else:
                counts["phase_other"] += 1
            if h is not None:
                counts["inflight"] += 1
                counts["inflight_kept" if kept else "inflight_lost"] += 1
                if not kept:
                    lost_at_kill[h] = k
            for line in board.output:
                if "Traceback" in line or "ended:" in line:
                    failures.append(f"kill {k}: {line}")
        # The last boot: the broker up, no more kills, the meter quiet once the queue is out.
        if not broker_up[0]:
            broker.start()
            subs.append(rig.Subscriber(broker, "hanport/A/energy"))
            broker_up[0] = True
        feeder.paused = True
        board.boot()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if set(feeder.fed) <= delivered() and _lines(queue) == 0:
                break
            time.sleep(0.1)
        board.kill()
        feeder.server.stop()
        want = set(feeder.fed)
        got = delivered()
        missing = sorted(want - got)
        if missing:
            failures.append(
                f"{len(missing)} hours on flash or delivered never arrived: {missing[:10]}"
            )
        lost = sorted(set(lost_at_kill) - got)
        if feeder.garbage:
            failures.append(f"lines on flash that are no message: {feeder.garbage[:3]}")
        never_sent = sorted(got - set(feeder.sent))
        if never_sent:
            failures.append(f"hours the meter never sent arrived: {never_sent[:10]}")
        if set(feeder.sent) - want - set(lost_at_kill):
            failures.append("hours sent but neither delivered nor in flight at a kill")
        # Byte for byte: no torn or glued message ever went out, duplicates included.
        dups = 0
        seen = set()
        for s in subs:
            for m in s.on("A/energy"):
                if m[2]:
                    continue  # the retained copy a new subscription gets: counted once
                hh = hours.hour(json.loads(m[1])["meter_time"])
                if json.loads(m[1]) != json.loads(hours.message(hh)):
                    failures.append(f"hour {hh} arrived as {m[1][:80]!r}")
                dups += hh in seen
                seen.add(hh)
        counts.update(
            sent=len(feeder.sent),
            delivered=len(got),
            lost=len(lost),
            missing=len(missing),
            duplicates=dups,
        )
    finally:
        if board._thread is not None and board.running():
            board.kill()
        feeder.server.stop()
        for s in subs:
            s.close()
        broker.stop()
    out(
        "dongle: {kills} kills in {cycles} outages (broker down {broker_down_kills}, up "
        "{broker_up_kills}; "
        "torn last line {phase_torn_line}, mid-rewrite {phase_mid_rewrite}, other "
        "{phase_other}); queue up to {max_queue}; {sent} hours sent, {delivered} "
        "delivered ({duplicates} duplicates); an hour in flight at {inflight} kills, "
        "kept {inflight_kept}, lost {inflight_lost}; lost beyond those: {missing}".format(**counts)
    )
    counts["failures"] = failures
    return counts


def _lines(path):
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


# -- sweep ----------------------------------------------------------------------------------


def sweep_run(work, out=print):
    work = Path(work) / "sweep"
    work.mkdir(parents=True, exist_ok=True)
    a, b, text_a, text_b = config_pair(1883)
    (work / "a.json").write_bytes(text_a)
    (work / "b.json").write_text(json.dumps(b))
    counts = {"cuts": 0, "bad": 0}
    failures = []
    for fs in ("lfs2", "fat"):
        proc = driver("sweep " + fs, work, heap="512K")
        text, _ = proc.communicate(timeout=300)
        lines = text.splitlines()
        for line in lines:
            if line.startswith("S "):
                parts = line.split()
                counts["cuts"] += int(parts[2]) + 1
                out(
                    f"sweep {fs}: {parts[1]}: cut at each of {parts[2]} writes and after: "
                    + " ".join(parts[3:])
                )
            elif line.startswith("BAD "):
                counts["bad"] += 1
                failures.append(line)
        if sum(line.startswith("S ") for line in lines) != 7:
            failures.append(f"sweep {fs} ended early: {lines[-5:]}")
    counts["failures"] = failures
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=300, help="kills per run (config, outbox, dongle)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--only", choices=("config", "push", "outbox", "dongle", "sweep"))
    p.add_argument("--work", default=None, help="folder for the runs (default: a temp one)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="hanport-power-loss-"))
    print(f"power loss: seed {seed}, folder {work}")
    runs = {
        "config": lambda: config_run(work, args.kills, seed),
        "push": lambda: push_run(work, max(1, args.kills // 2), seed),
        "outbox": lambda: outbox_run(work, args.kills, seed),
        "dongle": lambda: dongle_run(work, args.kills, seed),
        "sweep": lambda: sweep_run(work),
    }
    bad = 0
    for name, fn in runs.items():
        if args.only and name != args.only:
            continue
        t = time.monotonic()
        counts = fn()
        print(f"  ({name}: {time.monotonic() - t:.0f} s)")
        for f in counts["failures"]:
            print("  FAIL", f)
        bad += len(counts["failures"])
    print(
        "power loss: %s"
        % ("nothing lost beyond the message in flight" if not bad else f"{bad} failures")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
