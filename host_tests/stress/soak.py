"""The soak run: simulated hours of a three-phase Kaifa meter (List 1 every 2 s,
List 2 every 10 s, List 3 hourly) through the whole pipeline, with outages injected.

Real parts on loopback, as host_tests/rig.py gives the end-to-end tests: the firmware's main
under `hanctl run` (the MicroPython unix port, or HANPORT_MICROPYTHON's interpreter with the
firmware frozen in), two Debian mosquittos (destination "full" with share full, "hourly"
with share hourly), hanctl's meter simulator on the TCP "UART". Each broker is stopped and
started again several times (across hourly frames too), and the dongle loses its power once
while both destinations hold hourly messages on its flash.

What is checked is host_tests/stress/soak_check.py's (summary["failures"] lists each breach): every
hourly message at both destinations, every live reading received or counted, the heap flat,
no MemoryError, no task ended. host_tests/test_soak.py runs 4 hours of it in CI.

At the default speed, 120, the day takes 12 minutes and the dongle keeps the line's pace
(measured on this shared 2-core host: no live reading missing after a session's start,
latency p99 under 5 ms; at 240, p99 rose to 0.2-0.4 s and readings were dropped).

From the repository's root, on the stock interpreter, then at 96K as on an ESP32:

    PYTHONPATH=host_tests .venv/bin/python -m stress.soak --heap 160K --json build/soak.json
    tools/frozen-unix/build && HANPORT_MICROPYTHON=build/frozen-unix/micropython \
        PYTHONPATH=host_tests .venv/bin/python -m stress.soak --json build/soak.json

--line scaled (default) runs the meter's line as much faster as its clock, so every push of
the day is sent; --line real keeps 2400 baud, and the simulator leaves out the pushes that
no longer fit (counted as skipped). Only frames actually sent are expected anywhere.
"""

import argparse
import datetime as dt
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

import rig  # the end-to-end tests' real parts
from hanctl import runtime
from hanctl.simulate import BAUD, Feed, Meter, Server
from stress.soak_check import MARGIN, START, summarise

DEFAULT_SPEED = 120  # measured: see the docstring


class Broker(rig.Broker):
    """rig's mosquitto with a persistent store: the subscriber's session and its queued
    messages survive a stop and start, so what the dongle publishes before the subscriber
    is back is kept for it (QoS 0 too). Logs connections only: a day at full speed would
    log 100,000 publishes."""

    def __init__(self, tmp, name):
        super().__init__(
            tmp,
            name,
            log_types=("error", "warning", "notice", "information"),
            persistence=True,
            # no limit: the subscriber is away a second at most
            extra=["queue_qos0_messages true", "max_queued_messages 0"],
        )


