"""Network faults against the dongle's real main (MicroPython unix port) and real mosquitto.

    PYTHONPATH=host_tests .venv/bin/python -m stress.faults_network kills --hours 600 --seed 7
    PYTHONPATH=host_tests .venv/bin/python -m stress.faults_network faults

`kills`: a Kaifa meter pushes a List 2, a List 1 and the hourly List 3 for each of --hours
hours (an hour every --period seconds), while mosquitto is killed (SIGKILL) and restarted
at random moments of a seeded RNG, half of them just after an hourly frame went out (the
energy message then in flight). Prints one summary line: hours, kills, energy messages
received, lost (must be 0), re-sent duplicates, out of order (must be 0), UART bytes.

`faults`: a second, healthy destination beside one that is slow, stalls, never answers
CONNECT, does not resolve or is refused; prints how late the healthy one's readings came
under each (and with no fault, for comparison) and what the stats said of the other.

host_tests/test_faults_network.py runs both, shorter, and asserts on what they return.

Why a proxy in front of the broker in `kills`: the broker is killed for real and the
dongle's connection dies with it, but the test's subscriber, killed off the broker too, must
be subscribed again before the dongle can publish, or a message the broker took would miss
it (QoS 1 ends at the broker). So while the broker is down the proxy does not listen (the
dongle is refused, as by a dead broker) and it listens again once the subscriber is back.
"""

import argparse
import datetime
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as paho

import rig
from faultproxy import FaultProxy
from hanctl import encoder, runtime
from hanctl.simulate import Server

runtime.use_firmware_in_cpython()

ENERGY_FIELDS = (
    "active_energy_import",
    "active_energy_export",
    "reactive_energy_import",
    "reactive_energy_export",
)
START = datetime.datetime(2024, 3, 5, 0, 0, 10)
# Log lines that mean the dongle itself broke, whatever the network did.
BROKEN = ("MemoryError", "out of memory", "ended:", "Traceback", "watchdog")


def hourly_frames(hours):
    """Per hour a List 2, a List 1 and the List 3 (energy registers at the full hour)."""
    frames = []
    for h in range(hours):
        t = START + datetime.timedelta(hours=h)
        values = {
            "time": (t.year, t.month, t.day, t.hour, t.minute, t.second),
            "p_import": 1000 + h,
            "energy": (100000 + 1000 * h, 5 * h, 300 + h, 4000 + 7 * h),
        }
        frames += [encoder.kaifa(2, values), encoder.kaifa(1, values), encoder.kaifa(3, values)]
    return frames


class Meter:
    """The frames for simulate.Server, `period` seconds apart once `go` is set; the time each
    went out is kept, and `hourly` is set as each List 3 goes."""

    def __init__(self, frames, period, is_hourly=lambda i: False):
        self.frames = frames
        self.period = period
        self.is_hourly = is_hourly
        self.go = threading.Event()
        self.sent_at = []
        self.hourly = threading.Condition()
        self.done = threading.Event()

    def chunks(self):
        self.go.wait()
        start = time.monotonic()
        for i, frame in enumerate(self.frames):
            # Server sends the frame as soon as this yields: the time is taken just before.
            self.sent_at.append(time.monotonic())
            yield 0, frame
            if self.is_hourly(i):
                with self.hourly:
                    self.hourly.notify_all()
            # Paced from the start, not frame to frame: a late frame does not push back the rest.
            time.sleep(max(0.0, start + (i + 1) * self.period - time.monotonic()))
        self.done.set()
        while True:
            yield 0.5, b""


class Recorder:
    """Every message on `topic` at 127.0.0.1:port across broker restarts: connect() makes
    a fresh paho client and returns once its subscription is acknowledged."""

    def __init__(self, port, topic):
        self.port = port
        self.topic = topic
        self.messages = []  # (topic, payload, retained, arrival monotonic)
        self.lock = threading.Lock()
        self.client = None

    def connect(self, timeout=10):
        c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        c.on_connect = lambda client, *a: client.subscribe(self.topic, qos=1)
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        if not subscribed.wait(timeout):
            raise RuntimeError(f"the recorder was not subscribed within {timeout} s")
        self.client = c
        return self

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), msg.retain, time.monotonic()))

    def drop(self):
        """The broker is gone: stop this client (it would reconnect on its own, unsubscribed)."""
        if self.client is not None:
            self.client.loop_stop()
            self.client = None

    def on(self, suffix):
        with self.lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def json(self, suffix):
        return [json.loads(m[1]) for m in self.on(suffix)]

    def close(self):
        if self.client is not None:
            self.client.disconnect()
            self.drop()


