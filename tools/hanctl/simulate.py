"""`hanctl simulate`: a Norwegian meter on a TCP port (where `hanctl run --uart` connects)
or a serial device, paced at the line's real speed.

A simulated meter keeps a clock and a household's load (electric heating, fridge, water
heater, morning and evening peaks, appliances now and then), integrates it into its energy
registers, and pushes its lists at its own cadence (CADENCE below). --speed N runs the
meter's clock N times faster; a push that finds the line still busy with an earlier frame
is left out, as it would not fit at 2400 baud; the hourly List 3 waits its turn instead.
--replay CAPTURE serves recorded bytes (hex text or raw) instead of a meter, at the speed of
the line they came from: a P1 port's 115200 baud for P1 telegrams, 2400 for HAN frames.
--replay of P1 telegrams with --key serves a Luxembourg meter: each telegram ciphered as
theirs are (encoder.luxembourg).
"""

import collections
import datetime as dt
import math
import random
import socket
import sys
import threading
import time
from decimal import Decimal

from . import decode, encoder, line

BAUD = 2400
# Bits per byte on the line: start, 8 data, parity, stop (8E1), or no parity (8N1).
BITS = {"8E1": 11, "8N1": 10}
# Aidon and Kaifa send 8E1; Kamstrup 8N1 (amsreader-firmware#362: a Kamstrup read at 8E1
# gives garbled frames).
LINE = {"aidon": "8E1", "kaifa": "8E1", "kamstrup": "8N1"}

# When each meter pushes: (push period in ms, seconds past the full hour of List 3).
# Aidon: every 2.5 s (its HAN interface description; amsreader-firmware#994), each fourth
# push a List 2. Kaifa: every 2 s, List 2 at :x0 (captures in the shared vectors: List 1 at
# even seconds, List 3 at hh:00:10 in place of that List 2). Kamstrup has no power-only list:
# List 2 every 10 s, List 3 at hh:00:05 between two of them (captures: 04:00:05, 05:00:05);
# Kamstrup's own papers number these two List 1 and List 2.
CADENCE = {"aidon": (2500, 10), "kaifa": (2000, 10), "kamstrup": (10000, 5)}
LIST2_EVERY_MS = 10000
# A meter that encrypts, for `hanctl demo --meter kamstrup-dk` and `hanctl bench --ciphered`:
# the keys of the DLMS Green Book's AES-GCM examples (DLMS UA 1000-2), public test values.
EXAMPLE_KEYS = (
    bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
    bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"),
)

# (list id, meter id, model) per (meter, phases); the three-phase ones are encoder.py's.
IDENTITY = {
    ("aidon", 3): ("AIDON_V0001", "7359992890497997", "6534"),
    ("aidon", 1): ("AIDON_V0001", "7359992890498004", "6515"),
    ("kaifa", 3): ("KFM_001", "6970631401753985", "MA304H3E"),
    ("kaifa", 1): ("KFM_001", "6970631401753992", "MA105H2E"),
    ("kamstrup", 3): ("Kamstrup_V0001", "5706567202753025", "6841131BN243101040"),
    ("kamstrup", 1): ("Kamstrup_V0001", "5706567271533207", "6861111BN242101040"),
}
MANUFACTURER = {"aidon": "Aidon", "kaifa": "Kaifa", "kamstrup": "Kamstrup"}

# The resolution each meter sends (its list description): (current A, voltage V, energy Wh).
RESOLUTION = {
    "aidon": (Decimal("0.1"), Decimal("0.1"), 10),
    "kaifa": (Decimal("0.001"), Decimal("0.1"), 1),
    "kamstrup": (Decimal("0.01"), Decimal("1"), 10),
}
# How the household's load splits over three phases (an IT net's L1-L2, L2-L3, L3-L1).
PHASE_SHARE = (0.45, 0.33, 0.22)
# Appliances that switch on now and then: (W, typical s): kettle, microwave, cooktop, washer.
APPLIANCES = ((2000, 150), (1100, 240), (2400, 1200), (1900, 3600))
APPLIANCE_EVERY_S = 1800  # one switches on every half hour or so, from 06 to 23
# Frames recorded in Feed.sent: days of a meter at full speed would otherwise fill memory.
SENT_KEPT = 20000

Push = collections.namedtuple("Push", "time list_no values")


def line_seconds(frame, baud=BAUD, bits=BITS["8E1"]):
    return len(frame) * bits / baud


class Meter:
    """A Norwegian meter: its clock, its household's load, the lists it pushes."""

    def __init__(self, kind="aidon", phases=3, start=None, seed=1, keys=None):
        if (kind, phases) not in IDENTITY:
            raise ValueError(f"no {phases}-phase {kind} meter")
        self.keys = keys  # (key, auth key or None) as bytes: a meter that encrypts
        self.counter = 0  # its invocation counter, one up a push
        self.kind = kind
        self.phases = phases
        self.line = LINE[kind]
        self.period_ms, self.list3_at = CADENCE[kind]
        start = start or dt.datetime.now().replace(microsecond=0)
        # Pushes fall on the meter's own grid (every 2 s, 2.5 s or 10 s of its clock).
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        ms = (start - day) // dt.timedelta(milliseconds=1)
        self.clock = day + dt.timedelta(milliseconds=ms - ms % self.period_ms)
        self._grid = self.clock  # the last regular push (List 3 may fall between two)
        self.rng = random.Random(seed)
        self.energy = [109552250.0, 0.0, 130480.0, 15319720.0]  # Wh, varh: A+, A-, R+, R-
        self.volts = [230.0] * phases
        self._appliance, self._appliance_until = 0, self.clock

    def power(self, t, seconds):
        """The household's load in W at meter time t, `seconds` after the last push."""
        h = t.hour + t.minute / 60 + t.second / 3600
        heating = 1100 + 400 * math.cos((h - 5) / 24 * 2 * math.pi)  # coldest before dawn
        peaks = 1300 * math.exp(-((h - 7.5) ** 2) / 1.5) + 2300 * math.exp(-((h - 18) ** 2) / 2)
        fridge = 110 if t.minute % 30 < 12 else 0
        boiler = 2000 if t.hour in (5, 6, 17, 22) and t.minute < 25 else 0  # water heater
        awake = 6 <= t.hour < 23
        chance = seconds / APPLIANCE_EVERY_S
        if awake and t >= self._appliance_until and self.rng.random() < chance:
            watts, lasts = self.rng.choice(APPLIANCES)
            self._appliance = watts
            self._appliance_until = t + dt.timedelta(seconds=lasts * self.rng.uniform(0.5, 1.5))
        appliance = self._appliance if t < self._appliance_until else 0
        noise = 1 + 0.04 * self.rng.uniform(-1, 1)
        return int((heating + peaks + fridge + boiler + appliance) * noise)

    def _values(self, t, list_no, p):
        q_import, q_export = p // 12, 150 + self.rng.randrange(40)
        amp, volt, wh = RESOLUTION[self.kind]
        share = PHASE_SHARE if self.phases == 3 else (1.0,)
        for i in range(self.phases):  # the grid's voltage wanders a little, per phase
            self.volts[i] = min(240.0, max(222.0, self.volts[i] + self.rng.uniform(-0.6, 0.6)))
        voltage = tuple(_step(v, volt) for v in self.volts)
        current = tuple(_step(p * s / float(v), amp) for s, v in zip(share, voltage, strict=True))
        stamp = t
        if self.kind == "aidon" and list_no == 3:
            stamp = t.replace(second=0)  # Aidon's clock register: the registers' full hour
        return {
            "time": (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second),
            "p_import": p,
            "p_export": 0,
            "q_import": q_import,
            "q_export": q_export,
            "current": current,
            "voltage": voltage,
            "energy": tuple(int(e) - int(e) % wh for e in self.energy),
        }

    def pushes(self):
        """Each push of the meter from its clock on, forever: the clock advances with them."""
        while True:
            last = self.clock
            regular = self._grid + dt.timedelta(milliseconds=self.period_ms)
            hourly = regular.replace(minute=0, second=self.list3_at, microsecond=0)
            if last < hourly < regular:  # Kamstrup's List 3 falls between two pushes
                t, list_no = hourly, 3
            else:
                t = self._grid = regular
                midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
                ms = (t - midnight) // dt.timedelta(milliseconds=1)
                list_no = 3 if t == hourly else 2 if ms % LIST2_EVERY_MS == 0 else 1
            seconds = (t - last).total_seconds()
            power = self.power(t, seconds)
            hours = seconds / 3600
            self.energy[0] += power * hours
            self.energy[2] += power / 12 * hours
            self.energy[3] += 170 * hours
            self.clock = t
            yield Push(t, list_no, self._values(t, list_no, power))

    def frame(self, push):
        """(frame bytes, the reading it carries: canonical field -> exact value)."""
        ids = IDENTITY[(self.kind, self.phases)]
        frame = BUILD[self.kind](push.list_no, push.values, self.phases, ids)
        if self.keys:  # as a Danish or Austrian meter sends it: the APDU ciphered
            self.counter += 1
            title = self.kind[:3].upper().encode() + b"\x00\x00\x00\x01\x02"
            frame = encoder.sealed_hdlc(frame, *self.keys, self.counter, title)
        return frame, sent_reading(self.kind, push.list_no, push.values, ids)


def _step(x, resolution):
    """x rounded to the meter's resolution, as the exact decimal it sends."""
    return (Decimal(round(x / float(resolution))) * resolution).normalize()


def sent_reading(kind, list_no, v, ids):
    """The canonical reading of a push (README: "The canonical reading"), the manufacturer
    aside: no meter sends that field, the decoder names it from the list id."""
    r = {}
    if list_no >= 2:
        r["meter_id"], r["meter_model"], r["list_id"] = ids[1], ids[2], ids[0]
    if kind != "aidon" or list_no == 3:  # Aidon's lists 1 and 2 carry no time
        r["meter_time"] = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*v["time"])
    r["active_power_import"] = v["p_import"]
    if list_no >= 2:
        r["active_power_export"] = v["p_export"]
        r["reactive_power_import"] = v["q_import"]
        r["reactive_power_export"] = v["q_export"]
        for name in ("current", "voltage"):
            for i, x in enumerate(v[name]):
                r[f"{name}_l{i + 1}"] = x
    if list_no == 3:
        names = ("active_energy_import", "active_energy_export")
        names += ("reactive_energy_import", "reactive_energy_export")
        for name, wh in zip(names, v["energy"], strict=True):
            r[name] = Decimal(wh) / 1000
    return r


# -- The lists, one- or three-phase, built from encoder.py's parts ------------------------
# Three-phase they are byte for byte encoder.aidon/kaifa/kamstrup (test_simulate checks);
# one-phase meters leave out L2 and L3, as their list descriptions do.


def aidon(list_no, m, phases, ids):
    reg = encoder.register
    regs = [reg("1.0.1.7.0.255", "u32", m["p_import"], 0, 27)]
    if list_no >= 2:
        codes = ("1.1.0.2.129.255", "0.0.96.1.0.255", "0.0.96.1.7.255")
        regs = [("struct", [("obis", c), ("vstr", s)]) for c, s in zip(codes, ids, strict=True)]
        regs += [reg("1.0.1.7.0.255", "u32", m["p_import"], 0, 27)]
        regs += [reg(f"1.0.{c}.7.0.255", "u32", m[k], 0, u) for c, k, u in _AIDON_POWER]
        for i in range(phases):
            regs.append(reg(f"1.0.{31 + 20 * i}.7.0.255", "i16", m["current"][i] * 10, -1, 33))
        for i in range(phases):
            regs.append(reg(f"1.0.{32 + 20 * i}.7.0.255", "u16", m["voltage"][i] * 10, -1, 35))
    if list_no == 3:
        regs.append(("struct", [("obis", "0.0.1.0.0.255"), ("datetime", m["time"])]))
        for c, unit, wh in zip((1, 2, 3, 4), (30, 30, 32, 32), m["energy"], strict=True):
            regs.append(reg(f"1.0.{c}.8.0.255", "u32", wh // 10, 1, unit))
    return encoder.hdlc(encoder.LLC + encoder.notification(("array", _ints(regs))))


_AIDON_POWER = ((2, "p_export", 27), (3, "q_import", 29), (4, "q_export", 29))


def kaifa(list_no, m, phases, ids):
    items = [("u32", m["p_import"])]
    if list_no >= 2:
        items = [("octets", s.encode()) for s in ids]
        items += [("u32", m[k]) for k in ("p_import", "p_export", "q_import", "q_export")]
        items += [("u32", c * 1000) for c in m["current"][:phases]]  # mA
        items += [("u32", u * 10) for u in m["voltage"][:phases]]  # 0.1 V
    if list_no == 3:
        items.append(("octets", encoder.date_time(*m["time"])))
        items += [("u32", wh) for wh in m["energy"]]
    apdu = encoder.notification(("struct", _ints(items)), time=m["time"], kaifa_tag=True)
    return encoder.hdlc(encoder.LLC + apdu, dst=b"\x01", src=b"\x02\x01", control=0x10)


def kamstrup(list_no, m, phases, ids):
    items = [("vstr", ids[0])]
    pairs = [("1.1.1.7.0.255", "u32", m["p_import"])]
    if list_no >= 2:
        items += [("obis", "1.1.0.0.5.255"), ("vstr", ids[1])]
        items += [("obis", "1.1.96.1.1.255"), ("vstr", ids[2])]
        pairs += [(f"1.1.{c}.7.0.255", "u32", m[k]) for c, k in _KAMSTRUP_POWER]
        # A one-phase Kamstrup keeps the three-phase layout, null-data for L2 and L3, and
        # sends its voltage as a long-unsigned (kamstrup_no_amsreader_frames, 6861111).
        volt = "u32" if phases == 3 else "u16"
        for c, kind, key, scale in ((31, "u32", "current", 100), (32, volt, "voltage", 1)):
            for i in range(3):
                code = f"1.1.{c + 20 * i}.7.0.255"
                pairs.append((code, kind, m[key][i] * scale) if i < phases else None)
    for pair in pairs:
        items += [("obis", pair[0]), (pair[1], pair[2])] if pair else [("null", None)] * 2
    if list_no == 3:
        items += [("obis", "0.1.1.0.0.255"), ("datetime", m["time"])]
        for c, wh in zip((1, 2, 3, 4), m["energy"], strict=True):
            items += [("obis", f"1.1.{c}.8.0.255"), ("u32", wh // 10)]
    apdu = encoder.notification(("struct", _ints(items)), invoke=0, time=m["time"])
    return encoder.hdlc(encoder.LLC + apdu, dst=b"\x2b", src=b"\x21")


_KAMSTRUP_POWER = ((2, "p_export"), (3, "q_import"), (4, "q_export"))
BUILD = {"aidon": aidon, "kaifa": kaifa, "kamstrup": kamstrup}


def _ints(items):
    """A-XDR items with their exact decimals (already scaled to whole units) as ints."""
    out = []
    for kind, v in items:
        if kind in ("struct", "array"):
            v = _ints(v)
        elif isinstance(v, Decimal):
            if v != v.to_integral_value():
                raise ValueError(f"{v} is finer than the meter sends")
            v = int(v)
        out.append((kind, v))
    return out


class Feed:
    """A meter's pushes paced over wall time as the line carries them at `speed`.

    chunks() yields (wall seconds to wait after sending, bytes), as Server wants them.
    sent records (meter time, list number, reading) of each frame put on the line;
    skipped counts the pushes left out because the line was still busy.
    """

    def __init__(self, meter, speed=1.0, baud=BAUD):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.meter = meter
        self.speed = speed
        self.baud = baud
        self.bits = BITS[meter.line]
        self.sent = collections.deque(maxlen=SENT_KEPT)
        self.skipped = 0

    def chunks(self):
        start = self.meter.clock
        cursor = 0.0  # wall seconds of line time handed out so far
        for push in self.meter.pushes():
            due = (push.time - start).total_seconds() / self.speed
            if cursor > due:  # the line is still busy with an earlier frame
                hour = 3600 / self.speed
                # List 3 waits its turn, unless the line is an hour behind.
                if push.list_no != 3 or cursor - due > hour:
                    self.skipped += 1
                    continue
            elif due > cursor:
                yield due - cursor, b""
                cursor = due
            frame, reading = self.meter.frame(push)
            busy = line_seconds(frame, self.baud, self.bits)
            self.sent.append((push.time, push.list_no, reading))
            yield busy, frame
            cursor += busy


class Server:
    """Serves a byte stream to every client that connects to a TCP port, in a thread.

    line: the meter's own line setting (baud, "8E1"/"8N1", inverted), or None for a
    transparent cable (each client gets the bytes as sent, whatever its setting). With a
    line, each client gets what its UART would read at the setting it last announced
    (line.receive): the HAN link is one-way, meter to dongle, so the unused dongle-to-meter
    direction of the TCP "UART" carries the receiver's setting, one ASCII line each time
    the UART is configured: "line 2400 8E1\n", "line 115200 8N1 inverted\n" (hal_unix.Uart).
    A client that announced nothing reads the meter's own setting.

    unplug() and plug(): the cable pulled and plugged back. The meter keeps pushing; what
    it sends meanwhile reaches no one (counted in `unplugged_bytes`), and the TCP
    connection stays up, as a UART's wire has no connection to lose.

    delivered counts the chunks (frames) that reached a client, by the setting its UART
    read them at (None without a line); unplugged_bytes what the pulled cable lost.
    """

    def __init__(self, chunks, host="127.0.0.1", port=0, line=None):
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self.chunks = chunks
        self.line = line
        self.clients = []
        self.settings = {}  # client socket -> its announced setting
        self.announced = []  # (time.monotonic(), setting) of every announcement
        self.connected = threading.Event()  # set when the first client arrives
        self.stopped = threading.Event()
        self.plugged = threading.Event()
        self.plugged.set()
        self.sent = 0
        self.unplugged_bytes = 0
        self.delivered = collections.Counter()
        self.errors = {}  # framing and parity errors the clients' UARTs would have seen
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def unplug(self):
        self.plugged.clear()

    def plug(self):
        self.plugged.set()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._listen, args=(conn,), daemon=True).start()
            self.clients.append(conn)
            self.connected.set()

    def _listen(self, conn):
        """The client's announcements of its UART setting; read (and dropped) always, so
        a client that writes them never fills its socket buffer."""
        pending = b""
        while True:
            try:
                got = conn.recv(256)
            except OSError:
                return
            if not got:
                return
            pending = (pending + got)[-1024:]  # an announcement is ~25 bytes
            while b"\n" in pending:
                text, pending = pending.split(b"\n", 1)
                words = text.decode("ascii", "replace").split(None, 1)
                if len(words) == 2 and words[0] == "line":
                    setting = parse_line(words[1])  # a setting we cannot read: ignored
                    if setting is not None:
                        self.settings[conn] = setting
                        self.announced.append((time.monotonic(), setting))

    def _serve(self):
        for wait, data in self.chunks:
            if self.stopped.is_set():
                return
            if data and not self.plugged.is_set():
                self.unplugged_bytes += len(data)
            elif data:
                for c in list(self.clients):
                    out, setting = data, None
                    if self.line is not None:
                        setting = self.settings.get(c, self.line)
                        out = line.receive(data, self.line, setting, self.errors)
                    try:
                        if out:
                            c.sendall(out)
                        self.delivered[setting] += 1
                    except OSError:
                        self.clients.remove(c)
                self.sent += len(data)
            if wait:
                time.sleep(wait)

    def stop(self):
        self.stopped.set()
        self.connected.set()  # a replay still waiting for its first client ends too
        for c in self.clients:
            c.close()
        try:  # wakes the thread blocked in accept(), which close() alone does not
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected: nothing to wake
        self.sock.close()


def parse_line(text):
    try:
        return line.parse(text)
    except ValueError:
        return None


# A P1 port (DSMR; Sweden's HAN port) prints ASCII telegrams, each from a "/", at 115200
# 8N1 on an inverted line; a Norwegian HAN port sends HDLC or M-Bus frames at 2400 baud.
P1_LINE = (115200, "8N1", True)
# Replayed bytes go out in pieces of this much line time: a pause between two pieces must
# stay well under the 100 ms that ends a frame on the dongle (meterlink._IDLE_MS).
PIECE_S = 0.02


def capture_line(data, meter="aidon"):
    """The line setting a capture was recorded from: a P1 port's when its bytes are P1
    telegrams (text, and a "/" where the first whole telegram starts), else `meter`'s HAN
    line at 2400 baud."""
    glo = data.find(b"\xdb\x08")
    if 0 <= glo < 256 and data[glo + 10 : glo + 11] == b"\x82":  # Luxembourg's ciphered P1
        return P1_LINE
    start = data.find(b"/")
    if start >= 0 and (start == 0 or data[start - 1] == 0x0A):
        head = data[: start + 64]  # a partial telegram before it, then the meter's name
        if all(32 <= c < 127 or c in (0x0D, 0x0A) for c in head):
            return P1_LINE
    return (BAUD, LINE[meter], False)


def sealed_telegrams(data, key, auth_key=None):
    """A P1 capture's telegrams, each ciphered as Luxembourg's meters send it (encoder.
    luxembourg(): their own auth key unless auth_key is given), the invocation counter one
    up each; bytes between telegrams left out. ValueError when it holds no telegram."""
    out, pos = [], 0
    while True:
        start = data.find(b"/", pos)
        bang = data.find(b"\n!", start) if start >= 0 else -1
        if bang < 0:
            break
        end = data.find(b"\n", bang + 2)
        end = len(data) if end < 0 else end + 1
        ak = auth_key or encoder.LUXEMBOURG_AUTH_KEY
        out.append(encoder.luxembourg(data[start:end], key, ak, counter=len(out) + 1))
        pos = end
    if not out:
        raise ValueError("--key with --replay ciphers P1 telegrams; this capture holds none")
    return b"".join(out)


def replay_chunks(data, setting, speed=1.0, go=None):
    """A recorded capture at the speed of its line, setting (baud, "8E1"/"8N1", inverted),
    compressed by speed, then silence; it starts when `go` (a threading.Event) is set, if
    one is given. Paced at 2400 baud, a P1 capture's telegrams came in 64-byte bursts
    0.27 s apart, and the dongle counted 6360 of 6592 bytes as noise."""
    if go is not None:
        go.wait()
    baud, fmt, _ = setting
    step = max(1, int(PIECE_S * baud / BITS[fmt]))
    for i in range(0, len(data), step):
        piece = data[i : i + step]
        yield line_seconds(piece, baud, BITS[fmt]) / speed, piece
    while True:
        yield 1.0, b""


def register(subparsers):
    p = subparsers.add_parser("simulate", help="serve a simulated or recorded meter on TCP")
    p.add_argument("--meter", choices=sorted(CADENCE), default="aidon")
    p.add_argument("--phases", type=int, choices=(1, 3), default=3)
    p.add_argument("--to", default="tcp://127.0.0.1:2400", help="tcp://HOST:PORT or serial:DEV")
    p.add_argument("--speed", type=float, default=1.0, help="meter time runs N times faster")
    p.add_argument(
        "--key",
        type=decode.key_arg,
        metavar="HEX",
        help="a meter that encrypts: its pushes ciphered with this AES-128 key (32 hex "
        "digits); with --replay of P1 telegrams, each sent as Luxembourg's meters do",
    )
    p.add_argument(
        "--auth-key",
        type=decode.key_arg,
        metavar="HEX",
        help="with --key: authenticated too, with this key (a 12-byte tag on each push)",
    )
    p.add_argument(
        "--replay",
        help="serve this capture (hex text or raw bytes) instead, at the speed of the line it "
        "came from: 115200 baud for P1 telegrams, 2400 for HAN frames (or --line's)",
    )
    p.add_argument(
        "--line",
        help="the meter's line, \"meter\" for its own (a capture's: found from its bytes) or "
        'one like "115200 8N1 inverted"; over TCP each client then reads what a UART at the '
        "setting it announces would (hanctl run's firmware announces its own); default: "
        "the bytes as sent",
    )
    p.set_defaults(run=run_command)


def run_command(args):
    if not args.to.startswith(("serial:", "tcp://")) or args.speed <= 0:
        print(
            "hanctl simulate: use --to tcp://HOST:PORT or serial:DEV, --speed > 0", file=sys.stderr
        )
        return 2
    if args.auth_key and not args.key:
        print("hanctl simulate: --auth-key needs --key", file=sys.stderr)
        return 2
    to_serial = args.to.startswith("serial:")
    go = None if to_serial else threading.Event()
    try:
        # The meter's own line: the one --line names, else a simulated meter's HAN line, or
        # the line a capture's bytes come from (P1 telegrams or HAN frames).
        meter_line = (BAUD, LINE[args.meter], False)
        if args.line and args.line != "meter":
            meter_line = line.parse(args.line)
        if args.replay:
            with open(args.replay, "rb") as f:
                capture = decode.parse_capture(f.read())
            if args.key:  # a Luxembourg meter: its P1 telegrams ciphered
                ak = args.auth_key and bytes.fromhex(args.auth_key)
                capture = sealed_telegrams(capture, bytes.fromhex(args.key), ak)
            if not args.line or args.line == "meter":
                meter_line = capture_line(capture, args.meter)
            # Over TCP a capture starts when someone listens, so its first frame is not lost.
            chunks = replay_chunks(capture, meter_line, args.speed, go)
        else:
            keys = None
            if args.key:
                keys = bytes.fromhex(args.key), args.auth_key and bytes.fromhex(args.auth_key)
            chunks = Feed(Meter(args.meter, args.phases, keys=keys), args.speed).chunks()
        if to_serial:
            baud, fmt, _ = meter_line  # a P1 line's inversion is the cable's to make
            with serial_port(args.to[7:], fmt, baud) as port:
                print(f"{args.to} {baud} {fmt}", flush=True)
                for wait, data in chunks:
                    port.write(data)
                    time.sleep(wait)
            return 0  # a serial line is never done; only Ctrl-C ends this
        host, port = args.to[6:].rsplit(":", 1)
        server = Server(chunks, host, int(port), line=meter_line if args.line else None)
        server.connected = go
        server.start()
        print(f"tcp://{host}:{server.port}", flush=True)
        try:
            while True:
                time.sleep(1)
        finally:
            server.stop()
    except (OSError, ValueError) as err:
        print(f"hanctl simulate: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def serial_port(device, fmt, baud=BAUD):
    """The serial device opened at the meter's line setting: baud, 8E1 or 8N1."""
    import serial  # pyserial: only this path needs it

    parity = serial.PARITY_EVEN if fmt == "8E1" else serial.PARITY_NONE
    return serial.Serial(device, baud, bytesize=8, parity=parity, stopbits=1)
