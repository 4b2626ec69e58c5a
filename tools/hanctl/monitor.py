"""`hanctl monitor`: a live view of what one destination receives from the dongle.

Subscribes to <T>/reading, <T>/energy, <T>/status and <T>/stats on the broker (T is the
destination's base topic). On a terminal one screen is redrawn in place (ANSI escapes):
power, per-phase currents and voltages, the hourly energy registers, the dongle's
diagnostics and a chart of the power over the last minutes. Piped, it prints one plain
line per message instead, so scripts and tests can read it.

Numbers are shown as the dongle sent them: payloads are parsed with Decimal, never float,
so 233.40 stays 233.40 and 109552.25 is not rounded.
"""

import json
import os
import queue
import signal
import sys
import time
from collections import deque
from decimal import Decimal
from urllib.parse import urlsplit

TOPICS = ("reading", "energy", "status", "stats")
PASSWORD_ENV = "HANPORT_MQTT_PASSWORD"
CHART_SECONDS = 300  # the chart's span: five minutes of readings
CHART_ROWS = 4
BLOCKS = " ▁▂▃▄▅▆▇█"  # eighths of a character cell, bottom up
REDRAW_SECONDS = 1.0  # "last frame 3 s ago" must move even when nothing arrives

# (reading field, label, unit) in the order a line shows them.
POWER = (
    ("active_power_import", "P+", "W"),
    ("active_power_export", "P-", "W"),
    ("reactive_power_import", "Q+", "var"),
    ("reactive_power_export", "Q-", "var"),
)
PHASES = tuple(
    (f"{q}_l{i}", f"{s}{i}", u)
    for q, s, u in (("current", "I", "A"), ("voltage", "U", "V"))
    for i in (1, 2, 3)
)
ENERGY = (
    ("active_energy_import", "A+", "kWh"),
    ("active_energy_export", "A-", "kWh"),
    ("reactive_energy_import", "R+", "kvarh"),
    ("reactive_energy_export", "R-", "kvarh"),
)
_LABELLED = {f for f, _, _ in POWER + PHASES + ENERGY}
_IDENTITY = ("meter_manufacturer", "meter_model", "meter_id", "list_id", "meter_time")


class View:
    """What the monitor knows: the latest message of each topic and the power history."""

    def __init__(self, broker, topic, notes=()):
        self.broker = broker  # for the header, without user or password
        self.topic = topic
        self.notes = list(notes)
        self.fields = {}  # the latest value of each reading field (a List 1 has power only)
        self.reading_at = None
        self.readings = 0
        self.energy = None
        self.status = None
        self.stats = None
        self.stats_at = None
        self.unreadable = 0
        self.connection = "connecting"
        self.history = deque()  # (arrival, monotonic s; active power import, W)

    def take(self, kind, payload, now):
        """One message of topic <T>/kind; returns it parsed (None when unreadable)."""
        if kind == "status":
            self.status = payload.decode("utf-8", "replace")
            return self.status
        try:
            message = json.loads(payload, parse_float=Decimal)
        except ValueError:
            self.unreadable += 1
            return None
        if not isinstance(message, dict):
            self.unreadable += 1
            return None
        if kind == "reading":
            self.fields.update(message)
            self.reading_at = now
            self.readings += 1
            power = message.get("active_power_import")
            if power is not None:
                self.history.append((now, power))
                while self.history and self.history[0][0] < now - CHART_SECONDS:
                    self.history.popleft()
        elif kind == "energy":
            self.energy = message
        elif kind == "stats":
            self.stats, self.stats_at = message, now
        return message


# -- Rendering: pure functions of the view, so tests can call them ------------------------


def quantities(message, table):
    """'P+ 1234 W  P- 0 W' for the fields of table that message carries."""
    return "  ".join(f"{label} {message[f]} {unit}" for f, label, unit in table if f in message)


def plain_line(kind, message):
    """The line printed for one message when stdout is not a terminal."""
    if message is None:
        return f"{kind} (unreadable)"
    if kind == "status":
        return f"status {message}"
    if kind == "stats":
        return "stats " + diagnostics(message)
    table = ENERGY if kind == "energy" else POWER + PHASES + ENERGY
    parts = [message.get("meter_time", "-"), quantities(message, table)]
    parts += [f"{k} {v}" for k, v in message.items() if k not in _LABELLED | set(_IDENTITY)]
    return " ".join([kind] + [p for p in parts if p])


def diagnostics(stats):
    """The dongle's stats message in one line: what arrives, what is rejected, its health."""
    frames = stats.get("frames") or {}
    rejected = stats.get("rejected") or {}
    dest = stats.get("destination") or {}
    parts = [
        "frames " + str(sum(v for v in frames.values() if isinstance(v, int))),
        "rejected " + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items()) if v) or "none"),
        f"bytes {stats.get('bytes_received', '-')}",
        f"last frame {_age(stats.get('last_frame_age_s'))}",
        f"free heap {stats.get('free_heap', '-')}",
        f"reconnects {dest.get('reconnects', '-')}",
    ]
    return "  ".join(parts)