wait_for = rig.wait_for  # (what, timeout, why)


def last_stats(rec, suffix, readings):
    """The first stats message that counts `readings` readings (the line is quiet then)."""
    try:
        return wait_for(
            lambda: [s for s in rec.json(suffix) if s["readings"] == readings],
            30,
            f"stats with {readings} readings",
        )[0]
    except AssertionError as err:
        last = rec.json(suffix)[-1:] or ["no stats at all"]
        raise AssertionError(f"{err}; the last stats: {last[0]}") from None


def broken_lines(dongle):
    return [x for x in dongle.output if any(b in x for b in BROKEN)]


# -- kills ----------------------------------------------------------------------------------


def check_energy(messages, want):
    """(lost, duplicates, out_of_order, wrong) of the energy messages against `want` (the
    expected payloads in meter-time order). A QoS 1 re-send (the dongle missed the PUBACK of
    a message the broker had delivered) comes right after its first delivery, with the same
    meter_time; anything else out of place is out of order."""
    by_time = {w["meter_time"]: w for w in want}
    order = [w["meter_time"] for w in want]
    seen = []
    duplicates = out_of_order = 0
    wrong = []
    for m in messages:
        got = json.loads(m[1])
        t = got.get("meter_time")
        if by_time.get(t) != got:
            wrong.append(got)
            continue
        if seen and t == seen[-1]:
            duplicates += 1
        elif len(seen) < len(order) and t == order[len(seen)]:
            seen.append(t)
        else:
            out_of_order += 1
    lost = order[len(seen) :]
    return lost, duplicates, out_of_order, wrong


