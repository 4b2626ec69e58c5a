"""`hanctl capture`: record the raw bytes of a HAN port, to find out why a dongle sees no
data, or to contribute a capture of a meter hanport does not read yet.

The bytes come from a USB M-Bus adapter (a serial port), from a TCP stream: the one
`hanctl simulate` serves, or a ser2net-style bridge in raw mode (`tcp://HOST:PORT`), or
from a dongle itself: a destination with `"raw": true` publishes the meter line's bytes on
`<topic>/raw` (`mqtt://HOST[:PORT]/TOPIC`).
The file holds exactly the bytes received, the format `hanctl decode` and
`hanctl simulate --replay` read. While recording, the firmware's own decoder runs over the
bytes, so the progress lines and the summary tell "no bytes" from "bytes that are no
frames" from "frames that are no readings" as the dongle's counters do.
"""

import queue
import socket
import sys
import time
from urllib.parse import unquote, urlsplit

from . import runtime

CHUNK = 256
# A read returns after this long with what arrived by then (about 110 bytes at 2400 baud),
# so --seconds, the progress lines and Ctrl-C are served; a read that got nothing means the
# line was quiet this long, which ends a frame, as on the dongle.
READ_TIMEOUT_S = 0.5
PROGRESS_S = 5.0
PARITIES = ("E", "N")  # pyserial's PARITY_EVEN and PARITY_NONE are these letters


class Tally:
    """The firmware decoder over the captured bytes, for the counts an owner reads."""

    def __init__(self):
        runtime.use_firmware_in_cpython()
        from decoder import Decoder  # firmware/decoder.py

        self.bytes = 0
        self.decoder = Decoder(lambda reading: None)  # it counts them; the file is the output

    def feed(self, chunk):
        self.bytes += len(chunk)
        self.decoder.feed(chunk)

    def quiet(self):
        self.decoder.idle()

    def end(self):
        self.decoder.end()

    @property
    def frames(self):
        return sum(self.decoder.assembler.frames)

    def line(self):
        d = self.decoder
        text = f"{self.bytes} bytes, {self.frames} frames, {d.readings} readings"
        rejected = {k: n for k, n in d.errors.items() if n}
        if rejected:
            text += " (" + ", ".join(f"{k} {n}" for k, n in sorted(rejected.items())) + ")"
        return text

    def hint(self):
        """What to look at next, or None when readings came through."""
        if self.bytes == 0:
            return "no bytes: check the cable, the M-Bus level shifter and the baud"
        if self.frames == 0:
            return (
                "bytes but no frame: check the baud and parity (2400 8E1 for HAN M-Bus, "
                "115200 8N1 for P1) and whether the RX line needs inverting"
            )
        if self.decoder.readings == 0:
            return "frames but no reading: run `hanctl decode --errors` on the file and share it"
        return None


class TcpLink:
    """A raw TCP byte stream read like a serial port: read(n) gives what arrived within
    the timeout (b"" when nothing did), OSError once the other side closed.

    Not pyserial's socket:// handler: its open() discards whatever already arrived, the
    start of the first frame."""

    def __init__(self, host, port, timeout=READ_TIMEOUT_S):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(timeout)

    def read(self, n):
        try:
            data = self.sock.recv(n)
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionError("the other side closed the connection")
        return data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MqttLink:
    """A dongle's raw topic read like a serial port: the bytes of each message on
    <topic>/raw, in order (QoS 0: what the dongle sent while this was subscribed)."""

    def __init__(self, url, timeout=READ_TIMEOUT_S):
        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        base = parts.path.lstrip("/")
        try:
            number = parts.port  # ValueError when not a number
        except ValueError:
            number = -1
        if not parts.hostname or not base or number == -1:
            raise ValueError(
                "use mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC, TOPIC the dongle destination's"
            )
        self.timeout = timeout
        self.messages = queue.Queue()
        subscribed = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, msg: self.messages.put(bytes(msg.payload))
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        if parts.username:  # percent-encoded in the URL: a password may hold / # ? @
            password = parts.password
            self.client.username_pw_set(
                unquote(parts.username), None if password is None else unquote(password)
            )
        self.client.connect(parts.hostname, number or 1883)
        self.client.subscribe(base.rstrip("/") + "/raw")
        self.client.loop_start()
        try:
            subscribed.get(timeout=10)
        except queue.Empty:
            self.close()
            raise OSError("the broker did not confirm the subscription") from None

    def read(self, n):
        try:
            return self.messages.get(timeout=self.timeout)
        except queue.Empty:
            return b""

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def shown(port):
    """port as output may show it: a URL's password (mqtt://USER:PASSWORD@...) starred."""
    try:
        parts = urlsplit(port)
    except ValueError:  # not a URL urllib can read: shown only up to its user
        return port.rpartition("@")[2] if "@" in port else port
    if parts.password is None:
        return port
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def open_port(port, baud, parity):
    """A link to read from: tcp://HOST:PORT, mqtt://HOST[:PORT]/TOPIC, or a serial device
    at baud and parity. A TCP bridge sets the speed of its own serial line, and a dongle
    its own, so baud and parity do not apply to them."""
    if port.startswith("mqtt://"):
        return MqttLink(port)
    if port.startswith("tcp://"):
        host, _, number = port[6:].rpartition(":")
        if not host or not number.isdigit():
            raise ValueError("use tcp://HOST:PORT")
        return TcpLink(host, int(number))
    import serial  # imported on use: the other hanctl commands do not need pyserial

    return serial.Serial(port, baud, parity=parity, timeout=READ_TIMEOUT_S)


def record(link, out, tally, seconds=None, progress=sys.stderr):
    """Copy link's bytes to out until `seconds` pass or the link closes; Ctrl-C ends it too.
    Returns why it stopped."""
    start = time.monotonic()
    next_progress = start + PROGRESS_S
    why = "time is up"
    try:
        while seconds is None or time.monotonic() - start < seconds:
            try:
                chunk = link.read(CHUNK)
            except OSError as err:  # the bridge closed, the adapter was unplugged
                why = f"the port closed ({err})"
                break
            if chunk:
                out.write(chunk)
                out.flush()  # a capture cut short by a crash keeps what arrived
                tally.feed(chunk)
            else:
                tally.quiet()
            now = time.monotonic()
            if now >= next_progress:
                print(f"capture: {tally.line()} in {now - start:.0f} s", file=progress)
                next_progress += PROGRESS_S
    except KeyboardInterrupt:
        why = "stopped"
    tally.end()
    return why


def register(subparsers):
    p = subparsers.add_parser(
        "capture",
        help="record raw bytes from a HAN port (USB M-Bus adapter or tcp://)",
        description="Record the raw bytes of a HAN port into FILE until --seconds pass or "
        "Ctrl-C; `hanctl decode FILE` reads them back.",
    )
    p.add_argument(
        "--port",
        required=True,
        help="serial port, tcp://HOST:PORT, or mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC "
        "(a dongle's raw topic)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where the bytes go")
    p.add_argument("--baud", type=int, default=2400, help="default %(default)s")
    p.add_argument("--parity", choices=PARITIES, default="E", help="default E")
    p.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    p.set_defaults(run=run_command)


def run_command(args):
    try:
        link = open_port(args.port, args.baud, args.parity)
    except (OSError, ValueError) as err:  # pyserial's SerialException is an OSError
        print(f"hanctl capture: cannot open {shown(args.port)}: {err}", file=sys.stderr)
        return 2
    tally = Tally()
    with link, open(args.out, "wb") as out:
        print(
            f"capture: recording {shown(args.port)} into {args.out}; Ctrl-C ends", file=sys.stderr
        )
        why = record(link, out, tally, args.seconds)
    hint = tally.hint()
    print(f"{args.out}: {tally.line()}; {why}" + (f"; {hint}" if hint else ""))
    return 1 if tally.bytes == 0 else 0