class Listener:
    """paho-mqtt on hanport/# with a persistent session (clean_session off, QoS 1): each
    message with its arrival time, across the broker's restarts."""

    def __init__(self, broker, client_id):
        self.messages = []  # (arrival, topic, payload, retained)
        self.links = []  # (time, True when connected / False when the link went)
        self.sessions_lost = 0  # reconnects where the broker had forgotten the session
        self._subscribed = threading.Event()
        c = self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        c.on_connect = self._connected
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._message
        c.on_disconnect = lambda *a: self.links.append((time.monotonic(), False))
        c.reconnect_delay_set(1, 2)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the subscriber could not subscribe")

    def _connected(self, client, userdata, flags, reason, properties):
        self.links.append((time.monotonic(), True))
        if not flags.session_present:
            if self._subscribed.is_set():
                self.sessions_lost += 1
            client.subscribe("hanport/#", qos=1)

    def _message(self, client, userdata, msg):
        self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload), msg.retain))

    def on(self, suffix):
        return [m for m in list(self.messages) if m[1].endswith(suffix)]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Dongle(rig.Dongle):
    """rig's dongle with the arrival time of each log line, and when its power went."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times = []
        self.killed = None

    def _pump(self):
        for line in self.proc.stdout:
            self.times.append((time.monotonic(), line.rstrip("\n")))
            self.output.append(line.rstrip("\n"))

    def lines(self, text):
        return [t for t, x in list(self.times) if text in x]

    def kill(self):
        self.killed = time.monotonic()
        super().kill()


class MeterLine:
    """The simulated meter's pushes for `hours`, as simulate.Server sends them, starting
    when `go` is set; `sent` holds (wall time, meter time, list, reading, bytes) of each
    frame put on the line (simulate.Feed keeps only the last 20,000)."""

    def __init__(self, hours, speed, line):
        self.meter = Meter("kaifa", 3, start=START)
        baud = BAUD * speed if line == "scaled" else BAUD
        self.feed = Feed(self.meter, speed, baud=baud)
        self.end = START + dt.timedelta(hours=hours)
        self.go = threading.Event()
        self.done = threading.Event()
        self.sent = []
        self.skipped = None

    def chunks(self):
        self.go.wait()
        for wait, data in self.feed.chunks():
            if data:
                when, list_no, reading = self.feed.sent[-1]
                if when >= self.end:
                    break
                self.sent.append((time.monotonic(), when, list_no, reading, len(data)))
            yield wait, data
        self.skipped = self.feed.skipped
        self.done.set()
        while True:
            yield 0.5, b""

    def hours(self):
        """Simulated hours since START of the last frame sent."""
        sent = self.sent
        return (sent[-1][1] - START).total_seconds() / 3600 if sent else 0.0


def plan(hours, reboot=True):
    """The faults, as (simulated hours, action, target), sorted. A 4-hour cycle, repeated:
    both brokers down across one hourly frame, the hourly one across the next while the
    full one is down too and the dongle loses power in between (once in the run: a day's
    heap is compared over a long boot), the full one alone across the third, the hourly
    one alone between two frames."""
    cycle = [
        (0 + 50 / 60, 1 + 15 / 60, ("full", "hourly")),
        (1 + 45 / 60, 2 + 25 / 60, ("hourly",)),
        (1 + 55 / 60, 2 + 15 / 60, ("full",)),
        (2 + 50 / 60, 3 + 10 / 60, ("full",)),
        (3 + 30 / 60, 3 + 40 / 60, ("hourly",)),
    ]
    reboot_cycle = 3 if hours >= 16 else 0  # 24 h: 14:05, in the middle of the day
    events = []
    for k in range(int(hours // 4)):
        base = 4 * k
        for down, up, targets in cycle:
            for t in targets:
                events += [(base + down, "stop", t), (base + up, "start", t)]
        if reboot and k == reboot_cycle:
            events += [(base + 2 + 5 / 60, "kill", "dongle"), (base + 2 + 8 / 60, "boot", "dongle")]
    return sorted(events)


class Recording:
    """What a run saw, for summarise(): plain data, so a test can alter a copy of it."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def run(hours=24, speed=DEFAULT_SPEED, heap="96K", line="scaled", stats_interval=1, reboot=True,
        workdir=None, say=print):  # fmt: skip
    """Runs the soak in workdir (the brokers' and the dongle's logs and files stay there);
    returns its Recording."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="hanport-soak-"))
    stop = []
    started = time.monotonic()
    try:
        brokers = {n: Broker(tmp, n).start() for n in ("full", "hourly")}
        stop += brokers.values()
        subs = {n: Listener(b, "soak-" + n) for n, b in brokers.items()}
        stop += subs.values()
        meter = MeterLine(hours, speed, line)
        server = Server(meter.chunks()).start()
        stop.append(server)

        def dest(name):
            return rig.destination(
                name, brokers[name], share=name, stats_interval=stats_interval, retry_max=2
            )

        cfg = rig.config(dest("full"), dest("hourly"))
        uart = f"tcp://127.0.0.1:{server.port}"
        dongles = [Dongle(tmp / "fs", cfg, uart, heap=heap).start()]
        stop.append(dongles)
        for name in ("full", "hourly"):
            dongles[0].wait_log(f"destination {name} connected", timeout=60)
        deadline = time.monotonic() + 30
        while not server.clients and time.monotonic() < deadline:  # its UART connected
            time.sleep(0.05)
        events = plan(hours, reboot)
        record = []  # (wall, simulated hours, action, target, queued on flash at a kill)
        meter.go.set()
        say(f"soak: {hours:g} h at speed {speed:g} ({line} line), heap {heap}, in {tmp}")
        shown = 0
        while not meter.done.is_set():
            now = meter.hours()
            while events and events[0][0] <= now:
                _, action, target = events.pop(0)
                queued = None
                if action == "stop":
                    brokers[target].stop()
                elif action == "start":
                    brokers[target].start()
                elif action == "kill":
                    dongles[-1].kill()
                    queued = {n: _queued(tmp / "fs", n) for n in ("full", "hourly")}
                else:
                    dongles.append(Dongle(tmp / "fs", cfg, uart, heap=heap).start())
                record.append((time.monotonic(), now, action, target, queued))
            if int(now) > shown:
                shown = int(now)
                _progress(say, shown, started, meter, subs)
            time.sleep(0.01)
        ended = time.monotonic()
        _settle(meter, subs, stats_interval)
        for k, d in enumerate(dongles):  # beside the brokers' logs, for a failure's story
            text = "".join(f"{t - started:9.3f} {x}\n" for t, x in list(d.times))
            (tmp / f"dongle-{k}.log").write_text(text)
        return Recording(
            hours=hours,
            speed=speed,
            heap=heap,
            line=line,
            sent=meter.sent,
            skipped=meter.skipped,
            messages={n: list(s.messages) for n, s in subs.items()},
            sessions_lost={n: s.sessions_lost for n, s in subs.items()},
            subscriber_links={n: list(s.links) for n, s in subs.items()},
            boots=[(d.lines("hanport: running:")[:1], d.killed) for d in dongles],
            connected={n: _connected(n, dongles, record, ended) for n in ("full", "hourly")},
            output=[x for d in dongles for x in d.output],
            record=record,
            ended=ended,
            wall=time.monotonic() - started,
            interpreter=runtime.micropython_exe(),
            frozen=runtime.frozen_exe() is not None,
            heap_block=_heap_block(),
        )
    finally:
        for x in reversed(stop):
            for y in x if isinstance(x, list) else [x]:
                getattr(y, "stop", getattr(y, "close", None))()


def _heap_block():
    """Bytes in one of the interpreter's heap blocks: four machine words, so 16 on a 32-bit
    build (the frozen-unix image, an ESP32) and 32 on the stock 64-bit unix port."""
    return 4 * runtime.word_bits() // 8


def _queued(fs, name):
    try:
        return sum(1 for line in (fs / f"queue-{name}.jsonl").read_text().splitlines() if line)
    except FileNotFoundError:
        return 0


def _progress(say, hour, started, meter, subs):
    stats = [json.loads(m[2]) for m in subs["full"].on("/stats")[-1:]]
    heap = stats[0]["free_heap"] if stats else "?"
    say(
        f"  hour {hour:2d}: {time.monotonic() - started:6.1f} s, {len(meter.sent)} frames, "
        f"full {len(subs['full'].on('/reading'))} readings "
        f"{len(subs['full'].on('/energy'))} energy, hourly {len(subs['hourly'].on('/energy'))} "
        f"energy, free heap {heap}"
    )


def _settle(meter, subs, stats_interval):
    """After the last frame: wait until each destination has delivered every List 3 (or
    30 s), then for two more rounds of stats on the quiet line."""
    want = sum(1 for s in meter.sent if s[2] == 3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        hours = [{json.loads(m[2])["meter_time"] for m in s.on("/energy")} for s in subs.values()]
        if min(map(len, hours)) >= want:
            break
        time.sleep(0.2)
    time.sleep(2 * stats_interval + MARGIN)


def _connected(name, dongles, record, ended):
    """(from, to) wall times this destination was connected, as far as the outside sees:
    from its "connected" log line to its broker's stop, its next failure or a power cut."""
    ends = [r[0] for r in record if r[2] == "stop" and r[3] == name]
    periods = []
    for d in dongles:
        fails = d.lines(f"destination {name} failed")
        for t in d.lines(f"destination {name} connected"):
            later = [e for e in ends + fails + [d.killed or ended, ended] if e > t]
            periods.append((t, min(later)))
    return periods