def broker_kills(
    tmp, hours=100, seed=None, period=0.4, up=(5.0, 8.0), down=(0.3, 4.0), cut_every=3, log=print
):
    """The kill run in folder tmp; returns the numbers (main() prints them in one line).

    Each fault, after `up` s (or just after an hourly frame, half the time): the broker
    killed and restarted after `down` s; every `cut_every`-th fault the link cut instead
    (the proxy drops its connections and what it held for them: a Wi-Fi drop). Answers to
    the dongle come 0.1 s late (the proxy), as over a real network: a PUBACK is then on its
    way when a fault strikes often enough for QoS 1 re-sends to happen."""
    seed = random.randrange(1 << 30) if seed is None else seed
    log(f"faults_network kills: seed={seed} hours={hours} period={period}s")
    rng = random.Random(seed)
    tmp = Path(tmp)
    frames = hourly_frames(hours)
    want = []
    for r in rig.expected_readings(frames):
        if "active_energy_import" in r:
            full = json.loads(rig_to_json(r))
            want.append({k: full[k] for k in ENERGY_FIELDS + ("meter_time", "meter_id")})
    assert len(want) == hours

    stop = []  # what to stop at the end, in reverse
    broker = rig.Broker(tmp, "a").start()
    stop.append(broker)
    proxy = FaultProxy(broker.port, mode="delay", delay=0.1, ways=(1,)).start()
    stop.append(proxy)
    rec = Recorder(broker.port, "hanport/A/#").connect()
    stop.append(rec)
    meter = Meter(frames, period / 3, is_hourly=lambda i: i % 3 == 2)
    server = Server(meter.chunks()).start()
    stop.append(server)
    dest = rig.destination("A", SimpleNamespace(port=proxy.port), retry_min=1, retry_max=2)
    dongle = rig.Dongle(tmp / "fs", rig.config(dest), f"tcp://127.0.0.1:{server.port}").start()
    stop.append(dongle)
    kills = link_cuts = aligned = 0
    started = time.monotonic()
    try:
        dongle.wait_log("destination A connected")
        wait_for(lambda: server.clients, 10, "the dongle's UART connection")
        meter.go.set()
        while not meter.done.is_set():
            if meter.done.wait(rng.uniform(*up)):
                break
            cut = (kills + link_cuts) % cut_every == cut_every - 1
            if rng.random() < 0.5:
                # Just after an hourly frame: the dongle is decoding it, queueing it on its
                # flash, publishing it, awaiting its PUBACK, popping it.
                with meter.hourly:
                    meter.hourly.wait(2 * period)
                time.sleep(rng.uniform(0, 0.15))
                aligned += 1
            if cut:
                proxy.drop()
                link_cuts += 1
                continue
            broker.proc.kill()  # SIGKILL: no goodbye to anyone
            broker.proc.wait(10)
            proxy.close()  # refused from now on, as the dead broker's port is
            rec.drop()
            kills += 1
            time.sleep(rng.uniform(*down))
            broker.start()
            rec.connect()
            proxy.open()
        meter.done.wait(hours * period + 60)
        wait_for(
            lambda: len({json.loads(m[1])["meter_time"] for m in rec.on("A/energy")}) >= hours,
            60,
            "every hourly message",
        )
        stats = last_stats(rec, "A/stats", 3 * hours)
        elapsed = time.monotonic() - started
        time.sleep(1)  # a late re-send would show now
        energy = rec.on("A/energy")
        lost, duplicates, out_of_order, wrong = check_energy(energy, want)
        d = stats["destination"]
        result = {
            "seed": seed,
            "hours": hours,
            "frames": len(frames),
            "kills": kills,
            "link_cuts": link_cuts,
            "after_hourly_frame": aligned,
            "sessions": d["connects"],
            "failures": d["failures"],
            "energy_received": len(energy),
            "lost": lost,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "wrong": wrong,
            "queued_at_end": d["queued"],
            "bytes_sent": server.sent,
            "bytes_received": stats["bytes_received"],
            "readings": stats["readings"],
            "broken": broken_lines(dongle),
            "elapsed_s": round(elapsed, 1),
        }
    finally:
        for x in reversed(stop):
            (getattr(x, "stop", None) or x.close)()
    log(
        "faults_network kills: seed={seed} hours={hours} frames={frames} kills={kills} "
        "link_cuts={link_cuts} (after an hourly frame: {after_hourly_frame}) sessions={sessions} "
        "energy received={energy_received} lost={n_lost} duplicates={duplicates} "
        "out_of_order={out_of_order} wrong={n_wrong} uart bytes sent={bytes_sent} "
        "received={bytes_received} elapsed={elapsed_s}s".format(
            n_lost=len(result["lost"]), n_wrong=len(result["wrong"]), **result
        )
    )
    return result


def rig_to_json(reading):
    from reading import to_json

    return to_json(reading)


# -- a faulty destination beside a healthy one ----------------------------------------------

FAULTS = ("none", "slow", "stall", "silent", "dns", "refused")