def _age(seconds):
    return "never" if seconds is None else f"{seconds} s ago"


def columns(history, now, span=CHART_SECONDS, width=60):
    """The mean power in each of width equal slices of the last span seconds (None: no
    reading in that slice), oldest first."""
    sums = [0] * width
    counts = [0] * width
    for t, watts in history:
        i = int((t - (now - span)) * width / span)
        if 0 <= i <= width:
            i = min(i, width - 1)  # a reading at `now` belongs to the last slice
            sums[i] += watts
            counts[i] += 1
    return [s / c if c else None for s, c in zip(sums, counts, strict=True)]


def chart(values, rows=CHART_ROWS, top=None):
    """Block characters, top row first, for values from 0 to top (default: their max);
    a slice with no reading stays blank, one with a reading shows at least an eighth."""
    known = [v for v in values if v is not None]
    top = top or max(known, default=0) or 1
    eighths = []
    for v in values:
        if v is None:
            eighths.append(0)
        else:
            eighths.append(max(1, round(min(v, top) / top * rows * 8)))
    lines = []
    for row in range(rows - 1, -1, -1):
        lines.append("".join(BLOCKS[min(8, max(0, e - row * 8))] for e in eighths))
    return lines


def render(view, now, width=80):
    """The screen for a terminal, as lines no wider than width."""
    f = view.fields
    meter = " ".join(str(f[k]) for k in ("meter_manufacturer", "meter_model", "meter_id") if k in f)
    lines = [
        f"hanport monitor   {view.broker}   {view.topic}   "
        f"broker: {view.connection}   dongle: {view.status or '?'}",
        "",
        f"meter    {meter or '(waiting for a List 2)'}",
        f"time     {f.get('meter_time', '-')}   "
        f"last reading {_since(view.reading_at, now)}   readings {view.readings}",
        f"power    {quantities(f, POWER) or '-'}",
    ]
    for q, unit in (("current", "A"), ("voltage", "V")):
        cells = [f"L{i} {f[q + f'_l{i}']} {unit}" for i in (1, 2, 3) if q + f"_l{i}" in f]
        lines.append(f"{q:<9}" + ("   ".join(cells) or "-"))
    if view.energy:
        lines.append(
            f"energy   {quantities(view.energy, ENERGY)}   at {view.energy.get('meter_time', '-')}"
        )
    else:
        lines.append("energy   - (the meter sends its registers once an hour)")
    lines.append("")
    chart_width = max(10, width - 10)
    values = columns(view.history, now, CHART_SECONDS, chart_width)
    top = max((v for v in values if v is not None), default=None)
    minutes = CHART_SECONDS // 60
    lines.append(f"power, last {minutes} min" + (f" (top {round(top)} W)" if top else ""))
    for i, row in enumerate(chart(values, CHART_ROWS, top)):
        label = f"{round(top)} W" if top and i == 0 else ("0 W" if i == CHART_ROWS - 1 else "")
        lines.append(f"{label:>8} {row}")
    lines.append("")
    if view.stats:
        lines.append("dongle   " + diagnostics(view.stats))
        s = view.stats
        lines.append(
            f"         uptime {s.get('uptime_s', '-')} s   line {s.get('line', '-')}   "
            f"noise bytes {s.get('noise_bytes', '-')}   stats {_since(view.stats_at, now)}"
        )
    else:
        lines.append("dongle   (no stats yet)")
    if view.unreadable:
        lines.append(f"unreadable messages: {view.unreadable}")
    lines += view.notes
    lines.append("Ctrl-C to quit")
    return [line[:width] for line in lines]


def _since(then, now):
    return "never" if then is None else f"{max(0, int(now - then))} s ago"


# -- The MQTT side and the terminal --------------------------------------------------------