def report(s):
    """The summary as text."""
    lines = [
        f"soak: {s['simulated_hours']} simulated hours in {s['wall_s']} s wall (speed "
        f"{s['speed']}, {s['line']} line), heap {s['heap_size']} on "
        f"{'the frozen interpreter' if s['frozen'] else 'the stock interpreter'} "
        f"({s['interpreter']})",
        f"frames sent: {s['frames_sent']} ({s['bytes_sent']} bytes); skipped by the line: "
        f"{s['frames_skipped']}",
    ]
    for o in s["outages"]:
        lines.append(f"outage: broker {o['broker']} {o['from']}-{o['to']} ({o['wall_s']} s wall)")
    for r in s["reboots"]:
        lines.append(f"power cut at {r['at']}, hourly messages on flash: {r['queued_on_flash']}")
    for name, d in s["destinations"].items():
        e = d["energy"]
        lines.append(
            f"{name}: readings {d['readings']}; energy sent {e['sent']}, expected "
            f"{e['expected']}, received {e['received']}, duplicates {e['duplicates']}, "
            f"missing {e['missing']}, wrong {e['wrong']}, in order {e['in_order']}; "
            f"dropped within sessions {d['dropped_within_sessions']}"
            + (f"; lost uncounted {d['uncounted']}" if "uncounted" in d else "")
        )
    h = s["heap"]
    if h:
        lines.append(f"heap used (of {h['size']} B), first hours {h['first']}")
        lines.append(f"                          last hours  {h['last']}")
        for b in h["per_boot"]:
            lines.append(f"  boot {b['boot']}: first {b['first']}, last {b['last']}")
    lines.append("PASS" if s["ok"] else "FAIL:\n  " + "\n  ".join(s["failures"]))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=24, help="simulated hours (a multiple of 4)")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED, help="meter clock speed-up")
    p.add_argument("--heap", default="96K", help="the dongle's MicroPython heap")
    p.add_argument("--line", choices=("scaled", "real"), default="scaled")
    p.add_argument("--stats-interval", type=int, default=1, help="seconds between stats")
    p.add_argument("--no-reboot", action="store_true", help="no power cut")
    p.add_argument("--json", help="write the summary as JSON here")
    p.add_argument("--keep", help="work in this folder (kept): logs, the dongle's files")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hanport-soak-") as tmp:
        try:
            rec = run(
                hours=args.hours,
                speed=args.speed,
                heap=runtime.check_heap(args.heap),
                line=args.line,
                stats_interval=args.stats_interval,
                reboot=not args.no_reboot,
                workdir=args.keep or tmp,
            )
        except AssertionError as e:  # rig: the dongle never connected (e.g. no heap for it)
            print(f"soak: the run did not start: {e}", file=sys.stderr)
            return 1
    s = summarise(rec)
    print(report(s))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(s, indent=1, default=str) + "\n")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