def beside_a_fault(tmp, fault, frames=30, period=0.5, delay=2.0, log=print):
    """Destination H (healthy, direct to mosquitto) and F (the fault); a reading every
    `period` s, an hourly List 3 every sixth. Returns the healthy readings' lateness and
    what H's stats said of F."""
    tmp = Path(tmp)
    stop = []
    try:
        healthy = rig.Broker(tmp, "h").start()
        stop.append(healthy)
        rec = Recorder(healthy.port, "hanport/H/#").connect()
        stop.append(rec)
        f = {"retry_min": 1, "retry_max": 4, "timeout": 3}
        proxy = None
        if fault in ("none", "slow", "stall", "silent"):
            other = rig.Broker(tmp, "f").start()
            stop.append(other)
            mode = {"slow": "delay", "silent": "silent"}.get(fault, "pass")
            proxy = FaultProxy(other.port, mode=mode, delay=delay).start()
            stop.append(proxy)
            f["port"] = proxy.port
            if fault == "slow":
                f["timeout"] = 10  # the default: a slow broker still answers within it
        elif fault == "dns":
            f["host"] = "no-such-host.invalid"  # RFC 2606: never resolves
            f["port"] = 1883
        elif fault == "refused":
            f["port"] = rig.free_port()  # nothing listens there
        fdest = rig.destination("F", SimpleNamespace(port=f.pop("port")), **f)
        hdest = rig.destination("H", healthy, stats_interval=2)

        def values(i):
            t = START + datetime.timedelta(hours=i // 6)
            return {
                "time": (t.year, t.month, t.day, t.hour, t.minute, t.second),
                "p_import": 1000 + i,
                "energy": (100000 + i, 0, 0, 0),
            }

        def list_no(i):
            return 3 if i % 6 == 5 else (2 if i % 6 == 2 else 1)

        stream = [encoder.kaifa(list_no(i), values(i)) for i in range(frames)]
        meter = Meter(stream, period)
        server = Server(meter.chunks()).start()
        stop.append(server)
        cfg = rig.config(hdest, fdest)
        dongle = rig.Dongle(tmp / "fs", cfg, f"tcp://127.0.0.1:{server.port}").start()
        stop.append(dongle)
        dongle.wait_log("destination H connected")
        if fault in ("none", "slow", "stall"):
            dongle.wait_log("destination F connected", timeout=30)
        wait_for(lambda: server.clients, 10, "the dongle's UART connection")
        meter.go.set()
        if fault == "stall":
            time.sleep(2 * period)  # a reading or two through, then the broker hangs
            proxy.set("stall")
        meter.done.wait(frames * period + 30)
        stats = last_stats(rec, "H/stats", frames)
        readings = rec.json("H/reading")
        arrived = {}
        for m in rec.on("H/reading"):
            arrived.setdefault(json.loads(m[1])["active_power_import"] - 1000, m[3])
        late = sorted(arrived[i] - meter.sent_at[i] for i in arrived)
        of_f = [o for s in rec.json("H/stats") for o in s["destination"].get("others", [])]
        result = {
            "fault": fault,
            "frames": frames,
            "readings_at_healthy": len(readings),
            "missing": sorted(set(range(frames)) - set(arrived)),
            "late_median_s": round(late[len(late) // 2], 3) if late else None,
            "late_max_s": round(late[-1], 3) if late else None,
            "healthy_energy": len(rec.on("H/energy")),
            "bytes_sent": server.sent,
            "bytes_received": stats["bytes_received"],
            "healthy": stats["destination"],
            "f_seen": of_f,
            "f_last": of_f[-1] if of_f else None,
            "f_errors": [x.split("failed: ", 1)[1] for x in dongle.output if "F failed:" in x],
            "broken": broken_lines(dongle),
        }
    finally:
        for x in reversed(stop):
            (getattr(x, "stop", None) or x.close)()
    last = result["f_last"] or {}
    log(
        f"faults_network {fault}: healthy readings {result['readings_at_healthy']}/{frames}, "
        f"late median {result['late_median_s']} s, max {result['late_max_s']} s; "
        f"uart bytes {result['bytes_sent']}/{result['bytes_received']}; F: "
        f"connected={last.get('connected')} failures={last.get('failures')} "
        f"kind={last.get('last_error_kind')} error={last.get('last_error')!r}"
    )
    return result


def main(argv=None):
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kills", help="broker killed and restarted over a long run")
    k.add_argument("--hours", type=int, default=600)
    k.add_argument("--seed", type=int)
    k.add_argument("--period", type=float, default=0.4, help="seconds per meter hour")
    f = sub.add_parser("faults", help="a healthy destination beside a failing one")
    f.add_argument("--frames", type=int, default=40)
    f.add_argument("--only", choices=FAULTS, action="append")
    args = ap.parse_args(argv)
    if not Path(rig.MOSQUITTO).exists():
        sys.exit("mosquitto is not installed")
    with tempfile.TemporaryDirectory(prefix="hanport-faults-") as tmp:
        if args.what == "kills":
            r = broker_kills(tmp, args.hours, args.seed, args.period)
            bad = r["lost"] or r["out_of_order"] or r["wrong"] or r["broken"]
            bad = bad or r["bytes_sent"] != r["bytes_received"]
            return 1 if bad else 0
        bad = 0
        for fault in args.only or FAULTS:
            r = beside_a_fault(os.path.join(tmp, fault), fault, args.frames)
            bad += bool(r["missing"] or r["broken"] or r["bytes_sent"] != r["bytes_received"])
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