class Broker:
    """Where to connect: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)."""

    def __init__(self, url, user=None, password=None, cafile=None):
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            # The URL itself is not echoed: it may hold a password.
            raise ValueError("--broker must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        self.port = parts.port or (8883 if self.tls else 1883)
        self.user = user or parts.username
        self.password = password or parts.password
        self.cafile = cafile
        # What the monitor shows: never the user's password (nor the user).
        self.text = f"{parts.scheme}://{self.host}:{self.port}"


def connect(broker, topic, messages):
    """A paho client, looping in its own thread, that puts (kind, payload, arrival) for
    each message of topic's four subtopics, and ("broker", state, arrival), on messages."""
    import paho.mqtt.client as paho

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=f"hanctl-monitor-{os.getpid()}"
    )
    if broker.user:
        client.username_pw_set(broker.user, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.cafile)

    # The CONNACK's refusal, until the close that follows it. A broker closes the connection
    # as soon as it has refused it, and paho then reports a disconnect of its own, "Unspecified
    # error", which would take the refusal's place on the screen: an owner with a wrong
    # password must read "refused (Not authorized)", however the two events are timed.
    refusal = []

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            refusal[:] = [reason]
            messages.put(("broker", f"refused ({reason})", time.monotonic()))
            return
        refusal.clear()
        client.subscribe([(f"{topic}/{kind}", 1) for kind in TOPICS])

    def on_subscribe(client, userdata, mid, reasons, properties):
        # "connected" once the broker has taken the subscription: from then on nothing
        # published to the topic passes the monitor by (tests wait for this line).
        failed = [r for r in reasons if r.is_failure]
        state = f"subscription refused ({failed[0]})" if failed else "connected"
        messages.put(("broker", state, time.monotonic()))

    def on_disconnect(client, userdata, flags, reason, properties):
        if refusal:  # the close of a refused connection: "refused" stays what is shown
            refusal.clear()
            return
        messages.put(("broker", f"disconnected ({reason})", time.monotonic()))

    def on_message(client, userdata, msg):
        kind = msg.topic[len(topic) + 1 :]
        if kind in TOPICS:
            messages.put((kind, bytes(msg.payload), time.monotonic()))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(1, 10)
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    return client


# Enter the alternate screen and hide the cursor; the reverse restores the user's terminal.
_ENTER = "\x1b[?1049h\x1b[?25l"
_LEAVE = "\x1b[?25h\x1b[?1049l"


def watch(broker, topic, seconds=None, out=None, notes=(), trouble=None):
    """Show topic's messages until seconds pass (None: until Ctrl-C); the exit status.
    trouble, if given, is asked once a second: a text it returns ends the view (status 1)."""
    out = out or sys.stdout
    live = out.isatty()
    view = View(broker.text, topic, notes)
    messages = queue.Queue()
    client = connect(broker, topic, messages)
    deadline = None if seconds is None else time.monotonic() + seconds
    if live:
        out.write(_ENTER)
    else:
        print(f"hanctl monitor: {broker.text} {topic}", file=sys.stderr, flush=True)
    problem = None
    try:
        tick = 0.0  # when the once-a-second work is due: redraw, ask about trouble
        while deadline is None or time.monotonic() < deadline:
            wait = REDRAW_SECONDS if deadline is None else deadline - time.monotonic()
            try:
                kind, payload, at = messages.get(timeout=max(0.0, min(REDRAW_SECONDS, wait)))
            except queue.Empty:
                kind = None
            if kind == "broker":
                view.connection = payload
                if not live:
                    print(f"hanctl monitor: broker {payload}", file=sys.stderr, flush=True)
            elif kind is not None:
                message = view.take(kind, payload, at)
                if not live:
                    print(plain_line(kind, message), file=out, flush=True)
            now = time.monotonic()
            second = now >= tick
            if second:
                tick = now + REDRAW_SECONDS
                problem = trouble() if trouble else None
                if problem:
                    return 1
            if live and (kind is not None or second):
                draw(out, view, now)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        client.disconnect()  # first: it wakes the network thread, which loop_stop() joins
        client.loop_stop()
        if live:
            out.write(_LEAVE)
            out.flush()
        if problem:  # after the alternate screen is gone, so that it stays in sight
            print(f"hanctl monitor: {problem}", file=sys.stderr, flush=True)


def draw(out, view, now):
    """One screen, from the top left, each line cleared to its end, the rest below too."""
    cols, rows = os.get_terminal_size(out.fileno())
    # A terminal that reports no size (a bare pty, some CI) gets the classic one.
    lines = render(view, now, cols or 80)[: rows or 24]
    out.write("\x1b[H" + "\x1b[K\n".join(lines) + "\x1b[K\x1b[J")
    out.flush()


def register(subparsers):
    p = subparsers.add_parser(
        "monitor", help="live view of a destination's readings and the dongle's diagnostics"
    )
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://HOST:PORT or mqtts://")
    p.add_argument(
        "--topic", required=True, help="the destination's base topic, e.g. hanport/1a2b3c"
    )
    p.add_argument("--user", help=f"MQTT user (the password comes from ${PASSWORD_ENV})")
    p.add_argument("--cafile", help="CA certificate for mqtts://")
    p.add_argument("--seconds", type=float, help="exit after this many seconds")
    p.set_defaults(run=run_command)


def run_command(args):
    try:
        broker = Broker(args.broker, args.user, os.environ.get(PASSWORD_ENV), args.cafile)
    except ValueError as err:
        print(f"hanctl monitor: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # a kill restores the terminal too
    try:
        return watch(broker, args.topic.rstrip("/"), args.seconds)
    except BrokenPipeError:  # piped into `head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt
