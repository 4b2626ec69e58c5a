"""`hanctl demo`: the whole dongle at work on one machine, no hardware, no setup.

Three real parts and a view: a simulated meter (`hanctl simulate`'s Meter and Feed, served
on a free loopback port), the firmware's real main on the MicroPython unix port (`hanctl
run`'s machinery) reading that meter and publishing to an MQTT broker (Debian's mosquitto,
else amqtt in this process; hanctl.broker), and `hanctl monitor` on that broker in this
terminal. The firmware's log goes to a file, whose path is printed. Ctrl-C (or --seconds)
stops the firmware, the meter and the broker, in that order.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import broker, monitor, run, runtime, simulate

TOPIC = "hanport/demo"
# The meter's clock starts this long before a full hour, so the hourly List 3 (and the
# energy topic) shows up within 20 s instead of the first hour.
BEFORE_HOUR = dt.timedelta(seconds=10)
STOP_SECONDS = 5
# Meters that encrypt: the simulated meter each one is, with simulate.EXAMPLE_KEYS.
ENCRYPTING = {"kamstrup-dk": "kamstrup"}


def vectors_dir():
    """The shared test vectors (real captures), for `hanctl bench`: beside the repository
    (../shared/vectors), or where HANPORT_VECTORS says."""
    override = os.environ.get("HANPORT_VECTORS")
    if override:
        return Path(override)
    return runtime.repo_root().parent / "shared" / "vectors"


def register(subparsers):
    p = subparsers.add_parser(
        "demo", help="simulated meter -> firmware on the MicroPython unix port -> MQTT -> monitor"
    )
    p.add_argument(
        "--meter",
        choices=sorted(simulate.CADENCE) + sorted(ENCRYPTING),
        default="kaifa",
        help="kamstrup-dk: a Danish Kamstrup, which encrypts (AES-128-GCM, security 0x30); "
        "the dongle is given its keys, the DLMS Green Book's example keys",
    )
    p.add_argument("--phases", type=int, choices=(1, 3), default=3)
    p.add_argument("--speed", type=float, default=1.0, help="meter time runs N times faster")
    p.add_argument("--broker", choices=broker.CHOICES, help="default: mosquitto if installed")
    p.add_argument("--seconds", type=float, help="exit after this many seconds")
    p.set_defaults(run=run_command)


def demo_config(port, meter):
    """config.json of a dongle with one destination, the demo broker, sharing everything;
    the meter's keys when it encrypts."""
    return {
        "wifi": [],
        "hostname": "hanport-demo",
        "meter": dict(
            {"baud": simulate.BAUD, "parity": meter.line, "invert": False},
            **({"key": meter.keys[0].hex(), "auth_key": meter.keys[1].hex()} if meter.keys else {}),
        ),
        "ntp": None,
        "destinations": [
            {
                "name": "demo",
                "host": "127.0.0.1",
                "port": port,
                "tls": None,
                "topic": TOPIC,
                "share": "full",
                "discovery": False,
                "stats_interval": 10,  # the monitor's diagnostics move while one watches
                "retry_min": 1,
                "retry_max": 5,
            }
        ],
    }


class Firmware:
    """The firmware's main on the unix port, as `hanctl run` starts it (and again when it
    restarts, as a board does into a new config), its output into a log file."""

    def __init__(self, folder, config, uart):
        self.state = Path(folder) / "dongle"
        self.log = Path(folder) / "firmware.log"
        self.config = Path(folder) / "config.json"
        self.config.write_text(json.dumps(config, indent=1))
        self.uart = uart
        self.proc = None
        self.status = None  # the exit status that ended it, once it has ended
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def start(self):
        run.prepare(self.state, self.config)
        # The heap that stands for an ESP32's on the image that runs (runtime.default_heap).
        self.heap = runtime.default_heap()  # MissingInterpreter
        self._argv, self._env = run.argv(self.heap), run.env(self.uart)
        self._out = open(self.log, "wb")  # open while the firmware runs, closed by stop()
        self._launch()
        self._thread.start()
        return self

    def _launch(self):
        # Same process group as the demo: a Ctrl-C in the terminal reaches it too, and
        # nothing it starts can outlive the demo's group unnoticed.
        self.proc = subprocess.Popen(
            self._argv, cwd=self.state, env=self._env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def _supervise(self):
        while True:
            status = self.proc.wait()
            with self._lock:
                if self._stopping or status != run.RESTART:
                    self.status = status
                    return
                self._launch()

    def trouble(self):
        """Why the firmware no longer runs, or None while it does."""
        if self.status is None or self._stopping:
            return None
        return f"the firmware exited (status {self.status}); its log: {self.log}"

    def stop(self):
        with self._lock:
            self._stopping = True
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(STOP_SECONDS)
        self._out.close()


def run_command(args):
    if args.speed <= 0:
        print("hanctl demo: --speed must be positive", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the parts as Ctrl-C does
    folder = Path(tempfile.mkdtemp(prefix="hanport-demo-"))
    parts = []  # stopped in reverse: firmware, meter, broker
    try:
        # Each part is in `parts` before it starts: a Ctrl-C while it starts stops it too.
        mqtt = broker.choose(args.broker, folder)
        parts.append(mqtt)
        mqtt.start()
        now = dt.datetime.now().replace(minute=0, second=0, microsecond=0)
        keys = simulate.EXAMPLE_KEYS if args.meter in ENCRYPTING else None
        meter = simulate.Meter(
            ENCRYPTING.get(args.meter, args.meter),
            args.phases,
            start=now + dt.timedelta(hours=1) - BEFORE_HOUR,
            keys=keys,
        )
        feed = simulate.Feed(meter, args.speed)
        # The meter starts once the firmware's UART has connected: pushed before that, the
        # List 3 due BEFORE_HOUR later would reach no one on a machine slow to boot it.
        go = threading.Event()
        line = simulate.Server(_once(go, feed.chunks()))
        line.connected = go  # set by the first client, and by stop()
        parts.append(line)
        line.start()
        uart = f"tcp://127.0.0.1:{line.port}"
        firmware = Firmware(folder, demo_config(mqtt.port, meter), uart)
        parts.append(firmware)
        firmware.start()
        url = f"mqtt://127.0.0.1:{mqtt.port}"
        notes = [
            f"meter    {args.meter} {args.phases}-phase {meter.line} x{args.speed:g} on {uart}"
            + (", ciphered (AES-128-GCM, 0x30; the dongle has its keys)" if keys else ""),
            f"broker   {mqtt.name} {url}",
            f"firmware {runtime.describe_image()}, heap {firmware.heap}",
            f"firmware log: {firmware.log}",
        ]
        print("\n".join(notes), flush=True)
        return monitor.watch(
            monitor.Broker(url), TOPIC, args.seconds, notes=notes, trouble=firmware.trouble
        )
    except KeyboardInterrupt:
        return 130
    except (broker.BrokerError, runtime.MissingInterpreter, OSError) as err:
        print(f"hanctl demo: {err}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the stopping short and leave a process behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for part in reversed(parts):
            part.stop()
        print(f"hanctl demo: stopped; logs in {folder}", file=sys.stderr)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _once(go, chunks):
    """chunks, from when go (a threading.Event) is set."""
    go.wait()
    yield from chunks
